"""A failed destination is an incident (docs/policy.md, issue 28): audited ``destination-failed`` with IVS's
reason, counted ``DestinationFailed`` (``DestinationFailedAlarm`` at once), once whoever sees it (the
event, a duplicate of it, the pass when it was lost), and nothing restarted: a restart would cut the
recording the other destination is still making."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stagepilot.local.deployment import LocalDeployment
from stagepilot.local.simulate import read_scenario, simulate
from stagepilot.policy import parse_policy
from tests.support import CHANNEL, ENCODER, STAGE, STORAGE, EventFactory, later, put_policy

PASS = 60
POLICY = {
    "stageArn": STAGE,
    "composition": {
        "destinations": [
            {"name": "live", "channel": {"channelArn": CHANNEL, "encoderConfigurationArn": ENCODER}},
            {"name": "archive", "s3": {"storageConfigurationArn": STORAGE, "encoderConfigurationArns": [ENCODER]}},
        ],
        "maxRestarts": 3,
    },
}


def audit(deployment: LocalDeployment, action: str) -> list[dict[str, Any]]:
    return [e for e in deployment.services.audit.list(STAGE, limit=100) if e.get("action") == action]


@pytest.mark.parametrize("event", ["delivered", "duplicated", "lost"])
def test_a_channel_failing_while_s3_records_alarms_once_and_restarts_nothing(
    make_deployment: Any, events: EventFactory, event: str
) -> None:
    deployment: LocalDeployment = make_deployment(reconcile_seconds=PASS)
    put_policy(deployment, POLICY)
    deployment.put_event(events.published("host"))
    deployment.settle(5)
    if event == "lost":
        deployment.lose_emitted("Destination Failure", stage_arn=STAGE)
    deployment.ivs.fail_destinations(STAGE, kind="channel", reason="the channel already has a live stream")
    if event == "duplicated":
        [failure] = [e for e in deployment.ivs.events if e["detail"].get("event_name") == "Destination Failure"]
        deployment.put_event(failure)

    deployment.settle(5 * PASS)

    [failed] = audit(deployment, "destination-failed")
    assert failed["details"]["destination"] == "channel"
    assert "the channel already has a live stream" in failed["reason"] or event == "lost"
    assert deployment.metrics.counts.get("DestinationFailed") == 1  # what DestinationFailedAlarm watches: once
    # nothing restarted or stopped: the S3 recording goes on
    assert [c.operation for c in deployment.ivs.mutating_calls()] == ["StartComposition"]
    [composition] = deployment.ivs.compositions(STAGE)
    assert composition.state == "ACTIVE"
    assert {d.kind: d.state for d in composition.destinations} == {"channel": "FAILED", "s3": "ACTIVE"}
    assert audit(deployment, "healed") == []


def test_simulate_destination_failure_directive() -> None:
    publish = EventFactory().published("host")
    lines = [
        publish,
        {"simulate": "destination-failure", "stageArn": STAGE, "destination": "s3", "time": later(60).isoformat()},
    ]
    result = simulate([parse_policy(POLICY)], read_scenario("\n".join(json.dumps(line) for line in lines)))
    assert [c["operation"] for c in result.calls] == ["StartComposition"]
    assert result.metrics.get("DestinationFailed") == 1
