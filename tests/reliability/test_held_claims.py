"""A claim whose owner died does not block the next event (docs/reliability.md, "A held claim is retried").

The story from the burst benchmark (docs/performance.md, section 3): the convergence pass claims a stage's
start and its `StartComposition` is refused near its deadline; the stage's own event, arriving meanwhile,
finds the pass's claim live. It used to be acknowledged and dropped, so nothing acted for that stage until
a pass came round to it again (some 50 live stages a pass at 1,000), and that heal was called `event-lost`.
Now the event goes back to its queue until the lease can have run out. On `LocalDeployment`, with time
passing, for the three claim kinds at once, each action is done exactly once (counted from the stand-in's
successful calls), nothing reaches a dead-letter queue, and nothing is counted as a failure or a lost event.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from stagepilot.decisions.leases import CLAIM_LEASE, HELD_RETRY_MARGIN
from stagepilot.local.deployment import LocalDeployment
from tests.support import ENCODER, OTHER_STAGE, STAGE, STORAGE, EventFactory, later, put_policy

POLICY: dict[str, Any] = {
    "stageArn": STAGE,
    "composition": {
        "destinations": [
            {"name": "archive", "s3": {"storageConfigurationArn": STORAGE, "encoderConfigurationArns": [ENCODER]}}
        ]
    },
    "replication": [{"destinationStageArn": OTHER_STAGE, "participants": {"userIds": ["host-1"]}}],
    "moderation": {"blockedUserIds": ["spammer-7"]},
}
ACTIONS = ("StartComposition", "StartParticipantReplication", "DisconnectParticipant")


def done(show: LocalDeployment) -> dict[str, int]:
    made = [c.operation for c in show.ivs.mutating_calls() if c.operation in ACTIONS]
    return {operation: made.count(operation) for operation in ACTIONS}


def heal_reasons(show: LocalDeployment) -> list[str]:
    return [e["details"]["healReason"] for e in show.services.audit.list(STAGE) if e["action"] == "healed"]


def test_the_pass_claims_three_actions_and_dies_and_the_events_do_each_once_after_the_lease(
    make_deployment: Any, events: EventFactory
) -> None:
    # The pass is far away (as at 1,000 live stages): run by hand now, and again 10 minutes later.
    show: LocalDeployment = make_deployment()
    put_policy(show, POLICY)
    for participant, user in (("host1", "host-1"), ("p2", "spammer-7")):
        show.put_event(events.published(participant, user_id=user, at=later(1)), delay_seconds=30)  # slow to come
    for operation in ACTIONS:  # the pass's three actions are refused: it claimed each and gives up
        show.ivs.fail_next(operation, 1)

    began = show.clock()
    first = show.reconcile()
    assert len(first.errors) == 3 and done(show) == dict.fromkeys(ACTIONS, 0), first.errors
    claimed_by = show.clock()
    show.settle(CLAIM_LEASE.total_seconds() + 60)

    assert done(show) == dict.fromkeys(ACTIONS, 1)  # each action once, by the events, after the lease
    acted = [d for d in show.deliveries if d.outcome is not None and d.outcome.acted]
    assert sorted(d.automation for d in acted) == ["composition", "moderation", "replication"]
    # back once the lease had run out, within seconds of it (the wait is counted from the decision, in
    # whole seconds), not after a failure's back-off or the next pass
    soon = CLAIM_LEASE + HELD_RETRY_MARGIN + timedelta(seconds=5)
    assert all(d.receive == 2 and d.time - began > CLAIM_LEASE and d.time - claimed_by < soon for d in acted)
    # Held is the only way any delivery did not finish. Both publishes find the pass's composition claim: the
    # first back takes it over, the second loses that race and waits once more, then finds it started.
    held = [d for d in show.deliveries if d.error is not None]
    assert all(d.error.startswith("ClaimHeld: ") for d in held if d.error), [d.error for d in held]
    assert not any(show.dead_letters.values())
    counts = show.metrics.counts
    assert counts["EventClaimHeld"] == len(held) == 5
    assert "EventRetried" not in counts and "EventFailed" not in counts
    show.settle(CLAIM_LEASE.total_seconds())  # the race's loser comes back a third time: started, nothing to do
    assert done(show) == dict.fromkeys(ACTIONS, 1) and counts["EventClaimHeld"] == 5
    assert max(d.receive for d in show.deliveries) == 3 and not any(show.dead_letters.values())

    show.clock.advance_to(later(600))
    last = show.reconcile()  # the pass that comes round finds everything done
    assert last.errors == [] and last.healed == []
    assert done(show) == dict.fromkeys(ACTIONS, 1)
    assert heal_reasons(show) == [] and "HealedEventLost" not in counts


def test_when_the_pass_comes_back_first_it_finishes_its_own_claim_and_the_heal_is_not_event_lost(
    make_deployment: Any, events: EventFactory
) -> None:
    """Every 60 s, the pass comes back within the lease and resumes its own claim; the event, waiting in the
    queue for the lease, then finds the composition started. The heal is `event-late` (its event was in the
    queue), where the dropped event made it `event-lost` and raised HealedAlarm."""
    show: LocalDeployment = make_deployment(reconcile_seconds=60)
    put_policy(show, {k: v for k, v in POLICY.items() if k in ("stageArn", "composition")})
    show.ivs.fail_next("StartComposition", 1)  # the first pass's start (at 60 s) is refused
    show.put_event(events.published("host1", user_id="host-1", at=later(50)), delay_seconds=30)

    show.settle(300)

    assert done(show)["StartComposition"] == 1
    assert heal_reasons(show) == ["event-late"]
    assert "HealedEventLost" not in show.metrics.counts
    [held, back] = [d for d in show.deliveries if d.automation == "composition"]
    assert held.error is not None and held.error.startswith("ClaimHeld: ")
    assert back.outcome is not None and "composition already started" in back.outcome.reason
    assert back.time - held.time <= CLAIM_LEASE + timedelta(seconds=HELD_RETRY_MARGIN.total_seconds())
    assert not show.dead_letters["composition"]
