"""OIDC Bearer tokens: verify a JWT access token against the identity provider's published keys.

Why our own small verifier rather than PyJWT's ``PyJWKClient``: its kid-miss cooldown also starts
at the first fetch (a rotated key is refused for up to 30 s), and its optional key cache never
expires (a retired key stays trusted). Here the keys live in a ``kid → key`` dict that is
refreshed every ``refresh_after`` seconds, and a token signed by an unknown kid triggers at most
one refetch per ``min_refetch_seconds`` (so rotation works at once and a flood of forged kids
does not hammer the provider). The algorithm is checked against the key's type (RSA → RS*/PS*,
EC → ES*, OKP → EdDSA), never HS* or ``none``, never outside ``algorithms``. PyJWT does the
decoding and the issuer, exp, nbf and iat checks with that one key; the audience is ``aud``, or
``client_id`` when a token has no ``aud`` (Cognito's access tokens).

Verified tokens are cached by SHA-256 until they expire, so a warm request pays microseconds.
PyJWT and cryptography (~130 ms to import) and urllib are imported only when a token arrives.
Every failure raises :class:`~publisher.errors.Unauthorized` with a short reason that never
contains the token; nothing here logs (the caller does).
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from publisher.errors import Unauthorized

#: Which signature algorithms a key of each JWK type may verify (RFC 7518); HS* and none never.
ALGORITHMS_BY_KTY = {"RSA": {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"},
                     "EC": {"ES256", "ES384", "ES512"}, "OKP": {"EdDSA"}}
#: The one EC algorithm each curve goes with (RFC 7518 §3.4).
EC_CURVES = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
MAX_TOKEN_BYTES = 16 * 1024
MAX_DOCUMENT_BYTES = 1024 * 1024

Fetch = Callable[[str], Any]


def fetch_json(url: str, timeout: float = 5.0) -> Any:
    """GET a JSON document with the standard library (no extra import at cold start)."""
    import urllib.request

    if not url.startswith(("https://", "http://")):
        raise ValueError("only http(s) URLs are fetched")
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (scheme checked)
        return json.loads(response.read(MAX_DOCUMENT_BYTES))


def _header(token: str) -> dict[str, Any]:
    """The JOSE header, read only to pick the key; ``jwt.decode`` then checks the whole token.
    (PyJWT's ``get_unverified_header`` would validate every segment a second time: half the
    cost of an uncached verify.)"""
    head = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (ValueError, TypeError, RecursionError):  # binascii.Error, UnicodeDecodeError and JSONDecodeError are ValueErrors;
        # RecursionError: a header of ~2,000 "[" (2.7 KB, within every size limit) was a 500 on every route
        raise Unauthorized("malformed token") from None
    if not isinstance(header, dict) or token.count(".") != 2:
        raise Unauthorized("malformed token")
    return header


@dataclass(frozen=True)
class Claims:
    """Who a verified token speaks for: its subject, its groups and when it expires (epoch s)."""

    subject: str
    groups: tuple[str, ...]
    expires: float
    raw: Mapping[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class _Key:
    key: Any  # a cryptography public key
    algorithms: frozenset[str]
    jwk: str = ""  # the key set's entry (sorted JSON): what tells a key replaced under the same kid (or none)


class TokenVerifier:
    """Verifies access tokens of one issuer for one audience; one instance per warm process."""

    def __init__(self, issuer: str, audience: str, *, jwks_uri: str | None = None,
                 algorithms: Iterable[str] = ("RS256", "PS256", "ES256"), groups_claim: str = "groups",
                 leeway: float = 30, refresh_after: float = 300, min_refetch_seconds: float = 30,
                 fetch: Fetch | None = None, max_cached: int = 4096) -> None:
        self.issuer, self.audience, self.jwks_uri = issuer, audience, jwks_uri
        self.algorithms = frozenset(algorithms) & set().union(*ALGORITHMS_BY_KTY.values())
        self.groups_claim, self.leeway = groups_claim, leeway
        self.refresh_after, self.min_refetch_seconds = refresh_after, min_refetch_seconds
        self.fetch: Fetch = fetch or fetch_json
        self.max_cached = max_cached
        self._keys: dict[str | None, _Key] = {}
        self._next_refresh = 0.0  # monotonic time at which the keys are refetched
        self._last_kid_refetch = float("-inf")
        self._loaded = False
        self._lock = threading.Lock()
        self._verified: OrderedDict[bytes, tuple[Claims, str | None]] = OrderedDict()

    def verify(self, token: str) -> Claims:
        """The token's claims if it is valid now; otherwise :class:`Unauthorized` with the reason."""
        if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_BYTES:
            raise Unauthorized("malformed token")
        # while one thread refreshes, others keep using the keys they have (no stall on a slow
        # provider); only the very first load makes them wait
        if time.monotonic() >= self._next_refresh and self._lock.acquire(blocking=not self._loaded):
            try:
                self._refresh_if_due()
            finally:
                self._lock.release()
        digest = hashlib.sha256(token.encode()).digest()
        hit = self._verified.get(digest)
        if hit is not None and hit[0].expires > time.time():
            return hit[0]
        claims, kid = self._verify(token)
        with self._lock:
            self._verified[digest] = (claims, kid)
            while len(self._verified) > self.max_cached:
                self._verified.popitem(last=False)
        return claims

    def _verify(self, token: str) -> tuple[Claims, str | None]:
        import jwt

        header = _header(token)
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in self.algorithms:
            shown = f" {alg!r}" if isinstance(alg, str) and alg.isalnum() and len(alg) <= 16 else ""
            raise Unauthorized(f"token algorithm{shown} is not accepted")
        if kid is not None and not isinstance(kid, str):
            raise Unauthorized("malformed token")
        key = self._key(kid)
        if alg not in key.algorithms:
            raise Unauthorized(f"token algorithm {alg!r} is not accepted for its key")
        try:
            raw = jwt.decode(token, key.key, algorithms=[alg], issuer=self.issuer, leeway=self.leeway,
                             options={"require": ["exp", "iss", "sub"], "verify_aud": False})
        except jwt.PyJWTError as error:
            raise Unauthorized(self._reason(error)) from None
        # ``aud`` as RFC 9068 has it; without one, ``client_id`` (Cognito's access tokens carry no
        # ``aud``), as API Gateway's JWT authorizer does. Cognito's ID tokens say token_use "id".
        audience = raw["aud"] if "aud" in raw else raw.get("client_id")
        if not (audience == self.audience or (isinstance(audience, list) and self.audience in audience)):
            raise Unauthorized(f"token audience is not {self.audience!r}")
        if raw.get("token_use", "access") != "access":
            raise Unauthorized("token is not an access token")
        return self._claims(raw), kid

    def _claims(self, raw: dict[str, Any]) -> Claims:
        subject, groups = raw.get("sub"), raw.get(self.groups_claim, ())
        if isinstance(groups, str):
            groups = groups.split()  # some providers send a space-separated string
        if not isinstance(subject, str) or not subject:
            raise Unauthorized("token subject is not a string")
        if not isinstance(groups, list | tuple) or not all(isinstance(g, str) for g in groups):
            raise Unauthorized(f"token claim {self.groups_claim!r} is not a list of strings")
        return Claims(subject, tuple(groups), float(raw["exp"]), MappingProxyType(raw))

    def _reason(self, error: Exception) -> str:
        import jwt

        reasons: list[tuple[type[Exception], str]] = [
            (jwt.ExpiredSignatureError, "token expired"),
            (jwt.ImmatureSignatureError, "token is not valid yet"),
            (jwt.InvalidIssuerError, f"token issuer is not {self.issuer!r}"),
            (jwt.InvalidIssuedAtError, "token issued in the future"),
            (jwt.InvalidSignatureError, "token signature does not verify"),
            (jwt.InvalidAlgorithmError, "token algorithm is not accepted"),
            (jwt.DecodeError, "malformed token"),
        ]
        if isinstance(error, jwt.MissingRequiredClaimError):
            return f"token has no {error.claim!r} claim"
        return next((reason for kind, reason in reasons if isinstance(error, kind)), "invalid token")

    def _key(self, kid: str | None) -> _Key:
        """The key for ``kid``; an unknown kid refetches the key set (rotation), rate-limited."""
        key = self._keys.get(kid)
        if key is None:
            with self._lock:
                key = self._keys.get(kid)
                now = time.monotonic()
                if key is None and now - self._last_kid_refetch >= self.min_refetch_seconds:
                    self._last_kid_refetch = now
                    self._refresh()
                    key = self._keys.get(kid)
        if key is None:
            if not self._loaded:
                raise Unauthorized("the identity provider cannot be reached")
            raise Unauthorized("token signed by an unknown key")
        return key

    def _refresh_if_due(self) -> None:
        if time.monotonic() >= self._next_refresh:
            self._refresh()

    def _refresh(self) -> None:
        """Refetch the key set (lock held). If the provider fails, known keys stay in use and the
        next attempt waits ``min_refetch_seconds``, so a dead provider is not hammered either."""
        try:
            keys = self._fetch_keys()
        except Exception:  # noqa: BLE001 (any fetch or parse failure means "not now")
            self._last_kid_refetch = time.monotonic()
            self._next_refresh = self._last_kid_refetch + self.min_refetch_seconds
            return
        # gone, or another key under the same kid: a token without kid is cached under None, which
        # a single-key set still has after a rotation (the retired key's tokens stayed accepted)
        retired = {kid for kid, key in self._keys.items() if kid not in keys or keys[kid].jwk != key.jwk}
        self._keys, self._loaded = keys, True
        self._next_refresh = time.monotonic() + self.refresh_after
        if retired:  # tokens verified with a retired key stop verifying now
            self._verified = OrderedDict((d, v) for d, v in self._verified.items() if v[1] not in retired)

    def _fetch_keys(self) -> dict[str | None, _Key]:
        import jwt

        if self.jwks_uri is None:
            config = self.fetch(self.issuer.rstrip("/") + "/.well-known/openid-configuration")
            if config.get("issuer") != self.issuer:  # OIDC Discovery §4.3
                raise ValueError("the discovery document names another issuer")
            self.jwks_uri = str(config["jwks_uri"])
        keys: dict[str | None, _Key] = {}
        for jwk in self.fetch(self.jwks_uri)["keys"]:
            allowed = self._algorithms_for(jwk)
            if not allowed:
                continue
            try:
                keys[jwk.get("kid")] = _Key(jwt.PyJWK(jwk, next(iter(allowed))).key, allowed, json.dumps(jwk, sort_keys=True))
            except jwt.PyJWTError:
                continue  # a key we cannot use cannot verify anything: skip it
        if None not in keys and len(keys) == 1:
            keys[None] = next(iter(keys.values()))  # a single key may sign tokens without kid
        return keys

    def _algorithms_for(self, jwk: Any) -> frozenset[str]:
        """The algorithms this JWK may verify: none for symmetric, private or encryption keys."""
        if not isinstance(jwk, dict) or "d" in jwk or jwk.get("use", "sig") != "sig":
            return frozenset()
        allowed = ALGORITHMS_BY_KTY.get(jwk.get("kty"), set()) & self.algorithms
        if jwk.get("kty") == "EC":
            allowed &= {EC_CURVES.get(jwk.get("crv"))}
        if "alg" in jwk:
            allowed &= {jwk["alg"]}
        return frozenset(allowed)
