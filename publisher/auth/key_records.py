"""Where API key records live: the store's private area (a local store, ``publish serve``) or a
DynamoDB table the deploy makes (the deployed functions). One small interface, so ``publish
keys`` and :class:`publisher.auth.keys.KeyRing` work the same on both.

A record is the JSON object :func:`publisher.auth.keys.create_key` makes (a salted hash, never the
secret). In DynamoDB it is one item keyed by ``id``, its fields as attributes (readable in the
console), written with a condition so two ``create`` runs never overwrite each other and
``revoke`` never resurrects a missing key. Reads are strongly consistent: a revocation is seen by
the next read (the handlers' cache TTL bounds how soon). boto3 (the Lambda runtime's) is imported
on the first read, never at a handler's cold start.
"""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..errors import NotFound, StoreError

if TYPE_CHECKING:
    from ..stores import Store

#: Where the store keeps the records, one ``<id>.json`` each (under ``private/``, never published).
KEYS_PREFIX = "private/auth/keys"


def record_key(key_id: str) -> str:
    return f"{KEYS_PREFIX}/{key_id}.json"


@runtime_checkable
class KeyRecords(Protocol):
    """The records of one deployment's keys."""

    #: For messages: ``s3://bucket/site`` or ``dynamodb:table``.
    where: str

    def get(self, key_id: str) -> dict[str, Any] | None:
        """The record, or None when there is none."""

    def add(self, record: dict[str, Any]) -> bool:
        """Store a new record; False (nothing written) when its id is taken."""

    def all(self) -> list[dict[str, Any]]:
        """Every record."""

    def put(self, record: dict[str, Any]) -> None:
        """Rewrite an existing record (revocation); NotFound when it is gone."""


def _checked(record: Any, where: str) -> dict[str, Any]:
    if not isinstance(record, dict) or not {"id", "salt", "sha256", "tags"} <= record.keys():
        raise StoreError(f"API key record {where!r} is damaged: not a key record")
    return record


class StoreKeyRecords:
    """One JSON object per key in the store's private area: the handler reads exactly the record
    of the key it is shown (one small GET, whatever the number of keys, no listing)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.where = store.url

    def get(self, key_id: str) -> dict[str, Any] | None:
        key = record_key(key_id)
        try:
            data = self.store.read_bytes(key)
        except NotFound:
            return None
        try:
            return _checked(json.loads(data), key)
        except ValueError as exc:
            raise StoreError(f"API key record {key!r} in {self.where} is damaged: {exc}") from None

    def add(self, record: dict[str, Any]) -> bool:
        key = record_key(record["id"])
        if self.store.exists(key):
            return False
        self.store.write_bytes(key, json.dumps(record, indent=1).encode(), atomic=True)
        return True

    def all(self) -> list[dict[str, Any]]:
        found = []
        for key, _, _ in self.store.objects(KEYS_PREFIX):
            if key.endswith(".json"):
                found.append(self.get(key[len(KEYS_PREFIX) + 1:-5]))
        return [r for r in found if r is not None]

    def put(self, record: dict[str, Any]) -> None:
        if not self.store.exists(record_key(record["id"])):
            raise NotFound(f"no API key {record['id']!r} in {self.where}")
        self.store.write_bytes(record_key(record["id"]), json.dumps(record, indent=1).encode(), atomic=True)


class DynamoKeyRecords:
    """One item per key in a DynamoDB table (partition key ``id``, a string). The endpoint and
    credentials are boto3's (``AWS_ENDPOINT_URL_DYNAMODB`` / ``AWS_ENDPOINT_URL`` for a local one)."""

    def __init__(self, table: str, client: Any = None) -> None:
        self.table = table
        self.where = f"dynamodb:{table}"
        self._client = client
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                import boto3

                self._client = boto3.client("dynamodb")
            return self._client

    def _call(self, what: str, fn: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, fn)(TableName=self.table, **kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ConditionalCheckFailedException":
                raise
            raise StoreError(f"{what} in DynamoDB table {self.table!r}: {code}: {exc.response.get('Error', {}).get('Message', '')}") from None
        except BotoCoreError as exc:
            raise StoreError(f"{what} in DynamoDB table {self.table!r}: {exc}") from None

    def get(self, key_id: str) -> dict[str, Any] | None:
        item = self._call(f"reading API key {key_id}", "get_item", Key={"id": {"S": key_id}}, ConsistentRead=True).get("Item")
        return None if item is None else _checked(_from_item(item), f"{self.where}/{key_id}")

    def add(self, record: dict[str, Any]) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._call(f"adding API key {record['id']}", "put_item", Item=_to_item(record), ConditionExpression="attribute_not_exists(id)")
        except ClientError:
            return False
        return True

    def all(self) -> list[dict[str, Any]]:
        from botocore.exceptions import BotoCoreError, ClientError

        found: list[dict[str, Any]] = []
        try:
            for page in self.client.get_paginator("scan").paginate(TableName=self.table, ConsistentRead=True):
                found += [_checked(_from_item(i), f"{self.where}/{i.get('id', {}).get('S')}") for i in page.get("Items", [])]
        except (BotoCoreError, ClientError) as exc:
            raise StoreError(f"listing API keys in DynamoDB table {self.table!r}: {exc}") from None
        return found

    def put(self, record: dict[str, Any]) -> None:
        from botocore.exceptions import ClientError

        try:
            self._call(f"updating API key {record['id']}", "put_item", Item=_to_item(record), ConditionExpression="attribute_exists(id)")
        except ClientError:
            raise NotFound(f"no API key {record['id']!r} in {self.where}") from None


def _to_item(record: dict[str, Any]) -> dict[str, Any]:
    """A record as DynamoDB attributes (boto3's serializer: strings, lists; absent values left out)."""
    from boto3.dynamodb.types import TypeSerializer

    serialize = TypeSerializer().serialize
    return {k: serialize(v) for k, v in record.items() if v is not None}


def _from_item(item: dict[str, Any]) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeDeserializer

    deserialize = TypeDeserializer().deserialize
    record = {k: deserialize(v) for k, v in item.items()}
    for optional in ("expires", "revoked"):
        record.setdefault(optional, None)
    return record


def records_of(target: Store | KeyRecords) -> KeyRecords:
    """The records a command or a handler works on: a store's private area, or given records."""
    return target if isinstance(target, KeyRecords) else StoreKeyRecords(target)
