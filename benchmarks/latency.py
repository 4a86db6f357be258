"""Latency: an event on the bus to the IVS action that answers it, per automation, against the anchor.

What is measured (issue 24, item 6): from the moment IVS puts ``Participant Published`` on the default bus to
the moment IVS receives the call that acts on it — ``StartComposition`` (a host's first publish),
``StartParticipantReplication`` (the host, replicated to the stage's green room), ``DisconnectParticipant``
(a blocked user who publishes) — on new stages and on stages composed before (an earlier session's
composition ended normally, as a recurring show's stages have).

How: ``LocalDeployment`` on its virtual clock with the deployed call latencies (``latency=AS_DEPLOYED``: IVS
50-150 ms, DynamoDB 5-15 ms a call), the deployed containers (two per automation) and their pacers, whose
frames are on the wall clock as deployed (``stagepilot.budget``). The way from the bus to the function is
not in ``LocalDeployment`` (it delivers at once); each event is delivered ``delay_seconds`` later, drawn
from the figures below. Stages publish ``SPACING_SECONDS`` apart: this is the latency of one event, not
of a burst (``benchmarks/burst.py`` measures bursts), and each delivery is an invocation of its own that
starts with the pacer's quiet window, as deployed (``adapters/ivs.Pacer.invocation_started``); a third run
leaves the window out to show what it costs. Containers are warm: a cold one adds its cold start
(``benchmarks/first_record.py``, about half a second).

The anchor is the least any EventBridge → SQS → Lambda → IVS automation pays: the bus's delivery, the
poll, the two DynamoDB calls no acting handler can skip (the policy read, the claim write) and the IVS call
itself, drawn from the same figures (10,000 draws).
"""

from __future__ import annotations

import json
import logging
import random
import statistics
from datetime import datetime, timedelta
from typing import Any
from unittest import mock

from benchmarks import cli
from benchmarks.work_per_event import (
    EXAMPLES,
    T0,
    deploy,
    earlier_sessions,
    stage_arn,
    stage_event,
    with_own_channel,
)
from stagepilot.local import ivs_world
from stagepilot.local.deployment import Delivery
from stagepilot.local.scheduler import AS_DEPLOYED
from stagepilot.policy import StagePolicy, parse_policy

# EventBridge: from an event on the bus to the target (here the automation's queue) holding it. AWS does not
# document a figure; the deployed one is the `AWS/Events` metric `IngestionToInvocationStartLatency`
# (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-monitoring.html). The Amazon Key team reported
# 80 ms p90 end to end on a bus (AWS Architecture Blog, 2026-02-04). Assumed: uniform 50-500 ms.
EVENTBRIDGE_SECONDS = (0.050, 0.500)
# SQS → Lambda: the event source's pollers long-poll the queue and invoke as soon as a batch is read, since
# the batching window is 0 s (MaximumBatchingWindowInSeconds, default 0 for SQS and not set by the stack:
# https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-parameters.html). How soon a long poll returns a
# message that just arrived is not documented: assumed uniform 10-100 ms, invocation of a warm container included.
SQS_POLL_SECONDS = (0.010, 0.100)
SPACING_SECONDS = 7.0  # between two stages' first publish: each event alone, none queued behind another
ACTIONS = {
    "composition": "StartComposition",
    "replication": "StartParticipantReplication",
    "moderation": "DisconnectParticipant",
}
ANCHOR_DRAWS = 10_000


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def _delivery_delay(rng: random.Random) -> float:
    return rng.uniform(*EVENTBRIDGE_SECONDS) + rng.uniform(*SQS_POLL_SECONDS)


def anchor(seed: int = 1) -> dict[str, float]:
    """The least an EventBridge → SQS → Lambda automation pays: delivery, poll, two DynamoDB calls, the IVS call."""
    rng = random.Random(seed)
    draws = [
        _delivery_delay(rng)
        + rng.uniform(*AS_DEPLOYED.dynamodb)
        + rng.uniform(*AS_DEPLOYED.dynamodb)
        + rng.uniform(*AS_DEPLOYED.ivs)
        for _ in range(ANCHOR_DRAWS)
    ]
    return {"p50": percentile(draws, 0.50), "p99": percentile(draws, 0.99)}


def policies(stages: int) -> list[StagePolicy]:
    """The demo's policy per stage: compose to a channel of its own, replicate its host to a green room,
    block a troll."""
    template = json.loads((EXAMPLES / "policies.json").read_text())[0]
    chosen = []
    for i in range(stages):
        document = with_own_channel(json.loads(json.dumps(template)), f"Lat{i:04d}Chan1")
        document["stageArn"] = stage_arn(f"Lat{i:04d}Main")
        document["replication"][0]["destinationStageArn"] = stage_arn(f"Lat{i:04d}Green")
        document["replication"][0]["participants"] = {"userIds": [f"host-{i}"]}
        document["moderation"]["blockedUserIds"] = [f"troll-{i}"]
        chosen.append(parse_policy(document))
    return chosen


def measure(
    stages: int = 100, *, composed_before: bool = False, quiet_window: bool = True, seed: int = 0
) -> dict[str, Any]:
    """Per automation: each action's latency from its event on the bus (seconds), p50 and p99.

    ``quiet_window``: each delivery is an invocation of its own (events come seconds apart, so each batch
    holds one) and starts with the pacer's quiet window, as ``handlers/wiring.set_deadline`` starts every
    invocation deployed; ``LocalDeployment`` delivers records without it. False: what the window costs."""
    from moto import mock_aws

    rng = random.Random(seed)
    chosen = policies(stages)
    with mock_aws(), mock.patch.object(ivs_world, "MAX_COMPOSITIONS_PER_ACCOUNT", 1000):
        start = T0 - timedelta(hours=1) if composed_before else T0
        with deploy(chosen, [], start=start) as deployment:
            if composed_before:
                earlier_sessions(deployment, chosen)
                deployment.run_until(T0)
            on_bus: dict[tuple[str, str], datetime] = {}  # (automation, stage) -> when its event was on the bus
            durations: dict[str, list[float]] = {name: [] for name in ACTIONS}  # each delivery's handling, s

            def handled(delivery: Delivery) -> None:  # called as the delivery ends, on the virtual clock
                if delivery.time >= T0:
                    durations[delivery.automation].append((deployment.clock() - delivery.time).total_seconds())

            deployment.on_delivery = handled
            if quiet_window:
                deliver = deployment._deliver

                def invoked(pending: Any, container: Any) -> None:
                    container.pacer.invocation_started()  # what set_deadline does at each invocation
                    deliver(pending, container)

                deployment._deliver = invoked  # type: ignore[method-assign]
            for i, policy in enumerate(chosen):
                stage, session = policy.stage_arn, f"st-Late{i:04d}Sessn"
                at = T0 + timedelta(seconds=SPACING_SECONDS * i + rng.uniform(0, 1))
                for participant, user, automations in (
                    (f"hOst{i:04d}AbCd", f"host-{i}", ("composition", "replication")),
                    (f"tRoll{i:04d}AbCd", f"troll-{i}", ("moderation",)),
                ):
                    deployment.ivs.declare_participant(stage, participant, user_id=user)
                    event = stage_event(
                        f"lat-{i}-{user}", stage, session, "Participant Published", participant, user, at
                    )
                    event["time"] = at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # to the microsecond: the bus time measured
                    deployment.put_event(event, delay_seconds=_delivery_delay(rng))
                    for automation in automations:
                        on_bus[(automation, stage)] = at
                    at += timedelta(seconds=SPACING_SECONDS / 2)
            deployment.drain()
            calls = deployment.ivs.mutating_calls()
            metric_names = sorted(deployment.metrics.counts)
    latencies: dict[str, list[float]] = {name: [] for name in ACTIONS}
    for automation, operation in ACTIONS.items():
        source = "sourceStageArn" if operation == "StartParticipantReplication" else "stageArn"
        first: dict[str, datetime] = {}
        for call in calls:
            if call.operation == operation and call.time >= T0:
                first.setdefault(call.params[source], call.time)
        for (name, stage), at in on_bus.items():
            if name == automation and stage in first:
                latencies[automation].append((first[stage] - at).total_seconds())
    return {
        "metric_names": metric_names,  # every custom metric the functions published on this show
        **{
            name: {
                "actions": len(values),
                "stages": stages,
                "p50_seconds": percentile(values, 0.50) if values else float("nan"),
                "p99_seconds": percentile(values, 0.99) if values else float("nan"),
                "mean_seconds": statistics.fmean(values) if values else float("nan"),
                # every delivery of this automation's queue (acting or not): what Lambda bills as duration
                "deliveries": len(durations[name]),
                "delivery_mean_seconds": statistics.fmean(durations[name]) if durations[name] else float("nan"),
                "delivery_p99_seconds": percentile(durations[name], 0.99) if durations[name] else float("nan"),
            }
            for name, values in latencies.items()
        },
    }


def run(stages: int = 100) -> dict[str, Any]:
    results: dict[str, Any] = {
        "stages": stages,
        "eventbridge_seconds": list(EVENTBRIDGE_SECONDS),
        "sqs_poll_seconds": list(SQS_POLL_SECONDS),
        "anchor": anchor(),
        "new_stages": measure(stages),
        "composed_before": measure(stages, composed_before=True),
        "new_stages_without_quiet_window": measure(stages, quiet_window=False),
    }
    for kind in ("new_stages", "composed_before", "new_stages_without_quiet_window"):
        for name in ACTIONS:
            figures = results[kind][name]
            figures["p50_ratio"] = figures["p50_seconds"] / results["anchor"]["p50"]
            figures["p99_ratio"] = figures["p99_seconds"] / results["anchor"]["p99"]
    return results


def main(argv: list[str] | None = None) -> int:
    parser = cli.parser("benchmarks.latency", __doc__)
    cli.count_argument(parser, "STAGES", default=100, what="stages, one event each")
    stages = parser.parse_args(argv).stages
    logging.disable(logging.WARNING)
    print(json.dumps(run(stages), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
