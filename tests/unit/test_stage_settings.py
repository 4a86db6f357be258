"""Stage settings: what counts as drift between the stage's recording settings and the policy's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from stagepilot.adapters.ivs import StageInfo
from stagepilot.adapters.settings_records import IN_SYNC, PENDING, SettingsRecord
from stagepilot.automations.stage_settings import (
    CHANGED,
    ROTATION,
    ROTATION_MIN_AGE_SECONDS,
    STILL_PENDING,
    Wanted,
    recording_drift,
    select_stages,
)
from stagepilot.policy import RECORDING_DEFAULTS, parse_policy

STAGE = "arn:aws:ivs:us-east-1:123456789012:stage/AbCdef1G2hij"
STORAGE = "arn:aws:ivs:us-east-1:123456789012:storage-configuration/AbCd1234"


def wanted(section: dict) -> dict:
    settings = parse_policy({"stageArn": STAGE, "stage": {"participantRecording": section}}).stage
    assert settings is not None
    result = settings.wanted_recording()
    assert result is not None
    return result


def test_members_left_out_mean_ivs_defaults_so_a_change_to_them_is_drift() -> None:
    policy = wanted({"storageConfigurationArn": STORAGE})
    stage = {**policy, "recordingReconnectWindowSeconds": 60}  # changed behind stagepilot's back
    assert recording_drift(stage, policy) == ["recordingReconnectWindowSeconds"]


def test_the_same_settings_in_another_order_are_not_drift() -> None:
    policy = wanted(
        {"storageConfigurationArn": STORAGE, "thumbnailConfiguration": {"storage": ["LATEST", "SEQUENTIAL"]}}
    )
    stage = {
        **policy,
        "thumbnailConfiguration": {**policy["thumbnailConfiguration"], "storage": ["SEQUENTIAL", "LATEST"]},
    }
    assert recording_drift({**stage, "somethingNew": 1}, policy) == []


def test_an_empty_storage_turns_recording_off_with_every_member_at_its_default() -> None:
    assert wanted({"storageConfigurationArn": "", "mediaTypes": ["AUDIO_ONLY"]}) == dict(RECORDING_DEFAULTS)


def test_the_defaults_are_the_ones_the_model_documents() -> None:
    import re

    import botocore.session

    model = botocore.session.get_session().get_service_model("ivs-realtime")
    shape = model.shape_for("AutoParticipantRecordingConfiguration")
    doc = re.sub("<[^>]+>", "", shape.members["mediaTypes"].documentation)
    assert "Default: AUDIO_VIDEO" in doc and RECORDING_DEFAULTS["mediaTypes"] == ["AUDIO_VIDEO"]
    hls = re.sub(
        "<[^>]+>",
        "",
        model.shape_for("ParticipantRecordingHlsConfiguration").members["targetSegmentDurationSeconds"].documentation,
    )
    assert "Default: 6" in hls
    mode = re.sub(
        "<[^>]+>", "", model.shape_for("ParticipantThumbnailConfiguration").members["recordingMode"].documentation
    )
    assert "Default: DISABLED" in mode and RECORDING_DEFAULTS["thumbnailConfiguration"]["recordingMode"] == "DISABLED"


# which stages a pass asks IVS about --------------------------------------------------------------------


NOW = datetime(2026, 12, 7, 5, 0, tzinfo=UTC)


def stage_wanted(n: int, digest: str = "h1") -> Wanted:
    arn = f"arn:aws:ivs:us-east-1:123456789012:stage/Stage{n:04d}"
    return Wanted(StageInfo(arn, "", None), {"storageConfigurationArn": STORAGE}, digest, 1)


def record(w: Wanted, state: str, *, checked_ago: float, digest: str = "h1") -> SettingsRecord:
    return SettingsRecord(w.stage.arn, state, digest, NOW - timedelta(seconds=checked_ago))


def test_changed_settings_come_first_then_pending_then_the_oldest_checks_and_at_most_ten() -> None:
    changed = [stage_wanted(n, "h2") for n in range(3)]  # a new policy: their records hold h1
    pending = [stage_wanted(n) for n in range(3, 9)]
    old = [stage_wanted(n) for n in range(9, 14)]
    fresh = stage_wanted(14)
    records = {w.stage.arn: record(w, IN_SYNC, checked_ago=60) for w in changed}
    records |= {w.stage.arn: record(w, PENDING, checked_ago=60) for w in pending}
    records |= {w.stage.arn: record(w, IN_SYNC, checked_ago=ROTATION_MIN_AGE_SECONDS + n) for n, w in enumerate(old)}
    records[fresh.stage.arn] = record(fresh, IN_SYNC, checked_ago=60)  # checked a minute ago: not its turn

    chosen = select_stages([fresh, *old, *pending, *changed], records, now=NOW)

    assert [c.why for c in chosen] == [CHANGED] * 3 + [STILL_PENDING] * 5 + [ROTATION] * 2
    assert [c.wanted for c in chosen[-2:]] == [old[4], old[3]]  # the least recently checked first
    assert fresh not in [c.wanted for c in chosen]


def test_without_urgent_stages_the_rotation_takes_every_check_and_without_a_due_one_nothing() -> None:
    stages = [stage_wanted(n) for n in range(12)]
    due = {w.stage.arn: record(w, IN_SYNC, checked_ago=ROTATION_MIN_AGE_SECONDS) for w in stages}
    assert len(select_stages(stages, due, now=NOW)) == 10
    recent = {w.stage.arn: record(w, IN_SYNC, checked_ago=ROTATION_MIN_AGE_SECONDS - 1) for w in stages}
    assert select_stages(stages, recent, now=NOW) == []
    assert [c.why for c in select_stages(stages, {}, now=NOW)] == [CHANGED] * 10  # no record yet: all urgent
