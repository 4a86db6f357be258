"""State kept by the IVS real-time stand-in (see ``ivs.py``), and how it is rendered in API responses.

The dataclasses are plain records; the stand-in owns them and mutates them under its lock. The
``*_view`` functions turn them into the shapes of the botocore ``ivs-realtime`` model.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any, Protocol, TypeVar

import botocore.session

SERVICE_NAME = "ivs-realtime"
LIVE_COMPOSITION_STATES = ("STARTING", "ACTIVE")
# autoParticipantRecordingConfiguration as IVS reports it when nothing was set: each default is the one
# its member's documentation in the model gives ("Default: ...").
RECORDING_DEFAULTS: dict[str, Any] = {
    "storageConfigurationArn": "",
    "mediaTypes": ["AUDIO_VIDEO"],
    "thumbnailConfiguration": {"targetIntervalSeconds": 60, "storage": ["SEQUENTIAL"], "recordingMode": "DISABLED"},
    "recordingReconnectWindowSeconds": 0,
    "hlsConfiguration": {"targetSegmentDurationSeconds": 6},
    "recordParticipantReplicas": True,
}


class IvsApiError(Exception):
    """A modelled IVS error: ``code`` is the exception shape name (``ConflictException``...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Call:
    """One request the stand-in received. ``params`` is the JSON request body exactly as sent."""

    operation: str
    params: dict[str, Any]
    status: int
    time: datetime
    trigger: str | None = None  # what made the caller call: "event", "retry", "reconcile" (set by the caller)


@dataclass
class StageSession:
    session_id: str
    start_time: datetime
    end_time: datetime | None = None
    seq: int = 0


@dataclass
class ParticipantEvent:
    """One entry of a participant's history, as ListParticipantEvents returns it."""

    name: str  # JOINED, LEFT, PUBLISH_STARTED, PUBLISH_STOPPED, PUBLISH_ERROR, REPLICATION_STARTED/STOPPED
    time: datetime
    seq: int
    error_code: str | None = None
    destination_stage_arn: str | None = None
    destination_session_id: str | None = None
    replica: bool = False


@dataclass
class Participant:
    """A participant (one token) in one stage session.

    ``published`` is IVS's field: "ever published to the stage session"; ``publishing`` is whether it
    publishes right now (IVS exposes that only through events).
    """

    participant_id: str
    session_id: str
    user_id: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    state: str = "CONNECTED"
    publishing: bool = False
    published: bool = False
    first_join_time: datetime | None = None
    replication_type: str = "NONE"
    replication_state: str | None = None
    source_stage_arn: str | None = None
    source_session_id: str | None = None
    protocol: str = "UNKNOWN"
    seq: int = 0
    history: list[ParticipantEvent] = field(default_factory=list)
    # individual participant recording: DISABLED unless the stage records (see Stage.recording)
    recording_state: str = "DISABLED"
    recording_bucket: str | None = None
    recording_prefix: str | None = None
    recording_stops_at: datetime | None = None  # the publish stopped; the recording ends after the window
    connected_at: datetime | None = None  # when its current connection began (24 hours at most)

    @property
    def is_publisher(self) -> bool:
        return self.state == "CONNECTED" and self.publishing


@dataclass
class Stage:
    arn: str
    name: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    sessions: list[StageSession] = field(default_factory=list)
    active_session_id: str | None = None
    # (session_id, participant_id) -> Participant
    participants: dict[tuple[str, str], Participant] = field(default_factory=dict)
    # participant_id -> (user_id, attributes), from declare_participant (the token's contents)
    declared: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)
    # since when nobody publishes (None while someone does); drives the 60 s composition auto-stop
    idle_since: datetime | None = None
    # participant ids (token ids) revoked by DisconnectParticipant: they can never connect again
    revoked: set[str] = field(default_factory=set)
    seq: int = 0
    # autoParticipantRecordingConfiguration (CreateStage/UpdateStage), every member present
    recording: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(RECORDING_DEFAULTS))

    def session(self, session_id: str) -> StageSession | None:
        return next((s for s in self.sessions if s.session_id == session_id), None)

    def in_session(self, session_id: str | None) -> list[Participant]:
        return sorted((p for p in self.participants.values() if p.session_id == session_id), key=lambda p: p.seq)

    def has_publisher(self) -> bool:
        return self.publisher_count() > 0

    def publisher_count(self) -> int:
        return sum(p.is_publisher for p in self.in_session(self.active_session_id))

    def anyone_connected(self) -> bool:
        return any(p.state == "CONNECTED" for p in self.in_session(self.active_session_id))


@dataclass
class Destination:
    destination_id: str
    configuration: dict[str, Any]
    state: str
    start_time: datetime
    end_time: datetime | None = None
    recording_prefix: str | None = None

    @property
    def kind(self) -> str:
        """``channel`` or ``s3``: which destination configuration it has."""
        return "channel" if "channel" in self.configuration else "s3"


@dataclass
class Composition:
    arn: str
    stage_arn: str
    session_id: str | None
    state: str
    layout: dict[str, Any]
    destinations: list[Destination]
    tags: dict[str, str]
    start_time: datetime
    end_time: datetime | None = None
    idempotency_token: str | None = None
    # true once cleaned up (5 minutes after STOPPED/FAILED): no longer visible to Get/List
    deleted: bool = False
    seq: int = 0


@dataclass
class Replication:
    source_stage_arn: str
    participant_id: str
    source_session_id: str
    destination_stage_arn: str
    destination_session_id: str
    state: str = "ACTIVE"
    reconnect_window_seconds: int = 0
    attributes: dict[str, str] = field(default_factory=dict)
    start_time: datetime | None = None
    end_time: datetime | None = None
    seq: int = 0
    # when the source stopped publishing; the replica ends unless it is back within the reconnect window
    source_stopped_at: datetime | None = None


# ---------------------------------------------------------------------------------------------- model


@cache
def service_model() -> Any:
    return botocore.session.get_session().get_service_model(SERVICE_NAME)


@cache
def error_statuses() -> dict[str, int]:
    """Exception shape name -> HTTP status, read from the model (ValidationException -> 400, ...)."""
    return {shape.name: int(shape.metadata["error"]["httpStatusCode"]) for shape in service_model().error_shapes}


@cache
def operation_names() -> frozenset[str]:
    return frozenset(service_model().operation_names)


# ---------------------------------------------------------------------------------------------- views


def api_time(value: datetime) -> str:
    """ISO-8601 with milliseconds, as IVS returns timestamps."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_time(value: datetime) -> str:
    """The EventBridge envelope format: ``YYYY-MM-DDTHH:MM:SSZ``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _time_or_none(value: datetime | None) -> str | None:
    return api_time(value) if value is not None else None


def session_view(session: StageSession) -> dict[str, Any]:
    return _drop_none(
        {
            "sessionId": session.session_id,
            "startTime": api_time(session.start_time),
            "endTime": _time_or_none(session.end_time),
        }
    )


def participant_summary_view(p: Participant) -> dict[str, Any]:
    return _drop_none(
        {
            "participantId": p.participant_id,
            "userId": p.user_id,
            "state": p.state,
            "firstJoinTime": _time_or_none(p.first_join_time),
            "published": p.published,
            "recordingState": p.recording_state,
            "replicationType": p.replication_type,
            "replicationState": p.replication_state,
            "sourceStageArn": p.source_stage_arn,
            "sourceSessionId": p.source_session_id,
            "redundantIngest": False,
        }
    )


def participant_view(p: Participant) -> dict[str, Any]:
    view = participant_summary_view(p)
    if p.recording_bucket is not None:
        view["recordingS3BucketName"] = p.recording_bucket
        view["recordingS3Prefix"] = p.recording_prefix
    view["attributes"] = dict(p.attributes)
    view["protocol"] = p.protocol
    return view


def _destination_summary_view(d: Destination) -> dict[str, Any]:
    return _drop_none(
        {
            "id": d.destination_id,
            "state": d.state,
            "startTime": api_time(d.start_time),
            "endTime": _time_or_none(d.end_time),
        }
    )


def composition_view(c: Composition) -> dict[str, Any]:
    destinations = []
    for d in c.destinations:
        view = _destination_summary_view(d)
        view["configuration"] = d.configuration
        if d.recording_prefix is not None:
            view["detail"] = {"s3": {"recordingPrefix": d.recording_prefix}}
        destinations.append(view)
    return _drop_none(
        {
            "arn": c.arn,
            "stageArn": c.stage_arn,
            "state": c.state,
            "layout": c.layout,
            "destinations": destinations,
            "tags": dict(c.tags),
            "startTime": api_time(c.start_time),
            "endTime": _time_or_none(c.end_time),
        }
    )


def composition_summary_view(c: Composition) -> dict[str, Any]:
    return _drop_none(
        {
            "arn": c.arn,
            "stageArn": c.stage_arn,
            "destinations": [_destination_summary_view(d) for d in c.destinations],
            "state": c.state,
            "tags": dict(c.tags),
            "startTime": api_time(c.start_time),
            "endTime": _time_or_none(c.end_time),
        }
    )


def stage_view(stage: Stage) -> dict[str, Any]:
    """GetStage's ``stage``: the summary plus the recording configuration (the summary has none)."""
    return {
        **stage_summary_view(stage),
        "autoParticipantRecordingConfiguration": copy.deepcopy(stage.recording),
        # GetStage's endpoints (a key-pair token carries events and whip): IVS's shape, the stand-in's host
        "endpoints": {
            "events": "wss://global.events.live-video.net",
            "whip": f"https://{stage.arn.rsplit('/', 1)[-1]}.global-bm.whip.live-video.net",
        },
    }


def stage_summary_view(stage: Stage) -> dict[str, Any]:
    return _drop_none(
        {"arn": stage.arn, "name": stage.name, "activeSessionId": stage.active_session_id, "tags": dict(stage.tags)}
    )


def participant_event_view(participant_id: str, e: ParticipantEvent) -> dict[str, Any]:
    view = _drop_none(
        {
            "name": e.name,
            "participantId": participant_id,
            "eventTime": api_time(e.time),
            "errorCode": e.error_code,
            "destinationStageArn": e.destination_stage_arn,
            "destinationSessionId": e.destination_session_id,
        }
    )
    if e.replica:
        view["replica"] = True
    return view


def replica_view(r: Replication) -> dict[str, Any]:
    return {
        "sourceStageArn": r.source_stage_arn,
        "participantId": r.participant_id,
        "sourceSessionId": r.source_session_id,
        "destinationStageArn": r.destination_stage_arn,
        "destinationSessionId": r.destination_session_id,
        "replicationState": r.state,
    }


# ---------------------------------------------------------------------------------------------- paging


class _Sequenced(Protocol):
    @property
    def seq(self) -> int: ...


T = TypeVar("T", bound=_Sequenced)


def paginate(
    operation: str,
    items: Sequence[T],
    *,
    max_results: int,
    next_token: str | None,
    descending: bool = False,
) -> tuple[list[T], str | None]:
    """One page of ``items`` (already in response order) and the token for the next one.

    The token remembers the ``seq`` of the last item returned, so pages stay consistent when items
    disappear in between (compositions cleaned up, for example).
    """
    remaining = list(items)
    if next_token:
        try:
            decoded = json.loads(base64.urlsafe_b64decode(next_token.encode()))
            if decoded["op"] != operation:
                raise ValueError(decoded["op"])
            after = int(decoded["after"])
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise IvsApiError("ValidationException", f"invalid nextToken: {next_token}") from exc
        remaining = [i for i in remaining if (i.seq < after if descending else i.seq > after)]
    page = remaining[:max_results]
    if len(remaining) <= max_results:
        return page, None
    token = json.dumps({"op": operation, "after": page[-1].seq}).encode()
    return page, base64.urlsafe_b64encode(token).decode()


# ---------------------------------------------------------------------------------------------- validation


def validate_request(operation: str, params: dict[str, Any]) -> None:
    """Validate a request body as the service does: what botocore checks client-side (types, required
    members, minimum lengths) plus what it leaves to the server (maximum lengths and values, patterns,
    enums). Raises ``IvsApiError("ValidationException", ...)`` naming the first bad field."""
    shape = service_model().operation_model(operation).input_shape
    if shape is not None:
        _validate(shape, params, "")


def _validate(shape: Any, value: Any, path: str) -> None:
    kind = shape.type_name
    where = path or "request"
    meta = shape.metadata
    if kind == "structure":
        if not isinstance(value, dict):
            raise IvsApiError("ValidationException", f"{where}: expected an object")
        for name in shape.required_members:
            if name not in value:
                raise IvsApiError("ValidationException", f"{_join(path, name)}: required")
        for name, member in value.items():
            if name not in shape.members:
                raise IvsApiError("ValidationException", f"{_join(path, name)}: unknown field")
            _validate(shape.members[name], member, _join(path, name))
    elif kind == "list":
        if not isinstance(value, list):
            raise IvsApiError("ValidationException", f"{where}: expected a list")
        _check_range(len(value), meta, where, "length")
        for index, item in enumerate(value):
            _validate(shape.member, item, f"{where}[{index}]")
    elif kind == "map":
        if not isinstance(value, dict):
            raise IvsApiError("ValidationException", f"{where}: expected a map")
        _check_range(len(value), meta, where, "size")
        for key, item in value.items():
            _validate(shape.key, key, f"{where} key {key!r}")
            _validate(shape.value, item, f"{where}.{key}")
    elif kind == "string":
        if not isinstance(value, str):
            raise IvsApiError("ValidationException", f"{where}: expected a string")
        _check_range(len(value), meta, where, "length")
        if shape.enum and value not in shape.enum:
            raise IvsApiError("ValidationException", f"{where}: must be one of {', '.join(shape.enum)}")
        pattern = meta.get("pattern")
        if pattern and not _compiled(pattern).fullmatch(value):
            raise IvsApiError("ValidationException", f"{where}: does not match {pattern}")
    elif kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise IvsApiError("ValidationException", f"{where}: expected an integer")
        _check_range(value, meta, where, "value")
    elif kind == "boolean" and not isinstance(value, bool):
        raise IvsApiError("ValidationException", f"{where}: expected a boolean")


def _check_range(size: int, meta: dict[str, Any], where: str, what: str) -> None:
    if "min" in meta and size < meta["min"]:
        raise IvsApiError("ValidationException", f"{where}: {what} {size} is below the minimum {meta['min']}")
    if "max" in meta and size > meta["max"]:
        raise IvsApiError("ValidationException", f"{where}: {what} {size} is above the maximum {meta['max']}")


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)
