"""IAM managed policies for whoever uses stagepilot from outside the stack: people with the CLI, and
the application's token service that checks bans. Attach them to your own roles (stack outputs
``ViewerPolicyArn``, ``OperatorPolicyArn``, ``AdminPolicyArn``, ``BanReaderPolicyArn``); what each
allows, and what it cannot, is in docs/architecture-infra.md ("Who can make stagepilot act").

Each policy lists its statements whole (Operator repeats Viewer's, Admin repeats Operator's): one
policy per role is enough, and a role never needs two of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Acknowledgment, ArnFormat, Stack, Validations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra import names
from infra.pipeline import AutomationPipeline, IvsStatement, audit_statements
from stagepilot.adapters import schema

TABLE_READS = ("dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query")
TABLE_WRITES = ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem")
IVS_STAGE_READS = (
    "ivs:GetStage",
    "ivs:GetStageSession",
    "ivs:ListStageSessions",
    "ivs:GetParticipant",
    "ivs:ListParticipants",
    "ivs:ListParticipantEvents",
    "ivs:ListParticipantReplicas",
)
# The leading keys each level may write (docs/table.md). Operators ban, pause (the kill switch is an item
# of its own, PAUSE) and write claims (STAGE#...); only admins write policies and their history. Audit
# entries (AUDIT#...) are only added, by operators and admins, and nobody updates or deletes one
# (infra/pipeline.py audit_statements).
OPERATOR_KEYS = (schema.BAN_PARTITION, schema.PAUSE_PARTITION, f"{schema.STAGE_PREFIX}*")
ADMIN_KEYS = (schema.POLICY_PARTITION, f"{schema.HISTORY_PREFIX}*")


class OperatorAccess(Construct):
    """``ViewerPolicy``, ``OperatorPolicy``, ``AdminPolicy`` and ``BanReaderPolicy``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        table: dynamodb.ITable,
        pipelines: Sequence[AutomationPipeline],
        flag_bus: events.IEventBus,
        redrive_role: iam.IRole,
        stage_resources: Sequence[str],
        compositions: str,
        convergence_function: lambda_.IFunction,
        ivs_acknowledgments: Mapping[str, str],
    ) -> None:
        """``stage_resources``/``compositions``: the IVS ARNs (wildcards) the functions' roles use too;
        ``ivs_acknowledgments``: the cdk-nag findings they raise, with the reasons.
        ``convergence_function``: what `reconcile`, `policy put|rollback` and `resume` invoke to converge a
        stage: operators hold no IVS write but the manual kick, the function acts with its own role."""
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        queues = [arn for p in pipelines for arn in (p.queue.queue_arn, p.dlq.queue_arn)]
        alarms = stack.format_arn(
            service="cloudwatch",
            resource="alarm",
            resource_name=f"{stack.stack_name}-*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        dlqs = [p.dlq.queue_arn for p in pipelines]

        viewer = [
            iam.PolicyStatement(
                sid="ReadPoliciesBansStateAndAudit",
                actions=list(TABLE_READS),
                resources=[table.table_arn, f"{table.table_arn}/index/{schema.AUDIT_INDEX}"],
            ),
            iam.PolicyStatement(
                sid="FindTheStacksResources", actions=["cloudformation:DescribeStacks"], resources=[stack.stack_id]
            ),
            iam.PolicyStatement(
                sid="CountQueues", actions=["sqs:GetQueueAttributes", "sqs:GetQueueUrl"], resources=queues
            ),
            # `dlq list` / `dlq show` receive with a visibility timeout of 0: they peek without hiding, and a
            # viewer cannot change a message's visibility afterwards (hide it from the DLQ alarm for hours).
            iam.PolicyStatement(sid="PeekDeadLetterQueues", actions=["sqs:ReceiveMessage"], resources=dlqs),
            # `status STAGE_ARN` shows the stack's alarm states (named after the stack: infra/names.py).
            iam.PolicyStatement(sid="ReadAlarmStates", actions=["cloudwatch:DescribeAlarms"], resources=[alarms]),
            # Whatever else a role holding it is allowed: no UpdateItem, DeleteItem, BatchWriteItem on AUDIT#.
            *[s for s in audit_statements(table) if s.effect == iam.Effect.DENY],
        ]
        viewer_ivs = [
            IvsStatement("ReadStages", IVS_STAGE_READS, tuple(stage_resources), {}),
            IvsStatement("ReadCompositions", ("ivs:GetComposition",), (compositions,), {}),
            IvsStatement("ListCompositions", ("ivs:ListCompositions",), ("*",), {}),
            # `status` without a stage and `ban add` find the live stages (no resource type: '*').
            IvsStatement("ListStages", ("ivs:ListStages",), ("*",), {}),
        ]
        # The manual kick (`disconnect`, the `ban add` sweep): the participant, and its replicas after it.
        # No other IVS write: compositions, replications and stage settings are the convergence function's.
        operator_ivs = [
            *viewer_ivs,
            IvsStatement(
                "DisconnectParticipants",
                ("ivs:DisconnectParticipant", "ivs:StopParticipantReplication"),
                tuple(stage_resources),
                {},
            ),
        ]
        operator = [
            *viewer,
            iam.PolicyStatement(
                sid="WriteBansPauseClaimsAndAudit",
                actions=list(TABLE_WRITES),
                resources=[table.table_arn],
                conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": list(OPERATOR_KEYS)}},
            ),
            *[s for s in audit_statements(table) if s.effect == iam.Effect.ALLOW],
            iam.PolicyStatement(sid="PutFlags", actions=["events:PutEvents"], resources=[flag_bus.event_bus_arn]),
            # `reconcile`, `policy put|rollback` and `resume`: the function converges, with its own role.
            iam.PolicyStatement(
                sid="ConvergeThroughTheFunction",
                actions=["lambda:InvokeFunction"],
                resources=[convergence_function.function_arn],
            ),
            # `dlq redrive` sends as the redrive role (the queues take no one else's messages).
            iam.PolicyStatement(sid="Redrive", actions=["sts:AssumeRole"], resources=[redrive_role.role_arn]),
            # `dlq redrive` and `dlq delete` take messages out (and make what they leave visible again);
            # `dlq purge` empties a dead-letter queue.
            iam.PolicyStatement(
                sid="TakeRedrivenMessages",
                actions=["sqs:DeleteMessage", "sqs:PurgeQueue", "sqs:ChangeMessageVisibility"],
                resources=dlqs,
            ),
            *_merged(operator_ivs),
        ]
        viewer.extend(_merged(viewer_ivs))
        admin = [
            *operator,
            iam.PolicyStatement(
                sid="WritePoliciesAndTheirHistory",
                actions=list(TABLE_WRITES),
                resources=[table.table_arn],
                conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": list(ADMIN_KEYS)}},
            ),
        ]
        ban_reader = [
            iam.PolicyStatement(
                sid="ReadBans",
                actions=["dynamodb:GetItem"],
                resources=[table.table_arn],
                conditions={"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [schema.BAN_PARTITION]}},
            )
        ]

        wildcards = {
            **ivs_acknowledgments,
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:cloudwatch:<AWS::Region>:<AWS::AccountId>:alarm:"
            f"{stack.stack_name}-*]": (
                "The stack's alarms are named after the stack (infra/names.py account_scoped); "
                "DescribeAlarms is read-only and `stagepilot status` shows their states."
            ),
        }
        self.viewer = self._policy(names.VIEWER_POLICY, "read policies, bans, audit, status, DLQs", viewer, wildcards)
        self.operator = self._policy(
            names.OPERATOR_POLICY,
            "viewer + ban, disconnect, pause/resume, flag, dlq redrive, reconcile",
            operator,
            wildcards,
        )
        self.admin = self._policy(names.ADMIN_POLICY, "operator + policy put/delete/rollback", admin, wildcards)
        self.ban_reader = self._policy(
            names.BAN_READER_POLICY, "the token service: GetItem on BAN items only", ban_reader, {}
        )

    def _policy(
        self, construct_id: str, what: str, statements: list[iam.PolicyStatement], findings: Mapping[str, str]
    ) -> iam.ManagedPolicy:
        policy = iam.ManagedPolicy(self, construct_id, description=f"stagepilot: {what}", statements=statements)
        for finding, reason in findings.items():
            Validations.of(policy).acknowledge(Acknowledgment(id=finding, reason=reason))
        return policy


def _merged(statements: Sequence[IvsStatement]) -> list[iam.PolicyStatement]:
    """One statement per set of resources: a managed policy holds at most 6,144 characters, and the
    reconcile statements repeat the stage resources (one per stageArnPrefixes entry). A statement keeps
    its name when nothing was merged into it, else it is named after the statements it holds."""
    groups: dict[tuple[str, ...], tuple[list[str], list[str]]] = {}
    for statement in statements:
        merged, actions = groups.setdefault(statement.resources, ([], []))
        merged.append(statement.name)
        actions.extend(a for a in statement.actions if a not in actions)
    return [
        iam.PolicyStatement(
            sid=merged[0] if len(merged) == 1 else "".join(merged)[:120], actions=sorted(actions), resources=list(r)
        )
        for r, (merged, actions) in groups.items()
    ]
