"""The event path's composition decisions, table-driven: record state × trigger × lease.

``decide_start`` on a Participant Published (``Published``), ``decide_on_failure`` (Session Failure) and
``decide_on_end`` (Session End) are pure: each row is one record the event can find in the table and what the
event must do — start or not, which attempt, whether only while someone still publishes, after what back-off.
The pass's side of ``decide_start`` (``Converging``) has its table in test_composition_heal_decisions.py, and
test_composition_start_paths.py holds both sides against each other.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stagepilot.decisions.composition import (
    MAX_COMPOSITION_AGE,
    Decision,
    Published,
    SessionCompositions,
    State,
    decide_on_end,
    decide_on_failure,
    decide_start,
)
from stagepilot.decisions.heals import HealReason
from stagepilot.decisions.leases import CLAIM_LEASE

NOW = datetime(2026, 11, 21, 20, 0, tzinfo=UTC)
EVENT = "00000000-0000-0000-0000-000000000007"  # the event deciding
OTHER = "00000000-0000-0000-0000-000000000042"  # another event (or the pass)
ARN = "arn:aws:ivs:us-east-1:123456789012:composition/AbCd1234"
POLICY = "policy-hash-now"
SECOND = timedelta(seconds=1)


def rec(state: State, **changes: Any) -> SessionCompositions:
    base = SessionCompositions(
        attempt=2, state=state, owner=OTHER, claimed_at=NOW - timedelta(minutes=10), restarts=1, composition_arn=ARN
    )
    return replace(base, **changes)


def claimed(*, owner: str, age: timedelta, **changes: Any) -> SessionCompositions:
    return rec(State.CLAIMED, owner=owner, claimed_at=NOW - age, **changes)


def outcome(decision: Decision) -> tuple[Any, ...]:
    return (decision.act, decision.attempt, decision.needs_publishers, decision.delay)


NO = (False, 0, False, None)


# Participant Published ---------------------------------------------------------------------------------
# (id, record, event time) → (act, attempt, needs_publishers, delay)
PUBLISH: list[tuple[str, SessionCompositions | None, datetime, tuple[Any, ...]]] = [
    ("no record: the session's first publisher starts it", None, NOW, (True, 1, False, None)),
    # the claim's lease
    ("own claim, fresh: the redelivery finishes it", claimed(owner=EVENT, age=SECOND), NOW, (True, 2, False, None)),
    (
        "own claim, lease long run out: still its own to finish",
        claimed(owner=EVENT, age=CLAIM_LEASE * 10),
        NOW,
        (True, 2, False, None),
    ),
    ("another's claim, fresh: held", claimed(owner=OTHER, age=SECOND), NOW, NO),
    ("another's claim, exactly at the lease: still held", claimed(owner=OTHER, age=CLAIM_LEASE), NOW, NO),
    (
        "another's claim, a second past the lease: taken over with the same attempt",
        claimed(owner=OTHER, age=CLAIM_LEASE + SECOND),
        NOW,
        (True, 2, False, None),
    ),
    # the other states
    ("started: nothing to do", rec(State.STARTED), NOW, NO),
    (
        "ended, published again after the end: the next attempt, if someone still publishes",
        rec(State.ENDED, ended_at=NOW - timedelta(minutes=1)),
        NOW,
        (True, 3, True, None),
    ),
    (
        "ended, end time not known: the next attempt",
        rec(State.ENDED, ended_at=None),
        NOW,
        (True, 3, True, None),
    ),
    (
        "ended, the publish happened before the end (a late event)",
        rec(State.ENDED, ended_at=NOW - timedelta(minutes=1)),
        NOW - timedelta(minutes=2),
        NO,
    ),
    ("ended, the publish happened at the end's second", rec(State.ENDED, ended_at=NOW), NOW, NO),
    ("rejected, same policy: fix the policy", rec(State.REJECTED, policy_hash=POLICY), NOW, NO),
    (
        "rejected, the policy changed since: the next attempt",
        rec(State.REJECTED, policy_hash="policy-hash-then"),
        NOW,
        (True, 3, False, None),
    ),
    ("failed: its failure event restarts it", rec(State.FAILED), NOW, NO),
    ("gave up", rec(State.GAVE_UP, restarts=3), NOW, NO),
    ("stale: no longer the stage's active session", rec(State.STALE), NOW, NO),
    ("guarded: stopped at a limit, final for the session", rec(State.GUARDED, stopped_by="maxSessionMinutes"), NOW, NO),
    ("budget, refused today: nothing until the next UTC day", rec(State.BUDGET, refused_day="2026-11-21"), NOW, NO),
    (
        "budget, refused yesterday: the next attempt, if someone still publishes",
        rec(State.BUDGET, refused_day="2026-11-20"),
        NOW,
        (True, 3, True, None),
    ),
]


@pytest.mark.parametrize(
    ("record", "event_time", "expected"), [row[1:] for row in PUBLISH], ids=[r[0] for r in PUBLISH]
)
def test_decide_on_publish(record: SessionCompositions | None, event_time: datetime, expected: tuple[Any, ...]) -> None:
    decision = decide_start(record, Published(at=event_time), owner=EVENT, now=NOW, policy_hash=POLICY, max_restarts=3)
    assert outcome(decision) == expected
    assert decision.reason
    assert (decision.restart, decision.give_up, decision.rollover, decision.heal_reason) == (False, False, False, None)


def test_every_state_has_a_publish_row() -> None:
    assert {row[1].state for row in PUBLISH if row[1] is not None} == set(State)


# Session Failure ---------------------------------------------------------------------------------------
# (id, record, failed attempt, max restarts, failed at) → (act, attempt, needs_publishers, delay)
FAILURE: list[tuple[str, SessionCompositions | None, int, int, datetime, tuple[Any, ...]]] = [
    ("no record: not stagepilot's to restart", None, 1, 3, NOW, NO),
    # the restart's claim (attempt = failed + 1) and its lease
    (
        "restart claimed by this event's earlier delivery: finish it",
        claimed(owner=EVENT, age=SECOND, attempt=3),
        2,
        3,
        NOW,
        (True, 3, True, None),
    ),
    ("restart claimed by another, fresh: held", claimed(owner=OTHER, age=SECOND, attempt=3), 2, 3, NOW, NO),
    ("restart claimed by another, at the lease: held", claimed(owner=OTHER, age=CLAIM_LEASE, attempt=3), 2, 3, NOW, NO),
    (
        "restart claimed by another, past the lease: taken over",
        claimed(owner=OTHER, age=CLAIM_LEASE + SECOND, attempt=3),
        2,
        3,
        NOW,
        (True, 3, True, None),
    ),
    # a composition carried into a later session: the attempt is that session's record's, whose claim (a claim
    # records no composition: it still names the failed one) is on the restart; never marked failed and
    # restarted again (attempt + 2)
    (
        "carried, restart claimed by this event's earlier delivery: finish it",
        claimed(owner=EVENT, age=SECOND),
        2,
        3,
        NOW,
        (True, 2, True, None),
    ),
    ("carried, restart claimed by another, fresh: held", claimed(owner=OTHER, age=SECOND), 2, 3, NOW, NO),
    ("carried, restart claimed by another, at the lease: held", claimed(owner=OTHER, age=CLAIM_LEASE), 2, 3, NOW, NO),
    (
        "carried, restart claimed by another, past the lease: taken over with the claim's attempt",
        claimed(owner=OTHER, age=CLAIM_LEASE + SECOND),
        2,
        3,
        NOW,
        (True, 2, True, None),
    ),
    (
        "carried, restart claimed with the last restart spent: taken over, not given up",
        claimed(owner=OTHER, age=CLAIM_LEASE + SECOND, restarts=3),
        2,
        3,
        NOW,
        (True, 2, True, None),
    ),
    # which attempt failed
    (
        "a later attempt's claim, even by this event: the failure is an older attempt's",
        claimed(owner=EVENT, age=SECOND, attempt=4),
        2,
        3,
        NOW,
        NO,
    ),
    ("an older attempt's failure", rec(State.STARTED, attempt=3), 2, 3, NOW, NO),
    ("a failure of an attempt not made yet", rec(State.STARTED, attempt=2), 3, 3, NOW, NO),
    # the current attempt failed, by the record's state
    ("ended", rec(State.ENDED), 2, 3, NOW, NO),
    ("ended by this failure (a copy: carried into a later session)", rec(State.ENDED, ended_at=NOW), 2, 3, NOW, NO),
    ("gave up", rec(State.GAVE_UP), 2, 3, NOW, NO),
    ("stale", rec(State.STALE), 2, 3, NOW, NO),
    ("rejected", rec(State.REJECTED), 2, 3, NOW, NO),
    ("guarded: stopped at a limit", rec(State.GUARDED, stopped_by="maxSessionMinutes"), 2, 3, NOW, NO),
    # restarts and their back-off (5 s, 10 s, 20 s, … capped at 2 minutes)
    (
        "started, first failure just now: restart after 5 s",
        rec(State.STARTED, restarts=0),
        2,
        3,
        NOW,
        (True, 3, True, timedelta(seconds=5)),
    ),
    (
        "started, second failure 4 s ago: restart after the 6 s left of 10",
        rec(State.STARTED, restarts=1),
        2,
        3,
        NOW - timedelta(seconds=4),
        (True, 3, True, timedelta(seconds=6)),
    ),
    (
        "started, the back-off already over: restart at once",
        rec(State.STARTED, restarts=2),
        2,
        3,
        NOW - timedelta(seconds=20),
        (True, 3, True, None),
    ),
    (
        "started, the back-off capped at 2 minutes",
        rec(State.STARTED, restarts=10),
        2,
        20,
        NOW,
        (True, 3, True, timedelta(minutes=2)),
    ),
    (
        "failed already recorded (a redelivery): restart",
        rec(State.FAILED, restarts=0),
        2,
        3,
        NOW - timedelta(minutes=1),
        (True, 3, True, None),
    ),
    ("out of restarts", rec(State.STARTED, restarts=3), 2, 3, NOW, NO),
    ("maxRestarts 0: never restarted", rec(State.STARTED, restarts=0), 2, 0, NOW, NO),
]


@pytest.mark.parametrize(
    ("record", "failed_attempt", "max_restarts", "failed_at", "expected"),
    [row[1:] for row in FAILURE],
    ids=[r[0] for r in FAILURE],
)
def test_decide_on_failure(
    record: SessionCompositions | None,
    failed_attempt: int,
    max_restarts: int,
    failed_at: datetime,
    expected: tuple[Any, ...],
) -> None:
    decision = decide_on_failure(
        record,
        failed_attempt=failed_attempt,
        max_restarts=max_restarts,
        failed_at=failed_at,
        now=NOW,
        owner=EVENT,
        failed_arn=ARN,
    )
    assert outcome(decision) == expected
    assert decision.reason
    assert (decision.give_up, decision.rollover, decision.heal_reason) == (False, False, None)


@pytest.mark.parametrize(
    ("claim", "then"),
    [
        (claimed(owner=OTHER, age=SECOND), "held"),
        (claimed(owner=OTHER, age=CLAIM_LEASE + SECOND), "take over"),
        (claimed(owner=EVENT, age=SECOND), "resume"),
    ],
    ids=["held", "take over", "resume"],
)
def test_a_claim_that_still_names_the_failed_composition_is_its_restart(claim: SessionCompositions, then: str) -> None:
    """The record a carried composition's failure decides on (the newest session's, ``attempt`` its own) says
    claimed and still names the failed composition: that claim is the restart's, whatever its attempt."""
    decision = decide_on_failure(
        claim, failed_attempt=2, max_restarts=3, failed_at=NOW, now=NOW, owner=EVENT, failed_arn=ARN
    )
    assert (decision.held is not None) == (then == "held")
    assert decision.resume == (then == "resume")
    assert decision.attempt == (0 if then == "held" else claim.attempt)
    if then == "held":
        assert decision.held is not None and decision.held.owner == OTHER
        assert decision.reason == "another event or the pass is restarting the composition"
    # another composition named (the claim is not this failure's restart): the failed attempt's own record
    other = decide_on_failure(
        claim, failed_attempt=2, max_restarts=3, failed_at=NOW, now=NOW, owner=EVENT, failed_arn=ARN + "x"
    )
    assert other.held is None and not other.resume


def test_a_skipped_copy_of_a_failure_says_where_the_restart_went() -> None:
    ended_by_it = decide_on_failure(
        rec(State.ENDED, ended_at=NOW), failed_attempt=2, max_restarts=3, failed_at=NOW, now=NOW, failed_arn=ARN
    )
    assert ended_by_it.reason.startswith("this failure is recorded already: the composition had been carried")
    moved_on = decide_on_failure(
        rec(State.STARTED, attempt=3), failed_attempt=2, max_restarts=3, failed_at=NOW, now=NOW, failed_arn=ARN
    )
    assert moved_on.reason.startswith("attempt 2 is not the current one: the session's record has moved on")
    assert "to attempt 3 (its restart, or a later start)" in moved_on.reason


def test_the_restart_reason_counts_restarts_against_the_bound() -> None:
    decision = decide_on_failure(
        rec(State.STARTED, restarts=1), failed_attempt=2, max_restarts=3, failed_at=NOW, now=NOW
    )
    assert decision.reason == "restart 2 of 3"
    refused = decide_on_failure(
        rec(State.STARTED, restarts=3), failed_attempt=2, max_restarts=3, failed_at=NOW, now=NOW
    )
    assert refused.reason == "maxRestarts (3) reached"


# Session End -------------------------------------------------------------------------------------------
STARTED_AT = NOW - MAX_COMPOSITION_AGE
SKIP = (False, 0, False, False)
ROLL = (True, 3, True, True)  # the successor: the next attempt, only while someone publishes, a rollover
# (id, record, ended arn, started at) → ((act, attempt, needs_publishers, rollover), then): ``then`` is what
# else the event does: "held" (back once another owner's lease can have run out), "retry" (decided again
# once the end is on the record), "resume" (its own earlier claim, finished)
END: list[tuple[str, SessionCompositions | None, str, datetime | None, tuple[Any, ...], str | None]] = [
    ("no record", None, ARN, STARTED_AT, SKIP, None),
    (
        "another composition ended (its successor runs)",
        rec(State.ENDED),
        ARN + "x",
        STARTED_AT,
        SKIP,
        None,
    ),
    ("ended after an hour: idle or stopped", rec(State.ENDED), ARN, NOW - timedelta(hours=1), SKIP, None),
    ("start time not known", rec(State.ENDED), ARN, None, SKIP, None),
    ("ended at its 24-hour limit: roll over", rec(State.ENDED), ARN, STARTED_AT, ROLL, None),
    (
        "ended within the minute's tolerance of the limit: roll over",
        rec(State.ENDED),
        ARN,
        NOW - MAX_COMPOSITION_AGE + timedelta(seconds=59),
        ROLL,
        None,
    ),
    (
        "ended two minutes short of the limit: not the limit's",
        rec(State.ENDED),
        ARN,
        NOW - MAX_COMPOSITION_AGE + timedelta(minutes=2),
        SKIP,
        None,
    ),
    # the record still names the ended composition and is not ended: the end is not on it yet, or the
    # successor is claimed (a claim records no composition), or something else followed the composition
    (
        "started: the end is recorded first, then decided again",
        rec(State.STARTED),
        ARN,
        STARTED_AT,
        SKIP,
        "retry",
    ),
    (
        "successor claimed by another, fresh: held, never dropped",
        claimed(owner=OTHER, age=SECOND),
        ARN,
        STARTED_AT,
        SKIP,
        "held",
    ),
    (
        "successor claimed by another, exactly at the lease: still held",
        claimed(owner=OTHER, age=CLAIM_LEASE),
        ARN,
        STARTED_AT,
        SKIP,
        "held",
    ),
    (
        "successor claimed by another, a second past the lease: taken over with its attempt",
        claimed(owner=OTHER, age=CLAIM_LEASE + SECOND),
        ARN,
        STARTED_AT,
        (True, 2, True, True),
        None,
    ),
    (
        "successor claimed by this event's earlier delivery: finished, never a second one",
        claimed(owner=EVENT, age=SECOND),
        ARN,
        STARTED_AT,
        (True, 2, True, True),
        "resume",
    ),
    (
        "a claim on an end short of the limit is not the event's to wait for",
        claimed(owner=OTHER, age=SECOND),
        ARN,
        NOW - timedelta(hours=1),
        SKIP,
        None,
    ),
    ("failed: the failure's restart follows it", rec(State.FAILED), ARN, STARTED_AT, SKIP, None),
    ("guarded: stopped at a limit, final", rec(State.GUARDED), ARN, STARTED_AT, SKIP, None),
    ("gave up", rec(State.GAVE_UP), ARN, STARTED_AT, SKIP, None),
    ("the successor rejected by IVS", rec(State.REJECTED), ARN, STARTED_AT, SKIP, None),
    (
        "the successor refused by the budget",
        rec(State.BUDGET, refused_day="2026-11-21"),
        ARN,
        STARTED_AT,
        SKIP,
        None,
    ),
    ("the session found inactive", rec(State.STALE), ARN, STARTED_AT, SKIP, None),
]


@pytest.mark.parametrize(
    ("record", "ended_arn", "started_at", "expected", "then"), [row[1:] for row in END], ids=[r[0] for r in END]
)
def test_decide_on_end(
    record: SessionCompositions | None,
    ended_arn: str,
    started_at: datetime | None,
    expected: tuple[Any, ...],
    then: str | None,
) -> None:
    decision = decide_on_end(record, ended_arn=ended_arn, started_at=started_at, ended_at=NOW, owner=EVENT, now=NOW)
    assert (decision.act, decision.attempt, decision.needs_publishers, decision.rollover) == expected
    assert decision.reason
    assert decision.heal_reason is (HealReason.ROLLOVER if decision.act else None)
    assert (decision.restart, decision.give_up) == (False, False)
    assert (decision.held is not None) == (then == "held")
    assert (decision.delay is not None) == (then == "retry")
    assert decision.resume == (then == "resume")
    if then == "held":
        assert decision.held is not None and decision.held.owner == OTHER


def test_every_state_has_an_end_row() -> None:
    """Whatever the record says when a 24-hour end arrives, a row says what the event does with it."""
    covered = {row[1].state for row in END if row[1] is not None and row[2] == ARN and row[3] == STARTED_AT}
    assert covered == set(State)


def test_a_skipped_end_says_what_followed_the_composition() -> None:
    """A 24-hour end that starts nothing names the state that stops it (not "the session's composition is X")."""
    reasons = {
        state: decide_on_end(
            rec(state), ended_arn=ARN, started_at=STARTED_AT, ended_at=NOW, owner=EVENT, now=NOW
        ).reason
        for state in (State.FAILED, State.GUARDED, State.GAVE_UP, State.REJECTED, State.STALE)
    }
    assert "failure's restart" in reasons[State.FAILED]
    assert reasons[State.GUARDED].startswith("stopped at limits.")
    assert reasons[State.GAVE_UP] == "gave up after 1 restarts in this session"
    assert "rejected" in reasons[State.REJECTED]
    assert "no longer the stage's active session" in reasons[State.STALE]
