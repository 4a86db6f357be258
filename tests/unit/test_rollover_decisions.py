"""The planned rollover at IVS's 24-hour limit (docs/policy.md, "Rollover"), as pure decisions.

A composition that reaches the limit while its stage still publishes gets a successor, audited
``rollover``: never ``event-lost`` (which raises the events-lost alarm), never a restart (``maxRestarts``
untouched). S3-only: before the limit (at most ``ROLLOVER_LEAD`` of overlap); with a channel: as soon as
IVS has ended the predecessor.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from stagepilot.decisions.composition import (
    ROLLOVER_LEAD,
    Converging,
    Seen,
    SessionCompositions,
    State,
    decide_on_end,
    decide_rollover_ahead,
    decide_start,
    ended_at_limit,
)
from stagepilot.decisions.heals import ALARMED, HealReason

STARTED = datetime(2026, 11, 21, 20, 0, tzinfo=UTC)
LIMIT = STARTED + timedelta(hours=24)
PASS = "reconcile:st-MainSession01:composition"
EVENT = "00000000-0000-0000-0000-000000000007"
ARN = "arn:aws:ivs:us-east-1:123456789012:composition/AbCd1234"


def rec(state: State, **changes: Any) -> SessionCompositions:
    base = SessionCompositions(
        attempt=1, state=state, owner=EVENT, claimed_at=STARTED, composition_arn=ARN, started_at=STARTED
    )
    return replace(base, **changes)


def test_only_an_end_at_24_hours_is_the_limit() -> None:
    assert ended_at_limit(STARTED, LIMIT)
    assert ended_at_limit(STARTED, LIMIT - timedelta(seconds=30))  # event times are to the second
    assert not ended_at_limit(STARTED, LIMIT - timedelta(minutes=5))  # idle, a stop: not the limit
    assert not ended_at_limit(None, LIMIT)


def test_a_channel_composition_is_succeeded_as_soon_as_ivs_ended_it_at_its_limit() -> None:
    decision = decide_on_end(
        rec(State.ENDED, ended_at=LIMIT), ended_arn=ARN, started_at=STARTED, ended_at=LIMIT, owner=EVENT, now=LIMIT
    )
    assert decision.act and decision.rollover and decision.needs_publishers
    assert decision.attempt == 2 and not decision.restart
    assert decision.heal_reason is HealReason.ROLLOVER and HealReason.ROLLOVER not in ALARMED


def test_an_earlier_end_or_another_composition_rolls_nothing_over() -> None:
    early = LIMIT - timedelta(hours=3)
    assert not decide_on_end(
        rec(State.ENDED), ended_arn=ARN, started_at=STARTED, ended_at=early, owner=EVENT, now=LIMIT
    ).act
    # the S3-only successor started before the limit: the record holds it, not the one that ended
    succeeded = rec(State.STARTED, attempt=2, composition_arn=ARN + "2")
    assert not decide_on_end(succeeded, ended_arn=ARN, started_at=STARTED, ended_at=LIMIT, owner=EVENT, now=LIMIT).act
    assert not decide_on_end(None, ended_arn=ARN, started_at=STARTED, ended_at=LIMIT, owner=EVENT, now=LIMIT).act
    assert not decide_on_end(
        rec(State.GAVE_UP), ended_arn=ARN, started_at=STARTED, ended_at=LIMIT, owner=EVENT, now=LIMIT
    ).act


def test_an_s3_only_successor_starts_within_the_lead_and_not_before() -> None:
    record = rec(State.STARTED)
    early = LIMIT - ROLLOVER_LEAD - timedelta(seconds=1)
    assert not decide_rollover_ahead(record, live_arn=ARN, started_at=STARTED, owner=PASS, now=early).act
    decision = decide_rollover_ahead(record, live_arn=ARN, started_at=STARTED, owner=PASS, now=LIMIT - ROLLOVER_LEAD)
    assert decision.act and decision.rollover and decision.attempt == 2 and not decision.restart
    # once started, the record holds the successor: the predecessor is never succeeded twice
    done = rec(State.STARTED, attempt=2, composition_arn=ARN + "2")
    assert not decide_rollover_ahead(done, live_arn=ARN, started_at=STARTED, owner=PASS, now=LIMIT).act


def test_a_pass_finishes_its_own_rollover_claim_and_leaves_anyone_elses() -> None:
    mine = rec(State.CLAIMED, attempt=2, owner=PASS)
    decision = decide_rollover_ahead(mine, live_arn=ARN, started_at=STARTED, owner=PASS, now=LIMIT)
    assert decision.act and decision.attempt == 2
    theirs = rec(State.CLAIMED, attempt=2, owner=EVENT)
    assert not decide_rollover_ahead(theirs, live_arn=ARN, started_at=STARTED, owner=PASS, now=LIMIT).act


def test_the_pass_calls_a_missed_24_hour_end_a_rollover_not_a_lost_event() -> None:
    # its Session End lost: the record says STARTED, IVS lists it STOPPED at 24 hours
    lost_end = decide_start(
        rec(State.STARTED),
        Converging(seen=Seen.STOPPED, at_limit=True),
        owner=PASS,
        now=LIMIT + timedelta(seconds=30),
        policy_hash="h",
        max_restarts=0,
    )
    assert lost_end.act and lost_end.heal_reason is HealReason.ROLLOVER and not lost_end.restart
    # its Session End handled, the successor not started (nobody published at that instant)
    handled = decide_start(
        rec(State.ENDED, ended_at=LIMIT),
        Converging(publishing_since=STARTED + timedelta(hours=12)),
        owner=PASS,
        now=LIMIT + timedelta(minutes=1),
        policy_hash="h",
        max_restarts=0,
    )
    assert handled.act and handled.heal_reason is HealReason.ROLLOVER
    # an idle stop with someone publishing since before it is still ivs-ended
    idle = decide_start(
        rec(State.ENDED, ended_at=STARTED + timedelta(hours=3)),
        Converging(publishing_since=STARTED + timedelta(hours=1)),
        owner=PASS,
        now=LIMIT,
        policy_hash="h",
        max_restarts=0,
    )
    assert idle.heal_reason is HealReason.IVS_ENDED
