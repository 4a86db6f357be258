"""Each automation's pipeline is wired rule -> its queue -> its function, with DLQs and alarms."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.conftest import Synthesized

AUTOMATIONS = ["composition", "replication", "moderation"]


def _get_att_arn(logical_id: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id, "Arn"]}


@pytest.mark.parametrize("automation", AUTOMATIONS)
def test_rules_target_their_own_queue_with_the_dlq_on_the_target(deployed: Synthesized, automation: str) -> None:
    pipeline = deployed.stack.pipelines[automation]
    queue, dlq = deployed.logical_id(pipeline.queue), deployed.logical_id(pipeline.dlq)
    own_rules = {deployed.logical_id(rule) for rule in pipeline.rules}
    assert own_rules
    for logical_id, rule in deployed.template.find_resources("AWS::Events::Rule").items():
        targets = rule["Properties"]["Targets"]
        if logical_id not in own_rules:
            assert all(target["Arn"] != _get_att_arn(queue) for target in targets)
            continue
        (target,) = targets
        assert target["Arn"] == _get_att_arn(queue)
        assert target["DeadLetterConfig"]["Arn"] == _get_att_arn(dlq)
        assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0
        if rule["Properties"]["EventPattern"]["source"] == ["aws.ivs"]:
            assert "EventBusName" not in rule["Properties"]  # the default bus, where IVS sends
        else:  # flags: the stack's own bus (tests/infra/test_access.py)
            assert rule["Properties"]["EventBusName"] == {"Ref": deployed.logical_id(deployed.stack.flag_bus)}


@pytest.mark.parametrize("automation", AUTOMATIONS)
def test_queue_redrives_to_its_dlq_and_outlasts_retries(deployed: Synthesized, automation: str) -> None:
    pipeline = deployed.stack.pipelines[automation]
    resources = deployed.resources
    queue = resources[deployed.logical_id(pipeline.queue)]["Properties"]
    dlq = resources[deployed.logical_id(pipeline.dlq)]["Properties"]
    function = resources[deployed.logical_id(pipeline.function)]["Properties"]

    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": _get_att_arn(deployed.logical_id(pipeline.dlq)),
        "maxReceiveCount": 5,
    }
    assert queue["VisibilityTimeout"] >= 6 * function["Timeout"]
    assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600
    for properties in (queue, dlq):
        assert properties["SqsManagedSseEnabled"] is True


@pytest.mark.parametrize("automation", AUTOMATIONS)
def test_queues_refuse_plain_http(deployed: Synthesized, automation: str) -> None:
    pipeline = deployed.stack.pipelines[automation]
    for queue in (pipeline.queue, pipeline.dlq):
        ref = {"Ref": deployed.logical_id(queue)}
        (policy,) = [
            p
            for p in deployed.template.find_resources("AWS::SQS::QueuePolicy").values()
            if p["Properties"]["Queues"] == [ref]
        ]
        assert any(
            statement["Effect"] == "Deny" and statement.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        )


@pytest.mark.parametrize("automation", AUTOMATIONS)
def test_function_consumes_its_queue_with_partial_batch_failures(deployed: Synthesized, automation: str) -> None:
    pipeline = deployed.stack.pipelines[automation]
    mappings = [
        m["Properties"]
        for m in deployed.template.find_resources("AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": deployed.logical_id(pipeline.function)}
    ]
    assert len(mappings) == 1
    (mapping,) = mappings
    assert mapping["EventSourceArn"] == _get_att_arn(deployed.logical_id(pipeline.queue))
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": 2}
    assert mapping["BatchSize"] == 10


@pytest.mark.parametrize("automation", AUTOMATIONS)
def test_the_burst_benchmark_runs_the_deployed_batches(deployed: Synthesized, automation: str) -> None:
    """benchmarks/burst.py invokes each function with the batches the event source sends (no batching
    window: a batch of what is there) and brings a timed-out batch back after the queue's visibility."""
    from benchmarks import burst

    pipeline = deployed.stack.pipelines[automation]
    (mapping,) = [
        m["Properties"]
        for m in deployed.template.find_resources("AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": deployed.logical_id(pipeline.function)}
    ]
    assert mapping["BatchSize"] == burst.BATCH_SIZE
    assert mapping.get("MaximumBatchingWindowInSeconds", 0) == 0
    queue = deployed.resources[deployed.logical_id(pipeline.queue)]["Properties"]
    assert queue["VisibilityTimeout"] == burst.VISIBILITY_TIMEOUT_SECONDS
    function = deployed.resources[deployed.logical_id(pipeline.function)]["Properties"]
    assert function["Timeout"] == burst.FUNCTION_TIMEOUT_SECONDS


@pytest.mark.parametrize("automation", AUTOMATIONS)
def test_function_runtime_settings_and_environment(deployed: Synthesized, automation: str) -> None:
    pipeline = deployed.stack.pipelines[automation]
    function = deployed.resources[deployed.logical_id(pipeline.function)]["Properties"]
    assert function["Runtime"] == "python3.13"
    assert function["Architectures"] == ["arm64"]
    assert function["Handler"] == f"stagepilot.handlers.{automation}.lambda_handler"
    assert function["Timeout"] == 60
    assert function["MemorySize"] == 512
    assert function.get("TracingConfig", {}).get("Mode", "PassThrough") == "PassThrough"
    assert function["Role"] == _get_att_arn(deployed.logical_id(pipeline.role))
    log_group = deployed.logical_id(pipeline.log_group)
    assert function["LoggingConfig"]["LogGroup"] == {"Ref": log_group}
    assert deployed.resources[log_group]["Properties"]["RetentionInDays"] == 30
    assert function["Environment"]["Variables"] == {
        "STAGEPILOT_TABLE": {"Ref": deployed.logical_id(deployed.stack.table)},
        "STAGEPILOT_STAGE_ARN_PREFIXES": "[]",
        "STAGEPILOT_DLQ_URL": {"Ref": deployed.logical_id(pipeline.dlq)},
        "STAGEPILOT_IVS_CALLER": automation,  # its share of each IVS operation (stagepilot.budget)
        # Where events may come from, and how old they may be (stagepilot.origin): 1 day of EventBridge
        # retries + 14 days in the DLQ + 4 days in the queue after a redrive.
        "STAGEPILOT_ACCOUNT": {"Ref": "AWS::AccountId"},
        "STAGEPILOT_REGION": {"Ref": "AWS::Region"},
        "STAGEPILOT_MODERATION_SOURCES": '["stagepilot.moderation"]',
        "STAGEPILOT_MAX_EVENT_AGE_SECONDS": str(19 * 86400),
        "POWERTOOLS_SERVICE_NAME": automation,
        "POWERTOOLS_METRICS_NAMESPACE": "StagePilot",
        "POWERTOOLS_LOG_LEVEL": "INFO",
    }


def test_all_functions_share_one_code_asset(deployed: Synthesized) -> None:
    codes = [
        deployed.resources[deployed.logical_id(pipeline.function)]["Properties"]["Code"]
        for pipeline in deployed.stack.pipelines.values()
    ]
    assert all(code == codes[0] for code in codes)


def _alarms_on(synthesized: Synthesized, metric_name: str, dimension: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        alarm["Properties"]
        for alarm in synthesized.template.find_resources("AWS::CloudWatch::Alarm").values()
        if alarm["Properties"].get("MetricName") == metric_name
        and dimension in alarm["Properties"].get("Dimensions", [])
    ]


@pytest.mark.parametrize("automation", AUTOMATIONS)
def test_alarms_watch_the_dlq_the_queue_age_the_errors_and_the_custom_metrics(
    deployed: Synthesized, automation: str
) -> None:
    pipeline = deployed.stack.pipelines[automation]
    topic = {"Ref": deployed.logical_id(deployed.stack.alarm_topic)}

    def queue_name(queue: Any) -> dict[str, Any]:
        return {"Name": "QueueName", "Value": {"Fn::GetAtt": [deployed.logical_id(queue), "QueueName"]}}

    # The DLQ's depth counts messages in flight too: a receive that hides them does not clear the alarm.
    [depth] = [
        alarm["Properties"]
        for alarm in deployed.template.find_resources("AWS::CloudWatch::Alarm").values()
        if any(
            m.get("MetricStat", {}).get("Metric", {}).get("Dimensions") == [queue_name(pipeline.dlq)]
            for m in alarm["Properties"].get("Metrics", [])
        )
    ]
    by_id = {m["Id"]: m for m in depth["Metrics"]}
    assert by_id["expr_1"]["Expression"] == "visible + hidden" and by_id["expr_1"].get("ReturnData", True)
    assert by_id["visible"]["MetricStat"]["Metric"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert by_id["hidden"]["MetricStat"]["Metric"]["MetricName"] == "ApproximateNumberOfMessagesNotVisible"
    assert (depth["Threshold"], depth["AlarmActions"], depth["TreatMissingData"]) == (1, [topic], "notBreaching")
    expected = [
        ("ApproximateAgeOfOldestMessage", queue_name(pipeline.queue), 900, "AWS/SQS"),
        # Before the DLQ's 14-day retention throws an event away unseen.
        ("ApproximateAgeOfOldestMessage", queue_name(pipeline.dlq), 3 * 86400, "AWS/SQS"),
        (
            "Errors",
            {"Name": "FunctionName", "Value": {"Ref": deployed.logical_id(pipeline.function)}},
            1,
            "AWS/Lambda",
        ),
        ("MalformedEvent", {"Name": "service", "Value": automation}, 1, "StagePilot"),
        ("PolicyInvalid", {"Name": "service", "Value": automation}, 1, "StagePilot"),
    ]
    for metric_name, dimension, threshold, namespace in expected:
        alarms = _alarms_on(deployed, metric_name, dimension)
        assert len(alarms) == 1, (automation, metric_name)
        (alarm,) = alarms
        assert alarm["Namespace"] == namespace
        assert alarm["Threshold"] == threshold
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert alarm["AlarmActions"] == [topic]
        assert alarm["TreatMissingData"] == "notBreaching"
        assert automation in alarm["AlarmDescription"] and len(alarm["AlarmDescription"]) > 60
    for metric_name in ("Errors", "MalformedEvent", "PolicyInvalid"):
        (alarm,) = _alarms_on(deployed, metric_name, expected[[e[0] for e in expected].index(metric_name)][1])
        assert alarm["Statistic"] == "Sum" and alarm["Period"] == 300


@pytest.mark.parametrize("automation", AUTOMATIONS)
def test_each_function_runs_at_most_the_containers_the_ivs_budget_counts(
    deployed: Synthesized, automation: str
) -> None:
    """stagepilot.budget bounds the IVS calls in any second by counting each function's containers: the
    template must make that count a ceiling (reserved concurrency), not only the poller's habit."""
    from stagepilot import budget

    pipeline = deployed.stack.pipelines[automation]
    function = deployed.logical_id(pipeline.function)
    assert deployed.resources[function]["Properties"]["ReservedConcurrentExecutions"] == budget.CONCURRENCY[automation]
    (mapping,) = [
        m["Properties"]
        for m in deployed.template.find_resources("AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": function}
    ]
    # The poller never invokes more than the function may run (a throttled batch would count a receive).
    assert mapping["ScalingConfig"]["MaximumConcurrency"] <= budget.CONCURRENCY[automation]
