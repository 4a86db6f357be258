"""The convergence pass as deployed: a schedule, one pass at a time, alarms on healing and failure."""

from __future__ import annotations

import pytest

from infra import names
from tests.infra.conftest import Synthesized


def test_a_schedule_runs_the_pass_every_minute_without_retries(deployed: Synthesized) -> None:
    function = deployed.stack.convergence.function
    [rule] = [
        r
        for r in deployed.template.find_resources("AWS::Events::Rule").values()
        if r["Properties"].get("ScheduleExpression")
    ]
    assert rule["Properties"]["ScheduleExpression"] == "rate(1 minute)"
    [target] = rule["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [deployed.logical_id(function), "Arn"]}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 0


def test_one_pass_at_a_time(deployed: Synthesized) -> None:
    function = deployed.template.find_resources("AWS::Lambda::Function")[
        deployed.logical_id(deployed.stack.convergence.function)
    ]
    assert function["Properties"]["ReservedConcurrentExecutions"] == 1
    assert function["Properties"]["Handler"] == "stagepilot.handlers.reconcile.lambda_handler"
    # It paces IVS at the pass's slice of each operation (stagepilot.budget), not an automation's share.
    assert function["Properties"]["Environment"]["Variables"]["STAGEPILOT_IVS_CALLER"] == "convergence"


def test_healing_often_and_failing_passes_raise_alarms(deployed: Synthesized) -> None:
    alarms = {
        a["Properties"].get("MetricName"): a["Properties"]
        for a in deployed.template.find_resources("AWS::CloudWatch::Alarm").values()
    }
    # only heals nothing but a lost event explains (docs/policy.md): not a late event, a resume, IVS's own end
    assert names.METRIC_HEALED not in alarms
    assert alarms[names.METRIC_HEALED_EVENT_LOST]["Threshold"] == 5
    assert alarms[names.METRIC_HEALED_EVENT_LOST]["Period"] == 900
    assert alarms[names.METRIC_RECONCILE_FAILED]["EvaluationPeriods"] == 3
    assert all(a["AlarmActions"] for a in alarms.values())


@pytest.mark.parametrize("value", ["0", "61", "often", "1.5"])
def test_reconcile_minutes_is_checked(value: str) -> None:
    from app import build_app

    with pytest.raises(ValueError, match="reconcileMinutes"):
        build_app({"reconcileMinutes": value, "aws:cdk:bundling-stacks": []})


def test_a_failed_destination_alarms_at_once_whoever_counts_it(deployed: Synthesized) -> None:
    """DestinationFailed (docs/policy.md): counted by the composition function on the event and by the pass
    when that event was lost; the first one alarms, within the minute."""
    watching = {
        a["Properties"]["Dimensions"][0]["Value"]: a["Properties"]
        for a in deployed.template.find_resources("AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == names.METRIC_DESTINATION_FAILED
    }
    assert set(watching) == {"composition", "convergence"}
    for alarm in watching.values():
        assert (alarm["Threshold"], alarm["EvaluationPeriods"], alarm["Period"]) == (1, 1, 60)
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert alarm["TreatMissingData"] == "notBreaching"
        assert alarm["AlarmActions"]
    assert any(names.DESTINATION_FAILED_ALARM in str(a["AlarmName"]) for a in watching.values())


def test_the_composition_budget_alarms_once_when_the_days_hours_are_spent(
    deployed: Synthesized, customized: Synthesized
) -> None:
    """compositionHoursPerDay (docs/policy.md): its alarm watches what the pass counts once a UTC day; every
    function is told the setting; without the context there is neither."""
    [alarm] = [
        a["Properties"]
        for a in customized.template.find_resources("AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == names.METRIC_COMPOSITION_BUDGET_SPENT
    ]
    assert alarm["AlarmName"] == "StagePilot-CompositionBudgetAlarm"
    assert alarm["Dimensions"] == [{"Name": "service", "Value": "convergence"}]
    assert (alarm["Threshold"], alarm["EvaluationPeriods"], alarm["Period"]) == (1, 1, 60)
    assert alarm["TreatMissingData"] == "notBreaching" and alarm["AlarmActions"]
    assert "mode block" in alarm["AlarmDescription"]
    for function in (customized.stack.convergence.function, customized.stack.pipelines["composition"].function):
        env = customized.template.find_resources("AWS::Lambda::Function")[customized.logical_id(function)]
        assert env["Properties"]["Environment"]["Variables"]["STAGEPILOT_COMPOSITION_HOURS_PER_DAY"] == (
            '{"limit": 200.0, "mode": "block"}'
        )
    assert not [
        a
        for a in deployed.template.find_resources("AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == names.METRIC_COMPOSITION_BUDGET_SPENT
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('{"limit": 0}', "compositionHoursPerDay.limit: must be a number of hours"),
        ('{"limit": "ten"}', "compositionHoursPerDay.limit: must be a number of hours"),
        ('{"limit": 10, "mode": "stop"}', 'compositionHoursPerDay.mode: must be "alert" or "block"'),
        ('{"limit": 10, "hours": 3}', "compositionHoursPerDay.hours: unknown field"),
        ("10", "compositionHoursPerDay must be an object"),
        ("{limit: 10}", "compositionHoursPerDay must be JSON"),
    ],
)
def test_composition_hours_per_day_is_checked_at_synth(value: str, message: str) -> None:
    from app import build_app

    with pytest.raises(ValueError, match=message.replace("(", r"\(")) as raised:
        build_app({"compositionHoursPerDay": value, "aws:cdk:bundling-stacks": []})
    assert "\n" not in str(raised.value)  # one line
