"""Lambda entry point of the door (docs/door.md), behind a Function URL with ``AWS_IAM`` auth.

``POST`` JSON ``{"stageArn", "userId", "role"?, "attributes"?}`` →
``200 {"token", "participantId", "expirationTime", "capabilities"}``,
``403 {"refused": "banned" | "paused" | "no-tokens-policy" | "unknown-role", "reason"}``,
``400 {"error", "field"}`` naming the bad field; ``405`` for another method; ``503`` when DynamoDB, KMS or
IVS is unavailable now (the caller asks again), ``500`` for a deployment defect (logged).
The decision and everything around it is ``door/issuer.py``, the request and answer ``door/function_url.py``;
this module is wiring only.
"""

from stagepilot.handlers import heap

heap.pause()  # before the imports below (heap.py says why)

from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics

from stagepilot.door.function_url import answer_request
from stagepilot.door.wiring import Door, build_door
from stagepilot.handlers.wiring import PowertoolsMetricSink

logger = Logger()
metrics = Metrics()

heap.settle()


@cache
def door() -> Door:
    return build_door(PowertoolsMetricSink(metrics))


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return answer_request(door(), event, logger)
