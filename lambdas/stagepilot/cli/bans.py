"""``stagepilot ban add|remove|list``: the ban list (global or per stage, join or publish scope)."""

from __future__ import annotations

import argparse
import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from stagepilot.cli.errors import CliError
from stagepilot.cli.output import ProgressLine
from stagepilot.cli.resources import resources
from stagepilot.errors import ConflictError, NotFound

if TYPE_CHECKING:
    from stagepilot.adapters.table import Ban
    from stagepilot.cli.output import Output

_DURATION = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_TTL = timedelta(days=3650)  # longer is a permanent ban: omit --ttl


def register(commands: Any, common: argparse.ArgumentParser, aws: argparse.ArgumentParser) -> None:
    ban = commands.add_parser(
        "ban",
        parents=[common],
        help="the ban list (global or per stage)",
        description="The ban list: a ban is global or for one stage (--stage), and applies to every stage it "
        "names that is not paused. Scope join (default): the user may not be on the stage at all; scope "
        "publish: the user may watch but not publish. DisconnectParticipant cannot stop a user from getting a "
        "new token: have your backend ask the door for tokens (stagepilot token issue, the stack's TokenUrl), "
        "which refuses banned users (see docs/runbooks/ban-a-user.md).",
    )
    sub = ban.add_subparsers(dest="ban_command", metavar="COMMAND", required=True)

    add = sub.add_parser(
        "add",
        parents=[common, aws],
        help="ban a user and disconnect them now",
        description="Ban a user id on every stage (or one, --stage), and disconnect at once the user's "
        "participants whose tokens the door issued (found from its token records: no listing of live stages); "
        "paused stages are left alone. Participants whose tokens your application made itself are disconnected "
        "by the convergence pass within its documented number of passes, or now with --sweep (lists every live "
        "stage at the IVS quota: minutes for a large fleet). A ban in force is not changed (not shortened, not "
        "replaced) unless you pass --replace. Audited with your identity.",
    )
    add.add_argument("user_id", metavar="USER_ID")
    add.add_argument("--stage", metavar="STAGE_ARN", help="ban on this stage only (default: every stage)")
    add.add_argument(
        "--scope",
        choices=("join", "publish"),
        default="join",
        help="join (default): not on the stage at all; publish: may watch, may not publish",
    )
    add.add_argument("--reason", default="", help="why (sent to DisconnectParticipant, at most 128 characters)")
    add.add_argument(
        "--ttl",
        metavar="DURATION",
        type=parse_duration,
        help="lift the ban after this long: 90s, 30m, 12h, 7d, 2w, or combined like 1d12h",
    )
    add.add_argument(
        "--no-disconnect", action="store_true", help="only record the ban; do not disconnect connected participants now"
    )
    add.add_argument(
        "--sweep",
        action="store_true",
        help="also check every live stage now (ListStages, ListParticipants) for participants whose tokens "
        "stagepilot did not issue",
    )
    add.add_argument(
        "--replace", action="store_true", help="replace a ban in force (its reason and expiry, even a shorter one)"
    )
    add.set_defaults(handler=cmd_add)

    remove = sub.add_parser(
        "remove", parents=[common, aws], help="lift a ban", description="Lift a ban. Audited with your identity."
    )
    remove.add_argument("user_id", metavar="USER_ID")
    remove.add_argument("--stage", metavar="STAGE_ARN", help="lift the ban on this stage (default: the global ban)")
    remove.set_defaults(handler=cmd_remove)

    listing = sub.add_parser(
        "list",
        parents=[common, aws],
        help="list active bans",
        description="List the bans in force (expired ones are not shown).",
    )
    listing.set_defaults(handler=cmd_list)


def parse_duration(text: str) -> timedelta:
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (examples: 90s, 30m, 12h, 7d, 1d12h)")
    if any(len(n) > 12 for n, _ in parts):
        raise argparse.ArgumentTypeError(f"{text!r} is longer than {MAX_TTL.days} days: omit --ttl for a permanent ban")
    seconds = sum(int(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise argparse.ArgumentTypeError("a ban's duration must be longer than 0")
    if seconds > MAX_TTL.total_seconds():
        raise argparse.ArgumentTypeError(f"{text!r} is longer than {MAX_TTL.days} days: omit --ttl for a permanent ban")
    return timedelta(seconds=seconds)


def cmd_add(args: argparse.Namespace, out: Output) -> int:
    from stagepilot.adapters.table import BanStore
    from stagepilot.cli.changes import GLOBAL_STAGE, caller_arn, record_change
    from stagepilot.cli.policies import checked_arn

    if not args.user_id or len(args.user_id) > 128:
        raise CliError("USER_ID must be 1-128 characters", status=2)
    if len(args.reason) > 128:
        raise CliError("--reason must be at most 128 characters (DisconnectParticipant's limit)", status=2)
    stage_arn = checked_arn(args.stage) if args.stage else None
    res = resources(args)
    by = caller_arn()
    try:
        ban, replaced = BanStore(res.table).add(
            args.user_id,
            reason=args.reason,
            ttl=args.ttl,
            replace=args.replace,
            stage_arn=stage_arn,
            scope=args.scope,
        )
    except ConflictError as exc:
        raise CliError(str(exc)) from exc
    record_change(
        res.table,
        stage_arn=stage_arn or GLOBAL_STAGE,
        action="ban-add",
        by=by,
        reason=f"banned {ban.banned()} {ban.until()}" + (f" (replaced a ban {replaced.until()})" if replaced else ""),
        user_id=ban.user_id,
    )
    disconnected: list[dict[str, Any]] = []
    checked = 0
    if not args.no_disconnect:
        disconnected = from_records(res, ban)
        if args.sweep:
            checked, swept = sweep(res, ban, out)
            disconnected += [item for item in swept if item not in disconnected]
    if out.as_json:
        out.json(
            {
                "userId": ban.user_id,
                "stageArn": ban.stage_arn,
                "scope": ban.scope,
                "reason": ban.reason,
                "expiresAt": _iso(ban.expires_at),
                "liveStagesChecked": checked,
                "disconnected": disconnected,
            }
        )
    else:
        until = f" until {_iso(ban.expires_at)}" if ban.expires_at else ""
        out.line(f"banned {ban.banned()}{until}" + (f" (replaced a ban {replaced.until()})" if replaced else ""))
        for item in disconnected:
            out.line(f"  {item['action']}: {item['participantId']} on {item['stageArn']} ({item['reason']})")
        if not args.no_disconnect and not disconnected:
            where = f"on any of the {checked} live stage(s)" if args.sweep else "with a token stagepilot issued"
            out.line(f"  not connected {where}")
    return 0


def from_records(res: Any, ban: Ban) -> list[dict[str, Any]]:
    """Disconnect the participants of the tokens the door issued to the user (token records): no listing."""
    from stagepilot.cli.services import cli_services
    from stagepilot.door.revoke import disconnect_issued

    return [
        {
            "action": o.action,
            "reason": o.reason,
            "stageArn": o.details.get("stage_arn"),
            "participantId": o.details.get("participant_id"),
        }
        for o in disconnect_issued(cli_services(res), ban)
        if o.action != "skip" and o.details.get("result") != "not-connected"
    ]


def sweep(res: Any, ban: Ban, out: Output) -> tuple[int, list[dict[str, Any]]]:
    """Disconnect the user's connected participants on every live stage (ListStages: those with an active
    session), or on the ban's stage, whatever their policy; paced at the IVS quota. A publish ban
    disconnects only participants that published. Returns (stages checked, what was done)."""
    from stagepilot.automations.moderation import sweep_banned_user
    from stagepilot.cli.services import cli_services

    services = cli_services(res)
    user_id, reason = ban.user_id, ban.reason
    live = [ban.stage_arn] if ban.stage_arn else [stage.arn for stage in res.ivs.live_stages()]
    progress = ProgressLine(out, f"checking live stages for {user_id}")
    done: list[dict[str, Any]] = []
    try:
        for index, stage_arn in enumerate(live, start=1):
            progress.update(f"{index} of {len(live)}, {len(done)} disconnected")
            for o in sweep_banned_user(services, user_id, reason=reason, stage_arns=[stage_arn], ban=ban):
                if o.action != "skip":  # not connected there, no session: nothing to say
                    done.append(
                        {
                            "action": o.action,
                            "reason": o.reason,
                            "stageArn": o.details.get("stage_arn"),
                            "participantId": o.details.get("participant_id"),
                        }
                    )
    finally:
        progress.done()
    return len(live), done


def cmd_remove(args: argparse.Namespace, out: Output) -> int:
    from stagepilot.adapters.table import BanStore
    from stagepilot.cli.changes import GLOBAL_STAGE, caller_arn, record_change
    from stagepilot.cli.policies import checked_arn

    stage_arn = checked_arn(args.stage) if args.stage else None
    res = resources(args)
    by = caller_arn()
    try:
        lifted = BanStore(res.table).remove(args.user_id, stage_arn=stage_arn)
    except NotFound as exc:
        raise CliError(str(exc)) from exc
    record_change(
        res.table,
        stage_arn=stage_arn or GLOBAL_STAGE,
        action="ban-remove",
        by=by,
        reason=f"lifted the ban on {lifted.banned()} (was {lifted.until()})",
        user_id=args.user_id,
    )
    if out.as_json:
        out.json({"userId": args.user_id, "stageArn": stage_arn, "removed": True})
    else:
        out.line(f"lifted the ban on {lifted.banned()}")
    return 0


def cmd_list(args: argparse.Namespace, out: Output) -> int:
    from stagepilot.adapters.table import BanStore

    bans = BanStore(resources(args).table).list()
    if out.as_json:
        out.json(
            [
                {
                    "userId": b.user_id,
                    "stageArn": b.stage_arn,
                    "scope": b.scope,
                    "reason": b.reason,
                    "createdAt": b.created_at,
                    "expiresAt": _iso(b.expires_at),
                }
                for b in bans
            ]
        )
        return 0
    if not bans:
        out.line("no bans in force")
    for b in bans:
        until = f"until {_iso(b.expires_at)}" if b.expires_at else "permanent"
        out.line(f"{b.banned()}  {until}  since {b.created_at}  {b.reason}")
    return 0


def _iso(value: datetime | None) -> str | None:
    """One time format everywhere: ISO-8601 UTC, as the audit trail writes it."""
    from stagepilot.adapters.table import iso

    return iso(value) if value is not None else None
