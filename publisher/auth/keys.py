"""API keys as Tiled's client sends them (``Authorization: Apikey <key>``, ``?api_key=``,
``TILED_API_KEY``): made and revoked by ``publish keys``, checked by :class:`KeyRing` at the
handler edge. Standard library only: every handler imports it at cold start.

A key reads ``ssk_<id>_<secret>``: the id finds its record and names the key in logs, the secret
(``secrets.token_hex(32)``, 256 random bits) is shown once and never stored. Hex, not
``token_urlsafe``: Tiled's client takes ``Authorization: Apikey <word characters>`` as its key, so a key with a
``-`` in it leaves the client believing it has none ("This server requires API key authentication"). Each key is one
record (:mod:`publisher.auth.key_records`: a JSON object in the store's private area, or an item
of the deployment's DynamoDB table) holding a salted SHA-256 of the secret, the tags, the scopes,
created, expires, revoked and a note. One record per key, not one document for all: the handler
reads exactly the record of the key it is shown (one small read, whatever the number of keys), and
two ``create`` runs never overwrite each other's keys (only ``revoke`` rewrites, one record).

Scopes are Tiled's: ``read:metadata`` (metadata, search, distinct) and ``read:data`` (every route
that returns data, the Zarr route, scoped credentials); a key has both unless made with fewer.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..errors import BadRequest, NotFound, StoreError, Unauthorized
from .key_records import KEYS_PREFIX, KeyRecords, record_key, records_of
from .principal import READ_SCOPES, TAG, TAG_RULE, Principal

if TYPE_CHECKING:
    from ..stores import Store

PREFIX = "ssk"
_KEY = re.compile(r"ssk_([0-9a-f]{12})_([0-9a-f]{64})")
_ID = re.compile(r"[0-9a-f]{12}")


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _digest(salt: bytes, secret: str) -> bytes:
    # SHA-256 with a per-key salt, not scrypt: the secret is 256 random bits, not a password, so
    # no guessing is feasible however fast the hash; a slow KDF would only add ~50 ms to every
    # cold verification (each Lambda container's first request with a key) and hand anyone who
    # knows a key id (they are in logs) a cheap way to burn our CPU with wrong secrets. The salt
    # keeps equal secrets (there are none) and stolen records from matching across stores.
    return hashlib.sha256(salt + secret.encode()).digest()


# -- managing keys (publish keys) --------------------------------------------------------------
def create_key(target: Store | KeyRecords, tags: list[str], expires: datetime | None = None, note: str = "",
               now: datetime | None = None, scopes: list[str] | None = None) -> tuple[str, dict[str, Any]]:
    """(the key, shown once; its stored record). ``expires`` may be past (tests); the CLI refuses that.
    ``scopes`` default to every read scope."""
    import secrets  # only here: the handlers, which never make keys, skip its ~2 ms import

    records = records_of(target)
    tags = sorted({t.strip() for t in tags if t.strip()})
    if not tags:
        raise BadRequest("an API key needs at least one tag")
    bad = [t for t in tags if not TAG.fullmatch(t)]
    if bad:
        raise BadRequest(f"tag {bad[0]!r}: {TAG_RULE}")
    chosen = sorted(READ_SCOPES) if scopes is None else sorted({s.strip() for s in scopes if s.strip()})
    unknown = [s for s in chosen if s not in READ_SCOPES]
    if unknown:
        raise BadRequest(f"scope {unknown[0]!r} is not one of {', '.join(sorted(READ_SCOPES))} (a published catalog is read-only)")
    if not chosen:
        raise BadRequest(f"an API key needs at least one scope: {', '.join(sorted(READ_SCOPES))}")
    secret = secrets.token_hex(32)
    salt = secrets.token_bytes(16)
    while True:
        record = {"id": secrets.token_hex(6), "salt": salt.hex(), "sha256": _digest(salt, secret).hex(), "tags": tags,
                  "scopes": chosen, "created": _iso(now or datetime.now(timezone.utc)),
                  "expires": _iso(expires) if expires else None, "revoked": None, "note": note}
        if records.add(record):  # a taken id (one in 2**48) is drawn again
            return f"{PREFIX}_{record['id']}_{secret}", record


def list_keys(target: Store | KeyRecords) -> list[dict[str, Any]]:
    """Every key's record without its salt and hash, oldest first."""
    found = [{k: v for k, v in r.items() if k not in ("salt", "sha256")} for r in records_of(target).all()]
    for record in found:
        record.setdefault("scopes", sorted(READ_SCOPES))
    return sorted(found, key=lambda r: (r["created"], r["id"]))


def revoke_key(target: Store | KeyRecords, key_id: str, now: datetime | None = None) -> dict[str, Any]:
    """Mark a key revoked (kept, so ``list`` still shows it); revoking twice keeps the first time."""
    records = records_of(target)
    if not _ID.fullmatch(key_id):
        raise NotFound(f"no API key {key_id!r} (an id is 12 hex digits, as `publish keys list` shows)")
    record = records.get(key_id)
    if record is None:
        raise NotFound(f"no API key {key_id!r} in {records.where}")
    if not record.get("revoked"):
        record["revoked"] = _iso(now or datetime.now(timezone.utc))
        records.put(record)
    return record


# -- checking keys (the handler edge) ----------------------------------------------------------
@dataclass(frozen=True)
class _Record:
    key_id: str
    salt: bytes
    digest: bytes
    tags: frozenset[str]
    expires: float | None  # epoch seconds
    revoked: bool
    scopes: frozenset[str]

    @classmethod
    def parse(cls, raw: dict[str, Any], where: str) -> _Record:
        try:
            expires = raw.get("expires")
            scopes = raw.get("scopes")  # records made before scopes had both
            return cls(raw["id"], bytes.fromhex(raw["salt"]), bytes.fromhex(raw["sha256"]), frozenset(raw["tags"]),
                       datetime.fromisoformat(expires).timestamp() if expires else None, bool(raw.get("revoked")),
                       READ_SCOPES if scopes is None else frozenset(scopes) & READ_SCOPES)
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(f"API key record {where!r} is damaged: {exc!r}") from None


class KeyRing:
    """Presented keys → principals, read from the store's key records and cached per process.

    A record is re-read at most every ``ttl`` seconds, so a revocation takes effect within
    ``ttl`` (default 30 s); a key that verified stays verified (a dict lookup, ~µs) until its
    record's ``ttl`` runs out, its expiry still checked on each call. An id with no record is
    remembered as unknown for ``ttl`` too (at most ``max_unknown`` of them), and at most
    ``max_misses`` never-seen ids are looked up per ``ttl`` window: past that, ids this process
    has never found are refused unread until the window ends, so a flood of invented ids costs
    a bounded number of reads (a key created meanwhile works once the flood stops, within ``ttl``).
    Thread-safe (``publish serve`` answers on threads).
    """

    def __init__(self, target: Store | KeyRecords, ttl: float = 30.0, max_unknown: int = 4096, max_misses: int = 100,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.records = records_of(target)
        self.clock = clock  # the caches' time (tests pass their own); expiry is wall-clock time
        self.ttl = ttl
        self.max_unknown = max_unknown
        self.max_misses = max_misses
        self._lock = threading.Lock()
        self._records: dict[str, tuple[float, _Record]] = {}  # id → (read at, record)
        self._unknown: dict[str, float] = {}  # id → found missing at
        self._verified: dict[bytes, tuple[float, _Record]] = {}  # sha256(key) → (its record's read at, record)
        self._window = (float("-inf"), 0)  # (start, misses looked up in it)

    def principal(self, presented: str) -> Principal:
        """The key's principal, or :class:`Unauthorized` saying why (never echoing the secret)."""
        now = self.clock()
        fingerprint = hashlib.sha256(presented.encode("utf-8", "surrogatepass")).digest()
        with self._lock:
            hit = self._verified.get(fingerprint)
        if hit is not None and now - hit[0] < self.ttl:
            return self._grant(hit[1])
        match = _KEY.fullmatch(presented)
        if match is None:
            raise Unauthorized("malformed API key")
        key_id, secret = match.groups()
        read_at, record = self._record(key_id, now)
        if not hmac.compare_digest(_digest(record.salt, secret), record.digest):
            raise Unauthorized("unknown API key")  # a wrong secret does not confirm that the id exists
        principal = self._grant(record)
        with self._lock:
            self._verified[fingerprint] = (read_at, record)
        return principal

    def _grant(self, record: _Record) -> Principal:
        if record.revoked:
            raise Unauthorized(f"API key {record.key_id} was revoked")
        if record.expires is not None and time.time() >= record.expires:
            raise Unauthorized(f"API key {record.key_id} has expired")
        return Principal("apikey", record.key_id, record.tags, record.scopes)

    def _record(self, key_id: str, now: float) -> tuple[float, _Record]:
        with self._lock:
            cached = self._records.get(key_id)
            if cached is not None and now - cached[0] < self.ttl:
                return cached
            missing_at = self._unknown.get(key_id)
            if missing_at is not None and now - missing_at < self.ttl:
                raise Unauthorized("unknown API key")
            if cached is None:  # never found here: a lookup counts against the window's budget
                start, misses = self._window if now - self._window[0] < self.ttl else (now, 0)
                if misses >= self.max_misses:
                    raise Unauthorized("unknown API key")
                self._window = (start, misses + 1)
        raw = self.records.get(key_id)
        if raw is None:
            with self._lock:
                self._records.pop(key_id, None)
                self._unknown.pop(key_id, None)
                while len(self._unknown) >= self.max_unknown:  # the oldest go first
                    del self._unknown[next(iter(self._unknown))]
                self._unknown[key_id] = now
            raise Unauthorized("unknown API key")
        record = _Record.parse(raw, f"{self.records.where}/{key_id}")
        with self._lock:
            self._records[key_id] = (now, record)
        return now, record


# -- reading credentials off a request ----------------------------------------------------------
_SCHEME_HELP = ("Authorization header must include the authorization type followed by a space and then the secret, "
                "as in 'Bearer SECRET' or 'Apikey SECRET'.")


def credentials_from(headers: Mapping[str, str], query: Mapping[str, list[str]]) -> tuple[str, str] | None:
    """``("apikey", key)``, ``("bearer", token)`` or None (anonymous), as Tiled 0.2.20's server
    reads a request: ``?api_key=`` (its last value, unless empty) wins over the header; the
    header's scheme is case-insensitive; an empty header, or a scheme with nothing after it,
    is no credential; any scheme but Apikey and Bearer is a 400 (Tiled's message)."""
    header = next((v for k, v in headers.items() if k.lower() == "authorization"), None) or ""
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme and scheme.lower() not in ("apikey", "bearer"):
        raise BadRequest(_SCHEME_HELP)
    given = query.get("api_key") or [""]
    if given[-1]:
        return "apikey", given[-1]
    if not value:
        return None
    return scheme.lower(), value


__all__ = ["KEYS_PREFIX", "KeyRecords", "KeyRing", "create_key", "credentials_from", "list_keys", "record_key", "revoke_key"]
