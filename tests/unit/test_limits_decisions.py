"""The policy's limits as decisions (decisions/limits.py, docs/policy.md "What a stage may cost"): which
limit a session's composition has reached, and that a ``guarded`` session never composes again."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from stagepilot.decisions.composition import (
    Converging,
    Published,
    SessionCompositions,
    State,
    decide_on_end,
    decide_on_failure,
    decide_rollover_ahead,
    decide_start,
)
from stagepilot.decisions.limits import Bound, Seen, guard_due, next_deadline, short_clock
from stagepilot.policy import HostGone, LimitsPolicy, ParticipantFilter

T = datetime(2026, 11, 21, 20, 0, tzinfo=UTC)
HOSTS = ParticipantFilter(user_ids=frozenset({"host-1"}))


def at(seconds: float) -> datetime:
    return T + timedelta(seconds=seconds)


def seen(now: float, **kwargs: object) -> Seen:
    return Seen(now=at(now), composing_since=T, composition_started=T, **kwargs)  # type: ignore[arg-type]


MAX = LimitsPolicy(max_session_minutes=240)
IDLE = LimitsPolicy(no_publisher_seconds=30)
GONE = LimitsPolicy(host_gone=HostGone(HOSTS, 120, "end-show"))
ALL = LimitsPolicy(max_session_minutes=240, no_publisher_seconds=30, host_gone=HostGone(HOSTS, 120, "stop-composition"))

# (id, limits, what the pass saw) -> the limit that stops the composition, or None
CASES = [
    ("max-session-not-yet", MAX, seen(240 * 60 - 1), None),
    ("max-session-reached", MAX, seen(240 * 60), Bound.MAX_SESSION),
    ("max-session-counts-from-the-first-composition", MAX, Seen(at(240 * 60), T, at(3600)), Bound.MAX_SESSION),
    ("idle-publishing", IDLE, seen(3600, publishing=True, nobody_since=at(10)), None),
    ("idle-too-short", IDLE, seen(100, publishing=False, nobody_since=at(71)), None),
    ("idle-reached", IDLE, seen(100, publishing=False, nobody_since=at(70)), Bound.NO_PUBLISHER),
    ("idle-since-the-composition-when-nobody-ever-published", IDLE, seen(30, publishing=False), Bound.NO_PUBLISHER),
    ("idle-stopped-before-this-composition", IDLE, Seen(at(40), T, at(20), publishing=False, nobody_since=at(5)), None),
    ("idle-unread", IDLE, seen(3600), None),
    ("host-publishing", GONE, seen(3600, host_publishing=True), None),
    ("host-gone-within-grace", GONE, seen(300, host_publishing=False, host_last_seen=at(181)), None),
    ("host-gone-past-grace", GONE, seen(300, host_publishing=False, host_last_seen=at(180)), Bound.HOST_GONE),
    ("host-never-came", GONE, seen(120, host_publishing=False), Bound.HOST_GONE),
    ("max-session-before-host-gone", ALL, seen(240 * 60, publishing=False, host_publishing=False), Bound.MAX_SESSION),
    ("host-gone-before-idle", ALL, seen(200, publishing=False, host_publishing=False), Bound.HOST_GONE),
    ("no-limits", LimitsPolicy(), seen(10**6, publishing=False, host_publishing=False), None),
]


@pytest.mark.parametrize(("limits", "observed", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_the_limit_reached(limits: LimitsPolicy, observed: Seen, expected: Bound | None) -> None:
    guard = guard_due(limits, observed)
    assert (guard.bound if guard else None) == expected
    if guard is not None:
        assert guard.final == (expected is not Bound.NO_PUBLISHER)
        assert guard.reason.startswith(f"limits.{expected}:")
        assert guard.figures


@pytest.mark.parametrize(("limits", "observed", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_the_next_deadline_is_the_moment_a_limit_falls_due(
    limits: LimitsPolicy, observed: Seen, expected: Bound | None
) -> None:
    """What the pass waits for (convergence.py, ``act_at_deadlines``): due then, not a second before, if
    nothing changes; at or before now when a limit is due now; None when nothing runs down."""
    deadline = next_deadline(limits, observed)
    if expected is not None:
        assert deadline is not None and deadline <= observed.now
    elif deadline is None:
        assert guard_due(limits, replace(observed, now=at(10**7))) is None
    else:
        assert deadline > observed.now
        assert guard_due(limits, replace(observed, now=deadline)) is not None
        assert guard_due(limits, replace(observed, now=deadline - timedelta(seconds=1))) is None


def test_end_show_says_so() -> None:
    guard = guard_due(GONE, seen(300, host_publishing=False))
    assert guard is not None and guard.end_show and guard.figures["action"] == "end-show"
    stop = guard_due(ALL, seen(300, publishing=True, host_publishing=False))
    assert stop is not None and not stop.end_show


GUARDED = SessionCompositions(
    attempt=1,
    state=State.GUARDED,
    owner="e1",
    claimed_at=T,
    composition_arn="arn:aws:ivs:us-east-1:123456789012:composition/c1",
    started_at=T,
    first_started_at=T,
    stopped_by="maxSessionMinutes",
)

# every way a composition could start again in the session: none does once it is guarded
STARTS = [
    (
        "a-publish",
        lambda: decide_start(
            GUARDED, Published(at=at(9999)), owner="e9", now=at(9999), policy_hash="h", max_restarts=3
        ),
    ),
    (
        "a-failure",
        lambda: decide_on_failure(GUARDED, failed_attempt=1, max_restarts=3, failed_at=at(9999), now=at(9999)),
    ),
    (
        "a-pass",
        lambda: decide_start(GUARDED, Converging(), owner="reconcile:s", now=at(9999), policy_hash="h", max_restarts=3),
    ),
    (
        "a-pass-at-the-24-hour-limit",
        lambda: decide_start(
            GUARDED, Converging(at_limit=True), owner="reconcile:s", now=at(9999), policy_hash="h", max_restarts=3
        ),
    ),
    (
        "the-session-end",
        lambda: decide_on_end(
            GUARDED,
            ended_arn=GUARDED.composition_arn or "",
            started_at=T,
            ended_at=at(86400),
            owner="e9",
            now=at(86400),
        ),
    ),
    (
        "a-rollover",
        lambda: decide_rollover_ahead(
            GUARDED, live_arn=GUARDED.composition_arn or "", started_at=T, owner="reconcile:s", now=at(86340)
        ),
    ),
]


@pytest.mark.parametrize("decide", [s[1] for s in STARTS], ids=[s[0] for s in STARTS])
def test_a_guarded_session_never_composes_again(decide: object) -> None:
    decision = decide()  # type: ignore[operator]
    assert not decision.act
    assert not decision.give_up


def test_the_reason_names_the_limit() -> None:
    decision = decide_start(GUARDED, Published(at=at(1)), owner="e9", now=at(1), policy_hash="h", max_restarts=3)
    assert decision.reason == "stopped at limits.maxSessionMinutes: final for this session (nothing composes again)"


def test_a_clock_shorter_than_a_pass_is_watched() -> None:
    """noPublisherSeconds or hostGone shorter than a pass (60 s) can start and run out between two passes."""
    assert short_clock(LimitsPolicy(no_publisher_seconds=59)) and not short_clock(LimitsPolicy(no_publisher_seconds=60))
    assert short_clock(LimitsPolicy(host_gone=HostGone(HOSTS, 0, "end-show")))
    assert not short_clock(GONE) and not short_clock(MAX)
