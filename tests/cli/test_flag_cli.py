"""``stagepilot flag``: a Participant Flagged event on the stack's flag bus, as the contract shapes it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import boto3

from stagepilot.local.ivs import IvsStandIn
from tests.cli.conftest import FLAG_BUS, run
from tests.support import SESSION, STAGE, EventFactory


def flags_delivered(ivs: IvsStandIn) -> Any:
    """A rule on the flag bus sending every flag to a queue (like the stack's), and a reader of that queue."""
    sqs, events = boto3.client("sqs"), boto3.client("events")
    queue = sqs.create_queue(QueueName="flags")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    pattern = {"source": ["stagepilot.moderation"], "detail-type": ["Participant Flagged"]}
    events.put_rule(Name="flags", EventBusName=FLAG_BUS, EventPattern=json.dumps(pattern))
    events.put_targets(Rule="flags", EventBusName=FLAG_BUS, Targets=[{"Id": "q", "Arn": arn}])

    def read() -> list[dict[str, Any]]:
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(m["Body"]) for m in messages]

    return read


def test_flag_puts_a_participant_flagged_event_on_the_flag_bus(ivs: IvsStandIn):
    ivs.declare_participant(STAGE, "p-1", user_id="troll-9")
    ivs.observe(EventFactory(at=datetime.now(UTC)).published("p-1", user_id="troll-9"))
    read = flags_delivered(ivs)

    result = run("flag", STAGE, "p-1", "--reason", "slurs in chat")

    assert result.status == 0, result.stderr
    assert result.stdout.startswith(f"flagged p-1 on {STAGE} (session {SESSION}, event ")
    [event] = read()
    assert (event["source"], event["detail-type"]) == ("stagepilot.moderation", "Participant Flagged")
    assert event["detail"] == {
        "stage_arn": STAGE,
        "session_id": SESSION,
        "participant_id": "p-1",
        "user_id": "troll-9",
        "reason": "slurs in chat",
        "reporter": boto3.client("sts", region_name="us-east-1").get_caller_identity()["Arn"],
    }


def test_flag_of_someone_not_in_the_session_puts_nothing(ivs: IvsStandIn):
    ivs.observe(EventFactory(at=datetime.now(UTC)).published("p-1"))
    read = flags_delivered(ivs)

    result = run("flag", STAGE, "p-404")

    assert result.status == 1
    assert result.stderr.strip() == f"error: participant p-404 is not in the active session of {STAGE}"
    assert read() == []
    assert run("flag", STAGE, "bad id!").status == 2
    assert run("flag", "arn:aws:ivs:us-east-1:123456789012:channel/x", "p-1").status == 2


def test_flag_needs_a_stack_with_a_flag_bus(ivs: IvsStandIn):
    ivs.observe(EventFactory(at=datetime.now(UTC)).published("p-1"))
    boto3.client("cloudformation").create_stack(
        StackName="Older", TemplateBody=json.dumps({"Resources": {"T": {"Type": "AWS::SNS::Topic"}}})
    )

    result = run("flag", STAGE, "p-1", "--stack", "Older")

    assert result.status == 1
    assert result.stderr.strip() == "error: stack Older has no output FlagBusName; is it a StagePilot stack?"


def test_a_caller_the_bus_refuses_is_told_who_may_flag(ivs: IvsStandIn, monkeypatch: Any):
    # moto does not enforce the bus policy; the real bus answers a principal outside moderationPrincipals so.
    from botocore.exceptions import ClientError

    from stagepilot.cli import flags

    ivs.observe(EventFactory(at=datetime.now(UTC)).published("p-1"))
    real_client = flags.client

    class RefusingEvents:
        def put_events(self, **_: Any) -> Any:
            error = {"Error": {"Code": "AccessDeniedException", "Message": "explicit deny in a resource-based policy"}}
            raise ClientError(error, "PutEvents")

    monkeypatch.setattr(
        flags, "client", lambda service, **kw: RefusingEvents() if service == "events" else real_client(service, **kw)
    )

    result = run("flag", STAGE, "p-1")

    assert result.status == 1
    assert result.stderr.strip() == (
        f"error: the flag bus {FLAG_BUS} refused you: only the IAM roles in the stack's moderationPrincipals "
        "context may put flags (docs/architecture-infra.md, 'Who can make stagepilot act')"
    )
