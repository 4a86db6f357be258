"""The metrics the operations dashboard draws, emitted where they happen: every handled event is acted
on or skipped, and an IVS throttle is counted apart from other retries."""

from __future__ import annotations

from stagepilot.local.deployment import LocalDeployment
from tests.handlers.test_replication import policy, publish_and_drain, put_policy, to
from tests.support import OTHER_STAGE, STAGE, EventFactory


def test_each_event_counts_as_acted_or_skipped_and_throttles_are_counted(
    deployment: LocalDeployment, events: EventFactory
) -> None:
    put_policy(deployment, policy(STAGE, to(OTHER_STAGE)))
    deployment.ivs.fail_next("StartParticipantReplication", 3, error="ThrottlingException")

    publish_and_drain(deployment, events.published("host", user_id="host-1"))

    counts = deployment.metrics.counts
    assert counts["IvsThrottled"] == counts["EventRetried"] >= 1  # every retry here was a throttle
    assert counts["EventActed"] >= 1 and counts["EventSkipped"] >= 1  # replication acted; the others skipped


def test_a_server_error_is_a_retry_but_not_a_throttle(deployment: LocalDeployment, events: EventFactory) -> None:
    put_policy(deployment, policy(STAGE, to(OTHER_STAGE)))
    deployment.ivs.fail_next("StartParticipantReplication", 3)

    publish_and_drain(deployment, events.published("host", user_id="host-1"))

    assert deployment.metrics.counts["EventRetried"] >= 1 and "IvsThrottled" not in deployment.metrics.counts


def test_a_count_of_nothing_publishes_no_metric() -> None:
    """A custom metric costs every hour it is published in (docs/performance.md, section 11): the functions'
    sink publishes a count only when something was counted, so a zero never makes a metric exist."""
    from aws_lambda_powertools import Metrics

    from stagepilot.handlers.wiring import PowertoolsMetricSink

    metrics = Metrics(namespace="StagePilot", service="test")
    metrics.clear_metrics()  # Powertools keeps one metric set per process: nothing another test left
    sink = PowertoolsMetricSink(metrics)
    sink.count("ClaimsReleased", 0)
    assert metrics.metric_set == {}
    sink.count("ClaimsReleased", 2)
    assert metrics.metric_set["ClaimsReleased"]["Value"] == [2.0]
    metrics.clear_metrics()
