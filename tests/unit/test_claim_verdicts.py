"""Every decision about an unfinished claim asks the one rule (``decisions/leases.claim_verdict``).

One table of leases (whose claim, how old) × every ``decide_*`` that meets a claim: what the verdict is and
what each decision does with it — act or not, and whether it resumes its own earlier try (then the
automation neither claims again nor skips asking IVS what that try did); and, for a claim another owner
holds, that the decision names it (``held``), so an event is tried again when its lease can have run out
instead of being dropped (the disconnect claim's ``held`` is tested through the automation:
tests/handlers/test_held_claims.py).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stagepilot.decisions.composition import (
    MAX_COMPOSITION_AGE,
    ROLLOVER_LEAD,
    Converging,
    Decision,
    Published,
    SessionCompositions,
    State,
    asks_ivs,
    decide_on_failure,
    decide_rollover_ahead,
    decide_start,
    restart_backoff,
)
from stagepilot.decisions.leases import CLAIM_LEASE, HELD_RETRY_MARGIN, ClaimVerdict, HeldClaim, claim_verdict
from stagepilot.decisions.replication import ClaimState, ReplicationClaim, decide_claim

NOW = datetime(2026, 11, 21, 20, 0, tzinfo=UTC)
ME = "event-1@message-1"  # the caller deciding (a delivery, or the pass's owner)
OTHER = "event-2@message-2"
ARN = "arn:aws:ivs:us-east-1:123456789012:composition/AbCd1234"
SECOND = timedelta(seconds=1)

# (id, owner, age of the claim) → the verdict
LEASES: list[tuple[str, str, timedelta, ClaimVerdict]] = [
    ("own claim, fresh", ME, SECOND, ClaimVerdict.RESUME),
    ("own claim, lease long run out", ME, CLAIM_LEASE * 10, ClaimVerdict.RESUME),
    ("another's claim, fresh", OTHER, SECOND, ClaimVerdict.HELD),
    ("another's claim, exactly at the lease", OTHER, CLAIM_LEASE, ClaimVerdict.HELD),
    ("another's claim, a second past the lease", OTHER, CLAIM_LEASE + SECOND, ClaimVerdict.TAKE_OVER),
]


@pytest.mark.parametrize(("owner", "age", "verdict"), [row[1:] for row in LEASES], ids=[row[0] for row in LEASES])
def test_the_one_rule(owner: str, age: timedelta, verdict: ClaimVerdict) -> None:
    assert claim_verdict(owner=owner, claimed_at=NOW - age, caller=ME, now=NOW) is verdict


def record(owner: str, age: timedelta, **changes: Any) -> SessionCompositions:
    base = SessionCompositions(
        attempt=2,
        state=State.CLAIMED,
        owner=owner,
        claimed_at=NOW - age,
        restarts=1,
        composition_arn=ARN,
        started_at=NOW - MAX_COMPOSITION_AGE + ROLLOVER_LEAD,  # the rollover is due
    )
    return replace(base, **changes)


def on_publish(claim: SessionCompositions) -> Decision:
    return decide_start(claim, Published(at=NOW), owner=ME, now=NOW, policy_hash="h", max_restarts=3)


def on_failure(claim: SessionCompositions) -> Decision:
    return decide_on_failure(claim, failed_attempt=1, max_restarts=3, failed_at=NOW, now=NOW, owner=ME)


def on_heal(claim: SessionCompositions) -> Decision:
    return decide_start(claim, Converging(), owner=ME, now=NOW, policy_hash="h", max_restarts=3)


def rollover_ahead(claim: SessionCompositions) -> Decision:
    return decide_rollover_ahead(claim, live_arn=ARN, started_at=claim.started_at, owner=ME, now=NOW)


def replication(claim: SessionCompositions) -> Decision:
    stored = ReplicationClaim(state=ClaimState.CLAIMED, owner=claim.owner, claimed_at=claim.claimed_at)
    decision = decide_claim(stored, owner=ME, now=NOW, rule_hash="h")
    return Decision(decision.act, decision.reason, resume=decision.resume, held=decision.held)


# what each decision does with each verdict: (act, resume)
ACTS = (True, True), (True, False), (False, False)
DECISIONS: list[tuple[str, Any, dict[ClaimVerdict, tuple[bool, bool]]]] = [
    ("decide_start (Published)", on_publish, dict(zip(ClaimVerdict, ACTS, strict=True))),
    ("decide_on_failure", on_failure, dict(zip(ClaimVerdict, ACTS, strict=True))),
    ("decide_start (Converging)", on_heal, dict(zip(ClaimVerdict, ACTS, strict=True))),
    # a rollover claim is only ever the pass's own: it finishes it, and leaves anyone else's alone
    (
        "decide_rollover_ahead",
        rollover_ahead,
        dict(zip(ClaimVerdict, ((True, True), (False, False), (False, False)), strict=True)),
    ),
    ("decide_claim (replication)", replication, dict(zip(ClaimVerdict, ACTS, strict=True))),
]


@pytest.mark.parametrize(
    ("decide", "lease"),
    [(d[1:], lease) for d in DECISIONS for lease in LEASES],
    ids=[f"{d[0]}: {lease[0]}" for d in DECISIONS for lease in LEASES],
)
def test_every_decision_about_a_claim_follows_the_verdict(
    decide: tuple[Any, dict[ClaimVerdict, tuple[bool, bool]]], lease: tuple[str, str, timedelta, ClaimVerdict]
) -> None:
    function, expected = decide
    _, owner, age, verdict = lease
    decision = function(record(owner, age))
    assert (decision.act, decision.resume) == expected[verdict]
    assert decision.reason
    if decision.act:
        assert decision.attempt in (0, 2)  # a claim is finished or taken over with its own attempt


# every decision but the rollover's (a rollover claim is only ever the pass's own) names a held claim
NAMING = [d for d in DECISIONS if d[1] is not rollover_ahead]


@pytest.mark.parametrize(
    ("decide", "lease"),
    [(d[1], lease) for d in NAMING for lease in LEASES],
    ids=[f"{d[0]}: {lease[0]}" for d in NAMING for lease in LEASES],
)
def test_a_decision_that_meets_a_held_claim_names_it_and_when_its_lease_can_have_run_out(
    decide: Any, lease: tuple[str, str, timedelta, ClaimVerdict]
) -> None:
    _, owner, age, verdict = lease
    decision = decide(record(owner, age))
    if verdict is not ClaimVerdict.HELD:
        assert decision.held is None
        return
    assert decision.held == HeldClaim(OTHER, NOW - age)
    # the event comes back once the lease can have run out (and the verdict is TAKE_OVER, past it strictly)
    wait = timedelta(seconds=decision.held.retry_in(NOW))
    assert wait == CLAIM_LEASE - age + HELD_RETRY_MARGIN
    assert claim_verdict(owner=OTHER, claimed_at=NOW - age, caller=ME, now=NOW + wait) is ClaimVerdict.TAKE_OVER


# (id, the claim's age, the wait in whole seconds): the lease's remaining time and the margin, whole seconds
WAITS: list[tuple[str, timedelta, int]] = [
    ("just claimed", timedelta(0), 125),
    ("a second old", SECOND, 124),
    ("half a second old: rounded up", SECOND / 2, 125),
    ("exactly at the lease", CLAIM_LEASE, 5),
    ("claimed a second in the future (another container's clock)", -SECOND, 125),
]


@pytest.mark.parametrize(("age", "seconds"), [w[1:] for w in WAITS], ids=[w[0] for w in WAITS])
def test_how_long_an_event_waits_for_a_held_claim(age: timedelta, seconds: int) -> None:
    held = HeldClaim(OTHER, NOW - age)
    assert held.retry_in(NOW) == seconds
    assert held.lease_ends == NOW - age + CLAIM_LEASE


# whether the pass asks IVS about the record's composition before it decides: it runs, or its own claim
ASKS: list[tuple[str, SessionCompositions | None, bool]] = [
    ("no record", None, False),
    ("started", record(OTHER, SECOND, state=State.STARTED), True),
    ("started, no composition yet", record(OTHER, SECOND, state=State.STARTED, composition_arn=None), False),
    ("own claim", record(ME, SECOND), True),
    ("own claim, lease long run out", record(ME, CLAIM_LEASE * 10), True),
    ("another's claim", record(OTHER, SECOND), False),
    ("another's claim past its lease", record(OTHER, CLAIM_LEASE + SECOND), False),
    ("ended", record(ME, SECOND, state=State.ENDED), False),
]


@pytest.mark.parametrize(("found", "asks"), [row[1:] for row in ASKS], ids=[row[0] for row in ASKS])
def test_the_pass_asks_ivs_what_its_own_claim_or_a_running_record_shows(
    found: SessionCompositions | None, asks: bool
) -> None:
    assert asks_ivs(found, owner=ME, now=NOW) is asks


# a failure not restarted yet: whoever recorded it holds its restart from the end of its back-off, as a lease
BACKOFF = restart_backoff(1)
FAILED: list[tuple[str, str | None, timedelta, bool]] = [
    ("recorded by the pass, within its back-off", ME, BACKOFF - SECOND, False),
    ("recorded by the pass, its back-off over", ME, BACKOFF, True),
    ("recorded by an event, its back-off over, its lease runs", OTHER, BACKOFF + SECOND, False),
    ("recorded by an event, exactly at its lease", OTHER, BACKOFF + CLAIM_LEASE, False),
    ("recorded by an event, a second past its lease", OTHER, BACKOFF + CLAIM_LEASE + SECOND, True),
    ("recorded by nobody known, past the lease", None, BACKOFF + CLAIM_LEASE + SECOND, True),
]


@pytest.mark.parametrize(("by", "ago", "act"), [row[1:] for row in FAILED], ids=[row[0] for row in FAILED])
def test_a_failure_is_restarted_by_its_recorder_or_after_its_lease(by: str | None, ago: timedelta, act: bool) -> None:
    failed = record(OTHER, ago, state=State.FAILED, failed_at=NOW - ago, failed_by=by)
    decision = decide_start(failed, Converging(), owner=ME, now=NOW, policy_hash="h", max_restarts=3)
    assert decision.act is act
    assert decision.restart is act and not decision.resume
