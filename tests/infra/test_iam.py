"""Each function's role holds exactly its own permissions, scoped to its own resources."""

from __future__ import annotations

from typing import Any

import pytest

from stagepilot import budget
from tests.infra.conftest import CUSTOM_CONTEXT, Synthesized

IVS_ACTIONS = {
    "composition": {
        "ivs:GetStage",
        "ivs:ListParticipants",
        "ivs:StartComposition",
        "ivs:GetComposition",
        "ivs:TagResource",
        "ivs:ListCompositions",
    },
    "replication": {
        "ivs:GetStage",
        "ivs:GetParticipant",
        "ivs:ListParticipants",
        "ivs:ListParticipantEvents",
        "ivs:StartParticipantReplication",
        "ivs:StopParticipantReplication",
        "ivs:ListParticipantReplicas",
    },
    "moderation": {
        "ivs:ListStageSessions",  # not GetStage: moderation has no share of it (stagepilot.budget)
        "ivs:GetParticipant",
        "ivs:ListParticipants",
        "ivs:DisconnectParticipant",
        "ivs:StopParticipantReplication",
        "ivs:ListParticipantReplicas",
    },
}
STAGE_ACTIONS = {
    "ivs:GetStage",
    "ivs:ListParticipantEvents",
    "ivs:GetParticipant",
    "ivs:ListParticipants",
    "ivs:StartComposition",
    "ivs:StartParticipantReplication",
    "ivs:StopParticipantReplication",
    "ivs:ListParticipantReplicas",
    "ivs:DisconnectParticipant",
}
ALL_STAGES = {
    "Fn::Join": [
        "",
        [
            "arn:",
            {"Ref": "AWS::Partition"},
            ":ivs:",
            {"Ref": "AWS::Region"},
            ":",
            {"Ref": "AWS::AccountId"},
            ":stage/*",
        ],
    ]
}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements(synthesized: Synthesized, automation: str) -> list[dict[str, Any]]:
    """Every statement of every policy attached to the automation's role."""
    role = {"Ref": synthesized.logical_id(synthesized.stack.pipelines[automation].role)}
    return [
        statement
        for policy in synthesized.template.find_resources("AWS::IAM::Policy").values()
        if role in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _actions(statements: list[dict[str, Any]], prefix: str) -> set[str]:
    return {action for statement in statements for action in _as_list(statement["Action"]) if action.startswith(prefix)}


@pytest.mark.parametrize("automation", list(IVS_ACTIONS))
def test_each_role_has_exactly_its_ivs_actions(deployed: Synthesized, automation: str) -> None:
    assert _actions(_statements(deployed, automation), "ivs:") == IVS_ACTIONS[automation]


@pytest.mark.parametrize("automation", list(IVS_ACTIONS))
def test_each_operation_in_an_automations_ivs_budget_is_one_its_role_may_call(
    deployed: Synthesized, automation: str
) -> None:
    """The budget map (stagepilot.budget) and the roles agree: a share of an operation nobody may call would
    be quota taken from the others for nothing, and a call the map lacks is caught by the call-map test."""
    granted = _actions(_statements(deployed, automation), "ivs:")
    assert {f"ivs:{operation}" for operation in budget.operations_of(automation)} <= granted


def test_roles_cannot_do_each_others_work(deployed: Synthesized) -> None:
    assert "ivs:DisconnectParticipant" not in _actions(_statements(deployed, "composition"), "ivs:")
    assert "ivs:StartComposition" not in _actions(_statements(deployed, "moderation"), "ivs:")


def test_no_wildcard_actions_and_star_resource_only_for_the_two_listings(deployed: Synthesized) -> None:
    # ivs:ListCompositions and ivs:ListStages have no resource type: '*' is the only way to allow them
    for policy in deployed.template.find_resources("AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = _as_list(statement["Action"])
            assert not any(action.endswith("*") for action in actions), statement
            if "*" in _as_list(statement["Resource"]):
                assert actions in (["ivs:ListCompositions"], ["ivs:ListStages"]), statement


def test_the_convergence_pass_holds_the_automations_actions_and_list_stages(deployed: Synthesized) -> None:
    role = {"Ref": deployed.logical_id(deployed.stack.convergence.role)}
    statements = [
        statement
        for policy in deployed.template.find_resources("AWS::IAM::Policy").values()
        if role in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    assert _actions(statements, "ivs:") == set().union(*IVS_ACTIONS.values()) | {
        "ivs:ListStages",
        "ivs:UpdateStage",
        "ivs:ListStageSessions",
        "ivs:StopComposition",
    }
    assert {f"ivs:{operation}" for operation in budget.operations_of(budget.CONVERGENCE)} <= _actions(
        statements, "ivs:"
    )
    # It gives back the replication claims it could not use, as the automations do (test_permissions.py);
    # on STAGE# items only (test_access.py).
    assert "dynamodb:DeleteItem" in _actions(statements, "dynamodb:")


def test_stop_composition_only_on_compositions_stagepilot_tagged_and_only_for_the_pass(deployed: Synthesized) -> None:
    """The policy's limits stop compositions (docs/policy.md, "What a stage may cost"): only the pass may,
    and only those stagepilot started (tagged stagepilot:managed=true at StartComposition)."""
    convergence = {"Ref": deployed.logical_id(deployed.stack.convergence.role)}
    found = [
        (policy["Properties"]["Roles"], statement)
        for policy in deployed.template.find_resources("AWS::IAM::Policy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if "ivs:StopComposition" in _as_list(statement["Action"])
    ]
    assert [roles for roles, _ in found] == [[convergence]]
    [(_, statement)] = found
    assert _as_list(statement["Action"]) == ["ivs:StopComposition"]
    assert statement["Condition"] == {"StringEquals": {"aws:ResourceTag/stagepilot:managed": "true"}}
    assert all(":composition/" in str(resource) for resource in _as_list(statement["Resource"]))
    for automation in IVS_ACTIONS:
        assert "ivs:StopComposition" not in _actions(_statements(deployed, automation), "ivs:")


def test_roles_use_no_managed_policies(deployed: Synthesized) -> None:
    for role in deployed.template.find_resources("AWS::IAM::Role").values():
        assert "ManagedPolicyArns" not in role["Properties"]


@pytest.mark.parametrize("automation", list(IVS_ACTIONS))
def test_own_logs_table_and_queues_only(deployed: Synthesized, automation: str) -> None:
    pipeline = deployed.stack.pipelines[automation]
    statements = _statements(deployed, automation)

    def resources_for(action: str) -> list[Any]:
        return [
            resource
            for statement in statements
            if action in _as_list(statement["Action"])
            for resource in _as_list(statement["Resource"])
        ]

    def arn(construct: Any) -> dict[str, Any]:
        return {"Fn::GetAtt": [deployed.logical_id(construct), "Arn"]}

    assert resources_for("logs:PutLogEvents") == [arn(pipeline.log_group)]
    assert resources_for("logs:CreateLogStream") == [arn(pipeline.log_group)]
    table_actions = {"GetItem", "BatchGetItem", "Query", "PutItem", "UpdateItem", "DeleteItem"}
    allowed = [s for s in statements if s["Effect"] == "Allow"]
    assert _actions(allowed, "dynamodb:") == {f"dynamodb:{action}" for action in table_actions}
    for action in table_actions:  # PutItem twice: automation state, and audit entries (test_access.py)
        assert {str(r) for r in resources_for(f"dynamodb:{action}")} == {str(arn(deployed.stack.table))}
    [denied] = [s for s in statements if s["Effect"] == "Deny"]  # nobody rewrites the audit trail
    assert sorted(_as_list(denied["Action"])) == [
        "dynamodb:BatchWriteItem",
        "dynamodb:DeleteItem",
        "dynamodb:UpdateItem",
    ]
    assert resources_for("sqs:SendMessage") == [arn(pipeline.dlq)]
    assert set(map(str, resources_for("sqs:ChangeMessageVisibility"))) == {str(arn(pipeline.queue))}


def _stage_resources(synthesized: Synthesized, automation: str) -> list[Any]:
    resources: list[Any] = []
    for statement in _statements(synthesized, automation):
        if set(_as_list(statement["Action"])) & STAGE_ACTIONS:
            resources.extend(r for r in _as_list(statement["Resource"]) if ":stage/" in str(r) or r == ALL_STAGES)
    return resources


@pytest.mark.parametrize("automation", list(IVS_ACTIONS))
def test_stage_actions_cover_all_stages_of_the_account_by_default(deployed: Synthesized, automation: str) -> None:
    resources = _stage_resources(deployed, automation)
    assert resources and all(resource == ALL_STAGES for resource in resources)


@pytest.mark.parametrize("automation", list(IVS_ACTIONS))
def test_stage_arn_prefixes_limit_stage_actions(customized: Synthesized, automation: str) -> None:
    prefixed = {f"{prefix}*" for prefix in CUSTOM_CONTEXT["stageArnPrefixes"]}
    resources = _stage_resources(customized, automation)
    assert set(resources) == prefixed
    assert ALL_STAGES not in resources
    # The function is told the same prefixes, so it skips the stages it may not act on.
    function = customized.resources[customized.logical_id(customized.stack.pipelines[automation].function)]
    variables = function["Properties"]["Environment"]["Variables"]
    assert variables["STAGEPILOT_STAGE_ARN_PREFIXES"] == (
        '["arn:aws:ivs:us-east-1:123456789012:stage/Show", "arn:aws:ivs:us-east-1:123456789012:stage/Studio"]'
    )


def _resource_type(resource: Any) -> str:
    """``stage/*`` from ``Fn::Join [..., ":stage/*"]`` or from a literal ARN."""
    text = resource["Fn::Join"][1][-1] if isinstance(resource, dict) else resource
    return str(text).rsplit(":", 1)[-1]


def test_composition_targets_and_compositions_are_scoped_by_type(deployed: Synthesized) -> None:
    statements = _statements(deployed, "composition")

    def types_for(action: str) -> set[str]:
        return {
            _resource_type(resource)
            for statement in statements
            if action in _as_list(statement["Action"])
            for resource in _as_list(statement["Resource"])
        }

    assert types_for("ivs:StartComposition") == {
        "stage/*",
        "channel/*",
        "encoder-configuration/*",
        "storage-configuration/*",
    }
    assert types_for("ivs:GetComposition") == {"composition/*"}
    assert types_for("ivs:TagResource") == {"composition/*"}
    assert types_for("ivs:ListCompositions") == {"*"}
