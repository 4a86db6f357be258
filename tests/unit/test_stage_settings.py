"""Stage settings: what counts as drift between the stage's recording settings and the policy's."""

from __future__ import annotations

from stagepilot.automations.stage_settings import recording_drift
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
