"""The operations dashboard: one row per automation, what an operator looks at first when a show goes wrong.

Per automation: events acted on and skipped (and its own actions), heals and errors, the dead-letter
queue's depth and age, IVS throttling, and how long events waited in the queue before being handled;
then the convergence pass: heals and failed passes.
The handlers emit the custom metrics (namespace ``config.METRICS_NAMESPACE``, dimension
``service=<automation>``); SQS and Lambda emit the rest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from aws_cdk import Duration, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

from infra import names
from infra.convergence import ConvergencePass
from infra.pipeline import AutomationPipeline
from stagepilot import config, routing

PERIOD: Final = Duration.minutes(1)
# What each automation does, as the metric its handler counts when it does it.
ACTION_METRICS: Final[Mapping[str, Sequence[str]]] = {
    routing.COMPOSITION: ("CompositionStarted", "CompositionRestarted", "CompositionGaveUp"),
    routing.REPLICATION: ("ReplicationStarted", "ReplicationFailed"),
    routing.MODERATION: ("ParticipantDisconnected", "ParticipantWouldDisconnect", "DisconnectRejected"),
}
WIDTH: Final = 6  # four graphs a row (the grid is 24 wide)
HEIGHT: Final = 6


CONVERGENCE_SERVICE: Final = "convergence"  # the convergence function's metrics dimension


class OperationsDashboard(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        pipelines: Mapping[str, AutomationPipeline],
        convergence: ConvergencePass,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dashboard = cloudwatch.Dashboard(
            self,
            names.DASHBOARD,
            dashboard_name=names.account_scoped(
                Stack.of(self).stack_name, names.OPERATIONS, max_length=names.DASHBOARD_NAME_MAX
            ),
            default_interval=Duration.hours(3),
            period_override=cloudwatch.PeriodOverride.AUTO,
        )
        for automation, pipeline in pipelines.items():
            self.dashboard.add_widgets(
                cloudwatch.TextWidget(markdown=f"### {automation}", width=24, height=1),
            )
            self.dashboard.add_widgets(*_row(automation, pipeline))
        self.dashboard.add_widgets(cloudwatch.TextWidget(markdown="### convergence pass", width=24, height=1))
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="convergence: heals and failed passes",
                left=[
                    _metric(CONVERGENCE_SERVICE, names.METRIC_HEALED, "healed"),
                    _metric(CONVERGENCE_SERVICE, names.METRIC_HEALED_EVENT_LOST, "healed: event-lost"),
                    _metric(CONVERGENCE_SERVICE, names.METRIC_RECONCILE_FAILED, "passes failed"),
                    convergence.function.metric_errors(period=PERIOD, label="function errors"),
                ],
                width=WIDTH * 2,
                height=HEIGHT,
            )
        )


def _metric(service: str, metric_name: str, label: str | None = None) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace=config.METRICS_NAMESPACE,
        metric_name=metric_name,
        dimensions_map={"service": service},
        statistic="Sum",
        period=PERIOD,
        label=label or metric_name,
    )


def _row(automation: str, pipeline: AutomationPipeline) -> list[cloudwatch.IWidget]:
    def custom(metric_name: str, label: str | None = None) -> cloudwatch.Metric:
        return _metric(automation, metric_name, label)

    return [
        cloudwatch.GraphWidget(
            title=f"{automation}: events acted on / skipped, and actions",
            left=[
                custom(names.METRIC_EVENT_ACTED, "acted"),
                custom(names.METRIC_EVENT_SKIPPED, "skipped"),
                custom(names.METRIC_EVENT_CLAIM_HELD, "waiting for another's claim"),
            ],
            right=[custom(name) for name in ACTION_METRICS.get(automation, ())],
            width=WIDTH,
            height=HEIGHT,
        ),
        cloudwatch.GraphWidget(
            title=f"{automation}: heals and errors",
            left=[
                # The convergence pass counts its heals per automation under its own service.
                _metric(CONVERGENCE_SERVICE, f"{names.METRIC_HEALED}{automation.capitalize()}", "healed (convergence)"),
                pipeline.function.metric_errors(period=PERIOD, label="function errors"),
                custom(names.METRIC_EVENT_FAILED, "events failed"),
                custom(names.METRIC_EVENT_RETRIED, "events retried"),
                custom(names.METRIC_MALFORMED_EVENT, "malformed (parked)"),
                custom(names.METRIC_POLICY_INVALID, "policy invalid"),
            ],
            width=WIDTH,
            height=HEIGHT,
        ),
        cloudwatch.GraphWidget(
            title=f"{automation}: dead-letter queue",
            left=[
                pipeline.dlq.metric_approximate_number_of_messages_visible(
                    period=PERIOD, statistic="Maximum", label="depth"
                )
            ],
            right=[
                pipeline.dlq.metric_approximate_age_of_oldest_message(
                    period=PERIOD, statistic="Maximum", label="oldest (s)"
                )
            ],
            width=WIDTH,
            height=HEIGHT,
        ),
        cloudwatch.GraphWidget(
            title=f"{automation}: IVS throttles, event age at handling",
            left=[custom(names.METRIC_IVS_THROTTLED, "IVS throttled")],
            right=[
                pipeline.queue.metric_approximate_age_of_oldest_message(
                    period=PERIOD, statistic="Maximum", label="oldest event waiting (s)"
                )
            ],
            width=WIDTH,
            height=HEIGHT,
        ),
    ]
