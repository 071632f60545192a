"""Warm cost of checking an OIDC Bearer token (publisher.auth.tokens.TokenVerifier, PyJWT path).

Three numbers, µs per verify, for an RS256 access token shaped like oidc-provider's (2048-bit
key, kid, iss/aud/exp/iat/sub/groups): **cached** (the same token again: sha256 + dict lookup),
**uncached** (a token not seen before: header, signature and claims checked with PyJWT) and, as
the floor, bare ``jwt.decode`` with the key in hand. Keys come from an in-process JWKS (the
network is not what is measured; tests/test_oidc.py covers the real provider). Also printed: a
fresh process's import of the verifier module, and of PyJWT + cryptography (paid on the first
Bearer token only).

    python benchmarks/token_verify.py [--repeat 2000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from publisher.auth.tokens import TokenVerifier  # noqa: E402

ISSUER, AUDIENCE = "http://127.0.0.1:1", "https://skyshelf.test/api"


def per_call_us(fn, items: list, rounds: int = 5) -> float:  # type: ignore[no-untyped-def]
    """Median over rounds of the mean µs per call over ``items``."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for item in items:
            fn(item)
        times.append((time.perf_counter() - start) / len(items) * 1e6)
    return statistics.median(times)


def import_ms(statement: str, repeat: int = 5) -> float:
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    runs = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                 cwd=ROOT).stdout) for _ in range(repeat)]
    return min(runs) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2000, help="tokens per round")
    args = parser.parse_args()

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key())), "kid": "k1", "alg": "RS256", "use": "sig"}
    verifier = TokenVerifier(ISSUER, AUDIENCE, jwks_uri=ISSUER + "/jwks", fetch=lambda url: {"keys": [jwk]},
                             max_cached=10 * args.repeat)
    now = int(time.time())
    tokens = [jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": f"user{i}", "groups": ["grp-a"], "iat": now,
                          "exp": now + 3600, "jti": str(i), "client_id": "skyshelf-cli"}, key, algorithm="RS256",
                         headers={"kid": "k1", "typ": "at+jwt"}) for i in range(args.repeat * 6)]
    verifier.verify(tokens[0])  # load the keys and PyJWT
    fresh = iter(tokens[1:])
    uncached = per_call_us(lambda _: verifier.verify(next(fresh)), list(range(args.repeat)))
    cached = per_call_us(verifier.verify, tokens[: args.repeat])
    public = key.public_key()
    bare = per_call_us(lambda t: jwt.decode(t, public, algorithms=["RS256"], audience=AUDIENCE, issuer=ISSUER),
                       tokens[: args.repeat])
    print(f"verify, cached token      {cached:8.2f} µs")
    print(f"verify, uncached token    {uncached:8.2f} µs")
    print(f"bare jwt.decode (floor)   {bare:8.2f} µs")
    print(f"import publisher.auth.tokens (fresh process)  {import_ms('import publisher.auth.tokens'):6.1f} ms")
    print(f"import jwt + cryptography RSA (first token)   {import_ms('import jwt.algorithms'):6.1f} ms")


if __name__ == "__main__":
    main()
