"""Policy changes mid-show take effect within the cache's lifetime; a policy broken behind the CLI's back
stops only its own stage, with a metric, and the event waits in the DLQ for a redrive after the fix."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from moto import mock_aws

from benchmarks.counting import CallCounter
from stagepilot.local.deployment import LocalDeployment
from tests.support import ACCOUNT, OTHER_STAGE, REGION, STAGE, T0, EventFactory, put_policy

STORAGE = f"arn:aws:ivs:{REGION}:{ACCOUNT}:storage-configuration/ShowStorage01"
ENCODER = f"arn:aws:ivs:{REGION}:{ACCOUNT}:encoder-configuration/ShowEncoder01"


def _composition_policy(stage: str, *, paused: bool = False) -> dict[str, Any]:
    return {
        "stageArn": stage,
        "paused": paused,
        "composition": {
            "layout": {"grid": {}},
            "destinations": [{"s3": {"storageConfigurationArn": STORAGE, "encoderConfigurationArns": [ENCODER]}}],
        },
    }


@pytest.fixture
def deployment() -> Iterator[LocalDeployment]:
    with mock_aws():
        deployment = LocalDeployment(account=ACCOUNT, region=REGION, start=T0)
        for stage in (STAGE, OTHER_STAGE):
            deployment.ivs.create_stage(stage)
        yield deployment


def _compositions(deployment: LocalDeployment, stage: str) -> int:
    return len(deployment.ivs.compositions(stage, include_deleted=True))


def test_a_policy_change_takes_effect_within_the_cache_lifetime(deployment: LocalDeployment) -> None:
    events = EventFactory()
    ttl = deployment.settings.policy_cache_seconds
    put_policy(deployment, _composition_policy(STAGE, paused=True))
    deployment.put_event(events.published("pUblisher01", session="st-FirstSession1", at=T0))
    deployment.drain()
    assert _compositions(deployment, STAGE) == 0  # paused
    put_policy(deployment, _composition_policy(STAGE, paused=False))  # the operator unpauses mid-show
    deployment.ivs.end_session(STAGE)
    at = T0 + timedelta(seconds=ttl)  # the cached "paused" expires no later than this
    deployment.put_event(events.published("pUblisher02", session="st-SecondSession", at=at))
    deployment.drain()
    assert _compositions(deployment, STAGE) == 1


def test_an_invalid_stored_policy_stops_only_its_stage_and_waits_in_the_dlq(deployment: LocalDeployment) -> None:
    events = EventFactory()
    put_policy(deployment, _composition_policy(OTHER_STAGE))
    # Written behind the CLI's back: a raw item whose document does not validate.
    deployment.table.client.put_item(
        TableName=deployment.table.name,
        Item={
            "pk": {"S": "POLICY"},
            "sk": {"S": STAGE},
            "version": {"N": "1"},
            "updatedAt": {"S": "2026-11-21T19:00:00.000Z"},
            "document": {"S": json.dumps({"stageArn": STAGE, "composition": {"layout": "not a layout"}})},
        },
    )
    broken = events.published("pUblisher01", session="st-BrokenSessio1", at=T0)
    deployment.put_event(broken)
    deployment.put_event(events.published("pUblisher02", stage=OTHER_STAGE, session="st-OtherSession1", at=T0))
    deployment.drain()
    assert _compositions(deployment, OTHER_STAGE) == 1  # the other stage keeps working
    assert _compositions(deployment, STAGE) == 0
    assert deployment.metrics.counts.get("PolicyInvalid", 0) >= 1  # alarm-able
    parked = [body for body, _ in deployment.dead_letters["composition"]]
    assert [json.loads(body)["id"] for body in parked] == [broken["id"]]
    # The fix, then the redrive: the parked event now starts the composition.
    put_policy(deployment, _composition_policy(STAGE))
    deployment.run_until(deployment.clock() + timedelta(seconds=deployment.settings.policy_cache_seconds))
    for body in parked:
        deployment.put_raw("composition", body)
    deployment.drain()
    assert _compositions(deployment, STAGE) == 1


def test_each_function_reads_policies_through_a_cache_of_its_own(deployment: LocalDeployment) -> None:
    """Deployed, the three automations and the convergence pass are separate functions, separate processes:
    one publish makes each of them read the stage's policy once, and a change reaches each within its own
    lifetime. A stand-in that shared one cache would count a third of the reads and keep every function
    on the same view."""
    reads = CallCounter()  # counts the policy reads apart from moderation's ban reads
    reads.attach(deployment.table.client)
    put_policy(deployment, _composition_policy(STAGE))
    events = EventFactory()
    delivered = deployment.put_event(events.published("pUblisher01", session="st-FirstSession1", at=T0))
    deployment.drain()
    assert sorted(delivered) == ["composition", "moderation", "replication"]
    assert reads.policy_loads == 3

    reads.reset()
    deployment.reconcile()
    # the pass's own cache reads the stage (nothing the automations read is shared with it), and the pass's
    # recording-settings check takes its one snapshot of every policy and pause switch (two Queries a pass,
    # automations/stage_settings.py), whatever the automations hold
    assert reads.calls[("dynamodb", "BatchGetItem")] == 1
    assert reads.policy_loads == 1 + 2
