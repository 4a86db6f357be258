"""``stagepilot dlq show|delete|purge`` and how ``redrive`` treats malformed events, moves with SQS's
own move task where there is one, and never loops."""

from __future__ import annotations

import io
import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from stagepilot.cli import dlq
from stagepilot.cli.output import Output, ProgressLine
from stagepilot.handlers.wiring import ERROR_ATTRIBUTE
from tests.cli.conftest import run
from tests.cli.test_dlq_explain_cli import bodies, queue_urls
from tests.support import EventFactory

MALFORMED = {ERROR_ATTRIBUTE: {"DataType": "String", "StringValue": "malformed event: detail: must be an object"}}


def waiting(automation: str) -> list[str | None]:
    """Event ids (None: unreadable) in the automation's DLQ, listed the CLI's way (left visible)."""
    [report] = run("dlq", "list", "--automation", automation, "--json").json()
    return sorted((e["eventId"] for e in report["events"]), key=str)


def park(dlq_url: str, body: str, attributes: dict[str, Any] | None = None) -> None:
    boto3.client("sqs").send_message(QueueUrl=dlq_url, MessageBody=body, MessageAttributes=attributes or {})


def test_show_prints_the_parked_event_as_explain_takes_it(aws: str, tmp_path: Any):
    _, dlq_url = queue_urls("composition")
    event = EventFactory().published("p-1", event_id="evt-42")
    park(dlq_url, json.dumps(event))
    park(dlq_url, "{not json", MALFORMED)

    shown = run("dlq", "show", "evt-42")
    assert shown.status == 0, shown.stderr
    assert json.loads(shown.stdout) == event
    assert shown.stderr == "# composition: retries exhausted (search the function's log for the event id)\n"
    document = run("dlq", "show", "evt-42", "--json").json()
    assert (document["automation"], document["eventId"], document["body"]) == ("composition", "evt-42", event)
    assert waiting("composition") == [None, "evt-42"]  # shown, not taken

    missing = run("dlq", "show", "evt-nope")
    assert missing.status == 1
    assert missing.stderr == "error: no failed event 'evt-nope' in the dead-letter queues (see: stagepilot dlq list)\n"


def test_delete_takes_one_event_and_purge_empties_the_queue(aws: str):
    _, dlq_url = queue_urls("replication")
    for n in range(3):
        park(dlq_url, json.dumps(EventFactory().published(f"p-{n}", event_id=f"evt-{n}")))

    assert run("dlq", "delete", "evt-1").status == 2  # not on a terminal: --yes
    deleted = run("dlq", "delete", "evt-1", "--yes")
    assert deleted.status == 0 and deleted.stdout == "replication: deleted evt-1\n"
    assert waiting("replication") == ["evt-0", "evt-2"]
    assert run("dlq", "delete", "evt-1", "--yes").status == 1

    purged = run("dlq", "purge", "--automation", "replication", "--yes", "--json")
    assert purged.json() == [{"automation": "replication", "purged": 2}]
    assert waiting("replication") == []


def test_redrive_leaves_malformed_events_unless_asked(aws: str):
    queue_url, dlq_url = queue_urls("moderation")
    good = json.dumps(EventFactory().published("p-1"))
    park(dlq_url, good)
    park(dlq_url, '{"detail": "x"}', MALFORMED)
    park(dlq_url, "not json at all")

    result = run("dlq", "redrive", "--automation", "moderation")
    assert result.status == 0, result.stderr
    assert result.stdout == (
        "moderation: moved 1 event back; 2 malformed left in place "
        "(fix the producer; --include-malformed sends them anyway)\n"
    )
    assert bodies(queue_url) == [good]
    assert waiting("moderation") == [None, None]  # left, and visible again

    forced = run("dlq", "redrive", "--automation", "moderation", "--include-malformed", "--json").json()
    assert (forced[0]["moved"], forced[0]["skippedMalformed"]) == (2, 0)
    assert bodies(dlq_url) == []


class InstantRepark:
    """An SQS where every message sent back fails at once and is parked again: a redrive that does not
    bound itself by the count it started with would never end. No StartMessageMoveTask."""

    def __init__(self, messages: list[str]) -> None:
        self.dlq = list(messages)
        self.sent = 0
        self.receipts = 0

    def get_queue_attributes(self, QueueUrl: str, AttributeNames: list[str]) -> dict[str, Any]:
        return {"Attributes": {"ApproximateNumberOfMessages": str(len(self.dlq)), "QueueArn": f"arn:{QueueUrl}"}}

    def start_message_move_task(self, **kwargs: Any) -> dict[str, Any]:
        raise ClientError({"Error": {"Code": "InvalidAction", "Message": "no"}}, "StartMessageMoveTask")

    def receive_message(self, **kwargs: Any) -> dict[str, Any]:
        if kwargs.get("VisibilityTimeout") == 0:  # a peek: the messages stay where they are
            return {
                "Messages": [
                    {"MessageId": f"p-{i}", "ReceiptHandle": b, "Body": b} for i, b in enumerate(self.dlq[:10])
                ]
            }
        batch, self.dlq = self.dlq[:10], self.dlq[10:]
        self.receipts += 1
        return {
            "Messages": [
                {"MessageId": f"m{self.receipts}-{i}", "ReceiptHandle": b, "Body": b} for i, b in enumerate(batch)
            ]
        }

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, Any]:
        self.sent += len(Entries)
        self.dlq.extend(e["MessageBody"] for e in Entries)  # the function parks it again, instantly
        return {"Successful": [{"Id": e["Id"]} for e in Entries]}

    def delete_message_batch(self, **kwargs: Any) -> None:
        return None

    def change_message_visibility_batch(self, **kwargs: Any) -> None:
        return None


@pytest.mark.parametrize("include_malformed", [False, True])
def test_redrive_handles_at_most_what_was_there_when_it_started(include_malformed: bool):
    sqs = InstantRepark(["not json"] + [json.dumps({"id": f"e{n}"}) for n in range(24)])
    progress = ProgressLine(Output(stderr=io.StringIO()), "composition")
    moved, failed, skipped, how = dlq.redrive(
        sqs, "dlq", "queue", include_malformed=include_malformed, progress=progress
    )
    assert (moved + skipped, failed, how) == (25, 0, "receive-send-delete")
    assert sqs.sent == (25 if include_malformed else 24)


class MoveTask(InstantRepark):
    def __init__(self) -> None:
        super().__init__([json.dumps({"id": "e1"})] * 30)
        self.polls = 0

    def start_message_move_task(self, **kwargs: Any) -> dict[str, Any]:
        assert kwargs == {"SourceArn": "arn:dlq", "DestinationArn": "arn:queue"}
        return {"TaskHandle": "t-1"}

    def list_message_move_tasks(self, **kwargs: Any) -> dict[str, Any]:
        self.polls += 1
        status = "COMPLETED" if self.polls == 2 else "RUNNING"
        return {
            "Results": [
                {
                    "TaskHandle": "t-1",
                    "Status": status,
                    "ApproximateNumberOfMessagesMoved": 15 * self.polls,
                    "ApproximateNumberOfMessagesToMove": 30,
                }
            ]
        }


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_redrive_uses_sqs_move_task_where_there_is_one_with_one_progress_line(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(dlq.time, "sleep", lambda seconds: None)
    stderr = Terminal()
    progress = ProgressLine(Output(stderr=stderr), "composition")
    assert dlq.redrive(MoveTask(), "dlq", "queue", include_malformed=True, progress=progress) == (
        30,
        0,
        0,
        "StartMessageMoveTask",
    )
    progress.done()
    assert stderr.getvalue() == "\rcomposition: 15 of ~30\rcomposition: 30 of ~30\n"


def test_redrive_moves_with_sqs_move_task_as_the_redrive_role_when_nothing_is_malformed(
    monkeypatch: pytest.MonkeyPatch,
):
    """SQS's move task sends exactly what came out of the DLQ; the redrive role starts and watches it, the
    operator only peeks (nothing hidden, nothing taken) to see that nothing must be left behind."""
    monkeypatch.setattr(dlq.time, "sleep", lambda seconds: None)
    operator, role = MoveTask(), MoveTask()
    progress = ProgressLine(Output(stderr=io.StringIO()), "composition")

    result = dlq.redrive(operator, "dlq", "queue", include_malformed=False, progress=progress, sender=role)

    assert result == (30, 0, 0, "StartMessageMoveTask")
    assert (role.polls, operator.polls) == (2, 0)
    assert len(operator.dlq) == 30 and operator.sent == 0  # peeked, not received away or sent by hand


def test_redrive_by_someone_the_redrive_role_does_not_trust_says_what_to_do(
    aws: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """STS refuses (the role's trust policy denies every principal outside redrivePrincipals): one line."""
    from stagepilot.cli import resources

    real = resources.client

    def refusing(service: str, **kwargs: Any) -> Any:
        made = real(service, **kwargs)
        if service == "sts":

            def deny(**_: Any) -> None:
                raise ClientError({"Error": {"Code": "AccessDenied", "Message": "not authorized"}}, "AssumeRole")

            made.assume_role = deny
        return made

    monkeypatch.setattr(dlq, "client", refusing)
    result = run("dlq", "redrive", "--automation", "composition")
    assert result.status == 1
    assert "redrivePrincipals" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_delete_takes_the_event_from_every_dead_letter_queue_that_holds_it(aws: str):
    """One EventBridge event goes to all three automations: failed in each, it is parked three times."""
    body = json.dumps(EventFactory().published("p-1", event_id="evt-all"))
    for automation in ("composition", "replication", "moderation"):
        park(queue_urls(automation)[1], body)
    park(queue_urls("moderation")[1], json.dumps(EventFactory().published("p-2", event_id="evt-other")))

    one = run("dlq", "delete", "evt-all", "--automation", "moderation", "--yes")
    deleted = run("dlq", "delete", "evt-all", "--yes", "--json")

    assert one.stdout == "moderation: deleted evt-all\n"
    assert deleted.status == 0, deleted.stderr
    assert [d["automation"] for d in deleted.json()] == ["composition", "replication"]
    assert waiting("composition") == waiting("replication") == []
    assert waiting("moderation") == ["evt-other"]


def test_delete_and_purge_dry_run_say_what_would_go_and_delete_nothing(aws: str):
    body = json.dumps(EventFactory().published("p-1", event_id="evt-all"))
    for automation in ("composition", "moderation"):
        park(queue_urls(automation)[1], body)

    deleting = run("dlq", "delete", "evt-all", "--dry-run")  # no --yes needed: nothing is deleted
    purging = run("dlq", "purge", "--automation", "moderation", "--dry-run")

    assert deleting.status == 0, deleting.stderr
    assert deleting.stdout.splitlines() == [
        "composition: would delete evt-all",
        "moderation: would delete evt-all",
        "dry run: nothing deleted",
    ]
    assert purging.stdout.splitlines() == ["moderation: would purge ~1 event", "dry run: nothing deleted"]
    assert waiting("composition") == waiting("moderation") == ["evt-all"]
