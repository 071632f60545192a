"""The Zarr layout Skyshelf writes and its handlers read: chunk keys, codecs, data types.

One module for both sides, so the writer (publisher/writers/zarr_array.py) and the handlers'
reader (publisher/access/arrays.py) cannot drift apart. Light on purpose: handlers import it
at cold start, so numcodecs is imported on first use and zarr never.

Codecs travel in zarr's envelope, ``{"name": ..., "configuration": {...}}`` (what a v3
``zarr.json`` lists); :data:`CODECS` maps each name to the numcodecs codec that encodes and
decodes its bytes (the same bytes in v2 and v3). Third-party codecs register through the
``skyshelf.codecs`` entry point group: a callable from the configuration to a numcodecs codec.
:func:`codec_spec` maps a pipeline's codec setting to the entry the writer puts in ``zarr.json``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .errors import UnsupportedError
from .registry import NotRegistered, Registry

#: v3 codec name → numcodecs codec for a configuration.
CODECS: Registry[Callable[[dict[str, Any]], Any]] = Registry("skyshelf.codecs", "codec")
_SHUFFLE = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}


@CODECS.register("zstd")
def _zstd(config: dict[str, Any]) -> Any:
    import numcodecs

    return numcodecs.Zstd(level=config.get("level", 0), checksum=config.get("checksum", False))


@CODECS.register("gzip")
def _gzip(config: dict[str, Any]) -> Any:
    import numcodecs

    return numcodecs.GZip(level=config.get("level", 5))


@CODECS.register("blosc")
def _blosc(config: dict[str, Any]) -> Any:
    import numcodecs

    return numcodecs.Blosc(cname=config["cname"], clevel=config["clevel"], shuffle=_SHUFFLE[config.get("shuffle", "noshuffle")],
                           blocksize=config.get("blocksize", 0))


def numcodecs_codec(spec: dict[str, Any]) -> Any:
    """The numcodecs codec for a ``{"name", "configuration"}`` codec: it writes and reads the chunk bytes."""
    try:
        make = CODECS.get(spec["name"])
    except NotRegistered:
        raise UnsupportedError(f"Zarr codec {spec['name']!r} is not served") from None
    return make(spec.get("configuration", {}))


#: pipeline.yml's names of the built-in codecs (``gzip:6``); ``blosc-*`` and ``lz4`` are v3 ``blosc``.
SETTING_NAMES = ("zstd", "gzip", "blosc-lz4", "blosc-zstd", "lz4", "none")
_BLOSC_CNAME = {"blosc": "lz4", "blosc-lz4": "lz4", "lz4": "lz4", "blosc-zstd": "zstd"}


def codec_names() -> list[str]:
    """Every codec name a pipeline may give: the settings' names and every registered codec,
    plug-ins included (this scans the ``skyshelf.codecs`` entry points)."""
    return sorted(set(SETTING_NAMES) | set(CODECS.items()))


#: The levels each built-in takes: zstd from ZSTD_minCLevel() (-131072, the fastest) to
#: ZSTD_maxCLevel() (22); gzip (zlib) 0-9; Blosc's clevel 0-9. (Out of range, zstd clamps and
#: Blosc refuses at the first chunk: a setting that does not do what it says.)
_LEVELS = {"zstd": (-131072, 22), "gzip": (0, 9), **{name: (0, 9) for name in _BLOSC_CNAME}}


def codec_spec(name: str, level: int | None = None, configuration: dict[str, Any] | None = None,
               itemsize: int = 1) -> dict[str, Any] | None:
    """The v3 ``codecs`` entry a codec setting writes (None for ``none``): the built-ins exactly as
    zarr's codec classes write them, ``configuration`` over their defaults; a registered codec
    (a plug-in) with the configuration its numcodecs codec reports, so the entry records every
    setting. A setting the codec does not take is a ``ValueError``."""
    given = dict(configuration or {})
    if level is not None and {"level", "clevel"} & set(given):
        raise ValueError(f"codec {name!r}: give the level once, as `level` or in `configuration`")
    bounds = _LEVELS.get(name)
    chosen = level if level is not None else given.get("level", given.get("clevel"))
    if bounds is not None and chosen is not None and not (isinstance(chosen, int) and bounds[0] <= chosen <= bounds[1]):
        raise ValueError(f"codec {name!r} takes a level from {bounds[0]} to {bounds[1]}; got {chosen!r}")
    if name == "none":
        base: dict[str, Any] | None = None
    elif name == "zstd":
        base = {"level": 3 if level is None else level, "checksum": False}
    elif name == "gzip":
        base = {"level": 6 if level is None else level}
    elif name in _BLOSC_CNAME:
        name, base = "blosc", {"typesize": max(itemsize, 1), "cname": _BLOSC_CNAME[name], "clevel": 5 if level is None else level,
                               "shuffle": "shuffle" if itemsize > 1 else "noshuffle", "blocksize": 0}
    else:
        make = CODECS.get(name)
        try:
            codec = make({**({"level": level} if level is not None else {}), **given})
        except Exception as exc:
            raise ValueError(f"codec {name!r} refused its configuration {given}: {exc}") from exc
        config = codec.get_config() if hasattr(codec, "get_config") else given
        return {"name": name, "configuration": {k: v for k, v in config.items() if k != "id"}}
    unknown = sorted(set(given) - set(base or {}))
    if unknown:
        takes = ", ".join(sorted(base)) if base else "nothing"
        raise ValueError(f"codec {name!r} has no setting {', '.join(map(repr, unknown))}; it takes {takes}")
    return {"name": name, "configuration": {**base, **given}} if base is not None else None


def chunk_key(index: tuple[int, ...], zarr_format: int, separator: str | None = None) -> str:
    """A chunk's key below its array: ``c/1/2`` (v3, default encoding) or ``1.2`` (v2)."""
    if zarr_format == 3:
        sep = separator or "/"
        return "c" + sep + sep.join(map(str, index)) if index else "c"
    return (separator or ".").join(map(str, index)) if index else "0"


_V3_NUMERIC = {
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "complex64", "complex128",
}


def dtype_from_v3(data_type: Any) -> np.dtype:
    """The numpy dtype of a v3 ``data_type`` (the subset Skyshelf writes), little-endian."""
    if isinstance(data_type, str):
        if data_type in _V3_NUMERIC:
            return np.dtype(data_type).newbyteorder("<") if np.dtype(data_type).itemsize > 1 else np.dtype(data_type)
        if data_type == "string":
            return np.dtype(object)
    else:
        name, config = data_type.get("name"), data_type.get("configuration", {})
        if name == "null_terminated_bytes":
            return np.dtype(f"S{config['length_bytes']}")
        if name == "fixed_length_utf32":
            return np.dtype(f"<U{config['length_bytes'] // 4}")
        if name in ("numpy.datetime64", "numpy.timedelta64"):
            return np.dtype(f"<{'M' if 'datetime' in name else 'm'}8[{config['scale_factor']}{config['unit']}]".replace("[1", "["))
        if name == "structured":
            return np.dtype([(f[0], dtype_from_v3(f[1])) for f in config["fields"]])
        if name == "raw_bytes":
            return np.dtype(f"V{config['length_bytes']}")
    raise UnsupportedError(f"Zarr data type {data_type!r} is not served")


__all__ = ["CODECS", "SETTING_NAMES", "chunk_key", "codec_names", "codec_spec", "dtype_from_v3", "numcodecs_codec"]
