"""The recording settings under IVS faults: a throttled or failing UpdateStage during a pass is reported
and left to the next pass, never half-applied and never counted as healed; it converges once IVS allows."""

from __future__ import annotations

from typing import Any

import pytest

from stagepilot.local.deployment import LocalDeployment
from tests.support import STAGE, STORAGE, EventFactory, put_policy

RECONCILE_SECONDS = 60
RECORDING = {"storageConfigurationArn": STORAGE, "recordingReconnectWindowSeconds": 30}


@pytest.mark.parametrize("error", ["ThrottlingException", "InternalServerException"])
def test_a_failed_update_stage_is_retried_by_the_next_pass(
    make_deployment: Any, events: EventFactory, error: str
) -> None:
    show: LocalDeployment = make_deployment(reconcile_seconds=RECONCILE_SECONDS)
    put_policy(show, {"stageArn": STAGE, "stage": {"participantRecording": RECORDING}})
    show.ivs.fail_next("UpdateStage", 1, error=error)
    show.put_event(events.published("host", user_id="host-1"))

    show.settle(RECONCILE_SECONDS)
    [first] = show.passes
    assert [arn for arn, _ in first.errors] == [STAGE]
    assert "UpdateStage" in first.errors[0][1]
    assert not [o for _, o in first.healed if o.automation == "stage"]
    stage = show.ivs.stage(STAGE)
    assert stage is not None and stage.recording.get("recordingReconnectWindowSeconds", 0) == 0

    show.settle(RECONCILE_SECONDS)

    stage = show.ivs.stage(STAGE)
    assert stage is not None and stage.recording["recordingReconnectWindowSeconds"] == 30
    assert [len([o for _, o in p.healed if o.automation == "stage"]) for p in show.passes] == [0, 1]
    show.settle(2 * RECONCILE_SECONDS)
    updates = [c for c in show.ivs.mutating_calls() if c.operation == "UpdateStage"]
    assert len(updates) == 1  # the failed try is not a call IVS made; the next pass applied it once
