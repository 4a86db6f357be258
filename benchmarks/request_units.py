"""The DynamoDB request units each call is charged, from the sizes of the items it touches (``item_sizes``).

``RequestUnitMeter`` hangs on a DynamoDB client's botocore events, as ``counting.CallCounter`` does, and
charges every call by DynamoDB's documented rules (docs/performance.md, section 11; the links are in
``item_sizes``), reading the items themselves from the same table through a client of its own (whose calls
are not charged, and which it attaches nothing to):

- ``GetItem``: the item (an item that does not exist still costs the minimum), 4 KB a unit, half when
  eventually consistent; ``BatchGetItem``: each key as its own ``GetItem``; ``Query``: every item its key
  condition reads (before a filter; a projection does not change the size), summed, then rounded up.
- ``PutItem``: the larger of the item it replaces and the item written; ``UpdateItem``: the larger of the
  item before and after; ``DeleteItem``: the item deleted; 1 KB a unit; a write whose condition failed is
  charged as if written (the larger of the stored item and the one attempted). ``BatchWriteItem``: each
  request as its own ``PutItem`` or ``DeleteItem``. ``TransactWriteItems``: each item at twice the rate,
  charged when the transaction is cancelled too.
- A write that puts an item into the audit index, changes it there or takes it out, also writes the index:
  the item's projection (all of it) at 1 KB a unit ("Global secondary indexes", write capacity units). The
  index is updated after the transaction commits; the documentation does not say that write doubles, so a
  transaction's index write is counted once.

Each charge is kept by operation and by the kind of item (``item_kind``: the table's key design,
docs/table.md), with the largest item of each kind.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from benchmarks import cli
from benchmarks.item_sizes import item_size, read_units, write_units
from stagepilot.adapters.dynamo import Table
from stagepilot.adapters.pass_log import KEPT_PASSES, PassLog, PassRecord
from stagepilot.adapters.pass_log import KEY as PASS_LOG_KEY
from stagepilot.adapters.schema import (
    AUDIT_PREFIX,
    BAN_PARTITION,
    CHANGE_MARK_SORT_KEY,
    HISTORY_PREFIX,
    PARTITION_KEY,
    PAUSE_PARTITION,
    POLICY_PARTITION,
    SORT_KEY,
    STAGE_PREFIX,
    TOKEN_PREFIX,
)

Wire = Mapping[str, Mapping[str, Any]]  # an item in DynamoDB's wire form: name → {"S": ...}
WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"})
UNCHARGED_READS_AND_WRITES = frozenset(
    {"Scan", "TransactGetItems", "ExecuteStatement", "BatchExecuteStatement", "ExecuteTransaction"}
)
CHARGED_ERRORS = frozenset({"ConditionalCheckFailedException", "TransactionCanceledException"})
_SESSION_KINDS = (
    ("#COMPOSITION", "composition record"),
    ("#REPLICA#", "replication record"),
    ("#COUNT#", "moderation counter"),
    ("#DISCONNECT#", "disconnect claim"),
    ("#WOULD-DISCONNECT#", "disconnect claim"),
    ("#PUBLISHER#", "publisher record"),
    ("#RECORDING#", "recording state"),
)


def item_kind(pk: str, sk: str | None = None) -> str:
    """What an item is, from its key (docs/table.md); ``sk`` None: a whole partition (a ``Query``)."""
    if pk == POLICY_PARTITION:
        return "policy"
    if pk == PAUSE_PARTITION:
        return "change mark" if sk == CHANGE_MARK_SORT_KEY else "pause switch"
    if pk == BAN_PARTITION:
        return "ban"
    if pk.startswith(TOKEN_PREFIX):
        return "issued token"
    if pk.startswith(HISTORY_PREFIX):
        return "policy version"
    if pk.startswith(AUDIT_PREFIX) or pk == "AUDIT":
        return "audit entry"
    if pk == f"{STAGE_PREFIX}~convergence":
        return {"CURSOR": "pass cursor", "PASSES": "pass log"}.get(sk or "", "convergence")
    if pk == f"{STAGE_PREFIX}~composition-hours":
        return "composition hours"
    if pk == f"{STAGE_PREFIX}SETTINGS":
        return "recording settings"
    if pk.startswith(STAGE_PREFIX):
        if sk is None:
            return "stage partition"
        if sk == "COMPOSITIONS":
            return "composition ledger"
        if sk == "RESUMED":
            return "resume mark"
        if sk.startswith("AUDIT#"):
            return "audit entry"
        for marker, kind in _SESSION_KINDS:
            if marker in sk:
                return kind
    return "other"


@dataclass
class Charges:
    """Request units and calls of one operation or one kind of item, and the bytes each charge counted (an
    item's size; a write's, the larger of before and after; a ``Query``'s, its items together)."""

    calls: int = 0
    items: int = 0  # items read or written (a Query's count as one; an index's copy is not an item)
    read_units: float = 0.0
    write_units: float = 0.0
    largest: int = 0
    sizes: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "items": self.items,
            "read_units": self.read_units,
            "write_units": self.write_units,
            "largest_bytes": self.largest,
            "mean_bytes": sum(self.sizes) / len(self.sizes) if self.sizes else 0,
        }


class RequestUnitMeter:
    """Charges every call of the clients it is attached to (``attach``), by operation and by item kind."""

    def __init__(self, peek: Any) -> None:
        """``peek``: a DynamoDB client on the same tables, with nothing attached (its calls are not charged)."""
        self._peek = peek
        self._tables: dict[str, tuple[list[str], list[tuple[list[str], str, list[str]]]]] = {}
        self._local = threading.local()  # each actor (thread) has its call in flight
        self.by_operation: dict[str, Charges] = defaultdict(Charges)
        self.by_kind: dict[str, Charges] = defaultdict(Charges)
        self.by_operation_and_kind: dict[tuple[str, str], Charges] = defaultdict(Charges)
        self.uncharged: Counter[str] = Counter()  # calls this meter does not know how to charge

    def attach(self, client: Any) -> None:
        events = client.meta.events
        # the call's parameters as the caller gave them (before-call has the serialized request instead)
        events.register("before-parameter-build.dynamodb", self._before_call, unique_id=f"units-call-{id(self)}")
        # before every other before-send handler: moto answers the request in one of them, so the items are
        # read as they are when the request is answered (a latency handler after it lets other actors run)
        events.register_first("before-send", self._before_send, unique_id=f"units-send-{id(self)}")
        events.register("after-call.dynamodb", self._after_call, unique_id=f"units-after-{id(self)}")

    def reset(self) -> None:
        self.by_operation.clear()
        self.by_kind.clear()
        self.by_operation_and_kind.clear()
        self.uncharged.clear()

    @property
    def read_units(self) -> float:
        return sum(c.read_units for c in self.by_operation.values())

    @property
    def write_units(self) -> float:
        return sum(c.write_units for c in self.by_operation.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "read_units": self.read_units,
            "write_units": self.write_units,
            "by_operation": {op: c.to_json() for op, c in sorted(self.by_operation.items())},
            "by_kind": {kind: c.to_json() for kind, c in sorted(self.by_kind.items())},
            "uncharged_calls": dict(self.uncharged),
            "by_operation_and_kind": {
                f"{op} {kind}": c.to_json() for (op, kind), c in sorted(self.by_operation_and_kind.items())
            },
        }

    # the hooks -----------------------------------------------------------------------------------------
    def _before_call(self, model: Any, params: Mapping[str, Any], **_: Any) -> None:
        self._local.call = (model.name, dict(params), None)

    def _before_send(self, **_: Any) -> None:
        call = getattr(self._local, "call", None)
        if call is not None and call[2] is None:
            name, params, _ = call
            self._local.call = (name, params, self._stored_before(name, params))

    def _after_call(self, model: Any, http_response: Any, parsed: Mapping[str, Any], **_: Any) -> None:
        call = getattr(self._local, "call", None)
        self._local.call = None
        if call is None or call[0] != model.name:
            return
        name, params, before = call
        code = parsed.get("Error", {}).get("Code") if isinstance(parsed, Mapping) else None
        if http_response.status_code >= 300 and code not in CHARGED_ERRORS:
            return  # a throttled or refused request is not charged
        if name in WRITES:
            self._charge_writes(name, params, parsed, before or {}, http_response.status_code < 300)
        elif name == "GetItem":
            self._charge_get(params, parsed)
        elif name == "BatchGetItem":
            self._charge_batch_get(params, parsed)
        elif name == "Query":
            self._charge_query(params)
        elif name in UNCHARGED_READS_AND_WRITES:  # no code calls them today; one that does must not go unseen
            self.uncharged[name] += 1

    # reading the items -----------------------------------------------------------------------------------
    def _schema(self, table: str) -> tuple[list[str], list[tuple[list[str], str, list[str]]]]:
        """The table's key names, and each global index's key names, projection type and included names."""
        if table not in self._tables:
            described = self._peek.describe_table(TableName=table)["Table"]
            keys = [k["AttributeName"] for k in described["KeySchema"]]
            indexes = [
                (
                    [k["AttributeName"] for k in index["KeySchema"]],
                    index["Projection"]["ProjectionType"],
                    list(index["Projection"].get("NonKeyAttributes", [])),
                )
                for index in described.get("GlobalSecondaryIndexes", [])
            ]
            self._tables[table] = (keys, indexes)
        return self._tables[table]

    def _key_of(self, table: str, item: Wire) -> dict[str, Any]:
        return {name: item[name] for name in self._schema(table)[0] if name in item}

    def _stored(self, table: str, key: Wire) -> Wire | None:
        item: Wire | None = self._peek.get_item(TableName=table, Key=dict(key), ConsistentRead=True).get("Item")
        return item

    def _writes(self, name: str, params: Mapping[str, Any]) -> list[tuple[str, str, Wire, Wire | None]]:
        """(table, request kind, key, item written) of every item a write request names."""
        if name in ("PutItem", "UpdateItem", "DeleteItem"):
            table = params["TableName"]
            item = params.get("Item")
            key = self._key_of(table, item) if item is not None else params["Key"]
            return [(table, name, key, item)]
        if name == "TransactWriteItems":
            found = []
            for entry in params["TransactItems"]:
                (kind, request), *_ = entry.items()
                item = request.get("Item")
                key = self._key_of(request["TableName"], item) if item is not None else request["Key"]
                found.append((request["TableName"], kind, key, item))
            return found
        if name == "BatchWriteItem":
            found = []
            for table, requests in params["RequestItems"].items():
                for request in requests:
                    if "PutRequest" in request:
                        item = request["PutRequest"]["Item"]
                        found.append((table, "Put", self._key_of(table, item), item))
                    else:
                        found.append((table, "Delete", request["DeleteRequest"]["Key"], None))
            return found
        return []

    def _stored_before(self, name: str, params: Mapping[str, Any]) -> dict[int, Wire | None]:
        return {i: self._stored(table, key) for i, (table, _, key, _) in enumerate(self._writes(name, params))}

    # charging --------------------------------------------------------------------------------------------
    def _charge(
        self, operation: str, kind: str, *, read: float = 0.0, write: float = 0.0, size: int = 0, index: bool = False
    ) -> None:
        """Charge one item of ``kind`` (``index``: the audit index's copy of it)."""
        for charges in (
            self.by_operation[operation],
            self.by_kind[kind],
            self.by_operation_and_kind[(operation, kind)],
        ):
            charges.items += 0 if index else 1
            charges.read_units += read
            charges.write_units += write
            charges.largest = max(charges.largest, size)
            charges.sizes.append(size)

    def _count(self, operation: str, kind: str) -> None:
        self.by_operation[operation].calls += 1
        self.by_kind[kind].calls += 1
        self.by_operation_and_kind[(operation, kind)].calls += 1

    @staticmethod
    def _kind(key: Wire) -> str:
        pk = key.get(PARTITION_KEY, {}).get("S", "")
        sk = key.get(SORT_KEY, {}).get("S")
        return item_kind(str(pk), None if sk is None else str(sk))

    def _charge_get(self, params: Mapping[str, Any], parsed: Mapping[str, Any]) -> None:
        table, key = params["TableName"], params["Key"]
        item = parsed.get("Item") if "ProjectionExpression" not in params else self._stored(table, key)
        size = item_size(item) if item else 0
        kind = self._kind(key)
        self._count("GetItem", kind)
        self._charge("GetItem", kind, read=read_units(size, consistent=bool(params.get("ConsistentRead"))), size=size)

    def _charge_batch_get(self, params: Mapping[str, Any], parsed: Mapping[str, Any]) -> None:
        counted = False
        for table, request in params["RequestItems"].items():
            unprocessed = parsed.get("UnprocessedKeys", {}).get(table, {}).get("Keys", [])
            consistent = bool(request.get("ConsistentRead"))
            for key in request["Keys"]:
                if key in unprocessed:
                    continue
                item = self._stored(table, key)
                size = item_size(item) if item else 0
                kind = self._kind(key)
                if not counted:
                    self._count("BatchGetItem", kind)
                    counted = True
                self._charge("BatchGetItem", kind, read=read_units(size, consistent=consistent), size=size)

    def _charge_query(self, params: Mapping[str, Any]) -> None:
        """Every item the key condition read (the filter and the projection left out), as one read."""
        condition = params["KeyConditionExpression"]
        names = {k: v for k, v in params.get("ExpressionAttributeNames", {}).items() if k in condition}
        values = {k: v for k, v in params.get("ExpressionAttributeValues", {}).items() if k in condition}
        again: dict[str, Any] = {
            "TableName": params["TableName"],
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "ConsistentRead": bool(params.get("ConsistentRead")),
        }
        if names:
            again["ExpressionAttributeNames"] = names
        for carried in ("IndexName", "Limit", "ExclusiveStartKey", "ScanIndexForward"):
            if carried in params:
                again[carried] = params[carried]
        items = self._peek.query(**again).get("Items", [])
        size = sum(item_size(item) for item in items)
        partition = next((v.get("S", "") for v in values.values() if "S" in v), "")
        kind = "audit entry" if params.get("IndexName") else item_kind(str(partition), None)
        self._count("Query", kind)
        self._charge("Query", kind, read=read_units(size, consistent=bool(params.get("ConsistentRead"))), size=size)

    def _charge_writes(
        self,
        name: str,
        params: Mapping[str, Any],
        parsed: Mapping[str, Any],
        before: Mapping[int, Wire | None],
        ok: bool,
    ) -> None:
        transactional = name == "TransactWriteItems"
        for i, (table, request, key, written) in enumerate(self._writes(name, params)):
            old = before.get(i)
            new: Wire | None
            if request in ("UpdateItem", "Update"):
                # the item as the update left it: the answer's when it is the whole new item; else read after the
                # call (another actor may have written it meanwhile: at worst a neighbouring size)
                if not ok:
                    new = None
                elif params.get("ReturnValues") == "ALL_NEW" and "Attributes" in parsed:
                    new = parsed["Attributes"]
                else:
                    new = self._stored(table, key)
            elif request in ("DeleteItem", "Delete", "ConditionCheck"):
                new = None
            else:
                new = written
            size = max(item_size(old) if old else 0, item_size(new) if new else 0)
            kind = self._kind(key)
            if i == 0:
                self._count(name, kind)
            self._charge(name, kind, write=write_units(size, transactional=transactional), size=size)
            index = self._index_write(table, old, new if ok else old)
            if index:
                self._charge(name, kind, write=write_units(index), size=index, index=True)

    def _index_write(self, table: str, old: Wire | None, new: Wire | None) -> int:
        """The size of the index entry a write put, changed or took out (0: no index write)."""
        keys, indexes = self._schema(table)
        largest = 0
        for index_keys, projection, included in indexes:
            before = old is not None and all(k in old for k in index_keys)
            after = new is not None and all(k in new for k in index_keys)
            if not (before or after) or (old == new):
                continue
            for item in (old if before else None, new if after else None):
                if item is None:
                    continue
                if projection == "ALL":
                    entry = item
                else:
                    kept = set(keys) | set(index_keys) | (set(included) if projection == "INCLUDE" else set())
                    entry = {k: v for k, v in item.items() if k in kept}
                largest = max(largest, item_size(entry))
        return largest


# the benchmark ---------------------------------------------------------------------------------------------
POLICY_KINDS = ("policy", "pause switch")  # what a container's policy cache reads
PASS_SIZES = (100, 1000)  # benchmarks/cost.py's fleets, every stage live
MEASURED_PASSES = 3  # converged passes measured at each size, one period apart
PASS_PERIOD = timedelta(minutes=1)  # the schedule's rate(1 minute)


def _peek_client(region: str) -> Any:
    from stagepilot.local.clients import local_client

    return local_client("dynamodb", region=region)


def _split(meter: RequestUnitMeter) -> dict[str, Any]:
    """The meter's charges, with the policy cache's reads apart (cost.py counts those per container lifetime,
    at the fleet's size): the change mark's ``GetItem`` (every lifetime of a busy container), the snapshot's
    two ``Query`` calls, and a stage's own ``BatchGetItem`` of its policy, the default and its pause switches
    (a container's first lifetime, or one whose snapshot did not fit in a page)."""
    if meter.uncharged:
        raise RuntimeError(f"calls the meter cannot charge (teach it their rules): {dict(meter.uncharged)}")
    mark = meter.by_operation_and_kind.get(("GetItem", "change mark"), Charges())
    snapshot = [meter.by_operation_and_kind.get(("Query", kind), Charges()) for kind in POLICY_KINDS]
    lookups = [meter.by_operation_and_kind.get(("BatchGetItem", kind), Charges()) for kind in POLICY_KINDS]
    snapshot_units = sum(c.read_units for c in snapshot)
    lookup_units = sum(c.read_units for c in lookups)
    return {
        **meter.to_json(),
        "change_mark_reads": mark.calls,
        "change_mark_read_units": mark.read_units,
        "snapshot_queries": sum(c.calls for c in snapshot),
        "snapshot_read_units": snapshot_units,
        "policy_lookup_read_units": lookup_units,
        "other_read_units": meter.read_units - mark.read_units - snapshot_units - lookup_units,
    }


def _partition(peek: Any, table: str, pk: str) -> list[Wire]:
    """Every item of the partition, every page."""
    params: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "pk = :pk",
        "ExpressionAttributeValues": {":pk": {"S": pk}},
    }
    items: list[Wire] = []
    while True:
        page = peek.query(**params)
        items.extend(page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return items
        params["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def measure_show(fleet: int = 100) -> dict[str, Any]:
    """work_per_event's 100-stage show, played as it plays it, every call charged; and the sizes of the
    policies as the show stored them (the snapshot reads them all: cost.py scales it to the fleet).
    ``fleet`` > 100: the table holds that many policies, the show's and quiet stages' of the same size (the
    show's policies made for the stages ``Show0100Main``... that never see an event), so each container's
    snapshot reads a fleet's policies, as it does on a fleet whose other stages are live elsewhere."""
    from unittest import mock

    from moto import mock_aws

    from benchmarks import work_per_event
    from stagepilot.local import ivs_world

    policies, bans, scenario = work_per_event.hundred_stage_show()
    quiet = work_per_event.hundred_stage_show(fleet)[0][len(policies) :] if fleet > len(policies) else []
    with mock_aws(), mock.patch.object(ivs_world, "MAX_COMPOSITIONS_PER_ACCOUNT", 1000):
        deployment = work_per_event.deploy(policies, bans)
        for policy in quiet:
            deployment.services.policies.put(policy)
        peek = _peek_client(work_per_event.REGION)
        meter = RequestUnitMeter(peek)
        meter.attach(deployment.table.client)
        work_per_event.play(deployment, scenario)
        stored = _partition(peek, deployment.table.name, "POLICY")
        stage_policies = [item_size(item) for item in stored if item["sk"]["S"] != "default"]
        return {
            "events": sum(1 for line in scenario.lines if line.kind == "event"),
            "policies": len(stored),
            "calls": sum(charges.calls for charges in meter.by_operation.values()),
            **_split(meter),
            "policy_item_bytes": sum(stage_policies) / len(stage_policies),
            "default_policy_bytes": sum(item_size(item) for item in stored if item["sk"]["S"] == "default"),
            "pause_partition_bytes": sum(item_size(item) for item in _partition(peek, deployment.table.name, "PAUSE")),
        }


class _InMemory(Table):
    """Items kept in a dict: ``PassLog`` writes the log of ``KEPT_PASSES`` passes here at a dict's speed."""

    def __init__(self) -> None:
        super().__init__(client=None, name="in-memory")  # type: ignore[arg-type]
        self.items: dict[tuple[str, str], dict[str, Any]] = {}

    def get(self, pk: str, sk: str, *, consistent: bool = False) -> dict[str, Any] | None:
        return self.items.get((pk, sk))

    def put(self, item: Mapping[str, Any], **_: Any) -> bool:
        self.items[(item[PARTITION_KEY], item[SORT_KEY])] = dict(item)
        return True


def _seed_pass_log(table: Table, *, live: int, start: datetime) -> None:
    """The pass log as ``KEPT_PASSES - 1`` earlier passes left it (written by ``PassLog`` itself), so the passes
    measured read and write it at its full length."""
    memory = _InMemory()
    log = PassLog(memory)
    for n in range(KEPT_PASSES - 1):
        log.record(PassRecord(start - timedelta(minutes=KEPT_PASSES - n), examinable=live, reached=min(live, 50)))
    table.put(memory.items[PASS_LOG_KEY])


def measure_passes(stages: int) -> dict[str, Any]:
    """The convergence pass's charges per pass on a fleet of ``stages`` stages: idle (no stage live), then every
    stage live (one publisher each, its events lost: nothing to heal; the ``default`` policy blocks a user id,
    so every live stage is examined for blocked publishers), each after a first pass, over
    ``MEASURED_PASSES`` passes one period apart, the pass log at its full length."""
    from moto import mock_aws

    from benchmarks.work_per_event import ACCOUNT, REGION, stage_arn, stage_event
    from stagepilot.local.deployment import LocalDeployment
    from stagepilot.policy import parse_policy

    start = datetime(2026, 11, 21, 20, 0, tzinfo=UTC)
    with mock_aws():
        deployment = LocalDeployment(account=ACCOUNT, region=REGION, start=start)
        deployment.services.policies.put(
            parse_policy({"stageArn": "default", "moderation": {"blockedUserIds": ["troll-3"]}})
        )
        arns = [stage_arn(f"Cost{n:05d}Stage") for n in range(stages)]
        for arn in arns:
            deployment.ivs.create_stage(arn)
        _seed_pass_log(deployment.table, live=0, start=start)
        meter = RequestUnitMeter(_peek_client(REGION))
        meter.attach(deployment.table.client)

        def passes() -> dict[str, Any]:
            deployment.reconcile()  # the first: it writes what the others then read and rewrite
            meter.reset()
            reached = 0
            for _ in range(MEASURED_PASSES):
                deployment.clock.advance_to(deployment.clock() + PASS_PERIOD)
                reached += deployment.reconcile().reached
            charged = _split(meter)
            per_pass = {
                key: charged[key] / MEASURED_PASSES
                for key in (
                    "read_units",
                    "write_units",
                    "change_mark_read_units",
                    "snapshot_read_units",
                    "snapshot_queries",
                    "policy_lookup_read_units",
                    "other_read_units",
                )
            }
            log = deployment.table.client.get_item(
                TableName=deployment.table.name,
                Key={PARTITION_KEY: {"S": PASS_LOG_KEY[0]}, SORT_KEY: {"S": PASS_LOG_KEY[1]}},
            )["Item"]
            return {
                "per_pass": per_pass,
                "stages_reached_per_pass": reached / MEASURED_PASSES,
                "pass_log_bytes": item_size(log),
                "by_kind": charged["by_kind"],
                "by_operation": charged["by_operation"],
                "passes": MEASURED_PASSES,
            }

        idle = passes()
        for n, arn in enumerate(arns):
            participant = f"pUb{n:05d}AbCd"
            deployment.ivs.declare_participant(arn, participant, user_id=f"host-{n}")
            at = deployment.clock()
            event = stage_event(
                f"c-{n}", arn, f"st-Cost{n:05d}Sess", "Participant Published", participant, f"host-{n}", at
            )
            deployment.put_event(event, deliver=False)
        live = passes()
        return {"stages": stages, "idle": idle, "live": live}


def run(sizes: tuple[int, ...] = PASS_SIZES, policies: int = 100) -> dict[str, Any]:
    """Every charge ``benchmarks.cost`` needs: the 100-stage show's, and the pass's at each fleet size.
    ``policies`` > 100: the show is also played with that many policies stored (``measure_show``'s ``fleet``),
    as ``show100_policies<N>``: what a fleet's snapshot, or its per-stage reads, cost the same events."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    measured = {"show100": measure_show(), "passes": {str(size): measure_passes(size) for size in sizes}}
    if policies > 100:
        measured[f"show100_policies{policies}"] = measure_show(policies)
    return measured


def main(argv: list[str] | None = None) -> int:
    parser = cli.parser(
        "benchmarks.request_units",
        __doc__,
        more="Prints the 100-stage show's request units and the convergence pass's at each fleet size (about 2 "
        "minutes); make bench keeps them in benchmarks/results.json for benchmarks.cost.",
    )
    cli.counts_argument(parser, "SIZE", default=PASS_SIZES, what="fleet sizes of the pass's runs, every stage live")
    parser.add_argument(
        "--policies",
        type=cli.count,
        default=100,
        metavar="N",
        help="also play the show with N policies stored, its 100 stages' and quiet ones' (about 3 minutes at 1000)",
    )
    arguments = parser.parse_args(argv)
    print(json.dumps(run(tuple(arguments.size), arguments.policies), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
