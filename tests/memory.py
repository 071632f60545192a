"""How much a build's memory grows, measured in a process of its own (issue 16: memory per worker
bounded whatever the source sizes)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

#: The build in a new interpreter; its peak resident memory read from VmHWM, which starts anew at
#: exec (``ru_maxrss`` keeps the forking process's: under pytest, hundreds of MB before the build
#: has done anything). The baseline is taken after the imports a build makes anyway.
SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy, pandas, pyarrow.parquet, tifffile, zarr
    from publisher.build import build
    from publisher.config import load_pipeline

    def high_water():
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))

    base = high_water()
    report = build(load_pipeline(sys.argv[1]), workers=2)
    print(json.dumps({"grown": high_water() - base, "report": report.to_json()}))
""")


def build_growth(pipeline: Path) -> tuple[int, dict[str, Any]]:
    """Build ``pipeline`` in a new process: the bytes its peak memory grew by, and the report."""
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(pipeline)], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    return measured["grown"], measured["report"]


#: :data:`SCRIPT`'s imports made once, then each build in a child forked from that state: the
#: child starts as a new interpreter's build did at ``base`` (the same modules imported, nothing
#: built yet), without ~3 s of imports (more where no bytecode is cached) for each build. A
#: child's VmHWM starts at its resident size when forked (the kernel sets it so); library code
#: the child runs is mapped into it again as it runs, which every child of the same parent pays
#: alike: for comparing two builds' growth (a source and a larger one), not for absolute bounds.
FORKING = textwrap.dedent("""
    import json, os, sys, traceback
    import numpy, pandas, pyarrow.parquet, tifffile, zarr
    from publisher.build import build
    from publisher.config import load_pipeline

    def high_water():
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))

    for line in sys.stdin:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the build, in a process of its own
            os.close(read)
            os.dup2(2, 1)  # what the build prints goes to stderr, not into the answers
            try:
                base = high_water()
                report = build(load_pipeline(json.loads(line)), workers=2)
                answer, code = {"grown": high_water() - base, "report": report.to_json()}, 0
            except BaseException:
                answer, code = {"error": traceback.format_exc()}, 1
            with os.fdopen(write, "w") as out:
                out.write(json.dumps(answer))
            os._exit(code)
        os.close(write)
        with os.fdopen(read) as answer:
            text = answer.read()
        os.waitpid(pid, 0)
        print(text or json.dumps({"error": "the build's process died"}), flush=True)
""")


class GrowthMeter:
    """:func:`build_growth` for builds compared with each other, each in a child forked from one
    process that made the imports (:data:`FORKING`); ``close()`` ends that process."""

    def __init__(self, log: Path) -> None:
        self.log = log.open("wb")
        self.process = subprocess.Popen([sys.executable, "-c", FORKING], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=self.log, text=True)

    def __call__(self, pipeline: Path) -> tuple[int, dict[str, Any]]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(str(pipeline)) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, f"the forking process exited with {self.process.wait()}: {Path(self.log.name).read_text()[-3000:]}"
        measured = json.loads(line)
        assert "error" not in measured, measured["error"][-3000:]
        return measured["grown"], measured["report"]

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
