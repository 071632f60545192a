"""Which conversion errors are the file's own: a corrupt or truncated file fails again while it is
unchanged, so its failure is recorded and reported again without reading it (a broken file made
every build of a large tree convert it and publish a release). Anything else (the machine, the
store, the cluster, another file the item refers to, an error of unknown kind) is tried again by
the next build, as every failure used to be: being wrong that way costs a conversion, the other
way a good file left out until it changes."""

from __future__ import annotations

import errno
import struct
import zlib
from collections.abc import Iterator

from ..errors import ClusterLost, ConfigError, NoRoom, SourceError, StoreError

#: The kinds a corrupt file's reader raises (h5py's own: an OSError without an errno, below).
_OWN = (SourceError, ValueError, LookupError, EOFError, ArithmeticError, zlib.error, struct.error)

#: Errors of the machine or the moment (and ENOENT: a file the item refers to, not yet there).
_PASSING_ERRNOS = frozenset({
    errno.EIO, errno.ENOMEM, errno.EAGAIN, errno.EINTR, errno.ETIMEDOUT, errno.ESTALE, errno.ECONNRESET, errno.ECONNREFUSED,
    errno.ECONNABORTED, errno.ENETUNREACH, errno.ENETDOWN, errno.EHOSTUNREACH, errno.EHOSTDOWN, errno.ENOTCONN, errno.ENOLINK,
    errno.EPIPE, errno.EREMOTEIO, errno.ENOSPC, errno.EDQUOT, errno.EMFILE, errno.ENFILE, errno.EBUSY, errno.EACCES, errno.EPERM,
    errno.ENOENT,
})
_PASSING = (MemoryError, StoreError, NoRoom, ClusterLost, ConfigError, TimeoutError, ConnectionError, RuntimeError)  # (ConfigError: never a file's)
#: Libraries whose errors are the data's: imagecodecs' (a TIFF strip that does not decompress) are RuntimeErrors.
_OWN_MODULES = ("imagecodecs",)
#: Libraries whose errors are the cluster's or the network's (a Dask worker lost, a dropped connection).
_PASSING_MODULES = ("distributed", "dask", "tornado", "concurrent", "asyncio", "botocore", "aiohttp", "s3fs", "fsspec", "obstore")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The error and those it was raised from or while handling (readers wrap what they met)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]


def _library(exc: BaseException) -> str:
    """The top package of the error's type (``imagecodecs``, ``distributed``)."""
    return type(exc).__module__.split(".")[0]


def _passing(exc: BaseException) -> bool:
    if _library(exc) in _OWN_MODULES:
        return False
    if isinstance(exc, _PASSING) or _library(exc) in _PASSING_MODULES:
        return True
    if isinstance(exc, OSError):
        # HDF5 says a missing external file (raw storage, an external link) as it says corruption: by message
        return exc.errno in _PASSING_ERRNOS or "external" in str(exc).lower()
    return False


def lasting(exc: BaseException) -> bool:
    """Whether a conversion's error is the file's own (corrupt, truncated, a value no writer
    takes), so converting the unchanged file again fails again: one of the kinds readers raise
    for bad data (h5py: an OSError without an errno), with nothing passing in its chain."""
    chain = list(_chain(exc))
    if any(_passing(e) for e in chain):
        return False
    return isinstance(exc, _OWN) or (type(exc) is OSError and exc.errno is None) or _library(exc) in _OWN_MODULES
