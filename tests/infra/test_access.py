"""Who can make stagepilot act, as the template says it: the flag bus's policy, the queues' policies, the
function roles' table conditions, and the managed policies for people and the token service.

IAM cannot be run offline (moto does not enforce it), so the statements are evaluated here the way IAM
evaluates them for the few condition operators the stack uses: enough to show who is refused.
"""

from __future__ import annotations

import fnmatch
import json
from typing import Any

import pytest

from tests.infra.conftest import CUSTOM_CONTEXT, Synthesized
from tests.infra.test_iam import _statements

AUTOMATIONS = ["composition", "replication", "moderation"]
TRUST_AND_SAFETY = CUSTOM_CONTEXT["moderationPrincipals"][0]
SOMEONE_ELSE = "arn:aws:iam::123456789012:role/Admin"
STAGE = "arn:aws:ivs:us-east-1:123456789012:stage/MainStage0001"


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _arn(synthesized: Synthesized, construct: Any) -> dict[str, Any]:
    return {"Fn::GetAtt": [synthesized.logical_id(construct), "Arn"]}


def _conditions_hold(conditions: dict[str, Any], context: dict[str, Any]) -> bool:
    """IAM's verdict on a condition block, for the operators used in this stack. A key missing from the
    request context makes a negated operator (ArnNotEquals) true and a positive one false."""
    for operator, keys in conditions.items():
        for key, wanted in keys.items():
            wanted = _as_list(wanted)
            value = context.get(key)
            if operator == "ArnNotEquals":
                if value is not None and value in wanted:
                    return False
            elif operator == "ForAllValues:StringLike":
                if not all(any(fnmatch.fnmatchcase(v, w) for w in wanted) for v in _as_list(value or [])):
                    return False
            elif operator == "ForAllValues:StringEquals":
                if not all(v in wanted for v in _as_list(value or [])):
                    return False
            else:
                raise AssertionError(f"operator {operator} not modelled")
    return True


def _allows(statements: list[dict[str, Any]], action: str, resource: Any, context: dict[str, Any]) -> bool:
    """Identity-policy verdict: some Allow statement for ``action`` on ``resource`` whose conditions hold."""
    return any(
        statement["Effect"] == "Allow"
        and action in _as_list(statement["Action"])
        and resource in _as_list(statement["Resource"])
        and _conditions_hold(statement.get("Condition", {}), context)
        for statement in statements
    )


# the flag bus ----------------------------------------------------------------------------------------
def _bus_statements(synthesized: Synthesized) -> list[dict[str, Any]]:
    bus = {"Ref": synthesized.logical_id(synthesized.stack.flag_bus)}
    return [
        policy["Properties"]["Statement"]
        for policy in synthesized.template.find_resources("AWS::Events::EventBusPolicy").values()
        if policy["Properties"]["EventBusName"] == bus
    ]


def _may_put_flags(synthesized: Synthesized, principal_arn: str) -> bool:
    """Resource-policy verdict for a principal of the account: an explicit Deny wins over any Allow,
    including the principal's own identity policy on events:* (assumed here)."""
    return not any(
        statement["Effect"] == "Deny"
        and statement["Action"] == "events:PutEvents"
        and _conditions_hold(statement.get("Condition", {}), {"aws:PrincipalArn": principal_arn})
        for statement in _bus_statements(synthesized)
    )


def test_only_the_moderation_principals_may_put_flags(customized: Synthesized) -> None:
    assert _may_put_flags(customized, TRUST_AND_SAFETY)
    assert _may_put_flags(customized, CUSTOM_CONTEXT["moderationPrincipals"][1])
    assert not _may_put_flags(customized, SOMEONE_ELSE)  # even with events:* on '*' in its own policy
    bus_arn = _arn(customized, customized.stack.flag_bus)
    [deny] = [s for s in _bus_statements(customized) if s["Effect"] == "Deny"]
    assert deny == {
        "Sid": "cdk-StagePilot-NobodyElsePutsFlags",
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Action": "events:PutEvents",
        "Resource": bus_arn,
        "Condition": {"ArnNotEquals": {"aws:PrincipalArn": CUSTOM_CONTEXT["moderationPrincipals"]}},
    }
    allowed = [s["Principal"]["AWS"] for s in _bus_statements(customized) if s["Effect"] == "Allow"]
    assert [sorted(_as_list(p)) for p in allowed] == [sorted(CUSTOM_CONTEXT["moderationPrincipals"])]


def test_without_moderation_principals_nobody_may_put_flags(deployed: Synthesized) -> None:
    assert not _may_put_flags(deployed, TRUST_AND_SAFETY)
    assert [s["Effect"] for s in _bus_statements(deployed)] == ["Deny"]


def test_flags_are_taken_from_the_flag_bus_and_ivs_events_from_the_default_bus(deployed: Synthesized) -> None:
    bus = {"Ref": deployed.logical_id(deployed.stack.flag_bus)}
    rules = [
        r for r in deployed.template.find_resources("AWS::Events::Rule").values() if "EventPattern" in r["Properties"]
    ]
    on_flag_bus = [r["Properties"]["EventPattern"]["detail-type"] for r in rules if r["Properties"].get("EventBusName")]
    assert on_flag_bus == [["Participant Flagged"]]
    assert all(r["Properties"]["EventBusName"] == bus for r in rules if r["Properties"].get("EventBusName"))
    ivs_rules = [r for r in rules if r["Properties"]["EventPattern"]["source"] == ["aws.ivs"]]
    assert len(ivs_rules) == 5 and all("EventBusName" not in r["Properties"] for r in ivs_rules)  # recording too


@pytest.mark.parametrize(
    "principal",
    ["arn:aws:iam::123456789012:user/alice", "arn:aws:iam::123456789012:role/*", "role/moderation", ""],
)
def test_moderation_principals_must_be_role_arns(principal: str) -> None:
    from infra.stack import StagePilotSettings

    with pytest.raises(ValueError, match="moderationPrincipals"):
        StagePilotSettings(moderation_principals=(principal,))


# the queues ------------------------------------------------------------------------------------------
def _queue_statements(synthesized: Synthesized, queue: Any) -> list[dict[str, Any]]:
    ref = {"Ref": synthesized.logical_id(queue)}
    return [
        statement
        for policy in synthesized.template.find_resources("AWS::SQS::QueuePolicy").values()
        if ref in policy["Properties"]["Queues"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _may_send(synthesized: Synthesized, queue: Any, context: dict[str, Any]) -> bool:
    """False when a Deny of the queue's policy applies to an SQS SendMessage with this request context."""
    return not any(
        statement["Effect"] == "Deny"
        and "sqs:SendMessage" in _as_list(statement["Action"])
        and "aws:SecureTransport" not in str(statement.get("Condition"))
        and _conditions_hold(statement.get("Condition", {}), context)
        for statement in _queue_statements(synthesized, queue)
    )


@pytest.mark.parametrize("automation", AUTOMATIONS)
def test_queues_take_messages_only_from_their_rules_and_the_stacks_roles(
    deployed: Synthesized, automation: str
) -> None:
    stack = deployed.stack
    pipeline = stack.pipelines[automation]
    own_rules = [_arn(deployed, rule) for rule in pipeline.rules]
    other_rule = _arn(deployed, stack.pipelines[next(a for a in AUTOMATIONS if a != automation)].rules[0])
    function_role = _arn(deployed, pipeline.role)
    redrive_role = _arn(deployed, stack.redrive_role)
    developer = {"aws:PrincipalArn": SOMEONE_ELSE}

    for queue in (pipeline.queue, pipeline.dlq):
        for rule in own_rules:
            assert _may_send(deployed, queue, {"aws:SourceArn": rule}), (queue, rule)
        assert not _may_send(deployed, queue, {"aws:SourceArn": other_rule})
        assert not _may_send(deployed, queue, developer)  # an identity policy on sqs:* does not help
    # The function parks malformed events in its own DLQ; `dlq redrive` sends to the queue as the redrive role.
    assert _may_send(deployed, pipeline.dlq, {"aws:PrincipalArn": function_role})
    assert not _may_send(deployed, pipeline.queue, {"aws:PrincipalArn": function_role})
    assert _may_send(deployed, pipeline.queue, {"aws:PrincipalArn": redrive_role})
    assert not _may_send(deployed, pipeline.dlq, {"aws:PrincipalArn": redrive_role})


def _may_assume_redrive(synthesized: Synthesized, principal_arn: str) -> bool:
    """Trust-policy verdict for a principal of the account that holds sts:AssumeRole on the role."""
    role = synthesized.resources[synthesized.logical_id(synthesized.stack.redrive_role)]["Properties"]
    trust = role["AssumeRolePolicyDocument"]["Statement"]
    context = {"aws:PrincipalArn": principal_arn}
    denied = any(
        s["Effect"] == "Deny" and s["Principal"] == {"AWS": "*"} and _conditions_hold(s.get("Condition", {}), context)
        for s in trust
    )
    allowed = any(s["Effect"] == "Allow" and s["Principal"]["AWS"]["Fn::Join"][1][-1] == ":root" for s in trust)
    return allowed and not denied


def test_only_the_redrive_principals_may_assume_the_redrive_role(
    deployed: Synthesized, customized: Synthesized
) -> None:
    operators = CUSTOM_CONTEXT["redrivePrincipals"][0]
    assert _may_assume_redrive(customized, operators)
    assert not _may_assume_redrive(customized, SOMEONE_ELSE)  # even an admin with sts:AssumeRole on '*'
    assert not _may_assume_redrive(customized, TRUST_AND_SAFETY)
    assert not _may_assume_redrive(deployed, operators)  # none named: nobody
    assert not _may_assume_redrive(deployed, SOMEONE_ELSE)


@pytest.mark.parametrize("automation", AUTOMATIONS)
def test_each_dlq_takes_failed_messages_from_its_own_queue_only(deployed: Synthesized, automation: str) -> None:
    pipeline = deployed.stack.pipelines[automation]
    dlq = deployed.resources[deployed.logical_id(pipeline.dlq)]["Properties"]
    queue = deployed.resources[deployed.logical_id(pipeline.queue)]["Properties"]
    assert queue["QueueName"] == f"StagePilot-{automation.capitalize()}-Queue"
    [source] = dlq["RedriveAllowPolicy"]["sourceQueueArns"]
    assert dlq["RedriveAllowPolicy"]["redrivePermission"] == "byQueue"
    assert source["Fn::Join"][1][-1] == f":StagePilot-{automation.capitalize()}-Queue"
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == _arn(deployed, pipeline.dlq)


def test_the_redrive_role_moves_dead_letters_back_and_sends_only_to_the_queues(deployed: Synthesized) -> None:
    stack = deployed.stack
    statements = [
        s
        for policy in deployed.template.find_resources("AWS::IAM::Policy").values()
        if {"Ref": deployed.logical_id(stack.redrive_role)} in policy["Properties"]["Roles"]
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    sent_to = [r for s in statements if "sqs:SendMessage" in _as_list(s["Action"]) for r in _as_list(s["Resource"])]
    assert sorted(map(str, sent_to)) == sorted(str(_arn(deployed, p.queue)) for p in stack.pipelines.values())
    for pipeline in stack.pipelines.values():  # SQS's own redrive (StartMessageMoveTask) out of each DLQ
        for action in (
            "sqs:StartMessageMoveTask",
            "sqs:ListMessageMoveTasks",
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
        ):
            assert _allows(statements, action, _arn(deployed, pipeline.dlq), {}), action
            assert not _allows(statements, action, _arn(deployed, pipeline.queue), {}), action


def test_viewers_peek_at_dead_letters_without_changing_their_visibility(deployed: Synthesized) -> None:
    access = deployed.stack.access
    for policy, operates in ((access.viewer, False), (access.operator, True), (access.admin, True)):
        statements = _managed(deployed, policy)
        for pipeline in deployed.stack.pipelines.values():
            dlq = _arn(deployed, pipeline.dlq)
            assert _allows(statements, "sqs:ReceiveMessage", dlq, {})
            assert _allows(statements, "sqs:ChangeMessageVisibility", dlq, {}) is operates


# the table -------------------------------------------------------------------------------------------
def _key(pk: str) -> dict[str, Any]:
    return {"dynamodb:LeadingKeys": [pk]}


@pytest.mark.parametrize("automation", AUTOMATIONS)
def test_function_roles_write_only_automation_state(deployed: Synthesized, automation: str) -> None:
    statements = _statements(deployed, automation)
    table = _arn(deployed, deployed.stack.table)
    for action in ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"):
        assert _allows(statements, action, table, _key(f"STAGE#{STAGE}")), action
        for forbidden in ("POLICY", "BAN", "PAUSE", "HISTORY#default", "STAGEX", "AUDIT"):
            assert not _allows(statements, action, table, _key(forbidden)), (action, forbidden)
    for action in ("dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"):
        for readable in ("POLICY", "BAN", f"STAGE#{STAGE}"):
            assert _allows(statements, action, table, _key(readable)), (action, readable)
    writes = [s for s in statements if "dynamodb:PutItem" in _as_list(s["Action"])]
    assert [w["Condition"] for w in writes] == [
        {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["STAGE#*"]}},
        {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["AUDIT#*"]}},  # audit entries: added only
    ]
    audit = _key(f"AUDIT#{STAGE}")
    assert _allows(statements, "dynamodb:PutItem", table, audit)
    assert not _allows(statements, "dynamodb:UpdateItem", table, audit)
    assert not _allows(statements, "dynamodb:DeleteItem", table, audit)


def test_the_convergence_pass_writes_only_automation_state(deployed: Synthesized) -> None:
    role = {"Ref": deployed.logical_id(deployed.stack.convergence.role)}
    statements = [
        statement
        for policy in deployed.template.find_resources("AWS::IAM::Policy").values()
        if role in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    table = _arn(deployed, deployed.stack.table)
    for action in ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"):  # DeleteItem: claims given back
        assert _allows(statements, action, table, _key(f"STAGE#{STAGE}"))
        for forbidden in ("POLICY", "BAN", "PAUSE", "HISTORY#default"):
            assert not _allows(statements, action, table, _key(forbidden)), (action, forbidden)


def test_people_hold_no_ivs_write_but_the_manual_kick_and_converge_through_the_function(
    deployed: Synthesized,
) -> None:
    """`reconcile`, `policy put|rollback` and `resume` invoke the convergence function: its IVS writes are its
    own. Operators and admins write to IVS only to kick (disconnect, and the kicked one's replicas)."""
    access = deployed.stack.access
    function = _arn(deployed, deployed.stack.convergence.function)
    for policy, may in ((access.viewer, False), (access.operator, True), (access.admin, True)):
        statements = _managed(deployed, policy)
        writes = {
            a
            for s in statements
            for a in _as_list(s["Action"])
            if a.startswith("ivs:") and not a.startswith(("ivs:Get", "ivs:List"))
        }
        assert writes == ({"ivs:DisconnectParticipant", "ivs:StopParticipantReplication"} if may else set())
        assert _allows(statements, "lambda:InvokeFunction", function, {}) is may
        invokes = [
            r for s in statements if "lambda:InvokeFunction" in _as_list(s["Action"]) for r in _as_list(s["Resource"])
        ]
        assert invokes == ([function] if may else [])


def test_table_is_protected_from_deletion(deployed: Synthesized) -> None:
    table = deployed.resources[deployed.logical_id(deployed.stack.table)]
    assert table["Properties"]["DeletionProtectionEnabled"] is True
    assert table["DeletionPolicy"] == "Retain"


# the managed policies --------------------------------------------------------------------------------
def _managed(synthesized: Synthesized, policy: Any) -> list[dict[str, Any]]:
    resource = synthesized.resources[synthesized.logical_id(policy)]
    assert resource["Type"] == "AWS::IAM::ManagedPolicy"
    statements: list[dict[str, Any]] = resource["Properties"]["PolicyDocument"]["Statement"]
    return statements


def test_each_level_writes_only_what_its_commands_need(deployed: Synthesized) -> None:
    access = deployed.stack.access
    table = _arn(deployed, deployed.stack.table)
    levels = {
        "viewer": _managed(deployed, access.viewer),
        "operator": _managed(deployed, access.operator),
        "admin": _managed(deployed, access.admin),
        "ban reader": _managed(deployed, access.ban_reader),
    }
    writes = {
        name: {
            pk
            for pk in ("BAN", "PAUSE", "POLICY", "HISTORY#default", f"STAGE#{STAGE}")
            if _allows(statements, "dynamodb:PutItem", table, _key(pk))
        }
        for name, statements in levels.items()
    }
    assert writes == {
        "viewer": set(),
        "operator": {"BAN", "PAUSE", f"STAGE#{STAGE}"},  # bans, pause/resume, disconnect claims, audit
        "admin": {"BAN", "PAUSE", "POLICY", "HISTORY#default", f"STAGE#{STAGE}"},  # + policy put/delete/rollback
        "ban reader": set(),
    }
    reads = {name: _allows(rules, "dynamodb:GetItem", table, _key("POLICY")) for name, rules in levels.items()}
    assert reads == {"viewer": True, "operator": True, "admin": True, "ban reader": False}
    assert _allows(levels["ban reader"], "dynamodb:GetItem", table, _key("BAN"))
    assert {a for s in levels["ban reader"] for a in _as_list(s["Action"])} == {"dynamodb:GetItem"}


def test_only_operators_flag_kick_and_redrive(deployed: Synthesized) -> None:
    access = deployed.stack.access
    bus = _arn(deployed, deployed.stack.flag_bus)
    redrive = _arn(deployed, deployed.stack.redrive_role)
    for policy, may in ((access.viewer, False), (access.operator, True), (access.admin, True)):
        statements = _managed(deployed, policy)
        assert _allows(statements, "events:PutEvents", bus, {}) is may
        assert _allows(statements, "sts:AssumeRole", redrive, {}) is may
        kicks = [s for s in statements if "ivs:DisconnectParticipant" in _as_list(s["Action"])]
        assert bool(kicks) is may
    viewer_actions = {a for s in _managed(deployed, access.viewer) for a in _as_list(s["Action"])}
    assert not {a for a in viewer_actions if a.startswith("ivs:") and not a.startswith(("ivs:Get", "ivs:List"))}


def _resolved(value: Any) -> Any:
    """The policy as IAM stores it, near enough: intrinsics replaced by values of realistic length."""
    if isinstance(value, list):
        return [_resolved(item) for item in value]
    if not isinstance(value, dict):
        return value
    if "Ref" in value:
        pseudo = {"AWS::Partition": "aws", "AWS::Region": "ap-southeast-2", "AWS::AccountId": "123456789012"}
        return pseudo.get(value["Ref"], f"StagePilot-{value['Ref'][:40]}-ABCDEFGHIJKL")
    if "Fn::GetAtt" in value:
        return f"arn:aws:sqs:ap-southeast-2:123456789012:StagePilot-{value['Fn::GetAtt'][0][:40]}-ABCDEFGHIJKL"
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(str(_resolved(part)) for part in parts)
    return {key: _resolved(item) for key, item in value.items()}


def test_the_managed_policies_fit_iams_size_limit_with_many_stage_prefixes(tmp_path: Any) -> None:
    from tests.infra.conftest import synthesize

    prefixes = [f"arn:aws:ivs:ap-southeast-2:123456789012:stage/ShowPrefix{i:02d}" for i in range(10)]
    synthesized = synthesize({"stageArnPrefixes": prefixes}, tmp_path)

    for policy in synthesized.template.find_resources("AWS::IAM::ManagedPolicy").values():
        document = json.dumps(_resolved(policy["Properties"]["PolicyDocument"]), separators=(",", ":"))
        assert len(document) < 6144, (policy["Properties"]["Description"], len(document))


def test_the_operator_commands_can_read_and_clear_what_they_show(deployed: Synthesized) -> None:
    """status (fleet: ListStages; alarms: DescribeAlarms) for viewers; dlq delete/purge for operators."""
    access = deployed.stack.access
    dlqs = [_arn(deployed, p.dlq) for p in deployed.stack.pipelines.values()]
    for policy, operates in ((access.viewer, False), (access.operator, True), (access.admin, True)):
        statements = _managed(deployed, policy)
        assert _allows(statements, "ivs:ListStages", "*", {})
        assert [s for s in statements if "cloudwatch:DescribeAlarms" in _as_list(s["Action"])]
        assert all(_allows(statements, "sqs:PurgeQueue", dlq, {}) is operates for dlq in dlqs)
        queues = [_arn(deployed, p.queue) for p in deployed.stack.pipelines.values()]
        assert not any(_allows(statements, "sqs:PurgeQueue", queue, {}) for queue in queues)
