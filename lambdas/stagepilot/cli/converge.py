"""Converge through the deployed convergence function: ``reconcile``, and at once after an operator changed
what a stage should be (``policy put|rollback``, ``resume``).

Operators never call an IVS write with their own credentials except a manual kick (docs/cli.md,
"Converging through the function"): these commands invoke the stack's convergence function
(``ConvergenceFunctionName``, ``lambda:InvokeFunction``) synchronously with a request
(convergence_request.py), and print the report of the pass it ran with its own role. The scheduled pass
would get there within ``reconcileMinutes``; an operator who just resumed a stage or stored its policy
wants the show right now. Converging never fails the command that changed the stage: the change is
stored already, and if the function cannot be reached the scheduled pass converges the stage later.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import TYPE_CHECKING, Any, Final

from stagepilot.cli.errors import CliError
from stagepilot.policy import DEFAULT_STAGE

if TYPE_CHECKING:
    from stagepilot.cli.output import Output
    from stagepilot.cli.resources import Resources
    from stagepilot.convergence import PassReport

LATER = "the convergence pass does it within reconcileMinutes"
# The function's timeout is 60 s (infra/pipeline.py FUNCTION_TIMEOUT): the invoke waits that long and more.
INVOKE_READ_TIMEOUT: Final = 75.0
# Reserved concurrency 1: while the scheduled pass runs (at most its 60 s timeout), an invoke is throttled.
BUSY_WAIT_SECONDS: Final = 90.0
BUSY_RETRY_SECONDS: Final = 3.0


class ConvergenceUnavailable(CliError):
    """The function could not run the request (not deployed, refused, busy for too long, failed)."""


def add_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-converge",
        action="store_true",
        help="do not converge the live stage now (the scheduled convergence pass does it within reconcileMinutes)",
    )


def invoke_convergence(res: Resources, stage_arn: str | None, out: Output | None = None) -> PassReport:
    """Ask the stack's convergence function to converge ``stage_arn`` (None: every live stage) and return the
    report of the pass it ran. Raises ``ConvergenceUnavailable`` (one line) when it could not."""
    from botocore.config import Config
    from botocore.exceptions import ClientError

    from stagepilot.cli.resources import client
    from stagepilot.convergence_request import ConvergeRequest, report_from_json
    from stagepilot.outputs import OUTPUT_CONVERGENCE_FUNCTION_NAME

    name = res.output(OUTPUT_CONVERGENCE_FUNCTION_NAME)
    # One attempt per invoke: a read timeout must not run the pass twice (it would be harmless, claims make
    # it so, but it doubles the IVS reads); throttling is waited out below.
    lambda_client = client("lambda", config=Config(read_timeout=INVOKE_READ_TIMEOUT, retries={"total_max_attempts": 1}))
    payload = json.dumps(ConvergeRequest(stage_arn).payload()).encode()
    deadline = time.monotonic() + BUSY_WAIT_SECONDS
    said = False
    while True:
        try:
            response = lambda_client.invoke(FunctionName=name, InvocationType="RequestResponse", Payload=payload)
            break
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "TooManyRequestsException" and time.monotonic() < deadline:
                if out is not None and not said:
                    out.warn("the convergence function is busy (a scheduled pass is running); waiting for it")
                    said = True
                time.sleep(BUSY_RETRY_SECONDS)
                continue
            if code == "TooManyRequestsException":
                raise ConvergenceUnavailable(f"the convergence function {name} stayed busy") from exc
            if code == "ResourceNotFoundException":
                raise ConvergenceUnavailable(f"the convergence function {name} is not deployed") from exc
            raise
    answer = json.loads(response["Payload"].read() or b"null")
    if response.get("FunctionError"):
        error = answer.get("errorMessage") if isinstance(answer, dict) else None
        raise ConvergenceUnavailable(f"the convergence function {name} failed: {error or 'no message'}")
    if not isinstance(answer, dict):
        raise ConvergenceUnavailable(f"the convergence function {name} answered no report")
    if "refused" in answer:
        raise ConvergenceUnavailable(f"the convergence function {name} refused the request: {answer['refused']}")
    return report_from_json(answer)


def converge_now(args: argparse.Namespace, res: Resources, out: Output, stage_arn: str) -> dict[str, Any] | None:
    """Have the function converge ``stage_arn`` now, print what it did, and return that as JSON (None: not run)."""
    from botocore.exceptions import BotoCoreError, ClientError

    def say(text: str) -> None:
        if not out.as_json:  # the caller's JSON document carries the same
            out.line(text)

    if getattr(args, "no_converge", False):
        return None
    if stage_arn == DEFAULT_STAGE:
        say(f"live stages that follow '{DEFAULT_STAGE}': {LATER}")
        return {"ran": False, "reason": f"'{DEFAULT_STAGE}' covers many stages: {LATER}"}
    try:
        report = invoke_convergence(res, stage_arn, out)
    except (CliError, ClientError, BotoCoreError) as exc:
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
