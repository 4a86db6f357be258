"""The convergence pass beside a busy show start, as deployed (docs/simulate.md, "Time passes as deployed";
docs/reliability.md): every call takes its time, each container paces its calls, and the pass walks the
live stages while their first publishes are being handled.

The race these tests keep closed (issue 22, item 1): the pass lists every composition once, at its start,
then takes most of its minute over the stages. A stage the event path composed after that listing has a
STARTED record and no composition in the stale listing; a pass that trusted the listing started a second
composition there, and audited the heal as a lost event (raising the events-lost alarm on a normal show
start). The pass confirms with IVS before it acts (``GetComposition``), so neither happens.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from stagepilot.local import ivs_world
from stagepilot.local.deployment import LocalDeployment
from tests.support import ACCOUNT, ENCODER, REGION, STORAGE, T0, EventFactory, put_policy

PASS = 60  # the deployed period


@pytest.fixture(autouse=True)
def raised_quota(monkeypatch: pytest.MonkeyPatch) -> None:
    """IVS allows 20 live compositions an account by default (adjustable): a fleet this size has raised it."""
    monkeypatch.setattr(ivs_world, "MAX_COMPOSITIONS_PER_ACCOUNT", 200)


def stage_arn(index: int) -> str:
    return f"arn:aws:ivs:{REGION}:{ACCOUNT}:stage/LoadStage{index:04d}"


def session_id(index: int) -> str:
    return f"st-LoadStage{index:04d}"


def fleet(make_deployment: Any, stages: int) -> LocalDeployment:
    deployment: LocalDeployment = make_deployment(reconcile_seconds=PASS)
    for index in range(stages):
        arn = stage_arn(index)
        deployment.ivs.create_stage(arn)
        put_policy(
            deployment,
            {
                "stageArn": arn,
                "composition": {
                    "destinations": [
                        {"s3": {"storageConfigurationArn": STORAGE, "encoderConfigurationArns": [ENCODER]}}
                    ]
                },
            },
        )
    return deployment


def compositions_per_stage(deployment: LocalDeployment) -> Counter[str]:
    return Counter(c.stage_arn for c in deployment.ivs.compositions(include_deleted=True))


def heals(deployment: LocalDeployment, stages: int) -> list[str]:
    return [
        str((entry.get("details") or {}).get("healReason"))
        for index in range(stages)
        for entry in deployment.services.audit.list(stage_arn(index))
        if entry["action"] == "healed"
    ]


@pytest.mark.story
def test_a_show_start_spread_over_a_pass_composes_every_stage_once(make_deployment: Any, events: EventFactory) -> None:
    # 20 stages go live before the first pass, so it has many stages to walk (its paced reads take most of
    # its minute); 20 more start one every 1.5 s while it walks them, each composed by the event path
    # after the pass listed the compositions.
    stages = 40
    deployment = fleet(make_deployment, stages)
    for index in range(stages):
        at = T0 + timedelta(seconds=30 + index) if index < 20 else T0 + timedelta(seconds=PASS + 1.5 * (index - 20))
        deployment.put_event(
            events.published(
                f"host{index:04d}", user_id="host", stage=stage_arn(index), session=session_id(index), at=at
            )
        )
    deployment.settle(5 * PASS)

    assert compositions_per_stage(deployment) == Counter({stage_arn(i): 1 for i in range(stages)})
    assert heals(deployment, stages) == []  # every event was delivered: nothing to heal, nothing lost
    assert deployment.metrics.counts.get("HealedEventLost", 0) == 0
    assert deployment.passes and deployment.passes_killed == 0
    took = [d.time for d in deployment.deliveries]
    assert len(set(took)) > 1  # the deliveries took time: they did not all happen in one instant


def test_a_lost_first_publish_is_healed_once_with_its_true_reason_while_the_others_start(
    make_deployment: Any, events: EventFactory
) -> None:
    stages = 12
    deployment = fleet(make_deployment, stages)
    for index in range(stages):
        event = events.published(
            f"host{index:04d}",
            user_id="host",
            stage=stage_arn(index),
            session=session_id(index),
            at=T0 + timedelta(seconds=PASS - 5 + index),
        )
        deployment.put_event(event, deliver=index != 7)  # stage 7's first publish never arrives
    deployment.settle(4 * PASS)

    assert compositions_per_stage(deployment) == Counter({stage_arn(i): 1 for i in range(stages)})
    # The next pass came within a minute of the publish, while the other stages' events were being handled;
    # the composition queue was empty by then (it reads its depth), so nothing explains it but a lost event.
    assert heals(deployment, stages) == ["event-lost"]
    assert deployment.passes_killed == 0
