"""What the IVS stand-in does as IVS documents it, on its own and under faults (docs/simulate.md).

Each test names the behaviour and the source it follows; the stand-in is what every other test believes
IVS does, so a kind stand-in here hides the bugs users meet.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from stagepilot.local.ivs import IvsStandIn

ACCOUNT = "123456789012"
REGION = "us-east-1"
STAGE = f"arn:aws:ivs:{REGION}:{ACCOUNT}:stage/AbCdef1G2hij"
DEST = f"arn:aws:ivs:{REGION}:{ACCOUNT}:stage/ZyXw9876Vuts"
SESSION = "st-ZyXwvu1T2sAbC"
NEXT_SESSION = "st-NextSession01"
CHANNEL = f"arn:aws:ivs:{REGION}:{ACCOUNT}:channel/AbCd1234"
ENCODER = f"arn:aws:ivs:{REGION}:{ACCOUNT}:encoder-configuration/AbCd1234"
STORAGE = f"arn:aws:ivs:{REGION}:{ACCOUNT}:storage-configuration/AbCd1234"
CHANNEL_DESTINATION = {"name": "live", "channel": {"channelArn": CHANNEL, "encoderConfigurationArn": ENCODER}}
S3_DESTINATION = {"name": "archive", "s3": {"storageConfigurationArn": STORAGE, "encoderConfigurationArns": [ENCODER]}}
START = datetime(2026, 11, 21, 20, 0, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def events() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def ivs(clock: Clock, events: list[dict[str, Any]]) -> IvsStandIn:
    stand_in = IvsStandIn(account=ACCOUNT, region=REGION, clock=clock, on_event=events.append, seed=3)
    stand_in.create_stage(STAGE)
    stand_in.create_stage(DEST)
    return stand_in


@pytest.fixture
def client(ivs: IvsStandIn) -> Any:
    return ivs.client()


def stage_event(
    name: str, participant_id: str, *, stage: str = STAGE, session: str = SESSION, event_id: str | None = None
) -> dict[str, Any]:
    return {
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "detail-type": "IVS Stage Update",
        "source": "aws.ivs",
        "account": stage.split(":")[4],
        "time": "2026-11-21T20:00:00Z",
        "region": stage.split(":")[3],
        "resources": [stage],
        "detail": {"session_id": session, "event_name": name, "user_id": "", "participant_id": participant_id},
    }


def publish(ivs: IvsStandIn, participant_id: str, **kwargs: Any) -> bool:
    return ivs.observe(stage_event("Participant Published", participant_id, **kwargs))


def unpublish(ivs: IvsStandIn, participant_id: str, **kwargs: Any) -> bool:
    return ivs.observe(stage_event("Participant Unpublished", participant_id, **kwargs))


def state_of(client: Any, arn: str) -> str:
    return str(client.get_composition(arn=arn)["composition"]["state"])


def named(events: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in events if e["detail"].get("event_name") == name]


def start(client: Any, stage: str = STAGE) -> str:
    return str(client.start_composition(stageArn=stage, destinations=[CHANNEL_DESTINATION])["composition"]["arn"])


def error(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    response: Any = excinfo.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


# ------------------------------------------------------------------------------------------ compositions


def test_composition_stops_one_minute_after_the_last_publisher_stops(
    ivs: IvsStandIn, client: Any, clock: Clock, events: list[dict[str, Any]]
) -> None:
    # Server-side composition guide: "no participant is actively publishing ... for 60 seconds"
    publish(ivs, "p1")
    arn = start(client)
    clock.tick(600)
    unpublish(ivs, "p1")  # still connected, no longer publishing
    clock.tick(59)
    assert state_of(client, arn) == "ACTIVE"
    clock.tick(1)
    assert state_of(client, arn) == "STOPPED"
    [end] = named(events, "Session End")
    assert end["time"] == "2026-11-21T20:11:00Z"
    assert end["detail"] == {"event_name": "Session End", "stage_arn": STAGE}


def test_composition_outlives_its_session_when_someone_is_back_within_the_minute(
    ivs: IvsStandIn, client: Any, clock: Clock
) -> None:
    # A composition belongs to the stage, not to a session (its API and events name no session).
    publish(ivs, "p1")
    arn = start(client)
    assert ivs.leave(STAGE, "p1")  # the last one: the session ends
    assert "activeSessionId" not in client.get_stage(arn=STAGE)["stage"]
    clock.tick(40)
    publish(ivs, "p2", session=NEXT_SESSION)  # a new session, within the minute
    clock.tick(3600)
    assert state_of(client, arn) == "ACTIVE"
    assert client.get_stage(arn=STAGE)["stage"]["activeSessionId"] == NEXT_SESSION


def test_composition_stops_when_the_next_session_comes_too_late(ivs: IvsStandIn, client: Any, clock: Clock) -> None:
    publish(ivs, "p1")
    arn = start(client)
    ivs.leave(STAGE, "p1")
    clock.tick(61)
    publish(ivs, "p2", session=NEXT_SESSION)
    assert state_of(client, arn) == "STOPPED"


def test_composition_stops_after_24_hours_even_with_publishers(ivs: IvsStandIn, client: Any, clock: Clock) -> None:
    # "Composition: max duration" 24 hours, not adjustable [quotas]
    publish(ivs, "p1")
    arn = start(client)
    clock.tick(24 * 3600 - 1)
    assert state_of(client, arn) == "ACTIVE"
    clock.tick(1)
    assert state_of(client, arn) == "STOPPED"


def test_stopped_compositions_are_cleaned_up_after_five_minutes(ivs: IvsStandIn, client: Any, clock: Clock) -> None:
    publish(ivs, "p1")
    arn = start(client)
    client.stop_composition(arn=arn)
    clock.tick(299)
    assert state_of(client, arn) == "STOPPED"
    clock.tick(1)
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_composition(arn=arn)
    assert client.list_compositions(filterByStageArn=STAGE)["compositions"] == []


def test_a_failed_composition_stays_listed_five_minutes_beside_live_ones(
    ivs: IvsStandIn, client: Any, clock: Clock
) -> None:
    # [ssc] "Once the composition is in the STOPPED or FAILED state, it is automatically cleaned up after
    # five minutes. (Then it no longer is retrieved by ListCompositions or GetComposition.)"
    publish(ivs, "p1")
    failed = start(client)
    ivs.fail_compositions(STAGE)
    clock.tick(10)
    live = start(client)

    clock.tick(289)  # 299 s after the failure
    listed = {c["arn"]: c for c in client.list_compositions(filterByStageArn=STAGE)["compositions"]}
    assert (listed[failed]["state"], listed[live]["state"]) == ("FAILED", "ACTIVE")
    assert listed[failed]["endTime"] == START and "endTime" not in listed[live]
    assert [d["state"] for d in listed[failed]["destinations"]] == ["FAILED"]
    assert client.get_composition(arn=failed)["composition"]["state"] == "FAILED"

    clock.tick(1)
    assert [c["arn"] for c in client.list_compositions()["compositions"]] == [live]
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_composition(arn=failed)


def test_stage_deletion_fails_its_compositions_and_ends_replicas(
    ivs: IvsStandIn, client: Any, events: list[dict[str, Any]]
) -> None:
    publish(ivs, "p1")
    arn = start(client)
    client.start_participant_replication(sourceStageArn=STAGE, destinationStageArn=DEST, participantId="p1")

    ivs.delete_stage(STAGE)

    assert state_of(client, arn) == "FAILED"
    [failure] = named(events, "Session Failure")
    assert failure["detail"] == {"event_name": "Session Failure", "stage_arn": STAGE, "reason": "stage deleted"}
    assert [r.state for r in ivs.replicas(STAGE, "p1")] == ["STOPPED"]
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_stage(arn=STAGE)
    assert not publish(ivs, "p9")  # a deleted stage has no more events


def test_destination_failure_keeps_the_composition_while_another_destination_is_active(
    ivs: IvsStandIn, client: Any, events: list[dict[str, Any]]
) -> None:
    # "IVS keeps the composition alive if at least one of its destinations is active" [ssc]
    publish(ivs, "p1")
    arn = client.start_composition(stageArn=STAGE, destinations=[CHANNEL_DESTINATION, S3_DESTINATION])["composition"][
        "arn"
    ]
    ivs.fail_destination(arn, reason="another broadcast was happening")
    assert state_of(client, arn) == "ACTIVE"
    [failure] = named(events, "Destination Failure")
    assert failure["resources"] == [arn]
    assert failure["detail"] == {
        "event_name": "Destination Failure",
        "stage_arn": STAGE,
        "reason": "another broadcast was happening",
    }
    ivs.fail_destination(arn)
    assert state_of(client, arn) == "FAILED"
    assert len(named(events, "Session Failure")) == 1


def test_composition_destinations_must_be_in_the_stage_account_and_region(ivs: IvsStandIn, client: Any) -> None:
    # channelArn doc: "The channel and stage resources must be in the same AWS account and region."
    publish(ivs, "p1")
    for foreign in (CHANNEL.replace(ACCOUNT, "999999999999"), CHANNEL.replace(REGION, "eu-west-1")):
        destination = {"name": "live", "channel": {"channelArn": foreign, "encoderConfigurationArn": ENCODER}}
        with pytest.raises(client.exceptions.ValidationException) as excinfo:
            client.start_composition(stageArn=STAGE, destinations=[destination])
        assert "same AWS account and region" in excinfo.value.response["exceptionMessage"]  # type: ignore[typeddict-item]
    assert ivs.compositions() == []


# ------------------------------------------------------------------------------------------ replicas


def test_replica_ends_at_once_when_its_source_stops_publishing_with_no_reconnect_window(
    ivs: IvsStandIn, client: Any, events: list[dict[str, Any]]
) -> None:
    # reconnectWindowSeconds defaults to 0 [model]; the replica ends when the publisher stops [repl]
    publish(ivs, "p1")
    client.start_participant_replication(sourceStageArn=STAGE, destinationStageArn=DEST, participantId="p1")
    unpublish(ivs, "p1")
    [listed] = client.list_participant_replicas(sourceStageArn=STAGE, participantId="p1")["replicas"]
    assert listed["replicationState"] == "STOPPED"
    [stopped] = named(events, "Participant Replication Stopped")
    assert stopped["resources"] == [STAGE]
    assert set(stopped["detail"]) == {"session_id", "event_name", "user_id", "participant_id"}


def test_replica_survives_a_source_back_within_the_reconnect_window(ivs: IvsStandIn, client: Any, clock: Clock) -> None:
    publish(ivs, "p1")
    client.start_participant_replication(
        sourceStageArn=STAGE, destinationStageArn=DEST, participantId="p1", reconnectWindowSeconds=30
    )
    unpublish(ivs, "p1")
    clock.tick(29)
    publish(ivs, "p1")
    clock.tick(600)
    assert [r.state for r in ivs.replicas(STAGE, "p1")] == ["ACTIVE"]


def test_replica_ends_when_the_reconnect_window_passes(
    ivs: IvsStandIn, client: Any, clock: Clock, events: list[dict[str, Any]]
) -> None:
    publish(ivs, "p1")
    client.start_participant_replication(
        sourceStageArn=STAGE, destinationStageArn=DEST, participantId="p1", reconnectWindowSeconds=30
    )
    unpublish(ivs, "p1")
    assert ivs.next_transition() == START + timedelta(seconds=30)
    clock.tick(30)
    ivs.advance()
    assert [r.state for r in ivs.replicas(STAGE, "p1")] == ["STOPPED"]
    [stopped] = named(events, "Participant Replication Stopped")
    assert stopped["time"] == "2026-11-21T20:00:30Z"
    [replica] = ivs.participants(DEST, ivs.stage(DEST).sessions[-1].session_id)  # type: ignore[union-attr]
    assert replica.state == "DISCONNECTED"


def test_replica_ends_when_its_source_leaves_and_the_reconnect_window_passes(
    ivs: IvsStandIn, client: Any, clock: Clock
) -> None:
    publish(ivs, "p1")
    publish(ivs, "p2")
    publish(ivs, "p3")
    client.start_participant_replication(sourceStageArn=STAGE, destinationStageArn=DEST, participantId="p1")
    client.start_participant_replication(
        sourceStageArn=STAGE, destinationStageArn=DEST, participantId="p2", reconnectWindowSeconds=300
    )
    ivs.leave(STAGE, "p1")
    client.disconnect_participant(stageArn=STAGE, participantId="p2")
    assert [r.state for r in ivs.replicas(STAGE, "p1")] == ["STOPPED"]  # window 0: at once
    # UNDOCUMENTED whether IVS waits out the window for a revoked token: it does here (the harder case)
    assert [r.state for r in ivs.replicas(STAGE, "p2")] == ["ACTIVE"]
    clock.tick(300)
    ivs.advance()
    assert [r.state for r in ivs.replicas(STAGE, "p2")] == ["STOPPED"]


def test_replication_to_another_account_or_region_is_refused(ivs: IvsStandIn, client: Any) -> None:
    publish(ivs, "p1")
    for foreign in (DEST.replace(ACCOUNT, "999999999999"), DEST.replace(REGION, "eu-west-1")):
        with pytest.raises(client.exceptions.ValidationException):
            client.start_participant_replication(sourceStageArn=STAGE, destinationStageArn=foreign, participantId="p1")


# ------------------------------------------------------------------------------------------ participants


def test_a_disconnected_participant_stays_disconnected(ivs: IvsStandIn, client: Any) -> None:
    # Web SDK: "This token was disconnected by the DisconnectParticipant API. This token can no longer be used."
    publish(ivs, "p1")
    publish(ivs, "p2")
    client.disconnect_participant(stageArn=STAGE, participantId="p1")

    assert not publish(ivs, "p1")  # a duplicated or late Participant Published (another event id)
    assert not publish(ivs, "p1", session=NEXT_SESSION)
    found = client.get_participant(stageArn=STAGE, sessionId=SESSION, participantId="p1")["participant"]
    assert found["state"] == "DISCONNECTED"
    assert client.get_stage(arn=STAGE)["stage"]["activeSessionId"] == SESSION


def test_a_duplicated_event_is_followed_once(ivs: IvsStandIn, client: Any) -> None:
    published = stage_event("Participant Published", "p1")
    assert ivs.observe(published)
    ivs.leave(STAGE, "p1")
    ivs.create_stage(STAGE)
    assert not ivs.observe(published)  # the same id again: a delivery artefact, not a new publish


def test_thirteenth_publisher_cannot_publish(ivs: IvsStandIn, client: Any) -> None:
    # "Stage participants (publishers)": 12, not adjustable [quotas]
    for n in range(12):
        publish(ivs, f"p{n}")
    publish(ivs, "late")
    found = client.get_participant(stageArn=STAGE, sessionId=SESSION, participantId="late")["participant"]
    assert (found["state"], found["published"]) == ("CONNECTED", False)
    history = client.list_participant_events(stageArn=STAGE, sessionId=SESSION, participantId="late")["events"]
    assert [(e["name"], e.get("errorCode")) for e in history] == [("JOINED", None), ("PUBLISH_ERROR", "QUOTA_EXCEEDED")]
    for n in range(12):
        publish(ivs, f"d{n}", stage=DEST, session=NEXT_SESSION)
    with pytest.raises(client.exceptions.ServiceQuotaExceededException):
        client.start_participant_replication(sourceStageArn=STAGE, destinationStageArn=DEST, participantId="p0")


def test_events_for_stages_of_another_account_or_region_are_not_followed(ivs: IvsStandIn) -> None:
    assert not publish(ivs, "p1", stage=STAGE.replace(ACCOUNT, "999999999999"))
    assert not publish(ivs, "p1", stage=STAGE.replace(REGION, "eu-west-1"))
    assert not publish(ivs, "p1", session="st-short")  # IVS session ids are 16 characters


def test_last_participant_leaving_ends_the_session(ivs: IvsStandIn, client: Any) -> None:
    publish(ivs, "p1")
    publish(ivs, "p2")
    assert ivs.leave(STAGE, "p1")
    assert client.get_stage(arn=STAGE)["stage"]["activeSessionId"] == SESSION
    assert ivs.leave(STAGE, "p2")
    assert "activeSessionId" not in client.get_stage(arn=STAGE)["stage"]
    assert not ivs.leave(STAGE, "p2")


def test_participant_events_are_a_history_that_pages(ivs: IvsStandIn, client: Any) -> None:
    publish(ivs, "p1")
    unpublish(ivs, "p1")
    publish(ivs, "p1")
    first = client.list_participant_events(stageArn=STAGE, sessionId=SESSION, participantId="p1", maxResults=2)
    rest = client.list_participant_events(
        stageArn=STAGE, sessionId=SESSION, participantId="p1", nextToken=first["nextToken"]
    )
    names = [e["name"] for e in first["events"] + rest["events"]]
    assert names == ["JOINED", "PUBLISH_STARTED", "PUBLISH_STOPPED", "PUBLISH_STARTED"]


def test_list_stages_shows_which_stages_are_live(ivs: IvsStandIn, client: Any) -> None:
    publish(ivs, "p1")
    first = client.list_stages(maxResults=1)
    rest = client.list_stages(nextToken=first["nextToken"])
    stages = {s["arn"]: s.get("activeSessionId") for s in first["stages"] + rest["stages"]}
    assert stages == {STAGE: SESSION, DEST: None}


# ------------------------------------------------------------------------------------------ validation and faults


@pytest.mark.parametrize(
    ("operation", "body", "field"),
    [
        ("GetParticipant", {"stageArn": STAGE, "sessionId": "st-short", "participantId": "p1"}, "sessionId"),
        ("GetParticipant", {"stageArn": STAGE, "sessionId": SESSION + "X", "participantId": "p1"}, "sessionId"),
        ("GetParticipant", {"stageArn": STAGE, "sessionId": SESSION, "participantId": "has.dot"}, "participantId"),
        ("DisconnectParticipant", {"stageArn": "arn:aws:ivs:::stage/", "participantId": "p1"}, "stageArn"),
        ("DisconnectParticipant", {"stageArn": STAGE, "participantId": "p1", "reason": "x" * 129}, "reason"),
        ("ListParticipants", {"stageArn": STAGE, "sessionId": SESSION, "maxResults": 101}, "maxResults"),
        ("ListParticipants", {"stageArn": STAGE, "sessionId": SESSION, "filterByState": "GONE"}, "filterByState"),
        ("GetStage", {"arn": STAGE, "surprise": 1}, "surprise"),
    ],
)
def test_the_service_validates_what_botocore_leaves_to_it(
    ivs: IvsStandIn, operation: str, body: dict[str, Any], field: str
) -> None:
    # botocore checks types and minimums client-side; maximums, patterns and enums are the service's
    status, headers, payload = ivs.handle_http(f"/{operation}", json.dumps(body).encode())
    assert (status, headers["x-amzn-ErrorType"]) == (400, "ValidationException")
    assert field in json.loads(payload)["exceptionMessage"]


def test_an_outage_fails_every_call_with_500_for_its_duration(ivs: IvsStandIn, client: Any, clock: Clock) -> None:
    publish(ivs, "p1")
    ivs.outage(START + timedelta(seconds=10), 900)
    client.get_stage(arn=STAGE)
    clock.tick(10)
    for call in (lambda: client.get_stage(arn=STAGE), lambda: start(client)):
        with pytest.raises(ClientError) as excinfo:
            call()
        assert error(excinfo) == (500, "InternalServerException")
    clock.tick(900)
    client.get_stage(arn=STAGE)
    assert ivs.compositions() == []  # nothing happened during the outage


def test_calls_carry_the_trigger_their_caller_set(ivs: IvsStandIn, client: Any) -> None:
    ivs.trigger = "reconcile"
    client.get_stage(arn=STAGE)
    ivs.trigger = None
    client.get_stage(arn=STAGE)
    assert [c.trigger for c in ivs.calls] == ["reconcile", None]


# ------------------------------------------------------------------------------------------ participant recording

RECORDING = {"storageConfigurationArn": STORAGE, "recordingReconnectWindowSeconds": 30}


def test_update_stage_stores_the_recording_configuration_with_ivs_defaults(ivs: IvsStandIn, client: Any) -> None:
    before = client.get_stage(arn=STAGE)["stage"]["autoParticipantRecordingConfiguration"]
    assert before["storageConfigurationArn"] == "" and before["mediaTypes"] == ["AUDIO_VIDEO"]  # the model's defaults

    client.update_stage(arn=STAGE, autoParticipantRecordingConfiguration=RECORDING)

    got = client.get_stage(arn=STAGE)["stage"]["autoParticipantRecordingConfiguration"]
    assert got == {
        "storageConfigurationArn": STORAGE,
        "mediaTypes": ["AUDIO_VIDEO"],
        "thumbnailConfiguration": {"targetIntervalSeconds": 60, "storage": ["SEQUENTIAL"], "recordingMode": "DISABLED"},
        "recordingReconnectWindowSeconds": 30,
        "hlsConfiguration": {"targetSegmentDurationSeconds": 6},
        "recordParticipantReplicas": True,
    }
    assert [c.operation for c in ivs.mutating_calls()] == ["UpdateStage"]


def test_members_left_out_of_an_update_keep_their_value_and_an_empty_storage_resets_all(
    ivs: IvsStandIn, client: Any
) -> None:
    client.update_stage(arn=STAGE, autoParticipantRecordingConfiguration={**RECORDING, "mediaTypes": ["AUDIO_ONLY"]})
    client.update_stage(arn=STAGE, autoParticipantRecordingConfiguration={"storageConfigurationArn": STORAGE})
    kept = client.get_stage(arn=STAGE)["stage"]["autoParticipantRecordingConfiguration"]
    assert (kept["mediaTypes"], kept["recordingReconnectWindowSeconds"]) == (["AUDIO_ONLY"], 30)  # UNDOCUMENTED: merged

    client.update_stage(arn=STAGE, autoParticipantRecordingConfiguration={"storageConfigurationArn": ""})
    reset = client.get_stage(arn=STAGE)["stage"]["autoParticipantRecordingConfiguration"]
    assert (reset["mediaTypes"], reset["recordingReconnectWindowSeconds"]) == (["AUDIO_VIDEO"], 0)


def test_update_stage_refuses_a_foreign_or_missing_storage_configuration(ivs: IvsStandIn, client: Any) -> None:
    for storage in (STORAGE.replace(ACCOUNT, "999999999999"), STORAGE.replace("AbCd1234", "Gone0001")):
        ivs.missing(STORAGE.replace("AbCd1234", "Gone0001"))
        with pytest.raises(client.exceptions.ValidationException):
            client.update_stage(arn=STAGE, autoParticipantRecordingConfiguration={"storageConfigurationArn": storage})


def test_a_publisher_is_recorded_and_the_end_waits_for_the_reconnect_window(
    ivs: IvsStandIn, client: Any, clock: Clock, events: list[dict[str, Any]]
) -> None:
    client.update_stage(arn=STAGE, autoParticipantRecordingConfiguration=RECORDING)
    publish(ivs, "p1")
    found = client.get_participant(stageArn=STAGE, sessionId=SESSION, participantId="p1")["participant"]
    assert found["recordingState"] == "ACTIVE"
    assert found["recordingS3Prefix"].startswith(f"AbCdef1G2hij/{SESSION}/p1/")
    [started] = named(events, "Recording Start")
    assert started["detail-type"] == "IVS Participant Recording State Change"
    assert set(started["detail"]) == {
        "session_id",
        "event_name",
        "participant_id",
        "recording_s3_bucket_name",
        "recording_s3_key_prefix",
    }

    unpublish(ivs, "p1")
    clock.tick(20)
    publish(ivs, "p1")  # back within 30 s: the same recording [ipr]
    unpublish(ivs, "p1")
    clock.tick(30)
    ivs.advance()
    assert len(named(events, "Recording Start")) == 1
    [ended] = named(events, "Recording End")
    assert ended["time"] == "2026-11-21T20:00:50Z"  # delayed by recordingReconnectWindowSeconds


def test_recording_failures_are_reported(ivs: IvsStandIn, client: Any, events: list[dict[str, Any]]) -> None:
    client.update_stage(arn=STAGE, autoParticipantRecordingConfiguration=RECORDING)
    publish(ivs, "p1")
    ivs.fail_recordings(STAGE)
    assert [e["detail"]["event_name"] for e in events if "Recording" in e["detail"]["event_name"]] == [
        "Recording Start",
        "Recording End Failure",
    ]
    ivs.missing(STORAGE)  # the bucket went away: the next publisher's recording cannot start
    publish(ivs, "p2")
    assert named(events, "Recording Start Failure")[0]["detail"]["participant_id"] == "p2"


def test_replicas_are_not_recorded_when_the_stage_says_so(ivs: IvsStandIn, client: Any) -> None:
    client.update_stage(
        arn=DEST, autoParticipantRecordingConfiguration={**RECORDING, "recordParticipantReplicas": False}
    )
    publish(ivs, "p1")
    client.start_participant_replication(sourceStageArn=STAGE, destinationStageArn=DEST, participantId="p1")
    [replica] = [p for p in ivs.participants(DEST) if p.participant_id == "p1"]
    assert replica.recording_state == "DISABLED"


# ------------------------------------------------------------------------------------------ settings while recording


def test_update_stage_is_refused_while_a_participant_is_recorded_and_taken_once_none_is(
    ivs: IvsStandIn, client: Any, clock: Clock
) -> None:
    """UpdateStage [model]: the recording configuration "cannot be updated while recording is active".
    UNDOCUMENTED which error: ValidationException, the one a caller cannot tell from a bad configuration."""
    client.update_stage(arn=STAGE, autoParticipantRecordingConfiguration=RECORDING)
    publish(ivs, "p1")
    wanted = {**RECORDING, "mediaTypes": ["AUDIO_ONLY"]}

    with pytest.raises(client.exceptions.ValidationException) as refused:
        client.update_stage(arn=STAGE, autoParticipantRecordingConfiguration=wanted)
    assert "recording is active" in str(refused.value.response.get("exceptionMessage"))
    assert client.get_stage(arn=STAGE)["stage"]["autoParticipantRecordingConfiguration"]["mediaTypes"] == [
        "AUDIO_VIDEO"
    ]
    client.update_stage(arn=STAGE, name="renamed")  # other settings are not the recording's

    unpublish(ivs, "p1")  # still recorded for recordingReconnectWindowSeconds (30 s)
    with pytest.raises(client.exceptions.ValidationException):
        client.update_stage(arn=STAGE, autoParticipantRecordingConfiguration=wanted)
    clock.tick(30)
    client.update_stage(arn=STAGE, autoParticipantRecordingConfiguration=wanted)
    assert client.get_stage(arn=STAGE)["stage"]["autoParticipantRecordingConfiguration"]["mediaTypes"] == ["AUDIO_ONLY"]


def test_list_participants_filters_by_recording_state(ivs: IvsStandIn, client: Any) -> None:
    client.update_stage(arn=STAGE, autoParticipantRecordingConfiguration=RECORDING)
    publish(ivs, "p1")
    ivs.observe(stage_event("Participant Publish Error", "viewer"))  # connected, never published: not recorded

    def listed(state: str) -> list[str]:
        found = client.list_participants(stageArn=STAGE, sessionId=SESSION, filterByRecordingState=state)
        return [p["participantId"] for p in found["participants"]]

    assert (listed("ACTIVE"), listed("STOPPED")) == (["p1"], [])
    unpublish(ivs, "p1")
    ivs.advance(START + timedelta(seconds=30))
    assert (listed("ACTIVE"), listed("STOPPED")) == ([], ["p1"])


def test_the_recording_directive_starts_and_stops_a_participants_recording_with_its_events(
    ivs: IvsStandIn, client: Any, events: list[dict[str, Any]]
) -> None:
    publish(ivs, "p1")  # the stage records nobody by itself (no storage configuration)
    assert ivs.set_participant_recording(STAGE, "p1", active=True)
    assert not ivs.set_participant_recording(STAGE, "p1", active=True)  # already recorded: nothing sent
    assert not ivs.set_participant_recording(STAGE, "nobody", active=True)
    found = client.get_participant(stageArn=STAGE, sessionId=SESSION, participantId="p1")["participant"]
    assert found["recordingState"] == "ACTIVE"
    with pytest.raises(client.exceptions.ValidationException):
        client.update_stage(arn=STAGE, autoParticipantRecordingConfiguration=RECORDING)

    assert ivs.set_participant_recording(STAGE, "p1", active=False)
    assert [
        e["detail"]["event_name"] for e in events if e["detail-type"] == "IVS Participant Recording State Change"
    ] == [
        "Recording Start",
        "Recording End",
    ]
    client.update_stage(arn=STAGE, autoParticipantRecordingConfiguration=RECORDING)


# ------------------------------------------------------------------------------ ends, destinations, 24 hours


def destination_states(client: Any, arn: str) -> dict[str, str]:
    """Each destination's state by its kind, as GetComposition shows it."""
    found = client.get_composition(arn=arn)["composition"]["destinations"]
    return {("channel" if "channel" in d["configuration"] else "s3"): d["state"] for d in found}


def test_stop_composition_ends_each_destination_then_the_session(
    ivs: IvsStandIn, client: Any, events: list[dict[str, Any]]
) -> None:
    # EventBridge events [eb]: "Destination End: output to a destination completed"; "Session End: the
    # composition session completed". A stop ends every destination first, then the session.
    publish(ivs, "p1")
    arn = client.start_composition(stageArn=STAGE, destinations=[CHANNEL_DESTINATION, S3_DESTINATION])["composition"][
        "arn"
    ]
    client.stop_composition(arn=arn)
    ends = [e["detail"]["event_name"] for e in events if e["detail-type"] == "IVS Composition State Change"]
    assert ends == ["Session Start", "Destination End", "Destination End", "Session End"]
    assert all(e["resources"] == [arn] for e in named(events, "Destination End"))
    assert destination_states(client, arn) == {"channel": "STOPPED", "s3": "STOPPED"}
    client.stop_composition(arn=arn)  # already stopped: nothing more is sent
    assert len(named(events, "Session End")) == 1


def test_the_24_hour_end_ends_each_destination_too(
    ivs: IvsStandIn, client: Any, clock: Clock, events: list[dict[str, Any]]
) -> None:
    ivs.connect(STAGE, "p1", publish=True)
    arn = client.start_composition(stageArn=STAGE, destinations=[S3_DESTINATION])["composition"]["arn"]
    clock.tick(12 * 3600)
    ivs.connect(STAGE, "p2", publish=True)  # p1's connection ends at its own 24 hours; p2 carries on
    clock.tick(12 * 3600)
    assert state_of(client, arn) == "STOPPED"
    assert [e["time"] for e in named(events, "Destination End")] == ["2026-11-22T20:00:00Z"]
    assert destination_states(client, arn) == {"s3": "STOPPED"}


def test_a_destination_of_a_given_kind_fails_and_the_other_records_on(
    ivs: IvsStandIn, client: Any, events: list[dict[str, Any]]
) -> None:
    # "IVS keeps the composition alive if at least one of its destinations is active" [ssc]; GetComposition
    # shows each destination's state [model] (DestinationState: STARTING, ACTIVE, STOPPING, RECONNECTING,
    # FAILED, STOPPED)
    publish(ivs, "p1")
    arn = client.start_composition(stageArn=STAGE, destinations=[S3_DESTINATION, CHANNEL_DESTINATION])["composition"][
        "arn"
    ]
    ivs.fail_destination(arn, kind="channel", reason="the channel is already live")
    assert state_of(client, arn) == "ACTIVE"
    assert destination_states(client, arn) == {"channel": "FAILED", "s3": "ACTIVE"}
    [listed] = client.list_compositions(filterByStageArn=STAGE)["compositions"]
    assert sorted(d["state"] for d in listed["destinations"]) == ["ACTIVE", "FAILED"]
    ivs.fail_destination(arn, kind="channel")  # already failed: nothing more
    assert len(named(events, "Destination Failure")) == 1
    client.stop_composition(arn=arn)
    # the failed destination stays FAILED; only the one still active ends
    assert len(named(events, "Destination End")) == 1
    assert destination_states(client, arn) == {"channel": "FAILED", "s3": "STOPPED"}


def test_fail_destinations_of_a_stage(ivs: IvsStandIn, client: Any, events: list[dict[str, Any]]) -> None:
    publish(ivs, "p1")
    arn = client.start_composition(stageArn=STAGE, destinations=[S3_DESTINATION])["composition"]["arn"]
    assert ivs.fail_destinations(STAGE, kind="channel") == 0  # no channel destination: nothing fails
    assert ivs.fail_destinations(STAGE, kind="s3", reason="access denied to the bucket") == 1
    assert state_of(client, arn) == "FAILED"  # no destination left active: the composition fails
    [failure] = named(events, "Session Failure")
    assert failure["detail"]["reason"] == "access denied to the bucket"


def test_a_participant_is_disconnected_after_24_hours(
    ivs: IvsStandIn, client: Any, clock: Clock, events: list[dict[str, Any]]
) -> None:
    # A participant may publish or subscribe for 24 hours at most (quota, not adjustable): a 24/7 show
    # loses its publishers at 24 h whatever the composition does.
    session = ivs.connect(STAGE, "p1", publish=True)
    clock.tick(3600)
    ivs.connect(STAGE, "viewer")
    clock.tick(23 * 3600 - 1)
    ivs.advance()
    assert [p.state for p in ivs.participants(STAGE)] == ["CONNECTED", "CONNECTED"]
    clock.tick(1)
    ivs.advance()
    assert [p.state for p in ivs.participants(STAGE)] == ["DISCONNECTED", "CONNECTED"]
    [stopped] = named(events, "Participant Unpublished")
    assert stopped["detail"]["participant_id"] == "p1" and stopped["time"] == "2026-11-22T20:00:00Z"
    clock.tick(3600)
    ivs.advance()
    assert client.get_stage(arn=STAGE)["stage"].get("activeSessionId") is None  # the last one left: it ended
    assert client.get_stage_session(stageArn=STAGE, sessionId=session)["stageSession"]["endTime"]


def test_a_participant_back_with_the_same_token_gets_24_hours_from_its_return(
    ivs: IvsStandIn, client: Any, clock: Clock
) -> None:
    ivs.connect(STAGE, "p1", publish=True)
    ivs.connect(STAGE, "p2")
    clock.tick(3600)
    ivs.leave(STAGE, "p1")
    ivs.connect(STAGE, "p1", publish=True)
    clock.tick(24 * 3600 - 1)
    ivs.advance()
    assert {p.participant_id: p.state for p in ivs.participants(STAGE)} == {"p1": "CONNECTED", "p2": "DISCONNECTED"}


# ------------------------------------------------------------------------------ a channel takes one stream


def publish_on_both_stages(ivs: IvsStandIn) -> None:
    publish(ivs, "p1")
    publish(ivs, "p2", stage=DEST)


def composition_events(events: list[dict[str, Any]], arn: str) -> list[str]:
    return [e["detail"]["event_name"] for e in events if e["resources"] == [arn]]


def test_a_second_composition_into_a_live_channel_starts_and_its_channel_destination_fails(
    ivs: IvsStandIn, client: Any, events: list[dict[str, Any]]
) -> None:
    # channelArn [model]: "The channel must be offline (not broadcasting)." Destination Failure [eb]:
    # "broadcasting to a channel failed because there was no stream key or another broadcast was happening".
    # The start is not refused (UNDOCUMENTED; the harder case): the second composition fails on its own.
    publish_on_both_stages(ivs)
    first = start(client)
    second = client.start_composition(stageArn=DEST, destinations=[CHANNEL_DESTINATION])["composition"]
    assert second["state"] == "STARTING"  # StartComposition answered as for any start

    assert state_of(client, first) == "ACTIVE"
    assert destination_states(client, first) == {"channel": "ACTIVE"}
    assert state_of(client, second["arn"]) == "FAILED"  # its only destination failed
    assert destination_states(client, second["arn"]) == {"channel": "FAILED"}
    assert composition_events(events, second["arn"]) == ["Session Start", "Destination Failure", "Session Failure"]
    [failure] = named(events, "Destination Failure")
    assert failure["detail"] == {
        "event_name": "Destination Failure",
        "stage_arn": DEST,
        "reason": "the channel already has a live stream",
    }
    assert composition_events(events, first) == ["Session Start"]


def test_a_composition_into_a_live_channel_records_on_to_s3(
    ivs: IvsStandIn, client: Any, events: list[dict[str, Any]]
) -> None:
    # "IVS keeps the composition alive if at least one of its destinations is active" [ssc]: a composition
    # whose channel is taken is ACTIVE (recording) and never reaches its channel.
    publish_on_both_stages(ivs)
    start(client)
    arn = client.start_composition(stageArn=DEST, destinations=[CHANNEL_DESTINATION, S3_DESTINATION])["composition"][
        "arn"
    ]
    assert state_of(client, arn) == "ACTIVE"
    assert destination_states(client, arn) == {"channel": "FAILED", "s3": "ACTIVE"}
    assert composition_events(events, arn) == ["Session Start", "Destination Failure"]


def test_the_same_stage_twice_into_one_channel_fails_the_second(ivs: IvsStandIn, client: Any) -> None:
    # A double start on one stage (5 compositions per stage are allowed [quotas]) reaches the channel once.
    publish(ivs, "p1")
    first, second = start(client), start(client)
    assert (state_of(client, first), state_of(client, second)) == ("ACTIVE", "FAILED")


def test_a_channel_is_free_again_once_its_composition_ends(ivs: IvsStandIn, client: Any, clock: Clock) -> None:
    publish_on_both_stages(ivs)
    first = start(client)
    client.stop_composition(arn=first)
    clock.tick(1)
    second = start(client, DEST)
    assert destination_states(client, second) == {"channel": "ACTIVE"}
    # a composition whose channel destination failed holds nothing: the next start gets the channel
    ivs.fail_destination(second, kind="channel")
    third = start(client)
    assert state_of(client, third) == "ACTIVE"


def test_a_failed_channel_destination_does_not_come_back_when_the_channel_frees(
    ivs: IvsStandIn, client: Any, events: list[dict[str, Any]]
) -> None:
    # StartComposition doc: the composition ends "When broadcasting to the IVS channel fails and all retries
    # are exhausted"; a FAILED destination is not retried later.
    publish_on_both_stages(ivs)
    first = start(client)
    arn = client.start_composition(stageArn=DEST, destinations=[S3_DESTINATION, CHANNEL_DESTINATION])["composition"][
        "arn"
    ]
    client.stop_composition(arn=first)
    assert destination_states(client, arn) == {"channel": "FAILED", "s3": "ACTIVE"}
    assert len(named(events, "Destination Failure")) == 1


def test_an_encoder_on_the_channel_fails_a_composition_into_it(
    ivs: IvsStandIn, client: Any, events: list[dict[str, Any]]
) -> None:
    publish(ivs, "p1")
    assert ivs.encoder_on_air(CHANNEL)
    arn = start(client)
    assert state_of(client, arn) == "FAILED"
    assert named(events, "Destination Failure")[0]["detail"]["reason"] == "the channel already has a live stream"
    assert ivs.encoder_on_air(CHANNEL, on_air=False)
    live = start(client)
    assert state_of(client, live) == "ACTIVE"
    assert not ivs.encoder_on_air(CHANNEL)  # the composition holds the channel: the encoder is refused
    assert destination_states(client, live) == {"channel": "ACTIVE"}


def test_other_channels_are_not_affected(ivs: IvsStandIn, client: Any) -> None:
    publish_on_both_stages(ivs)
    start(client)
    other = {
        "name": "live",
        "channel": {"channelArn": CHANNEL.replace("AbCd1234", "Other567"), "encoderConfigurationArn": ENCODER},
    }
    arn = client.start_composition(stageArn=DEST, destinations=[other])["composition"]["arn"]
    assert state_of(client, arn) == "ACTIVE"
