"""The world the auth tests read: one mixed catalog (public nodes, nodes tagged A, nodes tagged B,
an untagged private node; arrays, tables and containers) built with the test OpenID provider as
its identity provider and served by ``publish serve``, the principals Tiled's client can present
(anonymous, API keys, a real OIDC token and forged ones), and the checks every answer gets: what
a caller may not read leaves no name, value or count in any header, body or link, a hidden node
answers as a missing one, bad credentials are a 401 with WWW-Authenticate."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import httpx
import jwt
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from handlers.local import LocalServer
from publisher.auth.keys import create_key, revoke_key

from .conftest import run_build
from .oidc_server import OIDCProvider, oidc_provider

#: What only the callers who may read each class of node may see: names and metadata values.
MARKERS = {"a": ("sec_alpha", "ALPHA-META"), "b": ("sec_bravo", "BRAVO-META"), "private": ("sec_zulu", "ZULU-META")}
IMAGE = np.arange(48 * 40, dtype="float64").reshape(48, 40)  # 15 KiB: spills past a small max_body_bytes
TAGS = {"public": ["public"], "a": ["tag-a"], "b": ["tag-b"]}

#: Per family, the node of each class, and a path of the same shape that does not exist.
NODES = {
    "array": {"public": "pub/img", "a": "sec_alpha/sec_alpha_img", "b": "sec_bravo/sec_bravo_img",
              "private": "sec_zulu/sec_zulu_img", "none": "nowhere/no_img"},
    "table": {"public": "pub/tab", "a": "sec_alpha/sec_alpha_tab", "b": "sec_bravo/sec_bravo_tab",
              "private": "sec_zulu/sec_zulu_tab", "none": "nowhere/no_tab"},
    "container": {"public": "pub/box", "a": "sec_alpha/sec_alpha_box", "b": "sec_bravo/sec_bravo_box",
                  "private": "sec_zulu/sec_zulu_box", "none": "nowhere/no_box"},
}
#: What each principal reads: None means its credentials are refused (401).
READS: dict[str, set[str] | None] = {
    "anonymous": {"public"},
    "key-a": {"public", "a"},
    "key-a-query": {"public", "a"},
    "key-b": {"public", "b"},
    "key-ab": {"public", "a", "b"},
    "key-expired": None,
    "key-revoked": None,
    "jwt-a": {"public", "a"},
    "jwt-other-key": None,
    "jwt-alg-none": None,
    "jwt-wrong-audience": None,
    "jwt-expired": None,
    "key-malformed": None,
}


def make_sources(folder: Path) -> None:
    """Each class gets an array (with metadata), a table (a private column name) and an HDF5 container."""
    for cls, stem in (("public", "pub"), ("a", "sec_alpha"), ("b", "sec_bravo"), ("private", "sec_zulu")):
        name = "" if cls == "public" else f"{stem}_"
        meta = "open-meta" if cls == "public" else MARKERS[cls][1]
        (folder / stem).mkdir()
        np.save(folder / stem / f"{name}img.npy", IMAGE)
        (folder / stem / f"{name}img.npy.json").write_text(json.dumps({"note": meta, "kind": "image"}))
        column = "value" if cls == "public" else f"{stem}_col"
        (folder / stem / f"{name}tab.csv").write_text(f"x,{column}\n1,{meta}\n2,{meta}-2\n")
        with h5py.File(folder / stem / f"{name}box.h5", "w") as f:
            entry = f.create_group("entry")
            entry.attrs["note"] = meta
            entry.create_dataset("counts", data=np.arange(6))
            if cls == "public":  # a public container with a child tagged A inside
                inner = entry.create_group("sec_alpha_inner")
                inner.attrs["note"] = "ALPHA-META-inner"
                inner.create_dataset("signal", data=np.arange(3.0))


def config(provider: OIDCProvider | None) -> dict[str, Any]:
    """The world's pipeline; without a provider, API keys are its only credentials."""
    rules = [{"match": "pub", "access_tags": TAGS["public"]}, {"match": "sec_alpha", "access_tags": TAGS["a"]},
             {"match": "sec_bravo", "access_tags": TAGS["b"]},
             {"match": "pub/box/entry/sec_alpha_inner", "access_tags": TAGS["a"]},
             {"match": "sec_alpha/sec_alpha_box/entry/counts", "access_tags": TAGS["public"]}]  # moot: under A
    return {"name": "auth matrix", "sources": [{"path": p} for p in ("pub", "sec_alpha", "sec_bravo", "sec_zulu")],
            "rules": rules, "access": {"groups": {"grp-a": TAGS["a"], "grp-b": TAGS["b"]},
                                       **({"oidc": {"issuer": provider.issuer, "audience": provider.audience,
                                                    "client_id": provider.client_id}} if provider else {})}}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged_tokens(provider: OIDCProvider, real: str) -> dict[str, str]:
    """Tokens a caller may not be let in with. Wrong audience and expired ones are signed with the
    provider's own key (read from its key file), so only the claim is wrong."""
    header = jwt.get_unverified_header(real)
    claims = jwt.decode(real, options={"verify_signature": False})
    private = next(k for k in json.loads((provider.workdir / "keys.json").read_text())["keys"] if k["kid"] == header["kid"])
    own = jwt.PyJWK(private, algorithm="RS256").key
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    unsigned = f"{_b64(json.dumps({**header, 'alg': 'none'}).encode())}.{_b64(json.dumps(claims).encode())}."
    return {
        "jwt-other-key": jwt.encode(claims, other, algorithm="RS256", headers={"kid": header["kid"]}),
        "jwt-alg-none": unsigned,
        "jwt-wrong-audience": jwt.encode({**claims, "aud": "https://elsewhere.test/api"}, own, algorithm="RS256",
                                         headers={"kid": header["kid"]}),
        "jwt-expired": jwt.encode({**claims, "iat": now - 7200, "exp": now - 3600}, own, algorithm="RS256",
                                  headers={"kid": header["kid"]}),
    }


@dataclass
class World:
    url: str
    root: Path
    credentials: dict[str, tuple[dict[str, str], dict[str, str]]] = field(default_factory=dict)  # headers, params
    provider: OIDCProvider | None = None

    def get(self, principal: str, path: str, params: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        headers, extra = self.credentials[principal]
        return httpx.get(self.url + path, params={**(params or {}), **extra}, headers=headers, timeout=30, **kwargs)


def serve_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The running world (a module-scoped fixture in each test module that uses it)."""
    with oidc_provider(tmp_path_factory.mktemp("matrix-oidc"), {"alice": ["grp-a"], "bob": ["grp-b"]},
                       access_ttl=3600) as provider:
        folder = tmp_path_factory.mktemp("matrix")
        make_sources(folder)
        published = run_build(folder, config(provider))
        store = published.store
        key_a, _ = create_key(store, TAGS["a"])
        key_b, _ = create_key(store, TAGS["b"])
        key_ab, _ = create_key(store, TAGS["a"] + TAGS["b"])
        expired, _ = create_key(store, TAGS["a"], expires=_past())
        revoked, record = create_key(store, TAGS["a"])
        revoke_key(store, record["id"])
        alice = provider.token("alice")
        server = LocalServer(store.url, "127.0.0.1", 0).start()
        apikey = lambda key: ({"Authorization": f"Apikey {key}"}, {})  # noqa: E731
        bearer = lambda token: ({"Authorization": f"Bearer {token}"}, {})  # noqa: E731
        found = World(server.url, Path(store.url), provider=provider)
        found.credentials = {"anonymous": ({}, {}), "key-a": apikey(key_a), "key-a-query": ({}, {"api_key": key_a}),
                             "key-b": apikey(key_b), "key-ab": apikey(key_ab), "key-expired": apikey(expired), "key-revoked": apikey(revoked),
                             "key-malformed": apikey("ssk_nothing"), "jwt-a": bearer(alice),
                             **{name: bearer(token) for name, token in forged_tokens(provider, alice).items()}}
        try:
            yield found
        finally:
            server.stop()


def _past() -> Any:
    from datetime import datetime, timedelta, timezone

    return datetime.now(timezone.utc) - timedelta(days=1)


SIGNED_IN = [p for p, reads in READS.items() if reads is not None]


def column_of(cls: str) -> str:
    return "value" if cls == "public" else f"{MARKERS[cls][0]}_col"


def meta_of(cls: str) -> str:
    return "open-meta" if cls == "public" else MARKERS[cls][1]


CLASSES = ("public", "a", "b", "private")


def forbidden(reads: set[str] | None) -> list[str]:
    """The markers of every class of node the caller may not read."""
    return [m for cls, words in MARKERS.items() if reads is None or cls not in reads for m in words]


def assert_no_leak(r: httpx.Response, words: list[str], asked: tuple[str, ...] = ()) -> None:
    """Nothing private in any header (Location and links included) or in the body (decoded), but
    for what the caller itself asked for (``asked``: a 404 names the path it was asked about)."""
    seen = b""
    for response in (*r.history, r):
        seen += "\n".join(f"{k}: {v}" for k, v in response.headers.multi_items()).encode() + b"\n" + response.content + b"\n"
    for text in sorted(asked, key=len, reverse=True):
        seen = seen.replace(text.encode(), b"<asked>")
    leaked = [w for w in words if w.encode() in seen]
    assert not leaked, f"{r.request.url} leaks {leaked}: {seen[:400]!r}"


def normalised(r: httpx.Response, node: str) -> tuple[int, bytes, dict[str, str]]:
    """What a 404 says, with the path asked for taken out (a hidden and a missing node differ only there)."""
    headers = {k: v for k, v in r.headers.items() if k not in ("date", "content-length")}
    body = r.content.replace(node.encode(), b"<node>")
    for i, segment in sorted(enumerate(node.split("/")), key=lambda s: -len(s[1])):  # a 404 may name the first missing one
        body = body.replace(f"'{segment}".encode(), f"'<{i}>".encode())
    return r.status_code, body, headers


def assert_refused(r: httpx.Response) -> None:
    """Bad credentials: a 401 that names the schemes it takes and says why, never a 500."""
    assert r.status_code == 401, (r.request.url, r.status_code, r.text[:300])
    assert r.headers["www-authenticate"].startswith("Apikey") and "Bearer" in r.headers["www-authenticate"]
    assert r.headers["content-type"] == "application/json" and r.json()["detail"]
