"""The sandbox's alarms (local/alarms.py) are the stack's: every alarm the template deploys, with the same
name, threshold, evaluation periods, period and, for the functions' own metrics, metric and service."""

from __future__ import annotations

from typing import Any

import pytest

from stagepilot.local.alarms import stack_alarms
from tests.infra.conftest import Synthesized


def _period(props: dict[str, Any]) -> int:
    if "Period" in props:
        return int(props["Period"])
    return min(int(m["MetricStat"]["Period"]) for m in props["Metrics"] if "MetricStat" in m)


@pytest.mark.parametrize("synthesized", ["deployed", "customized"])
def test_the_sandbox_evaluates_exactly_the_stacks_alarms(synthesized: str, request: pytest.FixtureRequest):
    deployed: Synthesized = request.getfixturevalue(synthesized)
    deployed_alarms = {
        props["AlarmName"]: props
        for resource in deployed.resources.values()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
        for props in [resource["Properties"]]
    }
    budget = deployed.stack.settings.composition_hours is not None  # compositionHoursPerDay's alarm
    sandbox = {alarm.name: alarm for alarm in stack_alarms(deployed.stack.stack_name, composition_budget=budget)}
    assert sorted(sandbox) == sorted(deployed_alarms)
    for name, alarm in sandbox.items():
        props = deployed_alarms[name]
        assert props["ComparisonOperator"] == "GreaterThanOrEqualToThreshold", name
        assert (props["Threshold"], props["EvaluationPeriods"], _period(props)) == (
            alarm.threshold,
            alarm.evaluation_periods,
            alarm.period_seconds,
        ), name
        if alarm.watches == "metric":
            assert props["Namespace"] == "StagePilot" and props["MetricName"] == alarm.metric, name
            assert props["Dimensions"] == [{"Name": "service", "Value": alarm.service}], name
