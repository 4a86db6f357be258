"""Lambda entry point of the convergence pass (EventBridge schedule, every ``reconcileMinutes``).

One pass over every live stage (convergence.py). A pass that cannot list what is live (IVS or DynamoDB
down) counts ``ReconcileFailed`` and ends: the schedule runs the next one. It never retries itself, so
a long outage costs one cheap failed listing per period and nothing piles up. The pass takes its
deadline from the Lambda context (``get_remaining_time_in_millis``): it stops starting stages before the
timeout and the next pass begins with those it did not reach. GetParticipant's answers are kept by the
container across passes (``ParticipantCache``).

The same function answers operators: ``stagepilot reconcile``, ``policy put|rollback`` and ``resume``
invoke it synchronously with a request (convergence_request.py: the payload and the report it returns),
so that operators never hold the pass's IVS writes. A request runs the same pass (one stage, or every
live stage) and returns its report; a request it does not take is answered ``{"refused": why}``.
"""

from stagepilot.handlers import heap

heap.pause()  # before the imports below (heap.py says why)

import time
import warnings
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from stagepilot.automations import convergence_order
from stagepilot.convergence import ParticipantCache, run_pass
from stagepilot.convergence_request import answer
from stagepilot.handlers.wiring import pass_services, set_deadline

logger = Logger()
metrics = Metrics()
automations = convergence_order()
participants = ParticipantCache()  # per container, across passes
# A converged pass counts nothing, so its flush publishes nothing; Powertools warns about that every time.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)

heap.settle()


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    services = pass_services(logger, metrics)
    set_deadline(services, context)
    remaining_ms = getattr(context, "get_remaining_time_in_millis", None)  # Lambda's context always has it
    answered = answer(event, services, automations, remaining_ms=remaining_ms, participants=participants)
    if answered is not None:  # an operator's request (reconcile, policy put, resume): its report
        logger.info(
            "operator request answered",
            extra={"stage_arn": str(event.get("stageArn", "all"))[:200], "refused": answered.get("refused")},
        )
        metrics.add_metric(name="ReconcileRequests", unit=MetricUnit.Count, value=1)
        return answered
    # No metric says "a pass ran": the schedule runs one every minute, all day, and a custom metric
    # published every hour is billed the whole month (docs/performance.md, cost). What a pass found is
    # counted only when it found something (healed, failed, out of time), which is what the alarms watch.
    # the scheduled pass waits for the limits that fall due within its minute (convergence.act_at_deadlines)
    report = run_pass(services, automations, remaining_ms=remaining_ms, participants=participants, sleep=time.sleep)
    summary = {
        "stagesListed": report.stages_listed,
        "live": report.live,
        "examined": report.examined,
        "healed": len(report.healed),
        "deferred": len(report.deferred),
        "outOfTime": report.out_of_time,
        "errors": len(report.errors),
    }
    logger.info("convergence pass done", extra=summary)
    return summary
