"""A burst under the IVS quota: 200 stages whose first publisher arrives within one second, with the
IVS stand-in enforcing 5 StartComposition calls per second, on a virtual clock.

The deployed shape is modelled, not ``LocalDeployment``'s single consumer: the composition queue is
read by ``CONSUMERS`` function containers (the event source mapping's MaximumConcurrency), each with
its own services and its own ``Pacer`` at the deployed ``ivs_calls_per_second`` (2.0/s), whose clock is
that container's virtual time and whose sleep advances it. A container takes the next visible message
when it is free; a failed record becomes visible again after the back-off the handler asked for
(``ChangeMessageVisibility``), and after ``MAX_RECEIVES`` it goes to the DLQ. Botocore's own retries
run as deployed (``CLIENT_CONFIG``: standard mode, 3 attempts) with their back-off sleeping on the
container's virtual clock, so a throttled call is first retried by botocore and only then, as
``RetryLater``, through the queue.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import random
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from unittest import mock

from benchmarks.work_per_event import ACCOUNT, REGION, T0, stage_arn, stage_event
from stagepilot.adapters.ivs import CLIENT_CONFIG, IvsStage, Pacer
from stagepilot.automations.composition import CompositionAutomation
from stagepilot.config import DEFAULT_IVS_CALLS_PER_SECOND, Settings
from stagepilot.local import ivs_world
from stagepilot.local.deployment import MAX_RECEIVES, TABLE_NAME, LocalDeployment, RecordingMetrics
from stagepilot.pipeline import Services, handle_record
from stagepilot.policy import parse_policy

STAGES = 200
QUOTA_PER_SECOND = 5.0
CONSUMERS = 2  # MaximumConcurrency of the composition queue's event source mapping
CALL_LATENCY = timedelta(milliseconds=30)  # virtual time each AWS call takes (IVS/DynamoDB in-region)
STORAGE = f"arn:aws:ivs:{REGION}:{ACCOUNT}:storage-configuration/BurstStorage01"
ENCODER = f"arn:aws:ivs:{REGION}:{ACCOUNT}:encoder-configuration/BurstEncoder01"


@dataclass(order=True)
class Message:
    visible_at: float
    seq: int
    body: str = field(compare=False)
    message_id: str = field(compare=False)
    receives: int = field(compare=False, default=0)


class _Redelivery:
    def __init__(self) -> None:
        self.delay: float | None = None
        self.parked = 0

    def park(self, record: Any, reason: str) -> None:
        self.parked += 1

    def retry_after(self, record: Any, seconds: float) -> None:
        self.delay = seconds


class _VirtualTime:
    """``time`` as botocore's endpoint sees it: its retry back-off sleeps on the virtual clock."""

    clock: Any = None

    def sleep(self, seconds: float) -> None:
        if _VirtualTime.clock is not None:
            _VirtualTime.clock.now += timedelta(seconds=seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


class Container:
    """One function container: its own clock position, pacer, services (and policy cache)."""

    def __init__(self, deployment: LocalDeployment, rate: float) -> None:
        self.deployment = deployment
        self.free_at = 0.0  # seconds after T0
        clock = deployment.clock
        self.pacer = Pacer(
            rate,
            clock=lambda: (clock.now - T0).total_seconds(),
            sleep=lambda seconds: setattr(clock, "now", clock.now + timedelta(seconds=seconds)),
        )
        client = deployment.ivs.client(config=CLIENT_CONFIG)
        client.meta.events.register("before-send", self._latency)  # every attempt, retries included
        deployment.table.client.meta.events.register("before-send", self._latency, unique_id="bench-latency")
        self.services = Services(
            settings=deployment.settings,
            table=deployment.table,
            ivs=IvsStage(client, pacer=self.pacer),
            metrics=deployment.metrics,
            clock=clock,
        )

    def _latency(self, **_: Any) -> None:
        self.deployment.clock.now += CALL_LATENCY


def run(
    stages: int = STAGES, *, rate: float = DEFAULT_IVS_CALLS_PER_SECOND, consumers: int = CONSUMERS, seed: int = 1
) -> dict[str, Any]:
    import botocore.endpoint
    from moto import mock_aws

    rng = random.Random(seed)
    logging.getLogger("stagepilot").setLevel(logging.ERROR)  # 200 "will be retried" lines say nothing here
    # The default account quota is 20 live compositions (adjustable); a 200-stage operator has raised it.
    with (
        mock_aws(),
        mock.patch.object(ivs_world, "MAX_COMPOSITIONS_PER_ACCOUNT", 10 * stages),
        mock.patch.object(botocore.endpoint, "time", _VirtualTime()),
    ):
        deployment = LocalDeployment(
            account=ACCOUNT,
            region=REGION,
            start=T0,
            automations=[CompositionAutomation()],
            settings=Settings(table_name=TABLE_NAME, policy_cache_seconds=30.0),
        )
        deployment.metrics = RecordingMetrics()
        _VirtualTime.clock = deployment.clock
        deployment.ivs.set_rate_limit("StartComposition", QUOTA_PER_SECOND)
        automation = CompositionAutomation()
        arns = [stage_arn(f"Burst{i:04d}") for i in range(stages)]
        for arn in arns:
            deployment.ivs.create_stage(arn)
            deployment.services.policies.put(
                parse_policy(
                    {
                        "stageArn": arn,
                        "composition": {
                            "layout": {"grid": {}},
                            "destinations": [
                                {"s3": {"storageConfigurationArn": STORAGE, "encoderConfigurationArns": [ENCODER]}}
                            ],
                        },
                    }
                )
            )
        containers = [Container(deployment, rate) for _ in range(consumers)]
        seq = itertools.count()
        queue: list[Message] = []
        for i, arn in enumerate(arns):
            at = rng.uniform(0.0, 1.0)
            event = stage_event(f"b-{i}", arn, f"st-Burst{i:04d}", "Participant Published", f"pUb{i:04d}x", "", T0)
            deployment.clock.now = T0 + timedelta(seconds=at)
            deployment.ivs.observe(event)  # the stage's session starts with this publisher
            heapq.heappush(queue, Message(at, next(seq), json.dumps(event), f"m-{i}"))
        dead, handled, records_failed = 0, 0, 0
        while queue:
            container = min(containers, key=lambda c: c.free_at)
            message = heapq.heappop(queue)
            start = max(container.free_at, message.visible_at)
            deployment.clock.now = T0 + timedelta(seconds=start)
            message.receives += 1
            record = {
                "messageId": message.message_id,
                "body": message.body,
                "receiptHandle": message.message_id,
                "attributes": {"ApproximateReceiveCount": str(message.receives)},
            }
            redelivery = _Redelivery()
            try:
                handle_record(record, automation, container.services, redelivery)
                handled += 1
            except Exception:
                records_failed += 1
                if message.receives >= MAX_RECEIVES:
                    dead += 1
                else:
                    delay = redelivery.delay if redelivery.delay is not None else 30.0
                    message.visible_at = (deployment.clock.now - T0).total_seconds() + delay
                    message.seq = next(seq)
                    heapq.heappush(queue, message)
            container.free_at = (deployment.clock.now - T0).total_seconds()
        starts = [c for c in deployment.ivs.calls if c.operation == "StartComposition"]
        ok = [c for c in starts if c.status == 200]
        per_stage: dict[str, int] = {}
        for composition in deployment.ivs.compositions(include_deleted=True):
            per_stage[composition.stage_arn] = per_stage.get(composition.stage_arn, 0) + 1
        drain = max((c.time - T0).total_seconds() for c in ok) if ok else float("inf")
        floor = stages / QUOTA_PER_SECOND
        return {
            "stages": stages,
            "quota_per_second": QUOTA_PER_SECOND,
            "consumers": consumers,
            "pacer_per_container": rate,
            "compositions": sum(per_stage.values()),
            "stages_with_one_composition": sum(1 for arn in arns if per_stage.get(arn) == 1),
            "stages_without": sum(1 for arn in arns if arn not in per_stage),
            "duplicates": sum(n - 1 for n in per_stage.values() if n > 1),
            "dead_letters": dead,
            "start_calls": len(starts),
            "throttled_calls": sum(1 for c in starts if c.status == 429),
            "retried_by_botocore": sum(1 for c in starts if c.status == 429) - records_failed,
            "records_retried": records_failed,
            "drain_seconds": drain,
            "floor_seconds": floor,
            "ratio": drain / floor,
            "target_ratio": 1.2,
            "met": drain / floor <= 1.2 and sum(1 for arn in arns if per_stage.get(arn) == 1) == stages and dead == 0,
        }


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
