"""A real OpenID provider for tests: panva's ``oidc-provider`` (npm, pinned in tests/oidc/).

``oidc_provider(tmp_path)`` installs it once (``npm ci`` into tests/oidc/node_modules, redone only
when the lockfile is newer), starts ``node tests/oidc/provider.js`` on a free loopback port and
yields an :class:`OIDCProvider`: its endpoints, ``token(account)`` (a real access token, got by
driving the device flow over HTTP as a user in a browser would) and ``rotate()`` (a new signing
key: the provider restarts on the same port, so the issuer stays the same). Tests skip when
``node`` is missing; anything else that goes wrong fails loudly.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

HERE = Path(__file__).resolve().parent / "oidc"
CLIENT_ID = "skyshelf-cli"
AUDIENCE = "https://skyshelf.test/api"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def install() -> None:
    """``npm ci`` the pinned provider unless node_modules is already at least as new as the lockfile.

    A file lock keeps two pytest workers from installing into the same folder at once."""
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("node is installed but npm is not: cannot install tests/oidc (oidc-provider)")
    marker = HERE / "node_modules" / ".package-lock.json"  # npm writes it last, on success
    lockfile = HERE / "package-lock.json"
    with open(lockfile, "rb") as lock:  # flock the lockfile itself: no extra file to ignore
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists() and marker.stat().st_mtime >= lockfile.stat().st_mtime:
            return
        done = subprocess.run([npm, "ci", "--prefix", str(HERE), "--no-audit", "--no-fund"],
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"npm ci in {HERE} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


@dataclass
class OIDCProvider:
    """A running provider. Its issuer (``http://127.0.0.1:<port>``) survives :meth:`rotate`."""

    workdir: Path
    env: dict[str, str]
    issuer: str = ""
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    browser_errors: list[Exception] = field(default_factory=list, repr=False)
    _stages: str = field(default="", repr=False)  # the log of a start that hung

    @property
    def port(self) -> int:
        return int(self.issuer.rsplit(":", 1)[1])

    @property
    def jwks_uri(self) -> str:
        return f"{self.issuer}/jwks"

    @property
    def device_authorization_endpoint(self) -> str:
        return f"{self.issuer}/device/auth"

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/token"

    @property
    def audience(self) -> str:
        return self.env["AUDIENCE"]

    @property
    def client_id(self) -> str:
        return self.env["CLIENT_ID"]

    def start(self, port: int = 0) -> None:
        """Start node and wait for the first stdout line, which names the issuer (later lines are
        the provider's notices, hence a file rather than a pipe nobody drains).

        CI once saw a start hang after node had loaded its modules (no other line within 30 s, on
        2 busy cores; never reproduced here, where a start takes 0.6 s). A start that hangs is
        retried once and a warning names the stage it reached (provider.js logs each stage)."""
        for attempt in (1, 2):
            if self._start_once(port, timeout=45):
                if attempt == 2:
                    warnings.warn(f"oidc-provider needed a second start; the first hung: {self._stages}", stacklevel=2)
                return
            self._stages = self._log()
        raise RuntimeError(f"oidc-provider did not start (exit {self.process.returncode if self.process else None}); "
                           f"its log:\n{self._stages}")

    def _log(self) -> str:
        out, err = self.workdir / "provider.out", self.workdir / "provider.err"
        return f"stdout: {out.read_text()[-1000:]!r}\nstderr: {err.read_text()[-3000:]}"

    def _start_once(self, port: int, timeout: float) -> bool:
        out, err = self.workdir / "provider.out", self.workdir / "provider.err"
        with open(out, "wb") as stdout, open(err, "ab") as stderr:
            self.process = subprocess.Popen(["node", str(HERE / "provider.js")], stdout=stdout, stderr=stderr,
                                            env={**os.environ, **self.env, "PORT": str(port)})
        started = time.monotonic()
        while time.monotonic() < started + timeout:
            first = out.read_bytes().split(b"\n", 1)
            if len(first) == 2:
                self.issuer = json.loads(first[0])["issuer"]
                return True
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        with open(err, "a") as stderr:
            stderr.write(f"[test harness: no issuer line after {time.monotonic() - started:.1f} s, "
                         f"exit {self.process.returncode}]\n")
        return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def rotate(self, retire_old: bool = False) -> None:
        """Sign with a new key from now on. The old key stays in the JWKS unless ``retire_old``.

        oidc-provider's keys are fixed per instance, so this restarts it on the same port: grants
        and refresh tokens are lost, access tokens issued earlier remain valid JWTs."""
        port = self.port
        self.stop()
        flags = ["--rotate", *(["--retire-old"] if retire_old else [])]
        subprocess.run(["node", str(HERE / "provider.js"), *flags], env={**os.environ, **self.env},
                       check=True, capture_output=True, timeout=30)
        self.start(port)

    def tokens(self, account: str, scope: str = "openid offline_access") -> dict[str, Any]:
        """The token response (access, refresh and id token) for ``account`` via the device flow.

        The scope is what tiled's client asks for; the provider adds the audience itself."""
        with httpx.Client(timeout=10) as client:
            auth = client.post(self.device_authorization_endpoint, data={"client_id": self.client_id, "scope": scope})
            auth.raise_for_status()
            grant = auth.json()
            self.approve(grant["verification_uri_complete"], account)
            done = client.post(self.token_endpoint, data={"grant_type": DEVICE_GRANT, "client_id": self.client_id,
                                                          "device_code": grant["device_code"]})
            if done.status_code != 200:
                raise RuntimeError(f"token endpoint answered {done.status_code}: {done.text}")
            return done.json()

    def token(self, account: str) -> str:
        """A real access token (an RS256 JWT with ``aud``, ``sub`` and ``groups``) for ``account``."""
        return str(self.tokens(account)["access_token"])

    def browser(self, account: str) -> Callable[..., bool]:
        """A stand-in for ``webbrowser.open`` (monkeypatch it) with which a device-code client such
        as tiled's logs in as ``account``: the user's part runs in a thread while the client polls.
        A failure there is kept in ``browser_errors``."""
        def open_(url: str, *args: Any, **kwargs: Any) -> bool:
            def user() -> None:
                try:
                    self.approve(url, account)
                except Exception as error:  # noqa: BLE001 (reported to the test, not lost in a thread)
                    self.browser_errors.append(error)
            threading.Thread(target=user, daemon=True).start()
            return True
        return open_

    def approve(self, verification_uri_complete: str, account: str) -> None:
        """What the user does in the browser: open the link, confirm the code, sign in (the test
        provider's login form takes just an account name; consent is automatic)."""
        def fields(html: str) -> dict[str, str]:
            return dict(re.findall(r'name="(\w+)" value="([^"]*)"', html))

        with httpx.Client(follow_redirects=True, timeout=10) as browser:
            page = browser.get(verification_uri_complete)  # auto-submitting form: xsrf + user_code
            page = browser.post(f"{self.issuer}/device", data=fields(page.text))  # -> "confirm" form
            page = browser.post(f"{self.issuer}/device", data=fields(page.text))  # -> login form
            action = re.search(r'action="([^"]+)"', page.text)
            if action is None:
                raise RuntimeError(f"no login form from the provider: {page.status_code} {page.text[:500]}")
            page = browser.post(self.issuer + action.group(1), data={"login": account})
            if page.status_code != 200 or "Success" not in page.text:
                raise RuntimeError(f"device login for {account!r} failed: {page.status_code} {page.text[:500]}")


@contextlib.contextmanager
def oidc_provider(tmp_path: Path, accounts: dict[str, list[str]] | None = None, *, audience: str = AUDIENCE,
                  access_ttl: int = 300, client_id: str = CLIENT_ID) -> Iterator[OIDCProvider]:
    """A running provider whose ``accounts`` (name → groups) can sign in; stopped on exit."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the OIDC tests run a real OpenID provider (oidc-provider, npm)")
    install()
    accounts = {"alice": ["grp-a"], "bob": ["grp-b"]} if accounts is None else accounts
    workdir = Path(tmp_path)
    workdir.mkdir(parents=True, exist_ok=True)
    env = {"AUDIENCE": audience, "CLIENT_ID": client_id, "ACCESS_TTL": str(access_ttl),
           "ACCOUNTS": json.dumps({name: {"groups": groups} for name, groups in accounts.items()}),
           "KEYS_FILE": str(workdir / "keys.json")}
    provider = OIDCProvider(workdir, env)
    provider.start()
    try:
        yield provider
    finally:
        provider.stop()
