"""``--dry-run`` of the operator's switches (``pause``, ``resume``, ``ban add``): what would change, and
what the convergence pass would then do, with nothing changed.

The change is made on what-if services (operator/whatif.py: the real table and IVS read through, every
write held back in a private shadow, every IVS write recorded and not sent), and the convergence pass
runs on them as ``stagepilot reconcile --dry-run`` runs it: the same code, on the state as it would be.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from stagepilot.policy import DEFAULT_STAGE

if TYPE_CHECKING:
    from stagepilot.adapters.pauses import PauseSwitch
    from stagepilot.cli.output import Output
    from stagepilot.cli.resources import Resources
    from stagepilot.convergence import PassReport
    from stagepilot.operator.whatif import IvsCall
    from stagepilot.pipeline import Services

NOTHING_CHANGED = "dry run: nothing changed"


def preview_pause(
    args: argparse.Namespace,
    res: Resources,
    out: Output,
    arns: Sequence[str],
    *,
    paused: bool,
    lifted: dict[str, PauseSwitch],
) -> int:
    """``pause|resume --dry-run``: each switch that would be set or lifted, then the pass's answer."""
    from stagepilot.adapters.table import PauseSwitches

    existing = PauseSwitches(res.table).list()
    changes: list[dict[str, Any]] = []
    for arn in arns:
        if paused:
            would = arn not in existing
            text = f"would pause {arn}" if would else f"{arn} is already paused"
        else:
            switch = lifted.get(arn) or existing.get(arn)
            would = switch is not None
            text = (
                f"would resume {arn} (paused at {switch.paused_at} by {switch.paused_by or '?'})"
                if switch is not None
                else f"{arn} is not paused by pause"
            )
        changes.append({"stageArn": arn, "wouldChange": would, "message": text})
    if not out.as_json:
        for change in changes:
            out.line(change["message"])
        if not changes:
            out.line("nothing is paused" + (" by a switch set since then" if getattr(args, "since", None) else ""))
    convergence: dict[str, Any]
    to_change = [c["stageArn"] for c in changes if c["wouldChange"]]
    if paused or not to_change:
        reason = (
            "nothing on a paused stage: no automation acts on it while it is paused (bans included)"
            if paused
            else "nothing changes, so nothing new for it to do"
        )
        convergence = {"ran": False, "reason": reason}
        if not out.as_json:
            out.line(f"the convergence pass would do {reason}")
    else:
        one = to_change[0] if len(to_change) == 1 and to_change[0] != DEFAULT_STAGE else None

        def lift(services: Services) -> None:
            switches = PauseSwitches(services.table)
            for arn in to_change:
                switches.resume(arn)

        convergence = converge_after(res, out, lift, only=one)
    if out.as_json:
        out.json({"dryRun": True, "changes": changes, "convergence": convergence})
    else:
        out.line(NOTHING_CHANGED)
    return 0


def converge_after(
    res: Resources, out: Output, change: Callable[[Services], None], *, only: str | None
) -> dict[str, Any]:
    """Make ``change`` on what-if services and run the convergence pass over ``only`` (None: every live
    stage); print what it would do and return it as JSON. Nothing is written, nothing reaches IVS."""
    from stagepilot.cli.reconcile import dry_run_pass
    from stagepilot.cli.services import cli_services
    from stagepilot.operator.whatif import what_if

    with what_if(cli_services(res)) as whatif:
        change(whatif.services)
        report = dry_run_pass(whatif.services, only, out)
        calls = list(whatif.calls)
    found = _as_json(report, calls)
    if not out.as_json:
        _print(out, report, calls, only=only)
    return found


def _as_json(report: PassReport, calls: Sequence[IvsCall]) -> dict[str, Any]:
    return {
        "ran": True,
        "live": report.live,
        "would": [
            {"stageArn": arn, "automation": o.automation, "action": o.action, "reason": o.reason}
            for arn, o in report.drift
        ],
        "wouldCall": [call.to_json() for call in calls],
        "errors": [{"stageArn": arn, "error": error} for arn, error in report.errors],
    }


def _print(out: Output, report: PassReport, calls: Sequence[IvsCall], *, only: str | None) -> None:
    scope = only or f"the {report.live} live stage(s)"
    if only and not report.live:
        out.line(f"the convergence pass would then: nothing now ({only} is not live)")
    elif not report.drift and not report.errors:
        out.line(f"the convergence pass would then: nothing ({scope} already as the policies say)")
    for arn, outcome in report.drift:
        out.line(f"the convergence pass would then: {arn}  {outcome.automation}: {outcome.reason}")
    for call in calls:
        params = ", ".join(f"{k}={v}" for k, v in call.params.items() if isinstance(v, str) and k != "idempotencyToken")
        out.line(f"  would call {call.operation} ({params})")
    for arn, error in report.errors:
        out.warn(f"the convergence pass could not examine {arn}: {error}")


def preview_ban(args: argparse.Namespace, res: Resources, out: Output, stage_arn: str | None) -> int:
    """``ban add --dry-run``: the ban that would be stored, the participants it would disconnect now (the
    door's token records; the ban's one stage, or every live stage with --sweep), and what is left to the
    convergence pass; on what-if services, so nothing is stored, disconnected or audited."""
    from stagepilot.adapters.table import iso
    from stagepilot.cli.bans import disconnect_now, handed_text, store_ban
    from stagepilot.cli.services import cli_services
    from stagepilot.errors import ConflictError
    from stagepilot.operator.whatif import what_if

    with what_if(cli_services(res)) as whatif:
        try:
            ban, replaced = store_ban(whatif.services.table, args, stage_arn)
        except ConflictError as exc:
            if out.as_json:
                out.json({"dryRun": True, "wouldStore": False, "refused": str(exc)})
            else:
                out.line(f"would not ban: {exc}")
                out.line(NOTHING_CHANGED)
            return 0
        disconnected, checked, handed = disconnect_now(args, res, whatif.services, ban, out)
        calls = list(whatif.calls)
    until = f" until {iso(ban.expires_at)}" if ban.expires_at else ""
    if out.as_json:
        out.json(
            {
                "dryRun": True,
                "wouldStore": True,
                "userId": ban.user_id,
                "stageArn": ban.stage_arn,
                "scope": ban.scope,
                "replaces": replaced is not None,
                "liveStagesChecked": checked,
                "wouldDisconnect": disconnected,
                "wouldCall": [call.to_json() for call in calls],
                **({"sweep": handed} if handed is not None else {}),
            }
        )
        return 0
    out.line(f"would ban {ban.banned()}{until}" + (f" (replacing a ban {replaced.until()})" if replaced else ""))
    for item in disconnected:
        out.line(f"  would disconnect {item['participantId']} on {item['stageArn']}")
    for call in calls:
        params = ", ".join(f"{k}={v}" for k, v in call.params.items() if isinstance(v, str))
        out.line(f"  would call {call.operation} ({params})")
    if not args.no_disconnect and not disconnected:
        where = f"on any of the {checked} live stage(s)" if checked else "with a token stagepilot issued"
        out.line(f"  not connected {where}: nobody to disconnect now")
    if handed is not None:
        out.line(f"  {handed_text(handed)}")
    out.line(NOTHING_CHANGED)
    return 0
