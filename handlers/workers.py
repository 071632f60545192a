"""``publish serve --workers N``: N processes answer one port, each uvicorn serving an :class:`~.local.App`.

Each worker binds its own socket to the port with ``SO_REUSEPORT`` (Linux), and the kernel
spreads new connections evenly over them. uvicorn's own ``--workers`` shares one socket: a
connection goes to whichever worker wakes first, and an asyncio worker accepts every waiting
connection at once, so a burst (twelve PNGs from one page, sixteen clients starting together)
went whole to one worker while the other idled (measured here). Where ``SO_REUSEPORT`` does not
balance (macOS and the BSDs give every connection to the newest socket), the workers share this
process's socket, as uvicorn's do.

This process supervises. Workers are spawned (fresh interpreters, as uvicorn's are, so no thread
or S3 client of this one is forked) with the settings read here once; SIGINT or SIGTERM stops them
all (SIGTERM to each, which uvicorn finishes gracefully, then a wait); a worker that dies is
replaced, one that dies before it served stops the server. A worker stops by itself once this
process is gone, as a SIGKILL leaves no time to stop them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import multiprocessing
import os
import queue
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from . import settings as _settings
from .cors import Cors
from .settings import Settings

#: The default is a worker per usable core, up to this many (each holds its own imports, thread
#: pools and decoded-chunk cache: ``SKYSHELF_DECODED_CACHE_BYTES`` is per worker).
MAX_DEFAULT_WORKERS = 8
#: The kernel spreads connections over the sockets sharing a port (Linux's ``SO_REUSEPORT``).
BALANCED = sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def default_workers() -> int:
    """The cores this process may run on (its CPU affinity, as a container or ``taskset`` limits
    it), at most :data:`MAX_DEFAULT_WORKERS`."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(usable, MAX_DEFAULT_WORKERS))


def bind(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    """A TCP socket bound to ``host:port`` (not yet listening: uvicorn listens)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _listening(host: str, port: int) -> bool:
    """Something answers on ``host:port`` (our own socket does not listen yet)."""
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True


@dataclasses.dataclass(frozen=True)
class Worker:
    """What a worker builds its app from, picklable (it travels to a fresh interpreter); called
    there, by uvicorn, as the app's factory."""

    store_url: str
    host: str
    port: int
    cors: Cors
    settings: Settings
    parent: int
    #: The secret of the signed links to private files: the supervisor's, so a link one worker
    #: signed is good on any (``publisher.auth.signing``)
    signing: bytes

    def __call__(self) -> Any:
        from publisher.auth import signing
        from publisher.stores import Store

        from .local import App, logged

        _exit_with_parent(self.parent)
        signing.use(self.signing)
        store = Store(self.store_url, backend=self.settings.s3_backend, direct_io=self.settings.direct_io)
        return logged(App(store, self.cors, self.settings), self.settings)


def _exit_with_parent(parent: int) -> None:
    """SIGTERM this worker (uvicorn then stops gracefully) once the supervisor is gone."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="skyshelf-parent-watch", daemon=True).start()


def _serve(worker: Worker, shared: socket.socket | None, ready: Any) -> None:
    """A worker process: uvicorn on its own socket of the port (or the shared one); its pid goes
    to ``ready`` once it listens."""
    import uvicorn

    from .local import uvicorn_options

    # out of the terminal's process group: its Ctrl+C reaches the supervisor alone, which stops the
    # workers with SIGTERM (a worker that took the SIGINT too printed a KeyboardInterrupt traceback
    # whenever uvicorn raised that one again after its shutdown, before the SIGTERM)
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    # (started with SIGINT blocked and ignored, see Workers._start: one sent to the group since is
    # dropped as it is let through, then Python's own handler is back)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sock = shared if shared is not None else bind(worker.host, worker.port, reuse_port=True)
    server = uvicorn.Server(uvicorn.Config(worker, factory=True, **uvicorn_options()))

    def tell() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.01)
        if server.started:
            ready.put(os.getpid())

    threading.Thread(target=tell, name="skyshelf-ready", daemon=True).start()
    server.run(sockets=[sock])


class Workers:
    """``workers`` processes serving ``store_url`` on ``host:port`` (port 0: a free one), run by
    :meth:`serve_forever` in the main thread (it takes SIGINT and SIGTERM)."""

    def __init__(self, store_url: str, host: str = "127.0.0.1", port: int = 8000, cors: Cors | None = None, workers: int = 2) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        settings = _settings.environment()  # read once, here: a malformed one fails before any worker starts
        # Holds the port (and picks it, for port 0). With SO_REUSEPORT it never listens, so it takes
        # no connections; else it is the socket every worker listens on.
        self.sock = bind(host, port, reuse_port=BALANCED)
        self.host, self.port = host, self.sock.getsockname()[1]
        if BALANCED and _listening(host, self.port):  # another server with SO_REUSEPORT: it would share the port with us
            self.sock.close()
            raise OSError(errno.EADDRINUSE, f"{host}:{self.port} is taken by another server")
        from publisher.auth import signing

        self.worker = Worker(store_url, host, self.port, cors if cors is not None else Cors(), settings, os.getpid(), signing.secret())
        self.count = workers
        self.context = multiprocessing.get_context("spawn")
        self.ready = self.context.Queue()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _start(self) -> Any:
        process = self.context.Process(target=_serve, args=(self.worker, None if BALANCED else self.sock, self.ready),
                                       name="skyshelf-worker", daemon=False)
        # started with Ctrl+C blocked and ignored, which the new interpreter keeps (Python puts its
        # own SIGINT handler only over the default) until _serve has left the terminal's process
        # group: a terminal's Ctrl+C reaches the whole group, and a worker still importing printed
        # its KeyboardInterrupt traceback (up to 2 s after the start, here). Blocked here meanwhile,
        # so one that comes now waits for the supervisor's handler (ignored alone, it was lost).
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            process.start()
        finally:
            signal.signal(signal.SIGINT, previous)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        return process

    def serve_forever(self, on_ready: Callable[[list[int]], None] | None = None) -> None:
        """Start the workers, tell ``on_ready`` their pids once all listen, replace any that dies,
        and stop them all on SIGINT or SIGTERM. Exits (1) if a worker dies before it served."""
        stop = threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
        processes = [self._start() for _ in range(self.count)]
        served: set[int] = set()
        told = False
        try:
            while not stop.is_set():
                try:
                    served.add(self.ready.get(timeout=0.25))
                except queue.Empty:
                    pass
                if not told and all(p.pid in served for p in processes):
                    told = True
                    if on_ready is not None:
                        on_ready([p.pid for p in processes])
                for i, process in enumerate(processes):
                    if process.exitcode is None or stop.is_set():
                        continue
                    if process.pid not in served:
                        raise SystemExit(f"publish serve: worker {process.pid} exited with {process.exitcode} before it served "
                                         "(its error is above)")
                    processes[i] = self._start()  # died while serving: replaced
        finally:
            for process in processes:
                if process.exitcode is None:
                    process.terminate()  # SIGTERM: uvicorn finishes the requests under way, then exits
            for process in processes:
                process.join(30)
                if process.exitcode is None:
                    process.kill()
                    process.join()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.sock.close()
