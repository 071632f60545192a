"""The build's side of a Dask cluster: a client of the scheduler (``local:N`` starts one), the
workers checked before anything is sent, and items submitted as its tasks (:mod:`.cluster`
holds the tasks themselves). ``distributed`` is imported only here, only when a scheduler is given."""

from __future__ import annotations

import contextlib
import gc
import importlib
import importlib.metadata
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..errors import ClusterLost, ConfigError, StoreUnavailable
from . import cluster
from .cluster import ClusterItems, Job, installed_version
from .journal import Journal
from .reach import NEEDS, reach, source_folders

if TYPE_CHECKING:
    from distributed import Client, Future

    from ..stores import Store


def dask_tasks(client: Client, job: Job, journal: Journal, local: bool = False,
               progress: Callable[[str, dict[str, Any]], None] | None = None) -> ClusterItems:
    """Items as tasks of a Dask cluster: a worker that dies has its tasks rerun by the scheduler.
    ``progress`` hears ``no-workers`` when a remote cluster has had none for NO_WORKERS_SECONDS."""

    def submit(fn: Callable[..., Any], *args: Any, key: str) -> Future:
        # pure=False: a rebuild's task is new work even for equal items (the release differs anyway)
        return client.submit(fn, *args, pure=False, key=key)

    # KilledWorker: a task whose workers died more than distributed.scheduler.allowed-failures times
    from distributed import KilledWorker

    def lost(exc: BaseException) -> Exception:  # distributed cancels every future when the scheduler goes
        return ClusterLost(f"lost the Dask scheduler {client.scheduler.address}: {exc}. Nothing was published; the "
                           "items the workers finished are kept: run the build again to resume")

    # distributed's lost connections are OSErrors (CommClosedError)
    # an item's own task that Dask gave up on ends the build naming it (other tasks ran beside it);
    # a local cluster (``local``) left without workers ends it too (a remote one may scale to none)
    return ClusterItems(submit, job, journal, lost, lost_errors=(OSError,), died=(KilledWorker,), blame=False,
                        alive=(lambda: bool(client.nthreads())) if local else _waiting(client, progress))


def _waiting(client: Client, progress: Callable[[str, dict[str, Any]], None] | None) -> Callable[[], bool]:
    """A remote cluster's ``alive``: it may scale to none and back (an HPC queue), so the build waits
    for workers; the data manager hears once a stretch without any lasts NO_WORKERS_SECONDS (the
    queue? or workers without Skyshelf, which close at their first task: only their logs say so)."""
    state: dict[str, Any] = {"since": None, "said": False}

    def alive() -> bool:
        if client.nthreads():
            state.update(since=None, said=False)
        elif state["since"] is None:
            state["since"] = time.monotonic()
        elif not state["said"] and time.monotonic() - state["since"] >= cluster.NO_WORKERS_SECONDS:
            state["said"] = True
            if progress is not None:
                progress("no-workers", {"scheduler": client.scheduler.address, "seconds": cluster.NO_WORKERS_SECONDS,
                                        "version": installed_version()})
        return True

    return alive


@contextlib.contextmanager
def connect(scheduler: str | None, threads: int) -> Iterator[Client | None]:
    """A client of the scheduler (``local:N`` starts a LocalCluster of N worker processes, each
    with ``threads`` threads, closed afterwards), or None without one."""
    if not scheduler:
        yield None
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError("building on a Dask cluster needs the distributed package: pip install 'skyshelf[cluster]'") from None
    if scheduler.startswith("local:"):
        if (problem := _unfillable_link()) is not None:  # (Dask's scheduler fails to start on it, after a traceback)
            raise ConfigError(f"cannot start a local Dask cluster: {problem}")
        try:
            with _no_sigint_for_children():
                cluster = LocalCluster(n_workers=int(scheduler[6:]), threads_per_worker=threads, processes=True, dashboard_address="127.0.0.1:0",
                                       host="127.0.0.1")
        except (RuntimeError, OSError, TimeoutError) as exc:  # a worker process that died starting ("Nanny failed to start")
            raise ClusterLost(f"could not start the local Dask cluster ({scheduler}): {exc.__cause__ or exc}. Nothing was written; "
                              "build again (or without --scheduler: the build's own worker processes)") from None
        with cluster, Client(cluster, set_as_default=False) as client:
            yield client
        return
    if (refused := _handshake(scheduler)) is not None:
        raise ConfigError(refused)
    try:
        # not the process's default scheduler: a notebook's dask arrays stay on theirs (and a build
        # ending inside another client's life left dask's global config pointing at a closed one)
        client = Client(scheduler, set_as_default=False)  # tries for Dask's distributed.comm.timeouts.connect (30 s unless set)
    except (OSError, ValueError, TypeError, ImportError) as exc:  # (tls:// without Dask's TLS settings, ucx:// without ucx-py)
        refused = _refused(scheduler, exc)
    if refused is not None:
        # the half-made Client closes itself when collected; collected later, inside the next Dask
        # start of this process (a notebook's next build, a LocalCluster), its close waited on the
        # lock that start held: the process hung for good (distributed 2026.8). Collected here, once
        # the error is gone (its traceback's frames hold the Client: collected inside the except
        # block, it lived on, and its close at the interpreter's exit waited 2x the connect timeout)
        gc.collect()
        raise ConfigError(refused)
    with client:
        check_workers(client, scheduler)
        yield client


@contextlib.contextmanager
def _no_sigint_for_children() -> Iterator[None]:
    """A local cluster's worker processes started with Ctrl-C (SIGINT) ignored: it reached every
    process of the terminal's group, and each worker printed its KeyboardInterrupt's traceback. The
    build's process still stops on it and closes the cluster, which ends its workers (a worker a
    nanny starts again later keeps Python's default)."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _handshake(scheduler: str) -> str | None:
    """Why no Dask scheduler answers at ``scheduler``, or None: its handshake tried first, within
    ``distributed.comm.timeouts.connect``. distributed's own connect waits for the handshake with
    no deadline (a port that accepts but is no scheduler's, its dashboard's, held the build and the
    store's lock for good) and reads another server's bytes as frame lengths (MemoryError)."""
    import asyncio
    import concurrent.futures

    import dask
    from dask.utils import parse_timedelta
    from distributed.comm import connect as dask_connect
    from distributed.security import Security

    seconds = float(parse_timedelta(dask.config.get("distributed.comm.timeouts.connect"), default="s") or 30)

    async def shake() -> None:
        comm = await asyncio.wait_for(dask_connect(scheduler, timeout=seconds, **Security().get_connection_args("client")), seconds + 1)
        await comm.close()

    with concurrent.futures.ThreadPoolExecutor(1) as thread:  # (its own event loop: a notebook's is running)
        try:
            thread.submit(asyncio.run, shake()).result()
        except TimeoutError:
            return (f"cannot reach the Dask scheduler at {scheduler}: no Dask scheduler answered there within {seconds:g} s "
                    "(distributed.comm.timeouts.connect): is it the scheduler's port (8786 by default), not its dashboard's?")
        except (OSError, ValueError, TypeError, ImportError) as exc:  # (tls:// without Dask's TLS settings, ucx:// without ucx-py)
            return _refused(scheduler, exc)
        except Exception as exc:  # noqa: BLE001 (what answered is no Dask scheduler: its bytes read as Dask's frames)
            return f"cannot use the Dask scheduler at {scheduler}: what answers there is no Dask scheduler ({type(exc).__name__}: {exc})"
    return None


def _refused(scheduler: str, exc: BaseException) -> str:
    return f"cannot {'reach' if isinstance(exc, OSError) else 'use'} the Dask scheduler at {scheduler}: {exc}"


_NO_DASHBOARD = "none (the scheduler serves no dashboard)"


def dashboard_link(client: Client) -> str:
    """The dashboard's address as Dask forms it from ``distributed.dashboard.link``, or why it
    shows none. ``Client.dashboard_link`` raises KeyError for a template naming an environment
    variable that is not set (JupyterHub's ``{JUPYTERHUB_SERVICE_PREFIX}`` outside JupyterHub) and
    for a scheduler serving no dashboard: the build died of a link it only prints."""
    template = _link_template()
    try:
        link = client.dashboard_link
    except KeyError as exc:
        name = str(exc.args[0]) if exc.args else ""
        if "{" + name not in template:
            return _NO_DASHBOARD
        return f"not shown: its template (distributed.dashboard.link: {template!r}) names {{{name}}}, which is not set in the environment"
    except (IndexError, ValueError, AttributeError) as exc:
        return f"not shown: its template (distributed.dashboard.link: {template!r}) cannot be filled ({exc})"
    return str(link) if link else _NO_DASHBOARD


def _link_template() -> str:
    import dask

    return str(dask.config.get("distributed.dashboard.link", ""))


def _unfillable_link() -> str | None:
    """What is wrong with ``distributed.dashboard.link`` when it is no template at all (``{port``);
    None for one Dask can fill, or one naming a variable not set (Dask warns and goes on)."""
    template = _link_template()
    try:
        template.format(**{**os.environ, "scheme": "http", "host": "127.0.0.1", "port": 8787})
    except KeyError:
        return None
    except (IndexError, ValueError, AttributeError) as exc:
        return (f"Dask's setting distributed.dashboard.link ({template!r}) is not a template it can fill ({exc}); mend it where it is "
                "set (DASK_DISTRIBUTED__DASHBOARD__LINK, or a YAML file in ~/.config/dask)")
    return None


#: How long each worker has to answer the build's checks (importing the build's modules from a
#: cold shared file system can take a while).
ANSWER_SECONDS = 120.0


def answers(client: Client, scheduler: str, function: Callable[..., Any], *args: Any) -> dict[str, Any]:
    """``function(*args)`` run on every worker (``Client.run``): its answer, or the error it raised,
    by worker. ``Client.run`` waits without end for a worker that does not answer (a suspended
    job, a frozen node: the build hung, holding the store's lock), so each worker is asked alone,
    for :data:`ANSWER_SECONDS`; one that does not answer, or whose connection closes, ends the
    build naming it."""
    import asyncio

    async def each() -> list[tuple[str, Any]]:
        async def one(worker: str) -> tuple[str, Any]:
            try:
                found = await asyncio.wait_for(client._run(function, *args, workers=[worker], on_error="return"), ANSWER_SECONDS)
            except (TimeoutError, asyncio.TimeoutError):
                return worker, _Silent(f"did not answer in {ANSWER_SECONDS:.0f} s (a suspended job, or a frozen node?)")
            except OSError as exc:  # (distributed's CommClosedError)
                return worker, _Silent(f"closed its connection ({type(exc).__name__}: {exc})")
            return worker, found.get(worker, _Silent("left the cluster"))

        return list(await asyncio.gather(*(one(worker) for worker in workers)))

    workers = list(client.scheduler_info(n_workers=-1)["workers"])  # (here: inside the loop it would wait on itself)
    found = dict(client.sync(each))
    for worker, answer in found.items():
        if isinstance(answer, _Silent) or (isinstance(answer, OSError) and type(answer).__module__.startswith("distributed")):
            raise ClusterLost(f"the Dask worker {worker} of {scheduler} {answer if isinstance(answer, _Silent) else f'closed its connection ({answer})'}: "
                              "stop or restart it, and build again. Nothing was sent to the cluster")
    return found


class _Silent(Exception):
    """A worker that did not answer the build's check (:func:`answers`)."""


def check_workers(client: Client, scheduler: str) -> None:
    """Every worker imports the build's tasks, from the same Skyshelf version as this client: a
    worker that cannot would fail at its first task, and Dask, losing it, would leave the build
    waiting for workers that never come."""
    mine = installed_version()
    for found in (answers(client, scheduler, importlib.import_module, "publisher.build.cluster"),
                  answers(client, scheduler, importlib.metadata.version, "skyshelf")):
        for worker, answer in found.items():
            if isinstance(answer, BaseException):
                raise ConfigError(f"the Dask worker {worker} of {scheduler} cannot run the build's tasks ({type(answer).__name__}: {answer}): "
                                  "install the same Skyshelf in the workers' environment: pip install 'skyshelf[readers,cluster]'")
            if isinstance(answer, str) and answer != mine:
                raise ConfigError(f"the Dask worker {worker} of {scheduler} has Skyshelf {answer}, this client {mine}: "
                                  "install the same version on both")
    # readers of plug-ins too: a worker without one skipped its files as "no reader for this file
    # type", recorded, and a later build on workers that have it reused the skip
    here = set(reader_names())
    for worker, names in answers(client, scheduler, reader_names).items():
        missing = sorted(here - set(names)) if isinstance(names, list) else []
        if missing:
            raise ConfigError(f"the Dask worker {worker} of {scheduler} has no {', '.join(missing)} reader, which this client has "
                              "(a plug-in installed here only?): install it in the workers' environment too")


def check_reach(client: Client, job: Job, store: Store) -> None:
    """Every worker sees the sources at the client's paths and the store this build holds the lock
    of (the same folder; the bucket, with credentials and the variables ``output.storage`` names),
    and can write the release there. In a folder, the release's folder is made by this process
    first: made by a worker's check, on a shared file system it was that worker's user's, and this
    process's own writes there (its marker, the index) could be refused; a worker that cannot
    write into this process's folder is refused now, named, instead."""
    seen = [folder for folder in source_folders(job.pipeline) if os.path.isdir(folder)]  # (one the client lacks too: the plan says so)
    own, checked = f"{job.prefix}/.reach-client", False
    try:
        if store.is_local:
            store.write_bytes(own, b"{}")
        for worker, answer in answers(client, client.scheduler.address, _reach, job, seen).items():
            if isinstance(answer, StoreUnavailable):  # the store's passing fault met there (throttling...), not the worker's set-up
                raise StoreUnavailable(str(answer)) from None
            problem = f"fails the check ({type(answer).__name__}: {answer})" if isinstance(answer, BaseException) else answer
            if problem:
                raise ConfigError(f"the Dask worker {worker} {problem}: {NEEDS}")
        checked = True
    finally:
        # refused: the release's folder goes too, with what the checks left in it (nothing else is
        # there yet); an empty folder is no release that `publish gc` sees, and one was left a build
        with contextlib.suppress(Exception):  # (left, the probe goes with its release)
            if not checked:
                store.delete_prefix(job.prefix)
            elif store.is_local:
                store.delete_prefix(own)


def _reach(job: Job, folders: list[str]) -> str | StoreUnavailable | None:
    """On a worker: what it does not see of the build's sources and store, or None; the store's
    passing fault returned, not raised (Dask logs a raised one with its traceback)."""
    try:
        return reach(job.pipeline, job.store_url, job.settings, folders, release=job.prefix)[1]
    except StoreUnavailable as exc:
        return exc


def reader_names() -> list[str]:
    """The readers registered in this process, plug-ins' too (run on each worker by :func:`check_workers`;
    a built-in one whose optional library a worker lacks fails its files there, saying what to install)."""
    from ..readers.base import REGISTRY

    return sorted(REGISTRY.items())


class Capacity:
    """The threads of the cluster's workers, counted again at most once a second: workers that join
    once the build has started (dask-jobqueue's queued jobs, an adaptive or Kubernetes cluster)
    get work too, not only those there when it connected (6 late workers: 1.8 of them busy)."""

    def __init__(self, client: Client) -> None:
        self.client, self.next = client, time.monotonic() + 1.0
        self.slots = self._count()

    def _count(self) -> int:
        return sum(self.client.nthreads().values())

    def grown(self) -> int | None:
        """The new count, when it grew since last looked at."""
        if time.monotonic() < self.next:
            return None
        self.next = time.monotonic() + 1.0
        count = self._count()
        if count <= self.slots:
            return None
        self.slots = count
        return count
