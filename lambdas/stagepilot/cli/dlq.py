"""``stagepilot dlq list|show|delete|purge|redrive``: the events each automation could not process.

Reading a queue means receiving its messages: ``list``/``show`` receive them with a visibility timeout
of 0 (``PEEK_VISIBILITY_SECONDS``): they peek without hiding anything and never delete, and a viewer's
policy holds no ``sqs:ChangeMessageVisibility``. A receive still counts in each message's
``ApproximateReceiveCount`` (harmless: dead-letter queues have no redrive policy of their own). SQS answers
each receive from a sample of its servers, so a peek stops at the first receive that shows nothing new.

``redrive`` sends events back to the automation's queue. Events the function parked as malformed (the
``stagepilot-error`` attribute) or whose body is not JSON would only be parked again: they stay unless
``--include-malformed``. When nothing is to be left behind, SQS's own ``StartMessageMoveTask`` moves the
queue server-side; where it is missing (moto, some emulators) or something must be skipped, the CLI moves
messages itself with receive → send → delete, in batches of 10: a message is deleted from the dead-letter
queue only after the queue accepted its copy, so a failure half-way duplicates at most a batch, never
loses one (the automations are idempotent per event id). Either way it handles at most the number of
messages the queue held when it started, so an event that fails again at once cannot make it loop.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stagepilot.cli.confirm import confirm, yes_option
from stagepilot.cli.errors import CliError
from stagepilot.cli.output import ProgressLine
from stagepilot.cli.paging import positive
from stagepilot.cli.redaction import remember
from stagepilot.cli.resources import client, resources
from stagepilot.routing import AUTOMATIONS

if TYPE_CHECKING:
    from stagepilot.cli.output import Output

# `dlq list` and `dlq show` peek: a visibility timeout of 0 leaves every message visible (nothing to restore,
# and the viewer's policy holds no sqs:ChangeMessageVisibility). SQS samples its servers on each receive,
# so a peek stops at the first receive that shows nothing new.
PEEK_VISIBILITY_SECONDS = 0
MOVE_VISIBILITY_SECONDS = 60
MOVE_TASK_POLL_SECONDS = 2
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
        "visibility timeout of 0 (peeked, never hidden); nothing is deleted.",
    )
    listing.add_argument(
        "--max-items",
        "--max",
        dest="max",
        type=positive,
        default=1000,
        metavar="N",
        help="show at most N events per queue (1000); the rest are counted, not shown (SQS has no position to "
        "go on from, so no --starting-token: delete or redrive what was shown)",
    )
    listing.set_defaults(handler=cmd_list)

    show = sub.add_parser(
        "show",
        parents=[common, aws, choose],
        help="print one failed event (feed it to stagepilot explain)",
        description="Print the event of one message of the dead-letter queues, found by event id or SQS message "
        "id, exactly as it was parked: `stagepilot dlq show ID > event.json; stagepilot explain event.json`. "
        "Why it was parked goes to stderr.",
    )
    delete = sub.add_parser(
        "delete",
        parents=[common, aws, choose, yes_option()],
        help="delete one failed event (from every dead-letter queue that holds it)",
        description="Delete one failed event, found by event id or SQS message id, from every dead-letter queue "
        "that holds it (an event all three automations failed on is parked in each of their queues; "
        "--automation: from that one only), and name each queue it was deleted from.",
    )
    for parser, handler in ((show, cmd_show), (delete, cmd_delete)):
        parser.add_argument("ident", metavar="ID", help="the event id (or the SQS message id) dlq list shows")
        parser.set_defaults(handler=handler)

    purge = sub.add_parser(
        "purge",
        parents=[common, aws, choose, yes_option()],
        help="delete every failed event",
        description="Empty the dead-letter queue(s) (SQS PurgeQueue: takes up to a minute; at most once a minute).",
    )
    purge.set_defaults(handler=cmd_purge)
    for parser in (delete, purge):
        parser.add_argument("--dry-run", action="store_true", help="say what would be deleted; delete nothing")

    redrive = sub.add_parser(
        "redrive",
        parents=[common, aws, choose],
        help="send the failed events back to their automation",
        description="Move the messages of the dead-letter queue(s) back to the automation's queue, where the "
        "function processes them again; at most as many as were there when it started. Fix the cause first "
        "(stagepilot dlq list shows it). Events parked as malformed stay unless --include-malformed.",
    )
    redrive.add_argument(
        "--include-malformed",
        action="store_true",
        help="also send back events parked as malformed or unreadable (they are parked again unless fixed)",
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
            out.line(f"  ({r.count - len(r.events)} not shown: over --max-items, or in flight)")
    return 0


def peek(sqs: Any, automation: str, dlq_url: str, *, limit: int) -> QueueReport:
    """Up to ``limit`` messages, received without deleting or hiding them."""
    count = _count(sqs, dlq_url)
    seen: dict[str, FailedEvent] = {}
    now_ms = time.time() * 1000
    while len(seen) < min(count, limit):
        messages = _receive(sqs, dlq_url, visibility=PEEK_VISIBILITY_SECONDS)
        fresh = [m for m in messages if m["MessageId"] not in seen]
        if not fresh:
            break
        for message in fresh:
            if len(seen) < limit:
                seen[message["MessageId"]] = summarize(message, now_ms=now_ms)
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


def cmd_show(args: argparse.Namespace, out: Output) -> int:
    sqs = client("sqs")
    for automation, (_, dlq_url) in _chosen(args).items():
        found, _ = find(sqs, dlq_url, args.ident)  # peeked: nothing hidden, nothing to make visible
        if found is None:
            continue
        summary = summarize(found, now_ms=time.time() * 1000)
        body = found.get("Body", "")
        if out.as_json:
            out.json({"automation": automation, **summary.to_json(), "body": _parsed(body)})
        else:
            out.notice(f"# {automation}: {summary.error}")
            parsed = _parsed(body)
            out.lines(json.dumps(parsed, indent=2, ensure_ascii=False) if not isinstance(parsed, str) else body)
        return 0
    raise CliError(f"no failed event {args.ident!r} in the dead-letter queues (see: stagepilot dlq list)")


def cmd_delete(args: argparse.Namespace, out: Output) -> int:
    """Delete the event from every dead-letter queue that holds it: one EventBridge event goes to each
    automation, so a failure all three shared is parked three times, once per DLQ."""
    if not args.dry_run:
        confirm(args, f"delete the failed event {args.ident}")
    sqs = client("sqs")
    deleted: list[dict[str, Any]] = []
    for automation, (_, dlq_url) in _chosen(args).items():
        found, _ = find(sqs, dlq_url, args.ident)  # peeked: nothing else was hidden
        if found is not None:
            if not args.dry_run:
                sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=found["ReceiptHandle"])
            deleted.append({"automation": automation, "messageId": found["MessageId"], "deleted": not args.dry_run})
    if not deleted:
        raise CliError(f"no failed event {args.ident!r} in the dead-letter queues (see: stagepilot dlq list)")
    if out.as_json:
        out.json(deleted)
    else:
        for entry in deleted:
            out.line(f"{entry['automation']}: {'would delete' if args.dry_run else 'deleted'} {args.ident}")
        if args.dry_run:
            out.line("dry run: nothing deleted")
    return 0


def cmd_purge(args: argparse.Namespace, out: Output) -> int:
    chosen = _chosen(args)
    if not args.dry_run:
        confirm(args, f"delete every failed event of {', '.join(chosen)}")
    sqs = client("sqs")
    results = []
    for automation, (_, dlq_url) in chosen.items():
        count = _count(sqs, dlq_url)
        if not args.dry_run:
            sqs.purge_queue(QueueUrl=dlq_url)
        results.append({"automation": automation, "purged": count, **({"dryRun": True} if args.dry_run else {})})
    if out.as_json:
        out.json(results)
    else:
        verb = "would purge" if args.dry_run else "purged"
        for r in results:
            out.line(f"{r['automation']}: {verb} ~{r['purged']} event{'s' if r['purged'] != 1 else ''}")
        if args.dry_run:
            out.line("dry run: nothing deleted")
    return 0


def find(sqs: Any, dlq_url: str, ident: str) -> tuple[dict[str, Any] | None, list[str]]:
    """The message whose event id or message id is ``ident``, and every receipt handle taken (peeked with
    ``PEEK_VISIBILITY_SECONDS``: none is hidden)."""
    handles: list[str] = []
    seen: set[str] = set()
    for _ in range(_count(sqs, dlq_url) // BATCH + 2):
        messages = _receive(sqs, dlq_url, visibility=PEEK_VISIBILITY_SECONDS)
        if not messages:
            break
        handles.extend(m["ReceiptHandle"] for m in messages)
        fresh = False
        for message in messages:
            if message["MessageId"] in seen:
                continue
            fresh = True
            seen.add(message["MessageId"])
            if ident in (message["MessageId"], _body_id(message)):
                return message, handles
        if not fresh:
            break
    return None, handles


def cmd_redrive(args: argparse.Namespace, out: Output) -> int:
    sqs = client("sqs")
    sender = redrive_sender(resources(args), out)
    results: list[dict[str, Any]] = []
    for automation, (queue_url, dlq_url) in _chosen(args).items():
        progress = ProgressLine(out, automation)
        moved, failed, skipped, how = redrive(
            sqs, dlq_url, queue_url, include_malformed=args.include_malformed, progress=progress, sender=sender
        )
        progress.done()
        results.append(
            {
                "automation": automation,
                "moved": moved,
                "failed": failed,
                "skippedMalformed": skipped,
                "method": how,
                "queueUrl": queue_url,
            }
        )
    total_failed = sum(int(r["failed"]) for r in results)
    if out.as_json:
        out.json(results)
    else:
        for r in results:
            note = f"; {r['failed']} could not be sent and stay in the dead-letter queue" if r["failed"] else ""
            if r["skippedMalformed"]:
                note += (
                    f"; {r['skippedMalformed']} malformed left in place (fix the producer; --include-malformed "
                    "sends them anyway)"
                )
            out.line(f"{r['automation']}: moved {r['moved']} event{'s' if r['moved'] != 1 else ''} back{note}")
    return 1 if total_failed else 0


def redrive_sender(res: Any, out: Output) -> Any:
    """An SQS client signed as the stack's redrive role: the queues take messages only from their rules
    and the stack's own roles (docs/architecture-infra.md). A stack without the role: your own identity."""
    from botocore.exceptions import ClientError

    from stagepilot.outputs import OUTPUT_REDRIVE_ROLE_ARN

    role_arn = res.outputs.get(OUTPUT_REDRIVE_ROLE_ARN)
    if not role_arn:
        out.warn(f"stack {res.stack} names no redrive role ({OUTPUT_REDRIVE_ROLE_ARN}); sending as yourself")
        return client("sqs")
    try:
        credentials = client("sts").assume_role(RoleArn=role_arn, RoleSessionName="stagepilot-dlq-redrive")[
            "Credentials"
        ]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "AccessDenied":
            raise
        raise CliError(
            f"you may not assume the redrive role {role_arn}: `dlq redrive` needs your role in the stack's "
            "redrivePrincipals context (cdk -c redrivePrincipals=...) and OperatorPolicy"
        ) from exc
    remember(credentials["SecretAccessKey"], credentials["SessionToken"])  # never in --debug's output
    return client(
        "sqs",
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
    )


def redrive(
    sqs: Any,
    dlq_url: str,
    queue_url: str,
    *,
    include_malformed: bool,
    progress: ProgressLine,
    sender: Any = None,
) -> tuple[int, int, int, str]:
    """Send the DLQ's messages to ``queue_url``: (moved, failed, skipped as malformed, method). ``sqs``
    reads and deletes the DLQ's messages; ``sender`` (the redrive role's client) sends to the queue."""
    sender = sender or sqs
    total = _count(sqs, dlq_url)
    if total == 0:
        return 0, 0, 0, "none"
    # SQS's own move task sends exactly what came out of the DLQ, as the redrive role; it cannot skip, so
    # it runs when nothing is to be left behind (a malformed event a peek misses is parked again, harmless).
    if include_malformed or not any(is_malformed(m) for m in _peeked(sqs, dlq_url, total)):
        moved = _move_task(sender, dlq_url, queue_url, total, progress)
        if moved is not None:
            return moved, 0, 0, "StartMessageMoveTask"
    moved, failed, skipped = _move_by_hand(sqs, sender, dlq_url, queue_url, total, include_malformed, progress)
    return moved, failed, skipped, "receive-send-delete"


def _peeked(sqs: Any, dlq_url: str, total: int) -> list[dict[str, Any]]:
    """Up to ``total`` messages of the DLQ, received at visibility 0 (nothing hidden)."""
    seen: dict[str, dict[str, Any]] = {}
    while len(seen) < total:
        fresh = [m for m in _receive(sqs, dlq_url, visibility=PEEK_VISIBILITY_SECONDS) if m["MessageId"] not in seen]
        if not fresh:
            break
        seen.update((m["MessageId"], m) for m in fresh)
    return list(seen.values())


def _move_task(sqs: Any, dlq_url: str, queue_url: str, total: int, progress: ProgressLine) -> int | None:
    """SQS moves the queue itself; None where StartMessageMoveTask is not available."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        source = _arn(sqs, dlq_url)
        handle = sqs.start_message_move_task(SourceArn=source, DestinationArn=_arn(sqs, queue_url))["TaskHandle"]
    except (ClientError, BotoCoreError, KeyError):
        return None  # not offered by this endpoint (or not allowed): move the messages by hand
    while True:
        tasks = sqs.list_message_move_tasks(SourceArn=source, MaxResults=10).get("Results", [])
        task = next((t for t in tasks if t.get("TaskHandle") == handle), tasks[0] if tasks else {})
        moved = int(task.get("ApproximateNumberOfMessagesMoved", 0))
        progress.update(f"{moved} of ~{int(task.get('ApproximateNumberOfMessagesToMove', total))}")
        status = task.get("Status", "COMPLETED")
        if status == "COMPLETED":
            return moved
        if status in ("FAILED", "CANCELLED"):
            raise CliError(f"StartMessageMoveTask {status.lower()}: {task.get('FailureReason', '')}".rstrip(": "))
        time.sleep(MOVE_TASK_POLL_SECONDS)


def _move_by_hand(
    sqs: Any, sender: Any, dlq_url: str, queue_url: str, total: int, include_malformed: bool, progress: ProgressLine
) -> tuple[int, int, int]:
    skipped: dict[str, str] = {}  # message id -> receipt handle, held until the end so receives move on
    try:
        moved, failed = _move_batches(sqs, sender, dlq_url, queue_url, total, include_malformed, progress, skipped)
    finally:
        _make_visible(sqs, dlq_url, list(skipped.values()))
    return moved, failed, len(skipped)


def _move_batches(
    sqs: Any,
    sender: Any,
    dlq_url: str,
    queue_url: str,
    total: int,
    include_malformed: bool,
    progress: ProgressLine,
    skipped: dict[str, str],
) -> tuple[int, int]:
    moved = failed = handled = 0
    while handled < total:
        messages = _receive(sqs, dlq_url, visibility=MOVE_VISIBILITY_SECONDS)[: total - handled]
        if not messages:
            break
        malformed = [m for m in messages if not include_malformed and is_malformed(m)]
        skipped.update((m["MessageId"], m["ReceiptHandle"]) for m in malformed)
        fresh = [m for m in messages if m not in malformed]
        handled += len(messages)
        if fresh:
            entries = [_copy(i, m) for i, m in enumerate(fresh)]
            sent = sender.send_message_batch(QueueUrl=queue_url, Entries=entries)
            ok = {s["Id"] for s in sent.get("Successful", [])}
            done = [m for i, m in enumerate(fresh) if str(i) in ok]
            if done:
                sqs.delete_message_batch(
                    QueueUrl=dlq_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
                )
            failed_now = [m for m in fresh if m not in done]
            moved += len(done)
            failed += len(failed_now)
            if failed_now:
                _make_visible(sqs, dlq_url, [m["ReceiptHandle"] for m in failed_now])
                break  # the queue refuses: do not spin; the rest stays for the next run
        progress.update(f"{handled} of ~{total}")
    return moved, failed


def is_malformed(message: dict[str, Any]) -> bool:
    """Parked by the function as malformed, or not even JSON: sending it back would only park it again."""
    if ERROR_ATTRIBUTE in (message.get("MessageAttributes") or {}):
        return True
    try:
        json.loads(message.get("Body", ""))
    except ValueError:
        return True
    return False


def _copy(index: int, message: dict[str, Any]) -> dict[str, Any]:
    return {"Id": str(index), "MessageBody": message["Body"]}


def _arn(sqs: Any, url: str) -> str:
    return str(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])


def _parsed(body: str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return body


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
