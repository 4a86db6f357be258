"""Parse EventBridge envelopes into the three kinds of event stagepilot acts on.

Parsing is strict about what the automations rely on and tolerant of everything else: IVS documents only
a few ``detail`` fields and may add more, so unknown fields are ignored, while a missing or malformed
field the automation needs raises ``MalformedEvent`` naming it. Hand-written rather than Powertools'
parser: pydantic would add ~100 ms to every cold start for five fields (docs/performance.md).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from stagepilot.errors import MalformedEvent
from stagepilot.routing import (
    COMPOSITION_STATE_CHANGE,
    IVS_SOURCE,
    PARTICIPANT_FLAGGED,
    PARTICIPANT_RECORDING_STATE_CHANGE,
    STAGE_UPDATE,
)

# Patterns of the IVS API model (botocore ivs-realtime): ARNs, session and participant ids.
STAGE_ARN = re.compile(r"arn:aws:ivs:[a-z0-9-]+:[0-9]+:stage/[a-zA-Z0-9-]+")
COMPOSITION_ARN = re.compile(r"arn:aws:ivs:[a-z0-9-]+:[0-9]+:composition/[a-zA-Z0-9-]+")
SESSION_ID = re.compile(r"st-[a-zA-Z0-9]{13}")  # fixed length 16 (model: StageSessionId)
PARTICIPANT_ID = re.compile(r"[a-zA-Z0-9-_]+")
MAX_ID_LENGTH = 64
MAX_USER_ID_LENGTH = 128
MAX_REPORTER_LENGTH = 256  # ours (docs/events.md): room for an IAM role or session ARN
MAX_TEXT_LENGTH = 1024
MAX_BODY_BYTES = 256 * 1024  # an SQS message cannot be larger

EVENT_NAMES_NEEDING_PARTICIPANT = frozenset(
    {"Participant Published", "Participant Unpublished", "Participant Publish Error"}
)


@dataclass(frozen=True)
class Envelope:
    """The EventBridge envelope of one event, validated; ``detail`` as sent."""

    event_id: str
    detail_type: str
    source: str
    account: str
    region: str
    time: datetime
    resources: tuple[str, ...]
    detail: Mapping[str, Any] = field(repr=False)
    # The SQS message this copy of the event came in (its ``messageId``; "" outside a queue). EventBridge
    # delivers an event at least once: two copies share the event id but not the message, while the queue
    # redelivers one message under its own id. See ``owner``.
    delivery: str = ""

    @property
    def owner(self) -> str:
        """Who holds the claims this copy of the event takes (docs/table.md, "Claims"): the event id and its
        delivery, so a redelivery of the message resumes its own unfinished claim, and a second copy of the
        event, handled at the same moment in another container, finds that claim held and leaves it alone."""
        return f"{self.event_id}@{self.delivery}" if self.delivery else self.event_id


@dataclass(frozen=True)
class StageUpdate:
    """``IVS Stage Update``: a participant published, unpublished, failed to publish, or a replication event."""

    envelope: Envelope
    stage_arn: str
    session_id: str
    event_name: str
    participant_id: str | None
    user_id: str | None  # None when the token has no user id (IVS sends "")
    time: datetime  # detail.event_time when present, else the envelope time
    # No replica flag, source or destination stage: IVS documents none on these events, and a body in a
    # queue can say anything. Who a participant is, and whether it is a replica, is asked of IVS.

    @property
    def event_id(self) -> str:
        return self.envelope.event_id


@dataclass(frozen=True)
class CompositionStateChange:
    """``IVS Composition State Change``: ``resources[0]`` is the composition, ``detail.stage_arn`` the stage."""

    envelope: Envelope
    composition_arn: str
    stage_arn: str
    event_name: str
    session_id: str | None
    reason: str | None
    time: datetime  # the envelope time: these events carry no detail.event_time

    @property
    def event_id(self) -> str:
        return self.envelope.event_id


@dataclass(frozen=True)
class RecordingStateChange:
    """``IVS Participant Recording State Change``: ``resources[0]`` is the stage (the official sample)."""

    envelope: Envelope
    stage_arn: str
    session_id: str
    event_name: str  # Recording Start / End / Start Failure / End Failure
    participant_id: str
    bucket: str | None
    key_prefix: str | None
    time: datetime  # the envelope time

    @property
    def event_id(self) -> str:
        return self.envelope.event_id

    @property
    def failed(self) -> bool:
        return self.event_name.endswith("Failure")


@dataclass(frozen=True)
class ParticipantFlagged:
    """A moderation flag another system put on the flag bus (docs/events.md)."""

    envelope: Envelope
    stage_arn: str
    session_id: str
    participant_id: str
    user_id: str | None
    reason: str | None
    time: datetime
    reporter: str | None = None  # who flagged: flags count once per reporter and window (docs/events.md)

    @property
    def event_id(self) -> str:
        return self.envelope.event_id


Event = StageUpdate | CompositionStateChange | ParticipantFlagged | RecordingStateChange


def delivered(event: Event, message_id: object) -> Event:
    """``event`` as this delivery of it: its envelope names the SQS message it came in (``Envelope.owner``)."""
    if not isinstance(message_id, str) or not message_id:
        return event
    return replace(event, envelope=replace(event.envelope, delivery=message_id))


def parse_body(body: str) -> Event:
    """Parse an SQS message body holding one EventBridge event."""
    if len(body.encode("utf-8", errors="replace")) > MAX_BODY_BYTES:
        raise MalformedEvent("", "message body is larger than 256 KB")
    try:
        document = json.loads(body)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise MalformedEvent("", f"message body is not JSON: {exc}") from exc
    return parse_event(document)


def parse_event(document: object) -> Event:
    envelope = parse_envelope(document)
    if envelope.source == IVS_SOURCE and envelope.detail_type == STAGE_UPDATE:
        return _stage_update(envelope)
    if envelope.source == IVS_SOURCE and envelope.detail_type == COMPOSITION_STATE_CHANGE:
        return _composition_state_change(envelope)
    if envelope.source == IVS_SOURCE and envelope.detail_type == PARTICIPANT_RECORDING_STATE_CHANGE:
        return _recording_state_change(envelope)
    if envelope.detail_type == PARTICIPANT_FLAGGED and envelope.source != IVS_SOURCE:
        return _participant_flagged(envelope)
    raise MalformedEvent(
        "detail-type", f"{envelope.source} / {envelope.detail_type!r} is not an event stagepilot handles"
    )


def parse_envelope(document: object) -> Envelope:
    if not isinstance(document, dict):
        raise MalformedEvent("", f"event must be a JSON object, got {_type_name(document)}")
    resources = document.get("resources", [])
    if not isinstance(resources, list) or not all(isinstance(item, str) for item in resources):
        raise MalformedEvent("resources", "must be a list of strings")
    detail = document.get("detail")
    if not isinstance(detail, dict):
        raise MalformedEvent("detail", f"must be an object, got {_type_name(detail)}")
    return Envelope(
        event_id=_text(document, "id", limit=MAX_ID_LENGTH * 2),
        detail_type=_text(document, "detail-type", limit=128),
        source=_text(document, "source", limit=256),
        account=_text(document, "account", limit=12),
        region=_text(document, "region", limit=32),
        time=_time(document.get("time"), "time"),
        resources=tuple(resources),
        detail=detail,
    )


def _stage_update(envelope: Envelope) -> StageUpdate:
    detail = envelope.detail
    if not envelope.resources:
        raise MalformedEvent("resources", "must hold the stage ARN")
    stage_arn = _match(envelope.resources[0], STAGE_ARN, "resources[0]", "a stage ARN")
    event_name = _text(detail, "event_name", prefix="detail.", limit=128)
    participant_id: str | None = None
    if event_name in EVENT_NAMES_NEEDING_PARTICIPANT or "participant_id" in detail:
        participant_id = _participant_id(detail, "participant_id")
    event_time = envelope.time
    if detail.get("event_time") is not None:
        event_time = _time(detail.get("event_time"), "detail.event_time")
    return StageUpdate(
        envelope=envelope,
        stage_arn=stage_arn,
        session_id=_session_id(detail),
        event_name=event_name,
        participant_id=participant_id,
        user_id=_user_id(detail),
        time=event_time,
    )


def _composition_state_change(envelope: Envelope) -> CompositionStateChange:
    detail = envelope.detail
    if not envelope.resources:
        raise MalformedEvent("resources", "must hold the composition ARN")
    composition_arn = _match(envelope.resources[0], COMPOSITION_ARN, "resources[0]", "a composition ARN")
    stage_arn = _match(_text(detail, "stage_arn", prefix="detail."), STAGE_ARN, "detail.stage_arn", "a stage ARN")
    session_id = _session_id(detail) if detail.get("session_id") not in (None, "") else None
    return CompositionStateChange(
        envelope=envelope,
        composition_arn=composition_arn,
        stage_arn=stage_arn,
        event_name=_text(detail, "event_name", prefix="detail.", limit=128),
        session_id=session_id,
        reason=_optional_text(detail, "reason"),
        time=envelope.time,
    )


def _recording_state_change(envelope: Envelope) -> RecordingStateChange:
    detail = envelope.detail
    if not envelope.resources:
        raise MalformedEvent("resources", "must hold the stage ARN")
    return RecordingStateChange(
        envelope=envelope,
        stage_arn=_match(envelope.resources[0], STAGE_ARN, "resources[0]", "a stage ARN"),
        session_id=_session_id(detail),
        event_name=_text(detail, "event_name", prefix="detail.", limit=128),
        participant_id=_participant_id(detail, "participant_id"),
        bucket=_optional_text(detail, "recording_s3_bucket_name"),
        key_prefix=_optional_text(detail, "recording_s3_key_prefix"),
        time=envelope.time,
    )


def _participant_flagged(envelope: Envelope) -> ParticipantFlagged:
    detail = envelope.detail
    stage_arn = _match(_text(detail, "stage_arn", prefix="detail."), STAGE_ARN, "detail.stage_arn", "a stage ARN")
    return ParticipantFlagged(
        envelope=envelope,
        stage_arn=stage_arn,
        session_id=_session_id(detail),
        participant_id=_participant_id(detail, "participant_id"),
        user_id=_user_id(detail),
        reason=_optional_text(detail, "reason"),
        time=envelope.time,
        reporter=_reporter(detail),
    )


def _reporter(detail: Mapping[str, Any]) -> str | None:
    value = detail.get("reporter")
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise MalformedEvent("detail.reporter", f"must be a string, got {_type_name(value)}")
    if len(value) > MAX_REPORTER_LENGTH:
        raise MalformedEvent("detail.reporter", f"is longer than {MAX_REPORTER_LENGTH} characters")
    return value


def _text(document: Mapping[str, Any], key: str, *, prefix: str = "", limit: int = MAX_TEXT_LENGTH) -> str:
    value = document.get(key)
    if value is None:
        raise MalformedEvent(prefix + key, "is missing")
    if not isinstance(value, str):
        raise MalformedEvent(prefix + key, f"must be a string, got {_type_name(value)}")
    if not value:
        raise MalformedEvent(prefix + key, "is empty")
    if len(value) > limit:
        raise MalformedEvent(prefix + key, f"is longer than {limit} characters")
    return value


def _optional_text(detail: Mapping[str, Any], key: str) -> str | None:
    value = detail.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise MalformedEvent(f"detail.{key}", f"must be a string, got {_type_name(value)}")
    return value[:MAX_TEXT_LENGTH]


def _match(value: str, pattern: re.Pattern[str], where: str, what: str) -> str:
    if len(value) > MAX_TEXT_LENGTH or not pattern.fullmatch(value):
        raise MalformedEvent(where, f"is not {what}: {value[:80]!r}")
    return value


def _session_id(detail: Mapping[str, Any]) -> str:
    return _match(
        _text(detail, "session_id", prefix="detail.", limit=MAX_ID_LENGTH),
        SESSION_ID,
        "detail.session_id",
        "a stage session id (st-…)",
    )


def _participant_id(detail: Mapping[str, Any], key: str) -> str:
    value = _text(detail, key, prefix="detail.", limit=MAX_ID_LENGTH)
    return _match(value, PARTICIPANT_ID, f"detail.{key}", "a participant id")


def _user_id(detail: Mapping[str, Any]) -> str | None:
    value = detail.get("user_id")
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise MalformedEvent("detail.user_id", f"must be a string, got {_type_name(value)}")
    if len(value) > MAX_USER_ID_LENGTH:
        raise MalformedEvent("detail.user_id", f"is longer than {MAX_USER_ID_LENGTH} characters")
    return value


def _time(value: object, where: str) -> datetime:
    if not isinstance(value, str):
        raise MalformedEvent(where, f"must be an ISO-8601 time string, got {_type_name(value)}")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise MalformedEvent(where, f"is not an ISO-8601 time: {value[:40]!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError as exc:  # e.g. 9999-12-31T23:00:00-05:00 is past the last representable time
        raise MalformedEvent(where, f"is out of range: {value[:40]!r}") from exc


def _type_name(value: object) -> str:
    return {
        dict: "object",
        list: "array",
        str: "string",
        bool: "boolean",
        int: "number",
        float: "number",
        type(None): "null",
    }.get(type(value), type(value).__name__)
