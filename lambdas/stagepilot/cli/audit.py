"""``stagepilot audit``: the audit trail, newest first."""

from __future__ import annotations

import argparse
import base64
import csv
import difflib
import io
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from stagepilot.cli.errors import BadInput
from stagepilot.cli.paging import positive
from stagepilot.cli.policies import checked_arn
from stagepilot.cli.resources import resources

if TYPE_CHECKING:
    from stagepilot.cli.output import Output


AUDIT_SCAN_LIMIT = 5000  # entries read for one `audit` with filters, at most
_POSITION: Final = re.compile(r"[0-9T:.Z-]{10,40}#[0-9a-f-]{36}")  # an audit position: write time # suffix


def register(commands: Any, common: argparse.ArgumentParser, aws: argparse.ArgumentParser) -> None:
    audit = commands.add_parser(
        "audit",
        parents=[common, aws],
        help="the audit trail, newest first",
        description="What stagepilot did (compositions started, restarted, healed, given up; replications "
        "started; disconnects and dry-run decisions; tokens the door issued or refused) and what people did "
        "through the CLI (policies, pauses, bans, flags), newest first: for one stage, or all. Filters combine. "
        "--since and --until are the query's key condition (only that window is read); --action is a filter "
        f"DynamoDB applies; --user is applied here, reading at most {AUDIT_SCAN_LIMIT} entries a run. A listing "
        "that is cut says so on stderr, with the --starting-token that goes on from there.",
    )
    audit.add_argument("stage_arn", metavar="STAGE_ARN", nargs="?")
    audit.add_argument("--stage", dest="stage_option", metavar="STAGE_ARN", help="the same as STAGE_ARN")
    audit.add_argument(
        "--limit", "--max-items", dest="limit", type=positive, default=20, metavar="N", help="at most N entries (20)"
    )
    audit.add_argument(
        "--starting-token",
        type=_token,
        metavar="TOKEN",
        help="go on where a cut listing stopped (the token its notice printed)",
    )
    audit.add_argument(
        "--since",
        type=parse_since,
        metavar="WHEN",
        help="only entries from then on: 2026-11-21T20:00:00Z, or 30m, 12h, 7d ago",
    )
    audit.add_argument("--until", type=parse_since, metavar="WHEN", help="only entries up to then (as --since)")
    audit.add_argument(
        "--user", metavar="ID", help="only entries about this user id, or made by this caller (ARN or its last part)"
    )
    audit.add_argument(
        "--action",
        action="append",
        type=_action,
        metavar="ACTION",
        help="only this action (disconnect, would-disconnect, composition-started, ...); repeatable",
    )
    audit.add_argument("--csv", action="store_true", help="comma-separated values, a header line first")
    audit.set_defaults(handler=cmd_audit)


def _action(text: str) -> str:
    """An action the audit trail records; a typo is refused with the nearest ones and the whole list."""
    from stagepilot.adapters.audit import AUDIT_ACTIONS

    if text in AUDIT_ACTIONS:
        return text
    near = difflib.get_close_matches(text, AUDIT_ACTIONS, n=3)
    hint = f" (did you mean {' or '.join(near)}?)" if near else ""
    raise argparse.ArgumentTypeError(
        f"no action {text[:80]!r} in the audit trail{hint}; actions: {', '.join(sorted(AUDIT_ACTIONS))}"
    )


def _token(text: str) -> str:
    """The position a cut listing printed (base64 of an audit position)."""
    try:
        position = base64.urlsafe_b64decode(text.encode("ascii") + b"==").decode("ascii")
    except (ValueError, UnicodeError):
        position = ""
    if len(text) > 200 or not _POSITION.fullmatch(position):
        raise argparse.ArgumentTypeError(f"not a token a cut audit listing printed: {text[:80]!r}")
    return position


def token_of(position: str) -> str:
    return base64.urlsafe_b64encode(position.encode("ascii")).decode("ascii").rstrip("=")


def cmd_audit(args: argparse.Namespace, out: Output) -> int:
    from stagepilot.adapters.table import AuditLog

    if args.stage_arn and args.stage_option and args.stage_arn != args.stage_option:
        raise BadInput("STAGE_ARN and --stage name different stages")
    now = datetime.now(UTC)
    if args.since is not None and args.since > now:
        raise BadInput(
            f"--since {_shown_time(args.since)} is in the future (now {_shown_time(now)}): nothing can match"
        )
    if args.since is not None and args.until is not None and args.until < args.since:
        raise BadInput(f"--until {_shown_time(args.until)} is before --since {_shown_time(args.since)}")
    if args.csv and out.as_json:
        raise BadInput("--csv or --output: one of them")
    given = args.stage_arn or args.stage_option
    arn = checked_arn(given) if given else None
    entries: list[dict[str, Any]] = []
    more: str | None = None  # where the next listing starts, when this one is cut
    last = args.starting_token
    trail = AuditLog(resources(args).table).trail(
        arn, since=args.since, until=args.until, before=args.starting_token, actions=args.action
    )
    for scanned, (position, entry) in enumerate(trail, start=1):
        if audit_matches(entry, user=args.user, actions=args.action):
            if len(entries) >= args.limit:  # one more than asked for: the listing is cut
                more = last
                break
            entries.append(entry)
            last = position
        elif len(entries) < args.limit:
            last = position
        if scanned >= AUDIT_SCAN_LIMIT:
            more = last
            out.notice(
                f"stopped after reading {AUDIT_SCAN_LIMIT} entries of the window (narrow it with --since/--until)"
            )
            break
    if args.csv:
        _print_csv(out, entries)
    elif out.as_json:
        out.json(entries)
    else:
        if not entries:
            filtered = args.user or args.action or args.since or args.until or args.starting_token
            out.line(f"no actions recorded{' for ' + arn if arn else ''}{' that match' if filtered else ''}")
        for entry in entries:
            out.line(audit_line(entry, with_stage=arn is None))
    if more is not None:
        out.notice(f"more entries than shown: add --starting-token {token_of(more)} for the next ones")
    return 0


CSV_COLUMNS: Final = (
    "time",
    "stageArn",
    "automation",
    "action",
    "dryRun",
    "sessionId",
    "participantId",
    "userId",
    "rule",
    "result",
    "reason",
    "by",
)


def _print_csv(out: Output, entries: list[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for entry in entries:
        row = {**entry, "by": (entry.get("details") or {}).get("by", "")}
        writer.writerow(["" if row.get(c) is None else str(row.get(c)) for c in CSV_COLUMNS])
    out.lines(buffer.getvalue().rstrip("\n"))


def _shown_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def audit_matches(entry: dict[str, Any], *, user: str | None, actions: list[str] | None) -> bool:
    if actions and entry.get("action") not in actions:
        return False
    if user is None:
        return True
    by = str((entry.get("details") or {}).get("by", ""))
    return user in (entry.get("userId"), by) or (bool(by) and by.rsplit("/", 1)[-1] == user)


def parse_since(text: str) -> datetime:
    from stagepilot.cli.bans import parse_duration

    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            return datetime.now(UTC) - parse_duration(text)
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(
                f"not a time or a duration: {text!r} (2026-11-21T20:00:00Z, or 30m, 12h, 7d)"
            ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def audit_line(entry: dict[str, Any], *, with_stage: bool = True) -> str:
    parts = [entry.get("time", "?")]
    if with_stage:
        parts.append(entry.get("stageArn", "?"))
    action = entry.get("action", "?") + (" (dry run)" if entry.get("dryRun") else "")
    parts.append(f"{entry.get('automation', '?')}/{action}")
    if entry.get("rule"):
        parts.append(f"rule={entry['rule']}")
    if entry.get("participantId"):
        who = entry["participantId"] + (f" (user {entry['userId']})" if entry.get("userId") else "")
        parts.append(who)
    if entry.get("result"):
        parts.append(f"result={entry['result']}")
    why = (entry.get("details") or {}).get("why")
    parts.append(f"— {entry.get('reason', '')}" + (f" [{why}]" if why else ""))
    return "  ".join(parts)
