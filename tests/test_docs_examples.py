"""The docs' reference examples, taken from the pages themselves: docs/pipeline.md's annotated
pipeline.yml loads as it stands (it named a stack field its name_pattern does not have), and
docs/auth.md's access rules publish what their comments say (they made every proposal but p1
public to anonymous callers)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from click.testing import CliRunner

from publisher.cli import main
from publisher.config import load_pipeline

from .conftest import ROOT


def _yaml_blocks(page: str) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", (ROOT / "docs" / page).read_text(), flags=re.DOTALL)


def test_the_pipeline_reference_loads_as_written(tmp_path: Path) -> None:
    reference = _yaml_blocks("pipeline.md")[0]
    (tmp_path / "pipeline.yml").write_text(reference)
    pipeline = load_pipeline(tmp_path / "pipeline.yml")
    assert pipeline.sources[0].name_pattern and pipeline.rules[0].match.startswith("scans/**/")


def test_the_access_example_keeps_other_proposals_private(tmp_path: Path) -> None:
    example = yaml.safe_load(next(b for b in _yaml_blocks("auth.md") if "match: proposals" in b))
    example["access"].pop("oidc", None)  # (a provider the test does not run)
    for rel in ("open/a.csv", "proposals/p1/x.csv", "proposals/p2/x.csv"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("v\n1\n")
    config = {"sources": [{"path": "open"}, {"path": "proposals"}], "output": {"store": "./site"}, **example}
    (tmp_path / "pipeline.yml").write_text(yaml.safe_dump(config))
    seen = {}
    for who in (["--as-anonymous"], ["--as-tags", "staff"], ["--as-group", "team-p1"]):
        done = CliRunner().invoke(main, ["validate", "-c", str(tmp_path / "pipeline.yml"), *who])
        assert done.exit_code == 0, done.output
        seen[who[-1]] = {line.split()[1] for line in done.output.splitlines() if line.strip().startswith("read ")}
    assert seen["--as-anonymous"] == {"open", "open/a", "proposals"}, seen
    assert {"proposals/p1/x", "proposals/p2/x"} <= seen["staff"] and "proposals/p2" not in seen["team-p1"], seen
    assert "proposals/p1/x" in seen["team-p1"]
