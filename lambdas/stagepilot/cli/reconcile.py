"""``stagepilot reconcile [STAGE_ARN | --all] [--dry-run]``: run a convergence pass now.

The answer to "is everything as the policies say?": the same pass the scheduled function runs
(convergence.py), over every live stage or one, printing the drift it found and what it did. It is run
by the deployed convergence function itself (cli/converge.py): the operator asks, the function acts with
its own role, and the operator's credentials need ``lambda:InvokeFunction`` on it, no IVS write. With
``--dry-run`` it is still that pass, run here on what-if services (operator/whatif.py) that read the real
table and IVS and hold back every write and IVS call: it prints what the pass would do and the IVS calls
it would make, and changes nothing (IVS and table reads only: a viewer may run it).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from stagepilot.cli.output import ProgressLine
from stagepilot.cli.policies import checked_arn
from stagepilot.cli.resources import resources

EVERY_STAGE: Final = 1_000_000  # a dry run's participant listings: every live stage (IVS: 1,000 stages a region)

if TYPE_CHECKING:
    from stagepilot.cli.output import Output
    from stagepilot.convergence import PassReport
    from stagepilot.operator.whatif import IvsCall
    from stagepilot.pipeline import Services


def register(commands: Any, common: argparse.ArgumentParser, aws: argparse.ArgumentParser) -> None:
    command = commands.add_parser(
        "reconcile",
        parents=[common, aws],
        help="run a convergence pass now: the drift found and what was (or would be) done",
        description="Compare every live stage (or one) with its policy using IVS's own listings, and do what is "
        "missing: a composition where someone publishes and none runs, a replica IVS does not list, a banned "
        "or blocked publisher still connected, and the recording settings of live and idle stages (pending "
        "while IVS records someone on the stage: shown, applied by a later pass). The same pass the stack runs "
        "every reconcileMinutes, run by the stack's convergence function (the command invokes it: "
        "lambda:InvokeFunction, no IVS write with your credentials); every healed action is audited as 'healed'. "
        "With --dry-run the same pass reads the real table and IVS but holds back every write and IVS call: it "
        "prints what it would do and the calls it would make, and nothing is done or recorded; it examines "
        "every live stage (not a pass's share), with a progress line on a terminal, and takes the time its "
        "reads need at the CLI's pace.",
    )
    target = command.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "stage_arn", metavar="STAGE_ARN", nargs="?", help="one stage (an idle one: its recording settings only)"
    )
    target.add_argument("--all", action="store_true", help="every live stage")
    command.add_argument(
        "--dry-run", action="store_true", help="report the drift and what would be done; act on nothing"
    )
    command.set_defaults(handler=cmd_reconcile)


def cmd_reconcile(args: argparse.Namespace, out: Output) -> int:
    from stagepilot.cli.converge import invoke_convergence
    from stagepilot.cli.services import cli_services
    from stagepilot.operator.whatif import what_if

    only = checked_arn(args.stage_arn) if args.stage_arn else None
    res = resources(args)
    calls: Sequence[IvsCall] | None = None  # None: the pass acted; else the calls it held back
    if args.dry_run:
        with what_if(cli_services(res)) as whatif:
            report = dry_run_pass(whatif.services, only, out)
            calls = whatif.calls
    else:
        report = invoke_convergence(res, only, out)
    if out.as_json:
        out.json(_as_json(report, would_call=calls))
    else:
        _print(out, report, only=only, would_call=calls)
    return 1 if report.errors else 0


def dry_run_pass(services: Services, only: str | None, out: Output) -> PassReport:
    """The pass on what-if services, over every live stage: unlike the deployed function it has no timeout
    and no cursor to go on from next time (its writes are held back), so it examines every stage rather
    than the pass's ``PARTICIPANT_LISTINGS_PER_PASS``, at the CLI's pace (``budget.operator_shares``), with
    a progress line on a terminal: it takes the time its reads need (docs/performance.md, section 9)."""
    from stagepilot.automations import convergence_order
    from stagepilot.convergence import run_pass

    line = ProgressLine(out, "examining live stages")
    try:
        return run_pass(
            services,
            convergence_order(),
            only_stage=only,
            participant_listings=EVERY_STAGE,
            progress=lambda done, of: line.update(f"{done} of {of}"),
        )
    finally:
        line.done()


def _as_json(report: PassReport, *, would_call: Sequence[IvsCall] | None) -> dict[str, Any]:
    from stagepilot.convergence import PENDING

    return {
        "dryRun": would_call is not None,
        "stagesListed": report.stages_listed,
        "live": report.live,
        "examined": report.examined,
        "drift": [
            {
                "stageArn": arn,
                "automation": o.automation,
                "action": o.action,
                "done": o.acted and would_call is None,
                "pending": o.action == PENDING,
                "reason": o.reason,
                "sessionId": o.details.get("session_id"),
                "participantId": o.details.get("participant_id"),
                **({"fields": o.details["fields"]} if "fields" in o.details else {}),
                **({"since": o.details["since"]} if o.details.get("since") else {}),
            }
            for arn, o in report.drift
        ],
        "errors": [{"stageArn": arn, "error": error} for arn, error in report.errors],
        "deferred": report.deferred,
        **({"wouldCall": [call.to_json() for call in would_call]} if would_call is not None else {}),
    }


def _print(out: Output, report: PassReport, *, only: str | None, would_call: Sequence[IvsCall] | None) -> None:
    from stagepilot.convergence import PENDING
    from stagepilot.decisions.limits import GUARDED

    scope = only or "every live stage"
    if only and not report.live:
        settings_only = ": its recording settings only" if report.drift else ": nothing to converge"
        out.line(f"{only} is not live (no active session){settings_only}")
    else:
        out.line(
            f"{report.live} live stage(s) of {report.stages_listed}; {report.examined} with a policy or a ban to check"
        )
    for arn, outcome in report.drift:
        verb = "would" if would_call is not None else ("healed" if outcome.acted else "drift")
        if outcome.action == PENDING:  # IVS cannot take it yet: not done, and not an error
            verb = "pending"
        elif outcome.action == GUARDED and outcome.acted and would_call is None:  # a limit's stop (docs/policy.md)
            verb = "guard"
        out.line(f"{verb:<6} {arn}  {outcome.automation}: {outcome.reason}")
    for call in would_call or ():
        params = ", ".join(f"{k}={v}" for k, v in call.params.items() if isinstance(v, str) and k != "idempotencyToken")
        out.line(f"would call {call.operation} ({params})")
    for arn, error in report.errors:
        out.line(f"error  {arn}: {error}")
    if report.deferred:
        out.line(
            f"{len(report.deferred)} live stage(s) left to the next pass (this pass's read budget is spent); "
            "run it again to go on"
        )
    if not report.drift and not report.errors and not report.deferred and report.live:
        out.line(f"no drift: {scope} is as its policy says")
