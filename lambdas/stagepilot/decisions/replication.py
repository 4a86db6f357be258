"""Which destinations a publisher is replicated to, and whether this event may start each one. Pure.

Per (source stage session, participant, destination) the table keeps one ``ReplicationClaim``. Its
``state`` moves:

    (none) ─claim→ claimed ─IVS accepted / 409→ started ─Replication Stopped→ stopped ─publish again→ claimed
                      ├─IVS rejected (configuration)→ rejected ─rule changed, publish again→ claimed
                      └─publisher already gone→ (claim released: a later publish may try again)
    (any) ─the destination's moderation removed the replica→ blocked (final for the source session)

The claim's ``owner`` is the event id that took it: a retry of that event (it crashed after IVS
accepted the call, before the claim was marked started) may finish it; IVS answering 409 Conflict
means the replication exists, so the retry marks it started instead of starting it twice.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from stagepilot.decisions.leases import ClaimVerdict, HeldClaim, claim_verdict
from stagepilot.decisions.publishers import candidate_rules
from stagepilot.policy import ReplicationRule

MAX_REPLICATIONS_PER_PARTICIPANT = 5  # "Concurrent participant replications", per participant, not adjustable
BLOCKED_AT_DESTINATION = (
    "the destination's moderation removed this participant's replica in this session: not replicated there again"
)


class ClaimState(StrEnum):
    CLAIMED = "claimed"
    STARTED = "started"
    STOPPED = "stopped"
    REJECTED = "rejected"
    BLOCKED = "blocked"  # the destination's moderation removed the replica (adapters/publishers.py)


@dataclass(frozen=True)
class ReplicationClaim:
    """What the table remembers about replicating one participant of one session to one destination."""

    state: ClaimState
    owner: str
    claimed_at: datetime
    rule_hash: str | None = None  # set when IVS rejected the request: a changed rule may try again
    rejection: str | None = None


@dataclass(frozen=True)
class ClaimDecision:
    """Whether to claim a replication now, and why."""

    act: bool
    reason: str
    # the event's own earlier delivery holds the claim (``ClaimVerdict.RESUME``): it finishes it without
    # claiming again
    resume: bool = False
    # another owner's live claim (``ClaimVerdict.HELD``): the event is tried again once its lease can have run out
    held: HeldClaim | None = None


@dataclass(frozen=True)
class CapacityPlan:
    """Which of the destinations this event wants to start fit into the participant's replication limit."""

    start: tuple[ReplicationRule, ...] = ()
    already_active: tuple[ReplicationRule, ...] = ()  # IVS already replicates to it (someone else started it)
    over_limit: tuple[ReplicationRule, ...] = ()
    active_elsewhere: int = 0  # active replications of the participant to destinations not in this plan


def only_destination(rules: Iterable[ReplicationRule], *, stage_arn: str) -> str | None:
    """The one stage this stage's policy may replicate to, or None when it names none or several."""
    destinations = {rule.destination_stage_arn for rule in candidate_rules(rules, stage_arn=stage_arn)}
    return destinations.pop() if len(destinations) == 1 else None


def plan_capacity(
    wanted: Sequence[ReplicationRule],
    *,
    active_destinations: Iterable[str],
    limit: int = MAX_REPLICATIONS_PER_PARTICIPANT,
) -> CapacityPlan:
    """Fit ``wanted`` (in policy order) into the participant's free replication slots.

    ``active_destinations``: where IVS replicates the participant now (any origin). A wanted
    destination that is already active needs no slot and no call; the others take the free slots in
    policy order, and the rest are over the limit.
    """
    active = set(active_destinations)
    already = tuple(rule for rule in wanted if rule.destination_stage_arn in active)
    new = [rule for rule in wanted if rule.destination_stage_arn not in active]
    free = max(limit - len(active), 0)
    start, over = tuple(new[:free]), tuple(new[free:])
    wanted_destinations = {rule.destination_stage_arn for rule in wanted}
    return CapacityPlan(
        start=start,
        already_active=already,
        over_limit=over,
        active_elsewhere=len(active - wanted_destinations),
    )


def decide_claim(claim: ReplicationClaim | None, *, owner: str, now: datetime, rule_hash: str) -> ClaimDecision:
    """May this event (``owner``: this delivery of it, ``Envelope.owner``) start the replication to this
    destination?"""
    if claim is None:
        return ClaimDecision(True, "not replicated to this destination in this session yet")
    if claim.state is ClaimState.BLOCKED:
        return ClaimDecision(False, BLOCKED_AT_DESTINATION)
    if claim.state is ClaimState.CLAIMED:
        verdict = claim_verdict(owner=claim.owner, claimed_at=claim.claimed_at, caller=owner, now=now)
        if verdict is ClaimVerdict.RESUME:
            return ClaimDecision(True, "this event's earlier delivery claimed the start; finishing it", resume=True)
        if verdict is ClaimVerdict.TAKE_OVER:
            return ClaimDecision(True, "the claim of another event expired; taking over")
        return ClaimDecision(
            False, "another event is starting this replication", held=HeldClaim(claim.owner, claim.claimed_at)
        )
    if claim.state is ClaimState.STARTED:
        return ClaimDecision(False, "already replicated to this destination in this session")
    if claim.state is ClaimState.STOPPED:
        return ClaimDecision(True, "the earlier replication to this destination stopped; publishing again")
    if claim.rule_hash != rule_hash:
        return ClaimDecision(True, "IVS rejected the previous request; the rule has changed since")
    return ClaimDecision(False, f"IVS rejected this replication in this session ({claim.rejection}); fix the policy")


def rule_hash(rule: ReplicationRule) -> str:
    """Identifies a rule's content, so a rejected replication is tried again once the rule changes."""
    text = json.dumps(rule.to_document(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class ReplicationEventKind(StrEnum):
    STARTED = "started"
    STOPPED = "stopped"


def replication_event_kind(event_name: str) -> ReplicationEventKind | None:
    """What a replication event reports. IVS's English names are not documented (they translate as
    "Participant Replication Started/Stopped"); match by words and return None for names not understood."""
    words = event_name.lower().replace("_", " ").split()
    if not any(word.startswith("replicat") for word in words):
        return None
    if any(word in ("started", "start") for word in words):
        return ReplicationEventKind.STARTED
    if any(word in ("stopped", "stop", "ended", "end") for word in words):
        return ReplicationEventKind.STOPPED
    return None
