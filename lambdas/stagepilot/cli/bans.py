"""``stagepilot ban add|remove|list``: the ban list (global or per stage, join or publish scope)."""

from __future__ import annotations

import argparse
import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from stagepilot.cli.errors import CliError
from stagepilot.cli.output import ProgressLine
from stagepilot.cli.paging import page, paging_options, say_more
from stagepilot.cli.resources import resources
from stagepilot.errors import ConflictError, NotFound

if TYPE_CHECKING:
    from stagepilot.adapters.pass_log import SweepProgress
    from stagepilot.adapters.table import Ban
    from stagepilot.cli.output import Output
    from stagepilot.pipeline import Services

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
        "participants whose tokens the door issued (found from its token records: no listing of live stages, "
        "seconds at any fleet size); paused stages are left alone. A stage ban also checks its one stage now. "
        "For a global ban, participants whose tokens your application made itself are left to the deployed "
        "convergence pass, which checks every live stage against the bans within its documented number of "
        "passes (about a hundred stages a pass): the command says so, and `ban list` shows how far the sweep "
        "got. --sweep checks every live stage now instead, at the CLI's IVS pace (1 ListParticipants a second: "
        "minutes for a large fleet). A ban in force is not changed (not shortened, not replaced) unless you "
        "pass --replace. Audited with your identity.",
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
        help="also check every live stage now (ListStages, a ListParticipants per stage at 1 a second) for "
        "participants whose tokens stagepilot did not issue, instead of leaving it to the convergence pass",
    )
    add.add_argument(
        "--replace", action="store_true", help="replace a ban in force (its reason and expiry, even a shorter one)"
    )
    add.add_argument(
        "--dry-run",
        action="store_true",
        help="print the ban that would be stored and the participants it would disconnect now; change nothing",
    )
    add.set_defaults(handler=cmd_add)

    remove = sub.add_parser(
        "remove", parents=[common, aws], help="lift a ban", description="Lift a ban. Audited with your identity."
    )
    remove.add_argument("user_id", metavar="USER_ID")
    remove.add_argument("--stage", metavar="STAGE_ARN", help="lift the ban on this stage (default: the global ban)")
    remove.add_argument(
        "--dry-run", action="store_true", help="say which ban would be lifted (and who may then join); lift nothing"
    )
    remove.set_defaults(handler=cmd_remove)

    listing = sub.add_parser(
        "list",
        parents=[common, aws, paging_options()],
        help="list active bans, and how far each one's sweep got",
        description="List the bans in force (expired ones are not shown), by user id, each with its sweep: how "
        "many of the live stages the convergence passes that started after the ban have checked for the "
        "user's participants, and about how many passes are left (or done; a stage ban's sweep is its one "
        "stage, checked by ban add at once). --max-items N cuts the listing "
        "and says so, with the --starting-token that goes on from there.",
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
    from stagepilot.cli.changes import caller_arn
    from stagepilot.cli.home import check_account
    from stagepilot.cli.policies import checked_arn
    from stagepilot.cli.services import cli_services

    if not args.user_id or len(args.user_id) > 128:
        raise CliError("USER_ID must be 1-128 characters", status=2)
    if len(args.reason) > 128:
        raise CliError("--reason must be at most 128 characters (DisconnectParticipant's limit)", status=2)
    stage_arn = checked_arn(args.stage) if args.stage else None
    res = resources(args)
    by = caller_arn()
    if stage_arn is not None:
        check_account(stage_arn, caller=by)
    if args.dry_run:
        from stagepilot.cli.preview import preview_ban

        return preview_ban(args, res, out, stage_arn)
    try:
        ban, replaced = store_ban(res.table, args, stage_arn, by=by)
    except ConflictError as exc:
        raise CliError(str(exc)) from exc
    disconnected, checked, handed = disconnect_now(args, res, cli_services(res), ban, out)
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
                **({"sweep": handed} if handed is not None else {}),
            }
        )
    else:
        until = f" until {_iso(ban.expires_at)}" if ban.expires_at else ""
        out.line(f"banned {ban.banned()}{until}" + (f" (replaced a ban {replaced.until()})" if replaced else ""))
        for item in disconnected:
            out.line(f"  {item['action']}: {item['participantId']} on {item['stageArn']} ({item['reason']})")
        if not args.no_disconnect and not disconnected:
            where = f"on any of the {checked} live stage(s)" if checked else "with a token stagepilot issued"
            out.line(f"  not connected {where}")
        if handed is not None:
            out.line(f"  {handed_text(handed)}")
    return 0


def store_ban(table: Any, args: argparse.Namespace, stage_arn: str | None, *, by: str = "") -> tuple[Ban, Ban | None]:
    """Store the ban ``ban add``'s arguments describe, with who made it and its audit entry (one
    transaction): (the ban, the one it replaced). Raises ConflictError when a ban is in force and
    --replace was not given."""
    from stagepilot.adapters.table import AuditLog, BanStore
    from stagepilot.cli.changes import GLOBAL_STAGE, change_entry

    def entry(ban: Ban, replaced: Ban | None) -> Any:
        return AuditLog(table).put_with(
            change_entry(
                stage_arn=stage_arn or GLOBAL_STAGE,
                action="ban-add",
                by=by,
                reason=f"banned {ban.banned()} {ban.until()}"
                + (f" (replaced a ban {replaced.until()})" if replaced else ""),
                user_id=ban.user_id,
            )
        )

    return BanStore(table).add(
        args.user_id,
        reason=args.reason,
        ttl=args.ttl,
        replace=args.replace,
        stage_arn=stage_arn,
        scope=args.scope,
        by=by,
        audit=entry,
    )


def disconnect_now(
    args: argparse.Namespace, res: Any, services: Services, ban: Ban, out: Output
) -> tuple[list[dict[str, Any]], int, dict[str, Any] | None]:
    """What ``ban add`` does at once after storing the ban: (disconnected, live stages checked, what it
    leaves to the convergence pass). The door's token records; the ban's stage, or every live stage with
    --sweep; a global ban's rest is handed to the pass."""
    disconnected: list[dict[str, Any]] = []
    checked = 0
    handed: dict[str, Any] | None = None
    if not args.no_disconnect:
        disconnected = from_records(services, ban)
        if args.sweep or ban.stage_arn:  # a stage ban: its one stage is checked now (one listing)
            checked, swept = sweep(services, ban, out)
            disconnected += [item for item in swept if item not in disconnected]
        else:
            handed = handed_to_the_pass(res)
    return disconnected, checked, handed


def handed_to_the_pass(res: Any) -> dict[str, Any]:
    """What the rest of a global ban's sweep is left to: the convergence pass, which judges every connected
    participant of the live stages it examines against the bans (its last passes say how many stages that
    is, and how many a pass gets through: adapters/pass_log.py). No IVS call."""
    from stagepilot.adapters.pass_log import PassLog

    try:
        passes = PassLog(res.table).passes()
    except Exception:  # the ban is stored: what the estimate needs is not worth failing the command for
        passes = []
    last = passes[-1] if passes else None
    live = last.examinable if last is not None else None
    per_pass = last.reached if last is not None else None
    return {
        "by": "convergence-pass",
        "liveStages": live,
        "passesNeeded": max(1, -(-live // per_pass)) if live and per_pass else (1 if live == 0 else None),
    }


def handed_text(handed: dict[str, Any]) -> str:
    if handed["liveStages"] is None:
        how = "no pass recorded yet (is the stack deployed?)"
    elif not handed["liveStages"]:
        how = "no live stage to check at the last pass, the next one checks every stage live by then"
    else:
        needed = f"about {handed['passesNeeded']} pass(es)" if handed["passesNeeded"] else "passes"
        how = f"{handed['liveStages']} live stage(s), {needed}, one every reconcileMinutes"
    return (
        "the rest of the sweep (participants whose tokens stagepilot did not issue) is the convergence pass's: "
        f"{how}; `stagepilot ban list` shows how far it got (or --sweep: every live stage now, at the CLI's pace)"
    )


def from_records(services: Services, ban: Ban) -> list[dict[str, Any]]:
    """Disconnect the participants of the tokens the door issued to the user (token records): no listing."""
    from stagepilot.door.revoke import disconnect_issued

    return [
        {
            "action": o.action,
            "reason": o.reason,
            "stageArn": o.details.get("stage_arn"),
            "participantId": o.details.get("participant_id"),
        }
        for o in disconnect_issued(services, ban)
        if o.action != "skip" and o.details.get("result") != "not-connected"
    ]


def sweep(services: Services, ban: Ban, out: Output) -> tuple[int, list[dict[str, Any]]]:
    """Disconnect the user's connected participants on every live stage (ListStages: those with an active
    session), or on the ban's stage, whatever their policy; paced at the IVS quota. A publish ban
    disconnects only participants that published. Returns (stages checked, what was done)."""
    from stagepilot.automations.moderation import sweep_banned_user

    user_id, reason = ban.user_id, ban.reason
    live = [ban.stage_arn] if ban.stage_arn else [stage.arn for stage in services.ivs.live_stages()]
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
    from stagepilot.adapters.table import AuditLog, BanStore
    from stagepilot.cli.changes import GLOBAL_STAGE, caller_arn, change_entry
    from stagepilot.cli.policies import checked_arn

    stage_arn = checked_arn(args.stage) if args.stage else None
    res = resources(args)
    if args.dry_run:
        found = BanStore(res.table).get(args.user_id, stage_arn=stage_arn)
        if found is None:
            raise CliError(f"{args.user_id} is not banned" + (f" on {stage_arn}" if stage_arn else ""))
        if out.as_json:
            out.json({"dryRun": True, "userId": args.user_id, "stageArn": stage_arn, "wouldRemove": True})
        else:
            out.line(f"would lift the ban on {found.banned()} (banned {found.until()})")
            out.line(
                "then the door issues the user tokens again and the convergence pass no longer disconnects them"
                + (f" on {stage_arn}" if stage_arn else "")
                + " (a ban of another scope or stage still applies: stagepilot ban list)"
            )
            out.line("dry run: nothing changed")
        return 0
    by = caller_arn()
    audit = AuditLog(res.table)

    def entry(lifted: Ban) -> Any:  # removed with its audit entry, in one transaction
        return audit.put_with(
            change_entry(
                stage_arn=stage_arn or GLOBAL_STAGE,
                action="ban-remove",
                by=by,
                reason=f"lifted the ban on {lifted.banned()} (was {lifted.until()})",
                user_id=args.user_id,
            )
        )

    try:
        lifted = BanStore(res.table).remove(args.user_id, stage_arn=stage_arn, audit=entry)
    except NotFound as exc:
        raise CliError(str(exc)) from exc
    if out.as_json:
        out.json({"userId": args.user_id, "stageArn": stage_arn, "removed": True})
    else:
        out.line(f"lifted the ban on {lifted.banned()}")
    return 0


def cmd_list(args: argparse.Namespace, out: Output) -> int:
    from stagepilot.adapters.table import BanStore

    res = resources(args)
    bans, more = page(BanStore(res.table).list(), lambda b: f"{b.user_id}\x00{b.stage_arn or ''}", args)
    _print_bans(out, bans, sweep_progress(res, bans), after=args.starting_token is not None)
    say_more(out, more, "bans")
    return 0


def _print_bans(out: Output, bans: list[Ban], sweeps: list[SweepProgress | None], *, after: bool) -> None:
    if out.as_json:
        out.json(
            [
                {
                    "userId": b.user_id,
                    "stageArn": b.stage_arn,
                    "scope": b.scope,
                    "reason": b.reason,
                    "createdAt": b.created_at,
                    **({"createdBy": b.created_by} if b.created_by else {}),
                    "expiresAt": _iso(b.expires_at),
                    "sweep": progress.to_json() if progress is not None else None,
                }
                for b, progress in zip(bans, sweeps, strict=True)
            ]
        )
        return
    if not bans:
        out.line("no more bans in force" if after else "no bans in force")
    for b, progress in zip(bans, sweeps, strict=True):
        until = f"until {_iso(b.expires_at)}" if b.expires_at else "permanent"
        by = f" by {b.created_by}" if b.created_by else ""
        out.line(f"{b.banned()}  {until}  since {b.created_at}{by}  {b.reason}")
        if b.stage_arn is not None:
            # a stage ban's sweep is its one stage: ban add checks it at once, every pass that reaches it again
            out.line("  sweep: its one stage, checked by ban add at once (unless --no-disconnect) and by the passes")
        elif progress is not None:
            out.line(f"  sweep: {sweep_text(progress)}")


def sweep_progress(res: Any, bans: list[Ban]) -> list[SweepProgress | None]:
    """Each ban's sweep by the convergence passes that started after it (one read for all); None where the
    passes' record cannot be read (the bans are still listed)."""
    from stagepilot.adapters.pass_log import PassLog
    from stagepilot.adapters.table import parse_iso

    log = PassLog(res.table)
    try:
        passes = log.passes() if bans else []
    except Exception:
        return [None for _ in bans]
    found: list[SweepProgress | None] = []
    for b in bans:
        since = parse_iso(b.created_at)
        found.append(log.progress(since, passes) if since is not None else None)
    return found


def sweep_text(progress: SweepProgress) -> str:
    """``done``, or how many live stages the passes since the ban checked and about how many passes are left."""
    if progress.done:
        return f"done: every live stage checked by the convergence pass (the pass of {_iso(progress.finished_at)})"
    if progress.examinable is None:
        return "waiting for the convergence pass (no pass recorded yet: is the stack deployed?)"
    if not progress.examinable and not progress.passes:
        return (
            "nothing to sweep yet: the last convergence pass found no live stage to check; "
            "the passes after the ban check every stage live by then"
        )
    checked = min(progress.reached, progress.examinable)
    left = f", about {progress.passes_left} more" if progress.passes_left else ""
    return (
        f"{checked} of {progress.examinable} live stage(s) checked by the convergence pass "
        f"({progress.passes} pass(es) since the ban{left})"
    )


def _iso(value: datetime | None) -> str | None:
    """One time format everywhere: ISO-8601 UTC, as the audit trail writes it."""
    from stagepilot.adapters.table import iso

    return iso(value) if value is not None else None
