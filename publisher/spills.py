"""Spilled answers: bodies past Lambda's payload limit, written under ``responses/`` for a 307.

One object per distinct request, so they are bounded here: an answer older than ``max_age``
seconds (``SKYSHELF_SPILL_MAX_AGE``, default :data:`MAX_AGE`) is written again before it is
redirected to (on S3 a lifecycle rule expires the prefix after ``EXPIRY_DAYS``, which is longer,
so a redirect never points at an object about to go), and on a local store the oldest (but those
written in the last :data:`YOUNG` seconds) go once the folder passes ``max_bytes`` (``SKYSHELF_SPILL_MAX_BYTES``, default :data:`MAX_BYTES`). The
handlers pass both from their settings.
``publish gc`` removes the old ones anywhere (a Lambda may only write them).
"""

from __future__ import annotations

import logging
import time

from .errors import StoreError
from .stores import Store

PREFIX = "responses"
#: Signed-in callers' spilled answers: private, read through short-lived signed URLs only.
PRIVATE_PREFIX = f"private/{PREFIX}"
#: The query parameter that names a spilled answer's Content-Disposition, as S3 spells it.
DISPOSITION = "response-content-disposition"
#: Seconds a spilled answer is redirected to before it is written again, by default: one day.
MAX_AGE = 86400.0
#: Bytes a local store's spilled answers may hold together, by default: 1 GiB.
MAX_BYTES = 2**30
#: Seconds a spilled answer is safe from the size bound: its 307 was just given, and the client's
#: follow may still come (evicted at once, the redirect was a 404).
YOUNG = 60.0
#: What the deployed bucket's lifecycle rule keeps a spilled answer (days): twice MAX_AGE.
EXPIRY_DAYS = 2


def key_for(etag: str, ext: str) -> str:
    return f"{PREFIX}/{etag.strip(chr(34))}{ext}"


def fresh(store: Store, key: str, max_age: float = MAX_AGE) -> bool:
    """Whether ``key`` is there and younger than ``max_age`` seconds, so it may be redirected to
    (it may have been deleted since it was written: by gc, by the lifecycle rule, by hand)."""
    found = store.stat(key)
    return found is not None and time.time() - found[1] < max_age


def collect(store: Store, older_than: float | None = None, over_bytes: int | None = None, keep: frozenset[str] = frozenset(),
            young: float = 0.0) -> list[str]:
    """Delete spilled answers older than ``older_than`` seconds, then the oldest while they hold
    more than ``over_bytes`` together, but none younger than ``young`` seconds (a 307 just handed
    out for it may not have been followed yet: the folder may pass its bound that long); never
    those in ``keep`` (just written). Returns the keys deleted."""
    objects = sorted([*store.objects(PREFIX), *store.objects(PRIVATE_PREFIX)], key=lambda o: o[2])  # oldest first
    now, total = time.time(), sum(size for _, size, _ in objects)
    deleted = []
    for key, size, modified in objects:
        old = older_than is not None and now - modified > older_than
        crowded = over_bytes is not None and total > over_bytes and now - modified >= young
        if key in keep or not (old or crowded):
            continue
        if not old and key.rpartition("/")[2].startswith(".tmp-"):
            continue  # being written (atomic write's temporary file)
        store.delete_prefix(key)
        deleted.append(key)
        total -= size
    return deleted


def write(store: Store, key: str, body: bytes, max_age: float = MAX_AGE, max_bytes: int = MAX_BYTES) -> None:
    """Write one spilled answer (atomically: a reader sees all of it or none) and, on a local
    store, delete those older than ``max_age`` seconds and keep the folder within ``max_bytes``."""
    store.write_bytes(key, body, atomic=True)
    if store.is_local:
        try:
            collect(store, older_than=max_age, over_bytes=max_bytes, keep=frozenset({key}), young=YOUNG)
        except (OSError, StoreError) as exc:  # the answer is written: its 307 stands, the folder is cleaned next time
            logging.getLogger(__name__).warning("could not delete old spilled answers in %s: %s", store.url, exc)
