"""Replication decisions: which rules match a publisher, the 5-replication cap, claims, event names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from stagepilot.adapters.ivs import Participant
from stagepilot.decisions.leases import CLAIM_LEASE
from stagepilot.decisions.publishers import candidate_rules, match_publisher, rules_need_attributes
from stagepilot.decisions.replication import (
    BLOCKED_AT_DESTINATION,
    ClaimState,
    ReplicationClaim,
    ReplicationEventKind,
    decide_claim,
    plan_capacity,
    replication_event_kind,
    rule_hash,
)
from stagepilot.policy import ParticipantFilter, ReplicationRule

NOW = datetime(2026, 11, 21, 20, 0, tzinfo=UTC)
SOURCE = "arn:aws:ivs:us-east-1:123456789012:stage/Source00001"


def stage(n: int) -> str:
    return f"arn:aws:ivs:us-east-1:123456789012:stage/Dest{n:07d}"


def rule(n: int, *, user_ids: set[str] | None = None, attributes: dict[str, str] | None = None) -> ReplicationRule:
    wanted = None
    if user_ids is not None or attributes is not None:
        wanted = ParticipantFilter(
            user_ids=frozenset(user_ids) if user_ids is not None else None, attributes=attributes
        )
    return ReplicationRule(destination_stage_arn=stage(n), participants=wanted)


def destinations(rules: tuple[ReplicationRule, ...]) -> list[str]:
    return [r.destination_stage_arn for r in rules]


# matching --------------------------------------------------------------------------------------------
def test_rules_match_by_user_id_and_by_attributes_and_both_must_hold() -> None:
    rules = [
        rule(1, user_ids={"host-1"}),
        rule(2, attributes={"role": "host"}),
        rule(3, user_ids={"host-1"}, attributes={"role": "guest"}),
        rule(4),
    ]
    match = match_publisher(rules, stage_arn=SOURCE, user_id="host-1", attributes={"role": "host"})
    assert destinations(match.matching) == [stage(1), stage(2), stage(4)]
    assert destinations(match.not_matching) == [stage(3)]


def test_attribute_rules_do_not_match_when_attributes_were_not_fetched() -> None:
    match = match_publisher([rule(1, attributes={"role": "host"})], stage_arn=SOURCE, user_id="u", attributes=None)
    assert match.matching == ()


def test_a_rule_pointing_at_the_publishers_own_stage_never_applies() -> None:
    own = ReplicationRule(destination_stage_arn=SOURCE)
    match = match_publisher([own, rule(1)], stage_arn=SOURCE, user_id=None, attributes=None)
    assert match.own_stage == (own,)
    assert destinations(match.matching) == [stage(1)]
    assert candidate_rules([own, rule(1)], stage_arn=SOURCE) == (rule(1),)


def test_attributes_are_needed_only_when_a_rule_not_ruled_out_by_user_id_filters_on_them() -> None:
    assert not rules_need_attributes([rule(1), rule(2, user_ids={"host-1"})], user_id="host-1")
    assert rules_need_attributes([rule(1, attributes={"role": "host"})], user_id=None)
    assert not rules_need_attributes([rule(1, user_ids={"host-1"}, attributes={"role": "host"})], user_id="guest")
    assert rules_need_attributes([rule(1, user_ids={"host-1"}, attributes={"role": "host"})], user_id="host-1")


def participant(replication_type: str | None, source: str | None) -> Participant:
    return Participant("p1", "host-1", "CONNECTED", True, {}, replication_type, source)


@pytest.mark.parametrize(
    ("replication_type", "source", "expected"),
    [
        ("REPLICA", SOURCE, True),
        ("REPLICA", None, True),  # IVS says so, even without naming the source
        ("SOURCE", None, False),  # replicated elsewhere itself: a publisher of this stage
        ("NONE", None, False),
        ("NONE", SOURCE, False),  # the type IVS gives wins over a stray field
        (None, SOURCE, True),  # an answer without a type: the source stage tells
        ("", SOURCE, True),
        (None, None, False),
    ],
)
def test_the_one_rule_for_replicas_reads_ivss_answer(
    replication_type: str | None, source: str | None, expected: bool
) -> None:
    assert participant(replication_type, source).is_replica is expected


def test_a_kept_publisher_answers_the_replica_rule_as_ivs_did() -> None:
    from stagepilot.adapters.publishers import publisher

    kept = publisher({"participantId": "p1", "replicationType": "REPLICA", "sourceStageArn": SOURCE})
    assert kept.is_replica and kept.source_stage_arn == SOURCE
    assert not publisher({"participantId": "p1", "replicationType": "", "sourceStageArn": ""}).is_replica


# the cap of 5 concurrent replications per participant -------------------------------------------------
def test_more_than_five_destinations_are_capped_at_five_in_policy_order() -> None:
    wanted = [rule(n) for n in range(1, 8)]
    plan = plan_capacity(wanted, active_destinations=[])
    assert destinations(plan.start) == [stage(n) for n in range(1, 6)]
    assert destinations(plan.over_limit) == [stage(6), stage(7)]


def test_replications_started_by_others_use_up_the_capacity() -> None:
    elsewhere = [stage(n) for n in range(10, 13)]  # 3 active replications to stages not in the policy
    plan = plan_capacity([rule(n) for n in range(1, 5)], active_destinations=elsewhere)
    assert destinations(plan.start) == [stage(1), stage(2)]
    assert destinations(plan.over_limit) == [stage(3), stage(4)]
    assert plan.active_elsewhere == 3


def test_an_active_wanted_destination_needs_no_slot_and_no_call() -> None:
    active = [stage(1), stage(10), stage(11), stage(12), stage(13)]  # at the limit, one of them wanted
    plan = plan_capacity([rule(1), rule(2)], active_destinations=active)
    assert destinations(plan.already_active) == [stage(1)]
    assert plan.start == ()
    assert destinations(plan.over_limit) == [stage(2)]


# claims ----------------------------------------------------------------------------------------------
def claim(state: ClaimState, *, owner: str = "event-1", age: timedelta = timedelta(0), **kw: str) -> ReplicationClaim:
    return ReplicationClaim(state=state, owner=owner, claimed_at=NOW - age, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("record", "act"),
    [
        (None, True),
        (claim(ClaimState.CLAIMED), True),  # the owner's retry finishes its own claim
        (claim(ClaimState.CLAIMED, owner="other"), False),
        (claim(ClaimState.CLAIMED, owner="other", age=CLAIM_LEASE), False),  # exactly at the lease: still held
        (claim(ClaimState.CLAIMED, owner="other", age=CLAIM_LEASE + timedelta(seconds=1)), True),
        (claim(ClaimState.CLAIMED, age=CLAIM_LEASE * 10), True),  # its own claim, however old
        (claim(ClaimState.STARTED, owner="other", age=CLAIM_LEASE * 10), False),  # no lease on a started one
        (claim(ClaimState.STOPPED, owner="other", age=timedelta(seconds=1)), True),
        (claim(ClaimState.STARTED), False),
        (claim(ClaimState.STARTED, owner="other"), False),
        (claim(ClaimState.STOPPED, owner=""), True),
        (claim(ClaimState.REJECTED, rule_hash="same", rejection="ResourceNotFoundException"), False),
        (claim(ClaimState.REJECTED, rule_hash="older", rejection="ResourceNotFoundException"), True),
        (claim(ClaimState.REJECTED, owner="other", rule_hash="same", rejection="ValidationException"), False),
        # the destination's moderation removed the replica: final for the source session, whoever asks
        (claim(ClaimState.BLOCKED), False),
        (claim(ClaimState.BLOCKED, owner="other", age=CLAIM_LEASE + timedelta(hours=1)), False),
        (claim(ClaimState.BLOCKED, rule_hash="older"), False),
    ],
)
def test_claim_decisions(record: ReplicationClaim | None, act: bool) -> None:
    decision = decide_claim(record, owner="event-1", now=NOW, rule_hash="same")
    assert decision.act is act
    assert decision.reason
    if record is not None and record.state is ClaimState.BLOCKED:
        assert decision.reason == BLOCKED_AT_DESTINATION


def test_the_blocked_state_is_the_one_the_destinations_moderation_writes() -> None:
    from stagepilot.adapters.publishers import REPLICA_BLOCKED

    assert ClaimState(REPLICA_BLOCKED) is ClaimState.BLOCKED


def test_rule_hash_changes_with_the_rule() -> None:
    assert rule_hash(rule(1)) == rule_hash(rule(1))
    assert rule_hash(rule(1)) != rule_hash(rule(2))
    assert rule_hash(rule(1)) != rule_hash(rule(1, user_ids={"x"}))


# replication event names -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("Participant Replication Started", ReplicationEventKind.STARTED),
        ("Participant Replication Stopped", ReplicationEventKind.STOPPED),
        ("REPLICATION_STARTED", ReplicationEventKind.STARTED),
        ("Replication Ended", ReplicationEventKind.STOPPED),
        ("Participant Replication Paused", None),
        ("Participant Published", None),
    ],
)
def test_replication_event_names_are_matched_by_words(name: str, kind: ReplicationEventKind | None) -> None:
    assert replication_event_kind(name) is kind
