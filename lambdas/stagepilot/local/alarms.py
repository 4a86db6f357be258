"""The stack's CloudWatch alarms, for the sandbox (local/sandbox.py): the same names, metrics, thresholds,
periods and evaluation periods as infra/ (infra/pipeline.py, infra/convergence.py, infra/stack.py; the
synthesized template is checked against ``stack_alarms`` by tests/infra/test_sandbox_alarms.py), evaluated
on the sandbox's own metrics and queues every few seconds, with their states set in moto's CloudWatch so
``stagepilot status`` shows them as it shows a deployed stack's.

What each watches in the sandbox: a dead-letter queue's depth (visible + in flight) and the age of the
oldest message of a queue or dead-letter queue (moto's own queues, read in-process: a receive would count
toward the redrive policy), a function's errors (the convergence pass raising; an automation's record
failures are not function errors, as with ``ReportBatchItemFailures``), and the functions' custom metrics
(``stagepilot`` namespace, dimension ``service``) counted by the sandbox's functions.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from stagepilot.routing import AUTOMATIONS

# infra/names.py: alarm ids, construct ids and custom metric names
DLQ_DEPTH: Final = "DlqDepthAlarm"
DLQ_AGE: Final = "DlqAgeAlarm"
QUEUE_AGE: Final = "QueueAgeAlarm"
ERRORS: Final = "ErrorsAlarm"
MALFORMED: Final = "MalformedEventAlarm"
POLICY_INVALID: Final = "PolicyInvalidAlarm"
HEALED: Final = "HealedAlarm"
RECONCILE_FAILED: Final = "ReconcileFailedAlarm"
RECORDING_FAILED: Final = "RecordingFailedAlarm"
DESTINATION_FAILED: Final = "DestinationFailedAlarm"
COMPOSITION_BUDGET: Final = "CompositionBudgetAlarm"  # only with the compositionHoursPerDay context
CONVERGENCE: Final = "Convergence"
ALARM_NAME_MAX: Final = 255
EVALUATION_SECONDS: Final = 2.0  # how often the sandbox evaluates (CloudWatch: every period)


@dataclass(frozen=True)
class AlarmDefinition:
    """One alarm: ``watches`` is ``dlq-depth``, ``dlq-age``, ``queue-age`` (the queue of ``automation``),
    ``errors`` (the function of ``service``) or ``metric`` (``metric`` with dimension ``service``). In ALARM
    when the value is >= ``threshold`` in each of the last ``evaluation_periods`` periods."""

    name: str
    watches: str
    service: str
    threshold: float
    period_seconds: int
    evaluation_periods: int = 1
    metric: str | None = None


def stack_alarms(stack: str, *, composition_budget: bool = False) -> list[AlarmDefinition]:
    """Every alarm the stack deploys, named as it names them (infra/names.py ``account_scoped``);
    ``composition_budget``: the stack sets ``compositionHoursPerDay``."""
    alarms = []
    for automation in AUTOMATIONS:
        part = automation.capitalize()  # the pipeline's construct id (stagepilot.outputs.pipeline_id)
        alarms += [
            AlarmDefinition(_name(stack, part, DLQ_DEPTH), "dlq-depth", automation, 1, 300),
            AlarmDefinition(_name(stack, part, DLQ_AGE), "dlq-age", automation, 3 * 86400, 300),
            AlarmDefinition(_name(stack, part, QUEUE_AGE), "queue-age", automation, 900, 300),
            AlarmDefinition(_name(stack, part, ERRORS), "errors", automation, 1, 300),
            AlarmDefinition(_name(stack, part, MALFORMED), "metric", automation, 1, 300, metric="MalformedEvent"),
            AlarmDefinition(_name(stack, part, POLICY_INVALID), "metric", automation, 1, 300, metric="PolicyInvalid"),
        ]
    convergence = "convergence"
    alarms += [
        AlarmDefinition(_name(stack, CONVERGENCE, HEALED), "metric", convergence, 5, 900, metric="HealedEventLost"),
        AlarmDefinition(
            _name(stack, CONVERGENCE, RECONCILE_FAILED), "metric", convergence, 1, 60, 3, metric="ReconcileFailed"
        ),
        AlarmDefinition(_name(stack, CONVERGENCE, ERRORS), "errors", convergence, 1, 300),
        AlarmDefinition(_name(stack, RECORDING_FAILED), "metric", "composition", 1, 300, metric="RecordingFailed"),
        AlarmDefinition(_name(stack, DESTINATION_FAILED), "metric", "composition", 1, 60, metric="DestinationFailed"),
        AlarmDefinition(
            _name(stack, f"Pass{DESTINATION_FAILED}"), "metric", convergence, 1, 60, metric="DestinationFailed"
        ),
    ]
    if composition_budget:
        alarms.append(
            AlarmDefinition(
                _name(stack, COMPOSITION_BUDGET), "metric", convergence, 1, 60, metric="CompositionBudgetSpent"
            )
        )
    return alarms


def _name(stack: str, *parts: str) -> str:
    name = "-".join((stack, *parts))
    if len(name) > ALARM_NAME_MAX:  # infra/names.py cuts and hashes; the sandbox's stack name is short
        raise ValueError(f"stack name too long for the sandbox's alarm names: {stack!r}")
    return name


class WindowedMetrics:
    """A function's metric sink (``service``'s dimension) that keeps when each count happened."""

    def __init__(self, service: str, store: MetricStore) -> None:
        self.service = service
        self._store = store
        self.counts: dict[str, float] = {}

    def count(self, name: str, value: float = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + value
        self._store.add(self.service, name, value)


class MetricStore:
    """Every count of every function, with its time (``time.time``), for the alarms' periods."""

    def __init__(self) -> None:
        self._points: list[tuple[float, str, str, float]] = []
        self._lock = threading.Lock()

    def add(self, service: str, name: str, value: float) -> None:
        with self._lock:
            self._points.append((time.time(), service, name, value))

    def total(self, service: str, name: str, start: float, end: float) -> float:
        with self._lock:
            return sum(v for t, s, n, v in self._points if s == service and n == name and start <= t < end)


class AlarmEvaluator:
    """Sets each alarm's state in moto's CloudWatch from what it watches (module docstring)."""

    def __init__(
        self,
        alarms: list[AlarmDefinition],
        metrics: MetricStore,
        queues: Callable[[str], tuple[Any, Any]],
        cloudwatch: Any,
        topic_arn: str,
    ) -> None:
        self._alarms = alarms
        self._metrics = metrics
        self._queues = queues  # automation -> (moto's queue, moto's dead-letter queue)
        self._cloudwatch = cloudwatch
        self._states: dict[str, str] = {}
        for alarm in alarms:
            cloudwatch.put_metric_alarm(
                AlarmName=alarm.name,
                AlarmActions=[topic_arn],
                Namespace="StagePilot" if alarm.watches == "metric" else "AWS/SQS",
                MetricName=alarm.metric or alarm.watches,
                Dimensions=[{"Name": "service", "Value": alarm.service}],
                Statistic="Sum",
                Period=alarm.period_seconds,
                EvaluationPeriods=alarm.evaluation_periods,
                Threshold=alarm.threshold,
                ComparisonOperator="GreaterThanOrEqualToThreshold",
                TreatMissingData="notBreaching",
            )
        # what each starts in (moto's new alarms: OK), read at once, so that each is set only when it changes
        pages = cloudwatch.get_paginator("describe_alarms").paginate(AlarmNames=[alarm.name for alarm in alarms])
        self._states = {made["AlarmName"]: made["StateValue"] for page in pages for made in page["MetricAlarms"]}
        for alarm in alarms:
            self._set(alarm, "OK", "the sandbox started")

    def evaluate(self) -> None:
        now = time.time()
        for alarm in self._alarms:
            breaching = all(
                self._value(alarm, now - k * alarm.period_seconds) >= alarm.threshold
                for k in range(alarm.evaluation_periods)
            )
            self._set(alarm, "ALARM" if breaching else "OK", "threshold crossed" if breaching else "back to normal")

    def _value(self, alarm: AlarmDefinition, end: float) -> float:
        if alarm.watches == "metric":
            assert alarm.metric is not None
            return self._metrics.total(alarm.service, alarm.metric, end - alarm.period_seconds, end)
        if alarm.watches == "errors":
            return self._metrics.total(alarm.service, "Errors", end - alarm.period_seconds, end)
        queue, dead_letters = self._queues(alarm.service)
        messages = list((dead_letters if alarm.watches != "queue-age" else queue)._messages)
        if alarm.watches == "dlq-depth":
            return len(messages)
        oldest = min((m.sent_timestamp for m in messages if m.sent_timestamp), default=None)
        return 0 if oldest is None else time.time() - oldest / 1000

    def _set(self, alarm: AlarmDefinition, state: str, reason: str) -> None:
        if self._states.get(alarm.name) == state:
            return
        self._cloudwatch.set_alarm_state(AlarmName=alarm.name, StateValue=state, StateReason=reason)
        self._states[alarm.name] = state
