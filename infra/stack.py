"""The StagePilot stack: one table, one alarm topic, and one pipeline per automation.

The stack composes; ``AutomationPipeline`` owns the resources of one automation. IAM for IVS is decided
here, per automation, because it is what differs between them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from aws_cdk import (
    Acknowledgment,
    Annotations,
    ArnFormat,
    CfnOutput,
    Duration,
    RemovalPolicy,
    Stack,
    Validations,
)
from aws_cdk import aws_cloudtrail as cloudtrail
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from infra import names
from infra.access import OperatorAccess
from infra.bundling import function_code
from infra.convergence import DEFAULT_RECONCILE_MINUTES, ConvergencePass
from infra.dashboard import OperationsDashboard
from infra.door import TokenDoor
from infra.pipeline import AutomationPipeline, IvsStatement
from stagepilot import config, outputs, routing
from stagepilot.adapters import schema
from stagepilot.decisions.composition import MANAGED_TAG
from stagepilot.decisions.composition_hours import CompositionHoursPerDay


@dataclass(frozen=True)
class StagePilotSettings:
    """What a deployment chooses (cdk.json context / ``cdk -c``)."""

    alarm_email: str | None = None
    moderation_sources: tuple[str, ...] = routing.DEFAULT_MODERATION_SOURCES
    # Stage-ARN prefixes the automation is limited to (IAM and handlers); empty = every stage.
    stage_arn_prefixes: tuple[str, ...] = field(default=())
    reconcile_minutes: int = DEFAULT_RECONCILE_MINUTES  # the convergence pass's period
    # IAM roles that may put flags on the flag bus; empty = nobody (the stack warns at synth).
    moderation_principals: tuple[str, ...] = field(default=())
    # IAM roles that may assume the redrive role (`dlq redrive`); empty = nobody (the stack warns at synth).
    redrive_principals: tuple[str, ...] = field(default=())
    token_mode: str = "signed"  # the door: "signed" (KMS key-pair tokens) or "create" (CreateParticipantToken)
    # A CloudTrail trail of the table's data events (every read and write, with who made it), in a bucket
    # of its own that no table writer can touch: the record of the audit trail's own changes.
    audit_trail: bool = False
    # The fleet's composition hours per UTC day (docs/policy.md, "The fleet's composition budget"); None = none.
    composition_hours: CompositionHoursPerDay | None = None

    def __post_init__(self) -> None:
        for key, principals in (
            ("moderationPrincipals", self.moderation_principals),
            ("redrivePrincipals", self.redrive_principals),
        ):
            for principal in principals:
                if not ROLE_ARN.fullmatch(principal):
                    raise ValueError(
                        f"{key}: {principal!r} is not an IAM role ARN "
                        "(expected arn:<partition>:iam::<account>:role/<name>, no wildcards)"
                    )
        for prefix in self.stage_arn_prefixes:
            parts = prefix.split(":", 5)
            if len(parts) < 6 or parts[0] != "arn" or parts[2] != "ivs" or not parts[5].startswith("stage/"):
                raise ValueError(
                    f"stageArnPrefixes: {prefix!r} is not a stage ARN prefix "
                    "(expected arn:<partition>:ivs:<region>:<account>:stage/...)"
                )
            if "*" in prefix or "?" in prefix:
                raise ValueError(f"stageArnPrefixes: {prefix!r} must not contain wildcards")


ROLE_ARN = re.compile(r"arn:aws(-cn|-us-gov)?:iam::[0-9]{12}:role/[\w+=,.@/-]+")
# The functions that count DestinationFailed (their metrics' ``service`` dimension): the composition function
# on the event, the convergence pass when the event was lost.
_DESTINATION_WATCHERS = (routing.COMPOSITION, "convergence")
NO_REDRIVE_PRINCIPALS = (
    "redrivePrincipals is empty: nobody can assume the redrive role, so `stagepilot dlq redrive` cannot send "
    "failed events back. Name the IAM roles of the operators who redrive with "
    "-c redrivePrincipals='[\"arn:aws:iam::<account>:role/<name>\"]'."
)
NO_MODERATION_PRINCIPALS = (
    "moderationPrincipals is empty: nobody can put flags on the flag bus, so Participant Flagged never "
    "reaches moderation. Name the IAM roles of your moderation tools (and of operators who use "
    "`stagepilot flag`) with -c moderationPrincipals='[\"arn:aws:iam::<account>:role/<name>\"]'."
)


class StagePilotStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: StagePilotSettings,
        code: lambda_.Code | None = None,
        description: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id, description=description)
        self.settings = settings

        self.table = self._table()
        self.alarm_topic = self._alarm_topic(settings.alarm_email)
        self.flag_bus = self._flag_bus(settings.moderation_principals)
        self.redrive_role = self._redrive_role(settings.redrive_principals)
        code = code or function_code()

        routes = routing.build_routes(
            account=self.account, region=self.region, moderation_sources=settings.moderation_sources
        )
        settings_env = {
            config.ENV_STAGE_PREFIXES: json.dumps(list(settings.stage_arn_prefixes)),
            config.ENV_ACCOUNT: self.account,
            config.ENV_REGION: self.region,
            config.ENV_MODERATION_SOURCES: json.dumps(list(settings.moderation_sources)),
            **(
                {config.ENV_COMPOSITION_HOURS: settings.composition_hours.to_json()}
                if settings.composition_hours is not None
                else {}
            ),
        }
        statements = {
            routing.COMPOSITION: self._composition_statements(),
            routing.REPLICATION: self._replication_statements(),
            routing.MODERATION: self._moderation_statements(),
        }
        self.pipelines = {
            automation: AutomationPipeline(
                self,
                outputs.pipeline_id(automation),
                automation=automation,
                routes=routing.routes_for(automation, routes),
                table=self.table,
                code=code,
                alarm_topic=self.alarm_topic,
                ivs_statements=statements[automation],
                settings_env=settings_env,
                event_buses={routing.FLAG_BUS: self.flag_bus},
                redrive_role=self.redrive_role,
            )
            for automation in routing.AUTOMATIONS
        }
        for pipeline in self.pipelines.values():
            self._let_redrive(pipeline)
        compositions = self._ivs_arn("composition")
        convergence_statements = self._convergence_statements(statements)
        self.convergence = ConvergencePass(
            self,
            names.CONVERGENCE,
            table=self.table,
            code=code,
            alarm_topic=self.alarm_topic,
            ivs_statements=convergence_statements,
            settings_env=settings_env,
            queues={automation: pipeline.queue for automation, pipeline in self.pipelines.items()},
            period_minutes=settings.reconcile_minutes,
        )

        self.access = OperatorAccess(
            self,
            names.OPERATOR_ACCESS,
            table=self.table,
            pipelines=list(self.pipelines.values()),
            flag_bus=self.flag_bus,
            redrive_role=self.redrive_role,
            stage_resources=self._stage_resources(),
            compositions=compositions,
            convergence_function=self.convergence.function,
            ivs_acknowledgments={
                **self._stage_acknowledgments("operators read stages and disconnect participants on any of them"),
                iam5_finding(self.resolve(compositions)): (
                    "Composition ids are created by StartComposition at run time; `stagepilot status` reads a "
                    "stage's compositions (read-only)."
                ),
                "AwsSolutions-IAM5[Resource::*]": (
                    "ivs:ListCompositions has no required resource type: it is authorized on '*' only. "
                    "It is read-only and is the only action in its statement."
                ),
            },
        )

        self.door = TokenDoor(
            self,
            names.DOOR,
            table=self.table,
            code=code,
            stage_resources=self._stage_resources(),
            stage_acknowledgments=self._stage_acknowledgments("the door issues tokens for any of them"),
            settings_env=settings_env,
            token_mode=settings.token_mode,
        )
        CfnOutput(self, outputs.OUTPUT_TOKEN_URL, value=self.door.url.url)
        CfnOutput(self, outputs.OUTPUT_TOKEN_ISSUER_POLICY_ARN, value=self.door.issuer_policy.managed_policy_arn)

        self.recording_alarm = self._recording_failed_alarm()
        self.destination_alarms = [self._destination_failed_alarm(service) for service in _DESTINATION_WATCHERS]
        self.budget_alarm = (
            self._composition_budget_alarm(settings.composition_hours)
            if settings.composition_hours is not None
            else None
        )

        CfnOutput(self, outputs.OUTPUT_CONVERGENCE_FUNCTION_NAME, value=self.convergence.function.function_name)

        self.audit_trail = self._audit_trail() if settings.audit_trail else None

        self.operations = OperationsDashboard(
            self, names.OPERATIONS, pipelines=self.pipelines, convergence=self.convergence
        )

        CfnOutput(self, outputs.OUTPUT_TABLE_NAME, value=self.table.table_name)
        CfnOutput(self, outputs.OUTPUT_DASHBOARD_NAME, value=self.operations.dashboard.dashboard_name)
        CfnOutput(self, outputs.OUTPUT_ALARM_TOPIC_ARN, value=self.alarm_topic.topic_arn)
        CfnOutput(self, outputs.OUTPUT_FLAG_BUS_NAME, value=self.flag_bus.event_bus_name)
        CfnOutput(self, outputs.OUTPUT_REDRIVE_ROLE_ARN, value=self.redrive_role.role_arn)
        for output, policy in (
            (outputs.OUTPUT_VIEWER_POLICY_ARN, self.access.viewer),
            (outputs.OUTPUT_OPERATOR_POLICY_ARN, self.access.operator),
            (outputs.OUTPUT_ADMIN_POLICY_ARN, self.access.admin),
            (outputs.OUTPUT_BAN_READER_POLICY_ARN, self.access.ban_reader),
        ):
            CfnOutput(self, output, value=policy.managed_policy_arn)
        for automation, pipeline in self.pipelines.items():
            CfnOutput(self, outputs.output_queue_url(automation), value=pipeline.queue.queue_url)
            CfnOutput(self, outputs.output_dlq_url(automation), value=pipeline.dlq.queue_url)
            CfnOutput(self, outputs.output_function_name(automation), value=pipeline.function.function_name)

    # -- resources shared by the automations ---------------------------------------------------------

    def _table(self) -> dynamodb.Table:
        table = dynamodb.Table(
            self,
            names.TABLE,
            partition_key=dynamodb.Attribute(name=schema.PARTITION_KEY, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=schema.SORT_KEY, type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            time_to_live_attribute=schema.TTL_ATTRIBUTE,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            removal_policy=RemovalPolicy.RETAIN,
            deletion_protection=True,
        )
        # Sparse: only audit records carry the index keys.
        table.add_global_secondary_index(
            index_name=schema.AUDIT_INDEX,
            partition_key=dynamodb.Attribute(name=schema.AUDIT_INDEX_PARTITION_KEY, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=schema.AUDIT_INDEX_SORT_KEY, type=dynamodb.AttributeType.STRING),
            projection_type=dynamodb.ProjectionType.ALL,
        )
        return table

    def _audit_trail(self) -> cloudtrail.Trail:
        """CloudTrail data events of the table (every PutItem, UpdateItem, DeleteItem, TransactWriteItems...,
        reads included, with the principal that made each) into an encrypted, TLS-only bucket of their own
        that keeps them a year; CloudTrail validates the log files (digest files), so a changed or deleted
        log is detected. Only the trail's own service writes there."""
        bucket = s3.Bucket(
            self,
            names.AUDIT_TRAIL_BUCKET,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            versioned=True,
            removal_policy=RemovalPolicy.RETAIN,
            lifecycle_rules=[
                s3.LifecycleRule(expiration=Duration.days(365), noncurrent_version_expiration=Duration.days(30))
            ],
        )
        Validations.of(bucket).acknowledge(
            Acknowledgment(
                id="AwsSolutions-S1",
                reason="The bucket holds CloudTrail's log files only, written by CloudTrail, validated by its digest "
                "files; the trail is the access record, and a second bucket of access logs would be one more to guard.",
            )
        )
        trail = cloudtrail.Trail(
            self,
            names.AUDIT_TRAIL,
            bucket=bucket,
            is_multi_region_trail=False,
            include_global_service_events=False,
            enable_file_validation=True,
        )
        cfn_trail = trail.node.default_child
        assert isinstance(cfn_trail, cloudtrail.CfnTrail)
        cfn_trail.add_property_override(
            "AdvancedEventSelectors",
            [
                {
                    "Name": "stagepilot table data events",
                    "FieldSelectors": [
                        {"Field": "eventCategory", "Equals": ["Data"]},
                        {"Field": "resources.type", "Equals": ["AWS::DynamoDB::Table"]},
                        {"Field": "resources.ARN", "Equals": [self.table.table_arn]},
                    ],
                }
            ],
        )
        cfn_trail.add_property_deletion_override("EventSelectors")
        return trail

    def _alarm_topic(self, alarm_email: str | None) -> sns.Topic:
        # CloudWatch cannot publish to a topic encrypted with the AWS-managed SNS key: use our own key
        # and let CloudWatch use it.
        key = kms.Key(
            self,
            names.ALARM_KEY,
            description="stagepilot alarm topic encryption",
            enable_key_rotation=True,
            # Only encrypts alarm notifications in transit through the topic; nothing to keep after a destroy.
            removal_policy=RemovalPolicy.DESTROY,
            pending_window=Duration.days(7),
        )
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsToUseTheKey",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],  # in a key policy, "*" is this key
                conditions={"StringEquals": {"aws:SourceAccount": self.account}},
            )
        )
        topic = sns.Topic(self, names.ALARM_TOPIC, master_key=key, enforce_ssl=True)
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsToPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[topic.topic_arn],
                conditions={"StringEquals": {"aws:SourceAccount": self.account}},
            )
        )
        if alarm_email:
            topic.add_subscription(subscriptions.EmailSubscription(alarm_email))
        return topic

    def _metric_alarm(
        self, construct: str, *, metric: str, service: str, period: Duration, description: str
    ) -> cloudwatch.Alarm:
        """An alarm on one of the functions' own metrics (``service``'s dimension): 1 or more within a period
        raises it, and it notifies the alarm topic."""
        alarm = cloudwatch.Alarm(
            self,
            construct,
            alarm_name=names.account_scoped(self.stack_name, construct, max_length=names.ALARM_NAME_MAX),
            metric=cloudwatch.Metric(
                namespace=config.METRICS_NAMESPACE,
                metric_name=metric,
                dimensions_map={"service": service},
                statistic="Sum",
                period=period,
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )
        alarm.add_alarm_action(cloudwatch_actions.SnsAction(self.alarm_topic))
        return alarm

    def _recording_failed_alarm(self) -> cloudwatch.Alarm:
        """IVS reported a participant recording that could not start or ended with failure."""
        return self._metric_alarm(
            names.RECORDING_FAILED_ALARM,
            metric=names.METRIC_RECORDING_FAILED,
            service=routing.COMPOSITION,
            period=Duration.minutes(5),
            description="IVS could not record a participant (Recording Start Failure / Recording End "
            "Failure). `stagepilot audit --json` lists them ('recording-failed', with the S3 prefix); check the "
            "stage's storage configuration, its bucket and the bucket policy (see the runbook "
            "recordings-missing-or-fragmented).",
        )

    def _destination_failed_alarm(self, service: str) -> cloudwatch.Alarm:
        """A composition's destination failed while it runs (a channel already live, a bucket refused): the
        show is off-air or unrecorded now, so the first one alarms (one alarm per function that counts it:
        the composition function on the event, the convergence pass when that event was lost)."""
        construct = (
            names.DESTINATION_FAILED_ALARM
            if service == routing.COMPOSITION
            else f"Pass{names.DESTINATION_FAILED_ALARM}"
        )
        return self._metric_alarm(
            construct,
            metric=names.METRIC_DESTINATION_FAILED,
            service=service,
            period=Duration.minutes(1),
            description="A composition's destination failed while it runs (a channel already live, a "
            "bucket refused): the show is off-air or unrecorded. `stagepilot audit --json` lists it "
            "('destination-failed', with the destination and IVS's reason); `stagepilot status ARN` shows each "
            "destination's state. stagepilot does not restart the composition for it (that would cut the other "
            "destination's recording): see the runbook stage-did-not-compose.",
        )

    def _composition_budget_alarm(self, budget: CompositionHoursPerDay) -> cloudwatch.Alarm:
        """The day's composition hours (``compositionHoursPerDay``) are spent: the convergence pass counts
        it once per UTC day, so the alarm fires once and is back to OK a period later."""
        refuses = "new compositions are refused until the next UTC day" if budget.blocks else "nothing is refused"
        return self._metric_alarm(
            names.COMPOSITION_BUDGET_ALARM,
            metric=names.METRIC_COMPOSITION_BUDGET_SPENT,
            service="convergence",
            period=Duration.minutes(1),
            description=f"The compositions stagepilot started today (UTC) have run {budget.limit:g} hours, "
            f"the compositionHoursPerDay limit (mode {budget.mode}: {refuses}). `stagepilot status` shows today's "
            "figure; see the runbook a-show-ran-away-with-the-budget.",
        )

    def _flag_bus(self, principals: tuple[str, ...]) -> events.EventBus:
        """The bus flags are put on. Its policy lets ``principals`` put events and denies everyone else by
        ``aws:PrincipalArn``: an explicit Deny, so an identity policy on ``events:*`` cannot put flags."""
        bus = events.EventBus(self, names.FLAG_BUS, description="stagepilot: Participant Flagged events")
        if principals:
            bus.add_to_resource_policy(
                iam.PolicyStatement(
                    sid=names.account_scoped(
                        self.stack_name, "ModerationPrincipalsPutFlags", max_length=names.STATEMENT_ID_MAX
                    ),
                    principals=[iam.ArnPrincipal(arn) for arn in principals],
                    actions=["events:PutEvents"],
                    resources=[bus.event_bus_arn],
                )
            )
        bus.add_to_resource_policy(
            iam.PolicyStatement(
                sid=names.account_scoped(self.stack_name, "NobodyElsePutsFlags", max_length=names.STATEMENT_ID_MAX),
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["events:PutEvents"],
                resources=[bus.event_bus_arn],
                conditions={"ArnNotEquals": {"aws:PrincipalArn": list(principals)}} if principals else None,
            )
        )
        if not principals:
            Annotations.of(bus).add_warning_v2("stagepilot:noModerationPrincipals", NO_MODERATION_PRINCIPALS)
        return bus

    def _redrive_role(self, principals: tuple[str, ...]) -> iam.Role:
        """The one identity the queues take messages from besides their rules (`stagepilot dlq redrive`).
        Its trust policy names the account, and **denies** every principal whose ``aws:PrincipalArn`` is not
        in ``redrivePrincipals`` (an explicit Deny: sts:AssumeRole on '*' in someone's own policy does not
        help); those roles also need OperatorPolicy (or sts:AssumeRole on it). Empty = nobody."""
        role = iam.Role(
            self,
            names.REDRIVE_ROLE,
            assumed_by=iam.AccountRootPrincipal(),
            description="stagepilot dlq redrive: moves dead-letter messages back to their queues (only the "
            "redrivePrincipals roles may assume it)",
        )
        assert role.assume_role_policy is not None
        role.assume_role_policy.add_statements(
            iam.PolicyStatement(
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["sts:AssumeRole"],
                conditions={"ArnNotEquals": {"aws:PrincipalArn": list(principals)}} if principals else None,
            )
        )
        if not principals:
            Annotations.of(role).add_warning_v2("stagepilot:noRedrivePrincipals", NO_REDRIVE_PRINCIPALS)
        return role

    def _let_redrive(self, pipeline: AutomationPipeline) -> None:
        """SQS's own DLQ redrive (StartMessageMoveTask) as the redrive role: the task receives from the DLQ,
        deletes there, and sends to the queue, with the permissions of who started it."""
        self.redrive_role.add_to_principal_policy(
            iam.PolicyStatement(
                sid=f"MoveMessagesOutOf{pipeline.node.id}Dlq",
                actions=[
                    "sqs:StartMessageMoveTask",
                    "sqs:ListMessageMoveTasks",
                    "sqs:CancelMessageMoveTask",
                    "sqs:ReceiveMessage",
                    "sqs:DeleteMessage",
                    "sqs:GetQueueAttributes",
                ],
                resources=[pipeline.dlq.queue_arn],
            )
        )
        pipeline.queue.grant_send_messages(self.redrive_role)

    # -- IVS permissions, per automation ---------------------------------------------------------------

    def _ivs_arn(self, resource: str) -> str:
        return self.format_arn(
            service="ivs", resource=resource, resource_name="*", arn_format=ArnFormat.SLASH_RESOURCE_NAME
        )

    def _stage_resources(self) -> tuple[str, ...]:
        if self.settings.stage_arn_prefixes:
            return tuple(f"{prefix}*" for prefix in self.settings.stage_arn_prefixes)
        return (self._ivs_arn("stage"),)

    def _stage_acknowledgments(self, why: str) -> dict[str, str]:
        return {
            iam5_finding(self.resolve(resource)): (
                f"Stage ids are created by the operator's own tooling and are not known at deploy time; "
                f"{why}. Limit it to some stages with the stageArnPrefixes context."
            )
            for resource in self._stage_resources()
        }

    def _composition_statements(self) -> list[IvsStatement]:
        stages = self._stage_resources()
        start_targets = tuple(
            self._ivs_arn(kind) for kind in ("channel", "encoder-configuration", "storage-configuration")
        )
        compositions = self._ivs_arn("composition")
        return [
            IvsStatement(
                name="ReadStages",
                actions=("ivs:GetStage", "ivs:ListParticipants"),
                resources=stages,
                acknowledgments=self._stage_acknowledgments(
                    "the composition automation reads any stage that starts publishing"
                ),
            ),
            IvsStatement(
                name="StartCompositions",
                actions=("ivs:StartComposition",),
                resources=(*stages, *start_targets),
                acknowledgments={
                    **self._stage_acknowledgments("a composition can start on any stage with a policy"),
                    **{
                        iam5_finding(self.resolve(arn)): (
                            "Channels, encoder and storage configurations are named per stage in the stage "
                            "policies (DynamoDB), which change without a deployment; StartComposition "
                            "authorizes each one it uses."
                        )
                        for arn in start_targets
                    },
                },
            ),
            IvsStatement(
                name="TrackCompositions",
                actions=("ivs:GetComposition", "ivs:TagResource"),
                resources=(compositions,),
                acknowledgments={
                    iam5_finding(self.resolve(compositions)): (
                        "Composition ids are created by StartComposition at run time; TagResource is "
                        "needed for StartComposition with tags, on the composition it creates."
                    )
                },
            ),
            IvsStatement(
                name="ListCompositions",
                actions=("ivs:ListCompositions",),
                resources=("*",),
                acknowledgments={
                    "AwsSolutions-IAM5[Resource::*]": (
                        "ivs:ListCompositions has no required resource type: it is authorized on '*' only. "
                        "It is read-only and is the only action in this statement."
                    )
                },
            ),
        ]

    def _replication_statements(self) -> list[IvsStatement]:
        return [
            IvsStatement(
                name="ReplicateParticipants",
                actions=(
                    "ivs:GetStage",
                    "ivs:GetParticipant",
                    "ivs:ListParticipants",
                    "ivs:ListParticipantEvents",  # is a refused publisher still publishing? (a race, not an error)
                    "ivs:StartParticipantReplication",
                    "ivs:StopParticipantReplication",
                    "ivs:ListParticipantReplicas",
                ),
                resources=self._stage_resources(),
                acknowledgments=self._stage_acknowledgments(
                    "source and destination stages come from the stage policies"
                ),
            )
        ]

    def _convergence_statements(self, automations: dict[str, list[IvsStatement]]) -> list[IvsStatement]:
        """The pass heals through the three automations, so it holds their IVS actions (each statement
        renamed, same resources and reasons), plus ListStages to find what is live and UpdateStage to keep
        the stages' recording settings as their policies say."""
        healing = [
            IvsStatement(
                name=f"{automation.capitalize()}{statement.name}",
                actions=statement.actions,
                resources=statement.resources,
                acknowledgments=statement.acknowledgments,
                conditions=statement.conditions,
            )
            for automation, statements in automations.items()
            for statement in statements
        ]
        listing = IvsStatement(
            name="ListLiveStages",
            actions=("ivs:ListStages",),
            resources=("*",),
            acknowledgments={
                "AwsSolutions-IAM5[Resource::*]": (
                    "ivs:ListStages has no resource type: it is authorized on '*' only. It is read-only, the "
                    "only action in this statement, and how the pass finds the live stages."
                )
            },
        )
        settings = IvsStatement(
            name="ApplyStageSettings",
            # ListStageSessions: who is still recorded on an idle stage that refused its settings
            actions=("ivs:UpdateStage", "ivs:ListStageSessions"),
            resources=self._stage_resources(),
            acknowledgments=self._stage_acknowledgments(
                "the pass puts a stage's recording settings back to its policy (stage.participantRecording)"
            ),
        )
        compositions = self._ivs_arn("composition")
        guard = IvsStatement(
            name="StopManagedCompositions",
            # the policy's limits (docs/policy.md): only compositions stagepilot started, which it tags so
            actions=("ivs:StopComposition",),
            resources=(compositions,),
            acknowledgments={
                iam5_finding(self.resolve(compositions)): (
                    "Composition ids are created by StartComposition at run time; StopComposition is allowed "
                    f"only on compositions tagged {MANAGED_TAG}=true, which stagepilot tags at StartComposition."
                )
            },
            conditions={"StringEquals": {f"aws:ResourceTag/{MANAGED_TAG}": "true"}},
        )
        return [*healing, listing, settings, guard]

    def _moderation_statements(self) -> list[IvsStatement]:
        return [
            IvsStatement(
                name="ModerateParticipants",
                actions=(
                    "ivs:ListStageSessions",  # the live session of a flag that names none (no GetStage share)
                    "ivs:GetParticipant",
                    "ivs:ListParticipants",
                    "ivs:DisconnectParticipant",
                    "ivs:StopParticipantReplication",
                    "ivs:ListParticipantReplicas",
                ),
                resources=self._stage_resources(),
                acknowledgments=self._stage_acknowledgments(
                    "moderation must be able to disconnect a participant from any stage it covers"
                ),
            )
        ]


def iam5_finding(resource: object) -> str:
    """The id cdk-nag gives the AwsSolutions-IAM5 finding for a wildcard ``resource`` (resolved)."""
    return f"AwsSolutions-IAM5[Resource::{_nag_render(resource)}]"


def _nag_render(value: object) -> str:
    """Render a resolved CloudFormation value the way cdk-nag names it in finding ids."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((function, argument),) = value.items()
        if function == "Ref":
            return f"<{argument}>"
        if function == "Fn::GetAtt":
            return f"<{'.'.join(argument) if isinstance(argument, list) else argument}>"
        if function == "Fn::Join":
            delimiter, parts = argument
            return str(delimiter).join(_nag_render(part) for part in parts)
    raise ValueError(f"cannot name the cdk-nag finding for {value!r}")
