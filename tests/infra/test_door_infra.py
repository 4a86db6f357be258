"""The door's resources (docs/door.md): a Function URL with AWS_IAM auth, outputs TokenUrl and
TokenIssuerPolicyArn, a role that reads only what a decision needs, writes only token records and audit
entries, signs only with the door's keys, and passes cdk-nag (the synth raises on any unacknowledged
finding)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.infra.conftest import Synthesized, synthesize


def of_type(synthesized: Synthesized, kind: str) -> dict[str, Any]:
    return {k: v for k, v in synthesized.resources.items() if v["Type"] == kind}


def door_statements(synthesized: Synthesized) -> list[dict[str, Any]]:
    role = synthesized.logical_id(synthesized.stack.door.role)
    statements = []
    for policy in of_type(synthesized, "AWS::IAM::Policy").values():
        if {"Ref": role} in policy["Properties"]["Roles"]:
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def actions(statement: dict[str, Any]) -> list[str]:
    value = statement["Action"]
    return value if isinstance(value, list) else [value]


def test_the_function_url_takes_iam_auth_and_the_outputs_name_it(deployed: Synthesized) -> None:
    [url] = of_type(deployed, "AWS::Lambda::Url").values()
    assert url["Properties"]["AuthType"] == "AWS_IAM"
    outputs = deployed.template.to_json()["Outputs"]
    assert "TokenUrl" in outputs and "TokenIssuerPolicyArn" in outputs


def test_the_issuer_policy_lets_a_backend_call_the_url_and_nothing_else(deployed: Synthesized) -> None:
    policy = deployed.resources[deployed.logical_id(deployed.stack.door.issuer_policy)]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert sorted(a for s in statements for a in actions(s)) == ["lambda:InvokeFunction", "lambda:InvokeFunctionUrl"]
    function = deployed.logical_id(deployed.stack.door.function)
    assert all(s["Resource"] == {"Fn::GetAtt": [function, "Arn"]} for s in statements)


def test_the_door_role_reads_decisions_writes_records_and_signs_with_its_keys_only(deployed: Synthesized) -> None:
    statements = door_statements(deployed)
    granted = sorted(a for s in statements for a in actions(s))
    assert granted == [
        "dynamodb:BatchGetItem",
        "dynamodb:BatchWriteItem",  # denied on audit entries (NobodyRewritesTheAuditTrail)
        "dynamodb:DeleteItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "ivs:GetStage",
        "kms:Sign",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
    ]
    by_sid = {s["Sid"]: s for s in statements}
    reads = by_sid["ReadBansPoliciesAndTheSigningKey"]["Condition"]["ForAllValues:StringEquals"]
    assert sorted(reads["dynamodb:LeadingKeys"]) == ["BAN", "DOOR", "PAUSE", "POLICY"]
    writes = by_sid["WriteTokenRecords"]["Condition"]["ForAllValues:StringLike"]
    assert sorted(writes["dynamodb:LeadingKeys"]) == ["TOKEN#*"]
    audit = by_sid["AddAuditEntries"]
    assert audit["Action"] == "dynamodb:PutItem"
    assert audit["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"] == ["AUDIT#*"]
    denied = by_sid["NobodyRewritesTheAuditTrail"]
    assert denied["Effect"] == "Deny"
    assert denied["Condition"] == {"ForAnyValue:StringLike": {"dynamodb:LeadingKeys": ["AUDIT#*"]}}
    allowed = [a for s in statements if s["Effect"] == "Allow" for a in actions(s)]
    assert not {"dynamodb:BatchWriteItem", "dynamodb:DeleteItem", "dynamodb:UpdateItem"} & set(allowed)
    sign = by_sid["SignWithTheDoorsKeys"]["Condition"]["StringEquals"]
    assert sign["kms:SigningAlgorithm"] == "ECDSA_SHA_384"
    assert sign["aws:ResourceTag/stagepilot:door"] == deployed.stack.stack_name  # keys rotate tags its keys so


def test_create_mode_calls_create_participant_token_from_one_container(tmp_path: Path) -> None:
    created = synthesize({"tokenMode": "create"}, tmp_path)
    granted = sorted(a for s in door_statements(created) for a in actions(s))
    assert "ivs:CreateParticipantToken" in granted and "kms:Sign" not in granted and "ivs:GetStage" not in granted
    function = created.resources[created.logical_id(created.stack.door.function)]
    assert function["Properties"]["ReservedConcurrentExecutions"] == 1
    assert function["Properties"]["Environment"]["Variables"]["STAGEPILOT_TOKEN_MODE"] == "create"


def test_an_unknown_token_mode_is_refused_at_synth(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="tokenMode"):
        synthesize({"tokenMode": "jwt"}, tmp_path)
