"""What an operator asks the deployed convergence function, and what it answers (docs/cli.md, "Converging
through the function").

Operators never call an IVS write with their own credentials except a manual kick: ``stagepilot
reconcile``, ``policy put|rollback`` and ``resume`` invoke the stack's convergence function
(``ConvergenceFunctionName``) synchronously and print the report it returns. The function acts with its
own role, through the same pass, decisions, claims and pacing as its scheduled runs.

The payload (``lambda:InvokeFunction``, ``RequestResponse``)::

    {"stagepilot": "converge", "stageArn": "arn:aws:ivs:<region>:<account>:stage/<id>"}   one stage
    {"stagepilot": "converge", "all": true}                                                every live stage

The answer is the pass's report::

    {"stagesListed": N, "live": N, "examined": N, "outOfTime": false,
     "drift": [{"stageArn", "automation", "action", "acted", "reason", "healReason", "details"}],
     "errors": [{"stageArn", "error"}], "deferred": ["<stage ARN>", ...]}

or ``{"refused": "<why>"}`` for a request the function does not take (not a stage ARN of the stack's
account and region, or outside ``stageArnPrefixes``). Anything else the function receives is its schedule.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from stagepilot.config import Settings
from stagepilot.events import STAGE_ARN
from stagepilot.pipeline import Outcome

if TYPE_CHECKING:
    from stagepilot.convergence import Converging, ConvergingFleet, ParticipantCache, PassReport
    from stagepilot.pipeline import Services

REQUEST_KEY: Final = "stagepilot"
CONVERGE: Final = "converge"


class RequestRefused(ValueError):
    """A request the convergence function does not take; the message says why (one line)."""


@dataclass(frozen=True)
class ConvergeRequest:
    stage_arn: str | None  # None: every live stage

    def payload(self) -> dict[str, Any]:
        if self.stage_arn is None:
            return {REQUEST_KEY: CONVERGE, "all": True}
        return {REQUEST_KEY: CONVERGE, "stageArn": self.stage_arn}


def parse_request(event: object, settings: Settings) -> ConvergeRequest | None:
    """The operator's request in ``event``; None when it is not one (the schedule's event). Raises
    ``RequestRefused`` for a request the function must not act on."""
    if not isinstance(event, Mapping) or REQUEST_KEY not in event:
        return None
    if event[REQUEST_KEY] != CONVERGE:
        raise RequestRefused(f"{REQUEST_KEY}: {str(event[REQUEST_KEY])[:40]!r} is not {CONVERGE!r}")
    unknown = sorted(set(event) - {REQUEST_KEY, "stageArn", "all"})
    if unknown:
        raise RequestRefused(f"unknown field(s) {', '.join(unknown)[:120]}")
    if event.get("all") is True and "stageArn" not in event:
        return ConvergeRequest(None)
    arn = event.get("stageArn")
    if not isinstance(arn, str) or not STAGE_ARN.fullmatch(arn):
        raise RequestRefused('stageArn: not a stage ARN (or give "all": true)')
    _, _, _, region, account, _ = arn.split(":", 5)
    if settings.account is not None and account != settings.account:
        raise RequestRefused(f"stageArn: account {account} is not this stack's")
    if settings.region is not None and region != settings.region:
        raise RequestRefused(f"stageArn: region {region} is not this stack's ({settings.region})")
    if not settings.covers(arn):
        raise RequestRefused("stageArn: outside this stack's stageArnPrefixes")
    return ConvergeRequest(arn)


def answer(
    event: object,
    services: Services,
    automations: Iterable[Converging | ConvergingFleet],
    *,
    remaining_ms: Callable[[], float] | None = None,
    participants: ParticipantCache | None = None,
) -> dict[str, Any] | None:
    """The function's answer to an operator's request: the report of the pass it ran, or
    ``{"refused": why}``. None: ``event`` is not a request (the schedule's: run the scheduled pass)."""
    from stagepilot.convergence import run_pass

    try:
        request = parse_request(event, services.settings)
    except RequestRefused as exc:
        return {"refused": str(exc)}
    if request is None:
        return None
    # An operator asks right after changing the stage (policy put, resume): the container's cached policies
    # may be older than that change, so a request reads them afresh.
    fresh = copy.copy(services)
    fresh.effective_policies = services.new_policy_cache()
    report = run_pass(
        fresh, automations, only_stage=request.stage_arn, remaining_ms=remaining_ms, participants=participants
    )
    return report_json(report)


def report_json(report: PassReport) -> dict[str, Any]:
    """The pass's report as the function answers it (plain JSON)."""
    return {
        "stagesListed": report.stages_listed,
        "live": report.live,
        "examined": report.examined,
        "outOfTime": report.out_of_time,
        "drift": [
            {
                "stageArn": arn,
                "automation": o.automation,
                "action": o.action,
                "acted": o.acted,
                "reason": o.reason,
                "healReason": o.heal_reason,
                "details": json.loads(json.dumps(dict(o.details), default=str)),
            }
            for arn, o in report.drift
        ],
        "errors": [{"stageArn": arn, "error": error} for arn, error in report.errors],
        "deferred": list(report.deferred),
    }


def report_from_json(data: Mapping[str, Any]) -> PassReport:
    """The function's answer back into a report (the CLI prints it as it prints a pass of its own)."""
    from stagepilot.convergence import PassReport

    report = PassReport(
        stages_listed=int(data.get("stagesListed", 0)),
        live=int(data.get("live", 0)),
        examined=int(data.get("examined", 0)),
        out_of_time=bool(data.get("outOfTime", False)),
    )
    for entry in data.get("drift", []):
        outcome = Outcome(
            automation=str(entry["automation"]),
            action=str(entry["action"]),
            reason=str(entry["reason"]),
            acted=bool(entry.get("acted")),
            details=dict(entry.get("details") or {}),
            heal_reason=entry.get("healReason"),
        )
        report.outcomes.append((str(entry["stageArn"]), outcome))
    report.errors = [(str(e["stageArn"]), str(e["error"])) for e in data.get("errors", [])]
    report.deferred = [str(arn) for arn in data.get("deferred", [])]
    return report
