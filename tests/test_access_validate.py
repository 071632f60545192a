"""``publish validate --as-*``: the dry run lists exactly the nodes the published catalog then
lets that caller read."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from publisher.auth.dryrun import principal_for, reach
from publisher.auth.view import View
from publisher.catalog import Catalog
from publisher.cli import main
from publisher.config import load_pipeline
from publisher.errors import NotFound

from .conftest import run_build, write_pipeline
from .test_access_layout import config, make_sources


def _readable(view: View, path: str = "") -> list[str]:
    out = []
    for child in view.entries(path):
        out.append(child.path)
        if child.family == "container":
            out += _readable(view, child.path)
    return out


@pytest.mark.parametrize(("tags", "groups"), [([], []), (["p1"], []), (["staff"], []), (["p1", "staff"], []), ([], ["grp-p1"]), (["nobody"], [])])
def test_the_dry_run_names_what_the_catalog_then_serves(tmp_path: Path, tags: list[str], groups: list[str]) -> None:
    make_sources(tmp_path)
    pipeline = load_pipeline(write_pipeline(tmp_path, {"output": {"store": str(tmp_path / "site")}, **config()}))
    who = principal_for(pipeline, tags, groups)
    planned = reach(pipeline, who)
    published = run_build(tmp_path, config())
    view = View(Catalog.open_full(published.store), who)
    served = _readable(view)
    assert sorted(planned.readable) == sorted(served)
    for path in planned.hidden:
        with pytest.raises(NotFound, match="no node at path"):
            view.entry(path)


def test_the_cli_lists_a_callers_nodes_and_blocked_rules(tmp_path: Path) -> None:
    make_sources(tmp_path)
    rules = [*config()["rules"], {"match": "misc/untagged_notes", "access_tags": ["public"]}]  # public under a private folder
    path = write_pipeline(tmp_path, {"output": {"store": str(tmp_path / "site")}, **{**config(), "rules": rules}})
    result = CliRunner().invoke(main, ["validate", "-c", str(path), "--as-anonymous"])
    assert result.exit_code == 0, result.output
    assert "anonymous: reads 7 of 13 nodes" in result.output and "read    open/frame" in result.output
    assert "embargoed" not in result.output
    assert "note: misc/untagged_notes carries one of these tags but a container above it does not" in result.output
    grouped = CliRunner().invoke(main, ["validate", "-c", str(path), "--as-group", "grp-p1"])
    assert "read    proposals/p1/embargoed_scan" in grouped.output


@pytest.mark.parametrize("other", [["--as-tags", "p1"], ["--as-group", "grp-p1"], ["--as-subject", "alice"]])
def test_as_anonymous_with_an_identity_is_refused(tmp_path: Path, other: list[str]) -> None:
    """``--as-anonymous --as-tags p1`` listed what a caller with tags p1 reads, under the label
    "tags ['p1']", the anonymous flag dropped without a word: a data manager checking what the
    public sees was shown a signed-in caller's view."""
    make_sources(tmp_path)
    path = write_pipeline(tmp_path, {"output": {"store": str(tmp_path / "site")}, **config()})
    result = CliRunner().invoke(main, ["validate", "-c", str(path), "--as-anonymous", *other])
    assert result.exit_code == 2, result.output
    assert "--as-anonymous is a caller with no identity: it cannot be combined with" in result.output
    assert "reads" not in result.output
