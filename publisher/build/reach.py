"""What a worker does not see of a build's sources and store: asked of every Dask worker when the
build connects (:func:`.dask_client.check_reach`) and by the first task on a worker that joined
later (:meth:`.cluster.Job.open`); else its items failed one by one blaming the files ("deleted
since the build planned it?") or pipeline.yml ("variable not set", set on the client only)."""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import os
import secrets
import socket
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config.models import Pipeline
    from ..settings import BuildSettings
    from ..stores import Store


@functools.cache
def installed_version() -> str:
    return importlib.metadata.version("skyshelf")


def worker_name() -> str:
    """This worker as the build names it: its Dask address, or its pid and host (a worker process of the build's machine)."""
    with contextlib.suppress(KeyError, ValueError):
        return f"the Dask worker {sys.modules['distributed'].get_worker().address}"
    return f"the worker process {os.getpid()} on {socket.gethostname()}"


def source_folders(pipeline: Pipeline) -> list[str]:
    """The sources' folders as the client names them (not resolved: a worker resolves them)."""
    from ..sources import source_folder

    return sorted({source_folder(pipeline, source, resolved=False) for source in pipeline.sources})


def reach(pipeline: Pipeline, store_url: str, settings: BuildSettings, folders: list[str], every: bool = True,
          release: str | None = None) -> tuple[Store | None, str | None]:
    """The store as this process opens it, and what it does not see (None: everything): a source
    folder (``every``: of ``folders``, those the client saw; else none of them: one moved away
    since the build started is not the worker's fault), the store itself (credentials, a
    variable, a network), the build's lock in it (a folder of its own at the client's path), or,
    given the ``release``'s prefix, that it cannot write there (a read-only mount or role: each
    item it converted failed, blamed on its file)."""
    from ..store_lock import LOCK_KEY
    from .target import resolve_store

    missing = [folder for folder in folders if not os.path.isdir(folder)]
    if missing and (every or len(missing) == len(folders)):
        also = "" if every else " (nor any other: moved or deleted since the build started?)"
        return None, f"does not see the source folder {missing[0]}{also}"
    doing, key = "open", LOCK_KEY
    try:
        store = resolve_store(pipeline, store_url, settings)
        if not store.exists(LOCK_KEY):
            return None, f"does not see this build's lock in the store {store_url} (a folder of its own there, not the client's?)"
        if release is not None:
            doing, key = "write to", f"{release}/.reach-{secrets.token_hex(6)}"
            store.write_bytes(key, b"{}")  # (not empty: one left behind keeps its release's folder one gc sees)
            with contextlib.suppress(Exception):  # a worker needs no right to delete: left, it goes with its release
                store.delete_prefix(key)
        return store, None
    except Exception as exc:  # noqa: BLE001 (said, naming the worker: credentials, a variable, a network)
        from ..stores.faults import passing, store_error

        if passing(exc):  # throttling, a 5xx, a dropped connection: the store's moment, not the worker's set-up
            raise store_error(doing, key, store_url, exc) from None
        return None, f"cannot {doing} the store {store_url} ({type(exc).__name__}: {exc})"


#: What the build asks of a worker that does not see its sources or store.
NEEDS = "each worker needs the sources at the client's paths and the store with its credentials (docs/scale.md). Nothing was published"


def worker_store(pipeline: Pipeline, store_url: str, settings: BuildSettings, local: bool, release: str) -> Store:
    """The store as a worker opens it at its first task of a build. One away from the build's
    machine (``local`` False) that does not see the store or any source folder, or cannot write
    the ``release``, is refused, named: the workers there when the build connected were checked,
    one that joined since not."""
    from ..errors import WorkerRefused
    from .target import resolve_store

    if local:  # (on the build's own machine: it sees what the build sees)
        return resolve_store(pipeline, store_url, settings)
    store, problem = reach(pipeline, store_url, settings, source_folders(pipeline), every=False, release=release)
    if store is None:
        raise WorkerRefused(f"{worker_name()} {problem}: {NEEDS}")
    return store
