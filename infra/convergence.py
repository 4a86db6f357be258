"""The convergence pass: an EventBridge schedule -> one Lambda function that compares every live stage
with its policy using IVS's own listings (lambdas/stagepilot/convergence.py), with its role and alarms.

Events give speed, this gives certainty: whatever events were lost or late, each live stage is put back
to its policy within a period or two. One pass runs at a time (reserved concurrency 1); a pass that
cannot finish is simply followed by the next one, so the schedule is its only retry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra import names
from infra.bundling import acknowledge_runtime
from infra.pipeline import (
    FUNCTION_TIMEOUT,
    IvsStatement,
    automation_table_statements,
    ivs_policies,
    stagepilot_function,
)
from stagepilot import budget, config
from stagepilot.adapters.queues import ENV_QUEUE_URLS

DEFAULT_RECONCILE_MINUTES = 1
# Healing is normal now and then (IVS drops an event rarely); often, it means events are being lost
# (a rule, a queue, a permission): 5 heals within 15 minutes whose reason is ``event-lost`` raise the
# alarm. Heals with another reason (a late event, IVS ending a composition, a resume, a policy change, a
# claim taken over: stagepilot.decisions.heals) are counted by reason but say nothing about lost events.
HEALED_ALARM_THRESHOLD = 5
HEALED_ALARM_PERIOD = Duration.minutes(15)
FAILED_PASSES_ALARM = 3  # passes in a row that could not list what is live


class ConvergencePass(Construct):
    """Schedule -> function, its role (the three automations' IVS actions plus ListStages) and alarms."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        table: dynamodb.ITable,
        code: lambda_.Code,
        alarm_topic: sns.ITopic,
        ivs_statements: Sequence[IvsStatement],
        settings_env: Mapping[str, str],
        queues: Mapping[str, sqs.IQueue] | None = None,
        period_minutes: int = DEFAULT_RECONCILE_MINUTES,
    ) -> None:
        """``queues``: each automation's queue, whose depth the pass reads to tell a late event from a lost
        one when it explains a heal (lambdas/stagepilot/adapters/queues.py)."""
        queues = dict(queues or {})
        super().__init__(scope, construct_id)
        if not 1 <= period_minutes <= 60:
            raise ValueError(f"reconcileMinutes: {period_minutes} must be between 1 and 60")
        self.log_group = logs.LogGroup(
            self, names.LOG_GROUP, retention=logs.RetentionDays.ONE_MONTH, removal_policy=RemovalPolicy.DESTROY
        )
        self.role = iam.Role(
            self,
            names.ROLE,
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="stagepilot convergence pass",
        )
        policies = [
            iam.Policy(
                self,
                names.EXECUTION_POLICY,
                statements=[
                    iam.PolicyStatement(
                        sid="WriteOwnLogs",
                        actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                        resources=[self.log_group.log_group_arn],
                    ),
                    # It heals through the automations' own code, which gives claims back (DeleteItem) when
                    # nothing was started: the same writes as theirs (tests/infra/test_permissions.py).
                    *automation_table_statements(table),
                    *(
                        [
                            iam.PolicyStatement(
                                sid="ReadQueueDepths",  # a heal's reason: is the event still queued?
                                actions=["sqs:GetQueueAttributes"],
                                resources=[queue.queue_arn for queue in queues.values()],
                            )
                        ]
                        if queues
                        else []
                    ),
                ],
            ),
            *ivs_policies(self, ivs_statements),
        ]
        for policy in policies:
            self.role.attach_inline_policy(policy)

        self.function = stagepilot_function(
            self,
            description="stagepilot convergence pass: every live stage back to its policy",
            handler="stagepilot.handlers.reconcile.lambda_handler",
            code=code,
            timeout=FUNCTION_TIMEOUT,
            role=self.role,
            log_group=self.log_group,
            service="convergence",
            reserved_concurrent_executions=budget.CONCURRENCY[budget.CONVERGENCE],  # one pass at a time
            environment={
                config.ENV_TABLE: table.table_name,
                config.ENV_IVS_CALLER: budget.CONVERGENCE,  # its slice of each operation (stagepilot.budget)
                **settings_env,
                **(
                    {ENV_QUEUE_URLS: Stack.of(self).to_json_string({k: q.queue_url for k, q in queues.items()})}
                    if queues
                    else {}
                ),
            },
        )
        acknowledge_runtime(self.function)
        for policy in policies:
            self.function.node.add_dependency(policy)
        self.schedule = events.Rule(
            self,
            names.SCHEDULE,
            rule_name=names.account_scoped(
                Stack.of(self).stack_name, self.node.id, names.SCHEDULE, max_length=names.RULE_NAME_MAX
            ),
            description=f"stagepilot convergence pass every {period_minutes} minute(s)",
            schedule=events.Schedule.rate(Duration.minutes(period_minutes)),
            # A pass that fails is not retried: the next one comes within the period.
            targets=[targets.LambdaFunction(self.function, retry_attempts=0)],
        )
        self.alarms = self._alarms(alarm_topic)

    def _alarms(self, topic: sns.ITopic) -> list[cloudwatch.Alarm]:
        def metric(name: str, period: Duration) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=config.METRICS_NAMESPACE,
                metric_name=name,
                dimensions_map={"service": "convergence"},
                statistic="Sum",
                period=period,
            )

        specs: list[tuple[str, cloudwatch.IMetric, float, int, str]] = [
            (
                names.HEALED_ALARM,
                metric(names.METRIC_HEALED_EVENT_LOST, HEALED_ALARM_PERIOD),
                HEALED_ALARM_THRESHOLD,
                1,
                "The convergence pass keeps healing stages that nothing but a lost event explains: events "
                "are being lost or not acted on. Run `stagepilot audit --json` and look at the 'healed' "
                "entries with healReason event-lost (what was found), then check the rules, queues, DLQs "
                "and the functions' errors.",
            ),
            (
                names.RECONCILE_FAILED_ALARM,
                metric(names.METRIC_RECONCILE_FAILED, Duration.minutes(1)),
                1,
                FAILED_PASSES_ALARM,
                "The convergence pass could not list what is live for several periods in a row (IVS or "
                "DynamoDB unavailable, or a permission missing). Read its log group.",
            ),
            (
                names.ERRORS_ALARM,
                self.function.metric_errors(period=Duration.minutes(5), statistic="Sum"),
                1,
                1,
                "The convergence pass function raised errors. Read the ERROR lines in its log group.",
            ),
        ]
        alarms = []
        for alarm_id, watched, threshold, periods, description in specs:
            alarm = cloudwatch.Alarm(
                self,
                alarm_id,
                alarm_name=names.account_scoped(
                    Stack.of(self).stack_name, self.node.id, alarm_id, max_length=names.ALARM_NAME_MAX
                ),
                metric=watched,
                threshold=threshold,
                evaluation_periods=periods,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description=description,
            )
            alarm.add_alarm_action(cloudwatch_actions.SnsAction(topic))
            alarms.append(alarm)
        return alarms
