"""``stagepilot dlq list|redrive``: the events each automation could not process, and sending them back.

Reading a queue means receiving its messages: ``list`` receives them with a short visibility timeout
(``PEEK_VISIBILITY_SECONDS``), never deletes, and makes them visible again at once when done. A receive
still counts in each message's ``ApproximateReceiveCount`` (harmless: dead-letter queues have no redrive
policy of their own), and a ``list`` that is killed half-way leaves the messages hidden for at most that
timeout.

``redrive`` moves messages back to the automation's queue with receive → send → delete, in batches of 10:
a message is deleted from the dead-letter queue only after the queue accepted its copy, so a failure
half-way duplicates at most a batch, never loses one (the automations are idempotent per event id). SQS's
own ``StartMessageMoveTask`` does the same server-side, but it needs the source queue's ARN relationship
and is not available everywhere (moto, LocalStack versions); this works against any SQS endpoint.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stagepilot.cli.resources import client, resources
from stagepilot.routing import AUTOMATIONS

if TYPE_CHECKING:
    from stagepilot.cli.output import Output

PEEK_VISIBILITY_SECONDS = 30
MOVE_VISIBILITY_SECONDS = 60
BATCH = 10
ERROR_ATTRIBUTE = "stagepilot-error"  # handlers/wiring.py: why the function parked the event
# EventBridge's own attributes on events it could not deliver to the queue (target dead-letter queue).
EVENTBRIDGE_ERROR_CODE = "ERROR_CODE"
EVENTBRIDGE_ERROR_MESSAGE = "ERROR_MESSAGE"


def register(commands: Any, common: argparse.ArgumentParser, aws: argparse.ArgumentParser) -> None:
    dlq = commands.add_parser(
        "dlq",
        parents=[common],
        help="failed events in the dead-letter queues",
        description="Failed events waiting in the automations' dead-letter queues.",
    )
    sub = dlq.add_subparsers(dest="dlq_command", metavar="COMMAND", required=True)
    choose = argparse.ArgumentParser(add_help=False)
    choose.add_argument("--automation", choices=AUTOMATIONS, help="only this automation's dead-letter queue")

    listing = sub.add_parser(
        "list",
        parents=[common, aws, choose],
        help="what is waiting, and why",
        description="Per automation: how many failed events wait, the oldest one's age, and one line per event "
        "(event id, detail-type, event name, stage, first error if known). Messages are received with a "
        f"{PEEK_VISIBILITY_SECONDS} s visibility timeout and made visible again; nothing is deleted.",
    )
    listing.add_argument("--max", type=int, default=1000, metavar="N", help="show at most N events per queue (1000)")
    listing.set_defaults(handler=cmd_list)

    redrive = sub.add_parser(
        "redrive",
        parents=[common, aws, choose],
        help="send the failed events back to their automation",
        description="Move every message of the dead-letter queue(s) back to the automation's queue, where the "
        "function processes it again. Fix the cause first (stagepilot dlq list shows it).",
    )
    redrive.set_defaults(handler=cmd_redrive)


@dataclass
class FailedEvent:
    message_id: str
    event_id: str | None
    detail_type: str | None
    event_name: str | None
    stage_arn: str | None
    error: str
    age_seconds: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "messageId": self.message_id,
            "eventId": self.event_id,
            "detailType": self.detail_type,
            "eventName": self.event_name,
            "stageArn": self.stage_arn,
            "error": self.error,
            "ageSeconds": self.age_seconds,
        }


@dataclass
class QueueReport:
    automation: str
    dlq_url: str
    count: int
    events: list[FailedEvent] = field(default_factory=list)

    @property
    def oldest_age_seconds(self) -> float | None:
        ages = [e.age_seconds for e in self.events if e.age_seconds is not None]
        return max(ages) if ages else None


def _chosen(args: argparse.Namespace) -> dict[str, tuple[str, str]]:
    queues = resources(args).queues()
    return {args.automation: queues[args.automation]} if args.automation else queues


def cmd_list(args: argparse.Namespace, out: Output) -> int:
    sqs = client("sqs")
    reports = [peek(sqs, automation, dlq_url, limit=args.max) for automation, (_, dlq_url) in _chosen(args).items()]
    if out.as_json:
        out.json(
            [
                {
                    "automation": r.automation,
                    "dlqUrl": r.dlq_url,
                    "count": r.count,
                    "oldestAgeSeconds": r.oldest_age_seconds,
                    "events": [e.to_json() for e in r.events],
                }
                for r in reports
            ]
        )
        return 0
    for r in reports:
        oldest = f", oldest {_age(r.oldest_age_seconds)}" if r.oldest_age_seconds is not None else ""
        out.line(f"{r.automation}: {r.count} failed event{'s' if r.count != 1 else ''}{oldest}")
        for e in r.events:
            name = f" / {e.event_name}" if e.event_name else ""
            out.line(f"  {e.event_id or e.message_id}  {e.detail_type or '?'}{name}  {e.stage_arn or '-'}  {e.error}")
        if len(r.events) < r.count:
            out.line(f"  ({r.count - len(r.events)} not shown: over --max, or in flight)")
    return 0


def peek(sqs: Any, automation: str, dlq_url: str, *, limit: int) -> QueueReport:
    """Receive up to ``limit`` messages without deleting them, then make them visible again."""
    count = _count(sqs, dlq_url)
    seen: dict[str, FailedEvent] = {}
    handles: list[str] = []
    now_ms = time.time() * 1000
    try:
        while len(seen) < min(count, limit):
            messages = _receive(sqs, dlq_url, visibility=PEEK_VISIBILITY_SECONDS)
            if not messages:
                break
            for message in messages:
                handles.append(message["ReceiptHandle"])
                if message["MessageId"] not in seen and len(seen) < limit:
                    seen[message["MessageId"]] = summarize(message, now_ms=now_ms)
    finally:
        _make_visible(sqs, dlq_url, handles)
    return QueueReport(automation, dlq_url, max(count, len(seen)), list(seen.values()))


def summarize(message: dict[str, Any], *, now_ms: float) -> FailedEvent:
    try:
        body = json.loads(message.get("Body", ""))
    except ValueError:
        body = None
    event: dict[str, Any] = body if isinstance(body, dict) else {}
    detail: dict[str, Any] = event["detail"] if isinstance(event.get("detail"), dict) else {}
    resources: list[Any] = event["resources"] if isinstance(event.get("resources"), list) else []
    stage = detail.get("stage_arn") or next((r for r in resources if isinstance(r, str) and ":stage/" in r), None)
    attributes = message.get("MessageAttributes") or {}
    if ERROR_ATTRIBUTE in attributes:
        error = attributes[ERROR_ATTRIBUTE].get("StringValue", "")
    elif EVENTBRIDGE_ERROR_CODE in attributes:
        code = attributes[EVENTBRIDGE_ERROR_CODE].get("StringValue", "")
        text = attributes.get(EVENTBRIDGE_ERROR_MESSAGE, {}).get("StringValue", "")
        error = f"EventBridge could not deliver it to the queue: {code}: {text}".rstrip(": ")
    elif body is None or not event:
        error = "not an EventBridge event (unreadable body)"
    else:
        error = "retries exhausted (search the function's log for the event id)"
    sent = (message.get("Attributes") or {}).get("SentTimestamp")
    age = max(0.0, (now_ms - int(sent)) / 1000) if sent and str(sent).isdigit() else None
    return FailedEvent(
        message_id=message["MessageId"],
        event_id=event.get("id") if isinstance(event.get("id"), str) else None,
        detail_type=event.get("detail-type") if isinstance(event.get("detail-type"), str) else None,
        event_name=detail.get("event_name") if isinstance(detail.get("event_name"), str) else None,
        stage_arn=stage if isinstance(stage, str) else None,
        error=error,
        age_seconds=age,
    )


def cmd_redrive(args: argparse.Namespace, out: Output) -> int:
    sqs = client("sqs")
    sender = redrive_sender(resources(args), out)
    results: list[dict[str, Any]] = []
    for automation, (queue_url, dlq_url) in _chosen(args).items():
        moved, failed = redrive(sqs, automation, dlq_url, queue_url, out, sender=sender)
        results.append({"automation": automation, "moved": moved, "failed": failed, "queueUrl": queue_url})
    total_failed = sum(int(r["failed"]) for r in results)
    if out.as_json:
        out.json(results)
    else:
        for r in results:
            note = f"; {r['failed']} could not be sent and stay in the dead-letter queue" if r["failed"] else ""
            out.line(f"{r['automation']}: moved {r['moved']} event{'s' if r['moved'] != 1 else ''} back{note}")
    return 1 if total_failed else 0


def redrive_sender(res: Any, out: Output) -> Any:
    """An SQS client signed as the stack's redrive role: the queues take messages only from their rules
    and the stack's own roles (docs/architecture-infra.md). A stack without the role: your own identity."""
    from stagepilot.cli.resources import OUTPUT_REDRIVE_ROLE

    role_arn = res.outputs.get(OUTPUT_REDRIVE_ROLE)
    if not role_arn:
        out.warn(f"stack {res.stack} names no redrive role ({OUTPUT_REDRIVE_ROLE}); sending as yourself")
        return client("sqs")
    credentials = client("sts").assume_role(RoleArn=role_arn, RoleSessionName="stagepilot-dlq-redrive")["Credentials"]
    return client(
        "sqs",
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )


def redrive(
    sqs: Any, automation: str, dlq_url: str, queue_url: str, out: Output, *, sender: Any = None
) -> tuple[int, int]:
    """Move the DLQ's messages to ``queue_url``; (moved, failed). Stops at the first message it already
    moved in this run (the function parked it again meanwhile), so it cannot loop. ``sender``: the client
    that sends to the queue (the redrive role's); ``sqs`` reads and deletes the DLQ's messages."""
    total = _count(sqs, dlq_url)
    moved = failed = 0
    moved_ids: set[str] = set()
    while True:
        messages = _receive(sqs, dlq_url, visibility=MOVE_VISIBILITY_SECONDS)
        if not messages:
            break
        fresh = [m for m in messages if _body_id(m) not in moved_ids]
        back = [m["ReceiptHandle"] for m in messages if m not in fresh]
        _make_visible(sqs, dlq_url, back)
        if not fresh:
            break
        entries = [{"Id": str(i), "MessageBody": m["Body"]} for i, m in enumerate(fresh)]
        sent = (sender or sqs).send_message_batch(QueueUrl=queue_url, Entries=entries)
        ok = {s["Id"] for s in sent.get("Successful", [])}
        done = [m for i, m in enumerate(fresh) if str(i) in ok]
        if done:
            sqs.delete_message_batch(
                QueueUrl=dlq_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        failed_now = [m["ReceiptHandle"] for m in fresh if m not in done]
        _make_visible(sqs, dlq_url, failed_now)
        moved += len(done)
        failed += len(failed_now)
        moved_ids.update(i for i in (_body_id(m) for m in done) if i)
        if total > BATCH:
            out.progress(f"{automation}: moved {moved} of ~{total}")
        if failed_now:
            break  # the queue refuses: do not spin; the rest stays for the next run
    return moved, failed


def _body_id(message: dict[str, Any]) -> str | None:
    try:
        value = json.loads(message.get("Body", "")).get("id")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def _count(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes.get("ApproximateNumberOfMessages", 0))


def _receive(sqs: Any, url: str, *, visibility: int) -> list[dict[str, Any]]:
    response = sqs.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=BATCH,
        VisibilityTimeout=visibility,
        WaitTimeSeconds=0,
        MessageAttributeNames=["All"],
        MessageSystemAttributeNames=["SentTimestamp", "ApproximateReceiveCount"],
    )
    return list(response.get("Messages", []))


def _make_visible(sqs: Any, url: str, handles: list[str]) -> None:
    for start in range(0, len(handles), BATCH):
        chunk = handles[start : start + BATCH]
        sqs.change_message_visibility_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0} for i, h in enumerate(chunk)],
        )


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
