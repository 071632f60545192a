"""CORS for browser tools on other origins (vizarr, neuroglancer, notebooks): one policy that
``publish serve`` applies to the API and ``/files/``, and the deploy template gives API Gateway
and the bucket (where those answer CORS themselves, so the handlers add nothing there).
"""

from __future__ import annotations

from dataclasses import dataclass

METHODS = ("GET", "HEAD", "OPTIONS", "POST")  # POST: awkward/buffers (the tiled client sends its form keys)
#: Request headers a cross-origin caller may send: byte ranges (zarr, pyarrow), content negotiation, revalidation.
ALLOW_HEADERS = ("Range", "Accept", "If-None-Match", "If-Modified-Since", "Content-Type", "Authorization")
#: Response headers a cross-origin caller may read.
EXPOSE_HEADERS = ("Content-Disposition", "Content-Range", "Content-Length", "Content-Encoding", "ETag", "Location", "Accept-Ranges",
                  "X-Skyshelf-Rescale", "X-Skyshelf-Level")
MAX_AGE = 3600


@dataclass(frozen=True)
class Cors:
    """Allowed origins: ``("*",)`` any (public catalogs), a list of ``scheme://host[:port]``, or none."""

    origins: tuple[str, ...] = ("*",)

    @classmethod
    def parse(cls, text: str | None) -> Cors:
        """From ``--cors-origin``: ``*``, comma-separated origins, or ``none`` / empty (no CORS)."""
        text = (text or "").strip()
        if text.lower() in ("", "none", "off"):
            return cls(())
        return cls(tuple(o.strip().rstrip("/") for o in text.split(",") if o.strip()))

    def _allowed(self, origin: str | None) -> str | None:
        if not origin or not self.origins:
            return None
        if "*" in self.origins:
            return "*"
        return origin if origin in self.origins else None

    def headers(self, origin: str | None) -> dict[str, str]:
        """Headers for an answer to a request from ``origin`` (none when it may not read it)."""
        allowed = self._allowed(origin)
        out = {"Vary": "Origin"} if self.origins and "*" not in self.origins else {}
        if allowed:
            out.update({"Access-Control-Allow-Origin": allowed, "Access-Control-Expose-Headers": ", ".join(EXPOSE_HEADERS)})
        return out

    def preflight(self, origin: str | None, methods: list[str] | None = None) -> tuple[int, dict[str, str], bytes]:
        """The answer to an ``OPTIONS`` request (a browser's preflight, or a plain one): the
        ``methods`` its path takes (every path's, unless given: ``POST /healthz`` was offered, then a 405)."""
        offered = ", ".join([*methods, "OPTIONS"] if methods is not None else METHODS)
        out = {"Allow": offered, **self.headers(origin)}
        out.pop("Access-Control-Expose-Headers", None)
        if "Access-Control-Allow-Origin" in out:
            out.update({"Access-Control-Allow-Methods": offered, "Access-Control-Allow-Headers": ", ".join(ALLOW_HEADERS),
                        "Access-Control-Max-Age": str(MAX_AGE)})
        return 204, out, b""
