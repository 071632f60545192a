"""A cluster worker's converters, one per build it runs tasks of (builds of several clients may
share a cluster): kept while the build's tasks come, its writer threads let go once it is idle."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import SkyshelfError, StoreError, WorkerRefused

if TYPE_CHECKING:
    from .convert import Converter
    from .plan import Planner

#: A build none of whose tasks ran on this worker for this long is finished (or abandoned).
IDLE_SECONDS = 600.0


@dataclass
class _Build:
    converter: Converter
    planner: Planner
    used: float  # when its last task here started or ended
    running: int = 0  # its tasks running here now: never idle meanwhile (one item may take an hour)


_lock = threading.Lock()
_current: dict[str, _Build] = {}  # release prefix -> its state here


@contextlib.contextmanager
def state(prefix: str, start: Callable[[], tuple[Converter, Planner]]) -> Iterator[tuple[Converter, Planner]]:
    """The converter and planner of the build writing ``prefix`` (``start``-ed on its first task
    here), for the duration of one task; other builds idle for IDLE_SECONDS with no task running
    here have their writer threads shut down. (A task's start alone counted: one item converting
    for longer than that had its pool shut under it by another build's next task.)"""
    now = time.monotonic()
    with _lock:
        for other, build in list(_current.items()):
            if other != prefix and not build.running and now - build.used > IDLE_SECONDS:
                build.converter.pool.shutdown(wait=False)
                del _current[other]
        found = _current.get(prefix)
        if found is None:
            found = _current[prefix] = _Build(*start(), now)
        found.used, found.running = now, found.running + 1
    try:
        yield found.converter, found.planner
    finally:
        with _lock:
            found.used, found.running = time.monotonic(), found.running - 1


@dataclass(frozen=True)
class Stopped:
    """A task ended by an error of the build's own (the store failing, a worker refused; an item's
    is in its result): returned, not raised, so Dask does not log a failed computation with its
    traceback (a ``local:N`` cluster's, in the build's output). The client raises it."""

    kind: str
    message: str

    @classmethod
    def of(cls, exc: StoreError | WorkerRefused) -> Stopped:
        return cls(type(exc).__name__, str(exc))

    def error(self) -> SkyshelfError:
        from .. import errors

        kind = getattr(errors, self.kind, None)
        return kind(self.message) if isinstance(kind, type) and issubclass(kind, StoreError | WorkerRefused) else SkyshelfError(self.message)
