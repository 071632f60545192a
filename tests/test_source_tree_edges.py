"""Source trees that are awkward in ways a facility's are (a review helper's repros): the output
store inside a source folder, two items publishing one node path, FIFOs where files should be,
names longer than the file system allows, trees deeper than Python's recursion limit."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from publisher.build import build
from publisher.config import load_pipeline

from .conftest import write_pipeline


def test_the_output_store_inside_a_source_folder_is_not_walked(tmp_path: Path) -> None:
    """``path: .`` beside ``store: ./site``: each build published the earlier releases' files
    again as nodes (5, 24, 51, ...), a private table among them as a public one. Reached through
    a symlink (``data/up -> ..``) too."""
    (tmp_path / "secret").mkdir()
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    (tmp_path / "secret" / "payroll.csv").write_text("password,salary\nhunter2,99999\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "y.csv").write_text("c\n3\n")
    (tmp_path / "data" / "up").symlink_to("..")
    config = {"sources": [{"path": ".", "into": "open", "exclude": ["secret", "data"]}, {"path": "secret", "into": "staff"},
                          {"path": "data", "into": "more", "exclude": ["up/secret", "up/data"]}],
              "rules": [{"match": "open", "access_tags": ["public"]}, {"match": "more", "access_tags": ["public"]},
                        {"match": "staff", "access_tags": ["staff"]}],
              "output": {"store": "./site"}, "symlinks_outside": "allow", "on_error": "skip"}
    pipeline = load_pipeline(write_pipeline(tmp_path, config))
    counts = []
    for _ in range(3):
        report = build(pipeline, workers=1)
        counts.append(sum(report.nodes.values()))
        (tmp_path / "x.csv").write_text(f"a,b\n1,{len(counts)}\n")  # (a change, so each build publishes)
    catalog = json.loads((tmp_path / "site" / "catalog.json").read_text())
    paths = pd.read_parquet(tmp_path / "site" / catalog["index"]).path.tolist()
    assert counts[0] == counts[1] == counts[2], counts
    assert not [p for p in paths if "site" in p.split("/")], paths
    assert not [p for p in paths if "payroll" in p]  # (private: not in the public index, nor public elsewhere)
    assert "more/up/x" in paths  # the folder above, through the link: its files, not the store
