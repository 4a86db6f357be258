"""What the three Lambda entry points share: building the services once per container, and running an
SQS batch through the pipeline with per-record failure reporting (``ReportBatchItemFailures``).

The batch loop is written here rather than taken from Powertools' batch utility: that utility imports
asyncio and its data classes, ~30 ms of every cold start (docs/performance.md), for a loop of ten lines.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit

from stagepilot.adapters.clients import client
from stagepilot.adapters.ivs import FUNCTION_CLIENT_CONFIG, IvsStage, Pacer
from stagepilot.adapters.table import Table
from stagepilot.config import Settings
from stagepilot.pipeline import Automation, Redelivery, Services, handle_record
from stagepilot.policy import use_service_model

ERROR_ATTRIBUTE = "stagepilot-error"  # message attribute on events parked in a DLQ: why they are there


class PowertoolsMetricSink:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def count(self, name: str, value: float = 1) -> None:
        if not value:  # a metric is billed for every hour it is published in: a zero is not published
            return
        self._metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


class SqsRedelivery:
    """Parks malformed events in the function's DLQ; shortens a failed record's invisibility to its back-off."""

    def __init__(self, dlq_url: str | None) -> None:
        self._dlq_url = dlq_url

    @property
    def _sqs(self) -> Any:  # created on first use: most invocations never need it
        return _sqs_client()

    def park(self, record: Mapping[str, Any], reason: str) -> None:
        if not self._dlq_url:
            raise RuntimeError("no dead-letter queue configured for malformed events")
        body = record.get("body", "")
        self._sqs.send_message(
            QueueUrl=self._dlq_url,
            MessageBody=body if isinstance(body, str) and body else json.dumps(body) or "(empty)",
            MessageAttributes={ERROR_ATTRIBUTE: {"DataType": "String", "StringValue": reason[:1000]}},
        )

    def retry_after(self, record: Mapping[str, Any], seconds: float) -> None:
        queue_url = queue_url_from_arn(str(record.get("eventSourceARN", "")), self._sqs.meta.endpoint_url)
        if not queue_url or not record.get("receiptHandle"):
            return
        try:
            self._sqs.change_message_visibility(
                QueueUrl=queue_url, ReceiptHandle=record["receiptHandle"], VisibilityTimeout=int(seconds)
            )
        except Exception:  # the queue's own visibility timeout still brings the record back
            logging.getLogger(__name__).warning("could not shorten the retry delay", exc_info=True)


def queue_url_from_arn(arn: str, endpoint_url: str) -> str | None:
    parts = arn.split(":")
    if len(parts) != 6 or parts[2] != "sqs":
        return None
    return f"{endpoint_url.rstrip('/')}/{parts[4]}/{parts[5]}"


@cache
def _sqs_client() -> Any:
    return client("sqs")


@cache
def services_for(logger: Logger, metrics: Metrics) -> tuple[Services, SqsRedelivery]:
    """Build the container's clients and stores once (first invocation), never at import time."""
    copy_config_to_registered_loggers(source_logger=logger, include={"stagepilot"})
    settings = Settings.from_env()
    ivs_client = client("ivs-realtime", config=FUNCTION_CLIENT_CONFIG)
    use_service_model(ivs_client.meta.service_model)  # policies validate against the model the client loaded
    services = Services(
        settings=settings,
        table=Table(client("dynamodb"), settings.table_name),
        ivs=IvsStage(ivs_client, pacer=budget_pacer(settings.ivs_caller)),
        metrics=PowertoolsMetricSink(metrics),
    )
    return services, SqsRedelivery(settings.dlq_url)


def pass_services(logger: Logger, metrics: Metrics) -> Services:
    """The convergence function's services: the container's (built once), and whether each automation's
    queue holds events (``adapters/queues.py``: what tells a late event from a lost one in a heal)."""
    from stagepilot.adapters.queues import QueueDepths, queue_urls_from_env

    services, _ = services_for(logger, metrics)
    if not isinstance(services.events_queued, QueueDepths):
        services.events_queued = QueueDepths(queue_urls_from_env(os.environ), _sqs_client)
    return services


def budget_pacer(caller: str | None) -> Pacer:
    """Pace each IVS operation at this container's share of it (``stagepilot.budget``): ``Pacer.for_caller``
    on the wall clock."""
    return Pacer.for_caller(caller)


def set_deadline(services: Services, context: Any) -> None:
    """An invocation starts: its deadline for the IVS adapter (a throttled call is sent again in-process
    only while the invocation has time for it; Lambda's context always has it), and the pacer's quiet
    window (``Pacer.invocation_started``: another environment may have just sent from this slot)."""
    services.ivs.invocation_started()
    remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
    services.ivs.time_left = (lambda: float(remaining_ms()) / 1000) if callable(remaining_ms) else None


def run_batch(
    event: dict[str, Any], context: Any, *, automation: Automation, logger: Logger, metrics: Metrics
) -> dict[str, Any]:
    """Each record on its own: a failure is reported for that record only, so the queue redelivers just it
    (and, after its last receive, moves it to the DLQ). The others are done and deleted.

    Everything done per record is inside the guard: a poison record (a body nested deep enough to raise
    ``RecursionError``, a record that is not an object) fails itself, never the batch. What is outside is
    per container (the settings, the clients): when that fails, every record would fail the same way.
    """
    services, redelivery = services_for(logger, metrics)
    return handle_batch(event, context, automation=automation, services=services, redelivery=redelivery, logger=logger)


def handle_batch(
    event: dict[str, Any],
    context: Any,
    *,
    automation: Automation,
    services: Services,
    redelivery: Redelivery,
    logger: Logger,
) -> dict[str, Any]:
    """``run_batch`` on a container's services (built once; ``benchmarks/burst.py`` passes its own, on a
    virtual clock): the invocation's deadline, then each record on its own, the failed ones reported."""
    set_deadline(services, context)
    failures = []
    for record in event.get("Records", []):
        try:
            logger.set_correlation_id(_event_id(record.get("body")))
            handle_record(record, automation, services, redelivery)
        except Exception:  # handle_record logged why; the record goes back to the queue
            failures.append({"itemIdentifier": _message_id(record)})
    logger.set_correlation_id(None)
    return {"batchItemFailures": failures}


def _event_id(body: object) -> str | None:
    if not isinstance(body, str):
        return None
    try:
        value = json.loads(body).get("id")
    except (ValueError, AttributeError, RecursionError):
        return None
    return value if isinstance(value, str) else None


def _message_id(record: object) -> str:
    value = record.get("messageId") if isinstance(record, Mapping) else None
    return value if isinstance(value, str) else ""
