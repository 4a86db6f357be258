"""``stagepilot disconnect|audit|pause|resume|explain``: operating the automation on live stages."""

from __future__ import annotations

import argparse
import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stagepilot.cli.confirm import confirm, yes_option
from stagepilot.cli.converge import add_option as add_converge_option
from stagepilot.cli.converge import converge_now
from stagepilot.cli.errors import BadInput, CliError
from stagepilot.cli.files import read_json_file
from stagepilot.cli.policies import checked_arn
from stagepilot.cli.resources import Resources, client, resources
from stagepilot.policy import DEFAULT_STAGE

if TYPE_CHECKING:
    from stagepilot.adapters.table import PauseSwitches, PolicyStore, Table
    from stagepilot.cli.output import Output
    from stagepilot.pipeline import Outcome

MANUAL_REASON = "Removed by an operator"
AUDIT_SCAN_LIMIT = 5000  # entries read for one `audit` with filters, at most
PARTICIPANT_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")  # IVS's participantId pattern


def register(commands: Any, common: argparse.ArgumentParser, aws: argparse.ArgumentParser) -> None:
    disconnect = commands.add_parser(
        "disconnect",
        parents=[common, aws],
        help="kick a participant now (audited)",
        description="Disconnect a participant from the stage's active session (DisconnectParticipant), stop "
        "the replicas stagepilot made of it, and record it in the audit trail (rule 'manual'). The user can "
        "still get a new token: ban them (stagepilot ban add) and check the ban list where tokens are issued. "
        "If IVS cannot do it now (throttled, unavailable), it says so and exits 1; run it again to finish.",
    )
    disconnect.add_argument("stage_arn", metavar="STAGE_ARN")
    disconnect.add_argument("participant_id", metavar="PARTICIPANT_ID")
    disconnect.add_argument(
        "--reason", default=MANUAL_REASON, help=f"sent to DisconnectParticipant, ≤128 characters ({MANUAL_REASON!r})"
    )
    disconnect.set_defaults(handler=cmd_disconnect)

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
        type=_since,
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

    for name, paused in (("pause", True), ("resume", False)):
        parser = commands.add_parser(
            name,
            parents=[common, aws, yes_option()],
            help="the per-stage kill switch" if paused else "undo pause",
            description=(
                "Turn on the stage's kill switch: no automation acts on it (bans included), whatever its policy "
                "says. The switch is an item of its own, not an edit of the policy: the policy is left as it is. "
                "'default' pauses every stage without a policy of its own; --all pauses 'default' and every stage "
                "with a stored policy. Audited with your identity."
                if paused
                else "Turn off the kill switch that pause turned on. A stage whose policy document itself says "
                "paused: true stays paused (change it with policy put). --all removes every switch. Audited. A live "
                "stage resumed on its own is converged to its policy at once (as `stagepilot reconcile STAGE_ARN` "
                "does), unless --no-converge; with 'default' or --all the convergence pass does it."
            ),
        )
        if not paused:
            add_converge_option(parser)
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("stage_arn", metavar="STAGE_ARN", nargs="?", help="a stage ARN, or 'default'")
        target.add_argument(
            "--all", action="store_true", help="'default' and every stage with a stored policy (resume: every switch)"
        )
        parser.set_defaults(handler=cmd_pause if paused else cmd_resume)

    explain = commands.add_parser(
        "explain",
        parents=[common, aws],
        help="what each automation would do with an event, and why",
        description="Evaluate one EventBridge event (a JSON file) against the stored policies and the current "
        "state of IVS and the table, without acting: which automations the stack's rules send it to, and "
        "what each would do and why. Runs each handler's own code on a what-if copy of the world: it reads IVS and "
        "the table, and records the writes and IVS calls it would make (details.wouldCall) instead of making them.",
    )
    explain.add_argument("event_file", type=Path, metavar="EVENT_FILE")
    explain.add_argument(
        "--moderation-source",
        action="append",
        metavar="SOURCE",
        help="an event source the stack allows for Participant Flagged (default stagepilot.moderation)",
    )
    explain.set_defaults(handler=cmd_explain)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number ≥ 1, got {text!r}")
    return value


# disconnect ----------------------------------------------------------------------------------------
def cmd_disconnect(args: argparse.Namespace, out: Output) -> int:
    from stagepilot.decisions.moderation import MAX_REASON_LENGTH
    from stagepilot.errors import RetryLater

    arn = checked_arn(args.stage_arn)
    if not PARTICIPANT_ID.fullmatch(args.participant_id):
        raise BadInput(f"not a participant id: {args.participant_id!r} (IVS ids are 1-64 letters, digits, '-' or '_')")
    if not args.reason or len(args.reason) > MAX_REASON_LENGTH:
        raise BadInput(f"--reason must be 1-{MAX_REASON_LENGTH} characters (DisconnectParticipant's limit)")
    res = resources(args)
    try:
        session_id, user_id, outcome = _kick(res, arn, args.participant_id, args.reason)
    except RetryLater as exc:
        raise CliError(f"{args.participant_id} is not disconnected yet ({exc}); run the command again") from exc
    result = outcome.details.get("result", outcome.action)
    if out.as_json:
        out.json(
            {
                "stageArn": arn,
                "sessionId": session_id,
                "participantId": args.participant_id,
                "userId": user_id,
                "action": outcome.action,
                "result": result,
                "reason": outcome.reason,
                "replicasStopped": list(outcome.details.get("replicas_stopped", [])),
            }
        )
    elif outcome.action == "disconnect" and result == "disconnected":
        out.line(f"disconnected {args.participant_id} from {arn} (session {session_id}); recorded in the audit trail")
        for destination in outcome.details.get("replicas_stopped", []):
            out.line(f"  stopped its replica in {destination}")
    elif outcome.action == "disconnect":
        out.line(f"{args.participant_id} was not connected in session {session_id} (nothing to do); recorded")
    else:
        out.line(f"{args.participant_id}: {outcome.reason}")
    return 1 if outcome.action == "rejected" else 0


def manual_owner(operator: str, stage_arn: str, participant_id: str) -> str:
    """The claim owner of a manual kick: the same for the same operator, stage and participant, so a re-run
    after a failure resumes that kick instead of finding "another event" holding the claim."""
    digest = hashlib.sha256(f"{operator}\n{stage_arn}\n{participant_id}".encode()).hexdigest()[:24]
    return f"manual:{digest}"


def _kick(res: Resources, arn: str, participant_id: str, reason: str) -> tuple[str, str | None, Outcome]:
    from stagepilot.adapters.counters import DisconnectClaims
    from stagepilot.adapters.ivs import IvsRejected
    from stagepilot.automations.moderation import disconnect_participant
    from stagepilot.cli.changes import caller_arn
    from stagepilot.cli.services import cli_services
    from stagepilot.decisions.moderation import Rule

    services = cli_services(res)
    session_id = active_session(res, arn)
    try:
        user_id = services.ivs.participant(arn, session_id, participant_id).user_id
    except IvsRejected as exc:
        if not exc.not_found:
            raise
        raise CliError(
            f"{participant_id} is not connected to {arn}: IVS does not know it in session {session_id} "
            "(find the id with: stagepilot status STAGE_ARN); nothing done"
        ) from exc
    operator = caller_arn()
    owner = manual_owner(operator, arn, participant_id)
    try:
        outcome = disconnect_participant(
            services,
            stage_arn=arn,
            session_id=session_id,
            participant_id=participant_id,
            user_id=user_id,
            rule=Rule.MANUAL,
            reason=reason,
            dry_run=False,
            event_id=owner,
            time=datetime.now(UTC),
            why=f"manual disconnect by {operator}",
        )
    except Exception:
        # Nobody retries a CLI command on its own: let the next kick (this operator's re-run, another
        # operator, or the automation) claim at once instead of after the claim's lease runs out.
        DisconnectClaims(services.table).release(arn, session_id, participant_id, owner=owner, dry_run=False)
        raise
    return session_id, user_id, outcome


def active_session(res: Resources, arn: str) -> str:
    stage = res.ivs.stage(arn)
    if stage is None:
        raise CliError(f"stage {arn} not found")
    if not stage.active_session_id:
        raise CliError(f"stage {arn} has no active session: nobody is connected")
    return stage.active_session_id


# audit ---------------------------------------------------------------------------------------------
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


def _since(text: str) -> datetime:
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


# pause / resume ------------------------------------------------------------------------------------
def cmd_pause(args: argparse.Namespace, out: Output) -> int:
    return _set_paused(args, out, paused=True)


def cmd_resume(args: argparse.Namespace, out: Output) -> int:
    return _set_paused(args, out, paused=False)


def _set_paused(args: argparse.Namespace, out: Output, *, paused: bool) -> int:
    from stagepilot.adapters.table import PauseSwitches, PolicyStore
    from stagepilot.cli.changes import caller_arn

    if args.all:
        confirm(args, f"{'pause' if paused else 'resume'} every stage")
    table = resources(args).table
    store, switches = PolicyStore(table), PauseSwitches(table)
    by = caller_arn()
    if args.all:
        stored = sorted(p.stage_arn for p in store.list() if p.stage_arn != DEFAULT_STAGE)
        arns = [DEFAULT_STAGE, *stored] if paused else sorted(switches.list(), key=lambda a: a != DEFAULT_STAGE)
        out.progress(f"{'pausing' if paused else 'resuming'} {len(arns)} stages...")
    else:
        arns = [checked_arn(args.stage_arn, allow_default=True)]
    results = [_toggle(store, switches, table, arn, paused=paused, by=by) for arn in arns]
    if not out.as_json:
        for result in results:
            out.line(result["message"])
        if args.all and not results:
            out.line("nothing is paused")
    if not paused and not args.all and results[0]["ok"] and not results[0]["paused"]:
        converged = converge_now(args, resources(args), out, arns[0])
        if converged is not None:
            results[0]["converged"] = converged
    if out.as_json:
        out.json(results if args.all else results[0])
    return 0 if all(r["ok"] for r in results) else 1


def _toggle(
    store: PolicyStore, switches: PauseSwitches, table: Table, arn: str, *, paused: bool, by: str
) -> dict[str, Any]:
    from stagepilot.cli.changes import record_change

    result: dict[str, Any] = {"stageArn": arn, "paused": paused, "changed": False, "ok": True}
    if paused:
        changed = switches.pause(arn, by=by)
        result.update(changed=changed, message=f"paused {arn}" if changed else f"{arn} is already paused")
    else:
        changed = switches.resume(arn)
        result.update(changed=changed, message=f"resumed {arn}" if changed else f"{arn} is not paused by pause")
        found = store.lookup(arn)
        policy = found.own or (found.default if arn != DEFAULT_STAGE else None)
        if found.paused_by is not None:  # follows 'default', which is paused
            result.update(paused=True, ok=False)
            result["message"] += f"; it follows 'default', which is paused (stagepilot resume {DEFAULT_STAGE})"
        elif policy is not None and policy.document.get("paused") is True:
            result.update(paused=True, ok=False)
            result["message"] += (
                f"; its policy ({'its own' if found.own else 'default'}) says paused: true: change that with policy put"
            )
    if changed:
        record_change(table, stage_arn=arn, action="pause" if paused else "resume", by=by, reason=result["message"])
    return result


# explain -------------------------------------------------------------------------------------------
def cmd_explain(args: argparse.Namespace, out: Output) -> int:
    from stagepilot.cli.services import cli_services
    from stagepilot.operator.explain import explain_event
    from stagepilot.routing import DEFAULT_MODERATION_SOURCES, build_routes

    document = _read_event(args.event_file)
    res = resources(args)
    sts = client("sts")
    account = str(sts.get_caller_identity()["Account"])
    sources = tuple(args.moderation_source or DEFAULT_MODERATION_SOURCES)
    routes = build_routes(account=account, region=sts.meta.region_name, moderation_sources=sources)
    services = cli_services(res, account=account, region=sts.meta.region_name, moderation_sources=sources)
    explanations = explain_event(document, services, routes=routes)
    if out.as_json:
        out.json(
            {
                "eventId": document.get("id"),
                "detailType": document.get("detail-type"),
                "eventName": (document.get("detail") or {}).get("event_name")
                if isinstance(document.get("detail"), dict)
                else None,
                "automations": [e.to_json() for e in explanations],
            }
        )
        return 0
    detail = document.get("detail") if isinstance(document.get("detail"), dict) else {}
    name = detail.get("event_name") if isinstance(detail, dict) else None
    out.line(f"event {document.get('id', '?')}: {document.get('detail-type', '?')}" + (f" / {name}" if name else ""))
    for e in explanations:
        out.line(f"  {e.automation:<11} {e.summary}")
    return 0


def _read_event(path: Path) -> dict[str, Any]:
    """The event file, checked offline to be an EventBridge envelope (before any AWS call)."""
    from stagepilot.errors import MalformedEvent
    from stagepilot.events import parse_envelope

    document = read_json_file(path)
    if not isinstance(document, dict):
        raise BadInput(f"{path}: expected one EventBridge event (a JSON object)")
    try:
        parse_envelope(document)
    except MalformedEvent as exc:
        raise BadInput(f"{path}: not an EventBridge event: {exc}") from exc
    return document
