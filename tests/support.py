"""Shared test support: identifiers, real-shaped EventBridge envelopes, policy seeding."""

from __future__ import annotations

import itertools
import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from stagepilot.adapters.dynamo import to_item
from stagepilot.adapters.schema import POLICY_PARTITION, SORT_KEY
from stagepilot.adapters.table import PolicyStore, Table
from stagepilot.local.deployment import LocalDeployment
from stagepilot.policy import parse_policy

ACCOUNT = "123456789012"
REGION = "us-east-1"
T0 = datetime(2026, 11, 21, 20, 0, tzinfo=UTC)  # where virtual clocks start
# Where this process's real clock stands when each test starts (tests/conftest.py): a day after T0, so an
# event at T0 is a day old on the real clock too, whatever today's date.
REAL_CLOCK_START = T0 + timedelta(days=1)
STAGE = f"arn:aws:ivs:{REGION}:{ACCOUNT}:stage/MainStage0001"
OTHER_STAGE = f"arn:aws:ivs:{REGION}:{ACCOUNT}:stage/GreenRoom0001"
SESSION = "st-MainSession01"
CHANNEL = f"arn:aws:ivs:{REGION}:{ACCOUNT}:channel/ShowChannel01"
ENCODER = f"arn:aws:ivs:{REGION}:{ACCOUNT}:encoder-configuration/ShowEncoder01"
STORAGE = f"arn:aws:ivs:{REGION}:{ACCOUNT}:storage-configuration/ShowStorage01"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FLEET_ARN = f"arn:aws:ivs:{REGION}:{ACCOUNT}:stage/Show{{:04d}}Main"  # store_fleet's stages


class Time:
    """Seconds that move only when someone sleeps: a pacer's clock and sleep in a test."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def put_policy(deployment: LocalDeployment, document: dict[str, Any]) -> None:
    deployment.services.policies.put(parse_policy(document))


class EventFactory:
    """Real-shaped EventBridge envelopes (see tests/events/), at ``at`` unless told otherwise.

    Tests on a virtual clock use the default ``T0``. Where the handlers read the real clock, ``T0`` is a day
    ago (the clock is pinned, tests/conftest.py), so the default works there too; ``at=datetime.now(UTC)``
    gives an event that happens now.
    """

    def __init__(self, *, at: datetime = T0) -> None:
        self._ids = itertools.count(1)
        self._at = at

    def _envelope(
        self,
        detail_type: str,
        source: str,
        resources: list[str],
        detail: dict[str, Any],
        at: datetime | None,
        event_id: str | None,
    ) -> dict[str, Any]:
        at = at or self._at
        return {
            "version": "0",
            "id": event_id or str(uuid.UUID(int=next(self._ids))),
            "detail-type": detail_type,
            "source": source,
            "account": ACCOUNT,
            "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": REGION,
            "resources": resources,
            "detail": detail,
        }

    def stage(
        self,
        event_name: str,
        participant_id: str,
        *,
        user_id: str = "",
        stage: str = STAGE,
        session: str = SESSION,
        at: datetime | None = None,
        event_id: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        detail = {
            "session_id": session,
            "event_name": event_name,
            "event_time": (at or self._at).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "user_id": user_id,
            "participant_id": participant_id,
            **extra,
        }
        return self._envelope("IVS Stage Update", "aws.ivs", [stage], detail, at, event_id)

    def published(self, participant_id: str, **kwargs: Any) -> dict[str, Any]:
        return self.stage("Participant Published", participant_id, **kwargs)

    def publish_error(self, participant_id: str, **kwargs: Any) -> dict[str, Any]:
        return self.stage("Participant Publish Error", participant_id, **kwargs)

    def composition(
        self,
        event_name: str,
        composition_arn: str,
        *,
        stage: str = STAGE,
        at: datetime | None = None,
        reason: str | None = None,
        event_id: str | None = None,
    ) -> dict[str, Any]:
        detail: dict[str, Any] = {"event_name": event_name, "stage_arn": stage}
        if reason:
            detail["reason"] = reason
        return self._envelope("IVS Composition State Change", "aws.ivs", [composition_arn], detail, at, event_id)

    def flagged(
        self,
        participant_id: str,
        *,
        user_id: str = "",
        stage: str = STAGE,
        session: str = SESSION,
        at: datetime | None = None,
        source: str = "stagepilot.moderation",
        reason: str = "reported",
        event_id: str | None = None,
        reporter: str | None = None,
    ) -> dict[str, Any]:
        detail = {
            "stage_arn": stage,
            "session_id": session,
            "participant_id": participant_id,
            "user_id": user_id,
            "reason": reason,
            **({"reporter": reporter} if reporter is not None else {}),
        }
        return self._envelope("Participant Flagged", source, [], detail, at, event_id)


def later(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


class OneRequestAtATime:
    """A DynamoDB client whose requests each apply atomically, as DynamoDB's do (moto's are not thread-safe:
    concurrent UpdateItems on one item can lose writes inside moto). A read-then-write spread over two
    requests still races under this wrapper, so the test below catches exactly that."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if not callable(method):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return method(*args, **kwargs)

        return call


class _NoRedelivery:
    def park(self, record: Any, reason: str) -> None:
        raise AssertionError(f"parked: {reason}")

    def retry_after(self, record: Any, seconds: float) -> None:
        pass


def deliver_concurrently(deployment: LocalDeployment, automation: Any, bodies: list[str]) -> list[Any]:
    """Deliver each body to ``automation`` from its own thread, all released at once (concurrent Lambda
    invocations). Returns each delivery's Outcome, or the exception it raised."""
    from stagepilot.pipeline import handle_record

    deployment.table.client = OneRequestAtATime(deployment.table.client)  # moto's DynamoDB is not thread-safe
    barrier = threading.Barrier(len(bodies))
    results: list[Any] = []
    lock = threading.Lock()

    def deliver(index: int, body: str) -> None:
        record = {"messageId": f"m-{index}", "body": body, "attributes": {"ApproximateReceiveCount": "1"}}
        barrier.wait()
        try:
            result: Any = handle_record(record, automation, deployment.services, _NoRedelivery())
        except BaseException as exc:
            result = exc
        with lock:
            results.append(result)

    threads = [threading.Thread(target=deliver, args=(i, body)) for i, body in enumerate(bodies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def key_table(client: Any, name: str) -> None:
    """A pay-per-request table keyed by one string ``pk``: what the moto patches' own tests write to."""
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def example_document(n: int) -> dict[str, Any]:
    """examples/policies.json's first policy for stage ``n`` (its own green room, host and blocked user), as
    benchmarks/work_per_event.py's show stores it: about 1,400 bytes an item."""
    document: dict[str, Any] = json.loads((EXAMPLES / "policies.json").read_text())[0]
    document["stageArn"] = FLEET_ARN.format(n)
    document["replication"][0]["destinationStageArn"] = FLEET_ARN.format(n).replace("Main", "Green")
    document["replication"][0]["participants"] = {"userIds": [f"host-{n}"]}
    document["moderation"]["blockedUserIds"] = [f"troll-{n}"]
    return document


def store_fleet(table: Table, count: int) -> None:
    """``count`` example-sized policies, the first put by the store and the others written as it writes them
    (BatchWriteItem, 25 at a time: 800 puts through the store would take most of the test)."""
    PolicyStore(table).put(parse_policy(example_document(0)))
    first = table.get(POLICY_PARTITION, FLEET_ARN.format(0))
    assert first is not None
    items = []
    for n in range(1, count):
        document = parse_policy(example_document(n)).to_document()
        items.append({**first, SORT_KEY: FLEET_ARN.format(n), "document": json.dumps(document, sort_keys=True)})
    for start in range(0, len(items), 25):
        requests = [{"PutRequest": {"Item": to_item(item)}} for item in items[start : start + 25]]
        table.client.batch_write_item(RequestItems={table.name: requests})


class QueryCalls:
    """The ``Query`` calls made on a client, with their parameters."""

    def __init__(self, client: Any) -> None:
        self.made: list[dict[str, Any]] = []
        client.meta.events.register("provide-client-params.dynamodb.Query", self._seen)

    def _seen(self, params: dict[str, Any], **_: Any) -> None:
        self.made.append(dict(params))
