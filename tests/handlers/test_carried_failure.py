"""A composition carried into a new session fails, and its ``Session Failure`` meets a claim on its restart:
the restart starts exactly once, with the claim's attempt, never a second one beside it.

A composition belongs to the stage, not to a session: when everyone leaves and someone is back within the
minute, the same composition carries on into the new session, whose record adopts it. Its tags still name the
session and attempt that started it, so the failure event restarts it for the newest record that holds it.
That record names the failed composition until its restart is recorded (a claim records no composition): a
record that holds it and says "claimed" is someone's claim on the restart — the pass's (it found the failure
in IVS's listing), a copy of the event (EventBridge delivers at least once), or the event's own earlier
receive. The event used to mark that claim "failed" and start another restart (attempt + 2, a new idempotency
token): two live compositions on the stage, or, out of restarts, "gave up" written over the running restart.
The stories:

- the pass restarted it and its write recording the restart was throttled; the event comes late: now it is
  held until the pass's lease can have run out, then takes the claim over (the same attempt and token: IVS
  answers the same composition);
- the event's own receive started the restart and its write was throttled: its redelivery resumes its own
  claim and finds the restart IVS already runs;
- the restart was recorded before the copy arrives: skipped, saying so.

Each counts IVS's compositions (the stand-in's), not the calls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from stagepilot.automations.composition import CompositionAutomation
from stagepilot.decisions.composition import RESTART_BACKOFF_BASE, State, idempotency_token, managed_tags
from stagepilot.decisions.leases import CLAIM_LEASE, HELD_RETRY_MARGIN
from stagepilot.local.deployment import LocalDeployment
from tests.handlers.test_rollover_end import POLICY, compositions, deliveries_of, live
from tests.support import SESSION, STAGE, EventFactory, later, put_policy

NEXT = "st-NextSession01"  # the session the composition is carried into
# POLICY: a channel and S3 (the channel takes one composition at a time); maxRestarts set by each story


@dataclass(frozen=True)
class Failed:
    """A composition IVS failed, its ``Session Failure`` held back (the test delivers it)."""

    show: LocalDeployment
    event: dict[str, Any]
    session: str  # the session whose record restarts it: the newest that holds it

    def record(self) -> Any:
        return self.show.services.compositions.get(STAGE, self.session)


def failed(make_deployment: Any, events: EventFactory, *, carried: bool = True, max_restarts: int = 2) -> Failed:
    """The host publishes in ``SESSION``; ``carried``: everyone leaves and the host is back within the minute
    in ``NEXT``, the composition carries on and ``NEXT``'s record adopts it. Then IVS fails it."""
    show: LocalDeployment = make_deployment(automations=[CompositionAutomation()])
    put_policy(show, {**POLICY, "composition": {**POLICY["composition"], "maxRestarts": max_restarts}})
    show.put_event(events.published("host1", user_id="host-1"))
    show.run_due()
    session = SESSION
    if carried:
        show.ivs.leave(STAGE, "host1")
        show.put_event(events.published("host1", user_id="host-1", session=NEXT, at=later(40)))
        show.run_due()
        session = NEXT
    [composition] = compositions(show)
    assert composition.tags["stagepilot:session"] == SESSION  # the tags name the session that started it
    holding = show.services.compositions.get(STAGE, session)
    assert holding.state is State.STARTED and holding.composition_arn == composition.arn and holding.attempt == 1
    show.lose_emitted("Session Failure", stage_arn=STAGE)
    show.ivs.fail_compositions(STAGE)
    [failure] = [e for e in show.lost if e["detail"]["event_name"] == "Session Failure"]
    return Failed(show, failure, session)


def assert_one_restart(failure: Failed) -> Any:
    """The failed composition and exactly one restart, live, of the holding session's attempt 2, counted once."""
    show = failure.show
    started = [(c.tags["stagepilot:session"], c.tags["stagepilot:attempt"], c.state) for c in compositions(show)]
    assert len(started) == 2, started  # the failed one and its restart: no second restart, none missing
    _, restart = compositions(show)
    assert live(show) == [restart]
    assert managed_tags(failure.session, 2).items() <= restart.tags.items()
    assert restart.idempotency_token == idempotency_token(STAGE, failure.session, 2)
    now = failure.record()
    assert now.state is State.STARTED and now.attempt == 2 and now.composition_arn == restart.arn, now
    assert now.restarts == 1  # one restart spent, however many tried it
    return restart


def throttle_once(when: Callable[[], bool]) -> Any:
    """A botocore hook: the first call it sees once ``when()`` holds is throttled (refused before it reaches
    the table)."""
    done = False

    def hook(model: Any, **_: Any) -> None:
        nonlocal done
        if not done and when():
            done = True
            raise ClientError(
                {
                    "Error": {"Code": "ProvisionedThroughputExceededException", "Message": "injected"},
                    "ResponseMetadata": {"HTTPStatusCode": 400},
                },
                model.name,
            )

    return hook


def restarted(show: LocalDeployment) -> Callable[[], bool]:
    """IVS runs a restart: the next write is the one that records it."""
    return lambda: len(compositions(show)) > 1


def restarted_by_the_pass(failure: Failed) -> Any:
    """The pass finds the failure in IVS's listing (its event not delivered yet), records it and, after the
    restart's back-off, restarts the composition; the write that records the restart is throttled: the record
    says claimed by the pass and still names the failed composition."""
    show = failure.show
    show.reconcile()
    recorded = failure.record()
    assert recorded.state is State.FAILED and (recorded.failed_by or "").startswith("reconcile:"), recorded
    show.settle((RESTART_BACKOFF_BASE + timedelta(seconds=1)).total_seconds())
    show.table.client.meta.events.register("before-call.dynamodb.TransactWriteItems", throttle_once(restarted(show)))
    report = show.reconcile()
    assert report.errors, report.outcomes
    [restart] = live(show)
    claimed = failure.record()
    assert claimed.state is State.CLAIMED and claimed.owner.startswith("reconcile:") and claimed.attempt == 2
    assert claimed.composition_arn == compositions(show)[0].arn  # a claim keeps the composition before it
    return restart


# Each story runs on a carried composition (the bug) and on a first session's (the tags name the record that
# holds it, so the failure's mark, conditional on that attempt, never reached the restart's claim: unchanged).
SESSIONS = pytest.mark.parametrize("carried", [True, False], ids=["carried", "first-session"])


@SESSIONS
@pytest.mark.parametrize("max_restarts", [2, 1])
def test_a_late_failure_finds_the_pass_restart_claimed_waits_and_takes_it_over(
    make_deployment: Any, events: EventFactory, carried: bool, max_restarts: int
) -> None:
    """The ``Session Failure`` is late (IVS: "you may receive events up to a few hours old"); the pass restarted
    the composition and could not record it. The event is held until the pass's lease can have run out, then
    takes the claim over with its attempt and token: IVS answers the restart it runs. Before, on a carried
    composition, the event marked the pass's claim failed and restarted again (a second live composition,
    attempt 3), or with one restart allowed, recorded "gave up" over the running restart."""
    failure = failed(make_deployment, events, carried=carried, max_restarts=max_restarts)
    show = failure.show
    restart = restarted_by_the_pass(failure)

    show.put_event(failure.event, observe=False)
    show.drain()

    assert assert_one_restart(failure).arn == restart.arn
    held, back = deliveries_of(show, failure.event)
    assert held.error is not None and held.error.startswith("ClaimHeld: "), held
    assert "restarting the composition" in held.error and "reconcile:" in held.error
    assert held.retry_in is not None and held.retry_in <= (CLAIM_LEASE + HELD_RETRY_MARGIN).total_seconds()
    assert back.outcome is not None and back.outcome.reason.endswith("taking over"), back
    assert back.time - held.time > CLAIM_LEASE - timedelta(seconds=5)
    assert not show.dead_letters["composition"]


@SESSIONS
def test_a_redelivery_whose_first_receive_restarted_it_finds_the_restart_and_starts_nothing(
    make_deployment: Any, events: EventFactory, carried: bool
) -> None:
    """The event's receive after the back-off claims the restart and IVS starts it; the write that records it
    is throttled (the event fails and is redelivered: the same message, the same owner). Its redelivery resumes
    its own claim, lists IVS first, and records the restart it finds. Before, on a carried composition, it
    marked its own claim failed and restarted again."""
    failure = failed(make_deployment, events, carried=carried)
    show = failure.show
    show.table.client.meta.events.register("before-call.dynamodb.TransactWriteItems", throttle_once(restarted(show)))

    show.put_event(failure.event, observe=False)
    show.drain()

    assert_one_restart(failure)
    *_, throttled, back = deliveries_of(show, failure.event)
    assert throttled.error is not None and "ProvisionedThroughputExceeded" in throttled.error, throttled
    assert back.outcome is not None, back
    assert back.outcome.reason == "a stagepilot composition is already active on the stage", back
    assert not show.dead_letters["composition"]


@pytest.mark.parametrize(
    ("carried", "reason"),
    [
        (True, "this failure is recorded already: the composition had been carried into a later session"),
        (False, "attempt 1 is not the current one: the session's record has moved on to attempt 2"),
    ],
    ids=["carried", "first-session"],
)
def test_a_copy_after_the_restart_is_recorded_is_skipped_saying_so(
    make_deployment: Any, events: EventFactory, carried: bool, reason: str
) -> None:
    """A copy of the failure a minute after the first recorded the restart: nothing more starts, and the skip
    says why (before, on a carried composition: "the session's composition is ended", of the first session)."""
    failure = failed(make_deployment, events, carried=carried)
    show = failure.show
    show.put_event(failure.event, observe=False)
    show.drain()
    assert_one_restart(failure)

    show.put_event(failure.event, observe=False, delay_seconds=60)
    show.drain()

    assert_one_restart(failure)
    *_, copy = deliveries_of(show, failure.event)
    assert copy.outcome is not None and copy.outcome.action == "skip", copy
    assert copy.outcome.reason.startswith(reason), copy.outcome.reason
