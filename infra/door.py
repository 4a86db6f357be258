"""The door (docs/door.md): the token function behind a Function URL with ``AWS_IAM`` auth, its role, and the
managed policy a backend's role is given to call it (stack outputs ``TokenUrl``, ``TokenIssuerPolicyArn``).

Least privilege: the role reads only the items a decision needs (``BAN``, ``POLICY``, ``PAUSE`` and the
signing-key item ``DOOR``, by ``dynamodb:LeadingKeys``), writes only token records and its audit entries
(``TOKEN#…``, ``STAGE#…``), signs only with the door's KMS keys (tagged ``stagepilot:door`` = the stack's
name, made by ``stagepilot keys rotate``), and calls IVS's GetStage (signed mode) or CreateParticipantToken
(``tokenMode: "create"``) on stages only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra import names
from infra.bundling import acknowledge_runtime
from infra.pipeline import IvsStatement, audit_statements, ivs_policies, stagepilot_function
from stagepilot import config
from stagepilot.adapters import schema
from stagepilot.door import keys, signing, wiring

TOKEN_TIMEOUT_SECONDS = 10  # one BatchGetItem, one KMS Sign, one TransactWriteItems: well under a second


class TokenDoor(Construct):
    """Function URL (AWS_IAM) -> the token function; its role; the backend's managed policy."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        table: dynamodb.ITable,
        code: lambda_.Code,
        stage_resources: Sequence[str],
        stage_acknowledgments: Mapping[str, str],
        settings_env: Mapping[str, str],
        token_mode: str,
    ) -> None:
        super().__init__(scope, construct_id)
        if token_mode not in wiring.TOKEN_MODES:
            raise ValueError(f"tokenMode: {token_mode!r} must be one of {', '.join(wiring.TOKEN_MODES)}")
        stack = Stack.of(self)
        self.log_group = logs.LogGroup(
            self, names.LOG_GROUP, retention=logs.RetentionDays.ONE_MONTH, removal_policy=RemovalPolicy.DESTROY
        )
        self.role = iam.Role(
            self,
            names.ROLE,
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="stagepilot door: issues participant tokens",
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
                iam.PolicyStatement(
                    sid="ReadBansPoliciesAndTheSigningKey",
                    actions=["dynamodb:GetItem", "dynamodb:BatchGetItem"],
                    resources=[table.table_arn],
                    conditions={
                        "ForAllValues:StringEquals": {
                            "dynamodb:LeadingKeys": [
                                schema.BAN_PARTITION,
                                schema.POLICY_PARTITION,
                                schema.PAUSE_PARTITION,
                                keys.KEY_PARTITION,
                            ]
                        }
                    },
                ),
                # The token's record and its audit entry: one TransactWriteItems (authorized item by item
                # as PutItem); no BatchWriteItem, whose requests may delete.
                iam.PolicyStatement(
                    sid="WriteTokenRecords",
                    actions=["dynamodb:PutItem"],
                    resources=[table.table_arn],
                    conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{schema.TOKEN_PREFIX}*"]}},
                ),
                *audit_statements(table),
            ],
        )
        policies = [execution]
        if token_mode == "signed":
            signer = iam.Policy(
                self,
                names.DOOR_SIGNING_POLICY,
                statements=[
                    iam.PolicyStatement(
                        sid="SignWithTheDoorsKeys",
                        actions=["kms:Sign"],
                        resources=[stack.format_arn(service="kms", resource="key", resource_name="*")],
                        conditions={
                            "StringEquals": {
                                f"aws:ResourceTag/{keys.MANAGED_TAG}": stack.stack_name,
                                "kms:SigningAlgorithm": signing.KMS_SIGNING_ALGORITHM,
                            }
                        },
                    )
                ],
            )
            Validations.of(signer).acknowledge(
                Acknowledgment(
                    id="AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:kms:<AWS::Region>:<AWS::AccountId>:key/*]",
                    reason="The door's KMS keys are made by `stagepilot keys rotate` after deployment; Sign is "
                    "limited to keys tagged stagepilot:door=<stack name> and to ECDSA_SHA_384.",
                )
            )
            policies.append(signer)
        action = "ivs:GetStage" if token_mode == "signed" else "ivs:CreateParticipantToken"
        policies += ivs_policies(
            self,
            [
                IvsStatement(
                    name="IssueTokens",
                    actions=(action,),
                    resources=tuple(stage_resources),
                    acknowledgments=stage_acknowledgments,
                )
            ],
        )
        for policy in policies:
            self.role.attach_inline_policy(policy)

        self.function = stagepilot_function(
            self,
            description="stagepilot door: participant tokens by policy (docs/door.md)",
            handler="stagepilot.handlers.token.lambda_handler",
            code=code,
            timeout=Duration.seconds(TOKEN_TIMEOUT_SECONDS),
            role=self.role,
            log_group=self.log_group,
            service="door",
            # create mode: CreateParticipantToken is paced per container under IVS's 50 TPS
            reserved_concurrent_executions=signing.CREATE_MODE_CONCURRENCY if token_mode == "create" else None,
            environment={
                config.ENV_TABLE: table.table_name,
                wiring.ENV_TOKEN_MODE: token_mode,
                **settings_env,
            },
        )
        acknowledge_runtime(self.function)
        for policy in policies:
            self.function.node.add_dependency(policy)
        self.url = self.function.add_function_url(auth_type=lambda_.FunctionUrlAuthType.AWS_IAM)

        self.issuer_policy = iam.ManagedPolicy(
            self,
            names.TOKEN_ISSUER_POLICY,
            description="stagepilot door: give this to the backend's role that asks for participant tokens",
            statements=[
                iam.PolicyStatement(
                    sid="AskTheDoorForTokens",
                    actions=["lambda:InvokeFunctionUrl"],
                    resources=[self.function.function_arn],
                    conditions={"StringEquals": {"lambda:FunctionUrlAuthType": "AWS_IAM"}},
                ),
                # Since October 2025 a function URL also needs lambda:InvokeFunction (Lambda's urls-auth guide).
                iam.PolicyStatement(
                    sid="InvokeThroughTheUrl",
                    actions=["lambda:InvokeFunction"],
                    resources=[self.function.function_arn],
                ),
            ],
        )
