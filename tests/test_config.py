"""pipeline.yml: models, defaults, and errors that name file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from publisher.cli import main
from publisher.config import load_pipeline, pipeline_schema
from publisher.config.models import parse_size
from publisher.errors import ConfigError

from .conftest import write_pipeline

ROOT = Path(__file__).resolve().parents[1]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pipeline.yml"
    path.write_text(text)
    return path


def test_root_pipeline_is_valid() -> None:
    pipeline = load_pipeline(ROOT / "pipeline.yml")
    assert pipeline.output.zarr_format == 3
    assert pipeline.output.codec.name == "zstd"
    assert pipeline.output.chunk_target_bytes == 8 * 2**20
    assert any(rule.table for rule in pipeline.rules)


def test_defaults(tmp_path: Path) -> None:
    pipeline = load_pipeline(_write(tmp_path, "sources:\n  - path: data\n"))
    assert pipeline.output.store == "./site"
    assert pipeline.output.zarr_format == 3
    assert pipeline.on_error == "fail"
    assert pipeline.base_dir == tmp_path.resolve()


@pytest.mark.parametrize(
    ("text", "line", "field", "words"),
    [
        ("sources:\n  - path: a.h5\n    chunk: [1, 2]\n", 3, "sources.0.chunk", "unknown field"),
        ("sources:\n  - path: a.h5\n  - into: x\n", 3, "sources.1.path", "required field is missing"),
        ("sources:\n  - path: a.h5\noutput:\n  zarr_format: 4\n", 4, "output.zarr_format", "2 or 3"),
        ("sources:\n  - path: a.h5\noutput:\n  chunk_target_bytes: lots\n", 4, "output.chunk_target_bytes", "expected a size"),
        ("sources:\n  - path: a.h5\non_error: ignore\n", 3, "on_error", "'fail' or 'skip'"),
        ("sources:\n  - path: a.h5\nrules:\n  - match: '**'\n    codec: brotli\n", 5, "rules.0.codec.name", "zstd"),
        ("sources:\n  - path: a\n    stack: frame\n", 2, "sources.0", "needs a 'name_pattern'"),
        ("sources: []\n", 1, "sources", "at least 1"),
        ("sources:\n  - path: a.h5\noutput:\n  codec: zstd:99\n", 4, "output.codec", "from -131072 to 22; got 99"),
        ("sources:\n  - path: a.h5\noutput:\n  codec: gzip:10\n", 4, "output.codec", "from 0 to 9; got 10"),
        ("sources:\n  - path: a.h5\noutput:\n  codec: {name: blosc-zstd, level: -1}\n", 4, "output.codec", "from 0 to 9"),
        ("sources:\n  - path: a.h5\nrules:\n  - match: '**'\n    chunks: [0, 5]\n", 5, "rules.0.chunks", "positive lengths"),
        ("sources:\n  - path: a.h5\nrules:\n  - match: '**'\n    chunks: [-2]\n", 5, "rules.0.chunks", "got -2"),
        ("sources:\n  - path: a.h5\nrules:\n  - match: '**'\n    chunks: []\n", 5, "rules.0.chunks", "at least 1"),
        ("sources:\n  - path: a.h5\nrules:\n  - match: '**'\n    chunks: [true, 4]\n", 5, "rules.0.chunks.0", "integer"),
        ("sources:\n  - path: a.h5\n    into: x\n    into: y\n", 4, "sources.0.into", "duplicate key 'into' (first at line 3)"),
        ("sources:\n  - path: a.h5\noutput:\n  store: s\noutput:\n  store: t\n", 5, "output", "duplicate key 'output'"),
        ("sources:\n  - path: a.tif\n    name_pattern: '{sample'\n", 3, "sources.0.name_pattern", "a brace left open"),
        ("sources:\n  - path: a.tif\n    name_pattern: '{x:q}'\n", 3, "sources.0.name_pattern", "format spec 'q'"),
        ("sources:\n  - path: a.tif\n    name_pattern: '{}_{0}.tif'\n", 3, "sources.0.name_pattern", "unnamed field"),
        ("sources:\n  - path: a.tif\n    name_pattern: 'scan.tif'\n", 3, "sources.0.name_pattern", "has no {field}"),
        ("sources:\n  - path: a.tif\n    sidecars: ['{nme}.json']\n", 3, "sources.0.sidecars", "names the field {nme}: use {name}"),
        ("sources:\n  - path: a.tif\n    sidecars: ['{name']\n", 3, "sources.0.sidecars", "does not format"),
        ("sources:\n  - path: a.tif\n    sidecars: ['{name[a]}.json']\n", 3, "sources.0.sidecars", "names the field"),
        # (a rule's tags were never checked: counts keyed by tags joined with "|" took staff|public for public)
        ("sources:\n  - path: a.h5\nrules:\n  - match: a\n    access_tags: [staff|public]\n", 5, "rules.0.access_tags", "not 'staff|public'"),
        ("sources:\n  - path: a.h5\nrules:\n  - match: a\n    access_tags: ['a>b']\n", 5, "rules.0.access_tags", "letters, digits"),
        # (a traceback: the plan failed with "ValueError: empty pattern"; '/sub' never matched anything)
        ("sources:\n  - path: a\n    exclude: ['']\n", 3, "sources.0.exclude", "exclude pattern '' is empty"),
        ("sources:\n  - path: a\n    exclude: [/sub]\n", 3, "sources.0.exclude", "starts with '/': patterns are relative"),
        # (true was taken for level 1; "zstd:abc" said only "invalid literal for int() with base 10")
        ("sources:\n  - path: a\noutput:\n  codec: {name: zstd, level: true}\n", 4, "output.codec.level", "valid integer"),
        ("sources:\n  - path: a\noutput:\n  codec: 'zstd:abc'\n", 4, "output.codec", "the level after ':' is a whole number"),
        ("sources:\n  - path: a\noutput:\n  pyramid_min_size: true\n", 4, "output.pyramid_min_size", "valid integer"),
        # (validated, then every table failed: "OverflowError: Python int too large to convert to C long")
        ("sources:\n  - path: a\noutput:\n  table_row_group_rows: 10000000000000000000000\n", 4, "output.table_row_group_rows",
         "less than or equal to"),
    ],
)
def test_errors_name_file_line_and_field(tmp_path: Path, text: str, line: int, field: str, words: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_pipeline(path)
    message = str(info.value)
    assert f"{path}:{line}: {field}:" in message
    assert words in message


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("sources:\n  - path: a\n    into: !!python/name:os.system\n", 3, "could not determine a constructor for the tag"),
        ("x: &a 5\nsources:\n  - path: a\n    <<: *a\n", 4, "<<: expected a mapping or list of mappings for merging"),
        ("? [1, 2]\n: 3\nsources:\n  - path: a\n", 1, "a key must be a plain name, not a list or mapping"),
    ],
)
def test_what_yaml_cannot_hand_the_pipeline_names_its_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    """A tag of no safe type, a merge of a scalar, a list as a key: each was a traceback naming
    "line 1" of "<unicode string>"."""
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_pipeline(path)
    assert str(info.value).startswith(f"{path}:{line}: ") and words in str(info.value), str(info.value)


def test_an_empty_value_is_null_and_metadata_is_what_json_holds(tmp_path: Path) -> None:
    """``description:`` with nothing after it (the commonest YAML there is) was a traceback; a
    date, a timestamp, .nan or !!binary in metadata passed validation and then failed the build."""
    path = _write(tmp_path, "description:\nmetadata: {date: 2024-01-02, n: .nan, when: 2024-01-02T03:04:05Z, b: !!binary aGVsbG8=}\n"
                            "sources:\n  - path: a\n    metadata: {i: .inf}\nrules:\n  - match: '**'\n    metadata: {d: 2020-05-06}\n")
    pipeline = load_pipeline(path)
    assert pipeline.description is None
    assert pipeline.metadata == {"date": "2024-01-02", "n": None, "when": "2024-01-02 03:04:05+00:00", "b": "hello"}
    assert pipeline.sources[0].metadata == {"i": None} and pipeline.rules[0].metadata == {"d": "2020-05-06"}
    json.dumps([pipeline.metadata, pipeline.sources[0].metadata, pipeline.rules[0].metadata], allow_nan=False)


def test_merge_keys_may_be_overridden(tmp_path: Path) -> None:
    """A key that a `<<` merge brings is no duplicate: overriding it is what merges are for, also
    in a node an alias uses again."""
    path = _write(tmp_path, "sources:\n  - &src {path: a.h5, into: x}\n  - <<: *src\n    into: y\n")
    assert [s.into for s in load_pipeline(path).sources] == ["x", "y"]
    path = _write(tmp_path, "sources: [&src {<<: {path: a.h5, into: x}, into: y}, *src]\n")
    assert [s.into for s in load_pipeline(path).sources] == ["y", "y"]
    path = _write(tmp_path, "sources:\n  - path: a.tif\n    name_pattern: '{x}}.tif'\n")  # parse reads the lone brace as text
    assert load_pipeline(path).sources[0].name_pattern == "{x}}.tif"


def test_yaml_syntax_error_points_at_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "sources:\n  - path: a\n  bad: [unclosed\n")
    with pytest.raises(ConfigError, match=rf"{path}:\d+: not valid YAML"):
        load_pipeline(path)


def test_codec_shorthand_and_sizes() -> None:
    from publisher.config.models import Codec

    assert Codec.model_validate("gzip:7") == Codec(name="gzip", level=7)
    assert parse_size("8MiB") == 8 * 2**20
    assert parse_size("500 kB") == 500_000
    assert parse_size(4096) == 4096


def test_schema_command_prints_json_schema() -> None:
    result = CliRunner().invoke(main, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert schema == json.loads(json.dumps(pipeline_schema()))
    assert {"sources", "rules", "output", "on_error"} <= set(schema["properties"])


def test_validate_command(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("x,y\n1,2\n")
    ok = CliRunner().invoke(main, ["validate", "-c", str(_write(tmp_path, "sources:\n  - path: '*.csv'\n"))])
    assert ok.exit_code == 0, ok.output
    assert "1 items to publish" in ok.output
    bad = CliRunner().invoke(main, ["validate", "-c", str(_write(tmp_path, "sources:\n  - path: '*.h5'\n"))])
    assert bad.exit_code == 1
    assert "matches no file" in bad.output


def test_a_source_behind_a_link_whose_target_is_gone_publishes_nothing(tmp_path: Path) -> None:
    """A source folder reached through a link to a share that is not mounted (or a renamed disk)
    is a config error, as the path missing is: not a release published without the whole source."""
    share = tmp_path / "share" / "run"
    share.mkdir(parents=True)
    (share / "f.csv").write_text("x\n1\n")
    (tmp_path / "beamline").symlink_to(share)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "other.csv").write_text("x\n2\n")
    config = write_pipeline(tmp_path, {"sources": [{"path": "src"}, {"path": "beamline/*.csv", "into": "beamline"}],
                                       "output": {"store": str(tmp_path / "site")}})
    first = CliRunner().invoke(main, ["build", "-c", str(config)])
    assert first.exit_code == 0, first.output
    before = (tmp_path / "site" / "catalog.json").read_bytes()
    (tmp_path / "share").rename(tmp_path / "share-unmounted")
    for command in ("validate", "build"):
        gone = CliRunner().invoke(main, [command, "-c", str(config)])
        assert gone.exit_code == 1, gone.output
        assert f"pipeline.yml:3: source path 'beamline/*.csv' is a symbolic link to {share}, which does not exist" in gone.output, gone.output
    assert (tmp_path / "site" / "catalog.json").read_bytes() == before


def test_paths_are_shown_relative_to_the_pipeline_folder_as_relpath_would(tmp_path: Path) -> None:
    """Sources inside, beside and above pipeline.yml's folder are published relative to it, as
    ``os.path.relpath`` makes them (the folders outside it are remembered, not resolved per file)."""
    import os

    base = tmp_path / "project" / "conf"
    base.mkdir(parents=True)
    pipeline = load_pipeline(write_pipeline(base, {"sources": [{"path": "x"}]}))
    paths = [base / "a.tif", base / "sub" / "b.tif", tmp_path / "project" / "data" / "c.tif", tmp_path / "project" / "data" / "d.tif",
             tmp_path / "other" / "e.tif", tmp_path / "project", tmp_path, Path("/"), base, tmp_path / "project" / "conf2" / "f.tif"]
    for path in paths * 2:  # the second time from what was remembered
        assert pipeline.shown(path) == Path(os.path.relpath(path, base)).as_posix(), path
    assert pipeline.shown("relative/g.tif") == "relative/g.tif"
