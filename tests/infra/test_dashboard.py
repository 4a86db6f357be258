"""The operations dashboard (one row per automation) and the stack name a deployment chooses."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stagepilot import config, routing
from tests.infra.conftest import Synthesized


def dashboard_body(synthesized: Synthesized) -> dict[str, Any]:
    [dashboard] = synthesized.template.find_resources("AWS::CloudWatch::Dashboard").values()
    parts = dashboard["Properties"]["DashboardBody"]["Fn::Join"][1]
    # Resolve the tokens (queue names, function names) to a placeholder: the layout is what is checked.
    return json.loads("".join(p if isinstance(p, str) else '"REF"' for p in parts).replace('""REF""', '"REF"'))


def metric_names(widget: dict[str, Any]) -> list[str]:
    return [m[1] if m[0] != "..." else "" for m in widget["properties"].get("metrics", [])]


def test_the_dashboard_has_a_row_per_automation_with_what_an_operator_needs(deployed: Synthesized) -> None:
    from infra.dashboard import ACTION_METRICS

    widgets = dashboard_body(deployed)["widgets"]
    titles = [w["properties"].get("title") or w["properties"].get("markdown") for w in widgets]
    for automation in routing.AUTOMATIONS:
        assert f"### {automation}" in titles
        row = {t: w for t, w in zip(titles, widgets, strict=True) if t and t.startswith(f"{automation}: ")}
        assert set(row) == {
            f"{automation}: events acted on / skipped, and actions",
            f"{automation}: heals and errors",
            f"{automation}: dead-letter queue",
            f"{automation}: IVS throttles, event age at handling",
        }
        acted = row[f"{automation}: events acted on / skipped, and actions"]
        assert metric_names(acted) == ["EventActed", "EventSkipped", "EventClaimHeld", *ACTION_METRICS[automation]]
        assert all(
            m[0] == config.METRICS_NAMESPACE and m[2:4] == ["service", automation]
            for m in acted["properties"]["metrics"]
        )
        errors = row[f"{automation}: heals and errors"]["properties"]["metrics"]
        assert {f"Healed{automation.capitalize()}", "Errors", "EventFailed", "MalformedEvent"} <= set(
            metric_names(row[f"{automation}: heals and errors"])
        )
        [healed] = [m for m in errors if m[1].startswith("Healed")]
        assert healed[2:4] == ["service", "convergence"]  # the convergence pass counts heals per automation
        assert metric_names(row[f"{automation}: dead-letter queue"]) == [
            "ApproximateNumberOfMessagesVisible",
            "ApproximateAgeOfOldestMessage",
        ]
        assert metric_names(row[f"{automation}: IVS throttles, event age at handling"]) == [
            "IvsThrottled",
            "ApproximateAgeOfOldestMessage",
        ]
    [convergence] = [w for w in widgets if w["properties"].get("title") == "convergence: heals and failed passes"]
    assert metric_names(convergence) == ["Healed", "HealedEventLost", "ReconcileFailed", "Errors"]
    assert "DashboardName" in deployed.template.to_json()["Outputs"]


def test_the_stack_name_comes_from_context(staging: Synthesized) -> None:
    assert staging.stack.stack_name == "StagePilot-staging"


@pytest.mark.parametrize("name", ["1abc", "has space", "x" * 129, 5])
def test_a_stack_name_cloudformation_would_refuse_is_refused_at_synth(name: object) -> None:
    import app as cdk_app

    with pytest.raises(ValueError, match="stackName"):
        cdk_app.build_app({"aws:cdk:bundling-stacks": [], "stackName": name})
