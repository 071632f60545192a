"""OIDC Bearer tokens checked by :class:`publisher.auth.tokens.TokenVerifier` against a real
OpenID provider (oidc-provider from npm, run by tests/oidc_server.py): real tokens verify,
forged, expired, misdirected and malformed ones are refused with Unauthorized, key rotation
works with one rate-limited refetch, and an unreachable provider is a 401, not a 500."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from publisher.auth.tokens import TokenVerifier, fetch_json
from publisher.errors import Unauthorized
from tests.oidc_server import OIDCProvider, oidc_provider
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[1]
SECRET = b"s" * 32
ACCOUNTS = {"alice": ["grp-a"], "bob": ["grp-b", "grp-c"], "carol": []}


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OIDCProvider]:
    with oidc_provider(tmp_path_factory.mktemp("oidc"), ACCOUNTS) as running:
        yield running


@pytest.fixture()
def fresh_provider(tmp_path: Path) -> Iterator[OIDCProvider]:
    """A provider of the test's own, for tests that rotate its keys."""
    with oidc_provider(tmp_path, ACCOUNTS) as running:
        yield running


@pytest.fixture(scope="module")
def alice(provider: OIDCProvider) -> str:
    return provider.token("alice")


class CountingFetch:
    """``fetch_json`` that records each URL it fetched (how often the verifier asks the provider)."""

    def __init__(self) -> None:
        self.urls: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, url: str) -> Any:
        with self.lock:
            self.urls.append(url)
        return fetch_json(url)

    def jwks(self) -> int:
        return sum(url.endswith("/jwks") for url in self.urls)


def verifier(provider: OIDCProvider, **options: Any) -> TokenVerifier:
    return TokenVerifier(provider.issuer, provider.audience, **options)


def refused(check: TokenVerifier, token: str, reason: str) -> None:
    with pytest.raises(Unauthorized) as caught:
        check.verify(token)
    message = str(caught.value)
    assert caught.value.http_status == 401
    assert reason in message, message
    assert token not in message or not token


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return jwt.get_unverified_header(token), jwt.decode(token, options={"verify_signature": False})


# -- real tokens ---------------------------------------------------------------------------------

def test_real_token_verifies_with_subject_and_groups(provider: OIDCProvider, alice: str) -> None:
    fetch = CountingFetch()
    check = verifier(provider, fetch=fetch)
    claims = check.verify(alice)
    assert (claims.subject, claims.groups) == ("alice", ("grp-a",))
    assert claims.expires == parts(alice)[1]["exp"] and claims.raw["aud"] == provider.audience
    # the JWKS was found through discovery, once; a second verify answers from the cache
    assert fetch.urls == [f"{provider.issuer}/.well-known/openid-configuration", provider.jwks_uri]
    assert check.verify(alice) is claims and len(fetch.urls) == 2


def test_groups_of_other_accounts(provider: OIDCProvider) -> None:
    check = verifier(provider, jwks_uri=provider.jwks_uri)
    assert check.verify(provider.token("bob")).groups == ("grp-b", "grp-c")
    assert check.verify(provider.token("carol")).groups == ()


def test_device_login_as_a_polling_client_does_it(provider: OIDCProvider) -> None:
    """What tiled's client does: ask for a device code, open the browser, poll the token endpoint
    every ``interval`` s (the provider's answer must carry it: the client reads it), then use the
    access token."""
    import httpx

    grant = httpx.post(provider.device_authorization_endpoint,
                       data={"client_id": provider.client_id, "scope": "offline_access openid"}).json()
    assert float(grant["interval"]) > 0
    provider.browser("bob")(grant["verification_uri_complete"])
    for _ in range(30):
        time.sleep(float(grant["interval"]))
        answer = httpx.post(provider.token_endpoint, data={"grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                                                           "device_code": grant["device_code"], "client_id": provider.client_id})
        if answer.status_code != 400 or answer.json()["error"] != "authorization_pending":
            break
    assert provider.browser_errors == [] and answer.status_code == 200, answer.text
    assert verifier(provider).verify(answer.json()["access_token"]).groups == ("grp-b", "grp-c")


# -- forgeries and mistakes ----------------------------------------------------------------------

def test_signed_by_another_key(provider: OIDCProvider, alice: str) -> None:
    header, claims = parts(alice)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    check = verifier(provider)
    same_kid = jwt.encode(claims, other, algorithm="RS256", headers={"kid": header["kid"]})
    refused(check, same_kid, "token signature does not verify")
    new_kid = jwt.encode(claims, other, algorithm="RS256", headers={"kid": "forged-kid"})
    refused(check, new_kid, "token signed by an unknown key")
    assert check.verify(alice).subject == "alice"


def test_alg_none_and_alg_confusion(provider: OIDCProvider, alice: str) -> None:
    header, claims = parts(alice)
    check = verifier(provider)
    refused(check, unsigned({**header, "alg": "none"}, claims) + ".", "token algorithm 'none' is not accepted")
    # HS256 keyed with the provider's own public key: a verifier that let the token pick the
    # algorithm would check this HMAC with the RSA key's PEM and accept it
    jwk = next(k for k in fetch_json(provider.jwks_uri)["keys"] if k["kid"] == header["kid"])
    pem = jwt.PyJWK(jwk).key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = unsigned({**header, "alg": "HS256"}, claims)
    forged = signing_input + "." + b64(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest())
    refused(check, forged, "token algorithm 'HS256' is not accepted")
    # an allowed algorithm that does not fit the key type (ES256 named on an RSA key)
    refused(check, unsigned({**header, "alg": "ES256"}, claims) + ".c2ln", "not accepted for its key")


def test_wrong_audience_and_issuer(provider: OIDCProvider) -> None:
    tokens = provider.tokens("alice")
    # the provider's own ID token is real and signed, but meant for the client, not the API
    refused(verifier(provider), tokens["id_token"], f"token audience is not '{provider.audience}'")
    refused(TokenVerifier(provider.issuer, "https://other.test/api"), tokens["access_token"],
            "token audience is not 'https://other.test/api'")
    elsewhere = "https://login.example.org"
    refused(TokenVerifier(elsewhere, provider.audience, jwks_uri=provider.jwks_uri), tokens["access_token"],
            f"token issuer is not '{elsewhere}'")


def test_missing_claims_and_immature(provider: OIDCProvider, alice: str) -> None:
    """Tokens signed by a key the verifier trusts (served as the provider would) that lack ``exp``
    or are not valid yet."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key())), "kid": "k1", "use": "sig"}
    check = TokenVerifier(provider.issuer, provider.audience, jwks_uri="https://keys.test/jwks",
                          fetch=lambda url: {"keys": [jwk]})
    claims = parts(alice)[1]
    no_exp = {k: v for k, v in claims.items() if k != "exp"}
    refused(check, jwt.encode(no_exp, key, algorithm="RS256", headers={"kid": "k1"}), "token has no 'exp' claim")
    later = {**claims, "nbf": time.time() + 3600}
    refused(check, jwt.encode(later, key, algorithm="RS256", headers={"kid": "k1"}), "token is not valid yet")
    assert check.verify(jwt.encode(claims, key, algorithm="PS256", headers={"kid": "k1"})).subject == "alice"


def test_cognito_shaped_access_and_id_tokens(provider: OIDCProvider, alice: str) -> None:
    """Cognito's access tokens carry ``client_id`` and no ``aud`` (the verifier's audience is then
    the app client id, as API Gateway's JWT authorizer has it); its ID tokens say ``token_use: id``."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key())), "kid": "k1"}
    check = TokenVerifier(provider.issuer, "app-client", jwks_uri="https://keys.test/jwks", groups_claim="cognito:groups",
                          fetch=lambda url: {"keys": [jwk]})
    claims = {k: v for k, v in parts(alice)[1].items() if k not in {"aud", "groups"}}
    access = {**claims, "client_id": "app-client", "token_use": "access", "cognito:groups": ["grp-a"]}

    def sign(payload: dict[str, Any]) -> str:
        return jwt.encode(payload, key, algorithm="RS256", headers={"kid": "k1"})

    assert check.verify(sign(access)).groups == ("grp-a",)
    refused(check, sign({**access, "client_id": "another-client"}), "token audience is not 'app-client'")
    refused(check, sign({**access, "aud": "another-client"}), "token audience is not 'app-client'")
    refused(check, sign({**access, "aud": "app-client", "token_use": "id"}), "token is not an access token")
    assert check.verify(sign({**access, "aud": ["x", "app-client"]})).subject == "alice"


def test_ec_keys_verify_only_their_curve_algorithm(provider: OIDCProvider, alice: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key())), "kid": "ec1"}
    check = TokenVerifier(provider.issuer, provider.audience, jwks_uri="https://keys.test/jwks",
                          fetch=lambda url: {"keys": [jwk, {"kty": "oct", "k": b64(SECRET), "kid": "hs"}]})
    claims = parts(alice)[1]
    assert check.verify(jwt.encode(claims, key, algorithm="ES256", headers={"kid": "ec1"})).groups == ("grp-a",)
    refused(check, jwt.encode(claims, SECRET, algorithm="HS256", headers={"kid": "hs"}), "'HS256' is not accepted")


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "a.b", "...", "Bearer x.y.z", "x" * 20_000,
                                     "eyJhbGciOiJSUzI1NiJ9.e30.", "eyJhbGciOiJSUzI1NiIsImtpZCI6MX0.e30.c2ln",
                                     "bm90IGpzb24.e30.c2ln", "W10.e30.c2ln", "eyJhbGciOiJSUzI1NiJ9.e30.c2ln.eA.eA", "\u00e9.e30.c2ln",
                                     b64(b"[" * 2000) + ".e30.c2ln"])  # (a header nested too deep for json: a RecursionError, a 500)
def test_garbage_is_malformed(provider: OIDCProvider, garbage: str) -> None:
    with pytest.raises(Unauthorized) as caught:
        verifier(provider).verify(garbage)
    assert str(caught.value) in {"malformed token", "token signed by an unknown key", "token signature does not verify"}


def test_expired_token_is_refused_even_when_cached(tmp_path: Path) -> None:
    with oidc_provider(tmp_path, ACCOUNTS, access_ttl=3) as short:
        token = short.token("alice")
        check = verifier(short, leeway=0)
        assert check.verify(token).subject == "alice"
        time.sleep(max(0.0, parts(token)[1]["exp"] - time.time()) + 1.1)
        refused(check, token, "token expired")


# -- rotation and the refetch rate limit --------------------------------------------------------

def test_rotated_key_verifies_after_one_refetch(fresh_provider: OIDCProvider) -> None:
    fetch = CountingFetch()
    check = verifier(fresh_provider, fetch=fetch, min_refetch_seconds=30)
    old = fresh_provider.token("alice")
    check.verify(old)
    fresh_provider.rotate()
    new = fresh_provider.token("alice")
    assert parts(new)[0]["kid"] != parts(old)[0]["kid"]
    assert check.verify(new).subject == "alice" and fetch.jwks() == 2
    assert check.verify(old).subject == "alice"  # the old key is still published: still valid


def test_retired_key_stops_verifying_after_refresh(fresh_provider: OIDCProvider) -> None:
    old = fresh_provider.token("alice")
    by_kid, by_age = verifier(fresh_provider), verifier(fresh_provider, refresh_after=1)
    assert by_kid.verify(old).subject == by_age.verify(old).subject == "alice"  # both cache it
    fresh_provider.rotate(retire_old=True)
    by_kid.verify(fresh_provider.token("alice"))  # a new kid: refetch, the old key is gone
    refused(by_kid, old, "token signed by an unknown key")
    time.sleep(1.1)  # the periodic refresh drops the old key too
    refused(by_age, old, "token signed by an unknown key")


class _OneKeyProvider:
    """A provider publishing one RSA key at a time (no kid needed: a single-key set), its issuer
    as Auth0 and Entra ID name theirs, ending in "/"."""

    issuer = "https://tenant.example.auth0.com/"

    def __init__(self) -> None:
        self.rotate()

    def rotate(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def __call__(self, url: str) -> Any:
        if url == "https://tenant.example.auth0.com/.well-known/openid-configuration":
            return {"issuer": self.issuer, "jwks_uri": "https://tenant.example.auth0.com/.well-known/jwks.json"}
        assert url == "https://tenant.example.auth0.com/.well-known/jwks.json", url
        return {"keys": [json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))]}

    def token(self) -> str:
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": "app", "sub": "alice", "exp": now + 600, "iat": now, "groups": ["g"]}
        return jwt.encode(claims, self.key, algorithm="RS256")


def test_a_token_without_kid_stops_verifying_once_its_key_is_replaced() -> None:
    """Cached tokens of a retired key are dropped; one without kid was cached under None, which a
    single-key set still has after the rotation: it stayed accepted until it expired."""
    provider = _OneKeyProvider()
    check = TokenVerifier(provider.issuer, "app", fetch=provider, refresh_after=0.5)
    old = provider.token()
    assert "kid" not in parts(old)[0] and check.verify(old).subject == "alice"
    provider.rotate()
    time.sleep(0.6)
    assert check.verify(provider.token()).subject == "alice"  # (the refresh: the new key in, the old one out)
    refused(check, old, "token signature does not verify")


def test_an_issuer_ending_in_a_slash_is_kept_as_the_provider_names_it(tmp_path: Path) -> None:
    """Auth0's and Entra ID's issuers end in "/": it was cut off, so discovery named another issuer
    and every token's iss differed; sign-in could never succeed."""
    from publisher.config.access import Oidc

    provider = _OneKeyProvider()
    oidc = Oidc(issuer=provider.issuer, audience="app", client_id="cli")
    assert oidc.issuer == provider.issuer
    assert TokenVerifier(oidc.issuer, "app", fetch=provider).verify(provider.token()).groups == ("g",)


def test_unknown_kids_refetch_at_most_once_per_interval(provider: OIDCProvider, alice: str) -> None:
    fetch = CountingFetch()
    check = verifier(provider, fetch=fetch, min_refetch_seconds=30)
    check.verify(alice)
    before = fetch.jwks()
    header, claims = parts(alice)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = [jwt.encode(claims, other, algorithm="RS256", headers={"kid": f"forged-{i}"}) for i in range(40)]
    errors: list[str] = []

    def attack(tokens: list[str]) -> None:
        for token in tokens:
            try:
                check.verify(token)
            except Unauthorized as error:
                errors.append(str(error))

    threads = [threading.Thread(target=attack, args=(forged[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == ["token signed by an unknown key"] * 40
    assert fetch.jwks() - before <= 1
    assert check.verify(alice).subject == "alice" and fetch.jwks() - before <= 1


def test_refetch_resumes_after_the_interval(provider: OIDCProvider, alice: str) -> None:
    fetch = CountingFetch()
    check = verifier(provider, fetch=fetch, min_refetch_seconds=0.5)
    check.verify(alice)
    forged = unsigned({"alg": "RS256", "kid": "forged"}, parts(alice)[1]) + ".c2ln"
    for _ in range(5):
        refused(check, forged, "unknown key")
    first = fetch.jwks()
    time.sleep(0.6)
    refused(check, forged, "unknown key")
    assert fetch.jwks() == first + 1


def test_a_hanging_refresh_does_not_stall_other_requests(provider: OIDCProvider, alice: str) -> None:
    """While one thread waits on the provider for the periodic refresh, others keep verifying
    with the keys already loaded."""
    release, calls = threading.Event(), []

    def slow_fetch(url: str) -> Any:
        calls.append(url)
        if len(calls) > 1:
            release.wait(30)  # the provider hangs on the refresh
        return fetch_json(url)

    check = verifier(provider, jwks_uri=provider.jwks_uri, fetch=slow_fetch, refresh_after=0.2)
    check.verify(alice)
    time.sleep(0.3)
    refresher = threading.Thread(target=check.verify, args=(alice,))
    refresher.start()
    while len(calls) < 2:
        time.sleep(0.01)
    answers: list[str] = []
    other = threading.Thread(target=lambda: answers.append(check.verify(alice).subject))
    other.start()
    other.join(timeout=15)
    stalled = not answers
    release.set()
    refresher.join()
    other.join()
    assert not stalled and answers == ["alice"]


# -- the provider is unreachable ----------------------------------------------------------------

def test_unreachable_provider_is_unauthorized(alice: str) -> None:
    fetch = CountingFetch()
    check = TokenVerifier(f"http://127.0.0.1:{free_port()}", "https://skyshelf.test/api", fetch=fetch)
    for _ in range(3):
        refused(check, alice, "the identity provider cannot be reached")
    assert len(fetch.urls) == 1  # not retried on every request


def test_module_imports_no_jwt_until_a_token_arrives() -> None:
    code = ("import sys, publisher.auth.tokens\n"
            "print(sorted(m for m in ('jwt', 'cryptography', 'urllib.request') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert done.stdout.strip() == "[]"
