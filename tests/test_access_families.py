"""Access rules on the issue 15 families: a private sparse matrix, awkward array and pyramid image
are stored under the private prefix only, and a caller without the tag learns nothing of them on
any of their routes (sparse/full|block, array/full|block's redirect, awkward/full|buffers GET and
POST, PNG levels, the Zarr route, search, /files/): each answers as a node that does not exist.
A key with the tag reads them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import httpx
import numpy as np
import pytest

from publisher.auth.keys import create_key

from .auth_world import normalised
from .conftest import run_build
from .servers import local_server

SECRET = "zebrafish"  # in every private node's path: must never show to an anonymous caller


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder: Path = tmp_path_factory.mktemp("access-families")
    (folder / "pub").mkdir()
    (folder / SECRET).mkdir()
    with h5py.File(folder / "pub" / "open.h5", "w") as f:
        f["x"] = np.arange(4)
    with h5py.File(folder / SECRET / "m.h5ad", "w") as f:  # AnnData CSR
        g = f.create_group("X")
        g.attrs["encoding-type"], g.attrs["encoding-version"], g.attrs["shape"] = "csr_matrix", "0.1.0", np.array([3, 4])
        g["data"], g["indices"], g["indptr"] = np.array([1.0, 2.0]), np.array([1, 3], "<i4"), np.array([0, 1, 1, 2], "<i4")
        v = f.create_dataset("v", (2,), dtype=h5py.vlen_dtype(np.dtype("<i8")))
        v[0], v[1] = [1, 2], [3]
        f.create_dataset("img", data=np.arange(64 * 64, dtype="<u2").reshape(64, 64), chunks=(32, 32))
    published = run_build(folder, {"sources": [{"path": "pub"}, {"path": SECRET}],
                                   "rules": [{"match": "pub", "access_tags": ["public"]}, {"match": SECRET, "access_tags": ["team"]},
                                             {"match": f"{SECRET}/m/img", "pyramid": True}]})
    key, _ = create_key(published.store, ["team"])
    with local_server(published.store.url) as url:
        yield url, published, {"Authorization": f"Apikey {key}"}


ROUTES = [("GET", "metadata/{}/X", None), ("GET", "sparse/full/{}/X", {"format": "json"}), ("GET", "sparse/block/{}/X", {"block": "0,0"}),
          ("GET", "array/full/{}/X", {"format": "json"}), ("GET", "array/block/{}/X", {"block": "0,0"}),
          ("GET", "awkward/full/{}/v", {"format": "json"}), ("GET", "awkward/buffers/{}/v", {"form_key": "node0"}),
          ("POST", "awkward/buffers/{}/v", None), ("GET", "array/full/{}/img", {"format": "png", "max_size": "8"}),
          ("GET", "zarr/v3/{}/img/zarr.json", None), ("GET", "metadata/{}/img", None)]


@pytest.mark.parametrize(("method", "route", "params"), ROUTES, ids=[f"{m} {r}" for m, r, _ in ROUTES])
def test_a_private_node_answers_as_a_missing_one(world: Any, method: str, route: str, params: dict[str, str] | None) -> None:
    url, _, key = world
    body = b'["node0"]' if method == "POST" else None
    hidden, missing = f"{SECRET}/m", "nosuchfolder/m"
    got = httpx.request(method, f"{url}/api/v1/{route.format(hidden)}", params=params, content=body)
    absent = httpx.request(method, f"{url}/api/v1/{route.format(missing)}", params=params, content=body)
    assert got.status_code == 404 and normalised(got, route.format(hidden)) == normalised(absent, route.format(missing))
    allowed = httpx.request(method, f"{url}/api/v1/{route.format(hidden)}", params=params, content=body, headers=key, follow_redirects=True)
    assert allowed.status_code == 200, (route, allowed.text[:200])


def test_search_counts_and_files_hide_private_families(world: Any) -> None:
    url, published, key = world
    root = httpx.get(f"{url}/api/v1/search/", params={"page[limit]": "100"})
    deep = httpx.get(f"{url}/api/v1/search-deep/", params={"page[limit]": "100"})
    for answer in (root, deep):
        assert answer.status_code == 200 and SECRET not in answer.text
    assert root.json()["meta"]["count"] == 1
    assert SECRET in httpx.get(f"{url}/api/v1/search/", headers=key).text
    store = Path(published.store.url)
    stored = [p.relative_to(store).as_posix() for p in store.rglob("*") if p.is_file()]
    private = [p for p in stored if SECRET in p]
    assert private and all(p.startswith("private/") for p in private), [p for p in private if not p.startswith("private/")]
    assert any(p.endswith(".parquet") and "/X/block-" in p for p in private) and any(p.endswith("/v.parquet") for p in private)
    assert any(".levels/1" in p for p in private)  # the pyramid's levels too
    public_files = [p for p in stored if not p.startswith("private/")]
    assert not [p for p in public_files if SECRET.encode() in (store / p).read_bytes()]  # no catalog, index or level names it
    for p in private[:20]:
        assert httpx.get(f"{url}/files/{p}").status_code == 404, p
