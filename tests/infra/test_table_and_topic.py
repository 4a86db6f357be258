"""The table keeps its data; the alarm topic is encrypted so that CloudWatch can still publish."""

from __future__ import annotations

from stagepilot.adapters import schema
from tests.infra.conftest import CUSTOM_CONTEXT, Synthesized


def test_table_is_on_demand_recoverable_expiring_and_retained(deployed: Synthesized) -> None:
    from aws_cdk.assertions import Match

    deployed.template.has_resource(
        "AWS::DynamoDB::Table",
        {
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": Match.object_like(
                {
                    "KeySchema": [
                        {"AttributeName": schema.PARTITION_KEY, "KeyType": "HASH"},
                        {"AttributeName": schema.SORT_KEY, "KeyType": "RANGE"},
                    ],
                    "BillingMode": "PAY_PER_REQUEST",
                    "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
                    "TimeToLiveSpecification": {"AttributeName": schema.TTL_ATTRIBUTE, "Enabled": True},
                    "GlobalSecondaryIndexes": [
                        {
                            "IndexName": schema.AUDIT_INDEX,
                            "KeySchema": [
                                {"AttributeName": schema.AUDIT_INDEX_PARTITION_KEY, "KeyType": "HASH"},
                                {"AttributeName": schema.AUDIT_INDEX_SORT_KEY, "KeyType": "RANGE"},
                            ],
                            "Projection": {"ProjectionType": "ALL"},
                        }
                    ],
                }
            ),
        },
    )
    (table,) = deployed.template.find_resources("AWS::DynamoDB::Table").values()
    attributes = {a["AttributeName"]: a["AttributeType"] for a in table["Properties"]["AttributeDefinitions"]}
    assert attributes == {
        schema.PARTITION_KEY: "S",
        schema.SORT_KEY: "S",
        schema.AUDIT_INDEX_PARTITION_KEY: "S",
        schema.AUDIT_INDEX_SORT_KEY: "S",
    }
    # AWS-owned/managed encryption: no customer key on the table.
    assert "KMSMasterKeyId" not in table["Properties"].get("SSESpecification", {})


def test_alarm_topic_uses_a_rotated_key_cloudwatch_may_use(deployed: Synthesized) -> None:
    topic = deployed.resources[deployed.logical_id(deployed.stack.alarm_topic)]["Properties"]
    key_id = topic["KmsMasterKeyId"]["Fn::GetAtt"][0]
    key = deployed.resources[key_id]["Properties"]
    assert key["EnableKeyRotation"] is True
    cloudwatch_statements = [
        s for s in key["KeyPolicy"]["Statement"] if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert cloudwatch_statements
    assert {"kms:Decrypt", "kms:GenerateDataKey*"} <= {a for s in cloudwatch_statements for a in s["Action"]}


def test_alarm_topic_refuses_plain_http(deployed: Synthesized) -> None:
    (policy,) = deployed.template.find_resources("AWS::SNS::TopicPolicy").values()
    assert any(
        s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
    )


def test_email_subscription_only_when_an_address_is_given(deployed: Synthesized, customized: Synthesized) -> None:
    assert deployed.template.find_resources("AWS::SNS::Subscription") == {}
    customized.template.has_resource_properties(
        "AWS::SNS::Subscription",
        {
            "Protocol": "email",
            "Endpoint": CUSTOM_CONTEXT["alarmEmail"],
            "TopicArn": {"Ref": customized.logical_id(customized.stack.alarm_topic)},
        },
    )
