"""The synth-time gates: cdk-nag (AwsSolutions) and cfn-lint accept the stack; the nag gate can fail."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.infra.conftest import Synthesized


def _report(outdir: Path) -> list[dict[str, Any]]:
    report = json.loads((outdir / "validation-report.json").read_text())
    return [
        violation
        for plugin in report["pluginReports"]
        if (plugin.get("summary") or {}).get("status") != "success"
        for violation in plugin.get("violations", [plugin])
    ]


def _nag_findings(outdir: Path) -> list[object]:
    """cdk-nag's findings; the stack's own synth warnings (annotations) are in the report too, apart."""
    return [v for v in _report(outdir) if not str(v.get("ruleName", "")).startswith("Annotation::")]


def _warnings(outdir: Path) -> list[str]:
    return [str(v["ruleName"]) for v in _report(outdir) if str(v.get("ruleName", "")).startswith("Annotation::")]


def test_cdk_nag_passes_on_the_stack(deployed: Synthesized, customized: Synthesized) -> None:
    # Both syntheses ran app.synth() with AwsSolutionsChecks registered; a finding would have raised.
    assert _nag_findings(deployed.outdir) == []
    assert _nag_findings(customized.outdir) == []


def test_synth_says_when_nobody_may_put_flags(deployed: Synthesized, customized: Synthesized) -> None:
    assert sorted(_warnings(deployed.outdir)) == [
        "Annotation::stagepilot:noModerationPrincipals",
        "Annotation::stagepilot:noRedrivePrincipals",
    ]
    assert _warnings(customized.outdir) == []


def test_cdk_nag_gate_fails_a_noncompliant_stack(tmp_path: Path) -> None:
    import aws_cdk as cdk
    from aws_cdk import aws_sqs as sqs
    from cdk_nag import AwsSolutionsChecks

    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "Throwaway")
    sqs.Queue(stack, "PlainQueue", encryption=sqs.QueueEncryption.UNENCRYPTED)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()


def test_cfn_lint_accepts_the_templates(deployed: Synthesized, customized: Synthesized) -> None:
    templates = [str(s.outdir / "StagePilot.template.json") for s in (deployed, customized)]
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    command = [str(cfn_lint)] if cfn_lint.exists() else [sys.executable, "-m", "cfnlint"]
    result = subprocess.run(
        [*command, "--ignore-checks", "W3005", "--", *templates],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_outputs_the_cli_reads(deployed: Synthesized) -> None:
    outputs = deployed.template.to_json()["Outputs"]
    expected = {
        "TableName",
        "AlarmTopicArn",
        "FlagBusName",
        "RedriveRoleArn",
        "ViewerPolicyArn",
        "OperatorPolicyArn",
        "AdminPolicyArn",
        "BanReaderPolicyArn",
    } | {
        f"{name}{kind}"
        for name in ("Composition", "Replication", "Moderation")
        for kind in ("QueueUrl", "DlqUrl", "FunctionName")
    }
    assert expected <= set(outputs)
    stack = deployed.stack
    for automation, pipeline in stack.pipelines.items():
        prefix = automation.capitalize()
        assert outputs[f"{prefix}QueueUrl"]["Value"] == {"Ref": deployed.logical_id(pipeline.queue)}
        assert outputs[f"{prefix}DlqUrl"]["Value"] == {"Ref": deployed.logical_id(pipeline.dlq)}
        assert outputs[f"{prefix}FunctionName"]["Value"] == {"Ref": deployed.logical_id(pipeline.function)}
    assert outputs["TableName"]["Value"] == {"Ref": deployed.logical_id(stack.table)}
    assert outputs["AlarmTopicArn"]["Value"] == {"Ref": deployed.logical_id(stack.alarm_topic)}
    assert outputs["FlagBusName"]["Value"] == {"Ref": deployed.logical_id(stack.flag_bus)}
    assert outputs["RedriveRoleArn"]["Value"] == {"Fn::GetAtt": [deployed.logical_id(stack.redrive_role), "Arn"]}
    for name, policy in (
        ("Viewer", stack.access.viewer),
        ("Operator", stack.access.operator),
        ("Admin", stack.access.admin),
        ("BanReader", stack.access.ban_reader),
    ):
        assert outputs[f"{name}PolicyArn"]["Value"] == {"Ref": deployed.logical_id(policy)}


def test_the_runtime_finding_is_acknowledged_on_the_functions_and_nowhere_else(deployed: Synthesized) -> None:
    """cdk-nag's AwsSolutions-L1 (not the latest Python) is acknowledged function by function, with the
    reason: the zip's bytecode is built for the runtime's Python (infra/bundling.py)."""
    import aws_cdk as cdk
    from aws_cdk import aws_lambda as lambda_

    acknowledged = {
        construct.node.path
        for construct in deployed.stack.node.find_all()
        for entry in construct.node.metadata
        if entry.type == cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY
        and any(rule.endswith("AwsSolutions-L1") for rule in entry.data)
    }
    functions = {c.node.path for c in deployed.stack.node.find_all() if isinstance(c, lambda_.Function)}
    assert len(functions) == 5  # the three automations, the convergence pass and the door
    assert acknowledged == functions
