"""Lambda entry point of the convergence pass (EventBridge schedule, every ``reconcileMinutes``).

One pass over every live stage (convergence.py). A pass that cannot list what is live (IVS or DynamoDB
down) counts ``ReconcileFailed`` and ends: the schedule runs the next one. It never retries itself, so
a long outage costs one cheap failed listing per period and nothing piles up.
"""

from stagepilot.handlers import heap

heap.pause()  # before the imports below (heap.py says why)

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from stagepilot.automations import convergence_order
from stagepilot.convergence import run_pass
from stagepilot.handlers.wiring import services_for

logger = Logger()
metrics = Metrics()
automations = convergence_order()

heap.settle()


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    services, _ = services_for(logger, metrics)
    report = run_pass(services, automations)
    metrics.add_metric(name="ReconcilePasses", unit=MetricUnit.Count, value=1)  # a pass ran (never empty EMF)
    summary = {
        "stagesListed": report.stages_listed,
        "live": report.live,
        "examined": report.examined,
        "healed": len(report.healed),
        "deferred": len(report.deferred),
        "errors": len(report.errors),
    }
    logger.info("convergence pass done", extra=summary)
    return summary
