"""``stagepilot pause|resume``: the per-stage kill switch, and ``pause list``.

A switch for a stage IVS does not know (a typo, another region's or account's stage) would pause
nothing while the real stage runs on: ``pause`` refuses it (``--force`` pre-sets one for a stage not
created yet). ``resume --all`` names every switch it lifts, when and by whom each was set (``--since``
lifts only those set since then: the incident's, not the ones set before it). ``--dry-run`` says what
would change and what the convergence pass would then do, and changes nothing (cli/preview.py).
"""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from stagepilot.cli.confirm import confirm, yes_option
from stagepilot.cli.converge import add_option as add_converge_option
from stagepilot.cli.converge import converge_now
from stagepilot.cli.errors import BadInput, CliError
from stagepilot.cli.paging import page, paging_options, say_more
from stagepilot.cli.policies import checked_arn
from stagepilot.cli.resources import resources
from stagepilot.policy import DEFAULT_STAGE

if TYPE_CHECKING:
    from stagepilot.adapters.pauses import PauseSwitch
    from stagepilot.adapters.table import PauseSwitches, PolicyStore, Table
    from stagepilot.cli.output import Output

LIST: Final = "list"  # `stagepilot pause list`


def register(commands: Any, common: argparse.ArgumentParser, aws: argparse.ArgumentParser) -> None:
    from stagepilot.cli.audit import parse_since

    for name, paused in (("pause", True), ("resume", False)):
        parser = commands.add_parser(
            name,
            parents=[common, aws, yes_option(), *([paging_options()] if paused else [])],
            help="the per-stage kill switch (pause list: every paused stage)" if paused else "undo pause",
            description=(
                "Turn on the stage's kill switch: no automation acts on it (bans included), whatever its policy "
                "says. The switch is an item of its own, not an edit of the policy: the policy is left as it is. "
                "'default' pauses every stage without a policy of its own; --all pauses 'default' and every stage "
                "with a stored policy. A stage IVS does not know (a typo, another region's or account's) is "
                "refused: --force sets the switch anyway, for a stage not created yet. `pause list` shows every "
                "switch (who set it, when) and every policy that says paused: true. Audited with your identity."
                if paused
                else "Turn off the kill switch that pause turned on. A stage whose policy document itself says "
                "paused: true stays paused (change it with policy put). --all lifts every switch, and names each "
                "one (when and by whom it was set); --all --since WHEN lifts only the switches set since then, "
                "so stages paused before an incident stay paused. Audited. A live stage resumed on its own is "
                "converged to its policy at once (as `stagepilot reconcile STAGE_ARN` does), unless "
                "--no-converge; with 'default' or --all the convergence pass does it."
            ),
        )
        if paused:
            parser.add_argument(
                "--force", action="store_true", help="pause even a stage IVS does not know (one not created yet)"
            )
        else:
            add_converge_option(parser)
            parser.add_argument(
                "--since",
                type=parse_since,
                metavar="WHEN",
                help="with --all: lift only the switches set since then (2026-11-21T20:00:00Z, or 30m, 12h, 7d ago)",
            )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="say what would change and what the convergence pass would then do; change nothing",
        )
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument(
            "stage_arn",
            metavar="STAGE_ARN",
            nargs="?",
            help="a stage ARN, or 'default'" + (", or 'list' (every paused stage)" if paused else ""),
        )
        target.add_argument(
            "--all", action="store_true", help="'default' and every stage with a stored policy (resume: every switch)"
        )
        parser.set_defaults(handler=cmd_pause if paused else cmd_resume)


def cmd_pause(args: argparse.Namespace, out: Output) -> int:
    if args.stage_arn == LIST:
        return cmd_list(args, out)
    if args.max_items is not None or args.starting_token is not None:
        raise BadInput("--max-items and --starting-token go with pause list")
    return _set_paused(args, out, paused=True)


def cmd_resume(args: argparse.Namespace, out: Output) -> int:
    if args.since is not None and not args.all:
        raise BadInput("--since goes with --all (one stage: stagepilot resume STAGE_ARN)")
    return _set_paused(args, out, paused=False)


def cmd_list(args: argparse.Namespace, out: Output) -> int:
    """Every switch, and every stored policy whose own document says paused: true."""
    from stagepilot.adapters.table import PauseSwitches, PolicyStore

    if args.dry_run or getattr(args, "force", False):
        raise BadInput("pause list takes no --dry-run or --force")
    table = resources(args).table
    switches = sorted(PauseSwitches(table).list().values(), key=lambda s: (s.stage_arn != DEFAULT_STAGE, s.stage_arn))
    by_policy = sorted(
        (p for p in PolicyStore(table).list() if p.document.get("paused") is True), key=lambda p: p.stage_arn
    )
    rows: list[dict[str, Any]] = [
        {"stageArn": s.stage_arn, "pausedBy": "pause", "pausedAt": s.paused_at, "by": s.paused_by} for s in switches
    ]
    rows += [
        {"stageArn": p.stage_arn, "pausedBy": "policy", "version": p.version, "updatedAt": p.updated_at}
        for p in by_policy
    ]
    every = rows
    rows, more = page(every, _row_key, args)
    if out.as_json:
        out.json(rows)
    else:
        if not rows:
            out.line("nothing more is paused" if args.starting_token is not None else "nothing is paused")
        for row in rows:
            out.line(_listed(row))
        if args.starting_token is None and not any(r["stageArn"] == DEFAULT_STAGE for r in every):
            out.line(f"({DEFAULT_STAGE} is not paused: stages without a policy of their own are not paused by it)")
    say_more(out, more, "paused stages")
    return 0


def _row_key(row: dict[str, Any]) -> str:
    """Switches first, then policies; 'default' first in each, then by stage ARN."""
    kind = "0" if row["pausedBy"] == "pause" else "1"
    return kind + ("" if row["stageArn"] == DEFAULT_STAGE else row["stageArn"])


def _listed(row: dict[str, Any]) -> str:
    followers = "  (every stage without a policy of its own)" if row["stageArn"] == DEFAULT_STAGE else ""
    if row["pausedBy"] == "pause":
        return f"{row['stageArn']}  paused at {row['pausedAt']} by {row['by'] or '?'}{followers}"
    return f"{row['stageArn']}  its policy says paused: true (version {row['version']}, {row['updatedAt']}){followers}"


def _set_paused(args: argparse.Namespace, out: Output, *, paused: bool) -> int:
    from stagepilot.adapters.table import PauseSwitches, PolicyStore
    from stagepilot.cli.changes import caller_arn
    from stagepilot.cli.home import check_account

    given = None if args.all else checked_arn(args.stage_arn, allow_default=True)  # before any call
    if args.all and paused and not args.dry_run:
        confirm(args, "pause every stage")
    res = resources(args)
    table = res.table
    store, switches = PolicyStore(table), PauseSwitches(table)
    by = caller_arn()
    lifted: dict[str, PauseSwitch] = {}
    if args.all:
        if paused:
            stored = sorted(p.stage_arn for p in store.list() if p.stage_arn != DEFAULT_STAGE)
            arns = [DEFAULT_STAGE, *stored]
        else:
            lifted = _switches_to_lift(switches, since=args.since)
            arns = list(lifted)
            for arn, switch in lifted.items():  # said before asking: the operator sees what they lift
                out.progress(f"lifts: {arn} (paused at {switch.paused_at} by {switch.paused_by or '?'})")
        if not args.dry_run:
            if not paused:
                confirm(args, "resume every stage" if args.since is None else f"resume {len(arns)} stage(s)")
            out.progress(f"{'pausing' if paused else 'resuming'} {len(arns)} stages...")
    else:
        arns = [str(given)]
        if given != DEFAULT_STAGE:
            check_account(str(given), caller=by)
            if paused and not args.force:
                _require_known_stage(res, str(given))
    if args.dry_run:
        from stagepilot.cli.preview import preview_pause

        return preview_pause(args, res, out, arns, paused=paused, lifted=lifted)
    results = [_toggle(store, switches, table, arn, paused=paused, by=by, lifted=lifted.get(arn)) for arn in arns]
    if not out.as_json:
        for result in results:
            out.line(result["message"])
        if args.all and not results:
            out.line("nothing is paused" + (" by a switch set since then" if getattr(args, "since", None) else ""))
    if not paused and not args.all and results[0]["ok"] and not results[0]["paused"]:
        converged = converge_now(args, res, out, arns[0])
        if converged is not None:
            results[0]["converged"] = converged
    if out.as_json:
        out.json(results if args.all else results[0])
    return 0 if all(r["ok"] for r in results) else 1


def _switches_to_lift(switches: PauseSwitches, *, since: datetime | None) -> dict[str, PauseSwitch]:
    """The switches ``resume --all`` lifts: every one, or those set since ``since``; 'default' first."""
    from stagepilot.adapters.table import parse_iso

    found = sorted(switches.list().values(), key=lambda s: (s.stage_arn != DEFAULT_STAGE, s.stage_arn))
    if since is not None:
        found = [s for s in found if (parse_iso(s.paused_at) or since) >= since]
    return {s.stage_arn: s for s in found}


def _require_known_stage(res: Any, arn: str) -> None:
    """Refuse to pause a stage IVS does not know: the switch would pause nothing (one GetStage, a read)."""
    if res.ivs.get_stage(arn) is None:
        region = arn.split(":")[3]
        raise CliError(
            f"IVS has no stage {arn} in {region}: a typo? nothing paused (`stagepilot status` lists the live "
            "stages; --force pauses it anyway, for a stage not created yet)"
        )


def _toggle(
    store: PolicyStore,
    switches: PauseSwitches,
    table: Table,
    arn: str,
    *,
    paused: bool,
    by: str,
    lifted: PauseSwitch | None = None,
) -> dict[str, Any]:
    from stagepilot.adapters.table import AuditLog
    from stagepilot.cli.changes import change_entry

    def _entry(action: str, reason: str) -> Any:  # the switch and its audit entry: one transaction
        return AuditLog(table).put_with(change_entry(stage_arn=arn, action=action, by=by, reason=reason))

    result: dict[str, Any] = {"stageArn": arn, "paused": paused, "changed": False, "ok": True}
    if paused:
        changed = switches.pause(arn, by=by, audit=_entry("pause", f"paused {arn}"))
        result.update(changed=changed, message=f"paused {arn}" if changed else f"{arn} is already paused")
    else:
        was = f" (paused at {lifted.paused_at} by {lifted.paused_by or '?'})" if lifted is not None else ""
        changed = switches.resume(arn, audit=_entry("resume", f"resumed {arn}{was}"))
        result.update(changed=changed, message=f"resumed {arn}{was}" if changed else f"{arn} is not paused by pause")
        if lifted is not None:
            result.update(wasPausedAt=lifted.paused_at, wasPausedBy=lifted.paused_by)
        still = _still_paused(store, arn)
        if still:
            result.update(paused=True, ok=False)
            result["message"] += f"; {still}"
    return result


def _still_paused(store: PolicyStore, arn: str) -> str:
    """After its switch is lifted: what still pauses the stage ('default', its policy); '' when nothing."""
    found = store.lookup(arn)
    policy = found.own or (found.default if arn != DEFAULT_STAGE else None)
    if found.paused_by is not None:  # follows 'default', which is paused
        return f"it follows '{DEFAULT_STAGE}', which is paused (stagepilot resume {DEFAULT_STAGE})"
    if policy is not None and policy.document.get("paused") is True:
        return f"its policy ({'its own' if found.own else 'default'}) says paused: true: change that with policy put"
    return ""
