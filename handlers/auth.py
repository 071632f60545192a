"""Who is asking, decided once per request at the edge: the credentials Tiled's client sends
(``Authorization: Apikey``/``Bearer``, ``?api_key=``) resolved to a :class:`Principal`, whose
view of the catalog every route then reads (:class:`publisher.auth.view.View`).

One check in the handler rather than an API Gateway Lambda authorizer: an authorizer answers
401 before our code runs when its identity source is absent (no anonymous reads of public
nodes), cannot take the header *or* the query parameter, and decides per caller, not per node,
so the handler would check again anyway (docs/auth.md). Token verification (PyJWT and
cryptography, ~130 ms to import) is loaded by the first Bearer token only.
"""

from __future__ import annotations

import contextvars
import threading
from typing import TYPE_CHECKING, Any

from publisher.auth.key_records import DynamoKeyRecords
from publisher.auth.keys import KeyRing, credentials_from
from publisher.auth.principal import ANONYMOUS, Principal, granted
from publisher.errors import Unauthorized
from publisher.functions import event_path, scope_for

from . import settings

if TYPE_CHECKING:
    from publisher.auth.tokens import TokenVerifier
    from publisher.catalog import Catalog
    from publisher.stores import Store

#: The caller of the request being answered (reset by the entry point for each request).
CURRENT: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("skyshelf_principal", default=None)
#: Whether the request's catalog hides anything from anyone (then even anonymous answers vary by Authorization).
RESTRICTED: contextvars.ContextVar[bool] = contextvars.ContextVar("skyshelf_restricted", default=False)
#: What a 401 says it wants: the schemes the tiled client sends.
CHALLENGE = 'Apikey realm="skyshelf", Bearer realm="skyshelf"'

_lock = threading.Lock()
_rings: dict[str, KeyRing] = {}
_verifiers: dict[tuple[Any, ...], TokenVerifier] = {}


def principal(event: dict[str, Any], catalog: Catalog, store: Store) -> Principal:
    """The request's caller: anonymous without credentials; bad credentials are a 401."""
    found = CURRENT.get()
    if found is not None:
        return found
    from urllib.parse import parse_qs

    credentials = credentials_from(event.get("headers") or {}, parse_qs(event.get("rawQueryString", ""), keep_blank_values=True))
    if credentials is None:
        found = ANONYMOUS
    elif credentials[0] == "apikey":
        found = _ring(store).principal(credentials[1])
    else:
        found = _token_principal(catalog, credentials[1])
    _require_scope(event, found)
    CURRENT.set(found)
    return found


def _require_scope(event: dict[str, Any], caller: Principal) -> None:
    """Tiled's scope check, per route (publisher/functions.py): its 401 and message. Decided by the
    route alone, before any node is looked at, so it tells nothing about the node asked for."""
    method = ((event.get("requestContext") or {}).get("http") or {}).get("method", "GET")
    needed = scope_for(method, event_path(event))
    if needed is not None and needed not in caller.scopes:
        raise Unauthorized(f"Not enough permissions. Requires scopes {[needed]}. Request had scopes {sorted(caller.scopes)}")


def _ring(store: Store) -> KeyRing:
    """The key records' reader: the deployment's DynamoDB table when the deploy names one, else
    the store's private area."""
    table = settings.current().keys_table
    where = f"dynamodb:{table}" if table else store.url
    with _lock:
        ring = _rings.get(where)
        if ring is None:
            ring = _rings[where] = KeyRing(DynamoKeyRecords(table) if table else store)
        return ring


def _token_principal(catalog: Catalog, token: str) -> Principal:
    """A Bearer token of the catalog's identity provider, its groups (and subject) mapped to tags."""
    access = catalog.info.access or {}
    oidc = access.get("oidc")
    if not oidc:
        raise Unauthorized("this catalog accepts no tokens (no identity provider is configured): use an API key")
    claims = _verifier(oidc).verify(token)
    return Principal("token", claims.subject, granted(claims.groups, claims.subject, access.get("groups") or {}, access.get("subjects") or {}))


def _verifier(oidc: dict[str, Any]) -> TokenVerifier:
    key = (oidc["issuer"], oidc["audience"], oidc.get("jwks_uri"), tuple(oidc.get("algorithms") or ()), oidc.get("groups_claim"))
    with _lock:
        verifier = _verifiers.get(key)
    if verifier is None:
        from publisher.auth.tokens import TokenVerifier

        verifier = TokenVerifier(oidc["issuer"], oidc["audience"], jwks_uri=oidc.get("jwks_uri"),
                                 algorithms=oidc.get("algorithms") or ("RS256",), groups_claim=oidc.get("groups_claim") or "groups")
        with _lock:
            verifier = _verifiers.setdefault(key, verifier)
    return verifier


def authentication(catalog: Catalog, base: str) -> dict[str, Any]:
    """The about document's ``authentication``, as Tiled advertises it: required when anonymous
    callers can read nothing; the identity provider's device-code endpoints for a proxied login."""
    from publisher.auth.view import View

    view = View(catalog)
    required = view.restricted and view.count(catalog.entry("")) == 0
    oidc = (catalog.info.access or {}).get("oidc")
    if not oidc:
        return {"required": required, "providers": [], "links": None}
    endpoints = _discovery(oidc["issuer"])
    if endpoints is None:  # the provider is out of reach: API keys still work; its login is advertised once it answers
        return {"required": required, "providers": [], "links": None}
    links = {"auth_endpoint": endpoints["device_authorization_endpoint"], "client_id": oidc["client_id"],
             "token_endpoint": endpoints["token_endpoint"], "authorize_endpoint": endpoints.get("authorization_endpoint"),
             "browser_client_id": oidc.get("browser_client_id")}  # the browse page's code + PKCE client
    # Tiled's client validates every link as a string (None fails its About model, so it could not
    # connect at all): "" where there is nothing (no key minting here, so its create_api_key says so;
    # a provider without end_session_endpoint, as Cognito's discovery document, logs out locally).
    return {
        "required": required,
        "providers": [{"provider": "oidc", "mode": "external", "links": {k: v for k, v in links.items() if v},
                       "confirmation_message": "You have logged in with {id}.", "extra_scopes": []}],
        "links": {"whoami": f"{base}/auth/whoami", "apikey": "", "refresh_session": endpoints["token_endpoint"],
                  "revoke_session": "", "logout": endpoints.get("end_session_endpoint") or ""},
    }


_discovered: dict[str, dict[str, Any]] = {}
_failed: dict[str, float] = {}
#: Seconds a provider whose discovery document could not be read is left alone (not asked per request).
RETRY_DISCOVERY = 30.0


def _discovery(issuer: str) -> dict[str, Any] | None:
    """The provider's discovery document, read once per process; None (logged, tried again after
    ``RETRY_DISCOVERY`` s) while it cannot be read or names no device-code endpoints: the about
    document then advertises no login rather than failing, which would lock out API keys too."""
    found = _discovered.get(issuer)
    if found is None:
        import time

        from publisher.auth.tokens import fetch_json

        if time.monotonic() - _failed.get(issuer, float("-inf")) < RETRY_DISCOVERY:
            return None
        url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            found = fetch_json(url)
            problem = None if isinstance(found, dict) and {"token_endpoint", "device_authorization_endpoint"} <= found.keys() else \
                "it names no token and device authorization endpoints (the tiled client logs in with the device-code flow)"
        except Exception as exc:  # urllib's errors, a bad document
            problem = f"it cannot be read ({type(exc).__name__})"
        if problem is not None:
            import logging
            import os

            # the Powertools logger's own (handlers.common's, which imports this module)
            logging.getLogger(os.environ.get("POWERTOOLS_SERVICE_NAME") or "skyshelf").error(f"the identity provider's discovery document {url}: {problem}; no login advertised for {RETRY_DISCOVERY:.0f} s")
            _failed[issuer] = time.monotonic()
            return None
        _discovered[issuer] = found
    return found


def with_csrf_cookie(answer: Any, sent: list[str] | None = None) -> Any:
    """The tiled client keeps a ``tiled_csrf`` cookie from the server and fails after a device-code
    login without one (it reads it to configure its auth). Nothing here checks it: a catalog takes
    no cookies as credentials, so there is nothing to forge across sites."""
    import secrets

    # ``sent``: the event's cookies (payload 2.0's list); one there is kept, as Tiled keeps it
    if any(c.strip().startswith("tiled_csrf=") for c in sent or []):
        return answer
    answer.headers["Set-Cookie"] = f"tiled_csrf={secrets.token_urlsafe(16)}; Path=/; SameSite=Lax; HttpOnly"
    # (an answer that sets a cookie is this caller's: a shared cache must not hand its cookie to everyone)
    answer.headers["Cache-Control"] = "private, no-store"
    return answer
