"""The what-if port: run the real orchestration on the real state, and record what it would change.

``stagepilot explain`` and ``stagepilot reconcile --dry-run`` run exactly what the handlers and the
convergence pass run (the automations are the only place that orchestrates), on ``Services`` whose
adapters read the real table and IVS but hold every change back:

- **The table** (``WhatIfTable``) is a shadow: an in-memory moto DynamoDB table with the stack's key
  schema and audit index, private to this process (its own account in moto's state, a unique name).
  It is filled copy-on-read — the first read of a key, and the first run of a query, copy what the real
  table holds there (consistent reads) — and every write is applied to the shadow only and appended to
  ``writes``. So a run sees its own writes (a claim and then its re-read, a conditional update of what
  it just wrote), and conditions, ``ReturnValues`` and ``ReturnValuesOnConditionCheckFailure`` are
  evaluated by DynamoDB's own semantics (moto's), not by hand. Every ``Table`` method goes through
  ``Table._call``, so any of them works here; a client method the port does not know is refused
  (``WhatIfUnsupported``) rather than sent to the real table.
- **IVS** (``WhatIfIvs``): the reads listed in ``WHAT_IF_READS`` go through to IVS, paced and retried as
  usual; any other call not marked mutating is refused (``WhatIfUnsupported``), so a write that forgot
  ``mutating=True`` can never reach IVS from ``explain``. Every mutating call is
  validated against IVS's API model where the real client validates it (botocore, before sending:
  ``ParamValidationError`` as the real call would raise), recorded in ``calls``, and answered as IVS
  would answer success — ``StartComposition`` with a composition ARN whose id starts with
  ``HYPOTHETICAL_PREFIX``.
- **Metrics** are recorded in ``metrics``, not emitted; the audit trail is a table write like any other.

What it guarantees: the same code, decisions, guards and order as the real run, on the state as it is
now, with nothing written to the table and nothing changed at IVS. What it cannot know: an event or a
pass running concurrently that gets there first; IVS rejecting a request it would make (a channel that
no longer exists, a quota, IAM) or answering 409; and IVS's own reaction to a call (a participant gone
after a disconnect, a composition listed after a start) — later reads in the same run still see IVS as
it is.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Final

from stagepilot.adapters.dynamo import Table, from_item
from stagepilot.adapters.ivs import IvsStage
from stagepilot.adapters.schema import PARTITION_KEY, SORT_KEY, create_table
from stagepilot.pipeline import Services

HYPOTHETICAL_PREFIX: Final = "what-if-"  # the id of a composition ARN that only a what-if run started
SHADOW_ACCOUNT: Final = "000000000000"  # moto's state for the shadow tables, apart from any mocked account
SHADOW_REGION: Final = "us-east-1"
_SHADOW_ENDPOINT: Final = f"https://dynamodb.{SHADOW_REGION}.amazonaws.com"  # never reached: moto answers
_KEYED_WRITES: Final = {"put_item": "PutItem", "update_item": "UpdateItem", "delete_item": "DeleteItem"}
_TRANSACT_OPERATIONS: Final = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem"}
# The IVS reads a what-if run lets through to the real IVS. Anything else that is not marked mutating (a
# write that forgot ``mutating=True``, a read added to IvsStage but not here) is refused: default deny.
WHAT_IF_READS: Final = frozenset(
    {
        "GetComposition",
        "GetParticipant",
        "GetPublicKey",
        "GetStage",
        "GetStageSession",
        "ListCompositions",
        "ListParticipantEvents",
        "ListParticipantReplicas",
        "ListParticipants",
        "ListPublicKeys",
        "ListStageSessions",
        "ListStages",
    }
)


class WhatIfUnsupported(Exception):
    """The code under a what-if run used a DynamoDB call the port cannot hold back, or an IVS operation it
    does not let through (``WHAT_IF_READS``): a bug to fix here."""


@dataclass(frozen=True)
class TableWrite:
    """One write a what-if run would have made: the item as it would be afterwards (None: deleted)."""

    operation: str  # PutItem, UpdateItem, DeleteItem (also inside TransactWriteItems)
    pk: str
    sk: str
    item: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"operation": self.operation, "pk": self.pk, "sk": self.sk}


@dataclass(frozen=True)
class IvsCall:
    """One mutating IVS call a what-if run would have made, with exactly the parameters it would send."""

    operation: str
    params: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"operation": self.operation, "params": json.loads(json.dumps(self.params, default=str))}


@dataclass
class RecordedMetrics:
    """The metrics a what-if run would have emitted."""

    counts: dict[str, float] = field(default_factory=dict)

    def count(self, name: str, value: float = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + value


# the table -------------------------------------------------------------------------------------------
class WhatIfTable(Table):
    """A ``Table`` that reads through to ``real`` and writes only to its shadow (see the module docstring)."""

    def __init__(self, real: Table, shadow_client: Any, shadow_name: str) -> None:
        super().__init__(shadow_client, shadow_name)
        self.real = real
        self.writes: list[TableWrite] = []
        self._known: set[tuple[str, str]] = set()  # keys the shadow is the truth for: copied, or written
        self._queried: set[str] = set()  # queries whose items were copied (their parameters, as JSON)

    def _call(self, method: str, **params: Any) -> dict[str, Any]:
        if method == "get_item":
            self._copy_keys([params["Key"]])
        elif method == "batch_get_item":
            self._copy_keys(params["RequestItems"][self.name]["Keys"])
        elif method == "query":
            self._copy_query(params)
        elif method in _KEYED_WRITES:
            return self._held_write(method, params)
        elif method == "transact_write_items":
            return self._held_transaction(params)
        else:
            raise WhatIfUnsupported(f"the what-if table cannot hold back DynamoDB {method}")
        return super()._call(method, **params)

    def _held_write(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        key = _key_of(params)
        self._copy_keys([key])
        response = super()._call(method, **params)  # a failed condition raises here, as on the real table
        pk, sk = _plain_key(key)
        after: Mapping[str, Any] | None = None
        if method == "put_item":
            after = from_item(params["Item"])
        elif method == "update_item":
            after = self._shadow_item(key)
        self.writes.append(TableWrite(_KEYED_WRITES[method], pk, sk, after))
        return response

    def _held_transaction(self, params: dict[str, Any]) -> dict[str, Any]:
        entries = []
        for entry in params["TransactItems"]:
            kind, request = next(iter(entry.items()))
            if request.get("TableName") != self.name:
                raise WhatIfUnsupported(f"a what-if transaction on another table: {request.get('TableName')}")
            entries.append((kind, _key_of(request)))
        self._copy_keys([key for _, key in entries])
        response = super()._call("transact_write_items", **params)
        for kind, key in entries:
            if kind in _TRANSACT_OPERATIONS:  # a ConditionCheck writes nothing
                after = None if kind == "Delete" else self._shadow_item(key)
                self.writes.append(TableWrite(_TRANSACT_OPERATIONS[kind], *_plain_key(key), after))
        return response

    def _copy_keys(self, keys: list[Mapping[str, Any]]) -> None:
        """Copy what the real table holds at each key the shadow does not know yet (one batch per 100)."""
        missing = list({_plain_key(k): k for k in keys if _plain_key(k) not in self._known}.items())
        for start in range(0, len(missing), 100):
            chunk = dict(missing[start : start + 100])
            pending: list[Mapping[str, Any]] = list(chunk.values())
            while pending:
                response = self.real._call(
                    "batch_get_item", RequestItems={self.real.name: {"Keys": pending, "ConsistentRead": True}}
                )
                for raw in response.get("Responses", {}).get(self.real.name, []):
                    self._copy(raw)
                pending = response.get("UnprocessedKeys", {}).get(self.real.name, {}).get("Keys", [])
            self._known.update(chunk)

    def _copy_query(self, params: Mapping[str, Any]) -> None:
        """Copy every item the real table returns for this query (whatever its limit or page), once."""
        identity = json.dumps(
            {k: v for k, v in params.items() if k not in ("Limit", "ExclusiveStartKey", "ScanIndexForward")},
            sort_keys=True,
            default=str,
        )
        if identity in self._queried:
            return
        request = {k: v for k, v in params.items() if k not in ("Limit", "ExclusiveStartKey", "TableName")}
        if "IndexName" not in request:
            request["ConsistentRead"] = True  # a global index cannot be read consistently
        while True:
            page = self.real._call("query", **request)
            for raw in page.get("Items", []):
                if _plain_key(raw) not in self._known:
                    self._copy(raw)
            if "LastEvaluatedKey" not in page:
                break
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        self._queried.add(identity)

    def _copy(self, raw: Mapping[str, Any]) -> None:
        self.client.put_item(TableName=self.name, Item=dict(raw))
        self._known.add(_plain_key(raw))

    def _shadow_item(self, key: Mapping[str, Any]) -> Mapping[str, Any] | None:
        item = self.client.get_item(TableName=self.name, Key=dict(key), ConsistentRead=True).get("Item")
        return from_item(item) if item else None


def _key_of(request: Mapping[str, Any]) -> Mapping[str, Any]:
    item = request.get("Key") or request.get("Item") or {}
    return {PARTITION_KEY: item[PARTITION_KEY], SORT_KEY: item[SORT_KEY]}


def _plain_key(raw: Mapping[str, Any]) -> tuple[str, str]:
    return str(raw[PARTITION_KEY]["S"]), str(raw[SORT_KEY]["S"])


@cache
def shadow_client() -> Any:
    """A DynamoDB client that only moto (in this process) answers, in the shadow's own moto account. One
    per process: building a client costs ~0.2 s, a shadow table ~20 ms."""
    import boto3
    from moto.core.botocore_stubber import BotocoreStubber
    from moto.core.models import botocore_stubber as moto_mock  # imported first: every client gets it

    client = boto3.session.Session().client(
        "dynamodb",
        region_name=SHADOW_REGION,
        endpoint_url=_SHADOW_ENDPOINT,
        aws_access_key_id="what-if",
        aws_secret_access_key="what-if",  # nothing leaves the process: moto answers
    )
    private = BotocoreStubber()
    private.enabled = True

    def answer(**kwargs: Any) -> Any:
        # botocore calls every before-send handler: inside ``mock_aws`` moto's own stubber already answers
        # (from the same in-process state), and a second answer would apply each write twice.
        return None if moto_mock.enabled else private(**kwargs)

    client.meta.events.register("before-send", answer)
    client.meta.events.register("before-sign.dynamodb", _in_shadow_account)
    return client


def _in_shadow_account(request: Any, **_: Any) -> None:
    request.headers["x-moto-account-id"] = SHADOW_ACCOUNT


# IVS -------------------------------------------------------------------------------------------------
class WhatIfIvs(IvsStage):
    """IVS whose reads are real and whose mutating calls are validated, recorded in ``calls`` and answered
    as a success, never sent."""

    def __init__(self, client: Any, *, pacer: Any = None) -> None:
        super().__init__(client, pacer=pacer)
        self.calls: list[IvsCall] = []

    @classmethod
    def around(cls, real: IvsStage) -> WhatIfIvs:
        """The same client and pacer as ``real``: reads share its quota."""
        return cls(real._client, pacer=real._pacer)

    def _call(
        self, operation: str, *, mutating: bool = False, paced_once: bool = False, **params: Any
    ) -> dict[str, Any]:
        if not mutating:
            if operation not in WHAT_IF_READS:
                raise WhatIfUnsupported(
                    f"the what-if IVS client lets through only the reads it lists (WHAT_IF_READS), not {operation}"
                )
            return super()._call(operation, paced_once=paced_once, **params)
        from botocore.validate import validate_parameters

        validate_parameters(params, self._client.meta.service_model.operation_model(operation).input_shape)
        self.calls.append(IvsCall(operation, params))
        if operation == "StartComposition":
            return {"composition": {"arn": hypothetical_composition_arn(params)}}
        return {}


def hypothetical_composition_arn(request: Mapping[str, Any]) -> str:
    """The ARN a what-if StartComposition answers: the stage's account and region, an id marked as
    hypothetical and derived from the request (the same request, the same ARN, like IVS's idempotency)."""
    _, partition, service, region, account, _ = str(request["stageArn"]).split(":", 5)
    digest = hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return f"arn:{partition}:{service}:{region}:{account}:composition/{HYPOTHETICAL_PREFIX}{digest}"


# the port --------------------------------------------------------------------------------------------
@dataclass
class WhatIf:
    """What-if ``services`` over the real ones, and what a run through them would have changed."""

    services: Services
    table: WhatIfTable
    ivs: WhatIfIvs
    metrics: RecordedMetrics

    @property
    def writes(self) -> list[TableWrite]:
        return self.table.writes

    @property
    def calls(self) -> list[IvsCall]:
        return self.ivs.calls


@contextmanager
def what_if(real: Services) -> Iterator[WhatIf]:
    """What-if services for one run over ``real``; the shadow table is dropped afterwards."""
    client = shadow_client()
    name = f"stagepilot-what-if-{uuid.uuid4().hex}"
    create_table(client, name)
    table = WhatIfTable(real.table, client, name)
    ivs = WhatIfIvs.around(real.ivs)
    metrics = RecordedMetrics()
    services = Services(settings=real.settings, table=table, ivs=ivs, metrics=metrics, clock=real.clock)
    try:
        yield WhatIf(services=services, table=table, ivs=ivs, metrics=metrics)
    finally:
        client.delete_table(TableName=name)
