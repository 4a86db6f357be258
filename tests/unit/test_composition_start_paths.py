"""The event path and the convergence pass start a composition by one decision (``decide_start``), table-driven:
record state × trigger × lease; and restart a failed one by one bound and one back-off.

Each record is decided twice, as a ``Participant Published`` (``Published``) and as the pass finding no
composition live with someone publishing (``Converging``). Where the rule is the same for both (a claim's
lease, a final state, a rejected policy) the two must agree, reason included for a refusal; where they know
different things (the pass sees what IVS shows now, the event believes the record) the difference is a row
of its own, with why. A rule changed for one caller only fails here.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stagepilot.decisions.composition import (
    Converging,
    Decision,
    Published,
    Seen,
    SessionCompositions,
    State,
    decide_on_failure,
    decide_start,
    restart_backoff,
)
from stagepilot.decisions.leases import CLAIM_LEASE

NOW = datetime(2026, 11, 21, 20, 0, tzinfo=UTC)
ME = "caller@delivery"  # the caller deciding: the event's delivery, or the pass's owner
OTHER = "event-2@message-2"
ARN = "arn:aws:ivs:us-east-1:123456789012:composition/AbCd1234"
POLICY = "policy-hash-now"
SECOND = timedelta(seconds=1)
ENDED_AT = NOW - timedelta(minutes=1)

EVENT = Published(at=NOW)  # a publish after any end the rows record
PASS = Converging(publishing_since=NOW - SECOND, seen=Seen.GONE)  # publishing since then; IVS forgot the composition


def rec(state: State, **changes: Any) -> SessionCompositions:
    base = SessionCompositions(
        attempt=2,
        state=state,
        owner=OTHER,
        claimed_at=NOW - timedelta(minutes=10),
        restarts=1,
        composition_arn=ARN,
        ended_at=ENDED_AT,
        failed_at=NOW - SECOND,
        failed_by=OTHER,
        policy_hash=POLICY,
        stopped_by="maxSessionMinutes",
        refused_day=NOW.date().isoformat(),
    )
    return replace(base, **changes)


def decide(record: SessionCompositions | None, trigger: Published | Converging) -> Decision:
    return decide_start(record, trigger, owner=ME, now=NOW, policy_hash=POLICY, max_restarts=3)


def shape(decision: Decision) -> tuple[bool, int, bool]:
    return decision.act, decision.attempt if decision.act else 0, decision.resume


NO = (False, 0, False)

# (id, record) → (act, attempt, resume), the same for the event and the pass
BOTH: list[tuple[str, SessionCompositions | None, tuple[bool, int, bool]]] = [
    ("no record: the first start", None, (True, 1, False)),
    # the claim's lease: the one verdict (decisions/leases.py)
    ("own claim, fresh: finished by its owner", rec(State.CLAIMED, owner=ME, claimed_at=NOW - SECOND), (True, 2, True)),
    (
        "own claim, lease long run out: still its owner's to finish",
        rec(State.CLAIMED, owner=ME, claimed_at=NOW - CLAIM_LEASE * 10),
        (True, 2, True),
    ),
    ("another's claim, fresh: held", rec(State.CLAIMED, claimed_at=NOW - SECOND), NO),
    ("another's claim, exactly at the lease: held", rec(State.CLAIMED, claimed_at=NOW - CLAIM_LEASE), NO),
    (
        "another's claim past the lease: taken over with its attempt",
        rec(State.CLAIMED, claimed_at=NOW - CLAIM_LEASE - SECOND),
        (True, 2, False),
    ),
    # ended, published again after the end
    ("ended, publishing again since: the next attempt", rec(State.ENDED), (True, 3, False)),
    # the states no trigger leaves, or leaves only by the policy or the day changing
    ("guarded: final for the session", rec(State.GUARDED), NO),
    ("gave up", rec(State.GAVE_UP), NO),
    ("rejected, same policy", rec(State.REJECTED), NO),
    ("rejected, the policy changed since", rec(State.REJECTED, policy_hash="policy-hash-then"), (True, 3, False)),
    ("budget, refused today", rec(State.BUDGET), NO),
    ("budget, refused yesterday", rec(State.BUDGET, refused_day="2026-11-20"), (True, 3, False)),
]

# (id, record, event's, pass's, why they differ)
APART: list[tuple[str, SessionCompositions, tuple[bool, int, bool], tuple[bool, int, bool], str]] = [
    (
        "started",
        rec(State.STARTED),
        NO,
        (True, 3, False),
        "the event believes the record; the pass sees IVS ended it and its Session End never came",
    ),
    (
        "failed, its recorder's lease not run out",
        rec(State.FAILED),
        NO,
        NO,
        "the failure event restarts it; the pass waits for its back-off and lease",
    ),
    (
        "failed, nobody restarted it past the lease",
        rec(State.FAILED, failed_at=NOW - timedelta(minutes=5)),
        NO,
        (True, 3, False),
        "the event leaves it to the failure event; the pass restarts what nobody did",
    ),
    (
        "stale",
        rec(State.STALE),
        NO,
        (True, 3, False),
        "the event's session was found inactive; the pass sees it is the stage's and publishing",
    ),
]


@pytest.mark.parametrize(("record", "expected"), [row[1:] for row in BOTH], ids=[row[0] for row in BOTH])
def test_both_callers_decide_alike(record: SessionCompositions | None, expected: tuple[bool, int, bool]) -> None:
    on_event, on_pass = decide(record, EVENT), decide(record, PASS)
    assert shape(on_event) == shape(on_pass) == expected
    if not expected[0]:  # one refusal, one reason: what the operator reads whoever asked
        assert on_event.reason == on_pass.reason


@pytest.mark.parametrize(("record", "on_event", "on_pass"), [row[1:4] for row in APART], ids=[row[0] for row in APART])
def test_where_the_callers_know_different_things(
    record: SessionCompositions, on_event: tuple[bool, int, bool], on_pass: tuple[bool, int, bool]
) -> None:
    assert shape(decide(record, EVENT)) == on_event
    assert shape(decide(record, PASS)) == on_pass


def test_every_state_is_decided_by_both() -> None:
    states = {row[1].state for row in BOTH if row[1] is not None} | {row[1].state for row in APART}
    assert states == set(State)


EVERY = [(row[0], row[1]) for row in BOTH] + [(row[0], row[1]) for row in APART]


@pytest.mark.parametrize("record", [row[1] for row in EVERY], ids=[row[0] for row in EVERY])
def test_what_each_caller_adds(record: SessionCompositions | None) -> None:
    """The event never names a heal; the pass never asks IVS again about publishers it has just listed, and
    nobody publishing leaves nothing to start."""
    on_event, on_pass = decide(record, EVENT), decide(record, PASS)
    assert on_event.heal_reason is None
    assert not on_pass.needs_publishers
    assert not decide(record, Converging(publishing=False, seen=Seen.GONE)).act
    assert on_event.reason and on_pass.reason


# A failed composition's restart: the failure event (``decide_on_failure``) and the pass restarting a failure
# nobody restarted (``decide_start``) count restarts against one bound and wait one back-off.
@pytest.mark.parametrize(("restarts", "max_restarts"), [(0, 0), (0, 3), (2, 3), (3, 3), (4, 3), (9, 20)])
def test_both_restart_paths_share_the_bound(restarts: int, max_restarts: int) -> None:
    failed_at = NOW - timedelta(hours=1)  # any back-off and lease long over
    failed = rec(State.FAILED, restarts=restarts, failed_at=failed_at)
    on_event = decide_on_failure(failed, failed_attempt=2, max_restarts=max_restarts, failed_at=failed_at, now=NOW)
    on_pass = decide_start(failed, PASS, owner=ME, now=NOW, policy_hash=POLICY, max_restarts=max_restarts)
    assert shape(on_event) == shape(on_pass)
    assert on_pass.give_up is (not on_pass.act)
    assert on_event.reason in on_pass.reason  # "restart 3 of 3", "maxRestarts (3) reached"


@pytest.mark.parametrize("restarts", [0, 1, 2, 10])
def test_both_restart_paths_wait_the_same_back_off(restarts: int) -> None:
    """The failure event's delay ends when the pass, as the failure's recorder, may restart it."""
    failed = rec(State.FAILED, restarts=restarts, failed_at=NOW, failed_by=ME)
    on_event = decide_on_failure(failed, failed_attempt=2, max_restarts=20, failed_at=NOW, now=NOW)
    assert on_event.delay == restart_backoff(restarts)
    due = NOW + restart_backoff(restarts)
    for now, act in ((due - SECOND, False), (due, True)):
        on_pass = decide_start(failed, PASS, owner=ME, now=now, policy_hash=POLICY, max_restarts=20)
        assert on_pass.act is act
