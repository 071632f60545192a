"""How big an answer may get while it is built: estimate first, refuse with advice.

A whole answer is built in memory (a Lambda has no disk to stream to, and bodies past ~4 MiB
are written to the store and redirected to, see ``handlers.http.respond``). Converting costs
more than the data: a 100 MB array as JSON took 2.3 GB. So every whole-answer route estimates
the memory the answer needs from the structure and the format, before reading anything, and
refuses past the server's limit (``limit``: the handlers pass ``SKYSHELF_MAX_ANSWER_BYTES``, read
once into their settings) with a 4xx whose detail says how to ask for less.

Standard library only: the lean handlers import it at cold start.
"""

from __future__ import annotations

from .errors import BadRequest

#: Default bound on the memory one answer may take to build: about a third of the 1,769 MB the
#: arrays and tables functions get (``publisher/deploy/template.py``), leaving room for the
#: runtime, the decoded-data cache (64 MiB) and a second request on a warm function.
MAX_ANSWER_BYTES = 512 * 2**20

#: Working memory per byte of decoded data, by media type: the decoded values, the Python
#: objects a text format goes through, and the body. Measured on a 200,000-row table of a float,
#: an integer and a short string column (tracemalloc peak over decoded Arrow bytes): Arrow 1.0,
#: Parquet 0.7, CSV 2.7, JSON 18.7, JSON-seq 18.7; plus the decoded data itself, rounded up.
FACTORS: dict[str, float] = {
    "application/vnd.apache.arrow.file": 2.0,
    "application/x-parquet": 2.0,
    "application/octet-stream": 2.0,
    "application/x-npy": 2.0,
    "application/x-hdf5": 2.0,
    "image/tiff": 2.0,
    "text/csv": 4.0,
    "application/json": 20.0,
    "application/json-seq": 20.0,
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": 25.0,
}
#: For a media type not listed: as costly as JSON.
DEFAULT_FACTOR = 20.0
#: Arrays in text and image formats cost per value more than per byte (a uint8 takes as many
#: Python objects as a float64): working bytes per value, measured on 1024 x 1024 arrays of u1,
#: u2, f4, f8 and i8 (tracemalloc peak, the largest rounded up): JSON 90 (float32, written as
#: text), CSV 39, PNG 22 (a float64 copy and the block means), HTML as JSON (only its shown
#: corner is counted).
PER_VALUE: dict[str, float] = {"application/json": 96.0, "text/csv": 40.0, "image/png": 24.0, "text/html": 96.0}


def array_factor(media_type: str, itemsize: int) -> float:
    """Working memory per byte of an array with ``itemsize``-byte values (plus the values themselves)."""
    per_value = PER_VALUE.get(media_type)
    if per_value is None:
        return FACTORS.get(media_type, DEFAULT_FACTOR)
    return 1.0 + per_value / max(itemsize, 1)


class AnswerTooLarge(BadRequest):
    """The answer asked for would take more memory to build than this server allows."""

    http_status = 400


def cost(data_bytes: int, media_type: str, factor: float | None = None) -> int:
    """Estimated memory to build an answer of ``data_bytes`` of decoded data in ``media_type``
    (``factor`` overrides the table's working memory per data byte)."""
    return int(data_bytes * (factor if factor is not None else FACTORS.get(media_type, DEFAULT_FACTOR)))


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # unreachable


def check(data_bytes: int, media_type: str, what: str, advice: str, limit: int = MAX_ANSWER_BYTES,
          factor: float | None = None) -> int:
    """Refuse (:class:`AnswerTooLarge`) when building ``what`` as ``media_type`` from
    ``data_bytes`` of decoded data would pass ``limit``; ``advice`` says how to ask for less
    (a slice, blocks, partitions, columns, a binary format). Returns the estimate."""
    estimate = cost(data_bytes, media_type, factor)
    if estimate > limit:
        raise AnswerTooLarge(
            f"{what} as {media_type} would take about {human(estimate)} to build ({human(data_bytes)} of data), "
            f"past this server's limit of {human(limit)} (SKYSHELF_MAX_ANSWER_BYTES); {advice}"
        )
    return estimate


__all__ = ["FACTORS", "MAX_ANSWER_BYTES", "PER_VALUE", "AnswerTooLarge", "array_factor", "check", "cost", "human"]
