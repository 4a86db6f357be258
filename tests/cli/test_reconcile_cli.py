"""``stagepilot reconcile``: the drift a pass finds, what it does, and --dry-run doing nothing (over HTTP)."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from stagepilot.local.ivs import IvsStandIn
from tests.cli.conftest import TABLE, run
from tests.support import CHANNEL, ENCODER, OTHER_STAGE, STAGE, EventFactory

POLICY = {
    "stageArn": STAGE,
    "composition": {
        "destinations": [{"name": "live", "channel": {"channelArn": CHANNEL, "encoderConfigurationArn": ENCODER}}]
    },
    "moderation": {"blockedUserIds": ["troll-3"]},
}


def put(tmp_path: Path, document: dict) -> None:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(document))
    assert run("policy", "put", str(path)).status == 0


def table_items() -> list[dict]:
    return boto3.client("dynamodb").scan(TableName=TABLE)["Items"]


@pytest.mark.story
def test_dry_run_reports_what_the_pass_then_does_and_changes_nothing(ivs: IvsStandIn, tmp_path: Path) -> None:
    put(tmp_path, POLICY)
    events = EventFactory()
    # both publishes happened at IVS; stagepilot never heard of them
    ivs.observe(events.published("host", user_id="host-1"))
    ivs.observe(events.published("troll", user_id="troll-3"))
    before = table_items()

    result = run("reconcile", "--all", "--dry-run")

    assert result.status == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "1 live stage(s) of 1; 1 with a policy or a ban to check"
    # The real pass's own words (--dry-run runs that pass on what-if services), labelled "would".
    assert f"would  {STAGE}  moderation: disconnected: a connected publisher the policy removes" in result.stdout
    assert f"would  {STAGE}  composition: a publisher and no composition" in result.stdout
    assert f"would call DisconnectParticipant (stageArn={STAGE}, participantId=troll" in result.stdout
    assert ivs.mutating_calls() == []
    assert table_items() == before  # no claim, no audit entry: nothing written
    assert [e["action"] for e in run("audit", "--json").json()] == ["policy-put"]

    would = run("reconcile", "--all", "--dry-run", "--json").json()
    done = run("reconcile", "--all", "--json").json()

    assert would["dryRun"] is True and done["dryRun"] is False
    assert [(d["automation"], d["action"], d["reason"], d["done"]) for d in would["drift"]] == [
        (d["automation"], d["action"], d["reason"], False) for d in done["drift"]
    ]
    assert all(d["done"] for d in done["drift"]) and len(done["drift"]) == 2
    made = [{"operation": c.operation, "params": c.params} for c in ivs.mutating_calls()]
    assert would["wouldCall"] == made  # the same calls, with the same parameters, in the same order


def test_a_pass_heals_once_and_then_finds_no_drift(ivs: IvsStandIn, tmp_path: Path) -> None:
    put(tmp_path, POLICY)
    events = EventFactory()
    ivs.observe(events.published("host", user_id="host-1"))
    ivs.observe(events.published("troll", user_id="troll-3"))

    healed = run("reconcile", STAGE, "--json")

    assert healed.status == 0, healed.stderr
    report = healed.json()
    assert sorted((d["automation"], d["done"]) for d in report["drift"]) == [
        ("composition", True),
        ("moderation", True),
    ]
    assert sorted(c.operation for c in ivs.mutating_calls()) == ["DisconnectParticipant", "StartComposition"]
    audit = run("audit", STAGE, "--json").json()
    assert {e["action"] for e in audit} >= {"healed"}

    again = run("reconcile", STAGE)
    assert again.status == 0
    assert again.stdout.splitlines()[-1] == f"no drift: {STAGE} is as its policy says"
    assert len(ivs.mutating_calls()) == 2  # nothing done twice


def test_a_stage_that_is_not_live_has_nothing_to_converge(ivs: IvsStandIn) -> None:
    ivs.create_stage(OTHER_STAGE)
    result = run("reconcile", OTHER_STAGE)
    assert result.status == 0
    assert result.stdout.strip() == f"{OTHER_STAGE} is not live (no active session): nothing to converge"


def test_a_bad_arn_is_bad_usage(ivs: IvsStandIn) -> None:
    result = run("reconcile", "arn:aws:ivs:us-east-1:123:channel/x")
    assert result.status == 2
    assert result.stderr.startswith("error: ")


def test_recording_settings_ivs_cannot_take_yet_are_pending_in_reconcile_and_status(
    ivs: IvsStandIn, tmp_path: Path
) -> None:
    from datetime import UTC, datetime

    from tests.support import STORAGE

    ivs.create_stage(STAGE)
    recording = {"storageConfigurationArn": STORAGE}
    put(tmp_path, {"stageArn": STAGE, "stage": {"participantRecording": recording}})  # applied: nobody recorded
    ivs.observe(EventFactory(at=datetime.now(UTC)).published("host", user_id="host-1"))  # recorded from now on
    changed = {"stageArn": STAGE, "stage": {"participantRecording": {**recording, "mediaTypes": ["AUDIO_ONLY"]}}}
    (tmp_path / "changed.json").write_text(json.dumps(changed))
    assert run("policy", "put", str(tmp_path / "changed.json"), "--force", "--no-converge").status == 0

    for dry_run in ((), ("--dry-run",)):
        result = run("reconcile", STAGE, *dry_run)
        assert result.status == 0, result.stderr  # pending is not an error
        [line] = [line for line in result.stdout.splitlines() if line.startswith("pending")]
        assert line.startswith(f"pending {STAGE}  stage: the stage's recording settings differ from the policy in ")
        assert "mediaTypes; pending since " in line and "IVS is recording 1 participant(s) (host)" in line
    [entry] = run("reconcile", STAGE, "--json").json()["drift"]
    assert (entry["pending"], entry["done"], entry["fields"]) == (True, False, ["mediaTypes"])

    shown = run("status", STAGE)
    [line] = [line for line in shown.stdout.splitlines() if line.startswith("recording settings: ")]
    assert line.startswith("recording settings: PENDING since ") and "(mediaTypes)" in line
    [row] = run("status", "--json").json()["stages"]
    assert row["recordingSettings"]["state"] == "pending"
    assert [c.operation for c in ivs.mutating_calls()] == ["UpdateStage"]  # only the first put's

    ivs.set_participant_recording(STAGE, "host", active=False)
    applied = run("reconcile", STAGE)
    assert f"healed {STAGE}  stage: the stage's recording settings differ from the policy in mediaTypes" in (
        applied.stdout
    )
    assert ivs.stage(STAGE).recording["mediaTypes"] == ["AUDIO_ONLY"]  # type: ignore[union-attr]
