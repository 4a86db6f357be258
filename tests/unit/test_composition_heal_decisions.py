"""The convergence pass's composition decision, table-driven: record state × what IVS shows × lease.

``decide_start`` with the pass's trigger (``Converging``) is pure: each row is one situation the pass can find
on a stage with nobody's composition live, and what it must do — start (which attempt, whether that start is a
restart counted toward ``maxRestarts``), give up, or leave it — and the heal reason it reports
(docs/reliability.md).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stagepilot.decisions.composition import (
    Converging,
    Seen,
    SessionCompositions,
    State,
    decide_start,
    failure_unrecorded,
    restart_backoff,
)
from stagepilot.decisions.heals import HealReason
from stagepilot.decisions.leases import CLAIM_LEASE

NOW = datetime(2026, 11, 21, 20, 0, tzinfo=UTC)
NOT = (False, 0, False, False, None)  # no start, nothing to give up
PASS = "reconcile:st-MainSession01:composition"
EVENT = "00000000-0000-0000-0000-000000000007"
ARN = "arn:aws:ivs:us-east-1:123456789012:composition/AbCd1234"


def rec(state: State, **changes: Any) -> SessionCompositions:
    base = SessionCompositions(
        attempt=2,
        state=state,
        owner=EVENT,
        claimed_at=NOW - timedelta(minutes=10),
        restarts=1,
        composition_arn=ARN,
    )
    return replace(base, **changes)


def failed(*, ago: timedelta, by: str | None, restarts: int = 1) -> SessionCompositions:
    return rec(State.FAILED, failed_at=NOW - ago, failed_by=by, restarts=restarts)


# (id, record, seen, publishing, publishing_since) → (act, attempt, restart, give_up, heal_reason)
ROWS: list[tuple[str, SessionCompositions | None, Seen | None, bool, datetime | None, tuple[Any, ...]]] = [
    ("no record: the publish event never came", None, None, True, None, (True, 1, False, False, None)),
    ("no record, nobody publishing", None, None, False, None, (False, 0, False, False, None)),
    # claims: the lease
    (
        "own claim, cut short, of a first start",
        rec(State.CLAIMED, owner=PASS, composition_arn=None),
        None,
        True,
        None,
        (True, 2, False, False, None),
    ),
    (
        "own claim, cut short, of a restart after IVS failed it",
        rec(State.CLAIMED, owner=PASS),
        Seen.FAILED,
        True,
        None,
        (True, 2, False, False, HealReason.IVS_ENDED),
    ),
    (
        "an event's claim past its lease",
        rec(State.CLAIMED, claimed_at=NOW - CLAIM_LEASE - timedelta(seconds=1)),
        None,
        True,
        None,
        (True, 2, False, False, HealReason.TAKEN_OVER),
    ),
    (
        "an event's claim within its lease",
        rec(State.CLAIMED, claimed_at=NOW - timedelta(seconds=5)),
        None,
        True,
        None,
        (False, 0, False, False, None),
    ),
    # started, and IVS shows its composition ...
    (
        "started, IVS shows it live (old listing)",
        rec(State.STARTED),
        Seen.LIVE,
        True,
        None,
        (False, 0, False, False, None),
    ),
    ("started, IVS is stopping it", rec(State.STARTED), Seen.STOPPING, True, None, (False, 0, False, False, None)),
    (
        "started, IVS stopped it (Session End lost)",
        rec(State.STARTED),
        Seen.STOPPED,
        True,
        None,
        (True, 3, False, False, HealReason.IVS_ENDED),
    ),
    (
        "started, IVS forgot it (ended > 5 min ago)",
        rec(State.STARTED),
        Seen.GONE,
        True,
        None,
        (True, 3, False, False, HealReason.IVS_ENDED),
    ),
    ("started, failure not recorded yet", rec(State.STARTED), Seen.FAILED, True, None, (False, 0, False, False, None)),
    (
        "started, IVS stopped it, nobody publishing",
        rec(State.STARTED),
        Seen.STOPPED,
        False,
        None,
        (False, 0, False, False, None),
    ),
    # ended normally (Session End handled)
    (
        "ended, publishing again since: publish event lost",
        rec(State.ENDED, ended_at=NOW - timedelta(minutes=3)),
        None,
        True,
        NOW - timedelta(minutes=1),
        (True, 3, False, False, None),
    ),
    (
        "ended while someone kept publishing (24 h)",
        rec(State.ENDED, ended_at=NOW - timedelta(minutes=3)),
        None,
        True,
        NOW - timedelta(hours=23),
        (True, 3, False, False, HealReason.IVS_ENDED),
    ),
    # failed: maxRestarts (3 here), back-off, and whose turn it is
    (
        "failed, out of restarts",
        failed(ago=timedelta(hours=1), by=EVENT, restarts=3),
        None,
        True,
        None,
        (False, 0, False, True, None),
    ),
    (
        "failed, out of restarts, nobody publishing",
        failed(ago=timedelta(hours=1), by=PASS, restarts=3),
        None,
        False,
        None,
        (False, 0, False, True, None),
    ),
    (
        "failed by the pass, back-off over",
        failed(ago=timedelta(seconds=30), by=PASS),
        None,
        True,
        None,
        (True, 3, True, False, HealReason.IVS_ENDED),
    ),
    (
        "failed by the pass, within back-off",
        failed(ago=timedelta(seconds=1), by=PASS),
        None,
        True,
        None,
        (False, 0, False, False, None),
    ),
    (
        "failed by an event, its restart due",
        failed(ago=timedelta(seconds=30), by=EVENT),
        None,
        True,
        None,
        (False, 0, False, False, None),
    ),
    (
        "failed by an event that never restarted it",
        failed(ago=restart_backoff(1) + CLAIM_LEASE + timedelta(seconds=1), by=EVENT),
        None,
        True,
        None,
        (True, 3, True, False, HealReason.IVS_ENDED),
    ),
    (
        "failed, restarts left, nobody publishing",
        failed(ago=timedelta(hours=1), by=PASS),
        None,
        False,
        None,
        (False, 0, False, False, None),
    ),
    # rejected / gave up / stale
    (
        "rejected, policy changed",
        rec(State.REJECTED, policy_hash="old"),
        None,
        True,
        None,
        (True, 3, False, False, HealReason.POLICY_CHANGED),
    ),
    ("rejected, same policy", rec(State.REJECTED, policy_hash="now"), None, True, None, (False, 0, False, False, None)),
    ("gave up", rec(State.GAVE_UP), None, True, None, (False, 0, False, False, None)),
    ("stale", rec(State.STALE), None, True, None, (True, 3, False, False, None)),
    # refused by compositionHoursPerDay (block): nothing that UTC day; the next day a start, never a lost event
    ("budget, refused today", rec(State.BUDGET, refused_day=NOW.date().isoformat()), None, True, None, NOT),
    (
        "budget, refused yesterday, publishing",
        rec(State.BUDGET, refused_day=(NOW - timedelta(days=1)).date().isoformat()),
        None,
        True,
        None,
        (True, 3, False, False, HealReason.BUDGET),
    ),
    (
        "budget, refused yesterday, nobody publishing",
        rec(State.BUDGET, refused_day=(NOW - timedelta(days=1)).date().isoformat()),
        None,
        False,
        None,
        NOT,
    ),
]


@pytest.mark.parametrize(
    ("record", "seen", "publishing", "since", "expected"),
    [row[1:] for row in ROWS],
    ids=[row[0] for row in ROWS],
)
def test_decide_on_heal(
    record: SessionCompositions | None,
    seen: Seen | None,
    publishing: bool,
    since: datetime | None,
    expected: tuple[Any, ...],
) -> None:
    decision = decide_start(
        record,
        Converging(publishing=publishing, publishing_since=since, seen=seen),
        owner=PASS,
        now=NOW,
        policy_hash="now",
        max_restarts=3,
    )
    act, attempt, restart, give_up, reason = expected
    assert (decision.act, decision.restart, decision.give_up, decision.heal_reason) == (act, restart, give_up, reason)
    if act:
        assert decision.attempt == attempt
    assert decision.reason  # always says why


def test_max_restarts_0_never_restarts_a_failure_whoever_recorded_it() -> None:
    for by in (PASS, EVENT, None):
        decision = decide_start(
            failed(ago=timedelta(hours=1), by=by, restarts=0),
            Converging(),
            owner=PASS,
            now=NOW,
            policy_hash="now",
            max_restarts=0,
        )
        assert (decision.act, decision.give_up) == (False, True)


def test_event_lost_is_said_only_when_an_event_should_have_started_it() -> None:
    """Whatever IVS shows of an ended composition, a restart after IVS ended it is never event-lost."""
    for seen in (Seen.STOPPED, Seen.GONE, None):
        decision = decide_start(
            rec(State.STARTED), Converging(seen=seen), owner=PASS, now=NOW, policy_hash="now", max_restarts=3
        )
        assert decision.heal_reason == HealReason.IVS_ENDED


@pytest.mark.parametrize(
    ("state", "ivs_state", "unrecorded"),
    [
        (State.STARTED, "FAILED", True),
        (State.STARTED, "STOPPED", False),  # a normal end is no failure
        (State.STARTED, None, False),  # forgotten by IVS: cannot be told from a normal end
        (State.STARTED, "ACTIVE", False),
        (State.FAILED, "FAILED", False),  # recorded already (the event, or an earlier pass)
        (State.CLAIMED, "FAILED", False),  # a restart is being claimed: the failure was recorded
        (State.ENDED, "FAILED", False),
    ],
)
def test_failure_unrecorded(state: State, ivs_state: str | None, unrecorded: bool) -> None:
    assert failure_unrecorded(rec(state), Seen.of(ivs_state)) is unrecorded


@pytest.mark.parametrize(
    ("ivs_state", "seen"),
    [
        ("STARTING", Seen.LIVE),
        ("ACTIVE", Seen.LIVE),
        ("STOPPING", Seen.STOPPING),
        ("STOPPED", Seen.STOPPED),
        ("FAILED", Seen.FAILED),
        (None, Seen.GONE),
    ],
)
def test_seen_covers_every_composition_state(ivs_state: str | None, seen: Seen) -> None:
    assert Seen.of(ivs_state) is seen


def test_seen_maps_the_model_enum() -> None:
    """Every CompositionState botocore's model knows is mapped on purpose (a new one would fail here)."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("ivs-realtime")
    assert set(model.shape_for("CompositionState").enum) == {"STARTING", "ACTIVE", "STOPPING", "FAILED", "STOPPED"}
