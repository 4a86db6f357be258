"""The stage policy: the per-stage configuration document (docs/policy.md), its validation and its model.

A policy is hand-written JSON. ``validate_policy`` never raises: it returns every problem it finds,
each naming the field (``composition.destinations[1].channel.channelArn: not a channel ARN ...``).
``parse_policy`` turns a valid document into frozen dataclasses the automations read.

The parts of a policy that are handed to IVS as they are (``composition.layout``, ``destinations``,
``tags``, replication ``attributes``, moderation ``reason``) are checked against botocore's own
``ivs-realtime`` request shapes, so the limits are IVS's and move with botocore. botocore's
``ParamValidator`` checks types, required and unknown members and minimums; the shape walk here adds
what it skips: maximums, string patterns (ARNs), enums, and booleans where integers are expected.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from botocore.loaders import Loader
from botocore.model import ServiceModel, Shape
from botocore.validate import ParamValidator

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

# Stand-ins for request members the policy does not carry, so a partial request passes the shape.
_STANDIN_STAGE_ARN: Final = "arn:aws:ivs:us-east-1:000000000000:stage/StandIn"
_STANDIN_PARTICIPANT_ID: Final = "StandIn"

_ROOT_FIELDS: Final = ("stageArn", "paused", "composition", "replication", "moderation", "stage", "tokens")
_STAGE_FIELDS: Final = ("participantRecording",)
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
_COMPOSITION_FIELDS: Final = ("layout", "destinations", "tags", "maxRestarts")
_REPLICATION_FIELDS: Final = ("destinationStageArn", "reconnectWindowSeconds", "attributes", "participants")
_PARTICIPANTS_FIELDS: Final = ("userIds", "attributes")
_MODERATION_FIELDS: Final = (
    "dryRun",
    "reason",
    "blockedUserIds",
    "blockedAttributes",
    "publishErrorLimit",
    "flagLimit",
)
_LIMIT_FIELDS: Final = ("count", "windowSeconds")
_TOKENS_FIELDS: Final = ("roles", "defaultRole")
_ROLE_FIELDS: Final = ("capabilities", "attributes", "durationMinutes")
TOKEN_DURATION_RANGE: Final = (1, 20160)  # CreateParticipantToken.duration, minutes (IVS's range)
TOKEN_CAPABILITIES: Final = ("PUBLISH", "SUBSCRIBE")
MAX_TOKEN_ATTRIBUTES_BYTES: Final = 1024  # CreateParticipantToken.attributes: "1 KB total"
_ROLE_NAME: Final = re.compile(r"[A-Za-z0-9_.-]{1,64}")

_ARN_KIND = re.compile(r"^arn:aws:ivs:.*:([a-z-]+)/")
_PY_TYPE_NAMES: Final = {
    "<class 'str'>": "string",
    "<class 'int'>": "integer",
    "<class 'bool'>": "boolean",
    "<class 'dict'>": "object",
    "<class 'list'>": "array",
    "<class 'tuple'>": "array",
    "<class 'float'>": "number",
    "<class 'decimal.Decimal'>": "number",
}
_SHAPE_TYPE_NAMES: Final = {
    "string": "a string",
    "integer": "an integer",
    "long": "an integer",
    "boolean": "a boolean",
    "structure": "an object",
    "map": "an object",
    "list": "an array",
}


# --------------------------------------------------------------------------------------------------
# Problems


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a policy document, at a field path ("" is the document itself)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class PolicyInvalid(ValueError):
    """A policy document that does not validate; ``problems`` lists every problem found."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


# --------------------------------------------------------------------------------------------------
# The policy model


@dataclass(frozen=True)
class CompositionPolicy:
    """The policy's ``composition`` section: what ``StartComposition`` gets for the stage."""

    layout: dict[str, Any] | None
    destinations: tuple[dict[str, Any], ...]
    tags: dict[str, str] = field(default_factory=dict)
    max_restarts: int = DEFAULT_MAX_RESTARTS

    def start_request(self, *, stage_arn: str, idempotency_token: str, extra_tags: dict[str, str]) -> dict:
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

    def to_document(self) -> dict:
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

    def to_document(self) -> dict:
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

    def start_request(self, *, source_stage_arn: str, participant_id: str) -> dict:
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

    def to_document(self) -> dict:
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

    def to_document(self) -> dict:
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

    def to_document(self) -> dict:
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

    def to_document(self) -> dict:
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

    def to_document(self) -> dict:
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

    def to_document(self) -> dict:
        document: dict[str, Any] = {"roles": {name: role.to_document() for name, role in self.roles.items()}}
        if self.default_role is not None:
            document["defaultRole"] = self.default_role
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

    @property
    def is_default(self) -> bool:
        """True for the policy that applies to every stage without a policy of its own."""
        return self.stage_arn == DEFAULT_STAGE

    def to_document(self) -> dict:
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
        return document


# --------------------------------------------------------------------------------------------------
# Parsing


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
    return StagePolicy(
        stage_arn=document["stageArn"],
        paused=document.get("paused", False),
        composition=None if composition is None else _parse_composition(composition),
        replication=tuple(_parse_replication_rule(entry) for entry in document.get("replication", [])),
        moderation=None if moderation is None else _parse_moderation(moderation),
        stage=None if stage is None else StageSettings(copy.deepcopy(stage.get("participantRecording"))),
        tokens=None if tokens is None else _parse_tokens(tokens),
    )


def _parse_tokens(section: dict) -> TokensPolicy:
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


def _parse_composition(section: dict) -> CompositionPolicy:
    layout = section.get("layout")
    return CompositionPolicy(
        layout=None if layout is None else copy.deepcopy(layout),
        destinations=tuple(copy.deepcopy(section["destinations"])),
        tags=dict(section.get("tags", {})),
        max_restarts=section.get("maxRestarts", DEFAULT_MAX_RESTARTS),
    )


def _parse_replication_rule(entry: dict) -> ReplicationRule:
    participants = entry.get("participants")
    participant_filter = None
    if participants is not None:
        user_ids = participants.get("userIds")
        attributes = participants.get("attributes")
        participant_filter = ParticipantFilter(
            user_ids=None if user_ids is None else frozenset(user_ids),
            attributes=None if attributes is None else dict(attributes),
        )
    return ReplicationRule(
        destination_stage_arn=entry["destinationStageArn"],
        reconnect_window_seconds=entry.get("reconnectWindowSeconds", 0),
        attributes=dict(entry.get("attributes", {})),
        participants=participant_filter,
    )


def _parse_moderation(section: dict) -> ModerationPolicy:
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


def _parse_limit(section: dict) -> Limit:
    return Limit(count=section["count"], window_seconds=section["windowSeconds"])


# --------------------------------------------------------------------------------------------------
# The botocore model


_LOADED_MODEL: list[ServiceModel] = []  # the IVS client's own model, when the caller has one


def use_service_model(model: ServiceModel) -> None:
    """Validate against ``model`` (an ``ivs-realtime`` client's ``meta.service_model``) instead of loading the
    model a second time: a fresh botocore Loader rescans every service folder (~9 ms of a cold start)."""
    if model.service_name != "ivs-realtime":
        raise ValueError(f"not the ivs-realtime model: {model.service_name}")
    _LOADED_MODEL[:] = [model]
    _service_model.cache_clear()
    _input_shape.cache_clear()


@functools.lru_cache(maxsize=1)
def _service_model() -> ServiceModel:
    if _LOADED_MODEL:
        return _LOADED_MODEL[0]
    # Measured with boto3 already imported (as in the Lambda), Python 3.11, botocore 1.44.5:
    # ~7 ms through botocore.loaders (~12 ms through botocore.session.get_session()); once per container.
    return ServiceModel(Loader().load_service_model("ivs-realtime", "service-2"), "ivs-realtime")


@functools.cache
def _input_shape(operation: str) -> Shape:
    shape = _service_model().operation_model(operation).input_shape
    assert shape is not None
    return shape


def _member_shape(operation: str, member: str) -> Shape:
    return _input_shape(operation).members[member]


# --------------------------------------------------------------------------------------------------
# Validation


def validate_policy(document: object) -> list[Problem]:
    """Every problem in ``document`` (empty when it is a valid policy). Never raises."""
    problems: list[Problem] = []
    if not isinstance(document, dict):
        problems.append(Problem("", f"a policy must be an object, got {_json_type(document)}"))
        return problems
    _check_unknown(document, _ROOT_FIELDS, "", problems)
    _check_unicode(document, "", problems)

    stage_arn = document.get("stageArn")
    if "stageArn" not in document:
        problems.append(Problem("stageArn", f'required field missing (a stage ARN or "{DEFAULT_STAGE}")'))
    elif not isinstance(stage_arn, str):
        problems.append(Problem("stageArn", f"must be a string, got {_json_type(stage_arn)}"))
    elif stage_arn != DEFAULT_STAGE:
        _walk(stage_arn, _member_shape("StartComposition", "stageArn"), "stageArn", problems)

    if "paused" in document:
        _check_bool(document["paused"], "paused", problems)
    if "composition" in document:
        _check_composition(document["composition"], "composition", problems)
    if "replication" in document:
        own = stage_arn if isinstance(stage_arn, str) else None
        _check_replication(document["replication"], own, "replication", problems)
    if "moderation" in document:
        _check_moderation(document["moderation"], "moderation", problems)
    if "stage" in document:
        _check_stage(document["stage"], "stage", problems)
    if "tokens" in document:
        _check_tokens(document["tokens"], "tokens", problems)
    if isinstance(stage_arn, str) and stage_arn != DEFAULT_STAGE and _ARN_PLACE.match(stage_arn):
        _check_same_place(document, stage_arn, problems)
    return problems


def _check_stage(section: object, path: str, problems: list[Problem]) -> None:
    if not isinstance(section, dict):
        problems.append(Problem(path, f"must be an object, got {_json_type(section)}"))
        return
    _check_unknown(section, _STAGE_FIELDS, path, problems)
    if "participantRecording" in section:
        shape = _member_shape("UpdateStage", "autoParticipantRecordingConfiguration")
        _check_shape(section["participantRecording"], shape, _join(path, "participantRecording"), problems)


def _check_tokens(section: object, path: str, problems: list[Problem]) -> None:
    if not isinstance(section, dict):
        problems.append(Problem(path, f"must be an object, got {_json_type(section)}"))
        return
    _check_unknown(section, _TOKENS_FIELDS, path, problems)
    roles = section.get("roles")
    roles_path = _join(path, "roles")
    if "roles" not in section:
        problems.append(Problem(roles_path, "required field missing (an object of roles by name)"))
    elif not isinstance(roles, dict):
        problems.append(Problem(roles_path, f"must be an object, got {_json_type(roles)}"))
    elif not roles:
        problems.append(Problem(roles_path, "must name at least one role"))
    else:
        for name, role in roles.items():
            if not isinstance(name, str) or not _ROLE_NAME.fullmatch(name):
                problems.append(
                    Problem(roles_path, f"role name {_show(str(name))}: 1-64 letters, digits, '.', '_' or '-'")
                )
                continue
            _check_role(role, _join(roles_path, name), problems)
    if "defaultRole" in section:
        default = section["defaultRole"]
        default_path = _join(path, "defaultRole")
        if not isinstance(default, str):
            problems.append(Problem(default_path, f"must be a string, got {_json_type(default)}"))
        elif isinstance(roles, dict) and default not in roles:
            known = ", ".join(str(name) for name in roles) or "none"
            problems.append(Problem(default_path, f"must name a role in tokens.roles ({known}), got {_show(default)}"))


def _check_role(role: object, path: str, problems: list[Problem]) -> None:
    if not isinstance(role, dict):
        problems.append(Problem(path, f"must be an object, got {_json_type(role)}"))
        return
    _check_unknown(role, _ROLE_FIELDS, path, problems)
    capabilities = role.get("capabilities")
    capabilities_path = _join(path, "capabilities")
    if "capabilities" not in role:
        problems.append(Problem(capabilities_path, "required field missing (PUBLISH and/or SUBSCRIBE)"))
    elif not isinstance(capabilities, list):
        problems.append(Problem(capabilities_path, f"must be an array, got {_json_type(capabilities)}"))
    elif not capabilities:
        problems.append(Problem(capabilities_path, "must not be empty (PUBLISH and/or SUBSCRIBE)"))
    else:
        for index, capability in enumerate(capabilities):
            if capability not in TOKEN_CAPABILITIES:
                problems.append(
                    Problem(
                        f"{capabilities_path}[{index}]", f"must be PUBLISH or SUBSCRIBE, got {_show(str(capability))}"
                    )
                )
        if len(set(map(str, capabilities))) != len(capabilities):
            problems.append(Problem(capabilities_path, "must not repeat a capability"))
    duration_path = _join(path, "durationMinutes")
    if "durationMinutes" not in role:
        problems.append(Problem(duration_path, "required field missing (the token's lifetime, 1-20160 minutes)"))
    else:
        _check_int(role["durationMinutes"], *TOKEN_DURATION_RANGE, duration_path, problems)
    if "attributes" in role:
        attributes = role["attributes"]
        attributes_path = _join(path, "attributes")
        before = len(problems)
        _check_shape(attributes, _member_shape("CreateParticipantToken", "attributes"), attributes_path, problems)
        if len(problems) == before and isinstance(attributes, dict):
            size = sum(len(k.encode()) + len(v.encode()) for k, v in attributes.items())
            if size > MAX_TOKEN_ATTRIBUTES_BYTES:
                problems.append(
                    Problem(attributes_path, f"must be at most {MAX_TOKEN_ATTRIBUTES_BYTES} bytes in all, got {size}")
                )


_ARN_PLACE: Final = re.compile(r"arn:aws:ivs:([a-z0-9-]+):([0-9]+):")


def _check_same_place(document: dict, stage_arn: str, problems: list[Problem]) -> None:
    """docs/policy.md: every ARN in a policy is in the stage's own account and region (IVS refuses others)."""
    home = _ARN_PLACE.match(stage_arn)
    assert home is not None
    for path, arn in _arns_in(document):
        place = _ARN_PLACE.match(arn)
        if place is not None and place.groups() != home.groups():
            problems.append(
                Problem(
                    path,
                    f"must be in the stage's account and region ({home.group(2)}, {home.group(1)}), "
                    f"not ({place.group(2)}, {place.group(1)}): IVS refuses resources of another account or region",
                )
            )


def _arns_in(document: dict) -> Iterator[tuple[str, str]]:
    composition = document.get("composition")
    destinations = composition.get("destinations") if isinstance(composition, dict) else None
    for index, destination in enumerate(destinations if isinstance(destinations, list) else []):
        for kind in ("channel", "s3"):
            body = destination.get(kind) if isinstance(destination, dict) else None
            if not isinstance(body, dict):
                continue
            for key, value in body.items():
                values = value if isinstance(value, list) else [value]
                for position, item in enumerate(values):
                    if isinstance(item, str) and item.startswith("arn:"):
                        suffix = f"[{position}]" if isinstance(value, list) else ""
                        yield f"composition.destinations[{index}].{kind}.{key}{suffix}", item
    replication = document.get("replication")
    for index, entry in enumerate(replication if isinstance(replication, list) else []):
        arn = entry.get("destinationStageArn") if isinstance(entry, dict) else None
        if isinstance(arn, str):
            yield f"replication[{index}].destinationStageArn", arn
    stage = document.get("stage")
    recording = stage.get("participantRecording") if isinstance(stage, dict) else None
    storage = recording.get("storageConfigurationArn") if isinstance(recording, dict) else None
    if isinstance(storage, str) and storage:
        yield "stage.participantRecording.storageConfigurationArn", storage


def _check_composition(section: object, path: str, problems: list[Problem]) -> None:
    if not isinstance(section, dict):
        problems.append(Problem(path, f"must be an object, got {_json_type(section)}"))
        return
    _check_unknown(section, _COMPOSITION_FIELDS, path, problems)
    request: dict[str, Any] = {"stageArn": _STANDIN_STAGE_ARN}
    request.update({key: section[key] for key in ("layout", "destinations", "tags") if key in section})
    _check_request(request, "StartComposition", path, problems)
    if "maxRestarts" in section:
        _check_int(section["maxRestarts"], 0, MAX_RESTARTS_LIMIT, _join(path, "maxRestarts"), problems)

    destinations = section.get("destinations")
    if isinstance(destinations, list):
        _check_destinations(destinations, _join(path, "destinations"), problems)
    tags = section.get("tags")
    if isinstance(tags, dict) and MAX_POLICY_TAGS < len(tags) <= 50:  # above 50 the model check reports it
        problems.append(
            Problem(
                _join(path, "tags"),
                f"at most {MAX_POLICY_TAGS} tags: IVS allows 50 per composition "
                f"and stagepilot adds {STAGEPILOT_TAG_COUNT} of its own",
            )
        )
    if isinstance(tags, dict):
        for key in tags:
            if isinstance(key, str) and key.lower().startswith(RESERVED_TAG_PREFIXES):
                problems.append(
                    Problem(
                        _join(_join(path, "tags"), key),
                        "tag keys starting with "
                        + " or ".join(f'"{prefix}"' for prefix in RESERVED_TAG_PREFIXES)
                        + " are reserved",
                    )
                )


def _check_destinations(destinations: list, path: str, problems: list[Problem]) -> None:
    """IVS rules the model cannot express: one channel and/or one s3, exactly one kind each, unique names."""
    seen_kind: dict[str, int] = {}
    seen_name: dict[str, int] = {}
    for index, destination in enumerate(destinations):
        if not isinstance(destination, dict):
            continue  # reported by the shape check
        item = f"{path}[{index}]"
        kinds = [kind for kind in ("channel", "s3") if kind in destination]
        if len(kinds) != 1:
            found = "both" if kinds else "neither"
            problems.append(Problem(item, f"a destination must have exactly one of channel, s3 (found {found})"))
        for kind in kinds:
            if kind in seen_kind:
                problems.append(
                    Problem(
                        _join(item, kind),
                        f"a composition can have at most one {kind} destination (already {path}[{seen_kind[kind]}])",
                    )
                )
            else:
                seen_kind[kind] = index
        name = destination.get("name")
        if isinstance(name, str) and name:
            if name in seen_name:
                problems.append(
                    Problem(
                        _join(item, "name"),
                        f'duplicate destination name "{name}" (already {path}[{seen_name[name]}])',
                    )
                )
            else:
                seen_name[name] = index


def _check_replication(section: object, own_stage_arn: str | None, path: str, problems: list[Problem]) -> None:
    if not isinstance(section, list):
        problems.append(Problem(path, f"must be an array, got {_json_type(section)}"))
        return
    if len(section) > MAX_REPLICATIONS:
        problems.append(
            Problem(
                path,
                f"at most {MAX_REPLICATIONS} entries (IVS allows {MAX_REPLICATIONS} concurrent replications "
                f"per participant), got {len(section)}",
            )
        )
    seen: dict[str, int] = {}
    for index, entry in enumerate(section):
        item = f"{path}[{index}]"
        if not isinstance(entry, dict):
            problems.append(Problem(item, f"must be an object, got {_json_type(entry)}"))
            continue
        _check_unknown(entry, _REPLICATION_FIELDS, item, problems)
        request: dict[str, Any] = {
            "sourceStageArn": _STANDIN_STAGE_ARN,
            "participantId": _STANDIN_PARTICIPANT_ID,
        }
        request.update(
            {key: entry[key] for key in ("destinationStageArn", "reconnectWindowSeconds", "attributes") if key in entry}
        )
        _check_request(request, "StartParticipantReplication", item, problems)

        destination = entry.get("destinationStageArn")
        if isinstance(destination, str):
            if destination == own_stage_arn:
                problems.append(Problem(_join(item, "destinationStageArn"), "a stage cannot replicate to itself"))
            elif destination in seen:
                problems.append(
                    Problem(
                        _join(item, "destinationStageArn"),
                        f"duplicate destination (already {path}[{seen[destination]}])",
                    )
                )
            else:
                seen[destination] = index
        attributes = entry.get("attributes")
        if isinstance(attributes, dict):
            size = sum(
                len(key.encode()) + len(value.encode())
                for key, value in attributes.items()
                if isinstance(key, str) and isinstance(value, str)
            )
            if size > MAX_REPLICATION_ATTRIBUTES_BYTES:
                problems.append(
                    Problem(
                        _join(item, "attributes"),
                        f"must be at most 1 KB in total (keys and values, UTF-8), got {size} bytes",
                    )
                )
        if "participants" in entry:
            _check_participants(entry["participants"], _join(item, "participants"), problems)


def _check_participants(section: object, path: str, problems: list[Problem]) -> None:
    if not isinstance(section, dict):
        problems.append(Problem(path, f"must be an object, got {_json_type(section)}"))
        return
    _check_unknown(section, _PARTICIPANTS_FIELDS, path, problems)
    if not any(key in section for key in _PARTICIPANTS_FIELDS):
        problems.append(
            Problem(path, "must give userIds and/or attributes (omit participants to replicate every publisher)")
        )
    if "userIds" in section:
        _check_strings(section["userIds"], _join(path, "userIds"), problems, non_empty_list=True)
    if "attributes" in section:
        attributes = section["attributes"]
        attributes_path = _join(path, "attributes")
        if not isinstance(attributes, dict):
            problems.append(Problem(attributes_path, f"must be an object, got {_json_type(attributes)}"))
        elif not attributes:
            problems.append(Problem(attributes_path, "must not be empty"))
        else:
            for key, value in attributes.items():
                if not isinstance(value, str):
                    problems.append(
                        Problem(_join(attributes_path, str(key)), f"must be a string, got {_json_type(value)}")
                    )


def _check_moderation(section: object, path: str, problems: list[Problem]) -> None:
    if not isinstance(section, dict):
        problems.append(Problem(path, f"must be an object, got {_json_type(section)}"))
        return
    _check_unknown(section, _MODERATION_FIELDS, path, problems)
    if "dryRun" in section:
        _check_bool(section["dryRun"], _join(path, "dryRun"), problems)
    if "reason" in section:
        request = {
            "stageArn": _STANDIN_STAGE_ARN,
            "participantId": _STANDIN_PARTICIPANT_ID,
            "reason": section["reason"],
        }
        _check_request(request, "DisconnectParticipant", path, problems)
    if "blockedUserIds" in section:
        _check_strings(section["blockedUserIds"], _join(path, "blockedUserIds"), problems, non_empty_list=False)
    if "blockedAttributes" in section:
        blocked = section["blockedAttributes"]
        blocked_path = _join(path, "blockedAttributes")
        if not isinstance(blocked, dict):
            problems.append(Problem(blocked_path, f"must be an object, got {_json_type(blocked)}"))
        else:
            for key, values in blocked.items():
                if key == "":
                    problems.append(Problem(blocked_path, "attribute names must not be empty"))
                _check_strings(values, _join(blocked_path, str(key)), problems, non_empty_list=True)
    for name in ("publishErrorLimit", "flagLimit"):
        if name in section:
            _check_limit(section[name], _join(path, name), problems)


def _check_limit(section: object, path: str, problems: list[Problem]) -> None:
    if not isinstance(section, dict):
        problems.append(Problem(path, f"must be an object, got {_json_type(section)}"))
        return
    _check_unknown(section, _LIMIT_FIELDS, path, problems)
    for name, (low, high) in (("count", LIMIT_COUNT_RANGE), ("windowSeconds", LIMIT_WINDOW_RANGE)):
        if name not in section:
            problems.append(Problem(_join(path, name), "required field missing"))
        else:
            _check_int(section[name], low, high, _join(path, name), problems)


def _check_strings(value: object, path: str, problems: list[Problem], *, non_empty_list: bool) -> None:
    """An array of non-empty strings of at most 128 characters (user ids, attribute values)."""
    if not isinstance(value, list):
        problems.append(Problem(path, f"must be an array of strings, got {_json_type(value)}"))
        return
    if non_empty_list and not value:
        problems.append(Problem(path, "must not be empty"))
    for index, item in enumerate(value):
        item_path = f"{path}[{index}]"
        if not isinstance(item, str):
            problems.append(Problem(item_path, f"must be a string, got {_json_type(item)}"))
        elif not item:
            problems.append(Problem(item_path, "must not be empty"))
        elif len(item) > MAX_USER_ID_LENGTH:
            problems.append(Problem(item_path, f"must be at most {MAX_USER_ID_LENGTH} characters, got {len(item)}"))


def _check_unknown(section: dict, known: tuple[str, ...], path: str, problems: list[Problem]) -> None:
    for key in section:
        if key not in known:
            problems.append(Problem(_join(path, str(key)), f"unknown field (expected one of: {', '.join(known)})"))


def _check_unicode(document: object, path: str, problems: list[Problem]) -> None:
    """Every string (keys too) must be encodable: JSON allows lone surrogates ("\\ud800"); nothing
    downstream (DynamoDB, botocore, IVS, logs) can send them. Iterative: depth is not bounded here."""
    stack: list[tuple[object, str]] = [(document, path)]
    while stack:
        value, where = stack.pop()
        if isinstance(value, str):
            if not _encodable(value):
                problems.append(Problem(where, "must be valid Unicode text (it holds a lone surrogate)"))
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str) and not _encodable(key):
                    problems.append(Problem(where, "a key must be valid Unicode text (it holds a lone surrogate)"))
                stack.append((item, _join(where, key if isinstance(key, str) and _encodable(key) else "?")))
        elif isinstance(value, list):
            stack.extend((item, f"{where}[{index}]") for index, item in enumerate(value))


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_bool(value: object, path: str, problems: list[Problem]) -> None:
    if not isinstance(value, bool):
        problems.append(Problem(path, f"must be a boolean, got {_json_type(value)}"))


def _check_int(value: object, low: int, high: int, path: str, problems: list[Problem]) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        problems.append(Problem(path, f"must be an integer, got {_json_type(value)}"))
    elif not low <= value <= high:
        # str() of an int over 4300 digits raises: say how long it is instead.
        shown = (
            str(value) if abs(value) < 10**40 else f"a number of about {int(value.bit_length() * 0.30103) + 1} digits"
        )
        problems.append(Problem(path, f"must be between {low} and {high}, got {shown}"))


# --------------------------------------------------------------------------------------------------
# Checking a request against a botocore shape


def _check_request(request: dict, operation: str, path: str, problems: list[Problem]) -> None:
    """Problems with ``request`` as input to ``operation``, their paths under ``path``."""
    _check_shape(request, _input_shape(operation), path, problems)


def _check_shape(value: object, shape: Shape, path: str, problems: list[Problem]) -> None:
    """Problems with ``value`` as the structure ``shape`` of the IVS model, their paths under ``path``."""
    if not isinstance(value, dict):
        problems.append(Problem(path, f"must be an object, got {_json_type(value)}"))
        return
    request = value
    report = ParamValidator().validate(request, shape)
    # The report keeps (reason, name, details) tuples; generate_report() would only give us text.
    for reason, name, details in getattr(report, "_errors", []):
        problems.append(_from_botocore(reason, str(name), details, shape, path))
    _walk(request, shape, path, problems)


def _from_botocore(reason: str, name: str, details: dict, root: Shape, path: str) -> Problem:
    segments, shape, key = _resolve(name, root)
    where = path
    for segment in segments:
        where = f"{where}[{segment}]" if isinstance(segment, int) else _join(where, segment)
    prefix = f"key {_show(key)}: " if key is not None else ""
    if reason == "missing required field":
        return Problem(_join(where, str(details.get("required_name"))), "required field missing")
    if reason == "unknown field":
        valid = ", ".join(str(name) for name in details.get("valid_names", []))
        return Problem(_join(where, str(details.get("unknown_param"))), f"unknown field (expected one of: {valid})")
    if reason == "invalid type":
        wanted = " or ".join(sorted({_PY_TYPE_NAMES.get(kind, kind) for kind in details.get("valid_types", [])}))
        return Problem(where, f"{prefix}must be {_article(wanted)} {wanted}, got {_json_type(details.get('param'))}")
    if reason == "invalid range":
        return Problem(where, f"must be at least {details.get('min_allowed')}, got {details.get('param')}")
    if reason == "invalid length":
        minimum, length = details.get("min_allowed"), details.get("param")
        if shape is not None and shape.type_name == "list":
            return Problem(where, f"must have at least {minimum} item(s), got {length}")
        if shape is not None and shape.type_name == "map":
            return Problem(where, f"must have at least {minimum} entries, got {length}")
        return Problem(where, f"{prefix}must be at least {minimum} character(s) long, got {length}")
    return Problem(where, f"{prefix}{reason}")


def _resolve(name: str, root: Shape) -> tuple[list[str | int], Shape | None, str | None]:
    """Split a botocore parameter name (".destinations[0].channel") into segments, guided by the shape.

    Returns the segments, the shape at the end (None if the name leaves the model) and, for an error
    about a map key (".tags (key: k)"), the key.
    """
    segments: list[str | int] = []
    shape: Shape | None = root
    rest = name
    while rest and shape is not None:
        if shape.type_name == "structure" and rest.startswith("."):
            member = next(
                (
                    candidate
                    for candidate in sorted(shape.members, key=len, reverse=True)
                    if rest[1:].startswith(candidate)
                    and rest[1 + len(candidate) : 2 + len(candidate)] in ("", ".", "[", " ")
                ),
                None,
            )
            if member is None:
                break
            segments.append(member)
            shape = shape.members[member]
            rest = rest[1 + len(member) :]
        elif shape.type_name == "list" and (match := re.match(r"\[(\d+)\]", rest)):
            segments.append(int(match.group(1)))
            shape = shape.member
            rest = rest[match.end() :]
        elif shape.type_name == "map" and rest.startswith(" (key: ") and rest.endswith(")"):
            return segments, shape.key, rest[len(" (key: ") : -1]
        elif shape.type_name == "map" and rest.startswith("."):
            # Map values here are scalars, so the rest of the name is the key.
            segments.append(rest[1:])
            return segments, shape.value, None
        else:
            break
    if rest:
        segments.append(rest.lstrip("."))
        shape = None
    return segments, shape, None


def _walk(value: object, shape: Shape, path: str, problems: list[Problem]) -> None:
    """What ParamValidator skips: maximums, patterns, enums, bools as integers, tuples as arrays.

    Only descends where the type is right; wrong types are ParamValidator's to report.
    """
    kind = shape.type_name
    metadata = shape.metadata
    if kind == "string" and isinstance(value, str):
        _walk_string(value, shape, path, problems)
    elif kind in ("integer", "long") and isinstance(value, int):
        if isinstance(value, bool):
            problems.append(Problem(path, "must be an integer, got boolean"))
        elif "max" in metadata and value > metadata["max"]:
            problems.append(Problem(path, f"must be at most {metadata['max']}, got {value}"))
    elif kind == "list" and isinstance(value, (list, tuple)):
        if isinstance(value, tuple):
            problems.append(Problem(path, "must be an array, got tuple"))
        if "max" in metadata and len(value) > metadata["max"]:
            problems.append(Problem(path, f"must have at most {metadata['max']} item(s), got {len(value)}"))
        for index, item in enumerate(value):
            _walk(item, shape.member, f"{path}[{index}]", problems)
    elif kind == "map" and isinstance(value, dict):
        if "max" in metadata and len(value) > metadata["max"]:
            problems.append(Problem(path, f"must have at most {metadata['max']} entries, got {len(value)}"))
        for key, item in value.items():
            if isinstance(key, str):
                key_problems: list[Problem] = []
                _walk_string(key, shape.key, path, key_problems)
                problems.extend(Problem(p.path, f"key {_show(key)}: {p.message}") for p in key_problems)
                _walk(item, shape.value, _join(path, key), problems)
    elif kind == "structure" and isinstance(value, dict):
        members = shape.members
        for key, item in value.items():
            if key in members:
                _walk(item, members[key], _join(path, key), problems)


def _walk_string(value: str, shape: Shape, path: str, problems: list[Problem]) -> None:
    metadata = shape.metadata
    if "max" in metadata and len(value) > metadata["max"]:
        problems.append(Problem(path, f"must be at most {metadata['max']} characters, got {len(value)}"))
    pattern = metadata.get("pattern")
    if pattern is not None and _pattern(pattern).fullmatch(value) is None:
        arn_kind = _ARN_KIND.match(pattern)
        if arn_kind:
            kind = arn_kind.group(1)
            problems.append(
                Problem(
                    path,
                    f"not {_article(kind)} {kind} ARN (expected arn:aws:ivs:<region>:<account>:{kind}/<id>)",
                )
            )
        else:
            problems.append(Problem(path, f"does not match the pattern {pattern}"))
    enum = metadata.get("enum")
    if enum and value not in enum:
        problems.append(Problem(path, f"must be one of {', '.join(enum)}, got {value!r}"))


@functools.cache
def _pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _article(word: str) -> str:
    return "an" if word[:1] in ("a", "e", "i", "o", "u") else "a"


def _show(key: str) -> str:
    """A map key for a message: quoted, and shortened when long."""
    return json.dumps(key if len(key) <= 40 else key[:37] + "...")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


# --------------------------------------------------------------------------------------------------
# Across policies


def replication_cycles(policies: Iterable[StagePolicy]) -> list[list[str]]:
    """Stage ARNs that replicate into each other (A→B→A), each cycle once, starting at its smallest ARN.

    A stage without a policy of its own follows the ``default`` policy, so the default's replication
    rules apply to every destination stage that has none (a default rule pointing at such a stage
    itself is ignored). Paused policies replicate nothing.
    """
    own: dict[str, StagePolicy] = {}
    default: StagePolicy | None = None
    for policy in policies:
        if policy.is_default:
            default = policy
        else:
            own[policy.stage_arn] = policy

    def targets(stage: str) -> list[str]:
        policy = own.get(stage, default)
        if policy is None or policy.paused:
            return []
        return sorted({rule.destination_stage_arn for rule in policy.replication} - {stage, DEFAULT_STAGE})

    graph: dict[str, list[str]] = {}
    pending = sorted(own)
    while pending:
        stage = pending.pop()
        if stage in graph:
            continue
        graph[stage] = targets(stage)
        pending.extend(target for target in graph[stage] if target not in graph)

    cycles: list[list[str]] = []
    for start in sorted(graph):
        for cycle in _cycles_from(start, graph):
            cycles.append(cycle)
            if len(cycles) >= _MAX_CYCLES_REPORTED:
                return cycles
    return cycles


_MAX_CYCLES_REPORTED: Final = 100


def _cycles_from(start: str, graph: dict[str, list[str]]) -> Iterator[list[str]]:
    """Elementary cycles through ``start`` whose other stages all sort after it (so each is found once)."""
    stack: list[tuple[str, Iterator[str]]] = [(start, iter(graph[start]))]
    path = [start]
    on_path = {start}
    while stack:
        _, children = stack[-1]
        child = next(children, None)
        if child is None:
            stack.pop()
            on_path.discard(path.pop())
            continue
        if child == start:
            yield list(path)
        elif child > start and child not in on_path:
            path.append(child)
            on_path.add(child)
            stack.append((child, iter(graph.get(child, []))))
