"""State kept by the IVS real-time stand-in (see ``ivs.py``), and how it is rendered in API responses.

The dataclasses are plain records; the stand-in owns them and mutates them under its lock. The
``*_view`` functions turn them into the shapes of the botocore ``ivs-realtime`` model.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any, Protocol, TypeVar

import botocore.session

SERVICE_NAME = "ivs-realtime"
LIVE_COMPOSITION_STATES = ("STARTING", "ACTIVE")
ENDED_COMPOSITION_STATES = ("STOPPED", "FAILED")


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


@dataclass
class StageSession:
    session_id: str
    start_time: datetime
    end_time: datetime | None = None
    seq: int = 0


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

    def session(self, session_id: str) -> StageSession | None:
        return next((s for s in self.sessions if s.session_id == session_id), None)

    def in_session(self, session_id: str | None) -> list[Participant]:
        return sorted((p for p in self.participants.values() if p.session_id == session_id), key=lambda p: p.seq)

    def has_publisher(self) -> bool:
        return any(p.is_publisher for p in self.in_session(self.active_session_id))


@dataclass
class Destination:
    destination_id: str
    configuration: dict[str, Any]
    state: str
    start_time: datetime
    end_time: datetime | None = None
    recording_prefix: str | None = None


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
            "recordingState": "DISABLED",
            "replicationType": p.replication_type,
            "replicationState": p.replication_state,
            "sourceStageArn": p.source_stage_arn,
            "sourceSessionId": p.source_session_id,
            "redundantIngest": False,
        }
    )


def participant_view(p: Participant) -> dict[str, Any]:
    view = participant_summary_view(p)
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
