"""Private members of a public HDF5 file (a review helper's leaks): a private scalar's value was
copied into its public parent's metadata (the HDF5 reader copies scalars up, for search, before
the access rules apply): served, searchable and in the public store objects; and a private
dataset hard-linked at a public path was published in full at that path (an object is published
once, at its first path). Now a value is copied only into a parent of its own access class, and
an object whose paths differ in access class is published at neither, saying so."""

from __future__ import annotations

from pathlib import Path

import h5py
import httpx
import numpy as np
import pytest

from .conftest import Published, run_build
from .servers import local_server

SECRET = b"TOPSECRET-NAME"


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Published:
    folder = tmp_path_factory.mktemp("h5-members")
    (folder / "pub").mkdir()
    with h5py.File(folder / "pub" / "f.h5", "w") as f:
        entry = f.create_group("entry")
        entry.create_dataset("secret_scalar", data=424242)
        entry.create_dataset("secret_name", data=SECRET)
        entry.create_dataset("open_scalar", data=7)
        hidden = entry.create_group("hidden_grp")
        hidden.create_dataset("signal", data=np.array([13.0, 37.0, 99.0]))
        entry["aa_hard"] = hidden["signal"]  # a hard link at a public path, visited before hidden_grp
        data = entry.create_group("data")  # an NXdata group (labelled an xarray dataset: its Zarr attributes copied too)
        data.attrs.update({"NX_class": "NXdata", "signal": "counts"})
        data["counts"] = np.arange(4)
        data.create_dataset("gain", data=SECRET + b"-GAIN")
        plot = entry.create_group("plot")  # an NXdata group naming its private members (signal, an axis)
        plot.attrs.update({"NX_class": "NXdata", "signal": "embargoed_signal", "auxiliary_signals": ["embargoed_signal", "open_aux"],
                           "axes": ["embargoed_axis", "x"], "embargoed_axis_indices": 0, "x_indices": 1})
        plot["embargoed_signal"], plot["open_aux"] = np.ones((2, 3)), np.zeros((2, 3))
        plot["embargoed_axis"], plot["x"] = np.arange(2.0), np.arange(3.0)
    return run_build(folder, {"sources": [{"path": "pub"}],
                              "rules": [{"match": "pub", "access_tags": ["public"]},
                                        {"match": "pub/f/entry/secret_scalar", "access_tags": ["staff"]},
                                        {"match": "pub/f/entry/secret_name", "access_tags": ["staff"]},
                                        {"match": "pub/f/entry/hidden_grp", "access_tags": ["staff"]},
                                        {"match": "pub/f/entry/data/gain", "access_tags": ["staff"]},
                                        {"match": "pub/f/entry/plot/embargoed_*", "access_tags": ["staff"]}]})


def test_no_public_object_holds_a_private_members_value(published: Published) -> None:
    public = [p for p in Path(published.store.url).rglob("*") if p.is_file() and "private" not in p.relative_to(published.store.url).parts]
    assert public and not [p for p in public if SECRET in p.read_bytes() or b"424242" in p.read_bytes()]
    assert "xarray_dataset" in published.node("pub/f/entry/data")["specs"]
    entry = published.node("pub/f/entry")["metadata"]
    assert entry.get("open_scalar") == 7 and "secret_scalar" not in entry and "secret_name" not in entry
    # nor a private member's name in its public NXdata group's attributes (signal, axes, *_indices)
    assert not [p for p in public if b"embargoed" in p.read_bytes()]
    plot = published.node("pub/f/entry/plot")["metadata"]
    assert "signal" not in plot and plot["auxiliary_signals"] == ["open_aux"] and plot["axes"] == [".", "x"] and plot["x_indices"] == 1


def test_anonymous_callers_neither_read_nor_find_them(published: Published) -> None:
    with local_server(published.store.url) as url:
        metadata = httpx.get(f"{url}/api/v1/metadata/pub/f/entry").json()["data"]["attributes"]["metadata"]
        assert "secret_scalar" not in metadata and metadata["open_scalar"] == 7
        hits = httpx.get(f"{url}/api/v1/search/pub/f", params={"filter[eq][condition][key]": "secret_scalar",
                                                               "filter[eq][condition][value]": "424242"}).json()
        assert hits["data"] == []
        assert httpx.get(f"{url}/api/v1/array/full/pub/f/entry/aa_hard?format=json").status_code == 404


def test_an_object_linked_at_paths_of_two_access_classes_is_published_at_neither(published: Published) -> None:
    (skipped,) = [p for p in published.report.skipped if p.path == "pub/f/entry/aa_hard"]
    assert "hard-linked in its file at /entry/hidden_grp/signal too, whose access rules differ" in skipped.reason
    assert "give both paths the same access tags" in skipped.reason
