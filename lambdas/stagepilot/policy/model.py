"""The policy model: frozen dataclasses the automations read, and the limits a policy is held to."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

DEFAULT_STAGE: Final = "default"
DEFAULT_MAX_RESTARTS: Final = 3
MAX_RESTARTS_LIMIT: Final = 10
DEFAULT_REASON: Final = "Removed by moderation"
MAX_REPLICATIONS: Final = 5  # IVS quota "Concurrent participant replications": 5 per participant, fixed
MAX_REPLICATION_ATTRIBUTES_BYTES: Final = 1024  # "The maximum length of this field is 1 KB total."
MAX_RECONNECT_WINDOW_SECONDS: Final = 300
LIMIT_COUNT_RANGE: Final = (1, 1000)
LIMIT_WINDOW_RANGE: Final = (1, 86400)
MAX_USER_ID_LENGTH: Final = 128  # CreateParticipantToken.userId
RESERVED_TAG_PREFIXES: Final = ("aws:", "stagepilot:")  # stagepilot tags its own compositions
STAGEPILOT_TAG_COUNT: Final = 3  # tags stagepilot adds to each composition (decisions/composition.managed_tags)
MAX_POLICY_TAGS: Final = 50 - STAGEPILOT_TAG_COUNT  # IVS takes at most 50 tags per StartComposition
# autoParticipantRecordingConfiguration as IVS holds it when a member is not given: each default is the one
# the member's documentation in the botocore model gives ("Default: ..."). A policy's section is compared with
# the stage's settings with these filled in, so leaving a member out means "IVS's default", not "anything".
RECORDING_DEFAULTS: Final[Mapping[str, Any]] = {
    "storageConfigurationArn": "",
    "mediaTypes": ["AUDIO_VIDEO"],
    "thumbnailConfiguration": {"targetIntervalSeconds": 60, "storage": ["SEQUENTIAL"], "recordingMode": "DISABLED"},
    "recordingReconnectWindowSeconds": 0,
    "hlsConfiguration": {"targetSegmentDurationSeconds": 6},
    "recordParticipantReplicas": True,
}
TOKEN_DURATION_RANGE: Final = (1, 20160)  # CreateParticipantToken.duration, minutes (IVS's range)
TOKEN_CAPABILITIES: Final = ("PUBLISH", "SUBSCRIBE")
MAX_TOKEN_ATTRIBUTES_BYTES: Final = 1024  # CreateParticipantToken.attributes: "1 KB total"
# ``limits`` (docs/policy.md, "What a stage may cost"): its ranges, and what hostGone may do
MAX_SESSION_MINUTES_RANGE: Final = (1, 1440)
NO_PUBLISHER_SECONDS_RANGE: Final = (10, 3600)
HOST_GONE_GRACE_RANGE: Final = (0, 3600)
STOP_COMPOSITION: Final = "stop-composition"
END_SHOW: Final = "end-show"
HOST_GONE_ACTIONS: Final = (STOP_COMPOSITION, END_SHOW)


@dataclass(frozen=True)
class CompositionPolicy:
    """The policy's ``composition`` section: what ``StartComposition`` gets for the stage."""

    layout: dict[str, Any] | None
    destinations: tuple[dict[str, Any], ...]
    tags: dict[str, str] = field(default_factory=dict)
    max_restarts: int = DEFAULT_MAX_RESTARTS

    def start_request(self, *, stage_arn: str, idempotency_token: str, extra_tags: dict[str, str]) -> dict[str, Any]:
        """The exact ``StartComposition`` parameters; ``extra_tags`` win over the policy's tags."""
        request: dict[str, Any] = {
            "stageArn": stage_arn,
            "idempotencyToken": idempotency_token,
            "destinations": copy.deepcopy(list(self.destinations)),
            "tags": {**self.tags, **extra_tags},
        }
        if self.layout is not None:
            request["layout"] = copy.deepcopy(self.layout)
        return request

    def to_document(self) -> dict[str, Any]:
        document: dict[str, Any] = {}
        if self.layout is not None:
            document["layout"] = copy.deepcopy(self.layout)
        document["destinations"] = copy.deepcopy(list(self.destinations))
        document["tags"] = dict(self.tags)
        document["maxRestarts"] = self.max_restarts
        return document


@dataclass(frozen=True)
class ParticipantFilter:
    """Which publishers a replication rule applies to. ``None`` on a side means "not filtered by"."""

    user_ids: frozenset[str] | None = None
    attributes: dict[str, str] | None = None

    @property
    def needs_attributes(self) -> bool:
        """True when matching needs the participant's token attributes (a GetParticipant call)."""
        return bool(self.attributes)

    def matches(self, *, user_id: str | None, attributes: Mapping[str, str] | None) -> bool:
        if self.user_ids is not None and user_id not in self.user_ids:
            return False
        if self.attributes:
            if attributes is None:
                return False
            return all(attributes.get(key) == value for key, value in self.attributes.items())
        return True

    def to_document(self) -> dict[str, Any]:
        document: dict[str, Any] = {}
        if self.user_ids is not None:
            document["userIds"] = sorted(self.user_ids)
        if self.attributes is not None:
            document["attributes"] = dict(self.attributes)
        return document


@dataclass(frozen=True)
class ReplicationRule:
    """One entry of the policy's ``replication`` list: which publishers go to which stage."""

    destination_stage_arn: str
    reconnect_window_seconds: int = 0
    attributes: dict[str, str] = field(default_factory=dict)
    participants: ParticipantFilter | None = None  # None: every publisher

    def matches(self, *, user_id: str | None, attributes: Mapping[str, str] | None) -> bool:
        return self.participants is None or self.participants.matches(user_id=user_id, attributes=attributes)

    def start_request(self, *, source_stage_arn: str, participant_id: str) -> dict[str, Any]:
        """The exact ``StartParticipantReplication`` parameters."""
        request: dict[str, Any] = {
            "sourceStageArn": source_stage_arn,
            "destinationStageArn": self.destination_stage_arn,
            "participantId": participant_id,
            "reconnectWindowSeconds": self.reconnect_window_seconds,
        }
        if self.attributes:
            request["attributes"] = dict(self.attributes)
        return request

    def to_document(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "destinationStageArn": self.destination_stage_arn,
            "reconnectWindowSeconds": self.reconnect_window_seconds,
        }
        if self.attributes:
            document["attributes"] = dict(self.attributes)
        if self.participants is not None:
            document["participants"] = self.participants.to_document()
        return document


@dataclass(frozen=True)
class Limit:
    """``count`` events for one participant within ``window_seconds`` (event time)."""

    count: int
    window_seconds: int

    def to_document(self) -> dict[str, Any]:
        return {"count": self.count, "windowSeconds": self.window_seconds}


@dataclass(frozen=True)
class ModerationPolicy:
    """The policy's ``moderation`` section: who is disconnected, when, and whether for real."""

    dry_run: bool = False
    reason: str = DEFAULT_REASON
    blocked_user_ids: frozenset[str] = frozenset()
    blocked_attributes: dict[str, frozenset[str]] = field(default_factory=dict)
    publish_error_limit: Limit | None = None  # None: publish errors never disconnect
    flag_limit: Limit | None = None  # None: flags are not counted and never disconnect (no implicit default)

    @property
    def needs_attributes(self) -> bool:
        """True when deciding needs the participant's token attributes (a GetParticipant call)."""
        return bool(self.blocked_attributes)

    def to_document(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "dryRun": self.dry_run,
            "reason": self.reason,
            "blockedUserIds": sorted(self.blocked_user_ids),
            "blockedAttributes": {key: sorted(values) for key, values in self.blocked_attributes.items()},
        }
        if self.publish_error_limit is not None:
            document["publishErrorLimit"] = self.publish_error_limit.to_document()
        if self.flag_limit is not None:
            document["flagLimit"] = self.flag_limit.to_document()
        return document


@dataclass(frozen=True)
class StageSettings:
    """``stage``: settings of the stage itself that stagepilot keeps as the policy says."""

    participant_recording: Mapping[str, Any] | None = None  # UpdateStage's autoParticipantRecordingConfiguration

    def wanted_recording(self) -> dict[str, Any] | None:
        """The whole configuration the stage should have: the policy's members over IVS's defaults."""
        if self.participant_recording is None:
            return None
        wanted = copy.deepcopy(dict(RECORDING_DEFAULTS))
        if self.participant_recording.get("storageConfigurationArn") == "":
            return wanted  # "" turns recording off and resets every other member [model]
        for key, value in self.participant_recording.items():
            wanted[key] = {**wanted[key], **value} if isinstance(value, dict) else copy.deepcopy(value)
        return wanted

    def to_document(self) -> dict[str, Any]:
        document: dict[str, Any] = {}
        if self.participant_recording is not None:
            document["participantRecording"] = copy.deepcopy(dict(self.participant_recording))
        return document


@dataclass(frozen=True)
class TokenRole:
    """One role of the ``tokens`` section: what a token issued for it may do, carries, and how long it joins."""

    capabilities: frozenset[str]  # PUBLISH and/or SUBSCRIBE
    duration_minutes: int
    attributes: Mapping[str, str] = field(default_factory=dict)

    def to_document(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "capabilities": [c for c in TOKEN_CAPABILITIES if c in self.capabilities],
            "durationMinutes": self.duration_minutes,
        }
        if self.attributes:
            document["attributes"] = dict(self.attributes)
        return document


@dataclass(frozen=True)
class TokensPolicy:
    """The policy's ``tokens`` section: the roles the door (docs/door.md) may grant on the stage."""

    roles: Mapping[str, TokenRole]
    default_role: str | None = None  # the role of a request that names none; None: a request must name one

    def to_document(self) -> dict[str, Any]:
        document: dict[str, Any] = {"roles": {name: role.to_document() for name, role in self.roles.items()}}
        if self.default_role is not None:
            document["defaultRole"] = self.default_role
        return document


@dataclass(frozen=True)
class HostGone:
    """``limits.hostGone``: who the show's hosts are, how long the show waits once none of them publishes,
    and what it then does (``stop-composition``, or ``end-show``: that and everyone disconnected)."""

    hosts: ParticipantFilter
    grace_seconds: int
    action: str  # STOP_COMPOSITION or END_SHOW

    @property
    def ends_show(self) -> bool:
        return self.action == END_SHOW

    def to_document(self) -> dict[str, Any]:
        return {**self.hosts.to_document(), "graceSeconds": self.grace_seconds, "action": self.action}


@dataclass(frozen=True)
class LimitsPolicy:
    """The policy's ``limits`` section: bounds on what a stage session's composition may cost. None: no
    such bound."""

    max_session_minutes: int | None = None
    no_publisher_seconds: int | None = None
    host_gone: HostGone | None = None

    def to_document(self) -> dict[str, Any]:
        document: dict[str, Any] = {}
        if self.max_session_minutes is not None:
            document["maxSessionMinutes"] = self.max_session_minutes
        if self.no_publisher_seconds is not None:
            document["noPublisherSeconds"] = self.no_publisher_seconds
        if self.host_gone is not None:
            document["hostGone"] = self.host_gone.to_document()
        return document


@dataclass(frozen=True)
class StagePolicy:
    """One stage's validated policy document (or the ``default`` one)."""

    stage_arn: str
    paused: bool = False
    composition: CompositionPolicy | None = None
    replication: tuple[ReplicationRule, ...] = ()
    moderation: ModerationPolicy | None = None
    stage: StageSettings | None = None
    tokens: TokensPolicy | None = None  # None: the door refuses every token for the stage
    limits: LimitsPolicy | None = None  # None: nothing bounds what the stage's compositions cost

    @property
    def is_default(self) -> bool:
        """True for the policy that applies to every stage without a policy of its own."""
        return self.stage_arn == DEFAULT_STAGE

    def to_document(self) -> dict[str, Any]:
        """The JSON document; ``parse_policy(policy.to_document()) == policy``."""
        document: dict[str, Any] = {"stageArn": self.stage_arn, "paused": self.paused}
        if self.composition is not None:
            document["composition"] = self.composition.to_document()
        if self.replication:
            document["replication"] = [rule.to_document() for rule in self.replication]
        if self.moderation is not None:
            document["moderation"] = self.moderation.to_document()
        if self.stage is not None:
            document["stage"] = self.stage.to_document()
        if self.tokens is not None:
            document["tokens"] = self.tokens.to_document()
        if self.limits is not None:
            document["limits"] = self.limits.to_document()
        return document
