"""One automation's pipeline: EventBridge rules -> SQS queue -> Lambda function, with its DLQ and alarms.

The stack calls this builder once per automation (composition, replication, moderation); everything
that differs between them comes in as data (routes, IVS statements, settings).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra import names
from infra.bundling import RUNTIME, acknowledge_runtime
from stagepilot import budget, config, routing
from stagepilot.adapters import schema
from stagepilot.decisions.leases import FUNCTION_TIMEOUT_SECONDS, MAX_RECEIVES
from stagepilot.routing import DEFAULT_BUS, Route

FUNCTION_TIMEOUT = Duration.seconds(FUNCTION_TIMEOUT_SECONDS)  # claims' leases are twice this
FUNCTION_MEMORY_MB = 512


def stagepilot_function(
    scope: Construct,
    *,
    description: str,
    handler: str,
    code: lambda_.Code,
    timeout: Duration,
    role: iam.IRole,
    log_group: logs.ILogGroup,
    service: str,
    environment: Mapping[str, str],
    reserved_concurrent_executions: int | None = None,
) -> lambda_.Function:
    """The one way every stagepilot function is built (automations, convergence, door): the runtime, ARM,
    memory, its own role and log group, no X-Ray, Powertools' service and namespace."""
    return lambda_.Function(
        scope,
        names.FUNCTION,
        description=description,
        runtime=RUNTIME,
        architecture=lambda_.Architecture.ARM_64,
        handler=handler,
        code=code,
        timeout=timeout,
        memory_size=FUNCTION_MEMORY_MB,
        role=role,
        log_group=log_group,
        # No X-Ray: creating the tracer client costs 0.5-0.7 s of every cold start.
        tracing=lambda_.Tracing.DISABLED,
        reserved_concurrent_executions=reserved_concurrent_executions,
        environment={
            **environment,
            "POWERTOOLS_SERVICE_NAME": service,
            "POWERTOOLS_METRICS_NAMESPACE": config.METRICS_NAMESPACE,
            "POWERTOOLS_LOG_LEVEL": "INFO",
        },
    )


# SQS guidance: visibility >= 6 x function timeout, so a batch that is retried inside the poller is not
# redelivered to a second container while the first one still works on it.
VISIBILITY_TIMEOUT = Duration.seconds(6 * FUNCTION_TIMEOUT.to_seconds())
QUEUE_RETENTION = Duration.days(4)  # SQS's default, said out loud: the event-age bound depends on it
DLQ_RETENTION = Duration.days(14)
# Up to 10 records per invocation, and no batching window (MaximumBatchingWindowInSeconds stays at SQS's
# default, 0 s): the poller invokes as soon as it has read what is there, so no event waits for others to
# gather. A window would add up to its length to every event's latency (benchmarks/latency.py) to save
# invocations this stack does not pay much for (docs/performance.md, cost).
BATCH_SIZE = 10
# IVS real-time API call quotas are 5 TPS per operation, per account and region, and not adjustable, and
# every function that calls an operation takes from the same quota. At most budget.CONCURRENCY[automation]
# containers of one automation run at once (the function's reserved concurrency, and the event source's
# MaximumConcurrency, equal to it so the poller is never throttled); each sends at most its share of every
# IVS operation in any window (stagepilot.budget.container_shares, chosen by config.ENV_IVS_CALLER), so that
# all containers of all functions, the convergence pass included, never send more than
# budget.FUNCTIONS_PER_SECOND calls of an operation into one second.
# Events EventBridge cannot deliver to the queue are retried for a day, then parked in the DLQ.
TARGET_RETRY_ATTEMPTS = 185
TARGET_MAX_EVENT_AGE = Duration.hours(24)
# The oldest event the stack's queues can hand a function: EventBridge may deliver it a day late, the DLQ
# keeps it 14 days from its first enqueue, and `dlq redrive` gives it the queue's retention once more.
# Anything older was not delivered by the stack's rules: the functions park it (stagepilot.origin).
MAX_EVENT_AGE = Duration.seconds(
    TARGET_MAX_EVENT_AGE.to_seconds() + DLQ_RETENTION.to_seconds() + QUEUE_RETENTION.to_seconds()
)
QUEUE_AGE_THRESHOLD_SECONDS = 900
# Alarm well before the DLQ's retention (14 days) throws events away unseen.
DLQ_AGE_THRESHOLD_SECONDS = 3 * 86400
ALARM_PERIOD = Duration.minutes(5)


@dataclass(frozen=True)
class IvsStatement:
    """One IVS statement of an automation's role, in a policy of its own named after ``name``.

    ``acknowledgments`` (cdk-nag finding id -> reason) are the findings this statement raises; they are
    acknowledged on its own policy and nowhere else. ``conditions``: the statement's IAM conditions
    (e.g. StopComposition only on compositions tagged as stagepilot's).
    """

    name: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    acknowledgments: Mapping[str, str]
    conditions: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


def ivs_policies(scope: Construct, statements: Sequence[IvsStatement]) -> list[iam.Policy]:
    """One policy per IVS statement, named after it, each carrying the cdk-nag acknowledgments of its own
    findings and nothing else."""
    policies = []
    for statement in statements:
        policy = iam.Policy(
            scope,
            names.ivs_policy_id(statement.name),
            statements=[
                iam.PolicyStatement(
                    sid=statement.name,
                    actions=list(statement.actions),
                    resources=list(statement.resources),
                    conditions={op: dict(block) for op, block in statement.conditions.items()} or None,
                )
            ],
        )
        for finding, reason in statement.acknowledgments.items():
            Validations.of(policy).acknowledge(Acknowledgment(id=finding, reason=reason))
        policies.append(policy)
    return policies


class AutomationPipeline(Construct):
    """Rules -> queue -> function for one automation, with its DLQ, role, log group and alarms."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        automation: str,
        routes: Sequence[Route],
        table: dynamodb.ITable,
        code: lambda_.Code,
        alarm_topic: sns.ITopic,
        ivs_statements: Sequence[IvsStatement],
        settings_env: Mapping[str, str],
        event_buses: Mapping[str, events.IEventBus],
        redrive_role: iam.IRole,
    ) -> None:
        super().__init__(scope, construct_id)
        if not routes:
            raise ValueError(f"automation {automation!r} has no routes")
        if any(route.automation != automation for route in routes):
            raise ValueError(f"routes of another automation were passed to {automation!r}")
        self.automation = automation
        stack_name = Stack.of(self).stack_name

        # The DLQ takes failed messages from its own queue only (RedriveAllowPolicy byQueue): no other queue of
        # the account may name it as its dead-letter queue and feed it bodies `dlq redrive` would send on.
        # The queue is named (from the stack's name) so the DLQ can name it without a dependency cycle.
        queue_name = names.account_scoped(stack_name, self.node.id, names.QUEUE, max_length=names.QUEUE_NAME_MAX)
        source = sqs.Queue.from_queue_arn(
            self, "SourceQueueArn", Stack.of(self).format_arn(service="sqs", resource=queue_name)
        )
        self.dlq = sqs.Queue(
            self,
            names.DLQ,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=DLQ_RETENTION,
            redrive_allow_policy=sqs.RedriveAllowPolicy(
                redrive_permission=sqs.RedrivePermission.BY_QUEUE, source_queues=[source]
            ),
        )
        self.queue = sqs.Queue(
            self,
            names.QUEUE,
            queue_name=queue_name,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=QUEUE_RETENTION,
            visibility_timeout=VISIBILITY_TIMEOUT,
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dlq, max_receive_count=MAX_RECEIVES),
        )

        self.rules = [
            events.Rule(
                self,
                names.rule_id(route.name),
                rule_name=names.account_scoped(stack_name, route.name, max_length=names.RULE_NAME_MAX),
                description=route.description,
                event_bus=None if route.bus == DEFAULT_BUS else event_buses[route.bus],
                event_pattern=_event_pattern(route.pattern),
                targets=[
                    targets.SqsQueue(
                        self.queue,
                        dead_letter_queue=self.dlq,
                        retry_attempts=TARGET_RETRY_ATTEMPTS,
                        max_event_age=TARGET_MAX_EVENT_AGE,
                    )
                ],
            )
            for route in routes
        ]
        for rule, route in zip(self.rules, routes, strict=True):
            _add_envelope_fields(rule, route.pattern)

        self.log_group = logs.LogGroup(
            self,
            names.LOG_GROUP,
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.role, policies = self._role(table=table, ivs_statements=ivs_statements)

        self.function = stagepilot_function(
            self,
            description=f"stagepilot {automation} automation",
            handler=f"stagepilot.handlers.{automation}.lambda_handler",
            code=code,
            timeout=FUNCTION_TIMEOUT,
            role=self.role,
            log_group=self.log_group,
            service=automation,
            # At most budget.CONCURRENCY[automation] containers run at once, whatever the event source or a
            # deploy does: stagepilot.budget's bound on IVS calls counts containers by this number.
            reserved_concurrent_executions=budget.CONCURRENCY[automation],
            environment={
                config.ENV_TABLE: table.table_name,
                config.ENV_DLQ_URL: self.dlq.queue_url,
                config.ENV_IVS_CALLER: automation,
                config.ENV_MAX_EVENT_AGE_SECONDS: str(int(MAX_EVENT_AGE.to_seconds())),
                **settings_env,
            },
        )
        acknowledge_runtime(self.function)
        # The inline policies are separate resources: the function must not run before they exist.
        for policy in policies:
            self.function.node.add_dependency(policy)
        self.function.add_event_source(
            event_sources.SqsEventSource(
                self.queue,
                batch_size=BATCH_SIZE,
                report_batch_item_failures=True,
                max_concurrency=budget.CONCURRENCY[automation],
            )
        )

        # Only the rules and the stack's own roles may send: the function parks malformed events in its
        # DLQ, `stagepilot dlq redrive` sends through the redrive role.
        self._accept_only(self.queue, senders=[redrive_role])
        self._accept_only(self.dlq, senders=[self.role])

        self.alarms = self._alarms(alarm_topic)

    def _accept_only(self, queue: sqs.Queue, *, senders: Sequence[iam.IRole]) -> None:
        """Deny SendMessage to everyone but this pipeline's rules (aws:SourceArn, set by EventBridge) and
        ``senders`` (aws:PrincipalArn): an identity policy on ``sqs:*`` cannot get a body in."""
        queue.add_to_resource_policy(
            iam.PolicyStatement(
                sid="OnlyItsRulesAndTheStacksRolesSend",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["sqs:SendMessage"],
                resources=[queue.queue_arn],
                conditions={
                    "ArnNotEquals": {
                        "aws:SourceArn": [rule.rule_arn for rule in self.rules],
                        "aws:PrincipalArn": [role.role_arn for role in senders],
                    }
                },
            )
        )

    def _role(
        self, *, table: dynamodb.ITable, ivs_statements: Sequence[IvsStatement]
    ) -> tuple[iam.Role, list[iam.Policy]]:
        role = iam.Role(
            self,
            names.ROLE,
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"stagepilot {self.automation} function",
        )
        execution = iam.Policy(
            self,
            names.EXECUTION_POLICY,
            statements=[
                iam.PolicyStatement(
                    sid="WriteOwnLogs",
                    actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                    resources=[self.log_group.log_group_arn],
                ),
                *automation_table_statements(table),
                iam.PolicyStatement(
                    sid="ParkMalformedEvents",
                    actions=["sqs:SendMessage"],
                    resources=[self.dlq.queue_arn],
                ),
                iam.PolicyStatement(
                    sid="BackOffRetriedRecords",
                    actions=["sqs:ChangeMessageVisibility"],
                    resources=[self.queue.queue_arn],
                ),
            ],
        )
        policies = [execution, *ivs_policies(self, ivs_statements)]
        for policy in policies:
            role.attach_inline_policy(policy)
        return role, policies

    def _alarms(self, topic: sns.ITopic) -> list[cloudwatch.Alarm]:
        label = self.automation
        specs: list[tuple[str, cloudwatch.IMetric, float, str]] = [
            (
                names.DLQ_DEPTH_ALARM,
                # Visible and in flight: a receive with a long visibility timeout (anyone who may read the DLQ
                # can ask for one) hides messages but does not clear the alarm.
                cloudwatch.MathExpression(
                    expression="visible + hidden",
                    using_metrics={
                        "visible": self.dlq.metric_approximate_number_of_messages_visible(
                            period=ALARM_PERIOD, statistic="Maximum"
                        ),
                        "hidden": self.dlq.metric_approximate_number_of_messages_not_visible(
                            period=ALARM_PERIOD, statistic="Maximum"
                        ),
                    },
                    period=ALARM_PERIOD,
                    label="dead letters (visible + in flight)",
                ),
                1,
                f"Events the {label} automation could not process are waiting in its dead-letter queue. "
                "Run `stagepilot dlq list` to see them and the error, fix the cause (policy, permissions, "
                "IVS quota), then `stagepilot dlq redrive` to process them again.",
            ),
            (
                names.DLQ_AGE_ALARM,
                self.dlq.metric_approximate_age_of_oldest_message(period=ALARM_PERIOD, statistic="Maximum"),
                DLQ_AGE_THRESHOLD_SECONDS,
                f"An event has waited in the {label} dead-letter queue for 3 days; the queue throws events away "
                "after 14. Run `stagepilot dlq list`, fix the cause, then `stagepilot dlq redrive`.",
            ),
            (
                names.QUEUE_AGE_ALARM,
                self.queue.metric_approximate_age_of_oldest_message(period=ALARM_PERIOD, statistic="Maximum"),
                QUEUE_AGE_THRESHOLD_SECONDS,
                f"The {label} queue holds an event older than 15 minutes: the function is failing, throttled "
                "or too slow. Check the function's Errors/Throttles and its log group; events that keep "
                "failing move to the dead-letter queue after 5 attempts.",
            ),
            (
                names.ERRORS_ALARM,
                self.function.metric_errors(period=ALARM_PERIOD, statistic="Sum"),
                1,
                f"The {label} function raised errors (whole batches failed: configuration, permissions or a "
                "bug). Read the ERROR lines in its log group; the records are retried and then parked in "
                "the dead-letter queue.",
            ),
            (
                names.MALFORMED_EVENT_ALARM,
                self._custom_metric(names.METRIC_MALFORMED_EVENT),
                1,
                f"The {label} automation received events it cannot parse and parked them in its "
                "dead-letter queue without retrying. Run `stagepilot dlq list`: a producer is sending "
                "events of the wrong shape (check the moderation sources).",
            ),
            (
                names.POLICY_INVALID_ALARM,
                self._custom_metric(names.METRIC_POLICY_INVALID),
                1,
                f"The {label} automation found a stored stage policy it cannot use and skipped the stage. "
                "Run `stagepilot policy get <stage ARN>` and `stagepilot policy validate`, then "
                "`stagepilot policy put` a corrected policy.",
            ),
        ]
        alarms = []
        for alarm_id, metric, threshold, description in specs:
            alarm = cloudwatch.Alarm(
                self,
                alarm_id,
                alarm_name=names.account_scoped(
                    Stack.of(self).stack_name, self.node.id, alarm_id, max_length=names.ALARM_NAME_MAX
                ),
                metric=metric,
                threshold=threshold,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description=description,
            )
            alarm.add_alarm_action(cloudwatch_actions.SnsAction(topic))
            alarms.append(alarm)
        return alarms

    def _custom_metric(self, metric_name: str) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=config.METRICS_NAMESPACE,
            metric_name=metric_name,
            dimensions_map={"service": self.automation},
            statistic="Sum",
            period=ALARM_PERIOD,
        )


def automation_table_statements(
    table: dynamodb.ITable, *, writes: Sequence[str] = ("PutItem", "UpdateItem", "DeleteItem")
) -> list[iam.PolicyStatement]:
    """What a function may do with the table (the pipelines' and the convergence pass's): read it all,
    ``writes`` only automation state. Never a POLICY, BAN, PAUSE or HISTORY# item (``dynamodb:LeadingKeys``):
    a bug or a compromised function cannot change what drives the actions."""
    return [
        iam.PolicyStatement(
            sid="ReadPoliciesBansAndState",
            actions=["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"],
            resources=[table.table_arn],
        ),
        iam.PolicyStatement(
            sid="WriteOnlyAutomationState",
            actions=[f"dynamodb:{action}" for action in writes],
            resources=[table.table_arn],
            conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{schema.STAGE_PREFIX}*"]}},
        ),
        *audit_statements(table),
    ]


def audit_statements(table: dynamodb.ITable) -> list[iam.PolicyStatement]:
    """The audit trail is added to, never rewritten (docs/table.md): ``PutItem`` on ``AUDIT#`` keys (the code
    adds with ``attribute_not_exists``), and an explicit Deny of every action that changes or removes an
    item there (``UpdateItem``, ``DeleteItem``, and ``BatchWriteItem``, whose requests may delete), in every
    role and managed policy of the stack: whatever else it is allowed, only the table's TTL removes an entry."""
    audit_keys = [f"{schema.AUDIT_PREFIX}*"]
    return [
        iam.PolicyStatement(
            sid="AddAuditEntries",
            actions=["dynamodb:PutItem"],
            resources=[table.table_arn],
            conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": audit_keys}},
        ),
        iam.PolicyStatement(
            sid="NobodyRewritesTheAuditTrail",
            effect=iam.Effect.DENY,
            actions=["dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"],
            resources=[table.table_arn],
            conditions={"ForAnyValue:StringLike": {"dynamodb:LeadingKeys": audit_keys}},
        ),
    ]


# Envelope fields a pattern may test that ``EventPattern`` has no argument for: written into the rule's
# EventPattern property as they are (``_add_envelope_fields``).
UNMODELLED_FIELDS = (routing.REPLAY_NAME,)


def _add_envelope_fields(rule: events.Rule, pattern: Mapping[str, object]) -> None:
    cfn_rule = rule.node.default_child
    assert isinstance(cfn_rule, events.CfnRule)
    for key in UNMODELLED_FIELDS:
        if key in pattern:
            cfn_rule.add_property_override(f"EventPattern.{key}", pattern[key])


def _event_pattern(pattern: Mapping[str, object]) -> events.EventPattern:
    """The route's pattern verbatim, as ``EventPattern``'s keyword arguments (``detail`` is passed whole);
    the ``UNMODELLED_FIELDS`` are added to the rule afterwards."""
    known = {
        "source": "source",
        "detail-type": "detail_type",
        "account": "account",
        "region": "region",
        "detail": "detail",
        "resources": "resources",
        "id": "id",
        "time": "time",
        "version": "version",
    }
    unknown = sorted(set(pattern) - set(known) - set(UNMODELLED_FIELDS))
    if unknown:
        raise ValueError(f"route pattern has keys EventBridge rules do not take: {json.dumps(unknown)}")
    return events.EventPattern(**{known[key]: value for key, value in pattern.items() if key in known})  # type: ignore[arg-type]
