"""The IVS real-time stand-in, exercised through a real boto3 client (no network)."""

from __future__ import annotations

import re
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError, ParamValidationError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stagepilot.local.ivs import IvsStandIn

ACCOUNT = "123456789012"
STAGE = f"arn:aws:ivs:us-east-1:{ACCOUNT}:stage/AbCdef1G2hij"
DEST = f"arn:aws:ivs:us-east-1:{ACCOUNT}:stage/ZyXw9876Vuts"
SESSION = "st-ZyXwvu1T2sAbC"  # the model wants exactly 16 characters
CHANNEL = f"arn:aws:ivs:us-east-1:{ACCOUNT}:channel/AbCd1234"
ENCODER = f"arn:aws:ivs:us-east-1:{ACCOUNT}:encoder-configuration/AbCd1234"
STORAGE = f"arn:aws:ivs:us-east-1:{ACCOUNT}:storage-configuration/AbCd1234"
CHANNEL_DESTINATION = {"name": "live", "channel": {"channelArn": CHANNEL, "encoderConfigurationArn": ENCODER}}
START = datetime(2026, 11, 21, 20, 0, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def events() -> list[dict[str, Any]]:
    return []


@pytest.fixture
def ivs(clock: FakeClock, events: list[dict[str, Any]]) -> IvsStandIn:
    return IvsStandIn(clock=clock, on_event=events.append, seed=7)


@pytest.fixture
def client(ivs: IvsStandIn) -> Any:
    return ivs.client()


def stage_update(
    name: str, participant_id: str, *, stage: str = STAGE, session: str = SESSION, user_id: str = ""
) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),  # each a distinct event: the stand-in ignores an id it already followed
        "detail-type": "IVS Stage Update",
        "source": "aws.ivs",
        "account": ACCOUNT,
        "time": "2026-11-21T20:00:00Z",
        "region": "us-east-1",
        "resources": [stage],
        "detail": {
            "session_id": session,
            "event_name": name,
            "user_id": user_id,
            "participant_id": participant_id,
        },
    }


def publish(ivs: IvsStandIn, participant_id: str, **kwargs: Any) -> None:
    ivs.observe(stage_update("Participant Published", participant_id, **kwargs))


def unpublish(ivs: IvsStandIn, participant_id: str, **kwargs: Any) -> None:
    ivs.observe(stage_update("Participant Unpublished", participant_id, **kwargs))


def start(client: Any, stage: str = STAGE, *, channel: str = CHANNEL, **kwargs: Any) -> dict[str, Any]:
    """A composition into ``channel``: a channel takes one stream at a time, so compositions meant to be
    live side by side each have a channel of their own."""
    destination = {"name": "live", "channel": {"channelArn": channel, "encoderConfigurationArn": ENCODER}}
    return client.start_composition(stageArn=stage, destinations=[destination], **kwargs)["composition"]


def channel_number(n: int) -> str:
    return f"{CHANNEL}{n}"


def error_of(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[int, str, str]:
    response: Any = excinfo.value.response
    return (
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Code"],
        response.get("exceptionMessage", response["Error"]["Message"]),
    )


def named(events: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in events if e["detail"].get("event_name") == name]


# ------------------------------------------------------------------------------------------ stages


def test_get_stage_reports_the_active_session(ivs: IvsStandIn, client: Any) -> None:
    ivs.create_stage(DEST, name="replicas", tags={"team": "shows"})
    publish(ivs, "p1")

    def summary(arn: str) -> dict[str, Any]:  # the recording configuration is tested with UpdateStage
        return {
            k: v
            for k, v in client.get_stage(arn=arn)["stage"].items()
            if k not in ("autoParticipantRecordingConfiguration", "endpoints")  # endpoints: tests/handlers/test_door
        }

    assert summary(STAGE) == {"arn": STAGE, "name": "", "activeSessionId": SESSION, "tags": {}}
    assert summary(DEST) == {"arn": DEST, "name": "replicas", "tags": {"team": "shows"}}


def test_unknown_stage_is_resource_not_found(client: Any) -> None:
    with pytest.raises(client.exceptions.ResourceNotFoundException) as excinfo:
        client.get_stage(arn=STAGE)
    status, code, message = error_of(excinfo)
    assert (status, code) == (404, "ResourceNotFoundException")
    assert STAGE in message


def test_a_new_session_id_ends_the_previous_session(ivs: IvsStandIn, client: Any, clock: FakeClock) -> None:
    publish(ivs, "p1")
    clock.tick(600)
    publish(ivs, "p2", session="st-NewSession001")

    sessions = client.list_stage_sessions(stageArn=STAGE)["stageSessions"]
    assert [s["sessionId"] for s in sessions] == ["st-NewSession001", SESSION]  # newest first
    assert "endTime" not in sessions[0]
    assert sessions[1]["endTime"] == START + timedelta(seconds=600)
    old = client.get_participant(stageArn=STAGE, sessionId=SESSION, participantId="p1")["participant"]
    assert old["state"] == "DISCONNECTED"
    assert client.get_stage(arn=STAGE)["stage"]["activeSessionId"] == "st-NewSession001"


def test_list_stage_sessions_pages(ivs: IvsStandIn, client: Any) -> None:
    for n in range(3):
        publish(ivs, "p1", session=f"st-Session{n:06d}")
    first = client.list_stage_sessions(stageArn=STAGE, maxResults=2)
    second = client.list_stage_sessions(stageArn=STAGE, maxResults=2, nextToken=first["nextToken"])
    ids = [s["sessionId"] for s in first["stageSessions"] + second["stageSessions"]]
    assert len(ids) == len(set(ids)) == 3
    assert "nextToken" not in second


def test_get_stage_session(ivs: IvsStandIn, client: Any) -> None:
    publish(ivs, "p1")
    assert client.get_stage_session(stageArn=STAGE, sessionId=SESSION)["stageSession"] == {
        "sessionId": SESSION,
        "startTime": START,
    }
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_stage_session(stageArn=STAGE, sessionId="st-Unknown000000"[:16])


def test_late_event_for_an_ended_session_is_ignored(ivs: IvsStandIn, client: Any) -> None:
    publish(ivs, "p1")
    publish(ivs, "p2", session="st-NewSession001")
    unpublish(ivs, "p1")  # arrives late, for the old session

    assert client.get_stage(arn=STAGE)["stage"]["activeSessionId"] == "st-NewSession001"
    assert [p.participant_id for p in ivs.participants(STAGE)] == ["p2"]


def test_unknown_events_are_ignored(ivs: IvsStandIn) -> None:
    ivs.observe({"detail-type": "IVS Participant Recording State Change", "resources": [STAGE], "detail": {}})
    ivs.observe(stage_update("Participant Replication Started", "p1"))
    ivs.observe({"detail-type": "Participant Flagged", "source": "stagepilot.moderation", "detail": {}})
    assert ivs.stage(STAGE) is None


def test_end_session_disconnects_everyone_and_the_composition_stops_a_minute_later(
    ivs: IvsStandIn, client: Any, clock: FakeClock, events: list[dict[str, Any]]
) -> None:
    # A composition is the stage's, not the session's: StartComposition doc, "After a 1-minute timeout,
    # when all participants are disconnected from the stage". (The stand-in used to stop it at once.)
    publish(ivs, "p1")
    arn = start(client)["arn"]

    ivs.end_session(STAGE)

    assert "activeSessionId" not in client.get_stage(arn=STAGE)["stage"]
    assert client.get_stage_session(stageArn=STAGE, sessionId=SESSION)["stageSession"]["endTime"] == START
    assert client.get_participant(stageArn=STAGE, sessionId=SESSION, participantId="p1")["participant"]["state"] == (
        "DISCONNECTED"
    )
    assert client.get_composition(arn=arn)["composition"]["state"] == "ACTIVE"
    clock.tick(59)
    assert client.get_composition(arn=arn)["composition"]["state"] == "ACTIVE"
    clock.tick(1)
    assert client.get_composition(arn=arn)["composition"]["state"] == "STOPPED"
    [end] = named(events, "Session End")
    assert (end["resources"], end["time"]) == ([arn], "2026-11-21T20:01:00Z")


# ------------------------------------------------------------------------------------------ participants


def test_get_participant_reports_declared_token_and_publish_state(ivs: IvsStandIn, client: Any) -> None:
    ivs.declare_participant(STAGE, "p1", user_id="host-1", attributes={"role": "host"})
    publish(ivs, "p1", user_id="ignored-when-declared")
    unpublish(ivs, "p1")

    participant = client.get_participant(stageArn=STAGE, sessionId=SESSION, participantId="p1")["participant"]

    assert participant["userId"] == "host-1"
    assert participant["attributes"] == {"role": "host"}
    assert participant["state"] == "CONNECTED"
    assert participant["published"] is True  # "ever published to the stage session"
    assert participant["firstJoinTime"] == START
    assert participant["replicationType"] == "NONE"
    assert participant["protocol"] == "UNKNOWN"
    assert ivs.participants(STAGE)[0].publishing is False


def test_undeclared_participant_is_known_from_events(ivs: IvsStandIn, client: Any) -> None:
    ivs.observe(stage_update("Participant Publish Error", "p9", user_id="guest-9"))
    participant = client.get_participant(stageArn=STAGE, sessionId=SESSION, participantId="p9")["participant"]
    assert (participant["userId"], participant["attributes"], participant["published"]) == ("guest-9", {}, False)


def test_get_participant_unknown_is_not_found(ivs: IvsStandIn, client: Any) -> None:
    publish(ivs, "p1")
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_participant(stageArn=STAGE, sessionId=SESSION, participantId="nobody")
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_participant(stageArn=STAGE, sessionId="st-Unknown000000"[:16], participantId="p1")


def test_list_participants_pages_in_join_order(ivs: IvsStandIn, client: Any) -> None:
    ids = [f"p{n}" for n in range(7)]
    for pid in ids:
        publish(ivs, pid)

    seen, token, pages = [], None, 0
    while True:
        kwargs = {"nextToken": token} if token else {}
        page = client.list_participants(stageArn=STAGE, sessionId=SESSION, maxResults=3, **kwargs)
        seen += [p["participantId"] for p in page["participants"]]
        pages += 1
        token = page.get("nextToken")
        if not token:
            break

    assert seen == ids
    assert pages == 3


def test_list_participants_filters(ivs: IvsStandIn, client: Any) -> None:
    ivs.declare_participant(STAGE, "p1", user_id="host-1")
    publish(ivs, "p1")
    ivs.observe(stage_update("Participant Publish Error", "p2", user_id="guest"))
    publish(ivs, "p3", user_id="guest")
    client.disconnect_participant(stageArn=STAGE, participantId="p3")

    def ids(**kwargs: Any) -> list[str]:
        found = client.list_participants(stageArn=STAGE, sessionId=SESSION, **kwargs)["participants"]
        return [p["participantId"] for p in found]

    assert ids(filterByUserId="guest") == ["p2", "p3"]
    assert ids(filterByPublished=True) == ["p1", "p3"]
    assert ids(filterByPublished=False) == ["p2"]
    assert ids(filterByState="DISCONNECTED") == ["p3"]
    assert ids(filterByState="CONNECTED") == ["p1", "p2"]


def test_list_participants_allows_only_one_filter(ivs: IvsStandIn, client: Any) -> None:
    publish(ivs, "p1")
    with pytest.raises(client.exceptions.ValidationException) as excinfo:
        client.list_participants(stageArn=STAGE, sessionId=SESSION, filterByUserId="u", filterByPublished=True)
    assert error_of(excinfo)[:2] == (400, "ValidationException")


def test_a_bad_next_token_is_a_validation_error(ivs: IvsStandIn, client: Any) -> None:
    with pytest.raises(client.exceptions.ValidationException):
        client.list_participants(stageArn=STAGE, sessionId=SESSION, nextToken="not-a-token")


# ------------------------------------------------------------------------------------------ compositions


def test_start_composition_emits_session_start(ivs: IvsStandIn, client: Any, events: list[dict[str, Any]]) -> None:
    publish(ivs, "p1")

    composition = start(client, tags={"team": "shows"}, layout={"pip": {"pipParticipantAttribute": "pip"}})

    assert re.fullmatch(rf"arn:aws:ivs:us-east-1:{ACCOUNT}:composition/[a-zA-Z0-9]{{12}}", composition["arn"])
    assert composition["state"] == "STARTING"  # what StartComposition answers
    assert composition["layout"] == {"pip": {"pipParticipantAttribute": "pip"}}
    assert composition["destinations"][0]["configuration"] == CHANNEL_DESTINATION
    got = client.get_composition(arn=composition["arn"])["composition"]
    assert (got["state"], got["tags"], got["startTime"]) == ("ACTIVE", {"team": "shows"}, START)
    [event] = named(events, "Session Start")
    assert event["detail-type"] == "IVS Composition State Change"
    assert event["resources"] == [composition["arn"]]
    assert event["detail"] == {"event_name": "Session Start", "stage_arn": STAGE}  # no session: documented fields


def test_emitted_envelopes_are_eventbridge_shaped(ivs: IvsStandIn, client: Any, events: list[dict[str, Any]]) -> None:
    ivs.create_stage(STAGE)
    start(client)
    [event] = events
    assert set(event) == {"version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"}
    assert (event["version"], event["source"], event["account"], event["region"]) == (
        "0",
        "aws.ivs",
        ACCOUNT,
        "us-east-1",
    )
    assert event["time"] == "2026-11-21T20:00:00Z"
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", event["id"])
    assert ivs.events == events


def test_start_composition_on_unknown_stage_is_not_found(client: Any) -> None:
    with pytest.raises(client.exceptions.ResourceNotFoundException) as excinfo:
        start(client)
    assert error_of(excinfo)[:2] == (404, "ResourceNotFoundException")


@pytest.mark.parametrize(
    ("missing", "destination"),
    [
        (CHANNEL, CHANNEL_DESTINATION),
        (ENCODER, CHANNEL_DESTINATION),
        (STORAGE, {"s3": {"storageConfigurationArn": STORAGE, "encoderConfigurationArns": [ENCODER]}}),
    ],
)
def test_start_composition_with_a_missing_resource_is_a_validation_error(
    ivs: IvsStandIn, client: Any, missing: str, destination: dict[str, Any]
) -> None:
    ivs.create_stage(STAGE)
    ivs.missing(missing)
    with pytest.raises(client.exceptions.ValidationException) as excinfo:
        client.start_composition(stageArn=STAGE, destinations=[destination])
    status, code, message = error_of(excinfo)
    assert (status, code) == (400, "ValidationException")
    assert missing in message
    assert ivs.compositions() == []


def test_s3_destination_gets_a_recording_prefix(ivs: IvsStandIn, client: Any) -> None:
    publish(ivs, "p1")
    s3 = {"name": "archive", "s3": {"storageConfigurationArn": STORAGE, "encoderConfigurationArns": [ENCODER]}}
    composition = client.start_composition(stageArn=STAGE, destinations=[CHANNEL_DESTINATION, s3])["composition"]
    assert composition["destinations"][1]["detail"]["s3"]["recordingPrefix"].startswith(f"AbCdef1G2hij/{SESSION}/")


def test_idempotency_token_reuse_returns_the_same_composition(
    ivs: IvsStandIn, client: Any, clock: FakeClock, events: list[dict[str, Any]]
) -> None:
    publish(ivs, "p1")
    first = start(client, idempotencyToken="stage-session-1")
    again = start(client, idempotencyToken="stage-session-1")

    assert again["arn"] == first["arn"]
    assert len(ivs.compositions()) == 1
    assert len(named(events, "Session Start")) == 1

    client.stop_composition(arn=first["arn"])
    clock.tick(301)  # cleaned up: the token no longer finds it
    assert start(client, idempotencyToken="stage-session-1")["arn"] != first["arn"]


def test_botocore_fills_in_an_idempotency_token(ivs: IvsStandIn, client: Any) -> None:
    ivs.create_stage(STAGE)
    start(client)
    start(client)
    assert len({call.params["idempotencyToken"] for call in ivs.calls}) == 2
    assert len(ivs.compositions()) == 2


def test_sixth_composition_on_a_stage_exceeds_the_quota(ivs: IvsStandIn, client: Any) -> None:
    publish(ivs, "p1")
    for n in range(5):
        start(client, channel=channel_number(n))
    with pytest.raises(client.exceptions.ServiceQuotaExceededException) as excinfo:
        start(client, channel=channel_number(5))
    assert error_of(excinfo)[:2] == (402, "ServiceQuotaExceededException")


def test_stop_composition_emits_session_end(
    ivs: IvsStandIn, client: Any, clock: FakeClock, events: list[dict[str, Any]]
) -> None:
    publish(ivs, "p1")
    arn = start(client)["arn"]
    clock.tick(30)

    client.stop_composition(arn=arn)
    client.stop_composition(arn=arn)  # again: nothing more happens

    got = client.get_composition(arn=arn)["composition"]
    assert (got["state"], got["endTime"]) == ("STOPPED", START + timedelta(seconds=30))
    assert got["destinations"][0]["state"] == "STOPPED"
    [event] = named(events, "Session End")
    assert event["resources"] == [arn]
    assert event["detail"] == {"event_name": "Session End", "stage_arn": STAGE}
    assert event["time"] == "2026-11-21T20:00:30Z"


def test_stop_unknown_composition_is_not_found(client: Any) -> None:
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.stop_composition(arn=f"arn:aws:ivs:us-east-1:{ACCOUNT}:composition/Nope12345678")


def test_fail_compositions_emits_session_failure(ivs: IvsStandIn, client: Any, events: list[dict[str, Any]]) -> None:
    publish(ivs, "p1")
    live = start(client)["arn"]
    stopped = start(client, channel=channel_number(1))["arn"]
    client.stop_composition(arn=stopped)
    publish(ivs, "q1", stage=DEST)
    elsewhere = start(client, stage=DEST, channel=channel_number(2))["arn"]

    failures = ivs.fail_compositions(STAGE, reason="stage deleted")

    assert [f["resources"] for f in failures] == [[live]]
    assert failures[0]["detail-type"] == "IVS Composition State Change"
    assert failures[0]["detail"] == {
        "event_name": "Session Failure",
        "stage_arn": STAGE,
        "reason": "stage deleted",
    }
    assert named(events, "Session Failure") == failures
    assert client.get_composition(arn=live)["composition"]["state"] == "FAILED"
    assert client.get_composition(arn=elsewhere)["composition"]["state"] == "ACTIVE"


def test_composition_auto_stops_60s_after_the_last_publisher_leaves(
    ivs: IvsStandIn, client: Any, clock: FakeClock, events: list[dict[str, Any]]
) -> None:
    publish(ivs, "p1")
    arn = start(client)["arn"]
    clock.tick(10)
    unpublish(ivs, "p1")  # nobody publishes from 20:00:10

    clock.tick(59)
    ivs.advance()
    assert ivs.compositions()[0].state == "ACTIVE"

    clock.tick(5)
    ivs.advance()
    [composition] = ivs.compositions()
    assert composition.state == "STOPPED"
    assert composition.end_time == START + timedelta(seconds=70)
    [event] = named(events, "Session End")
    assert (event["resources"], event["time"]) == ([arn], "2026-11-21T20:01:10Z")


def test_a_returning_publisher_keeps_the_composition_alive(ivs: IvsStandIn, client: Any, clock: FakeClock) -> None:
    publish(ivs, "p1")
    start(client)
    unpublish(ivs, "p1")
    clock.tick(50)
    publish(ivs, "p2")
    clock.tick(600)
    ivs.advance()
    assert ivs.compositions()[0].state == "ACTIVE"


def test_composition_started_without_publishers_stops_after_60s(ivs: IvsStandIn, client: Any, clock: FakeClock) -> None:
    ivs.create_stage(STAGE)
    clock.tick(300)
    arn = start(client)["arn"]
    ivs.advance(START + timedelta(seconds=359))
    assert client.get_composition(arn=arn)["composition"]["state"] == "ACTIVE"
    clock.tick(60)
    # any API call first catches up with the clock
    assert client.get_composition(arn=arn)["composition"]["state"] == "STOPPED"


def test_ended_compositions_disappear_after_five_minutes(ivs: IvsStandIn, client: Any, clock: FakeClock) -> None:
    publish(ivs, "p1")
    stopped = start(client)["arn"]
    failed = start(client, channel=channel_number(1))["arn"]
    also_failed = start(client, channel=channel_number(2))["arn"]
    client.stop_composition(arn=stopped)
    ivs.fail_compositions(STAGE)  # fails the two still live
    clock.tick(299)
    assert len(client.list_compositions()["compositions"]) == 3

    clock.tick(1)
    assert client.list_compositions()["compositions"] == []
    for arn in (stopped, failed, also_failed):
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            client.get_composition(arn=arn)
    assert len(ivs.compositions(include_deleted=True)) == 3


def test_list_compositions_filters_and_pages(ivs: IvsStandIn, client: Any) -> None:
    publish(ivs, "p1")
    publish(ivs, "q1", stage=DEST)
    on_stage = [start(client, channel=channel_number(n))["arn"] for n in range(4)]
    start(client, stage=DEST, channel=channel_number(4))

    arns, token = [], None
    while True:
        kwargs = {"nextToken": token} if token else {}
        page = client.list_compositions(filterByStageArn=STAGE, maxResults=3, **kwargs)
        arns += [c["arn"] for c in page["compositions"]]
        token = page.get("nextToken")
        if not token:
            break

    assert arns == on_stage
    summary = client.list_compositions(filterByStageArn=DEST)["compositions"][0]
    assert summary["state"] == "ACTIVE"
    assert summary["destinations"][0]["state"] == "ACTIVE"
    assert len(client.list_compositions(filterByEncoderConfigurationArn=ENCODER)["compositions"]) == 5


# ------------------------------------------------------------------------------------------ replication


def test_start_replication_puts_a_replica_in_the_destination(
    ivs: IvsStandIn, client: Any, events: list[dict[str, Any]]
) -> None:
    ivs.declare_participant(STAGE, "p1", user_id="host-1", attributes={"role": "host"})
    publish(ivs, "p1")
    ivs.create_stage(DEST)

    client.start_participant_replication(
        sourceStageArn=STAGE, destinationStageArn=DEST, participantId="p1", attributes={"replicated": "true"}
    )

    destination_session = client.get_stage(arn=DEST)["stage"]["activeSessionId"]
    assert re.fullmatch(r"st-[a-zA-Z0-9]{13}", destination_session)
    replica = client.get_participant(stageArn=DEST, sessionId=destination_session, participantId="p1")["participant"]
    assert replica["replicationType"] == "REPLICA"
    assert replica["replicationState"] == "ACTIVE"
    assert (replica["sourceStageArn"], replica["sourceSessionId"]) == (STAGE, SESSION)
    assert (replica["state"], replica["published"], replica["userId"]) == ("CONNECTED", True, "host-1")
    assert replica["attributes"] == {"role": "host", "replicated": "true"}
    source = client.get_participant(stageArn=STAGE, sessionId=SESSION, participantId="p1")["participant"]
    assert (source["replicationType"], source["replicationState"]) == ("SOURCE", "ACTIVE")

    published, started = events
    assert published["resources"] == [DEST]
    assert published["detail"] == {
        "session_id": destination_session,
        "event_name": "Participant Published",
        "user_id": "host-1",
        "participant_id": "p1",
        "event_time": "2026-11-21T20:00:00Z",
    }  # no replica flag, no source stage: no IVS document shows them; GetParticipant says REPLICA
    assert started["resources"] == [STAGE]
    assert started["detail"] == {
        "session_id": SESSION,
        "event_name": "Participant Replication Started",
        "user_id": "host-1",
        "participant_id": "p1",
    }

    [listed] = client.list_participant_replicas(sourceStageArn=STAGE, participantId="p1")["replicas"]
    assert listed == {
        "sourceStageArn": STAGE,
        "participantId": "p1",
        "sourceSessionId": SESSION,
        "destinationStageArn": DEST,
        "destinationSessionId": destination_session,
        "replicationState": "ACTIVE",
    }


def test_replica_keeps_a_destination_composition_alive(ivs: IvsStandIn, client: Any, clock: FakeClock) -> None:
    publish(ivs, "p1")
    ivs.create_stage(DEST)
    client.start_participant_replication(sourceStageArn=STAGE, destinationStageArn=DEST, participantId="p1")
    arn = start(client, stage=DEST)["arn"]
    clock.tick(120)
    assert client.get_composition(arn=arn)["composition"]["state"] == "ACTIVE"


def test_replicating_a_participant_who_is_not_publishing_fails(ivs: IvsStandIn, client: Any) -> None:
    publish(ivs, "p1")
    unpublish(ivs, "p1")
    ivs.create_stage(DEST)
    with pytest.raises(client.exceptions.ValidationException) as excinfo:
        client.start_participant_replication(sourceStageArn=STAGE, destinationStageArn=DEST, participantId="p1")
    assert error_of(excinfo) == (400, "ValidationException", "p1 is not publishing")


def test_replicating_to_a_missing_stage_is_not_found(ivs: IvsStandIn, client: Any) -> None:
    publish(ivs, "p1")
    ivs.missing(DEST)
    with pytest.raises(client.exceptions.ResourceNotFoundException) as excinfo:
        client.start_participant_replication(sourceStageArn=STAGE, destinationStageArn=DEST, participantId="p1")
    assert error_of(excinfo)[:2] == (404, "ResourceNotFoundException")
    assert DEST in error_of(excinfo)[2]


def test_replicating_an_unknown_participant_is_not_found(ivs: IvsStandIn, client: Any) -> None:
    publish(ivs, "p1")
    ivs.create_stage(DEST)
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.start_participant_replication(sourceStageArn=STAGE, destinationStageArn=DEST, participantId="p2")


def test_duplicate_replication_conflicts_and_sixth_exceeds_quota(ivs: IvsStandIn, client: Any) -> None:
    publish(ivs, "p1")
    destinations = [f"arn:aws:ivs:us-east-1:{ACCOUNT}:stage/Dest{n}" for n in range(6)]
    for arn in destinations:
        ivs.create_stage(arn)
    for arn in destinations[:5]:
        client.start_participant_replication(sourceStageArn=STAGE, destinationStageArn=arn, participantId="p1")

    with pytest.raises(client.exceptions.ConflictException) as conflict:
        client.start_participant_replication(
            sourceStageArn=STAGE, destinationStageArn=destinations[0], participantId="p1"
        )
    assert error_of(conflict)[:2] == (409, "ConflictException")

    with pytest.raises(client.exceptions.ServiceQuotaExceededException) as quota:
        client.start_participant_replication(
            sourceStageArn=STAGE, destinationStageArn=destinations[5], participantId="p1"
        )
    assert error_of(quota)[:2] == (402, "ServiceQuotaExceededException")

    # stopping one frees a slot
    client.stop_participant_replication(sourceStageArn=STAGE, destinationStageArn=destinations[0], participantId="p1")
    client.start_participant_replication(sourceStageArn=STAGE, destinationStageArn=destinations[5], participantId="p1")


def test_stop_replication_removes_the_replica(ivs: IvsStandIn, client: Any, events: list[dict[str, Any]]) -> None:
    publish(ivs, "p1", user_id="host-1")
    ivs.create_stage(DEST)
    client.start_participant_replication(sourceStageArn=STAGE, destinationStageArn=DEST, participantId="p1")
    events.clear()

    client.stop_participant_replication(sourceStageArn=STAGE, destinationStageArn=DEST, participantId="p1")

    [replica] = ivs.participants(DEST)
    assert (replica.state, replica.publishing, replica.replication_state) == ("DISCONNECTED", False, "STOPPED")
    unpublished, stopped = events
    assert (unpublished["resources"], unpublished["detail"]["event_name"]) == ([DEST], "Participant Unpublished")
    assert "replica" not in unpublished["detail"]
    assert (stopped["resources"], stopped["detail"]["event_name"]) == ([STAGE], "Participant Replication Stopped")
    assert set(stopped["detail"]) == {"session_id", "event_name", "user_id", "participant_id"}
    # the replica was the destination's only participant: its session is over
    assert "activeSessionId" not in client.get_stage(arn=DEST)["stage"]
    [listed] = client.list_participant_replicas(sourceStageArn=STAGE, participantId="p1")["replicas"]
    assert listed["replicationState"] == "STOPPED"
    source = client.get_participant(stageArn=STAGE, sessionId=SESSION, participantId="p1")["participant"]
    assert source["replicationState"] == "STOPPED"

    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.stop_participant_replication(sourceStageArn=STAGE, destinationStageArn=DEST, participantId="p1")


def test_list_participant_replicas_pages(ivs: IvsStandIn, client: Any) -> None:
    publish(ivs, "p1")
    destinations = [f"arn:aws:ivs:us-east-1:{ACCOUNT}:stage/Dest{n}" for n in range(5)]
    for arn in destinations:
        ivs.create_stage(arn)
        client.start_participant_replication(sourceStageArn=STAGE, destinationStageArn=arn, participantId="p1")

    paginator = client.get_paginator("list_participant_replicas")  # this one has a boto3 paginator
    pages = list(paginator.paginate(sourceStageArn=STAGE, participantId="p1", PaginationConfig={"PageSize": 2}))

    assert [len(p["replicas"]) for p in pages] == [2, 2, 1]
    assert [r["destinationStageArn"] for p in pages for r in p["replicas"]] == destinations


# ------------------------------------------------------------------------------------------ disconnect


def test_disconnect_participant(ivs: IvsStandIn, client: Any, events: list[dict[str, Any]]) -> None:
    publish(ivs, "p1", user_id="spammer-7")
    ivs.create_stage(DEST)
    client.start_participant_replication(sourceStageArn=STAGE, destinationStageArn=DEST, participantId="p1")
    events.clear()

    client.disconnect_participant(stageArn=STAGE, participantId="p1", reason="Removed by moderation")

    participant = client.get_participant(stageArn=STAGE, sessionId=SESSION, participantId="p1")["participant"]
    assert participant["state"] == "DISCONNECTED"
    assert not ivs.participants(STAGE)[0].publishing
    assert [(e["resources"], e["detail"]["event_name"]) for e in events] == [
        ([STAGE], "Participant Unpublished"),
        ([DEST], "Participant Unpublished"),  # the replica ends with its source [repl]
        ([STAGE], "Participant Replication Stopped"),
    ]
    assert [r.state for r in ivs.replicas(STAGE, "p1")] == ["STOPPED"]
    assert not ivs.participants(DEST)[0].publishing


def test_disconnecting_a_replica_at_its_destination_ends_its_replication_and_does_not_refuse_a_new_one(
    ivs: IvsStandIn, client: Any, events: list[dict[str, Any]]
) -> None:
    publish(ivs, "p1", user_id="guest-9")
    ivs.create_stage(DEST)
    client.start_participant_replication(
        sourceStageArn=STAGE, destinationStageArn=DEST, participantId="p1", reconnectWindowSeconds=300
    )
    [replica] = client.list_participants(stageArn=DEST, sessionId=ivs.stage(DEST).active_session_id)["participants"]
    # IVS's own answers tell a replica apart (what stagepilot reads): type and source
    assert (replica["replicationType"], replica["sourceStageArn"], replica["sourceSessionId"]) == (
        "REPLICA",
        STAGE,
        SESSION,
    )
    events.clear()

    client.disconnect_participant(stageArn=DEST, participantId="p1", reason="Removed by moderation")

    # UNDOCUMENTED (docs/simulate.md): the replica leaves and its replication ends; the source publishes on
    assert [r.state for r in ivs.replicas(STAGE, "p1")] == ["STOPPED"]
    assert ivs.participants(STAGE)[0].publishing
    assert [(e["resources"], e["detail"]["event_name"]) for e in events] == [
        ([DEST], "Participant Unpublished"),
        ([STAGE], "Participant Replication Stopped"),
    ]
    # ... and IVS accepts replicating it there again (the harder case: stagepilot must not do it)
    client.start_participant_replication(sourceStageArn=STAGE, destinationStageArn=DEST, participantId="p1")
    assert [r.state for r in ivs.replicas(STAGE, "p1")] == ["STOPPED", "ACTIVE"]


def test_disconnect_unknown_participant_is_not_found(ivs: IvsStandIn, client: Any) -> None:
    publish(ivs, "p1")
    with pytest.raises(client.exceptions.ResourceNotFoundException) as excinfo:
        client.disconnect_participant(stageArn=STAGE, participantId="nobody")
    assert error_of(excinfo)[:2] == (404, "ResourceNotFoundException")
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.disconnect_participant(stageArn=DEST, participantId="p1")


# ------------------------------------------------------------------------------------------ calls & faults


def test_calls_record_params_as_sent_and_mutating_calls_only_successes(ivs: IvsStandIn, client: Any) -> None:
    publish(ivs, "p1")
    ivs.create_stage(DEST)
    start(client, idempotencyToken="t-1")
    client.list_compositions()
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.disconnect_participant(stageArn=STAGE, participantId="nobody")
    client.start_participant_replication(sourceStageArn=STAGE, destinationStageArn=DEST, participantId="p1")
    client.disconnect_participant(stageArn=STAGE, participantId="p1", reason="bye")

    assert [(c.operation, c.status) for c in ivs.calls] == [
        ("StartComposition", 200),
        ("ListCompositions", 200),
        ("DisconnectParticipant", 404),
        ("StartParticipantReplication", 200),
        ("DisconnectParticipant", 200),
    ]
    assert ivs.calls[0].params == {"stageArn": STAGE, "destinations": [CHANNEL_DESTINATION], "idempotencyToken": "t-1"}
    assert ivs.calls[0].time == START
    assert [c.operation for c in ivs.mutating_calls()] == [
        "StartComposition",
        "StartParticipantReplication",
        "DisconnectParticipant",
    ]
    assert ivs.mutating_calls()[-1].params == {"stageArn": STAGE, "participantId": "p1", "reason": "bye"}


@pytest.mark.parametrize(
    ("error", "status"),
    [
        ("ValidationException", 400),
        ("ServiceQuotaExceededException", 402),
        ("AccessDeniedException", 403),
        ("PendingVerification", 403),
        ("ResourceNotFoundException", 404),
        ("ConflictException", 409),
        ("InternalServerException", 500),
    ],
)
def test_fail_next_returns_the_modelled_error(ivs: IvsStandIn, client: Any, error: str, status: int) -> None:
    ivs.create_stage(STAGE)
    ivs.fail_next("StartComposition", 2, error=error)

    for _ in range(2):
        with pytest.raises(getattr(client.exceptions, error)) as excinfo:
            start(client)
        assert error_of(excinfo)[:2] == (status, error)
    start(client)  # the third call goes through

    assert [c.status for c in ivs.calls] == [status, status, 200]
    assert len(ivs.compositions()) == 1


def test_fail_next_throttling_is_429(ivs: IvsStandIn, client: Any) -> None:
    ivs.fail_next("GetStage", error="ThrottlingException")
    with pytest.raises(ClientError) as excinfo:
        client.get_stage(arn=STAGE)
    assert error_of(excinfo)[:2] == (429, "ThrottlingException")


def test_fail_next_rejects_unknown_operations_and_errors(ivs: IvsStandIn) -> None:
    with pytest.raises(ValueError, match="StartCompositon"):
        ivs.fail_next("StartCompositon")
    with pytest.raises(ValueError, match="BoomException"):
        ivs.fail_next("StartComposition", error="BoomException")


def test_retries_are_off_by_default_but_can_be_configured(ivs: IvsStandIn) -> None:
    from botocore.config import Config

    ivs.create_stage(STAGE)
    retrying = ivs.client(config=Config(retries={"mode": "standard", "total_max_attempts": 2}))
    ivs.fail_next("GetStage", error="InternalServerException")
    assert retrying.get_stage(arn=STAGE)["ResponseMetadata"]["RetryAttempts"] == 1


def test_rate_limit_throttles_beyond_the_quota_within_a_second(ivs: IvsStandIn, client: Any, clock: FakeClock) -> None:
    publish(ivs, "p1")
    publish(ivs, "p2")  # keeps the session alive once p1 is gone
    ivs.set_rate_limit("DisconnectParticipant", 2)

    client.disconnect_participant(stageArn=STAGE, participantId="p1")
    clock.tick(0.5)
    client.disconnect_participant(stageArn=STAGE, participantId="p1")
    with pytest.raises(ClientError) as excinfo:
        client.disconnect_participant(stageArn=STAGE, participantId="p1")
    assert error_of(excinfo)[:2] == (429, "ThrottlingException")
    assert excinfo.value.response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == "ThrottlingException"
    client.get_stage(arn=STAGE)  # other operations are not limited

    clock.tick(0.5)  # the first call has left the window
    client.disconnect_participant(stageArn=STAGE, participantId="p1")
    with pytest.raises(ClientError):
        client.disconnect_participant(stageArn=STAGE, participantId="p1")
    clock.tick(1)
    client.disconnect_participant(stageArn=STAGE, participantId="p1")

    assert [c.status for c in ivs.calls if c.operation == "DisconnectParticipant"] == [200, 200, 429, 200, 429, 200]


def test_botocore_standard_retries_treat_429_as_throttling(ivs: IvsStandIn, client: Any) -> None:
    from botocore.retries.standard import RetryContext, ThrottledRetryableChecker

    ivs.set_rate_limit("GetStage", 0)
    with pytest.raises(ClientError) as excinfo:
        client.get_stage(arn=STAGE)
    context = RetryContext(attempt_number=1, parsed_response=excinfo.value.response, http_response=None)
    assert ThrottledRetryableChecker().is_retryable(context)


def test_parameter_validation_happens_before_the_stand_in(ivs: IvsStandIn, client: Any) -> None:
    with pytest.raises(ParamValidationError):
        client.start_composition(destinations=[CHANNEL_DESTINATION])  # no stageArn
    with pytest.raises(ParamValidationError):
        client.get_participant(stageArn=STAGE, sessionId="st-short", participantId="p1")
    assert ivs.calls == []


def test_unimplemented_operation_names_itself(ivs: IvsStandIn, client: Any) -> None:
    with pytest.raises(ClientError) as excinfo:
        client.create_stage(name="new")
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501
    assert "CreateStage" in str(excinfo.value)


def test_event_callback_may_call_back_into_the_stand_in(clock: FakeClock) -> None:
    seen: list[str] = []
    ivs: IvsStandIn

    def on_event(event: dict[str, Any]) -> None:
        seen.append(ivs.client().get_composition(arn=event["resources"][0])["composition"]["state"])

    ivs = IvsStandIn(clock=clock, on_event=on_event)
    ivs.create_stage(STAGE)
    start(ivs.client())
    assert seen == ["ACTIVE"]


def test_works_inside_moto_mock_aws(ivs: IvsStandIn) -> None:
    from moto import mock_aws

    with mock_aws():
        client = ivs.client()
        ivs.create_stage(STAGE)
        assert client.get_stage(arn=STAGE)["stage"]["arn"] == STAGE


def test_attach_refuses_other_services(ivs: IvsStandIn) -> None:
    import boto3

    sqs = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1").client("sqs")
    with pytest.raises(ValueError, match="ivs-realtime"):
        ivs.attach(sqs)


def test_concurrent_calls_keep_state_consistent(ivs: IvsStandIn) -> None:
    publish(ivs, "p1")
    destinations = [f"arn:aws:ivs:us-east-1:{ACCOUNT}:stage/Dest{n}" for n in range(5)]
    for arn in destinations:
        ivs.create_stage(arn)
    for n in range(20):
        publish(ivs, f"x{n}", stage=f"arn:aws:ivs:us-east-1:{ACCOUNT}:stage/Busy{n}")
    results: list[str] = []
    barrier = threading.Barrier(20)

    def worker(n: int) -> None:
        client = ivs.client()
        barrier.wait()
        client.start_composition(
            stageArn=f"arn:aws:ivs:us-east-1:{ACCOUNT}:stage/Busy{n}", destinations=[CHANNEL_DESTINATION]
        )
        try:  # 4 threads race for each destination: exactly one wins
            client.start_participant_replication(
                sourceStageArn=STAGE, destinationStageArn=destinations[n % 5], participantId="p1"
            )
            results.append("ok")
        except client.exceptions.ConflictException:
            results.append("conflict")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(results) == ["conflict"] * 15 + ["ok"] * 5
    assert len({c.arn for c in ivs.compositions()}) == 20
    assert len(ivs.replicas(STAGE, "p1", active_only=True)) == 5
    assert len(ivs.calls) == 40


def test_declaring_a_participant_later_updates_what_get_participant_reports(ivs: IvsStandIn, client: Any) -> None:
    publish(ivs, "p1", user_id="from-event")
    ivs.declare_participant(STAGE, "p1", user_id="host-1", attributes={"role": "host"})
    participant = client.get_participant(stageArn=STAGE, sessionId=SESSION, participantId="p1")["participant"]
    assert (participant["userId"], participant["attributes"]) == ("host-1", {"role": "host"})


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(count=st.integers(min_value=0, max_value=12), page_size=st.integers(min_value=1, max_value=5))
def test_paging_through_participants_returns_each_once_in_order(
    ivs: IvsStandIn, client: Any, count: int, page_size: int
) -> None:
    stage = f"arn:aws:ivs:us-east-1:{ACCOUNT}:stage/Paged{count}x{page_size}"
    ids = [f"p{n}" for n in range(count)]
    for pid in ids:
        publish(ivs, pid, stage=stage)

    seen: list[str] = []
    kwargs: dict[str, Any] = {}
    while True:
        page = client.list_participants(stageArn=stage, sessionId=SESSION, maxResults=page_size, **kwargs)
        assert len(page["participants"]) <= page_size
        seen += [p["participantId"] for p in page["participants"]]
        if "nextToken" not in page:
            break
        kwargs = {"nextToken": page["nextToken"]}

    assert seen == ids
