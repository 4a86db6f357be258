"""The DynamoDB table's client wrapper: typed access to one table; the stores own the item shapes. Key design:
docs/table.md.

Uses the low-level client (the resource layer costs cold-start time for nothing here). Every method maps
DynamoDB's throttling and 5xx to ``RetryLater``; conditional-write failures are answers, not errors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from stagepilot.adapters.schema import (
    AUDIT_INDEX,
    AUDIT_INDEX_PARTITION_KEY,
    AUDIT_INDEX_SORT_KEY,
    PARTITION_KEY,
    SORT_KEY,
    STAGE_PREFIX,
)
from stagepilot.errors import RetryLater

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

STATE_RETENTION = timedelta(days=7)

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()
_RETRYABLE = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionConflictException",
    }
)


def stage_partition(stage_arn: str) -> str:
    return f"{STAGE_PREFIX}{stage_arn}"


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(value: object) -> datetime | None:
    """A time ``iso`` wrote; None for a missing or empty attribute."""
    if not isinstance(value, str) or not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def epoch(value: datetime) -> int:
    return int(value.timestamp())


class Table:
    """Thin typed access to one table; the stores below own the item shapes."""

    def __init__(self, client: DynamoDBClient, name: str) -> None:
        self.client = client
        self.name = name

    def get(self, pk: str, sk: str, *, consistent: bool = False) -> dict[str, Any] | None:
        response = self._call("get_item", Key=_key(pk, sk), ConsistentRead=consistent)
        item = response.get("Item")
        return from_item(item) if item else None

    def get_many(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        response = self._call("batch_get_item", RequestItems={self.name: {"Keys": [_key(*k) for k in keys]}})
        found = {}
        for raw in response.get("Responses", {}).get(self.name, []):
            item = from_item(raw)
            found[(item[PARTITION_KEY], item[SORT_KEY])] = item
        unprocessed = response.get("UnprocessedKeys", {}).get(self.name, {}).get("Keys")
        if unprocessed:  # only under throttling; the queue retries the event
            raise RetryLater("DynamoDB BatchGetItem left keys unprocessed")
        return found

    def put(
        self,
        item: Mapping[str, Any],
        *,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> bool:
        """Write an item; False when ``condition`` did not hold."""
        params: dict[str, Any] = {"Item": to_item(item)}
        _add_condition(params, condition, names, values)
        return self._conditional("put_item", params)

    def put_or_get(
        self,
        item: Mapping[str, Any],
        *,
        condition: str,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> tuple[bool, dict[str, Any] | None]:
        """Write an item if ``condition`` holds, else answer what is stored there — one call either way
        (``ReturnValuesOnConditionCheckFailure=ALL_OLD``), where a read then a write would be two.
        Returns (True, None) when written; (False, the stored item or None) when not."""
        params: dict[str, Any] = {"Item": to_item(item), "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}
        _add_condition(params, condition, names, values)
        try:
            self._call("put_item", **params)
        except ConditionFailed as failed:
            return False, failed.old
        return True, None

    def update(
        self,
        pk: str,
        sk: str,
        expression: str,
        *,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """Update an item and return it as it is now; None when ``condition`` did not hold."""
        params: dict[str, Any] = {
            "Key": _key(pk, sk),
            "UpdateExpression": expression,
            "ReturnValues": "ALL_NEW",
        }
        _add_condition(params, condition, names, values)
        try:
            response = self._call("update_item", **params)
        except ConditionFailed:
            return None
        return from_item(response["Attributes"])

    def update_or_get(
        self,
        pk: str,
        sk: str,
        expression: str,
        *,
        condition: str,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """Update an item if ``condition`` holds, in one call either way: (the item as it is now, None)
        when updated; (None, the stored item or None) when the condition did not hold."""
        params: dict[str, Any] = {
            "Key": _key(pk, sk),
            "UpdateExpression": expression,
            "ReturnValues": "ALL_NEW",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        _add_condition(params, condition, names, values)
        try:
            response = self._call("update_item", **params)
        except ConditionFailed as failed:
            return None, failed.old
        return from_item(response["Attributes"]), None

    def swap(
        self, pk: str, sk: str, expression: str, *, names: Mapping[str, str], values: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """Update an item unconditionally and return it as it was before (None: it did not exist) — a
        write and a read of what it replaced, in one call."""
        params: dict[str, Any] = {"Key": _key(pk, sk), "UpdateExpression": expression, "ReturnValues": "ALL_OLD"}
        _add_condition(params, None, names, values)
        old = self._call("update_item", **params).get("Attributes")
        return from_item(old) if old else None

    def apply(self, change: ConditionalUpdate) -> bool:
        """``update`` with a prepared change; False when its condition did not hold."""
        updated = self.update(
            change.pk,
            change.sk,
            change.expression,
            condition=change.condition,
            names=change.names,
            values=change.values,
        )
        return updated is not None

    def update_and_put(
        self,
        update: ConditionalUpdate,
        item: Mapping[str, Any],
        *,
        item_condition: tuple[str, Mapping[str, str]] | None = None,
    ) -> bool:
        """Apply ``update`` and write ``item`` in one transaction: one call (two write units) where two
        writes would be two calls. False when a condition (the update's, or ``item_condition``: an
        expression and its names) did not hold: nothing was written."""
        put: dict[str, Any] = {"TableName": self.name, "Item": to_item(item)}
        if item_condition is not None:
            _add_condition(put, item_condition[0], item_condition[1], None)
        return self._transact([self._update_request(update), {"Put": put}])

    def apply_all(self, changes: list[ConditionalUpdate]) -> bool:
        """Apply every change or none (one transaction); False when a condition did not hold. Another
        transaction on one of the items at the same time is not an answer: ``RetryLater``."""
        return self._transact([self._update_request(change) for change in changes], conflict_answers=False)

    def _update_request(self, change: ConditionalUpdate) -> dict[str, Any]:
        request: dict[str, Any] = {"TableName": self.name, "Key": _key(change.pk, change.sk)}
        request["UpdateExpression"] = change.expression
        _add_condition(request, change.condition, change.names, change.values)
        return {"Update": request}

    def delete_and_put(
        self,
        pk: str,
        sk: str,
        *puts: ConditionalPut,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> bool:
        """Delete an item and write ``puts`` in one transaction; False when a condition did not hold."""
        delete: dict[str, Any] = {"TableName": self.name, "Key": _key(pk, sk)}
        _add_condition(delete, condition, names, values)
        return self._transact([{"Delete": delete}, *(self._put_request(put) for put in puts)])

    def _put_request(self, put: ConditionalPut) -> dict[str, Any]:
        params: dict[str, Any] = {"TableName": self.name, "Item": to_item(put.item)}
        _add_condition(params, put.condition, put.names, put.values)
        return {"Put": params}

    def put_all(self, puts: list[ConditionalPut]) -> bool:
        """Write every item or none (one transaction); False when a condition did not hold or another
        transaction wrote one of the items at the same time."""
        return self._transact([self._put_request(put) for put in puts])

    def _transact(self, items: list[dict[str, Any]], *, conflict_answers: bool = True) -> bool:
        try:
            self._call("transact_write_items", TransactItems=items)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            reasons = {r.get("Code") for r in exc.response.get("CancellationReasons", [])} - {"None", None}
            if reasons <= (
                {"ConditionalCheckFailed", "TransactionConflict"} if conflict_answers else {"ConditionalCheckFailed"}
            ):
                return False
            raise RetryLater(f"DynamoDB TransactWriteItems: {sorted(reasons)}") from exc
        return True

    def delete(
        self,
        pk: str,
        sk: str,
        *,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> bool:
        params: dict[str, Any] = {"Key": _key(pk, sk)}
        _add_condition(params, condition, names, values)
        return self._conditional("delete_item", params)

    def query(
        self,
        pk: str,
        *,
        sk_prefix: str | None = None,
        newest_first: bool = False,
        limit: int | None = None,
        index: str | None = None,
        sk_between: tuple[str, str] | None = None,
        attribute_in: tuple[str, Sequence[str]] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The partition's items (on ``index``'s keys), those whose sort key starts with ``sk_prefix`` or
        lies in ``sk_between`` (both ends included: a key condition, so only those are read).
        ``attribute_in`` (name, values): DynamoDB returns only items whose attribute is one of the values,
        or that lack it (items written before it existed: the caller checks those itself)."""
        params = _query_params(pk, sk_prefix=sk_prefix, index=index, sk_between=sk_between)
        if attribute_in is not None and attribute_in[1]:
            name, allowed = attribute_in
            placeholders = [f":in{i}" for i in range(len(allowed))]
            params["FilterExpression"] = f"attribute_not_exists(#in) OR #in IN ({', '.join(placeholders)})"
            params["ExpressionAttributeNames"]["#in"] = name
            params["ExpressionAttributeValues"].update(to_item(dict(zip(placeholders, allowed, strict=True))))
        params["ScanIndexForward"] = not newest_first
        returned = 0
        while True:
            if limit is not None:
                params["Limit"] = limit - returned
            page = self._call("query", **params)
            for raw in page.get("Items", []):
                yield from_item(raw)
                returned += 1
            if "LastEvaluatedKey" not in page or (limit is not None and returned >= limit):
                return
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def query_pages(self, pk: str, *, pages: int, consistent: bool = False) -> tuple[list[dict[str, Any]], int, bool]:
        """At most ``pages`` ``Query`` calls over the partition (each page up to DynamoDB's 1 MB): the items
        read, the calls made, and whether that was all of the partition."""
        params = _query_params(pk)
        if consistent:
            params["ConsistentRead"] = True
        items: list[dict[str, Any]] = []
        for made in range(1, pages + 1):
            page = self._call("query", **params)
            items.extend(from_item(raw) for raw in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items, made, True
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return items, pages, False

    def holds_any(self, pk: str, *, consistent: bool = False) -> bool:
        """Whether the partition holds an item: one ``Query`` with ``Limit`` 1 (its key only)."""
        params = _query_params(pk)
        if consistent:
            params["ConsistentRead"] = True
        page = self._call("query", Limit=1, ProjectionExpression="#pk", **params)
        return bool(page.get("Items"))

    def _conditional(self, method: str, params: dict[str, Any]) -> bool:
        try:
            self._call(method, **params)
        except ConditionFailed:
            return False
        return True

    def _call(self, method: str, **params: Any) -> dict[str, Any]:
        try:
            if method not in ("batch_get_item", "batch_write_item", "transact_write_items"):
                params["TableName"] = self.name
            call: Callable[..., dict[str, Any]] = getattr(self.client, method)
            return call(**params)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "ConditionalCheckFailedException":
                old = exc.response.get("Item")
                raise ConditionFailed(from_item(old) if old else None) from exc
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if code in _RETRYABLE or status >= 500:
                raise RetryLater(f"DynamoDB {method}: {code}") from exc
            raise
        except ParamValidationError:
            raise  # a bug in this code, not a transient failure
        except BotoCoreError as exc:
            raise RetryLater(f"DynamoDB {method}: {exc}") from exc


def _query_params(
    pk: str, *, sk_prefix: str | None = None, index: str | None = None, sk_between: tuple[str, str] | None = None
) -> dict[str, Any]:
    """A ``Query``'s key condition: the partition, and a sort key prefix or range when given (on ``index``'s
    keys)."""
    pk_name = AUDIT_INDEX_PARTITION_KEY if index == AUDIT_INDEX else PARTITION_KEY
    sk_name = AUDIT_INDEX_SORT_KEY if index == AUDIT_INDEX else SORT_KEY
    condition, values = "#pk = :pk", {":pk": pk}
    if sk_between is not None:
        condition += " AND #sk BETWEEN :low AND :high"
        values.update({":low": sk_between[0], ":high": sk_between[1]})
    elif sk_prefix:
        condition += " AND begins_with(#sk, :prefix)"
        values[":prefix"] = sk_prefix
    params: dict[str, Any] = {
        "KeyConditionExpression": condition,
        "ExpressionAttributeNames": {"#pk": pk_name, **({"#sk": sk_name} if len(values) > 1 else {})},
        "ExpressionAttributeValues": to_item(values),
    }
    if index:
        params["IndexName"] = index
    return params


class ConditionFailed(Exception):
    def __init__(self, old: dict[str, Any] | None = None) -> None:
        super().__init__("the condition did not hold")
        self.old = old  # the stored item, when the request asked for it (ALL_OLD)


@dataclass(frozen=True)
class ConditionalPut:
    """One item of ``Table.put_all``."""

    item: Mapping[str, Any]
    condition: str | None = None
    names: Mapping[str, str] | None = None
    values: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class ConditionalUpdate:
    """The update half of ``Table.update_and_put``."""

    pk: str
    sk: str
    expression: str
    condition: str | None = None
    names: Mapping[str, str] | None = None
    values: Mapping[str, Any] | None = None


# helpers -------------------------------------------------------------------------------------------
def _key(pk: str, sk: str) -> dict[str, Any]:
    return {PARTITION_KEY: {"S": pk}, SORT_KEY: {"S": sk}}


def to_item(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(v) for k, v in values.items()}


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: _deserializer.deserialize(v) for k, v in item.items()}
    for k, v in out.items():  # Decimal → int for the counters and versions this table holds
        if type(v).__name__ == "Decimal" and v == int(v):
            out[k] = int(v)
    return out


def _add_condition(
    params: dict[str, Any],
    condition: str | None,
    names: Mapping[str, str] | None,
    values: Mapping[str, Any] | None,
) -> None:
    if condition:
        params["ConditionExpression"] = condition
    if names:
        params["ExpressionAttributeNames"] = dict(names)
    if values:
        params["ExpressionAttributeValues"] = to_item(values)
