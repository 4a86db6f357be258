"""One show, four deliveries: clean; every event 2–3 times; shuffled within 10-second windows; and with
30% of IVS calls failing (500 / throttling) and 10% of DynamoDB writes throttled.

The show (benchmarks/work_per_event.py, the 100-stage generator at a smaller size) exercises all three
automations: a composition per stage session, a replication of each host to its green room, a blocked
user disconnected on publish and a guest disconnected after two flags. The effects must be the same in
all four deliveries, nothing duplicated; an effect missing under faults must be accounted for by an
event of that stage in a dead-letter queue (counted, not lost).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from unittest import mock

import botocore.endpoint
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from benchmarks.work_per_event import deploy, hundred_stage_show, play
from stagepilot.adapters.ivs import FUNCTION_CLIENT_CONFIG, IvsStage
from stagepilot.local import ivs_world
from stagepilot.local.deployment import LocalDeployment
from stagepilot.local.simulate import Line, Scenario

Effects = dict[str, Counter[tuple[str, ...]]]
DYNAMODB_WRITES = ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems")


@pytest.fixture(autouse=True)
def room_for_a_thousand_compositions() -> Iterator[None]:
    with mock.patch.object(ivs_world, "MAX_COMPOSITIONS_PER_ACCOUNT", 1000):
        yield


def duplicated(scenario: Scenario, rng: random.Random) -> Scenario:
    lines: list[Line] = []
    for line in scenario.lines:
        copies = rng.choice((2, 3)) if line.kind == "event" else 1
        lines += [line] * copies
    return Scenario(lines=lines)


def shuffled(scenario: Scenario, rng: random.Random, window: timedelta = timedelta(seconds=10)) -> Scenario:
    """Events reordered within fixed 10-second windows of their time (declarations stay first)."""
    declarations = [line for line in scenario.lines if line.kind != "event"]
    buckets: dict[int, list[Line]] = {}
    for line in scenario.lines:
        if line.kind == "event":
            at = datetime.fromisoformat(line.data["time"].replace("Z", "+00:00"))
            buckets.setdefault(int(at.timestamp() // window.total_seconds()), []).append(line)
    events: list[Line] = []
    for key in sorted(buckets):
        bucket = buckets[key]
        rng.shuffle(bucket)
        events += bucket
    return Scenario(lines=declarations + events)


class Faults:
    """30% of IVS requests fail (the stand-in's own fault injection, per HTTP attempt, on a client
    configured as the functions' is); 10% of DynamoDB writes are throttled before they reach the table."""

    def __init__(self, deployment: LocalDeployment, rng: random.Random) -> None:
        self.rng = rng
        self.ivs_failures = 0
        self.dynamodb_throttles = 0
        self.deployment = deployment
        client = deployment.ivs.client(config=FUNCTION_CLIENT_CONFIG)
        for operation in client.meta.service_model.operation_names:
            # More specific than the stand-in's hook, so it runs first and queues the failure.
            client.meta.events.register(f"before-send.ivs-realtime.{operation}", self._ivs)
        deployment.services.ivs = IvsStage(client)
        for operation in DYNAMODB_WRITES:
            deployment.table.client.meta.events.register(f"before-call.dynamodb.{operation}", self._dynamodb)

    def _ivs(self, request: Any, **_: Any) -> None:
        if self.rng.random() < 0.30:
            operation = request.url.rstrip("/").rsplit("/", 1)[-1]
            error = self.rng.choice(("InternalServerException", "ThrottlingException"))
            self.deployment.ivs.fail_next(operation, 1, error=error)
            self.ivs_failures += 1

    def _dynamodb(self, model: Any, **_: Any) -> None:
        if self.rng.random() < 0.10:
            self.dynamodb_throttles += 1
            raise ClientError(
                {
                    "Error": {"Code": "ProvisionedThroughputExceededException", "Message": "injected"},
                    "ResponseMetadata": {"HTTPStatusCode": 400},
                },
                model.name,
            )


class _NoSleep:
    """botocore's retry back-off, without waiting in real time."""

    def sleep(self, seconds: float) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        import time

        return getattr(time, name)


def effects(deployment: LocalDeployment) -> Effects:
    ivs = deployment.ivs
    return {
        "compositions": Counter(
            (c.stage_arn, c.tags.get("stagepilot:session", "")) for c in ivs.compositions(include_deleted=True)
        ),
        "replications": Counter(
            (r.source_stage_arn, r.participant_id, r.destination_stage_arn) for r in ivs.replicas()
        ),
        # Who was disconnected. A delivery retried after its DisconnectParticipant succeeded but before its
        # claim was finished resumes the disconnect and repeats that idempotent call (by design, see
        # automations/moderation.py); the participant is still disconnected once, so the effect is a set.
        "disconnects": Counter(
            {
                (c.params["stageArn"], c.params["participantId"]): 1
                for c in ivs.mutating_calls()
                if c.operation == "DisconnectParticipant"
            }
        ),
    }


def run(stages: int, variant: str, seed: int) -> tuple[Effects, LocalDeployment, Faults | None]:
    policies, bans, scenario = hundred_stage_show(stages, seed=seed, duplicate_share=0.0)
    rng = random.Random(seed)
    if variant == "duplicated":
        scenario = duplicated(scenario, rng)
    elif variant == "shuffled":
        scenario = shuffled(scenario, rng)
    deployment = deploy(policies, bans)
    faults = Faults(deployment, rng) if variant == "faults" else None
    with mock.patch.object(botocore.endpoint, "time", _NoSleep()):
        play(deployment, scenario)
    return effects(deployment), deployment, faults


def check_show(stages: int, seed: int) -> None:
    with mock_aws():
        clean, clean_deployment, _ = run(stages, "clean", seed)
    assert not any(clean_deployment.dead_letters.values())
    # The show does what it says: every stage composed once, every host replicated, every blocked user
    # and every twice-flagged guest disconnected, once.
    assert len(clean["compositions"]) == stages and set(clean["compositions"].values()) == {1}
    assert len(clean["replications"]) == stages and set(clean["replications"].values()) == {1}
    assert len(clean["disconnects"]) == stages + (stages + 3) // 4 and set(clean["disconnects"].values()) == {1}
    for variant in ("duplicated", "shuffled", "faults"):
        with mock_aws():
            got, deployment, faults = run(stages, variant, seed)
        for kind in clean:
            extra = got[kind] - clean[kind]
            assert not extra, f"{variant}: {kind} duplicated or unexpected: {dict(extra)}"
        dead_stages = {
            stage for letters in deployment.dead_letters.values() for body, _ in letters for stage in _stages_of(body)
        }
        for kind in clean:
            missing = clean[kind] - got[kind]
            lost = {key for key in missing if key[0] not in dead_stages}
            assert not lost, f"{variant}: {kind} missing without a dead letter for its stage: {lost}"
        if variant != "faults":
            assert got == clean, variant
            assert not any(deployment.dead_letters.values()), variant
        else:
            assert faults is not None and faults.ivs_failures > 0 and faults.dynamodb_throttles > 0
            assert deployment.metrics.counts.get("EventRetried", 0) > 0


def _stages_of(body: str) -> list[str]:
    import json

    event = json.loads(body)
    detail = event.get("detail") or {}
    return [*event.get("resources", []), *([detail["stage_arn"]] if "stage_arn" in detail else [])]


@pytest.mark.story
def test_four_deliveries_have_the_same_effects() -> None:
    check_show(stages=6, seed=11)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_four_deliveries_have_the_same_effects_on_a_bigger_show(seed: int) -> None:
    check_show(stages=40, seed=seed)
