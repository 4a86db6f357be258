"""An event that finds another owner's live claim is retried once the lease can have run out, for every claim
kind: a composition start, a replication, a disconnect (and a dry run's would-disconnect).

The story each test tells: another owner — the convergence pass, or another delivery — claims the action and
dies without finishing (a Lambda timeout; the pass's StartComposition refused near its deadline). The event
that comes meanwhile used to be acknowledged and dropped ("another event is starting this session's
composition"), and nothing acted for that stage until a later pass happened to reach it. Now it goes back
to its queue until the lease can have run out, takes the claim over with the same attempt and idempotency
token, and the action happens exactly once (counted from the stand-in's successful calls).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from stagepilot.adapters.replication_state import ReplicationTarget
from stagepilot.automations.composition import CompositionAutomation
from stagepilot.automations.moderation import ModerationAutomation
from stagepilot.automations.replication import ReplicationAutomation
from stagepilot.decisions.leases import CLAIM_LEASE, HELD_RETRY_MARGIN, MAX_RECEIVES
from stagepilot.errors import ClaimHeld
from stagepilot.local.deployment import Delivery, LocalDeployment
from stagepilot.pipeline import handle_record
from tests.support import ENCODER, OTHER_STAGE, SESSION, STAGE, STORAGE, EventFactory, later, put_policy

DEAD = "e-dead@m-dead"  # a delivery that claimed and died (its Lambda timed out)
COMPOSITION: dict[str, Any] = {
    "stageArn": STAGE,
    "composition": {
        "destinations": [
            {"name": "archive", "s3": {"storageConfigurationArn": STORAGE, "encoderConfigurationArns": [ENCODER]}}
        ]
    },
}
REPLICATION: dict[str, Any] = {
    "stageArn": STAGE,
    "replication": [{"destinationStageArn": OTHER_STAGE, "participants": {"userIds": ["host-1"]}}],
}


def moderation(**fields: Any) -> dict[str, Any]:
    return {"stageArn": STAGE, "moderation": {"blockedUserIds": ["spammer-7"], **fields}}


def calls(show: LocalDeployment, operation: str) -> list[dict[str, Any]]:
    return [c.params for c in show.ivs.mutating_calls() if c.operation == operation]


def held_then_done(show: LocalDeployment, event: dict[str, Any]) -> tuple[Delivery, Delivery]:
    """The event's first receive (held) and its return (acted), checked for what every story shares."""
    first, again = [d for d in show.deliveries if d.event["id"] == event["id"]]
    assert first.error is not None and first.error.startswith("ClaimHeld: ")
    assert again.receive == 2 and again.error is None and not show.dead_letters[again.automation]
    # it came back once the lease could have run out, not after a failure's back-off
    assert first.retry_in is not None and first.retry_in <= (CLAIM_LEASE + HELD_RETRY_MARGIN).total_seconds()
    assert show.metrics.counts["EventClaimHeld"] == 1
    assert "EventRetried" not in show.metrics.counts and "EventFailed" not in show.metrics.counts
    return first, again


def test_a_start_the_pass_claimed_and_died_on_is_made_by_the_event_after_the_lease(
    make_deployment: Any, events: EventFactory
) -> None:
    show: LocalDeployment = make_deployment(automations=[CompositionAutomation()])  # the pass is run by hand
    put_policy(show, COMPOSITION)
    publish = events.published("host1", user_id="host-1")
    show.ivs.observe(publish)  # the host publishes; its event is slow to come
    show.ivs.fail_next("StartComposition", 1)  # the pass's start is refused and the pass ends (its deadline)

    report = show.reconcile()
    claimed = show.services.compositions.get(STAGE, SESSION)
    assert report.errors and claimed is not None and claimed.owner.startswith("reconcile:")
    show.put_event(publish, observe=False)
    show.drain()

    [start] = calls(show, "StartComposition")
    assert start["idempotencyToken"].endswith(f"{SESSION}-1")  # the pass's attempt, taken over
    first, again = held_then_done(show, publish)
    assert first.outcome is None and first.time - claimed.claimed_at < CLAIM_LEASE
    assert again.time - claimed.claimed_at > CLAIM_LEASE  # it took over only once the lease had run out
    assert again.outcome is not None and again.outcome.action == "composition-started"
    assert again.outcome.reason.endswith("the claim of another event expired; taking over")
    assert [c.state for c in show.ivs.compositions(STAGE)] == ["ACTIVE"]


def test_a_start_another_delivery_claimed_and_died_on_is_made_once(make_deployment: Any, events: EventFactory) -> None:
    show: LocalDeployment = make_deployment(automations=[CompositionAutomation()])
    put_policy(show, COMPOSITION)
    show.services.compositions.claim_first(STAGE, SESSION, owner=DEAD)

    publish = events.published("host1", user_id="host-1", at=later(1))
    show.put_event(publish)
    show.drain()

    assert len(calls(show, "StartComposition")) == 1
    held_then_done(show, publish)


def test_a_replication_another_delivery_claimed_and_died_on_is_made_once(
    make_deployment: Any, events: EventFactory
) -> None:
    show: LocalDeployment = make_deployment(automations=[ReplicationAutomation()])
    put_policy(show, REPLICATION)
    show.services.replications.claim_first(ReplicationTarget(STAGE, SESSION, "host1", OTHER_STAGE), owner=DEAD)

    publish = events.published("host1", user_id="host-1", at=later(1))
    show.put_event(publish)
    show.drain()

    assert [c["destinationStageArn"] for c in calls(show, "StartParticipantReplication")] == [OTHER_STAGE]
    _, again = held_then_done(show, publish)
    assert again.outcome is not None and again.outcome.action == "replication-started"


@pytest.mark.parametrize("dry_run", [False, True], ids=["disconnect", "dry run"])
def test_a_disconnect_another_delivery_claimed_and_died_on_is_made_once(
    make_deployment: Any, events: EventFactory, dry_run: bool
) -> None:
    show: LocalDeployment = make_deployment(automations=[ModerationAutomation()])
    put_policy(show, moderation(dryRun=dry_run))
    show.services.disconnect_claims.claim(STAGE, SESSION, "p2", owner=DEAD, dry_run=dry_run)

    publish = events.published("p2", user_id="spammer-7", at=later(1))
    show.put_event(publish)
    show.drain()

    entries = [e for e in show.services.audit.list(STAGE) if e["participantId"] == "p2"]
    if dry_run:  # recorded once, called nothing
        assert calls(show, "DisconnectParticipant") == []
        assert [(e["action"], e["result"]) for e in entries] == [("would-disconnect", "dry-run")]
        assert show.metrics.counts["ParticipantWouldDisconnect"] == 1
    else:
        assert [c["participantId"] for c in calls(show, "DisconnectParticipant")] == ["p2"]
        assert [(e["action"], e["result"]) for e in entries] == [("disconnect", "disconnected")]
    held_then_done(show, publish)


def test_a_copy_of_the_event_in_flight_beside_the_one_that_acts_finds_it_done_on_its_return(
    make_deployment: Any, events: EventFactory
) -> None:
    """EventBridge delivers the publish twice at once: two containers, two SQS messages, so two owners (the
    redelivery of one message resumes its own claim; a copy does not). The copy that finds the other's
    claim live comes back after the lease and finds the composition started: nothing more."""
    show: LocalDeployment = make_deployment(automations=[CompositionAutomation()])
    put_policy(show, COMPOSITION)
    publish = events.published("host1", user_id="host-1", at=later(1))
    show.put_event(publish)
    show.put_event(publish, observe=False)
    show.drain()

    assert len(calls(show, "StartComposition")) == 1
    reasons = [(d.receive, d.outcome.reason if d.outcome else d.error) for d in show.deliveries]
    assert [receive for receive, _ in reasons] == [1, 1, 2], reasons
    held = [why for _, why in reasons if why and why.startswith("ClaimHeld: ")]
    assert len(held) == 1 and "another event is starting this session's composition" in held[0]
    assert "composition already started" in str(reasons[-1][1])
    assert show.metrics.counts["EventClaimHeld"] == 1 and not show.dead_letters["composition"]


def test_a_claim_still_held_on_the_last_receive_is_not_released(make_deployment: Any, events: EventFactory) -> None:
    """The last receive gives up the claims its own event holds (``adapters/leases.py``): never the holder's."""
    show: LocalDeployment = make_deployment(automations=[CompositionAutomation()])
    put_policy(show, COMPOSITION)
    show.ivs.observe(events.published("host1", user_id="host-1"))
    show.services.compositions.claim_first(STAGE, SESSION, owner=DEAD)
    before = show.services.compositions.get(STAGE, SESSION)
    body = json.dumps(events.published("host1", user_id="host-1"))
    record = {"messageId": "m-5", "body": body, "attributes": {"ApproximateReceiveCount": str(MAX_RECEIVES)}}

    class Queue:
        retried: list[float] = []

        def park(self, record: Any, reason: str) -> None:
            raise AssertionError("a held claim is not a malformed event")

        def retry_after(self, record: Any, seconds: float) -> None:
            self.retried.append(seconds)

    with pytest.raises(ClaimHeld):
        handle_record(record, show.automations["composition"], show.services, Queue())

    assert show.services.compositions.get(STAGE, SESSION) == before  # the holder's claim, untouched
    assert "ClaimsReleased" not in show.metrics.counts
    assert calls(show, "StartComposition") == []
