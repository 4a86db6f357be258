"""Moderation's decisions, table-driven: what the participant is (ban, user id, attributes) × what happened
(it published, it is connected without publishing, it erred or was flagged again) × the disconnect claim's
lease. Each row is one situation and the rule that must fire (or none); the rule is what the audit trail
records and the reason is what IVS is sent.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stagepilot.decisions.leases import CLAIM_LEASE, ClaimVerdict, claim_verdict
from stagepilot.decisions.moderation import (
    MAX_REASON_LENGTH,
    Rule,
    needs_attributes,
    should_disconnect_over_limit,
    should_disconnect_publisher,
    should_disconnect_viewer,
)
from stagepilot.policy import DEFAULT_REASON, Limit, ModerationPolicy

NOW = datetime(2026, 11, 21, 20, 0, tzinfo=UTC)
POLICY = ModerationPolicy(
    reason="Bye",
    blocked_user_ids=frozenset({"spammer-7"}),
    blocked_attributes={"tier": frozenset({"suspended"}), "role": frozenset({"troll"})},
)
IDS_ONLY = ModerationPolicy(reason="Ids only", blocked_user_ids=frozenset({"spammer-7"}))
SUSPENDED = {"tier": "suspended"}
TROLL_AND_SUSPENDED = {"role": "troll", "tier": "suspended"}

# A ban as the automation finds it: (banned, stage_ban, publish_only, ban_reason); None: no ban.
Ban = tuple[bool, bool, bool, str]
GLOBAL = (True, False, False, "harassment")
GLOBAL_PUBLISH = (True, False, True, "harassment")
STAGE = (True, True, False, "")
NO_BAN = (False, False, False, "")

# (id, ban, policy, user id, attributes) → (rule, reason sent to IVS, words of the why) or None
PUBLISHED: list[tuple[str, Ban, ModerationPolicy | None, str | None, dict[str, str] | None, tuple[Any, ...] | None]] = [
    ("no ban, no policy", NO_BAN, None, "spammer-7", SUSPENDED, None),
    ("no ban, a user the policy does not block", NO_BAN, POLICY, "u1", {"tier": "gold"}, None),
    ("no ban, attributes not fetched", NO_BAN, POLICY, "u1", None, None),
    ("no ban, no user id, attributes not fetched", NO_BAN, POLICY, None, None, None),
    ("a blocked value under another key", NO_BAN, POLICY, "u1", {"role": "suspended"}, None),
    ("blocked user id", NO_BAN, POLICY, "spammer-7", None, (Rule.BLOCKED_USER_ID, "Bye", "blockedUserIds")),
    (
        "blocked user id before its blocked attribute",
        NO_BAN,
        POLICY,
        "spammer-7",
        SUSPENDED,
        (Rule.BLOCKED_USER_ID, "Bye", "blockedUserIds"),
    ),
    ("blocked attribute", NO_BAN, POLICY, "u1", SUSPENDED, (Rule.BLOCKED_ATTRIBUTE, "Bye", "tier='suspended'")),
    (
        "two blocked attributes: the first key in order",
        NO_BAN,
        POLICY,
        "u1",
        TROLL_AND_SUSPENDED,
        (Rule.BLOCKED_ATTRIBUTE, "Bye", "role='troll'"),
    ),
    ("blocked attribute, no user id", NO_BAN, POLICY, None, SUSPENDED, (Rule.BLOCKED_ATTRIBUTE, "Bye", "tier=")),
    ("a policy of user ids only ignores attributes", NO_BAN, IDS_ONLY, "u1", SUSPENDED, None),
    ("global ban, no policy", GLOBAL, None, "u1", None, (Rule.GLOBAL_BAN, "harassment", "the global ban list")),
    (
        "global ban before the policy's own rules",
        GLOBAL,
        POLICY,
        "spammer-7",
        SUSPENDED,
        (Rule.GLOBAL_BAN, "harassment", "the global ban list"),
    ),
    (
        "global ban of publish scope: it still may not publish",
        GLOBAL_PUBLISH,
        POLICY,
        "u1",
        None,
        (Rule.GLOBAL_BAN, "harassment", "publish scope"),
    ),
    ("stage ban without reason: the policy's", STAGE, POLICY, "u1", None, (Rule.STAGE_BAN, "Bye", "this stage's")),
    (
        "stage ban without reason or policy: the default",
        STAGE,
        None,
        "u1",
        None,
        (Rule.STAGE_BAN, DEFAULT_REASON, "this stage's"),
    ),
]


@pytest.mark.parametrize(
    ("ban", "policy", "user_id", "attributes", "expected"), [r[1:] for r in PUBLISHED], ids=[r[0] for r in PUBLISHED]
)
def test_a_publisher(
    ban: Ban,
    policy: ModerationPolicy | None,
    user_id: str | None,
    attributes: dict[str, str] | None,
    expected: tuple[Any, ...] | None,
) -> None:
    banned, stage_ban, publish_only, ban_reason = ban
    verdict = should_disconnect_publisher(
        user_id,
        banned=banned,
        ban_reason=ban_reason,
        moderation=policy,
        attributes=attributes,
        stage_ban=stage_ban,
        publish_only=publish_only,
    )
    if expected is None:
        assert verdict is None
        return
    rule, reason, why = expected
    assert verdict is not None
    assert (verdict.rule, verdict.reason) == (rule, reason)
    assert why in verdict.why
    assert len(verdict.reason) <= MAX_REASON_LENGTH


# (id, banned, policy, user id) → whether the participant's token attributes are worth a GetParticipant
ATTRIBUTES: list[tuple[str, bool, ModerationPolicy | None, str | None, bool]] = [
    ("a user the attributes may block", False, POLICY, "u1", True),
    ("no user id", False, POLICY, None, True),
    ("banned: decided already", True, POLICY, "u1", False),
    ("blocked by id: decided already", False, POLICY, "spammer-7", False),
    ("a policy without blocked attributes", False, IDS_ONLY, "u1", False),
    ("no policy", False, None, "u1", False),
]


@pytest.mark.parametrize(
    ("banned", "policy", "user_id", "needed"), [r[1:] for r in ATTRIBUTES], ids=[r[0] for r in ATTRIBUTES]
)
def test_attributes_are_fetched_only_when_they_can_decide(
    banned: bool, policy: ModerationPolicy | None, user_id: str | None, needed: bool
) -> None:
    assert needs_attributes(user_id, banned=banned, moderation=policy) is needed


# A connected participant that does not publish (the pass finds it): only a join ban removes it.
# (id, join banned, stage ban, policy) → (rule, reason) or None
VIEWER: list[tuple[str, bool, bool, ModerationPolicy | None, tuple[Rule, str] | None]] = [
    ("not join-banned", False, False, POLICY, None),
    ("not join-banned, a stage ban of publish scope", False, True, POLICY, None),
    ("global join ban", True, False, POLICY, (Rule.GLOBAL_BAN, "Bye")),
    ("stage join ban, no policy", True, True, None, (Rule.STAGE_BAN, DEFAULT_REASON)),
]


@pytest.mark.parametrize(
    ("join_banned", "stage_ban", "policy", "expected"), [r[1:] for r in VIEWER], ids=[r[0] for r in VIEWER]
)
def test_a_viewer(
    join_banned: bool, stage_ban: bool, policy: ModerationPolicy | None, expected: tuple[Rule, str] | None
) -> None:
    verdict = should_disconnect_viewer("u1", join_banned=join_banned, stage_ban=stage_ban, moderation=policy)
    if expected is None:
        assert verdict is None
    else:
        assert verdict is not None
        assert (verdict.rule, verdict.reason) == expected
        assert "join scope" in verdict.why


# Publish errors and flags: counted on event time, over the limit at ``count`` within the window.
# (id, the participant's event offsets in seconds, the one just counted) → over the limit
LIMIT = Limit(count=3, window_seconds=60)
COUNTED: list[tuple[str, list[int], int, bool]] = [
    ("one event", [0], 0, False),
    ("two within the window", [0, 30], 30, False),
    ("three within the window", [0, 30, 59], 59, True),
    ("three spanning exactly the window", [0, 30, 60], 60, False),
    ("three, the late one arriving last", [20, 59, 0], 0, True),
    ("three long ago and one now", [0, 1, 2, 1000], 1000, False),
    ("three in the window that ends as the one just counted happens", [0, 0, 1, 60], 60, False),
    ("four within the window", [0, 1, 2, 3], 3, True),
]


@pytest.mark.parametrize(
    ("rule", "what"),
    [(Rule.PUBLISH_ERROR_LIMIT, "publish errors"), (Rule.FLAG_LIMIT, "flags")],
    ids=["errors", "flags"],
)
@pytest.mark.parametrize(("offsets", "current", "over"), [r[1:] for r in COUNTED], ids=[r[0] for r in COUNTED])
def test_a_participant_counted_again(rule: Rule, what: str, offsets: list[int], current: int, over: bool) -> None:
    times = [NOW + timedelta(seconds=s) for s in offsets]
    at = NOW + timedelta(seconds=current)
    verdict = should_disconnect_over_limit(times, at=at, limit=LIMIT, rule=rule, moderation=POLICY, what=what)
    if not over:
        assert verdict is None
        return
    assert verdict is not None
    assert (verdict.rule, verdict.reason) == (rule, "Bye")
    assert f"{what} within 60 s (limit 3)" in verdict.why


# The disconnect claim (adapters/counters.py DisconnectClaims.claim) asks the one lease rule.
# (id, the claim's owner, its age) → what the caller may do
CALLER = "event-1"
LEASE: list[tuple[str, str, timedelta, ClaimVerdict]] = [
    ("own claim, fresh: a redelivery resumes it", CALLER, timedelta(0), ClaimVerdict.RESUME),
    ("own claim, long expired: still resumed", CALLER, CLAIM_LEASE * 10, ClaimVerdict.RESUME),
    ("another's, fresh", "event-2", timedelta(seconds=1), ClaimVerdict.HELD),
    ("another's, exactly at the lease", "event-2", CLAIM_LEASE, ClaimVerdict.HELD),
    (
        "another's, a second past the lease: its owner died",
        "event-2",
        CLAIM_LEASE + timedelta(seconds=1),
        ClaimVerdict.TAKE_OVER,
    ),
    ("the pass's, past the lease", "reconcile:st-1:moderation", CLAIM_LEASE * 2, ClaimVerdict.TAKE_OVER),
]


@pytest.mark.parametrize(("owner", "age", "verdict"), [r[1:] for r in LEASE], ids=[r[0] for r in LEASE])
def test_the_disconnect_claims_lease(owner: str, age: timedelta, verdict: ClaimVerdict) -> None:
    assert claim_verdict(owner=owner, claimed_at=NOW - age, caller=CALLER, now=NOW) is verdict
