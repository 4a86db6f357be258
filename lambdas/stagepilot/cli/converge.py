"""Converge one stage at once after an operator changed what it should be (``policy put``, ``resume``).

The scheduled pass would get there within ``reconcileMinutes``; an operator who just resumed a stage or
stored its policy wants the show right now. This runs the same pass (``convergence.run_pass``) for that
one stage, with the caller's credentials. It never fails the command that called it: the change is
stored already, and if IVS cannot be reached the scheduled pass converges the stage later.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from stagepilot.policy import DEFAULT_STAGE

if TYPE_CHECKING:
    from stagepilot.cli.output import Output
    from stagepilot.cli.resources import Resources

LATER = "the convergence pass does it within reconcileMinutes"


def add_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-converge",
        action="store_true",
        help="do not converge the live stage now (the scheduled convergence pass does it within reconcileMinutes)",
    )


def converge_now(args: argparse.Namespace, res: Resources, out: Output, stage_arn: str) -> dict[str, Any] | None:
    """Run a pass over ``stage_arn`` now, print what it did, and return that as JSON (None: not run)."""
    from stagepilot.automations import convergence_order
    from stagepilot.cli.services import cli_services
    from stagepilot.convergence import run_pass
    from stagepilot.errors import ConfigurationError, RetryLater

    def say(text: str) -> None:
        if not out.as_json:  # the caller's JSON document carries the same
            out.line(text)

    if getattr(args, "no_converge", False):
        return None
    if stage_arn == DEFAULT_STAGE:
        say(f"live stages that follow '{DEFAULT_STAGE}': {LATER}")
        return {"ran": False, "reason": f"'{DEFAULT_STAGE}' covers many stages: {LATER}"}
    try:
        report = run_pass(cli_services(res), convergence_order(), only_stage=stage_arn)
    except (RetryLater, ConfigurationError) as exc:
        out.warn(f"could not converge {stage_arn} now ({exc}); {LATER}")
        return {"ran": False, "reason": str(exc)}
    if report.errors and not report.live:  # IVS's listing itself failed
        out.warn(f"could not converge {stage_arn} now ({report.errors[0][1]}); {LATER}")
        return {"ran": False, "reason": report.errors[0][1]}
    done = [
        {
            "automation": o.automation,
            "action": o.action,
            "reason": o.reason,
            "done": o.acted,
            **({"since": o.details["since"]} if o.details.get("since") else {}),
        }
        for _, o in report.drift
    ]
    for entry in done:  # the stage's recording settings are converged on an idle stage too
        verb = {"pending": "pending", "rejected": "refused"}.get(entry["action"], "converged now")
        say(f"{verb}: {entry['automation']}: {entry['reason']}")
    for _, error in report.errors:
        out.warn(f"could not converge {stage_arn} now ({error}); {LATER}")
    if not report.live:
        say(f"{stage_arn} is not live: its next session follows the policy from its first event")
        return {"ran": True, "live": False, "done": done, "errors": [e for _, e in report.errors]}
    if not done and not report.errors:
        say(f"{stage_arn} is live and already as its policy says")
    return {"ran": True, "live": True, "done": done, "errors": [e for _, e in report.errors]}
