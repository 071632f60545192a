"""API keys in the deployment's DynamoDB table, on moto's server: the table made as the deploy
template makes it, the records' interface held equal for the store and the table, ``publish keys
--table``, and a handler whose settings name the table verifying keys from it (and only from it)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result

from handlers import settings
from publisher.auth.key_records import DynamoKeyRecords, KeyRecords, StoreKeyRecords
from publisher.auth.keys import KeyRing, create_key, list_keys, revoke_key
from publisher.cli import main
from publisher.deploy.template import template
from publisher.errors import NotFound, StoreError, Unauthorized
from publisher.stores import LocalStore

from .conftest import run_build
from .servers import S3Server, moto_server
from .test_s3 import environ
from .test_lambda_events import EVENTS, Context


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with moto_server(tmp_path_factory.mktemp("moto-key-table")) as server, environ({**server.env(), "AWS_REGION": "us-east-1"}):
        yield server


def make_table(name: str) -> str:
    """The table as the deploy's template defines it (its key schema, billing and encryption)."""
    import boto3

    props = template()["Resources"]["KeysTable"]["Properties"]
    boto3.client("dynamodb").create_table(TableName=name, AttributeDefinitions=props["AttributeDefinitions"], KeySchema=props["KeySchema"],
                                          BillingMode=props["BillingMode"], SSESpecification={"Enabled": props["SSESpecification"]["SSEEnabled"]})
    return name


@pytest.fixture(params=["store", "dynamodb"])
def records(request: pytest.FixtureRequest, tmp_path: Path) -> KeyRecords:
    if request.param == "store":
        return StoreKeyRecords(LocalStore(str(tmp_path)))
    request.getfixturevalue("moto")
    return DynamoKeyRecords(make_table(f"keys-{tmp_path.name[-20:]}"))


def test_records_behave_alike_in_the_store_and_the_table(records: KeyRecords) -> None:
    assert isinstance(records, KeyRecords) and records.all() == [] and records.get("0123456789ab") is None
    key, record = create_key(records, ["A", "B"], note="beamline", scopes=["read:metadata"])
    assert records.get(record["id"]) == record  # every field back as written (None for never-set ones)
    assert records.add(record) is False  # an id is never overwritten
    other, _ = create_key(records, ["C"])
    assert sorted(r["id"] for r in list_keys(records)) == sorted([record["id"], other.split("_")[1]])
    assert all("salt" not in r and "sha256" not in r for r in list_keys(records))
    ring = KeyRing(records, ttl=0)
    assert ring.principal(key).tags == {"A", "B"} and ring.principal(key).scopes == {"read:metadata"}
    assert ring.principal(other).scopes == {"read:metadata", "read:data"}
    revoked = revoke_key(records, record["id"])
    assert revoked["revoked"] and records.get(record["id"])["revoked"] == revoked["revoked"]
    with pytest.raises(Unauthorized, match="was revoked"):
        ring.principal(key)
    with pytest.raises(NotFound, match="no API key '0123456789ab'"):
        revoke_key(records, "0123456789ab")
    with pytest.raises(NotFound):
        records.put({**record, "id": "0123456789ab"})  # a rewrite never makes a key
    assert records.get("0123456789ab") is None
    with pytest.raises(Unauthorized, match="unknown API key"):
        ring.principal("ssk_0123456789ab_" + "0" * 64)


def test_the_table_holds_no_secret_and_damage_is_named(moto: S3Server) -> None:
    import boto3

    table = make_table("keys-damage")
    key, record = create_key(DynamoKeyRecords(table), ["A"])
    items = boto3.client("dynamodb").scan(TableName=table)["Items"]
    assert len(items) == 1 and key.split("_")[2] not in json.dumps(items) and items[0]["tags"] == {"L": [{"S": "A"}]}
    boto3.client("dynamodb").put_item(TableName=table, Item={"id": {"S": "0123456789ab"}, "note": {"S": "hand-made"}})
    with pytest.raises(StoreError, match="damaged"):
        KeyRing(DynamoKeyRecords(table), ttl=0).principal("ssk_0123456789ab_" + "0" * 64)
    with pytest.raises(StoreError, match="'no-such-table'.*ResourceNotFoundException"):
        DynamoKeyRecords("no-such-table").get(record["id"])


def cli(*args: str) -> Result:
    result = CliRunner().invoke(main, ["keys", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def test_publish_keys_on_a_table(moto: S3Server, tmp_path: Path) -> None:
    table = make_table("keys-cli")
    made = cli("create", "--tags", "A", "--scopes", "read:metadata", "--note", "staff", "--table", table)
    assert made.exit_code == 0, made.output
    key = made.stdout.strip()
    key_id = key.split("_")[1]
    listing = cli("list", "--table", table)
    row = next(line for line in listing.stdout.splitlines() if line.startswith(key_id))
    assert "active" in row and "read:metadata" in row and "read:data" not in row and "staff" in row
    assert cli("revoke", key_id, "--table", table).exit_code == 0
    assert "revoked" in next(line for line in cli("list", "--table", table).stdout.splitlines() if line.startswith(key_id))
    assert not (tmp_path / "site").exists()  # nothing went to a store
    both = cli("list", "--table", table, "--store", str(tmp_path))
    assert both.exit_code == 2 and "one of --store, --table and --deployed" in both.output
    bad = cli("create", "--tags", "A", "--scopes", "write:data", "--table", table)
    assert bad.exit_code == 1 and "scope 'write:data' is not one of read:data, read:metadata" in bad.stderr
    nostack = tmp_path / "pipeline.yml"
    nostack.write_text(json.dumps({"sources": [{"path": "data"}], "deploy": {"stack_name": "never-deployed"}}))
    missing = cli("list", "--deployed", "-c", str(nostack))
    assert missing.exit_code == 1 and "stack never-deployed is not deployed" in missing.stderr



def test_deployed_keys_without_aws_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    pipeline = tmp_path / "pipeline.yml"
    pipeline.write_text(json.dumps({"sources": [{"path": "data"}], "deploy": {"stack_name": "somewhere"}}))
    result = cli("list", "--deployed", "-c", str(pipeline))
    assert result.exit_code == 1 and result.stderr.startswith("error: reading stack somewhere: ") and "Traceback" not in result.output


def _private_world(folder: Path) -> Any:
    (folder / "src").mkdir()
    np.save(folder / "src" / "secret.npy", np.arange(6))
    return run_build(folder, {"sources": [{"path": str(folder / "src"), "into": ""}], "output": {"store": str(folder / "site")},
                              "rules": [{"match": "secret", "access_tags": ["A"]}]})


def _call_metadata(path: str, key: str) -> tuple[int, dict[str, Any]]:
    from handlers.metadata import lambda_handler

    event = json.loads((EVENTS / "metadata_node.json").read_text())
    event["rawPath"] = event["requestContext"]["http"]["path"] = f"/api/v1/metadata/{path}"
    event["pathParameters"] = {"path": path}
    event["headers"]["authorization"] = f"Apikey {key}"
    event["headers"].pop("accept-encoding")
    result = lambda_handler(event, Context("skyshelf-metadata"))
    body = base64.b64decode(result["body"]) if result.get("isBase64Encoded") else result["body"]
    return result["statusCode"], json.loads(body)


def test_a_handler_with_a_key_table_reads_keys_from_it_alone(moto: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    published = _private_world(tmp_path)
    table = make_table("keys-handler")
    in_table, _ = create_key(DynamoKeyRecords(table), ["A"])
    in_store, _ = create_key(published.store, ["A"])  # the store's own records are not the deployment's
    monkeypatch.setenv("SKYSHELF_STORE", published.store.url)
    monkeypatch.setenv("SKYSHELF_KEYS_TABLE", table)  # as the template sets it on each function
    settings.reset()
    try:
        status, body = _call_metadata("secret", in_table)
        assert status == 200 and body["data"]["id"] == "secret"
        status, body = _call_metadata("secret", in_store)
        assert status == 401 and body["detail"] == "unknown API key"
        monkeypatch.delenv("SKYSHELF_KEYS_TABLE")
        settings.reset()
        assert _call_metadata("secret", in_store)[0] == 200  # without a table: the store's records
    finally:
        settings.reset()
