"""``stagepilot pause|resume``: the per-stage kill switch."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from stagepilot.cli.confirm import confirm, yes_option
from stagepilot.cli.converge import add_option as add_converge_option
from stagepilot.cli.converge import converge_now
from stagepilot.cli.policies import checked_arn
from stagepilot.cli.resources import resources
from stagepilot.policy import DEFAULT_STAGE

if TYPE_CHECKING:
    from stagepilot.adapters.table import PauseSwitches, PolicyStore, Table
    from stagepilot.cli.output import Output


def register(commands: Any, common: argparse.ArgumentParser, aws: argparse.ArgumentParser) -> None:
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


def cmd_pause(args: argparse.Namespace, out: Output) -> int:
    return _set_paused(args, out, paused=True)


def cmd_resume(args: argparse.Namespace, out: Output) -> int:
    return _set_paused(args, out, paused=False)


def _set_paused(args: argparse.Namespace, out: Output, *, paused: bool) -> int:
    from stagepilot.adapters.table import PauseSwitches, PolicyStore
    from stagepilot.cli.changes import caller_arn

    given = None if args.all else checked_arn(args.stage_arn, allow_default=True)  # before any call
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
        arns = [str(given)]
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
