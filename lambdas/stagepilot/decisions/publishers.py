"""What replication and moderation need to know about one publisher. Pure.

Both automations handle every ``Participant Published`` and may ask IVS about the same publisher
(``GetParticipant``: its user id, token attributes, replication type). These answer, before that call,
which replication rules could match the publisher and whether its attributes could decide anything, so
each automation asks only when it must and keeps the answer for the other (``adapters/publishers.py``).

Kept apart from ``decisions.replication`` and ``decisions.moderation`` so that each automation imports
only its own decisions and this shared part: every frozen dataclass a Lambda imports costs about a
millisecond of its cold start (docs/performance.md, section 1).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from stagepilot.policy import ModerationPolicy, ReplicationRule


@dataclass(frozen=True)
class PublisherMatch:
    """The policy's replication rules sorted for one publisher (policy order kept within each list)."""

    matching: tuple[ReplicationRule, ...] = ()
    not_matching: tuple[ReplicationRule, ...] = ()
    own_stage: tuple[ReplicationRule, ...] = ()  # a (default policy's) rule pointing at the publisher's stage


def candidate_rules(rules: Iterable[ReplicationRule], *, stage_arn: str) -> tuple[ReplicationRule, ...]:
    """The rules that could apply in ``stage_arn``: a rule never replicates a stage into itself."""
    return tuple(rule for rule in rules if rule.destination_stage_arn != stage_arn)


def rules_need_attributes(rules: Iterable[ReplicationRule], *, user_id: str | None) -> bool:
    """True when deciding needs the publisher's token attributes: some rule filters on attributes and
    is not already ruled out by its ``userIds``."""
    for rule in rules:
        wanted = rule.participants
        if wanted is None or not wanted.needs_attributes:
            continue
        if wanted.user_ids is not None and user_id not in wanted.user_ids:
            continue
        return True
    return False


def match_publisher(
    rules: Sequence[ReplicationRule],
    *,
    stage_arn: str,
    user_id: str | None,
    attributes: Mapping[str, str] | None,
) -> PublisherMatch:
    """Sort the rules for one publisher. ``attributes`` is None when they were not fetched (no rule
    needed them); a rule that filters on attributes then does not match."""
    matching: list[ReplicationRule] = []
    not_matching: list[ReplicationRule] = []
    own_stage: list[ReplicationRule] = []
    for rule in rules:
        if rule.destination_stage_arn == stage_arn:
            own_stage.append(rule)
        elif rule.matches(user_id=user_id, attributes=attributes):
            matching.append(rule)
        else:
            not_matching.append(rule)
    return PublisherMatch(tuple(matching), tuple(not_matching), tuple(own_stage))


def asks_ivs_about(rules: Sequence[ReplicationRule], *, stage_arn: str, user_id: str | None) -> bool:
    """Whether replication will ask IVS about this publisher (a rule matches it, or only its attributes
    can tell): then moderation keeps what it learns from IVS for it."""
    candidates = candidate_rules(rules, stage_arn=stage_arn)
    if not candidates:
        return False
    if rules_need_attributes(candidates, user_id=user_id):
        return True
    return bool(match_publisher(candidates, stage_arn=stage_arn, user_id=user_id, attributes=None).matching)


def may_need_attributes(user_id: str | None, moderation: ModerationPolicy | None) -> bool:
    """True when the user's token attributes decide unless the user is banned (not known yet)."""
    if moderation is None or not moderation.needs_attributes:
        return False
    return user_id is None or user_id not in moderation.blocked_user_ids
