"""Moderation decisions: which rule fires for a publisher, and windowed counting on event time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from stagepilot.decisions.moderation import (
    MAX_REASON_LENGTH,
    Rule,
    disconnect_reason,
    events_in_window,
    needs_attributes,
    should_disconnect_over_limit,
    should_disconnect_publisher,
)
from stagepilot.policy import DEFAULT_REASON, Limit, ModerationPolicy

T0 = datetime(2026, 11, 21, 20, 0, tzinfo=UTC)
POLICY = ModerationPolicy(
    reason="Bye",
    blocked_user_ids=frozenset({"spammer-7"}),
    blocked_attributes={"tier": frozenset({"suspended"}), "role": frozenset({"troll"})},
)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# publishers ----------------------------------------------------------------------------------------
def test_a_banned_user_is_disconnected_with_the_bans_reason_even_without_a_policy() -> None:
    verdict = should_disconnect_publisher("u1", banned=True, ban_reason="harassment", moderation=None)
    assert verdict is not None
    assert (verdict.rule, verdict.reason) == (Rule.GLOBAL_BAN, "harassment")


def test_a_ban_without_reason_uses_the_policy_reason_then_the_default() -> None:
    with_policy = should_disconnect_publisher("u1", banned=True, moderation=POLICY)
    without = should_disconnect_publisher("u1", banned=True, moderation=None)
    assert with_policy is not None and with_policy.reason == "Bye"
    assert without is not None and without.reason == DEFAULT_REASON


def test_a_long_ban_reason_is_cut_to_what_ivs_accepts() -> None:
    verdict = should_disconnect_publisher("u1", banned=True, ban_reason="x" * 500, moderation=None)
    assert verdict is not None and verdict.reason == "x" * MAX_REASON_LENGTH


def test_the_ban_wins_over_the_stage_rules() -> None:
    verdict = should_disconnect_publisher("spammer-7", banned=True, moderation=POLICY, attributes={"tier": "suspended"})
    assert verdict is not None and verdict.rule is Rule.GLOBAL_BAN


def test_blocked_user_id_fires_before_attributes() -> None:
    verdict = should_disconnect_publisher(
        "spammer-7", banned=False, moderation=POLICY, attributes={"tier": "suspended"}
    )
    assert verdict is not None
    assert (verdict.rule, verdict.reason) == (Rule.BLOCKED_USER_ID, "Bye")


def test_a_blocked_attribute_value_fires() -> None:
    verdict = should_disconnect_publisher("u2", banned=False, moderation=POLICY, attributes={"tier": "suspended"})
    assert verdict is not None and verdict.rule is Rule.BLOCKED_ATTRIBUTE
    assert "tier='suspended'" in verdict.why


def test_an_allowed_attribute_value_or_a_value_under_another_key_does_not_fire() -> None:
    assert should_disconnect_publisher("u2", banned=False, moderation=POLICY, attributes={"tier": "gold"}) is None
    assert should_disconnect_publisher("u2", banned=False, moderation=POLICY, attributes={"role": "suspended"}) is None
    assert should_disconnect_publisher(None, banned=False, moderation=POLICY, attributes=None) is None


def test_nobody_is_disconnected_without_a_policy_or_a_ban() -> None:
    assert should_disconnect_publisher("spammer-7", banned=False, moderation=None) is None


def test_attributes_are_fetched_only_when_they_can_decide() -> None:
    assert needs_attributes("u2", banned=False, moderation=POLICY)
    assert needs_attributes(None, banned=False, moderation=POLICY)
    assert not needs_attributes("u2", banned=True, moderation=POLICY)
    assert not needs_attributes("spammer-7", banned=False, moderation=POLICY)
    assert not needs_attributes("u2", banned=False, moderation=ModerationPolicy(blocked_user_ids=frozenset({"x"})))
    assert not needs_attributes("u2", banned=False, moderation=None)


def test_disconnect_reason_defaults() -> None:
    assert disconnect_reason(None) == DEFAULT_REASON
    assert disconnect_reason(POLICY, ban_reason="  ") == "Bye"


# windows -------------------------------------------------------------------------------------------
def test_events_within_the_window_count_together() -> None:
    times = [at(0), at(10), at(59)]
    assert events_in_window(times, at=at(59), window_seconds=60) == 3


def test_events_a_full_window_apart_do_not() -> None:
    times = [at(0), at(60), at(120)]
    assert events_in_window(times, at=at(120), window_seconds=60) == 1


def test_a_late_event_counts_with_the_newer_ones_around_it() -> None:
    # Arrived in the order 20, 0, 10: the last one to arrive completes the window.
    times = [at(20), at(0), at(10)]
    assert events_in_window(times, at=at(10), window_seconds=60) == 3


def test_a_window_must_contain_the_event_just_counted() -> None:
    # Three old events were over the limit long ago; a much later event stands alone.
    times = [at(0), at(1), at(2), at(1000)]
    assert events_in_window(times, at=at(1000), window_seconds=60) == 1


def test_limit_reached_at_count() -> None:
    limit = Limit(count=3, window_seconds=60)
    kwargs = {"limit": limit, "rule": Rule.PUBLISH_ERROR_LIMIT, "moderation": POLICY, "what": "publish errors"}
    assert should_disconnect_over_limit([at(0), at(5)], at=at(5), **kwargs) is None  # type: ignore[arg-type]
    verdict = should_disconnect_over_limit([at(0), at(5), at(6)], at=at(6), **kwargs)  # type: ignore[arg-type]
    assert verdict is not None
    assert (verdict.rule, verdict.reason) == (Rule.PUBLISH_ERROR_LIMIT, "Bye")
    assert "3 publish errors within 60 s" in verdict.why


@given(
    offsets=st.lists(st.integers(min_value=0, max_value=600), min_size=1, max_size=30),
    window=st.integers(min_value=1, max_value=300),
    pick=st.integers(min_value=0, max_value=29),
)
def test_window_count_matches_brute_force_and_ignores_arrival_order(offsets: list[int], window: int, pick: int) -> None:
    times = [at(o) for o in offsets]
    current = times[pick % len(times)]
    # Brute force: every window [s, s + window) that holds ``current``, for every integer start s.
    expected = max(
        sum(1 for t in offsets if s <= t < s + window)
        for s in range(min(offsets) - window, max(offsets) + 1)
        if s <= (current - T0).total_seconds() < s + window
    )
    assert events_in_window(times, at=current, window_seconds=window) == expected
    assert events_in_window(list(reversed(times)), at=current, window_seconds=window) == expected
