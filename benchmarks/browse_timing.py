"""Browse page timing (issue 14): the page in real chromium against the served demo, as ratios to
a minimal page measured in the same run.

The demo is generated and built as ``scripts/demo.sh`` builds it (the root pipeline.yml, into a
temporary folder) and served by ``publish serve``'s server (handlers.local.LocalServer, in its own
process so the browser's driver does not share its interpreter). Two pages are timed, each in a
fresh browser context (cold cache) per run, interleaved in pairs whose order alternates:

- ``page``: the browse page at ``/#/`` (publisher/browse/static);
- ``baseline``: ``/baseline/`` — an HTML file and one module script that does one fetch of the same
  root children search the page asks for (``/api/v1/search/?page[limit]=100&fields=...``),
  renders it as a table of links and marks ``view-ready``; a click fetches the child's page the
  same way. It is served from a temporary folder by the same server process (one ASGI prefix in
  front of the handlers), so both pages pay the same server, loopback and browser start-up.

Two numbers per page: ``root`` = the first ``performance.mark('view-ready')`` (ms since
navigation start: HTML, scripts, API calls and render), and ``click`` = from ``click()`` on the
child link ``scans`` to the next ``view-ready`` (timed inside the page). Medians over N pairs
(after one warm-up pair) and page / baseline ratios are printed; the issue's targets are a root
view within 300 ms and a click within 150 ms.

Needs playwright (``scripts/setup.sh dev``) and Debian's chromium (``SKYSHELF_CHROMIUM`` overrides).
Usage: python benchmarks/browse_timing.py [--n 15]
"""

from __future__ import annotations

import argparse
import mimetypes
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CHILD = "scans"

BASELINE_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>baseline</title><link rel="icon" href="data:,">
<script type="module" src="/baseline/app.js"></script></head>
<body><main id="main">Loading…</main></body></html>
"""
#: The same children request as the page's tree.js (its fields, repeated keys), rendered as links.
BASELINE_JS = """const FIELDS = ['structure_family', 'structure', 'metadata', 'specs'];
async function render() {
  const path = location.hash.replace(/^#\\/?/, '');
  const q = new URLSearchParams({'page[offset]': 0, 'page[limit]': 100});
  for (const f of FIELDS) q.append('fields', f);
  q.append('omit_links', 'true');
  const answer = await (await fetch(`/api/v1/search/${path}?${q}`)).json();
  const rows = answer.data.map((item) => {
    const tr = document.createElement('tr');
    const a = document.createElement('a');
    a.href = `#/${path ? `${path}/` : ''}${item.id}`;
    a.textContent = item.id;
    tr.append(document.createElement('td'), document.createElement('td'));
    tr.firstChild.append(a);
    tr.lastChild.textContent = item.attributes.structure_family;
    return tr;
  });
  const table = document.createElement('table');
  table.append(...rows);
  document.getElementById('main').replaceChildren(table);
  document.body.dataset.ready = `${path}|`;
  performance.mark('view-ready');
}
addEventListener('hashchange', render);
render();
"""

CLICK = """async ([selector, want]) => {
  const before = performance.getEntriesByName('view-ready').length;
  const t0 = performance.now();
  document.querySelector(selector).click();
  await new Promise((done) => {
    const tick = () => (performance.getEntriesByName('view-ready').length > before && document.body.dataset.ready === want
      ? done() : requestAnimationFrame(tick));
    tick();
  });
  const marks = performance.getEntriesByName('view-ready');
  return marks[marks.length - 1].startTime - t0;
}"""


# -- the server process ----------------------------------------------------------------------------------


class Baseline:
    """ASGI: ``/baseline/<file>`` from a folder; everything else to the handlers' app."""

    PREFIX = "/baseline/"

    def __init__(self, app: Any, folder: Path) -> None:
        self.app, self.folder = app, folder.resolve()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.PREFIX):
            await self.app(scope, receive, send)
            return
        name = scope["path"][len(self.PREFIX):] or "index.html"
        file = (self.folder / name).resolve()
        ok = file.is_relative_to(self.folder) and file.is_file()
        body = file.read_bytes() if ok else b"not found"
        kind = (mimetypes.guess_type(name)[0] or "application/octet-stream") if ok else "text/plain"
        await send({"type": "http.response.start", "status": 200 if ok else 404,
                    "headers": [(b"content-type", kind.encode()), (b"content-length", str(len(body)).encode()),
                                (b"cache-control", b"no-cache")]})
        await send({"type": "http.response.body", "body": body})


def serve(store: str, port: int, baseline: Path) -> None:
    """``publish serve``'s server with the baseline mounted in front."""
    sys.path.insert(0, str(ROOT))
    from handlers.local import LocalServer

    mimetypes.add_type("text/javascript", ".js")
    server = LocalServer(store, "127.0.0.1", port)
    server.server.config.app = Baseline(server.server.config.app, baseline)
    server.serve_forever()


# -- the measuring process ---------------------------------------------------------------------------------


def build_demo(folder: Path) -> Path:
    """The demo tree and its store, as scripts/demo.sh makes them (make_demo.py, publish build -c pipeline.yml)."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "pipeline.yml", folder / "pipeline.yml")
    for step in (["examples/demo/make_demo.py", "--out", "examples/demo"], ["-m", "publisher.cli", "build", "-c", "pipeline.yml"]):
        if step[0].endswith(".py"):
            step[0] = str(ROOT / step[0])
        done = subprocess.run([sys.executable, *step], cwd=folder, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"{' '.join(step)} failed:\n{done.stdout}{done.stderr}")
    return folder / "site"


def start_server(store: Path, baseline: Path) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    from tests.servers import free_port

    port = free_port()
    process = subprocess.Popen([sys.executable, __file__, "--serve", str(store), "--port", str(port), "--baseline", str(baseline)],
                               cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            httpx.get(f"{url}/healthz", timeout=1)
            return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the server did not start")


#: Where the root view's time went (ms since navigation start), from Resource Timing up to the mark.
BREAKDOWN = """() => {
  const ready = performance.getEntriesByName('view-ready')[0].startTime;
  const nav = performance.getEntriesByType('navigation')[0];
  const before = performance.getEntriesByType('resource').filter((r) => r.responseEnd <= ready);
  const end = (rs) => Math.max(0, ...rs.map((r) => r.responseEnd));
  const api = before.filter((r) => r.name.includes('/api/v1/'));
  return {html: nav.responseEnd, scripts: end(before.filter((r) => r.name.endsWith('.js'))),
          api_calls: api.length, api_done: end(api)};
}"""


def measure(browser: Any, url: str) -> dict[str, float]:
    """Root view-ready (ms since navigation start), click to the next view-ready (ms) and the root's
    breakdown (:data:`BREAKDOWN`), in a fresh context (cold cache)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = context.new_page()
        page.goto(url)
        page.wait_for_function("() => document.body && document.body.dataset.ready === '|'", timeout=20_000)  # a function: CSP forbids eval
        found = page.evaluate(BREAKDOWN)
        found["root"] = page.evaluate("performance.getEntriesByName('view-ready')[0].startTime")
        found["click"] = page.evaluate(CLICK, [f'a[href="#/{CHILD}"]', f"{CHILD}|"])
        return {k: float(v) for k, v in found.items()}
    finally:
        context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=15, help="measured pairs (after one warm-up pair)")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--baseline", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, Path(args.baseline))
        return
    sys.path.insert(0, str(ROOT))
    from playwright.sync_api import sync_playwright

    from tests.browser import chromium_path

    exe = chromium_path()
    if exe is None:
        raise SystemExit("no chromium: apt-get install --no-install-recommends chromium (or set SKYSHELF_CHROMIUM)")
    with tempfile.TemporaryDirectory(prefix="browse-timing-") as tmp:
        work = Path(tmp)
        store = build_demo(work / "demo")
        baseline = work / "baseline"
        baseline.mkdir()
        (baseline / "index.html").write_text(BASELINE_HTML)
        (baseline / "app.js").write_text(BASELINE_JS)
        process, url = start_server(store, baseline)
        try:
            targets = {"page": f"{url}/#/", "baseline": f"{url}/baseline/#/"}
            results: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=exe, headless=True)
                print(f"chromium {browser.version}")
                for i in range(args.n + 1):
                    order = list(targets) if i % 2 == 0 else list(reversed(targets))
                    for name in order:
                        timing = measure(browser, targets[name])
                        if i:  # the first pair warms the server (imports, index reads)
                            results[name].append(timing)
                browser.close()
        finally:
            process.terminate()
            process.wait(10)
    report(results, os.cpu_count() or 1)


def report(results: dict[str, list[dict[str, float]]], cpus: int) -> None:
    n = len(results["page"])
    print(f"{n} paired runs, fresh browser context each, {cpus} CPUs; medians (min-max), ms")

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    for name, runs in results.items():
        roots, clicks = [r["root"] for r in runs], [r["click"] for r in runs]
        print(f"  {name:9s} root {median(name, 'root'):6.1f} ({min(roots):.0f}-{max(roots):.0f})"
              f"   click -> {CHILD} {median(name, 'click'):6.1f} ({min(clicks):.0f}-{max(clicks):.0f})"
              f"   [root: HTML {median(name, 'html'):.0f}, scripts {median(name, 'scripts'):.0f},"
              f" {median(name, 'api_calls'):.0f} API calls done {median(name, 'api_done'):.0f}]")
    for key in ("root", "click"):
        ratios = [p[key] / b[key] for p, b in zip(results["page"], results["baseline"], strict=True)]
        print(f"  page / baseline, {key}: x{statistics.median(ratios):.2f} (median of paired ratios)")
    root, click = median("page", "root"), median("page", "click")
    print(f"  targets (issue 14): root <= 300 ms: {'met' if root <= 300 else 'MISSED'} ({root:.0f}); "
          f"click <= 150 ms: {'met' if click <= 150 else 'MISSED'} ({click:.0f})")


if __name__ == "__main__":
    main()
