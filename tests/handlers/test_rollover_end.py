"""A composition IVS ended at its 24-hour limit, whose ``Session End`` meets a record that is not (or not only)
the ended composition's: its successor starts exactly once, never dropped, never twice.

On a channel the successor waits for IVS to end the predecessor (a channel takes one composition at a time),
so the ``Session End`` is what starts it (``decide_on_end``). IVS's events are best effort (duplicated, late,
out of order), and whoever else may start the successor — a copy of the same event, a publisher reconnecting
(IVS cuts every connection at 24 hours too), the convergence pass — claims it in the session's record, which
still names the ended composition until the successor is recorded. The stories:

- another owner claims the successor between the event's recording of the end and its decision, and dies:
  the event used to drop itself ("the session's composition is claimed") and nothing started the successor
  until the pass took the claim over; now it goes back to its queue until the lease can have run out and
  takes the claim over (same attempt and idempotency token);
- another owner claimed it, IVS started it, and the owner died before recording it (a Lambda timeout): the
  event used to overwrite that claim with "ended" and start a second successor on the same channel; now it
  is held, then takes the claim over, and IVS answers the same composition for the same token;
- the event's own first receive started it and failed to record it (a DynamoDB throttle): its redelivery
  used to do the same; now it resumes its own claim, and finds the successor IVS already runs.

Each counts IVS's compositions (the stand-in's), not the calls: a start IVS answers with an existing
composition (the same idempotency token) is not a second one.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from botocore.exceptions import ClientError

from stagepilot.adapters.state import composition_key
from stagepilot.adapters.table import iso
from stagepilot.automations.composition import CompositionAutomation
from stagepilot.decisions.composition import State, idempotency_token, managed_tags
from stagepilot.decisions.leases import CLAIM_LEASE, HELD_RETRY_MARGIN
from stagepilot.local.deployment import LocalDeployment
from tests.handlers.conftest import Calls
from tests.support import CHANNEL, ENCODER, SESSION, STAGE, STORAGE, T0, EventFactory, later, put_policy

DEAD = "e-dead@m-dead"  # another delivery that claimed the successor and died (its Lambda timed out)
POLICY: dict[str, Any] = {
    "stageArn": STAGE,
    "composition": {
        "destinations": [
            {"name": "live", "channel": {"channelArn": CHANNEL, "encoderConfigurationArn": ENCODER}},
            {"name": "archive", "s3": {"storageConfigurationArn": STORAGE, "encoderConfigurationArns": [ENCODER]}},
        ],
        "maxRestarts": 0,
    },
}
LIMIT = T0 + timedelta(hours=24)


def at_the_limit(make_deployment: Any, events: EventFactory) -> tuple[LocalDeployment, dict[str, Any]]:
    """A host from the start and a cohost from hour 23 (a connection lasts 24 hours); IVS ends the composition
    at its 24 hours. Its ``Session End`` is held back: the test delivers it. The pass is run by hand."""
    show: LocalDeployment = make_deployment(automations=[CompositionAutomation()])
    put_policy(show, POLICY)
    show.lose_emitted("Session End", stage_arn=STAGE)
    show.put_event(events.published("host"))
    show.put_event(events.published("cohost", at=later(23 * 3600)))
    show.run_until(LIMIT + timedelta(seconds=30))
    [end] = [e for e in show.lost if e["detail"]["event_name"] == "Session End"]
    [first] = compositions(show)
    assert first.state == "STOPPED" and first.end_time - first.start_time == timedelta(hours=24)
    assert record(show).state is State.STARTED  # the end is not recorded yet
    return show, end


def compositions(show: LocalDeployment) -> list[Any]:
    """Every composition IVS started on the stage, oldest first."""
    return sorted(show.ivs.compositions(STAGE, include_deleted=True), key=lambda c: c.start_time)


def live(show: LocalDeployment) -> list[Any]:
    return [c for c in show.ivs.compositions(STAGE) if c.state in ("STARTING", "ACTIVE")]


def record(show: LocalDeployment) -> Any:
    return show.services.compositions.get(STAGE, SESSION)


def audited(show: LocalDeployment, action: str) -> list[dict[str, Any]]:
    return [e for e in show.services.audit.list(STAGE, limit=200) if e.get("action") == action]


def deliveries_of(show: LocalDeployment, event: dict[str, Any]) -> list[Any]:
    return [d for d in show.deliveries if d.event["id"] == event["id"]]


def assert_one_successor(show: LocalDeployment) -> Any:
    """The predecessor and exactly one successor, live, of attempt 2, audited ``rollover`` once."""
    started = [(c.tags["stagepilot:attempt"], c.state) for c in compositions(show)]
    assert len(started) == 2, started  # the 24-hour one and its successor: no second successor, none missing
    _, successor = compositions(show)
    assert live(show) == [successor]
    assert successor.tags["stagepilot:attempt"] == "2"
    now = record(show)
    assert now.state is State.STARTED and now.attempt == 2 and now.composition_arn == successor.arn
    assert now.restarts == 0  # a rollover spends no restart (maxRestarts 0)
    return successor


def throttle(nth: int) -> Any:
    """A botocore hook: the ``nth`` call it sees is throttled (refused before it reaches the table)."""
    seen = 0

    def hook(model: Any, **_: Any) -> None:
        nonlocal seen
        seen += 1
        if seen == nth:
            raise ClientError(
                {
                    "Error": {"Code": "ProvisionedThroughputExceededException", "Message": "injected"},
                    "ResponseMetadata": {"HTTPStatusCode": 400},
                },
                model.name,
            )

    return hook


def claim_the_successor(show: LocalDeployment, owner: str) -> None:
    ended = record(show)
    assert ended.state is State.ENDED
    assert show.services.compositions.claim(STAGE, SESSION, attempt=ended.attempt + 1, owner=owner, expected=ended)


def test_a_claim_taken_between_the_end_and_the_decision_is_waited_for_and_taken_over(
    make_deployment: Any, events: EventFactory
) -> None:
    """The event records the end; before it reads the record back, another owner (a publisher reconnecting at
    its 24 hours, the pass) claims the successor and dies. The event comes back once that lease can have run
    out and starts the successor with the claim's attempt."""
    show, end = at_the_limit(make_deployment, events)
    calls = Calls(show.table.client)
    # the end's record write (a transaction: the record and the stage's ledger), then its read of the record
    calls.before_next(
        "TransactWriteItems", lambda: calls.before_next("GetItem", lambda: claim_the_successor(show, DEAD))
    )

    show.put_event(end, observe=False)
    show.drain()

    successor = assert_one_successor(show)
    held, back = deliveries_of(show, end)
    assert held.error is not None and held.error.startswith("ClaimHeld: "), held
    assert "successor" in held.error and DEAD in held.error
    assert held.retry_in is not None and held.retry_in <= (CLAIM_LEASE + HELD_RETRY_MARGIN).total_seconds()
    assert back.receive == 2 and back.outcome is not None and back.outcome.action == "rollover", back
    assert back.time - held.time > CLAIM_LEASE - timedelta(seconds=5)  # not before the lease could run out
    [rollover] = audited(show, "rollover")
    assert rollover["details"]["compositionArn"] == successor.arn
    assert show.metrics.counts["EventClaimHeld"] == 1 and show.metrics.counts["CompositionRolledOver"] == 1
    assert not show.dead_letters["composition"]


def test_a_successor_the_pass_started_and_did_not_record_is_not_started_twice(
    make_deployment: Any, events: EventFactory
) -> None:
    """The ``Session End`` is late (IVS: "you may receive events up to a few hours old"). The pass found the
    composition ended at its 24 hours and started its successor (a rollover heal); the write that records it
    was throttled, so the record says claimed by the pass and still names the predecessor. Then the event."""
    show, end = at_the_limit(make_deployment, events)
    show.table.client.meta.events.register("before-call.dynamodb.TransactWriteItems", throttle(1))
    report = show.reconcile()
    assert report.errors, report.outcomes
    [successor] = live(show)
    claimed = record(show)
    assert claimed.state is State.CLAIMED and claimed.owner.startswith("reconcile:") and claimed.attempt == 2
    assert claimed.composition_arn == compositions(show)[0].arn

    show.put_event(end, observe=False)
    show.drain()

    assert assert_one_successor(show).arn == successor.arn
    held, back = deliveries_of(show, end)
    assert held.error is not None and held.error.startswith("ClaimHeld: ")
    assert back.outcome is not None and back.outcome.reason.endswith("taking over"), back
    assert not show.dead_letters["composition"]


def test_a_redelivery_whose_first_receive_started_the_successor_finds_it_and_starts_nothing(
    make_deployment: Any, events: EventFactory
) -> None:
    """The end's first receive claims the successor and IVS starts it; the write that records it is throttled
    (the event fails and is redelivered: the same message, the same owner). Its first write records the end,
    the second the successor."""
    show, end = at_the_limit(make_deployment, events)
    show.table.client.meta.events.register("before-call.dynamodb.TransactWriteItems", throttle(2))
    show.put_event(end, observe=False)
    show.drain()

    assert_one_successor(show)
    failed, back = deliveries_of(show, end)
    assert failed.error is not None and "ProvisionedThroughputExceeded" in failed.error
    assert back.receive == 2 and back.outcome is not None, back
    assert back.outcome.reason == "a stagepilot composition is already active on the stage"
    assert not show.dead_letters["composition"]


def test_duplicates_and_the_pass_beside_them_start_one_successor(make_deployment: Any, events: EventFactory) -> None:
    """Three copies of the ``Session End`` a few hundred milliseconds apart (each in its own container) and the
    pass at the same moment: one successor; whoever loses the claim is held, comes back and finds it."""
    show, end = at_the_limit(make_deployment, events)
    for delay in (0.0, 0.2, 0.5):
        show.put_event(end, observe=False, delay_seconds=delay)
    show.reconcile()
    show.drain()
    show.settle(CLAIM_LEASE.total_seconds() * 2)

    assert_one_successor(show)
    assert len(audited(show, "rollover")) == 1
    assert not show.dead_letters["composition"]
    errors = [d.error for d in show.deliveries if d.error is not None]
    assert all(e.startswith("ClaimHeld: ") for e in errors), errors
    assert idempotency_token(STAGE, SESSION, 2) in {c.idempotency_token for c in compositions(show)}
    assert managed_tags(SESSION, 2).items() <= compositions(show)[1].tags.items()


def test_a_composition_whose_start_was_never_recorded_is_still_rolled_over_at_once(
    make_deployment: Any, events: EventFactory
) -> None:
    """The first publish's start reached IVS, and every write that would record it failed until the event went
    to the dead-letter queue (its last receive released the claim): for 24 hours the record said claimed,
    naming no composition, while the pass saw one live and had nothing to do. The ``Session End`` records the
    end on that claim (the tags name its session and attempt) and rolls over at once; before, it called the
    composition "not the session's current" ("its successor runs already", though none did) and left the
    successor to the next pass, as ``ivs-ended``."""
    show, end = at_the_limit(make_deployment, events)
    [first] = compositions(show)
    show.table.update(
        *composition_key(STAGE, SESSION),
        "SET #state = :claimed, claimedAt = :released REMOVE compositionArn, startedAt, firstStartedAt",
        names={"#state": "state"},
        values={":claimed": State.CLAIMED.value, ":released": iso(T0 - CLAIM_LEASE)},
    )

    show.put_event(end, observe=False)
    show.drain()

    successor = assert_one_successor(show)
    [delivery] = deliveries_of(show, end)
    assert delivery.outcome is not None and delivery.outcome.action == "rollover", delivery
    assert successor.start_time - delivery.time <= timedelta(seconds=5)  # at once, not at the next pass
    # the record learnt when its composition started: the session's first (limits.maxSessionMinutes counts from it)
    assert abs(record(show).first_started_at - first.start_time) < timedelta(seconds=1)
