"""Two stacks in one account and region (StagePilot and StagePilot-staging) share no account-scoped name.

Names CloudFormation must keep unique per account and region — rule, alarm and dashboard names, event-bus
policy statement ids (aws-cdk#29627), exports — all start with the stack's own name (infra/names.py).
"""

from __future__ import annotations

from typing import Any

import pytest

from infra import names
from tests.infra.conftest import Synthesized

# Per resource type, the properties that name it in the account and region (not inside a parent: an
# inline IAM policy's PolicyName is the role's business). Resource types a later change adds with a name
# of this kind belong here.
ACCOUNT_SCOPED: dict[str, tuple[str, ...]] = {
    "AWS::Events::Rule": ("Name",),
    "AWS::Events::EventBus": ("Name",),
    "AWS::Events::EventBusPolicy": ("StatementId",),
    "AWS::CloudWatch::Alarm": ("AlarmName",),
    "AWS::CloudWatch::CompositeAlarm": ("AlarmName",),
    "AWS::CloudWatch::Dashboard": ("DashboardName",),
    "AWS::SQS::Queue": ("QueueName",),
    "AWS::SNS::Topic": ("TopicName",),
    "AWS::Lambda::Function": ("FunctionName",),
    "AWS::IAM::Role": ("RoleName",),
    "AWS::IAM::ManagedPolicy": ("ManagedPolicyName",),
    "AWS::Logs::LogGroup": ("LogGroupName",),
    "AWS::DynamoDB::Table": ("TableName",),
    "AWS::KMS::Alias": ("AliasName",),
    "AWS::Scheduler::Schedule": ("Name",),
    "AWS::CloudTrail::Trail": ("TrailName",),
}


def account_scoped_names(synthesized: Synthesized) -> dict[str, str]:
    """Every account-scoped name the template sets, by where it is set (``LogicalId.Property``)."""
    found = {}
    for logical_id, resource in synthesized.resources.items():
        for prop in ACCOUNT_SCOPED.get(resource["Type"], ()):
            if prop in resource.get("Properties", {}):
                found[f"{logical_id}.{resource['Type']}.{prop}"] = resource["Properties"][prop]
    for output_id, output in synthesized.template.to_json().get("Outputs", {}).items():
        if "Export" in output:
            found[f"{output_id}.Output.Export"] = output["Export"]["Name"]
    return found


def test_two_stacks_in_one_account_and_region_share_no_account_scoped_name(
    deployed: Synthesized, staging: Synthesized
) -> None:
    production, second = account_scoped_names(deployed), account_scoped_names(staging)
    kinds = sorted(where.split(".", 1)[1] for where in production)
    assert kinds == sorted(where.split(".", 1)[1] for where in second)  # the same resources, named apart
    # The kinds the issue names are all there: rules, alarms, the dashboard, the bus statement.
    assert {kind.rsplit(".", 1)[1] for kind in kinds} >= {"Name", "AlarmName", "DashboardName", "StatementId"}
    for synthesized, found in ((deployed, production), (staging, second)):
        stack_name = synthesized.stack.stack_name
        for where, name in found.items():
            assert isinstance(name, str), f"{where} is not a literal name: {name!r}"
            # Derived from the stack's name (CDK's generated names drop the '-'; CDK prefixes statement ids).
            assert stack_name in name or stack_name.replace("-", "") in name, (where, name)
    shared = set(production.values()) & set(second.values())
    assert not shared, f"names both stacks would claim in one account and region: {sorted(shared)}"


def test_every_alarm_notifies_its_own_stacks_topic(deployed: Synthesized, staging: Synthesized) -> None:
    """`stagepilot status` keeps exactly the alarms that notify the stack's AlarmTopicArn (its output)."""
    for synthesized in (deployed, staging):
        topic = {"Ref": synthesized.logical_id(synthesized.stack.alarm_topic)}
        alarms = synthesized.template.find_resources("AWS::CloudWatch::Alarm")
        assert alarms
        for logical_id, alarm in alarms.items():
            assert alarm["Properties"]["AlarmActions"] == [topic], logical_id


def test_a_long_name_is_cut_with_a_hash_and_stays_unique() -> None:
    first = names.account_scoped("S" * 100 + "-a", "CompositionPublished", max_length=names.RULE_NAME_MAX)
    second = names.account_scoped("S" * 100 + "-b", "CompositionPublished", max_length=names.RULE_NAME_MAX)
    assert len(first) == len(second) == names.RULE_NAME_MAX
    assert first.startswith("S" * 40) and first != second
    assert names.account_scoped("StagePilot", "Operations", max_length=64) == "StagePilot-Operations"


@pytest.mark.parametrize("part", ["", "a b", "x/y", "-lead"])
def test_a_name_part_an_aws_name_cannot_hold_is_refused(part: Any) -> None:
    with pytest.raises(ValueError, match="account-scoped"):
        names.account_scoped("StagePilot", part, max_length=64)
