"""``stagepilot dlq list|redrive`` moving real SQS messages in moto server, and ``stagepilot explain``
agreeing with what the handlers then do on the same state."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import time_machine

from stagepilot.cli import dlq
from stagepilot.decisions.composition import State
from stagepilot.events import parse_event
from stagepilot.handlers.wiring import ERROR_ATTRIBUTE
from stagepilot.local.deployment import default_automations
from stagepilot.local.ivs import IvsStandIn
from stagepilot.pipeline import Services, handle_event
from tests.cli.conftest import handler_services, run
from tests.support import CHANNEL, ENCODER, OTHER_STAGE, SESSION, STAGE, EventFactory


def queue_urls(automation: str) -> tuple[str, str]:
    outputs = boto3.client("cloudformation").describe_stacks(StackName="StagePilot")["Stacks"][0]["Outputs"]
    by_key = {o["OutputKey"]: o["OutputValue"] for o in outputs}
    name = automation.capitalize()
    return by_key[f"{name}QueueUrl"], by_key[f"{name}DlqUrl"]


def bodies(url: str) -> list[str]:
    sqs = boto3.client("sqs")
    found = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30).get(
        "Messages", []
    ):
        found.extend(m["Body"] for m in messages)
    return found


def test_error_attribute_is_the_one_the_functions_write():
    assert dlq.ERROR_ATTRIBUTE == ERROR_ATTRIBUTE


def test_dlq_list_summarizes_each_failed_event_and_leaves_them_in_place(aws: str):
    sqs = boto3.client("sqs")
    _, dlq_url = queue_urls("composition")
    events = EventFactory(at=datetime.now(UTC))
    exhausted = events.published("p-1", event_id="evt-exhausted")
    sqs.send_message(QueueUrl=dlq_url, MessageBody=json.dumps(exhausted))
    sqs.send_message(
        QueueUrl=dlq_url,
        MessageBody='{"not": "an event"',
        MessageAttributes={ERROR_ATTRIBUTE: {"DataType": "String", "StringValue": "malformed event: not JSON"}},
    )

    report = run("dlq", "list", "--json").json()

    by_name = {r["automation"]: r for r in report}
    assert by_name["replication"]["count"] == 0 and by_name["moderation"]["events"] == []
    composition = by_name["composition"]
    assert composition["count"] == 2 and composition["oldestAgeSeconds"] is not None
    summaries = {e["eventId"]: e for e in composition["events"]}
    assert summaries["evt-exhausted"]["detailType"] == "IVS Stage Update"
    assert summaries["evt-exhausted"]["eventName"] == "Participant Published"
    assert summaries["evt-exhausted"]["stageArn"] == STAGE
    assert summaries["evt-exhausted"]["error"].startswith("retries exhausted")
    assert summaries[None]["error"] == "malformed event: not JSON"

    text = run("dlq", "list", "--automation", "composition").stdout.splitlines()
    assert text[0].startswith("composition: 2 failed events, oldest ")
    assert any(line.startswith(f"  evt-exhausted  IVS Stage Update / Participant Published  {STAGE}") for line in text)
    assert len(bodies(dlq_url)) == 2  # listed twice, still all there and visible


def test_dlq_redrive_moves_the_messages_back_to_the_source_queue(aws: str):
    sqs = boto3.client("sqs")
    queue_url, dlq_url = queue_urls("moderation")
    events = EventFactory(at=datetime.now(UTC))
    sent = [json.dumps(events.published(f"p-{i}")) for i in range(23)]  # more than two batches
    for start in range(0, len(sent), 10):
        sqs.send_message_batch(
            QueueUrl=dlq_url, Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(sent[start : start + 10])]
        )

    result = run("dlq", "redrive", "--automation", "moderation")

    assert result.status == 0, result.stderr
    assert result.stdout.strip() == "moderation: moved 23 events back"
    assert result.stderr == ""  # progress is one line rewritten on a terminal, nothing in a pipe
    assert sorted(bodies(queue_url)) == sorted(sent)
    assert bodies(dlq_url) == []
    assert run("dlq", "redrive", "--json").json() == [
        {
            "automation": a,
            "moved": 0,
            "failed": 0,
            "skippedMalformed": 0,
            "method": "none",
            "queueUrl": queue_urls(a)[0],
        }
        for a in ("composition", "replication", "moderation")
    ]


def test_dlq_redrive_sends_as_the_stacks_redrive_role(aws: str):
    # The queues take messages only from their rules and the stack's roles: redrive signs as the role.
    from stagepilot.cli.dlq import redrive_sender
    from stagepilot.cli.output import Output
    from stagepilot.cli.resources import Resources

    sender = redrive_sender(Resources(), Output(False))

    credentials = sender._request_signer._credentials
    who = boto3.client(
        "sts",
        aws_access_key_id=credentials.access_key,
        aws_secret_access_key=credentials.secret_key,
        aws_session_token=credentials.token,
    ).get_caller_identity()["Arn"]
    assert who.endswith(":assumed-role/StagePilot-Redrive/stagepilot-dlq-redrive")


def test_dlq_needs_the_stack_outputs(aws: str):
    assert run("dlq", "list", "--automation", "nope").status == 2
    missing = run("dlq", "list", "--stack", "Other")
    assert missing.status == 1 and "stack Other not found" in missing.stderr


# explain -------------------------------------------------------------------------------------------
POLICY = {
    "stageArn": STAGE,
    "composition": {
        "destinations": [{"name": "live", "channel": {"channelArn": CHANNEL, "encoderConfigurationArn": ENCODER}}]
    },
    "replication": [{"destinationStageArn": OTHER_STAGE, "participants": {"userIds": ["host"]}}],
    "moderation": {"blockedUserIds": ["troll-9"], "flagLimit": {"count": 2, "windowSeconds": 300}},
}


def explain_then_handle(ivs: IvsStandIn, tmp_path: Path, event: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Explain the event through the CLI, then run it through the handlers on the same state; return
    (automation, explained action, handled action) for each automation."""
    path = tmp_path / f"{event['id']}.json"
    path.write_text(json.dumps(event))
    result = run("explain", str(path), "--json")
    assert result.status == 0, result.stderr
    explained = {e["automation"]: e for e in result.json()["automations"]}
    services = handler_services(ivs)
    rows = []
    for automation in default_automations():
        verdict = explained[automation.name]
        if not verdict["routed"]:
            rows.append((automation.name, "not-routed", "not-routed"))
            continue
        outcome = handle_event(parse_event(event), automation, services)
        rows.append((automation.name, verdict["action"], outcome.action))
        if outcome.action == "skip":
            assert verdict["reason"] == outcome.reason, (automation.name, verdict, outcome)
    return rows


def agree(rows: list[tuple[str, str, str]]) -> dict[str, str]:
    for name, explained, handled in rows:
        assert explained == handled, (name, explained, handled)
    return {name: explained for name, explained, _ in rows}


@pytest.mark.story
def test_explain_agrees_with_the_handlers_through_a_session(ivs: IvsStandIn, tmp_path: Path):
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(POLICY))
    assert run("policy", "put", str(path)).status == 0
    ivs.create_stage(OTHER_STAGE)
    events = EventFactory(at=datetime.now(UTC))

    host = events.published("p-host", user_id="host")
    ivs.observe(host)
    assert agree(explain_then_handle(ivs, tmp_path, host)) == {
        "composition": "composition-started",
        "replication": "replication-started",
        "moderation": "skip",
    }
    assert agree(explain_then_handle(ivs, tmp_path, host)) == {  # the same event again: all done already
        "composition": "skip",
        "replication": "skip",
        "moderation": "skip",
    }

    troll = events.published("p-troll", user_id="troll-9")
    ivs.observe(troll)
    assert agree(explain_then_handle(ivs, tmp_path, troll)) == {
        "composition": "skip",
        "replication": "skip",
        "moderation": "disconnect",
    }

    first_flag = events.flagged("p-host", user_id="host")
    assert agree(explain_then_handle(ivs, tmp_path, first_flag)) == {
        "composition": "not-routed",
        "replication": "not-routed",
        "moderation": "skip",
    }
    second_flag = events.flagged("p-host", user_id="host")
    assert agree(explain_then_handle(ivs, tmp_path, second_flag))["moderation"] == "disconnect"
    rogue = events.flagged("p-host", user_id="host", source="someone.else")
    assert agree(explain_then_handle(ivs, tmp_path, rogue))["moderation"] == "not-routed"


def test_explain_says_why_not_in_words(ivs: IvsStandIn, tmp_path: Path):
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({**POLICY, "paused": True}))
    assert run("policy", "put", str(path)).status == 0
    event = EventFactory(at=datetime.now(UTC)).published("p-host", user_id="host")
    ivs.observe(event)
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(event))

    paused = run("explain", str(event_file)).stdout.splitlines()
    assert paused[0] == f"event {event['id']}: IVS Stage Update / Participant Published"
    assert paused[1:] == [
        f"  {name:<11} would not: stage is paused" for name in ("composition", "replication", "moderation")
    ]

    path.write_text(json.dumps(POLICY))
    # --no-converge: the put must leave the stage as the event found it, for explain to say what it would do
    assert run("policy", "put", str(path), "--expected-version", "1", "--no-converge").status == 0
    text = run("explain", str(event_file)).stdout
    # The calls it would make, then the handler's own outcome (explain now runs the handler on what-if services).
    assert "composition would start a composition (destinations live) — started composition: first publisher" in text
    assert f"replication would replicate p-host to {OTHER_STAGE}" in text
    assert "moderation  would not: no moderation rule matches the publisher" in text
    assert all(call.operation != "StartComposition" for call in ivs.mutating_calls())  # explain acted on nothing
    composition = run("explain", str(event_file), "--json").json()["automations"][0]
    assert composition["action"] == "composition-started" and composition["acts"] is True
    (call,) = composition["details"]["wouldCall"]
    assert call["operation"] == "StartComposition"
    assert call["params"]["stageArn"] == STAGE and call["params"]["tags"]["stagepilot:session"] == SESSION
    assert {w["operation"] for w in composition["details"]["wouldWrite"]} >= {"PutItem", "UpdateItem"}
    assert run("audit", "--json").json()[0]["action"] != "composition-started"  # nothing written either


def explained_held(tmp_path: Path, event: dict[str, Any], services: Services, *, why: str, owner: str) -> None:
    """explain says the event would be retried once ``owner``'s claim can have run out (``why``, then who and
    until when), and the handler on the same state agrees: it finds that claim held."""
    event_file = tmp_path / f"{event['id']}.json"
    event_file.write_text(json.dumps(event))

    composition = run("explain", str(event_file), "--json").json()["automations"][0]

    assert (composition["automation"], composition["action"], composition["acts"]) == ("composition", "retry", False)
    assert composition["summary"].startswith(f"would retry later: {why}: the claim of {owner} runs until ")
    held = handle_event(parse_event(event), default_automations()[0], services).held  # the handler agrees
    assert held is not None and held.owner == owner


def test_explain_says_an_event_that_finds_a_claim_held_is_retried_after_the_lease(ivs: IvsStandIn, tmp_path: Path):
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(POLICY))
    assert run("policy", "put", str(path), "--no-converge").status == 0
    event = EventFactory(at=datetime.now(UTC)).published("p-guest", user_id="guest")
    ivs.observe(event)
    services = handler_services(ivs)
    services.compositions.claim_first(STAGE, SESSION, owner="e-other@m-other")  # another delivery is starting it

    why = "another event is starting this session's composition"
    explained_held(tmp_path, event, services, why=why, owner="e-other@m-other")


def test_explain_says_a_24_hour_end_that_finds_its_successor_claimed_is_retried_after_the_lease(
    ivs: IvsStandIn, tmp_path: Path
):
    """A ``Session End`` at IVS's 24-hour limit whose record shows another owner's claim on the successor (a copy
    of the event, a publisher reconnecting, the pass): the handler sends it back until the lease can have run
    out (decide_on_end), so explain says "would retry later", not "would not: the session's composition is
    claimed" (the drop it used to be)."""
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(POLICY))
    assert run("policy", "put", str(path), "--no-converge").status == 0
    services = handler_services(ivs)
    with time_machine.travel(datetime.now(UTC) - timedelta(hours=24, seconds=30), tick=True):  # a day ago
        publish = EventFactory(at=datetime.now(UTC)).published("p-host", user_id="host")
        ivs.observe(publish)
        started = handle_event(parse_event(publish), default_automations()[0], services)
    assert started.action == "composition-started"
    [listed] = ivs.compositions(STAGE)
    ended = services.ivs.composition(listed.arn)  # IVS ended it at its 24 hours, half a minute ago
    assert ended is not None and ended.state == "STOPPED" and ended.end_time is not None
    records = services.compositions
    assert records.mark(STAGE, SESSION, attempt=1, state=State.ENDED, from_states=(State.STARTED,))
    recorded = records.get(STAGE, SESSION)
    assert records.claim(STAGE, SESSION, attempt=2, owner="e-other@m-other", expected=recorded)
    end = EventFactory(at=ended.end_time).composition("Session End", ended.arn)

    why = "another event or the pass is starting the successor of the 24-hour composition"
    explained_held(tmp_path, end, services, why=why, owner="e-other@m-other")


def test_explain_says_a_carried_failure_that_finds_its_restart_claimed_is_retried_after_the_lease(
    ivs: IvsStandIn, tmp_path: Path
):
    """A ``Session Failure`` of a composition carried into a new session, whose record (the new session's, which
    still names the failed composition) shows another owner's claim on the restart: the handler sends it back
    until the lease can have run out, so explain says "would retry later", not "would restart" (the failure used
    to write "failed" over that claim and restart attempt + 2)."""
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(POLICY))
    assert run("policy", "put", str(path), "--no-converge").status == 0
    services = handler_services(ivs)
    events = EventFactory(at=datetime.now(UTC))

    def publish(session: str) -> None:
        event = events.published("p-host", user_id="host", session=session)
        ivs.observe(event)
        handle_event(parse_event(event), default_automations()[0], services)

    publish(SESSION)
    ivs.leave(STAGE, "p-host")  # everyone leaves, and the host is back within the minute
    publish("st-NextSession01")
    [carried] = ivs.compositions(STAGE)
    records = services.compositions
    adopted = records.get(STAGE, "st-NextSession01")
    assert adopted is not None and adopted.composition_arn == carried.arn  # the new session holds it
    [failure] = ivs.fail_compositions(STAGE)
    assert records.mark(STAGE, "st-NextSession01", attempt=1, state=State.FAILED, from_states=(State.STARTED,))
    recorded = records.get(STAGE, "st-NextSession01")
    assert records.claim(STAGE, "st-NextSession01", attempt=2, owner="e-other@m-other", expected=recorded)

    why = "another event or the pass is restarting the composition"
    explained_held(tmp_path, failure, services, why=why, owner="e-other@m-other")


@pytest.mark.parametrize("content, status", [("{nope", 2), ("[1, 2]", 2)])
def test_explain_bad_event_file_is_bad_input(aws: str, tmp_path: Path, content: str, status: int):
    path = tmp_path / "event.json"
    path.write_text(content)
    result = run("explain", str(path))
    assert result.status == status and len(result.stderr.strip().splitlines()) == 1


def test_explain_agrees_on_a_replica_whose_event_does_not_say_so(ivs: IvsStandIn, tmp_path: Path):
    """IVS's publish event of a replica may carry no replica fields; both ask GetParticipant before acting."""
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({"stageArn": STAGE, "replication": [{"destinationStageArn": OTHER_STAGE}]}))
    assert run("policy", "put", str(path)).status == 0
    events = EventFactory(at=datetime.now(UTC))
    ivs.observe(events.published("p-host", user_id="host", stage=OTHER_STAGE, session="st-OtherSession1"))
    ivs.observe(events.published("p-guest", user_id="guest"))  # the stage's session is live
    ivs.client().start_participant_replication(
        sourceStageArn=OTHER_STAGE, destinationStageArn=STAGE, participantId="p-host"
    )
    bare = events.published("p-host", user_id="host")  # the replica publishing on STAGE, nothing says replica
    rows = explain_then_handle(ivs, tmp_path, bare)
    assert agree(rows)["replication"] == "skip"
