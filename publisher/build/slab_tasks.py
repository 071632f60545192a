"""A big array's slabs as Dask tasks of their own (:class:`SlabTasks`), so one 50 GB dataset
spreads over the whole cluster: each re-opens the item's file on any worker and writes its
regions' chunks. Used by the worker state :class:`.cluster.Job` opens."""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import StoreError, WorkerRefused
from ..nodes import ArrayNode, ContainerNode, Node
from ..stacks import stack_arrays
from ..work_item import WorkItem
from . import worker_state

if TYPE_CHECKING:
    from ..settings import BuildSettings
    from .convert import Converter
    from .plan import Planner


class _Job(Protocol):
    """What a slab task needs of the build's :class:`.cluster.Job`."""

    prefix: str
    settings: BuildSettings

    def open(self) -> tuple[Converter, Planner]: ...


current = threading.local()  # the item a worker thread is converting (``.item``: what a slab task re-opens)


class SlabTasks:
    """The :class:`~publisher.writers.base.Spread` of a cluster worker: a big array's slabs become
    tasks of their own (about ``task_bytes`` each) that any worker runs, re-opening the item's file
    and reading its regions of the node, so one 50 GB dataset spreads over the whole cluster. The
    task that met the array waits for them outside the worker's thread pool (``worker_client``),
    so its thread runs slab tasks meanwhile; the metadata documents are its own, written once."""

    def __init__(self, job: _Job) -> None:
        self.job = job
        self.min_bytes = job.settings.spread_bytes
        #: Each task's share: an eighth of the threshold (64 MiB by default), at least one 16 MiB slab
        self.task_bytes = max(16 * 2**20, self.min_bytes // 8)

    def __call__(self, node_path: str, prefix: str, zarr_path: str, layout: Any, regions: list[tuple[slice, ...]]) -> list[tuple[int, int | None]]:
        from distributed import worker_client

        item: WorkItem = current.item
        itemsize = layout.dtype.itemsize
        groups: list[list[tuple[slice, ...]]] = [[]]
        size = 0
        for sel in regions:
            region = math.prod(s.stop - s.start for s in sel) * itemsize
            if groups[-1] and size + region > self.task_bytes:
                groups.append([])
                size = 0
            groups[-1].append(sel)
            size += region
        with worker_client() as client:
            futures = [client.submit(write_slabs, self.job, item, node_path, f"{prefix}/{zarr_path}", layout, group, pure=False,
                                     key=f"skyshelf-slabs-{node_path}-{i}-{self.job.prefix}") for i, group in enumerate(groups)]
            results = client.gather(futures)
        for group in results:
            if isinstance(group, worker_state.Stopped):
                raise group.error()
        return [r for group in results for r in group]


def write_slabs(job: _Job, item: WorkItem, node_path: str, path: str, layout: Any, regions: list[tuple[slice, ...]]) -> list[tuple[int, int | None]] | worker_state.Stopped:
    """On any worker: read ``regions`` of the node at ``node_path`` of ``item`` (its file opened
    again here) and write their chunks to ``path``."""
    from ..writers.zarr_array import put_region, read_region

    try:
        with worker_state.state(job.prefix, job.open) as (converter, _), _reopened(item, node_path) as node:
            store = converter.store
            out: list[tuple[int, int | None]] = []
            for sel in regions:
                block, constant = read_region(node, sel)
                put_region(store, path, layout, sel, block, constant)
                out.append((block.nbytes, None))
    except (StoreError, WorkerRefused) as exc:  # (the build's: returned, see Stopped)
        return worker_state.Stopped.of(exc)
    return out


@contextlib.contextmanager
def _reopened(item: WorkItem, node_path: str) -> Iterator[ArrayNode]:
    """The array node at ``node_path`` of ``item``, its file open while the context lasts."""
    keys = [k for k in node_path[len(item.node_path):].split("/") if k]
    options = item.reader_options()
    assert item.reader is not None
    with contextlib.ExitStack() as stack:
        if len(item.paths) > 1 or item.is_stack:
            node: Node | None = stack_arrays(item.reader, item.paths, item.key, options)
        else:
            node = stack.enter_context(item.reader().open(item.paths[0], item.key, options))
        for key in keys:
            node = node.child(key) if isinstance(node, ContainerNode) else None
        if not isinstance(node, ArrayNode) or node.read is None:
            raise RuntimeError(f"{node_path} is no longer an array in {item.label}: it changed during the build")
        yield node
