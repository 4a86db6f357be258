"""The DynamoDB table: policies, bans, automation state and the audit trail. Key design: docs/table.md.

Uses the low-level client (the resource layer costs cold-start time for nothing here). Every method maps
DynamoDB's throttling and 5xx to ``RetryLater``; conditional-write failures are answers, not errors.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from stagepilot.adapters.schema import (
    AUDIT_INDEX,
    AUDIT_INDEX_PARTITION_KEY,
    AUDIT_INDEX_SORT_KEY,
    AUDIT_PARTITION,
    BAN_PARTITION,
    HISTORY_PREFIX,
    PARTITION_KEY,
    PAUSE_PARTITION,
    POLICY_PARTITION,
    SORT_KEY,
    STAGE_PREFIX,
    TTL_ATTRIBUTE,
)
from stagepilot.errors import ConflictError, MalformedItem, NotFound, RetryLater
from stagepilot.policy import DEFAULT_STAGE, StagePolicy, parse_policy

logger = logging.getLogger(__name__)

STATE_RETENTION = timedelta(days=7)
AUDIT_RETENTION = timedelta(days=90)
HISTORY_VERSIONS = 20  # `policy history` / `policy rollback`: the last this many versions of a policy

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


def history_partition(stage_arn: str) -> str:
    return f"{HISTORY_PREFIX}{stage_arn}"


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

    def __init__(self, client: Any, name: str) -> None:
        self.client = client
        self.name = name

    def get(self, pk: str, sk: str, *, consistent: bool = False) -> dict[str, Any] | None:
        response = self._call("get_item", Key=_key(pk, sk), ConsistentRead=consistent)
        item = response.get("Item")
        return _from_item(item) if item else None

    def get_many(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        response = self._call("batch_get_item", RequestItems={self.name: {"Keys": [_key(*k) for k in keys]}})
        found = {}
        for raw in response.get("Responses", {}).get(self.name, []):
            item = _from_item(raw)
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
        params: dict[str, Any] = {"Item": _to_item(item)}
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
        params: dict[str, Any] = {"Item": _to_item(item), "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}
        _add_condition(params, condition, names, values)
        try:
            self._call("put_item", **params)
        except _ConditionFailed as failed:
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
        except _ConditionFailed:
            return None
        return _from_item(response["Attributes"])

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
        except _ConditionFailed as failed:
            return None, failed.old
        return _from_item(response["Attributes"]), None

    def swap(
        self, pk: str, sk: str, expression: str, *, names: Mapping[str, str], values: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """Update an item unconditionally and return it as it was before (None: it did not exist) — a
        write and a read of what it replaced, in one call."""
        params: dict[str, Any] = {"Key": _key(pk, sk), "UpdateExpression": expression, "ReturnValues": "ALL_OLD"}
        _add_condition(params, None, names, values)
        old = self._call("update_item", **params).get("Attributes")
        return _from_item(old) if old else None

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

    def update_and_put(self, update: ConditionalUpdate, item: Mapping[str, Any]) -> bool:
        """Apply ``update`` and write ``item`` in one transaction: one call (two write units) where two
        writes would be two calls. False when the update's condition did not hold: nothing was written."""
        return self._transact([self._update_request(update), {"Put": {"TableName": self.name, "Item": _to_item(item)}}])

    def apply_all(self, changes: list[ConditionalUpdate]) -> bool:
        """Apply every change or none (one transaction); False when a condition did not hold. Another
        transaction on one of the items at the same time is not an answer: ``RetryLater``."""
        return self._transact([self._update_request(change) for change in changes], conflict_answers=False)

    def _update_request(self, change: ConditionalUpdate) -> dict[str, Any]:
        request: dict[str, Any] = {"TableName": self.name, "Key": _key(change.pk, change.sk)}
        request["UpdateExpression"] = change.expression
        _add_condition(request, change.condition, change.names, change.values)
        return {"Update": request}

    def put_many(self, items: list[Mapping[str, Any]]) -> None:
        """Write up to 25 items in one ``BatchWriteItem`` (no transaction: each item stands alone, at half
        a transaction's cost). Items DynamoDB leaves unprocessed (throttling) are tried once more, then
        ``RetryLater``."""
        requests = [{"PutRequest": {"Item": _to_item(item)}} for item in items]
        for _ in range(2):
            response = self._call("batch_write_item", RequestItems={self.name: requests})
            requests = response.get("UnprocessedItems", {}).get(self.name, [])
            if not requests:
                return
        raise RetryLater("DynamoDB BatchWriteItem left items unprocessed")

    def put_all(self, puts: list[ConditionalPut]) -> bool:
        """Write every item or none (one transaction); False when a condition did not hold or another
        transaction wrote one of the items at the same time."""
        items = []
        for put in puts:
            params: dict[str, Any] = {"TableName": self.name, "Item": _to_item(put.item)}
            _add_condition(params, put.condition, put.names, put.values)
            items.append({"Put": params})
        return self._transact(items)

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
    ) -> Iterator[dict[str, Any]]:
        params = _query_params(pk, sk_prefix=sk_prefix, index=index)
        params["ScanIndexForward"] = not newest_first
        returned = 0
        while True:
            if limit is not None:
                params["Limit"] = limit - returned
            page = self._call("query", **params)
            for raw in page.get("Items", []):
                yield _from_item(raw)
                returned += 1
            if "LastEvaluatedKey" not in page or (limit is not None and returned >= limit):
                return
            params["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def query_page(self, pk: str) -> tuple[list[dict[str, Any]], bool]:
        """One ``Query`` call: the partition's first page (up to DynamoDB's 1 MB) and whether it was all."""
        page = self._call("query", **_query_params(pk))
        return [_from_item(raw) for raw in page.get("Items", [])], "LastEvaluatedKey" not in page

    def _conditional(self, method: str, params: dict[str, Any]) -> bool:
        try:
            self._call(method, **params)
        except _ConditionFailed:
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
                raise _ConditionFailed(_from_item(old) if old else None) from exc
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if code in _RETRYABLE or status >= 500:
                raise RetryLater(f"DynamoDB {method}: {code}") from exc
            raise
        except ParamValidationError:
            raise  # a bug in this code, not a transient failure
        except BotoCoreError as exc:
            raise RetryLater(f"DynamoDB {method}: {exc}") from exc


def _query_params(pk: str, *, sk_prefix: str | None = None, index: str | None = None) -> dict[str, Any]:
    """A ``Query``'s key condition: the partition, and a sort key prefix when given (on ``index``'s keys)."""
    pk_name = AUDIT_INDEX_PARTITION_KEY if index == AUDIT_INDEX else PARTITION_KEY
    sk_name = AUDIT_INDEX_SORT_KEY if index == AUDIT_INDEX else SORT_KEY
    params: dict[str, Any] = {
        "KeyConditionExpression": "#pk = :pk" + (" AND begins_with(#sk, :prefix)" if sk_prefix else ""),
        "ExpressionAttributeNames": {"#pk": pk_name, **({"#sk": sk_name} if sk_prefix else {})},
        "ExpressionAttributeValues": _to_item({":pk": pk, **({":prefix": sk_prefix} if sk_prefix else {})}),
    }
    if index:
        params["IndexName"] = index
    return params


class _ConditionFailed(Exception):
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


# Policies ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StoredPolicy:
    """A policy item as stored: its document, version and who wrote it when."""

    stage_arn: str
    version: int
    updated_at: str
    document: dict[str, Any]
    updated_by: str = ""  # the caller's ARN (STS GetCallerIdentity) of the CLI command that wrote it

    def parse(self) -> StagePolicy:
        return parse_policy(self.document)


@dataclass(frozen=True)
class PolicyLookup:
    """What one read found for a stage: its own policy, the default one, and the pause switch."""

    own: StoredPolicy | None
    default: StoredPolicy | None
    paused_by: str | None  # the pause switch that holds the stage: its own ARN, "default", or None


@dataclass(frozen=True)
class PolicySnapshot:
    """Every stored policy (raw items by stage ARN) and the ARNs of every pause switch, read together."""

    policies: Mapping[str, Mapping[str, Any]]
    paused: frozenset[str]

    def lookup(self, stage_arn: str) -> PolicyLookup:
        """What ``PolicyStore.lookup`` reads for the stage, from the snapshot."""
        return _policy_lookup(stage_arn, self.policies, self.paused)


def _policy_lookup(stage_arn: str, policies: Mapping[str, Mapping[str, Any]], paused: AbstractSet[str]) -> PolicyLookup:
    """A stage's own policy, the default one, and which pause switch holds it, from the items read."""
    own, default = policies.get(stage_arn), policies.get(DEFAULT_STAGE)
    paused_by = None
    if stage_arn in paused:
        paused_by = stage_arn
    elif own is None and DEFAULT_STAGE in paused:
        paused_by = DEFAULT_STAGE  # 'default' is paused, and the stage follows 'default'
    return PolicyLookup(
        own=_stored_policy(own, stage_arn) if own else None,
        default=_stored_policy(default, DEFAULT_STAGE) if default else None,
        paused_by=paused_by,
    )


class PolicyStore:
    """Policies, one item each, under one partition (a Query lists them all; ≤ a few thousand items).

    With ``history=True`` a write also keeps the new version's document under ``HISTORY#<stage>``, in the
    same transaction (so a role that may not write history cannot put it), and drops versions older than
    the last ``HISTORY_VERSIONS``. Versions keep counting up across a delete, so a version number names
    one document for good.
    """

    def __init__(self, table: Table, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._table = table
        self._clock = clock

    def get(self, stage_arn: str) -> StoredPolicy | None:
        item = self._table.get(POLICY_PARTITION, stage_arn, consistent=True)
        return _stored_policy(item) if item else None

    def get_with_default(self, stage_arn: str) -> tuple[StoredPolicy | None, StoredPolicy | None]:
        """The stage's own policy and the default policy, in one request."""
        found = self.lookup(stage_arn)
        return found.own, found.default

    def lookup(self, stage_arn: str) -> PolicyLookup:
        """Everything that decides a stage's effective policy, in one request: its own policy, the default
        policy, and the pause switches of the stage and of ``default``."""
        return self.lookup_in(stage_arn, self._table.get_many(self.lookup_keys(stage_arn)))

    @staticmethod
    def lookup_keys(stage_arn: str) -> list[tuple[str, str]]:
        """The keys ``lookup`` reads (for a caller that reads them with others in one request)."""
        return list(
            dict.fromkeys(
                [
                    (POLICY_PARTITION, stage_arn),
                    (POLICY_PARTITION, DEFAULT_STAGE),
                    (PAUSE_PARTITION, stage_arn),
                    (PAUSE_PARTITION, DEFAULT_STAGE),
                ]
            )
        )

    @staticmethod
    def lookup_in(stage_arn: str, found: Mapping[tuple[str, str], Mapping[str, Any]]) -> PolicyLookup:
        """What ``lookup`` answers, from items read at (at least) ``lookup_keys(stage_arn)``."""
        policies = {sk: item for (pk, sk), item in found.items() if pk == POLICY_PARTITION}
        return _policy_lookup(stage_arn, policies, {sk for (pk, sk) in found if pk == PAUSE_PARTITION})

    def snapshot(self) -> PolicySnapshot | None:
        """Every policy and every pause switch, in one ``Query`` page each: what ``lookup`` would find for any
        stage. None when either partition needs more than one page (roughly more than 500 policies)."""
        policies, complete = self._table.query_page(POLICY_PARTITION)
        if not complete:
            return None
        switches, complete = self._table.query_page(PAUSE_PARTITION)
        if not complete:
            return None
        return PolicySnapshot(
            policies={item[SORT_KEY]: item for item in policies}, paused=frozenset(i[SORT_KEY] for i in switches)
        )

    def full_snapshot(self) -> PolicySnapshot:
        """``snapshot``, however many pages each partition takes (the convergence pass's settings check,
        once per pass: reading each stage on its own would be a call per stage)."""
        return PolicySnapshot(
            policies={item[SORT_KEY]: item for item in self._table.query(POLICY_PARTITION)},
            paused=frozenset(item[SORT_KEY] for item in self._table.query(PAUSE_PARTITION)),
        )

    def list(self) -> list[StoredPolicy]:
        return [_stored_policy(item) for item in self._table.query(POLICY_PARTITION)]

    def put(
        self,
        policy: StagePolicy,
        *,
        expected_version: int | None = None,
        updated_by: str = "",
        history: bool = False,
    ) -> StoredPolicy:
        """Write a policy. ``expected_version``: the version the writer read (0 = must not exist yet);
        None means "whatever is stored now", read first, so two concurrent writers still conflict."""
        if expected_version is None:
            current = self.get(policy.stage_arn)
            expected_version = current.version if current else 0
        after = expected_version if expected_version else self._last_version(policy.stage_arn)
        stored = StoredPolicy(
            stage_arn=policy.stage_arn,
            version=after + 1,
            updated_at=iso(self._clock()),
            document=policy.to_document(),
            updated_by=updated_by,
        )
        item = {
            PARTITION_KEY: POLICY_PARTITION,
            SORT_KEY: stored.stage_arn,
            "version": stored.version,
            "updatedAt": stored.updated_at,
            "document": json.dumps(stored.document, sort_keys=True),
            **({"updatedBy": updated_by} if updated_by else {}),
        }
        if expected_version == 0:
            write = ConditionalPut(item, "attribute_not_exists(#pk)", {"#pk": PARTITION_KEY})
        else:
            write = ConditionalPut(item, "#v = :v", {"#v": "version"}, {":v": expected_version})
        if history:
            kept = {**item, PARTITION_KEY: history_partition(stored.stage_arn), SORT_KEY: _version_key(stored.version)}
            written = self._table.put_all([write, ConditionalPut(kept)])
        else:
            written = self._table.put(write.item, condition=write.condition, names=write.names, values=write.values)
        if not written:
            raise ConflictError(
                f"policy for {policy.stage_arn} changed since version {expected_version} was read; "
                "get it again, re-apply your change, and put it"
            )
        if history:
            self._prune_history(stored.stage_arn)
        return stored

    def delete(self, stage_arn: str, *, expected_version: int | None = None) -> StoredPolicy:
        """Delete the stored policy (only if it is still ``expected_version``, when given); returns it."""
        current = self.get(stage_arn)
        if current is None:
            raise NotFound(f"no policy stored for {stage_arn}")
        version = current.version if expected_version is None else expected_version
        if not self._table.delete(
            POLICY_PARTITION,
            stage_arn,
            condition="attribute_exists(#pk) AND #v = :v",
            names={"#pk": PARTITION_KEY, "#v": "version"},
            values={":v": version},
        ):
            raise ConflictError(f"policy for {stage_arn} changed since version {version} was read; nothing deleted")
        return current

    def history(self, stage_arn: str) -> tuple[StoredPolicy, ...]:
        """The kept versions of the stage's policy, newest first."""
        return tuple(
            _stored_policy(item, stage_arn)
            for item in self._table.query(history_partition(stage_arn), newest_first=True, limit=HISTORY_VERSIONS)
        )

    def version(self, stage_arn: str, version: int) -> StoredPolicy | None:
        item = self._table.get(history_partition(stage_arn), _version_key(version), consistent=True)
        return _stored_policy(item, stage_arn) if item else None

    def _last_version(self, stage_arn: str) -> int:
        newest = next(iter(self._table.query(history_partition(stage_arn), newest_first=True, limit=1)), None)
        return int(newest.get("version", 0)) if newest else 0

    def _prune_history(self, stage_arn: str) -> None:
        items = self._table.query(history_partition(stage_arn), newest_first=True)
        for item in list(items)[HISTORY_VERSIONS:]:
            self._table.delete(item[PARTITION_KEY], item[SORT_KEY])


def _version_key(version: int) -> str:
    return f"v{version:010d}"  # sorts by version


def _stored_policy(item: Mapping[str, Any], stage_arn: str | None = None) -> StoredPolicy:
    raw = item.get("document", "")
    try:
        document = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError:
        document = {"__unreadable__": raw}
    return StoredPolicy(
        stage_arn=stage_arn or item[SORT_KEY],
        version=int(item.get("version", 0)),
        updated_at=str(item.get("updatedAt", "")),
        document=document,
        updated_by=str(item.get("updatedBy", "")),
    )


# The kill switch -----------------------------------------------------------------------------------
RESUMED_KEY: Final = "RESUMED"  # sort key, in the stage's partition: when its pause switch was last lifted


@dataclass(frozen=True)
class PauseSwitch:
    """A ``PAUSE`` item: who paused the stage (or ``default``) and when."""

    stage_arn: str  # or "default": every stage without a policy of its own
    paused_at: str
    paused_by: str


class PauseSwitches:
    """``stagepilot pause``: one item per paused stage, apart from the policies, so operators may stop
    and restart the automation (IAM writes on ``PAUSE`` items) without being able to write a policy.
    A switch pauses the stage whatever its policy says; a policy's own ``paused: true`` pauses it too."""

    def __init__(self, table: Table, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._table = table
        self._clock = clock

    def pause(self, stage_arn: str, *, by: str) -> bool:
        """True when this call paused it; False when it was paused already."""
        item = {PARTITION_KEY: PAUSE_PARTITION, SORT_KEY: stage_arn, "pausedAt": iso(self._clock()), "pausedBy": by}
        return self._table.put(item, condition="attribute_not_exists(#pk)", names={"#pk": PARTITION_KEY})

    def resume(self, stage_arn: str) -> bool:
        """True when this call lifted the switch; False when there was none. A lifted switch leaves a
        ``RESUMED`` mark in the stage's partition (when, kept ``STATE_RETENTION``): the convergence pass
        audits what it then does as ``resumed``, not as lost events (decisions/heals.py)."""
        lifted = self._table.delete(
            PAUSE_PARTITION, stage_arn, condition="attribute_exists(#pk)", names={"#pk": PARTITION_KEY}
        )
        if lifted:
            now = self._clock()
            self._table.put(
                {
                    PARTITION_KEY: stage_partition(stage_arn),
                    SORT_KEY: RESUMED_KEY,
                    "resumedAt": iso(now),
                    TTL_ATTRIBUTE: epoch(now + STATE_RETENTION),
                }
            )
        return lifted

    def resumed_at(self, stage_arn: str) -> datetime | None:
        """When the stage's own switch (or ``default``'s, which it may follow) was last lifted; None: never
        (within ``STATE_RETENTION``)."""
        found = self._table.get_many(
            [(stage_partition(arn), RESUMED_KEY) for arn in dict.fromkeys((stage_arn, DEFAULT_STAGE))]
        )
        times = [parse_iso(item.get("resumedAt")) for item in found.values()]
        return max((t for t in times if t is not None), default=None)

    def list(self) -> dict[str, PauseSwitch]:
        return {
            item[SORT_KEY]: PauseSwitch(
                stage_arn=item[SORT_KEY],
                paused_at=str(item.get("pausedAt", "")),
                paused_by=str(item.get("pausedBy", "")),
            )
            for item in self._table.query(PAUSE_PARTITION)
        }


# Bans ----------------------------------------------------------------------------------------------
JOIN: Final = "join"  # the user may not be on the stage at all
PUBLISH: Final = "publish"  # the user may watch but not publish
BAN_SCOPES: Final = (JOIN, PUBLISH)


@dataclass(frozen=True)
class Ban:
    """A ban of one user id, global (``stage_arn`` None) or for one stage, until ``expires_at`` (None: until
    lifted). ``scope``: ``join`` (not on the stage at all) or ``publish`` (may watch, may not publish)."""

    user_id: str
    reason: str
    created_at: str
    expires_at: datetime | None
    stage_arn: str | None = None
    scope: str = JOIN

    def active(self, now: datetime) -> bool:
        return self.expires_at is None or self.expires_at > now

    def until(self) -> str:
        """``until 2026-12-01 12:00:00Z`` or ``permanently``."""
        return f"until {self.expires_at:%Y-%m-%d %H:%M:%SZ}" if self.expires_at else "permanently"

    def where(self) -> str:
        """Where the ban holds, for a message: ``""`` (a global join ban: plainly banned), ``on <stage ARN>``,
        ``from publishing everywhere``, ``from publishing on <stage ARN>``."""
        place = f"on {self.stage_arn}" if self.stage_arn else ""
        if self.scope == JOIN:
            return place
        return f"from publishing {place or 'everywhere'}"

    def banned(self) -> str:
        """``<user id>`` followed by where, for a message."""
        return " ".join(part for part in (self.user_id, self.where()) if part)


def ban_key(user_id: str, stage_arn: str | None = None) -> tuple[str, str]:
    """The ban's item key: the user id for a global ban, ``<user id>#<stage ARN>`` for a stage's. The item
    also carries ``userId`` (and ``stageArn``), which are what a reader trusts: a user id that itself ends in
    ``#<stage ARN>`` shares a key with that stage ban, and then the two cannot both be stored (``ban add``
    without ``--replace`` refuses the second), never mistaken for each other."""
    return BAN_PARTITION, user_id if stage_arn is None else f"{user_id}#{stage_arn}"


def ban_keys(user_id: str, stage_arn: str) -> list[tuple[str, str]]:
    """The keys of every ban that can apply to the user on the stage: the global one and the stage's."""
    return [ban_key(user_id), ban_key(user_id, stage_arn)]


def strongest(bans: Iterable[Ban | None]) -> Ban | None:
    """The ban that decides: a ``join`` ban over a ``publish`` one, a global ban over a stage's."""
    found = [ban for ban in bans if ban is not None]
    return min(found, key=lambda ban: (ban.scope != JOIN, ban.stage_arn is not None), default=None)


class BanStore:
    """The ban list (global and per stage). Expired bans are ignored at once (TTL deletion can lag by up
    to 48 h)."""

    def __init__(self, table: Table, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._table = table
        self._clock = clock

    def add(
        self,
        user_id: str,
        *,
        reason: str = "",
        ttl: timedelta | None = None,
        replace: bool = True,
        stage_arn: str | None = None,
        scope: str = JOIN,
    ) -> tuple[Ban, Ban | None]:
        """Ban ``user_id`` (everywhere, or on ``stage_arn``); returns the ban and the one it replaced.
        ``replace=False`` (``ban add`` without ``--replace``) keeps a ban in force and raises
        ``ConflictError``: a second ``ban add --ttl 1h`` must not shorten a permanent ban. Seeding
        (simulate's ban file) replaces."""
        if scope not in BAN_SCOPES:
            raise ValueError(f"a ban's scope is join or publish, not {scope!r}")
        now = self._clock()
        ban = Ban(
            user_id=user_id,
            reason=reason,
            created_at=iso(now),
            expires_at=now + ttl if ttl else None,
            stage_arn=stage_arn,
            scope=scope,
        )
        pk, sk = ban_key(user_id, stage_arn)
        item: dict[str, Any] = {
            PARTITION_KEY: pk,
            SORT_KEY: sk,
            "userId": user_id,
            "reason": reason,
            "createdAt": ban.created_at,
            "scope": scope,
        }
        if stage_arn is not None:
            item["stageArn"] = stage_arn
        if ban.expires_at:
            item[TTL_ATTRIBUTE] = epoch(ban.expires_at)
        if replace:
            previous = self.get(user_id, stage_arn=stage_arn)
            self._table.put(item)
            return ban, previous
        # Written only if no ban is in force: none stored, or the stored one has expired (TTL lags).
        if not self._table.put(
            item,
            condition="attribute_not_exists(#pk) OR (attribute_exists(#exp) AND #exp <= :now)",
            names={"#pk": PARTITION_KEY, "#exp": TTL_ATTRIBUTE},
            values={":now": epoch(now)},
        ):
            current = self.get(user_id, stage_arn=stage_arn)
            until = " ".join(filter(None, [current.where(), current.until()])) if current else "(the ban just changed)"
            raise ConflictError(f"{user_id} is already banned {until}; pass --replace to replace that ban")
        return ban, None

    def remove(self, user_id: str, *, stage_arn: str | None = None) -> Ban:
        """Lift the ban (the global one, or the stage's); returns it."""
        pk, sk = ban_key(user_id, stage_arn)
        current = self._table.get(pk, sk, consistent=True)
        if (
            current is None
            or _ban(current).stage_arn != stage_arn
            or not self._table.delete(pk, sk, condition="attribute_exists(#pk)", names={"#pk": PARTITION_KEY})
        ):
            where = f" on {stage_arn}" if stage_arn else ""
            raise NotFound(f"{user_id} is not banned{where}")
        return _ban(current)

    def get(self, user_id: str, *, stage_arn: str | None = None) -> Ban | None:
        """The ban in force stored for the user everywhere (or, with ``stage_arn``, that stage's own)."""
        return self._matching(self._table.get(*ban_key(user_id, stage_arn)), user_id, stage_arn)

    def for_stage(self, user_id: str, stage_arn: str) -> Ban | None:
        """The ban that applies to the user on the stage (global or the stage's), one request."""
        return self.for_stage_with(user_id, stage_arn, [])[0]

    def for_stage_with(
        self, user_id: str, stage_arn: str, keys: list[tuple[str, str]]
    ) -> tuple[Ban | None, dict[tuple[str, str], dict[str, Any]]]:
        """The ban that applies to the user on the stage, and the items at ``keys``, in one request."""
        found = self._table.get_many(list(dict.fromkeys([*ban_keys(user_id, stage_arn), *keys])))
        return self.applying(found, user_id, stage_arn), found

    def applying(self, found: Mapping[tuple[str, str], Mapping[str, Any]], user_id: str, stage_arn: str) -> Ban | None:
        """From items read at (at least) ``ban_keys(user_id, stage_arn)``: the ban that applies."""
        return strongest(
            self._matching(found.get(ban_key(user_id, where)), user_id, where) for where in (None, stage_arn)
        )

    def get_with(self, user_id: str, stage_arn: str, key: tuple[str, str]) -> tuple[Ban | None, dict[str, Any] | None]:
        """The ban that applies to the user on the stage and the item at ``key``, in one request."""
        ban, found = self.for_stage_with(user_id, stage_arn, [key])
        return ban, found.get(key)

    def active(self, item: Mapping[str, Any] | None) -> Ban | None:
        ban = _ban(item) if item else None
        return ban if ban and ban.active(self._clock()) else None

    def _matching(self, item: Mapping[str, Any] | None, user_id: str, stage_arn: str | None) -> Ban | None:
        ban = self.active(item)
        return ban if ban is not None and ban.user_id == user_id and ban.stage_arn == stage_arn else None

    def list(self) -> list[Ban]:
        """Every ban in force, global and per stage. A malformed ban item is logged (its key and field) and
        left out: one bad item does not hide the others (``get`` on that user raises ``MalformedItem``)."""
        now = self._clock()
        bans = []
        for item in self._table.query(BAN_PARTITION):
            try:
                ban = _ban(item)
            except MalformedItem as exc:
                logger.error(
                    "malformed ban item skipped", extra={"key": exc.key, "field": exc.field, "error": str(exc)}
                )
                continue
            if ban.active(now):
                bans.append(ban)
        return bans


def _ban(item: Mapping[str, Any]) -> Ban:
    expires = item.get(TTL_ATTRIBUTE)
    stage_arn = item.get("stageArn")
    if expires is not None and (isinstance(expires, bool) or not isinstance(expires, int | float | Decimal)):
        raise MalformedItem(
            f"{BAN_PARTITION}/{item.get(SORT_KEY)}",
            TTL_ATTRIBUTE,
            f"expected epoch seconds (a number), found {type(expires).__name__} {str(expires)[:40]!r}",
        )
    return Ban(
        user_id=str(item.get("userId", item[SORT_KEY])),  # bans stored before stage bans carry no userId
        reason=str(item.get("reason", "")),
        created_at=str(item.get("createdAt", "")),
        expires_at=datetime.fromtimestamp(int(expires), UTC) if expires is not None else None,
        stage_arn=str(stage_arn) if stage_arn else None,
        scope=PUBLISH if item.get("scope") == PUBLISH else JOIN,
    )


# Audit trail ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AuditRecord:
    """One audit entry: what an automation did (or would have done) on a stage, and why."""

    time: datetime  # when it happened by the event's word; ``AuditLog`` stamps its own clock's time
    stage_arn: str
    automation: str
    action: str  # e.g. "composition-start-rejected", "disconnect", "would-disconnect"
    reason: str
    session_id: str | None = None
    participant_id: str | None = None
    user_id: str | None = None
    rule: str | None = None
    dry_run: bool = False
    result: str = ""
    event_id: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    event_time: datetime | None = None  # set by ``AuditLog.record``: the event's own time

    def to_json(self) -> dict[str, Any]:
        out = {
            "time": iso(self.time),
            "eventTime": iso(self.event_time) if self.event_time is not None else None,
            "stageArn": self.stage_arn,
            "automation": self.automation,
            "action": self.action,
            "reason": self.reason,
            "sessionId": self.session_id,
            "participantId": self.participant_id,
            "userId": self.user_id,
            "rule": self.rule,
            "dryRun": self.dry_run,
            "result": self.result,
            "eventId": self.event_id,
            "details": dict(self.details),
        }
        return {k: v for k, v in out.items() if v not in (None, {}, "")}


class AuditLog:
    """Newest-first trail of actions per stage, and across stages through the sparse time index.

    Entries are ordered, and expire, by the time they are written (this clock), never by the time an
    event claims: a sender cannot date an entry into the past to hide it or make it expire at once.
    The event's own time is kept as ``eventTime``.
    """

    def __init__(self, table: Table, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._table = table
        self._clock = clock

    def record(self, entry: AuditRecord) -> None:
        self._table.put(self.item(entry))

    def record_with(self, entry: AuditRecord, change: ConditionalUpdate) -> bool:
        """Apply ``change`` (the state change this entry audits) and write the entry, in one call. The
        entry is written even when the change's condition no longer holds (then in a second call), as
        ``record`` next to a separate update would have. True when the change was applied."""
        item = self.item(entry)
        if self._table.update_and_put(change, item):
            return True
        self._table.put(item)
        return False

    def item(self, entry: AuditRecord) -> dict[str, Any]:
        """The table item ``record`` writes, for a caller that writes it in the same transaction as the
        state change it audits (``Table.update_and_put``)."""
        entry = replace(entry, time=self._clock(), event_time=entry.event_time or entry.time)
        # The suffix is deterministic per (event, action): a retry at the same time writes the same item.
        identity = json.dumps(
            [entry.event_id, entry.action, entry.participant_id, entry.rule, dict(entry.details)],
            sort_keys=True,
            default=str,
        )
        suffix = str(uuid.uuid5(uuid.NAMESPACE_URL, identity))
        when = iso(entry.time)
        return {
            PARTITION_KEY: stage_partition(entry.stage_arn),
            SORT_KEY: f"AUDIT#{when}#{suffix}",
            AUDIT_INDEX_PARTITION_KEY: AUDIT_PARTITION,
            AUDIT_INDEX_SORT_KEY: f"{when}#{suffix}",
            TTL_ATTRIBUTE: epoch(entry.time + AUDIT_RETENTION),
            "entry": json.dumps(entry.to_json(), sort_keys=True),
        }

    def list(self, stage_arn: str | None = None, *, limit: int = 50) -> list[dict[str, Any]]:
        if stage_arn:
            items = self._table.query(stage_partition(stage_arn), sk_prefix="AUDIT#", newest_first=True, limit=limit)
        else:
            items = self._table.query(AUDIT_PARTITION, index=AUDIT_INDEX, newest_first=True, limit=limit)
        return [json.loads(item["entry"]) for item in items]

    def newest_first(self, stage_arn: str | None = None, *, since: datetime | None = None) -> Iterator[dict[str, Any]]:
        """Every entry newest first (one stage, or all), back to ``since``; pages are read as consumed."""
        if stage_arn:
            items = self._table.query(stage_partition(stage_arn), sk_prefix="AUDIT#", newest_first=True)
        else:
            items = self._table.query(AUDIT_PARTITION, index=AUDIT_INDEX, newest_first=True)
        oldest = iso(since) if since is not None else ""
        for item in items:
            entry = json.loads(item["entry"])
            if str(entry.get("time", "")) < oldest:
                return
            yield entry


# helpers -------------------------------------------------------------------------------------------
def _key(pk: str, sk: str) -> dict[str, Any]:
    return {PARTITION_KEY: {"S": pk}, SORT_KEY: {"S": sk}}


def _to_item(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(v) for k, v in values.items()}


def _from_item(item: Mapping[str, Any]) -> dict[str, Any]:
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
        params["ExpressionAttributeValues"] = _to_item(values)
