"""``stagepilot audit``: the audit trail, newest first."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from stagepilot.cli.errors import BadInput
from stagepilot.cli.policies import checked_arn
from stagepilot.cli.resources import resources

if TYPE_CHECKING:
    from stagepilot.cli.output import Output


AUDIT_SCAN_LIMIT = 5000  # entries read for one `audit` with filters, at most


def register(commands: Any, common: argparse.ArgumentParser, aws: argparse.ArgumentParser) -> None:
    audit = commands.add_parser(
        "audit",
        parents=[common, aws],
        help="the audit trail, newest first",
        description="What stagepilot did (compositions started, restarted, healed, given up; replications "
        "started; disconnects and dry-run decisions) and what people did through the CLI, newest first: for "
        "one stage, or all. Filters combine.",
    )
    audit.add_argument("stage_arn", metavar="STAGE_ARN", nargs="?")
    audit.add_argument("--stage", dest="stage_option", metavar="STAGE_ARN", help="the same as STAGE_ARN")
    audit.add_argument("--limit", type=_positive, default=20, metavar="N", help="at most N entries (default 20)")
    audit.add_argument(
        "--since",
        type=parse_since,
        metavar="WHEN",
        help="only entries from then on: 2026-11-21T20:00:00Z, or 30m, 12h, 7d ago",
    )
    audit.add_argument(
        "--user", metavar="ID", help="only entries about this user id, or made by this caller (ARN or its last part)"
    )
    audit.add_argument(
        "--action",
        action="append",
        metavar="ACTION",
        help="only this action (disconnect, would-disconnect, composition-started, ...); repeatable",
    )
    audit.set_defaults(handler=cmd_audit)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number ≥ 1, got {text!r}")
    return value


def cmd_audit(args: argparse.Namespace, out: Output) -> int:
    from stagepilot.adapters.table import AuditLog

    if args.stage_arn and args.stage_option and args.stage_arn != args.stage_option:
        raise BadInput("STAGE_ARN and --stage name different stages")
    given = args.stage_arn or args.stage_option
    arn = checked_arn(given) if given else None
    entries: list[dict[str, Any]] = []
    for scanned, entry in enumerate(AuditLog(resources(args).table).newest_first(arn, since=args.since), start=1):
        if audit_matches(entry, user=args.user, actions=args.action):
            entries.append(entry)
            if len(entries) >= args.limit:
                break
        if scanned >= AUDIT_SCAN_LIMIT:
            out.warn(f"stopped after reading {AUDIT_SCAN_LIMIT} entries; narrow it down with --since")
            break
    if out.as_json:
        out.json(entries)
        return 0
    if not entries:
        out.line(
            f"no actions recorded{' for ' + arn if arn else ''}{' that match' if args.user or args.action else ''}"
        )
    for entry in entries:
        out.line(audit_line(entry, with_stage=arn is None))
    return 0


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
