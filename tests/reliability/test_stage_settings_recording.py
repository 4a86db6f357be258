"""Recording settings when IVS allows them (docs/policy.md ``stage.participantRecording``).

IVS documents that the settings "cannot be updated while recording is active" (UpdateStage). Each story
runs on ``LocalDeployment``, whose stand-in refuses UpdateStage while anyone on the stage is recorded:
the pass must hold the change as pending (no refused call, no error), apply it once nobody is recorded,
reach idle stages too, and ask IVS about a bounded number of stages per pass.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from stagepilot.adapters.settings_records import SettingsRecords
from stagepilot.automations.stage_settings import SETTINGS_CHECKS_PER_PASS
from stagepilot.local.deployment import LocalDeployment
from tests.support import STAGE, STORAGE, EventFactory, put_policy

RECONCILE_SECONDS = 60
NEXT_SESSION = "st-NextSession01"
RECORDING = {"storageConfigurationArn": STORAGE, "recordingReconnectWindowSeconds": 30}
CHANGED = {**RECORDING, "mediaTypes": ["AUDIO_ONLY"]}


def update_calls(deployment: LocalDeployment) -> list[Any]:
    """Every UpdateStage IVS received, refused ones included."""
    return [c for c in deployment.ivs.calls if c.operation == "UpdateStage"]


def media_types(deployment: LocalDeployment, stage: str = STAGE) -> list[str]:
    found = deployment.ivs.stage(stage)
    assert found is not None
    return list(found.recording["mediaTypes"])


def recorded_show(make_deployment: Any, events: EventFactory) -> LocalDeployment:
    """A live stage whose host IVS records (the stage records, by the policy the first pass applied)."""
    show: LocalDeployment = make_deployment(reconcile_seconds=RECONCILE_SECONDS)
    put_policy(show, {"stageArn": STAGE, "stage": {"participantRecording": RECORDING}})
    show.settle(RECONCILE_SECONDS)  # the first pass applies it to the idle stage
    assert len(update_calls(show)) == 1
    show.put_event(events.published("host", user_id="host-1"))
    [host] = [p for p in show.ivs.participants(STAGE) if p.participant_id == "host"]
    assert host.recording_state == "ACTIVE"
    return show


def test_update_stage_is_refused_while_recording_and_applied_once_recording_stops(
    make_deployment: Any, events: EventFactory
) -> None:
    show = recorded_show(make_deployment, events)
    put_policy(show, {"stageArn": STAGE, "stage": {"participantRecording": CHANGED}})

    show.settle(3 * RECONCILE_SECONDS)

    assert len(update_calls(show)) == 1  # not one refused call: nobody tried while the host was recorded
    assert media_types(show) == ["AUDIO_VIDEO"]
    for report in show.passes[-3:]:
        assert report.errors == []
        [(arn, pending)] = report.pending
        assert arn == STAGE and pending.details["fields"] == ["mediaTypes"]
        assert pending.details["recorded"] == ["host"]
    record = SettingsRecords(show.table).get(STAGE)
    assert record is not None and record.pending and record.fields == ("mediaTypes",)

    show.ivs.set_participant_recording(STAGE, "host", active=False)  # between recordings; the show goes on
    show.settle(RECONCILE_SECONDS)

    assert media_types(show) == ["AUDIO_ONLY"]
    assert [c.status for c in update_calls(show)] == [200, 200]
    [(_, applied)] = show.passes[-1].healed
    assert applied.automation == "stage" and applied.details["fields"] == ["mediaTypes"]
    record = SettingsRecords(show.table).get(STAGE)
    assert record is not None and record.state == "in-sync"
    show.settle(3 * RECONCILE_SECONDS)
    assert len(update_calls(show)) == 2  # converged: nothing applied twice


def test_a_refusal_the_pass_did_not_foresee_is_pending_not_an_error(make_deployment: Any, events: EventFactory) -> None:
    """The pass looks at the active session's recordings and finds none, but the host of the session that
    just ended is still recorded within its reconnect window: IVS refuses, and the pass finds out why
    (the recent sessions' participants) instead of reporting an error or a refused configuration."""
    show: LocalDeployment = make_deployment()
    put_policy(show, {"stageArn": STAGE, "stage": {"participantRecording": RECORDING}})
    show.reconcile()
    show.put_event(events.published("host", user_id="host-1"))
    show.ivs.leave(STAGE, "host")  # the session ends; the host's recording ends 30 s later
    show.put_event(events.publish_error("viewer", session=NEXT_SESSION))  # a new session, nobody recorded
    put_policy(show, {"stageArn": STAGE, "stage": {"participantRecording": CHANGED}})

    report = show.reconcile()

    assert report.errors == [] and report.healed == []
    [(_, pending)] = report.pending
    assert pending.details["recorded"] == ["host"]
    assert [c.status for c in update_calls(show)] == [200, 400]  # refused once, then held as pending

    show.clock.advance_to(show.clock() + timedelta(seconds=RECONCILE_SECONDS))
    report = show.reconcile()

    assert [o.automation for _, o in report.healed] == ["stage"]
    assert media_types(show) == ["AUDIO_ONLY"]
    assert [c.status for c in update_calls(show)] == [200, 400, 200]


def test_an_idle_stage_gets_its_recording_settings_without_a_session(make_deployment: Any) -> None:
    show: LocalDeployment = make_deployment(reconcile_seconds=RECONCILE_SECONDS)
    put_policy(show, {"stageArn": STAGE, "stage": {"participantRecording": CHANGED}})

    show.settle(RECONCILE_SECONDS)

    assert media_types(show) == ["AUDIO_ONLY"]
    assert show.ivs.stage(STAGE).active_session_id is None  # type: ignore[union-attr]


def test_settings_ivs_refuses_with_nobody_recorded_are_reported_once_not_retried(make_deployment: Any) -> None:
    show: LocalDeployment = make_deployment(reconcile_seconds=RECONCILE_SECONDS)
    gone = STORAGE.replace("ShowStorage01", "GoneStorage1")
    show.ivs.missing(gone)
    put_policy(show, {"stageArn": STAGE, "stage": {"participantRecording": {"storageConfigurationArn": gone}}})

    show.settle(3 * RECONCILE_SECONDS)

    assert [c.status for c in update_calls(show)] == [400]
    [first, *later] = show.passes
    [(_, refused)] = [(arn, o) for arn, o in first.drift if o.action == "rejected"]
    assert "IVS refused them with nobody recorded" in refused.reason
    assert all(not p.drift and not p.errors for p in later)
    assert show.metrics.counts.get("StageSettingsRefused") == 1


def test_a_pass_asks_ivs_about_a_bounded_number_of_stages(make_deployment: Any) -> None:
    """A default policy that sets recording settings covers every stage, idle ones included: each pass
    reads at most SETTINGS_CHECKS_PER_PASS stages; a converged fleet is checked by a slow rotation."""
    show: LocalDeployment = make_deployment()
    stages = [f"arn:aws:ivs:us-east-1:123456789012:stage/Idle{n:04d}" for n in range(25)]
    for arn in stages:
        show.ivs.create_stage(arn)
    put_policy(show, {"stageArn": "default", "stage": {"participantRecording": CHANGED}})
    every = [*stages, STAGE, "arn:aws:ivs:us-east-1:123456789012:stage/GreenRoom0001"]

    def get_stage_calls() -> int:
        return len([c for c in show.ivs.calls if c.operation == "GetStage"])

    per_pass = []
    for _ in range(4):
        before = get_stage_calls()
        show.clock.advance_to(show.clock() + timedelta(seconds=RECONCILE_SECONDS))
        show.reconcile()
        per_pass.append(get_stage_calls() - before)

    # 27 stages, 10 per pass: within 3 passes, each once; then nothing until the rotation's turn
    assert per_pass == [SETTINGS_CHECKS_PER_PASS, SETTINGS_CHECKS_PER_PASS, 7, 0]
    assert all(media_types(show, arn) == ["AUDIO_ONLY"] for arn in every)
    assert len(update_calls(show)) == len(every)

    show.ivs.set_stage_recording(stages[0], {"mediaTypes": ["AUDIO_VIDEO"]})  # behind stagepilot's back
    for _ in range(15):
        show.clock.advance_to(show.clock() + timedelta(seconds=RECONCILE_SECONDS))
        show.reconcile()
    # the rotation: 2-10 stages a pass once their last check is 15 minutes old
    assert media_types(show, stages[0]) == ["AUDIO_ONLY"]
    assert get_stage_calls() <= 2 * len(every) + 10


def test_a_dry_run_pass_shows_pending_drift_and_changes_nothing(make_deployment: Any, events: EventFactory) -> None:
    show = recorded_show(make_deployment, events)
    put_policy(show, {"stageArn": STAGE, "stage": {"participantRecording": CHANGED}})

    would = show.reconcile(dry_run=True)

    [(_, pending)] = would.pending
    assert pending.details["fields"] == ["mediaTypes"]
    assert SettingsRecords(show.table).get(STAGE).state == "in-sync"  # type: ignore[union-attr]


def test_a_pending_record_goes_when_the_policy_no_longer_sets_recording_settings(
    make_deployment: Any, events: EventFactory
) -> None:
    show = recorded_show(make_deployment, events)
    put_policy(show, {"stageArn": STAGE, "stage": {"participantRecording": CHANGED}})
    show.settle(RECONCILE_SECONDS)
    assert SettingsRecords(show.table).get(STAGE).pending  # type: ignore[union-attr]

    put_policy(show, {"stageArn": STAGE})  # the section removed: stagepilot leaves the stage's settings alone
    show.settle(RECONCILE_SECONDS)

    assert SettingsRecords(show.table).get(STAGE) is None
    assert show.passes[-1].pending == []
    assert media_types(show) == ["AUDIO_VIDEO"]
