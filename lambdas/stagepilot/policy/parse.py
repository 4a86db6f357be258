"""``parse_policy``: a valid policy document into the model."""

from __future__ import annotations

import copy
from typing import Any

from stagepilot.policy.model import (
    DEFAULT_MAX_RESTARTS,
    DEFAULT_REASON,
    CompositionPolicy,
    HostGone,
    Limit,
    LimitsPolicy,
    ModerationPolicy,
    ParticipantFilter,
    ReplicationRule,
    StagePolicy,
    StageSettings,
    TokenRole,
    TokensPolicy,
)
from stagepilot.policy.problems import PolicyInvalid
from stagepilot.policy.validate import validate_policy


def parse_policy(document: object) -> StagePolicy:
    """The policy in ``document``; raises ``PolicyInvalid`` listing every problem."""
    problems = validate_policy(document)
    if problems:
        raise PolicyInvalid(problems)
    assert isinstance(document, dict)  # validated above
    composition = document.get("composition")
    moderation = document.get("moderation")
    stage = document.get("stage")
    tokens = document.get("tokens")
    limits = document.get("limits")
    return StagePolicy(
        stage_arn=document["stageArn"],
        paused=document.get("paused", False),
        composition=None if composition is None else _parse_composition(composition),
        replication=tuple(_parse_replication_rule(entry) for entry in document.get("replication", [])),
        moderation=None if moderation is None else _parse_moderation(moderation),
        stage=None if stage is None else StageSettings(copy.deepcopy(stage.get("participantRecording"))),
        tokens=None if tokens is None else _parse_tokens(tokens),
        limits=None if limits is None else _parse_limits(limits),
    )


def _parse_limits(section: dict[str, Any]) -> LimitsPolicy:
    host_gone = section.get("hostGone")
    return LimitsPolicy(
        max_session_minutes=section.get("maxSessionMinutes"),
        no_publisher_seconds=section.get("noPublisherSeconds"),
        host_gone=None
        if host_gone is None
        else HostGone(
            hosts=_parse_filter(host_gone),
            grace_seconds=host_gone["graceSeconds"],
            action=host_gone["action"],
        ),
    )


def _parse_filter(section: dict[str, Any]) -> ParticipantFilter:
    user_ids = section.get("userIds")
    attributes = section.get("attributes")
    return ParticipantFilter(
        user_ids=None if user_ids is None else frozenset(user_ids),
        attributes=None if attributes is None else dict(attributes),
    )


def _parse_tokens(section: dict[str, Any]) -> TokensPolicy:
    return TokensPolicy(
        roles={
            name: TokenRole(
                capabilities=frozenset(role["capabilities"]),
                duration_minutes=role["durationMinutes"],
                attributes=dict(role.get("attributes", {})),
            )
            for name, role in section["roles"].items()
        },
        default_role=section.get("defaultRole"),
    )


def _parse_composition(section: dict[str, Any]) -> CompositionPolicy:
    layout = section.get("layout")
    return CompositionPolicy(
        layout=None if layout is None else copy.deepcopy(layout),
        destinations=tuple(copy.deepcopy(section["destinations"])),
        tags=dict(section.get("tags", {})),
        max_restarts=section.get("maxRestarts", DEFAULT_MAX_RESTARTS),
    )


def _parse_replication_rule(entry: dict[str, Any]) -> ReplicationRule:
    participants = entry.get("participants")
    participant_filter = None if participants is None else _parse_filter(participants)
    return ReplicationRule(
        destination_stage_arn=entry["destinationStageArn"],
        reconnect_window_seconds=entry.get("reconnectWindowSeconds", 0),
        attributes=dict(entry.get("attributes", {})),
        participants=participant_filter,
    )


def _parse_moderation(section: dict[str, Any]) -> ModerationPolicy:
    publish_error_limit = section.get("publishErrorLimit")
    flag_limit = section.get("flagLimit")
    return ModerationPolicy(
        dry_run=section.get("dryRun", False),
        reason=section.get("reason", DEFAULT_REASON),
        blocked_user_ids=frozenset(section.get("blockedUserIds", [])),
        blocked_attributes={key: frozenset(values) for key, values in section.get("blockedAttributes", {}).items()},
        publish_error_limit=None if publish_error_limit is None else _parse_limit(publish_error_limit),
        flag_limit=None if flag_limit is None else _parse_limit(flag_limit),
    )


def _parse_limit(section: dict[str, Any]) -> Limit:
    return Limit(count=section["count"], window_seconds=section["windowSeconds"])
