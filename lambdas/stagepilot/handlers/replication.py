"""Lambda entry point of the replication automation (queue: IVS Participant Published, replication events)."""

from stagepilot.handlers import heap

heap.pause()  # before the imports below (heap.py says why)

from typing import Any

from aws_lambda_powertools import Logger, Metrics

from stagepilot.automations.replication import ReplicationAutomation
from stagepilot.handlers.wiring import run_batch

logger = Logger()
metrics = Metrics()
automation = ReplicationAutomation()

heap.settle()


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return run_batch(event, context, automation=automation, logger=logger, metrics=metrics)
