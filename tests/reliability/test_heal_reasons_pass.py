"""A heal says what the pass observed (docs/reliability.md): only a heal nothing else explains is ``event-lost``,
the one reason that raises ``HealedAlarm``. Each story: one stage, one publisher, and the convergence
pass run by hand at a chosen moment."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from stagepilot.adapters.table import PauseSwitches
from stagepilot.local.deployment import LocalDeployment
from tests.support import CHANNEL, ENCODER, STAGE, EventFactory, later, put_policy

COMPOSED = {
    "stageArn": STAGE,
    "composition": {
        "destinations": [{"name": "live", "channel": {"channelArn": CHANNEL, "encoderConfigurationArn": ENCODER}}]
    },
}


def heal_reasons(deployment: LocalDeployment) -> list[str]:
    return [e["details"]["healReason"] for e in deployment.services.audit.list(STAGE) if e["action"] == "healed"]


def starts(deployment: LocalDeployment) -> int:
    return len([c for c in deployment.ivs.mutating_calls() if c.operation == "StartComposition"])


def test_a_lost_publish_is_event_lost_and_counted_for_the_alarm(make_deployment: Any, events: EventFactory) -> None:
    deployment: LocalDeployment = make_deployment()
    put_policy(deployment, COMPOSED)
    deployment.put_event(events.published("host", user_id="host-1", at=later(1)), deliver=False)
    deployment.clock.advance_to(later(120))

    deployment.reconcile()

    assert heal_reasons(deployment) == ["event-lost"]
    assert deployment.metrics.counts["HealedEventLost"] == 1


def test_an_event_still_on_its_way_is_event_late_and_finds_the_work_done(
    make_deployment: Any, events: EventFactory
) -> None:
    deployment: LocalDeployment = make_deployment()
    put_policy(deployment, COMPOSED)
    deployment.put_event(events.published("host", user_id="host-1", at=later(1)), delay_seconds=45)
    deployment.clock.advance_to(later(20))

    deployment.reconcile()  # the pass gets there first
    deployment.settle(60)  # then the event arrives

    assert heal_reasons(deployment) == ["event-late"]
    assert "HealedEventLost" not in deployment.metrics.counts
    assert starts(deployment) == 1


def test_a_stage_resumed_after_its_publish_is_healed_as_resumed(make_deployment: Any, events: EventFactory) -> None:
    deployment: LocalDeployment = make_deployment()
    put_policy(deployment, COMPOSED)
    switches = PauseSwitches(deployment.table, clock=deployment.clock)
    switches.pause(STAGE, by="operator")
    deployment.put_event(events.published("host", user_id="host-1", at=later(1)))  # delivered: skipped, paused
    deployment.settle(5)
    assert starts(deployment) == 0
    deployment.clock.advance_to(later(600))
    assert switches.resume(STAGE)

    deployment.reconcile()

    assert heal_reasons(deployment) == ["resumed"]
    assert deployment.metrics.counts["HealedResumed"] == 1 and "HealedEventLost" not in deployment.metrics.counts


def test_a_policy_changed_after_the_publish_is_healed_as_policy_changed(
    make_deployment: Any, events: EventFactory
) -> None:
    deployment: LocalDeployment = make_deployment()
    put_policy(deployment, {"stageArn": STAGE, "moderation": {"blockedUserIds": ["troll-3"]}})
    deployment.put_event(events.published("host", user_id="host-1", at=later(1)))  # delivered: nothing to compose
    deployment.settle(5)
    deployment.clock.advance_to(later(300))
    put_policy(deployment, {**COMPOSED, "moderation": {"blockedUserIds": ["troll-3"]}})  # now it composes
    deployment.clock.advance_to(later(300) + timedelta(seconds=10))

    deployment.reconcile()

    assert heal_reasons(deployment) == ["policy-changed"]
    assert starts(deployment) == 1 and "HealedEventLost" not in deployment.metrics.counts
