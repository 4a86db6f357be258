"""In-process stand-in for the Amazon IVS real-time API (``ivs-realtime``).

A real boto3 client talks to it: the stand-in sits on botocore's ``before-send`` hook (the mechanism
moto uses), so botocore still validates parameters, serializes the request and parses the response
(errors included) exactly as it does against AWS. The stand-in keeps a small world: stages, their
sessions and participants, compositions and participant replications, driven by the tests (or by
``stagepilot simulate``) through ``observe()`` and friends, and it emits the EventBridge events IVS
would send through ``on_event``.

Where IVS's behaviour is undocumented, the choice made here is written next to the code (search for
"UNDOCUMENTED"). The facts and their sources: docs/simulate.md, "What the stand-in models".
"""

from __future__ import annotations

import copy
import io
import json
import math
import sys
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from botocore.awsrequest import AWSPreparedRequest, AWSResponse, HeadersDict
from botocore.client import BaseClient
from botocore.config import Config

from stagepilot.local.clients import local_client
from stagepilot.local.ivs_keys import CREATE_TOKEN_RATE, JoinResult, KeyPairTokensWorld
from stagepilot.local.ivs_model import (
    SERVICE_NAME,
    Call,
    Composition,
    IvsApiError,
    Participant,
    Replication,
    Stage,
    error_statuses,
    operation_names,
    validate_request,
)
from stagepilot.local.ivs_world import CHANNEL_ON_AIR_REASON, SESSION_ID, IvsWorld, utc

__all__ = ["Call", "IvsStandIn"]

MUTATING_OPERATIONS = frozenset(
    {
        "StartComposition",
        "StopComposition",
        "StartParticipantReplication",
        "StopParticipantReplication",
        "DisconnectParticipant",
        "UpdateStage",
    }
)
OBSERVED_STAGE_EVENTS = frozenset({"Participant Published", "Participant Unpublished", "Participant Publish Error"})
THROTTLING = "ThrottlingException"


class _RawBody(io.BytesIO):
    """What ``AWSResponse.raw`` must offer botocore: a ``stream()``."""

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.getvalue()


class IvsStandIn(IvsWorld, KeyPairTokensWorld):
    """A fake IVS real-time service for one account and region. Thread-safe (one lock)."""

    def __init__(
        self,
        *,
        account: str = "123456789012",
        region: str = "us-east-1",
        clock: Callable[[], datetime] | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(account=account, region=region, clock=clock, seed=seed)
        self._on_event = on_event
        self._lock = threading.RLock()
        self._failures: dict[str, deque[str]] = {}
        self._rate_limits: dict[str, float] = {}
        self._admitted: dict[str, deque[datetime]] = {}
        self._outages: list[tuple[datetime, datetime]] = []
        self.calls: list[Call] = []
        self._init_keys()
        self.operations.update(self.key_operations())
        self._rate_limits["CreateParticipantToken"] = CREATE_TOKEN_RATE
        self._triggers = threading.local()
        # Every request of a client answered here first waits this (LocalDeployment: an AWS call's virtual
        # latency, docs/simulate.md); None: calls are instant.
        self.call_delay: Callable[[], None] | None = None

    @property
    def trigger(self) -> str | None:
        """Set by whoever drives the stand-in (LocalDeployment): why the calls now being made are made
        ("event", "retry", "reconcile"); recorded on each Call. Per thread: each function container and
        the convergence pass run as actors of their own (local/scheduler.py), side by side."""
        value: str | None = getattr(self._triggers, "value", None)
        return value

    @trigger.setter
    def trigger(self, value: str | None) -> None:
        self._triggers.value = value

    # ------------------------------------------------------------------------------------ clients

    def client(self, *, config: Config | None = None) -> BaseClient:
        """A real boto3 ``ivs-realtime`` client (dummy credentials) answered by this stand-in.

        By default botocore does not retry (``total_max_attempts=1``), so ``fail_next(op, 1)`` is
        seen by the caller exactly once; pass ``config`` to test retry behaviour.
        """
        config = config or Config(retries={"mode": "standard", "total_max_attempts": 1})
        client: BaseClient = local_client(SERVICE_NAME, region=self.region, config=config)
        self.attach(client)
        return client

    def attach(self, client: BaseClient) -> None:
        """Answer every request of ``client`` (an ``ivs-realtime`` client) from this stand-in."""
        service_id = client.meta.service_model.service_id.hyphenize()
        if service_id != SERVICE_NAME:
            raise ValueError(f"not an {SERVICE_NAME} client: {service_id}")
        client.meta.events.register_first(
            f"before-send.{SERVICE_NAME}", self._on_send, unique_id=f"stagepilot-ivs-standin-{id(self)}"
        )
        _without_moto(client)

    # ------------------------------------------------------------------------------------ world

    def create_stage(self, stage_arn: str, *, name: str = "", tags: dict[str, str] | None = None) -> None:
        """Make the stage exist (idempotent; undoes ``missing(stage_arn)``)."""
        with self._lock:
            self._missing.discard(stage_arn)
            stage = self._ensure_stage(stage_arn, self._now())
            if stage is not None:
                stage.name = name or stage.name
                stage.tags.update(tags or {})

    def declare_participant(
        self,
        stage_arn: str,
        participant_id: str,
        *,
        user_id: str = "",
        attributes: dict[str, str] | None = None,
    ) -> None:
        """Record a participant token's user id and attributes (what GetParticipant reports)."""
        with self._lock:
            stage = self._ensure_stage(stage_arn, self._now())
            if stage is None:
                return
            stage.declared[participant_id] = (user_id, dict(attributes or {}))
            for p in stage.participants.values():
                if p.participant_id == participant_id and p.replication_type != "REPLICA":
                    p.user_id, p.attributes = user_id, dict(attributes or {})

    def connect(
        self,
        stage_arn: str,
        participant_id: str,
        *,
        user_id: str = "",
        attributes: dict[str, str] | None = None,
        publish: bool = False,
    ) -> str | None:
        """A client joins the stage's session (a new one when none is active) with a token for
        ``participant_id``, and publishes if ``publish``. IVS sends no event for a join (only for a publish),
        so a subscriber is known to stagepilot from IVS's listings alone. Returns the session id; None when
        IVS refuses the join (no such stage, or a token DisconnectParticipant revoked)."""
        with self._lock:
            now = self._now()
            self._advance_locked(now)
            stage = self._ensure_stage(stage_arn, now)
            if stage is None or participant_id in stage.revoked:
                return None
            stage.declared[participant_id] = (user_id, dict(attributes or {}))
            session = self._active_session(stage, now)
            p = self._join(stage, session, participant_id, now, user_id=user_id)
            if p.state != "CONNECTED":
                self._connected(stage, p, now)
                self._log(p, "JOINED", now)
            if publish:
                self._publish(stage, p, now)
            self._refresh_idle(stage, now)
            pending = self.take_outbox()
        self._emit(pending)
        return session.session_id

    def join(self, token: str, *, publish: bool = False) -> JoinResult:
        """A client joins with ``token`` (and publishes): IVS checks the token (local/ivs_keys.py), then the
        participant connects; a publish its token does not allow is refused with INSUFFICIENT_CAPABILITIES."""
        with self._lock:
            now = self._now()
            self._advance_locked(now)
            result, stage, grant = self.join_token(token, publish=publish, now=now)
            if stage is None or grant is None:
                return result
            stage.declared[grant.participant_id] = (grant.user_id, dict(grant.attributes))
            session = self._active_session(stage, now)
            p = self._join(stage, session, grant.participant_id, now, user_id=grant.user_id)
            if p.state != "CONNECTED":
                self._connected(stage, p, now)
                self._log(p, "JOINED", now)
            published, error = False, None
            if publish and "PUBLISH" in grant.capabilities:
                self._publish(stage, p, now)
                published = p.publishing
                if published:
                    self._stage_event(stage, p, "Participant Published", now)
            elif publish:
                error = "INSUFFICIENT_CAPABILITIES"
                self._log(p, "PUBLISH_ERROR", now, error_code=error)
                self._stage_event(stage, p, "Participant Publish Error", now)
            self._refresh_idle(stage, now)
            pending = self.take_outbox()
        self._emit(pending)
        return JoinResult(
            refused=None,
            participant_id=grant.participant_id,
            stage_arn=grant.stage_arn,
            session_id=session.session_id,
            published=published,
            publish_error=error,
        )

    def observe(self, event: dict[str, Any]) -> bool:
        """Follow an EventBridge envelope describing what a participant did (IVS Stage Update
        Participant Published / Unpublished / Publish Error). Returns whether the world changed.

        Starts the stage/session named by the event if needed; a session id other than the active
        one ends the active session first. Ignored, as IVS could never have produced them: events for a
        session that already ended (late, out of order), an envelope already followed (same ``id``: a
        duplicate delivery), a participant whose token DisconnectParticipant revoked, a replica (the
        stand-in makes those itself), stages of another account or region, session ids that are not
        16 characters. A 13th publisher cannot publish (12 per stage).
        """
        detail = event.get("detail")
        if not isinstance(detail, dict) or event.get("detail-type") != "IVS Stage Update":
            return False
        name = detail.get("event_name")
        resources = event.get("resources")
        participant_id = detail.get("participant_id")
        session_id = detail.get("session_id")
        if name not in OBSERVED_STAGE_EVENTS or not isinstance(resources, list) or not resources:
            return False
        if not isinstance(participant_id, str) or not participant_id or not isinstance(resources[0], str):
            return False
        if not isinstance(session_id, str) or not SESSION_ID.fullmatch(session_id):
            return False
        event_id = event.get("id")
        with self._lock:
            if isinstance(event_id, str):
                if event_id in self._followed:
                    return False
                self._followed.add(event_id)
            now = self._now()
            self._advance_locked(now)
            changed = self._follow_locked(resources[0], session_id, participant_id, name, detail, now)
            pending = self.take_outbox()
        self._emit(pending)
        return changed

    def _follow_locked(
        self, stage_arn: str, session_id: str, participant_id: str, name: str, detail: dict[str, Any], now: datetime
    ) -> bool:
        stage = self._ensure_stage(stage_arn, now)
        if stage is None or participant_id in stage.revoked:
            return False
        session = self._session_for_event(stage, session_id, now)
        if session is None:
            return False
        existing = stage.participants.get((session.session_id, participant_id))
        if existing is not None and existing.replication_type == "REPLICA":
            return False
        user_id = detail.get("user_id") if isinstance(detail.get("user_id"), str) else ""
        p = self._join(stage, session, participant_id, now, user_id=user_id or "")
        if p.state != "CONNECTED":  # the same token back in the same session (not revoked)
            self._connected(stage, p, now)
            self._log(p, "JOINED", now)
        if name == "Participant Published":
            self._publish(stage, p, now)
        elif name == "Participant Unpublished":
            self._unpublish(stage, p, now)
        else:
            self._log(p, "PUBLISH_ERROR", now, error_code=detail.get("error_code") or "INTERNAL_SERVER_EXCEPTION")
        self._refresh_idle(stage, now)
        return True

    def leave(self, stage_arn: str, participant_id: str) -> bool:
        """The participant disconnects from the stage's active session; when the last one has left, the
        session ends. Returns whether it was connected."""
        with self._lock:
            now = self._now()
            self._advance_locked(now)
            stage = self._stages.get(stage_arn)
            p = stage.participants.get((stage.active_session_id or "", participant_id)) if stage else None
            connected = p is not None and p.state == "CONNECTED"
            if stage is not None and p is not None:
                self._leave(stage, p, now)
            pending = self.take_outbox()
        self._emit(pending)
        return connected

    def end_session(self, stage_arn: str) -> None:
        """Everyone leaves: the active session ends. The stage's compositions stop a minute later unless
        someone publishes again within it."""
        with self._lock:
            now = self._now()
            self._advance_locked(now)
            stage = self._stages.get(stage_arn)
            if stage is not None:
                self._end_session_locked(stage, now)
            pending = self.take_outbox()
        self._emit(pending)

    def delete_stage(self, stage_arn: str) -> None:
        """DeleteStage: compositions fail, replications in and out end, the stage is gone."""
        with self._lock:
            now = self._now()
            self._advance_locked(now)
            self._delete_stage_locked(stage_arn, now)
            pending = self.take_outbox()
        self._emit(pending)

    def set_stage_recording(self, stage_arn: str, configuration: dict[str, Any]) -> None:
        """Someone else's UpdateStage (the operator's console, another script): the stage's
        autoParticipantRecordingConfiguration changes behind stagepilot's back. Not recorded as a call."""
        with self._lock:
            stage = self._stages.get(stage_arn)
            if stage is None:
                raise ValueError(f"no stage {stage_arn}")
            self.set_recording_locked(stage, configuration)

    def set_participant_recording(self, stage_arn: str, participant_id: str, *, active: bool) -> bool:
        """IVS starts (``active``) or stops recording a participant of the stage's active session, with
        the ``IVS Participant Recording State Change`` event it sends (``Recording Start`` / ``End``).
        Returns whether the recording state changed (False: no such participant, or already so)."""
        with self._lock:
            now = self._now()
            self._advance_locked(now)
            stage = self._stages.get(stage_arn)
            p = stage.participants.get((stage.active_session_id or "", participant_id)) if stage else None
            changed = False
            if stage is not None and p is not None:
                if active and p.state == "CONNECTED":
                    changed = self.start_recording_locked(stage, p, now)
                elif not active:
                    changed = self.stop_recording_locked(stage, p, now)
            pending = self.take_outbox()
        self._emit(pending)
        return changed

    def fail_recordings(self, stage_arn: str) -> None:
        """Every active participant recording on the stage ends with failure ("Recording End Failure")."""
        with self._lock:
            now = self._now()
            self._advance_locked(now)
            stage = self._stages.get(stage_arn)
            for p in stage.in_session(stage.active_session_id) if stage else []:
                if stage is not None and p.recording_state == "ACTIVE":
                    self._end_recording(stage, p, now, failed=True)
            pending = self.take_outbox()
        self._emit(pending)

    def fail_destination(
        self, composition_arn: str, *, kind: str | None = None, reason: str = "broadcast to the channel failed"
    ) -> None:
        """One destination of a live composition fails (``Destination Failure``): the first active one, or
        the one of ``kind`` (``channel`` or ``s3``). "IVS keeps the composition alive if at least one of its
        destinations is active" [ssc]; with none left it fails."""
        with self._lock:
            now = self._now()
            self._advance_locked(now)
            c = self._live.get(composition_arn)
            if c is not None:
                self.fail_destination_locked(c, kind, reason, now)
            pending = self.take_outbox()
        self._emit(pending)

    def fail_destinations(self, stage_arn: str, *, kind: str, reason: str | None = None) -> int:
        """The ``kind`` destination (``channel`` or ``s3``) of every live composition on the stage fails (the
        ``destination-failure`` directive). Returns how many failed."""
        why = reason or (CHANNEL_ON_AIR_REASON if kind == "channel" else "access denied to the bucket")
        with self._lock:
            now = self._now()
            self._advance_locked(now)
            failed = sum(
                self.fail_destination_locked(c, kind, why, now)
                for c in [c for c in self._live.values() if c.stage_arn == stage_arn]
            )
            pending = self.take_outbox()
        self._emit(pending)
        return failed

    def encoder_on_air(self, channel_arn: str, *, on_air: bool = True) -> bool:
        """An encoder outside any stage starts (or stops) streaming into the channel (RTMPS ingest). While it
        streams, a composition that starts with that channel as a destination has its channel destination
        fail at once (``Destination Failure``, docs/simulate.md). A channel takes one stream at a time;
        UNDOCUMENTED what IVS does with an encoder's stream into a channel a composition streams into: it is
        refused here (returns False) and the composition keeps the channel."""
        with self._lock:
            self._advance_locked(self._now())
            if not on_air:
                self._encoders_on_air.discard(channel_arn)
                return True
            if self.channel_on_air(channel_arn) and channel_arn not in self._encoders_on_air:
                return False
            self._encoders_on_air.add(channel_arn)
            return True

    def fail_compositions(self, stage_arn: str, *, reason: str = "internal error") -> list[dict[str, Any]]:
        """Every STARTING/ACTIVE composition on the stage fails; returns the Session Failure envelopes."""
        with self._lock:
            now = self._now()
            self._advance_locked(now)
            before = len(self._outbox)
            for c in [c for c in self._live.values() if c.stage_arn == stage_arn]:
                self._end_composition(c, now, state="FAILED", event="Session Failure", reason=reason)
            failures = self._outbox[before:]
            pending = self.take_outbox()
        self._emit(pending)
        return copy.deepcopy(failures)

    def advance(self, to: datetime | None = None) -> None:
        """Process time-based transitions up to ``to`` (default: the clock).

        Every API call and ``observe()`` also does this first, so the state always matches the clock.
        """
        with self._lock:
            self._advance_locked(utc(to) if to is not None else self._now())
            pending = self.take_outbox()
        self._emit(pending)

    def next_transition(self) -> datetime | None:
        """When IVS will next change something on its own (a driver advances its clock to it)."""
        with self._lock:
            return super().next_transition()

    def missing(self, arn: str) -> None:
        """Make a stage / channel / encoder- or storage-configuration ARN not exist."""
        with self._lock:
            self._missing.add(arn)
            self._stages.pop(arn, None)

    # ------------------------------------------------------------------------------------ faults

    def fail_next(self, operation: str, count: int = 1, *, error: str = "InternalServerException") -> None:
        """The next ``count`` calls of ``operation`` fail with ``error`` (a modelled IVS error or
        ``ThrottlingException``), with the HTTP status the model gives it (429 for throttling)."""
        _check_operation(operation)
        if error != THROTTLING and error not in error_statuses():
            raise ValueError(f"{error} is not an ivs-realtime error; use one of {sorted(error_statuses())}")
        with self._lock:
            self._failures.setdefault(operation, deque()).extend([error] * count)

    def outage(self, start: datetime, seconds: float) -> None:
        """From ``start``, for ``seconds``, every call fails with HTTP 500 ``InternalServerException``."""
        if seconds <= 0:
            raise ValueError("an outage lasts more than 0 seconds")
        with self._lock:
            self._outages.append((utc(start), utc(start) + timedelta(seconds=seconds)))

    def set_rate_limit(self, operation: str, calls_per_second: float) -> None:
        """Allow at most ``calls_per_second`` calls of ``operation`` per sliding second of the
        stand-in's clock; the excess gets HTTP 429 ``ThrottlingException``. ``math.inf`` removes it."""
        _check_operation(operation)
        if calls_per_second < 0:
            raise ValueError("calls_per_second must be >= 0")
        with self._lock:
            if math.isinf(calls_per_second):
                self._rate_limits.pop(operation, None)
            else:
                self._rate_limits[operation] = calls_per_second

    # ------------------------------------------------------------------------------------ reads

    def mutating_calls(self) -> list[Call]:
        """Successful StartComposition, StopComposition, Start/StopParticipantReplication and
        DisconnectParticipant calls, in the order received."""
        with self._lock:
            return [c for c in self.calls if c.operation in MUTATING_OPERATIONS and c.status == 200]

    def stage(self, stage_arn: str) -> Stage | None:
        with self._lock:
            return copy.deepcopy(self._stages.get(stage_arn))

    def compositions(self, stage_arn: str | None = None, *, include_deleted: bool = False) -> list[Composition]:
        with self._lock:
            every = [*self._compositions.values(), *(self._cleaned_up if include_deleted else [])]
            return copy.deepcopy(
                sorted((c for c in every if stage_arn is None or c.stage_arn == stage_arn), key=lambda c: c.seq)
            )

    def participants(self, stage_arn: str, session_id: str | None = None) -> list[Participant]:
        """Participants of ``session_id`` (default: the active session, else the latest one)."""
        with self._lock:
            stage = self._stages.get(stage_arn)
            if stage is None:
                return []
            if session_id is None:
                session_id = stage.active_session_id or (stage.sessions[-1].session_id if stage.sessions else None)
            return copy.deepcopy(stage.in_session(session_id))

    def replicas(
        self,
        source_stage_arn: str | None = None,
        participant_id: str | None = None,
        *,
        destination_stage_arn: str | None = None,
        active_only: bool = False,
    ) -> list[Replication]:
        with self._lock:
            return copy.deepcopy(
                [
                    r
                    for rs in self._replications.values()
                    for r in rs
                    if (source_stage_arn is None or r.source_stage_arn == source_stage_arn)
                    and (participant_id is None or r.participant_id == participant_id)
                    and (destination_stage_arn is None or r.destination_stage_arn == destination_stage_arn)
                    and (not active_only or r.state == "ACTIVE")
                ]
            )

    # ------------------------------------------------------------------------------------ HTTP

    def _on_send(self, request: AWSPreparedRequest, **_: Any) -> AWSResponse:
        if self.call_delay is not None:
            self.call_delay()  # the request's way there: IVS sees (and meters) it when it arrives
        body = request.body or b"{}"
        if hasattr(body, "read"):
            body = body.read()
        status, headers, payload = self.handle_http(urlsplit(request.url).path, body)
        return AWSResponse(request.url, status, HeadersDict(headers), _RawBody(payload))

    def handle_http(self, path: str, body: bytes | str) -> tuple[int, dict[str, str], bytes]:
        """Answer one rest-json request (``POST /<Operation>``): (status, headers, body).

        The boto3 hook above and the HTTP endpoint (``local/ivs_server.py``) both come through here.
        """
        operation = path.strip("/")
        try:
            params = json.loads(body.decode() if isinstance(body, bytes) else body or "{}")
        except (ValueError, UnicodeDecodeError):
            params = None
        if not isinstance(params, dict):
            return (
                400,
                {"Content-Type": "application/json", "x-amzn-ErrorType": "ValidationException"},
                json.dumps({"exceptionMessage": "request body is not a JSON object"}).encode(),
            )
        with self._lock:
            now = self._now()
            self._advance_locked(now)
            status, payload, error_code = self._dispatch(operation, params, now)
            self.calls.append(Call(operation, params, status, now, self.trigger))
            pending = self.take_outbox()
        self._emit(pending)
        headers = {"Content-Type": "application/json", "x-amzn-RequestId": str(uuid.uuid4())}
        if error_code:
            headers["x-amzn-ErrorType"] = error_code
        return status, headers, json.dumps(payload).encode()

    def attach_session(self, session: Any) -> None:
        """Serve every ivs-realtime client a boto3/botocore session creates (e.g. ``boto3.DEFAULT_SESSION``)."""
        events = session.events if hasattr(session, "events") else session.get_component("event_emitter")
        events.register_first("before-send.ivs-realtime", self._on_send)

    def _dispatch(
        self, operation: str, params: dict[str, Any], now: datetime
    ) -> tuple[int, dict[str, Any], str | None]:
        if any(start <= now < end for start, end in self._outages):
            return 500, {"exceptionMessage": "injected outage: IVS is unavailable"}, "InternalServerException"
        if not self._admit(operation, now):
            return 429, {"message": "Rate exceeded"}, THROTTLING
        queued = self._failures.get(operation)
        if queued:
            code = queued.popleft()
            status = 429 if code == THROTTLING else error_statuses()[code]
            return status, {"exceptionMessage": f"injected {code} for {operation}"}, code
        handler = self.operations.get(operation)
        if handler is None:
            message = f"the IVS stand-in does not implement {operation}"
            return 501, {"message": message}, "NotImplemented"
        outbox_before = len(self._outbox)
        try:
            validate_request(operation, params)  # what the service checks beyond botocore (max, pattern, enum)
            return 200, handler(params, now), None
        except IvsApiError as exc:
            del self._outbox[outbox_before:]  # a failed call changes nothing
            return error_statuses()[exc.code], {"exceptionMessage": exc.message}, exc.code

    def _admit(self, operation: str, now: datetime) -> bool:
        limit = self._rate_limits.get(operation)
        if limit is None:
            return True
        if limit == 0:
            return False
        # A sliding window of one second holding ``limit`` calls; below 1 call/s the window widens so
        # that one call per 1/limit seconds passes.
        window = timedelta(seconds=max(1.0, 1 / limit))
        admitted = self._admitted.setdefault(operation, deque())
        while admitted and admitted[0] <= now - window:
            admitted.popleft()
        if len(admitted) >= max(limit, 1.0):
            return False
        admitted.append(now)
        return True

    def _emit(self, pending: list[dict[str, Any]]) -> None:
        # Outside the lock, so a callback may call back into the stand-in.
        if self._on_event is not None:
            for envelope in pending:
                self._on_event(envelope)


def _without_moto(client: BaseClient) -> None:
    """botocore asks every ``before-send`` hook of a request and takes the first answer, so with moto loaded
    (``LocalDeployment``'s table) moto's hook also saw each request the stand-in answers: it matched the URL
    against every service moto fakes and answered 404, which botocore dropped (a sixth of an IVS call's CPU).
    The stand-in answers every request of this client: moto's hook comes off it."""
    moto_models = sys.modules.get("moto.core.models")
    stubber = getattr(moto_models, "botocore_stubber", None)
    if stubber is not None:
        client.meta.events.unregister("before-send", stubber)


def _check_operation(operation: str) -> None:
    if operation not in operation_names():
        raise ValueError(f"{operation} is not an ivs-realtime operation")
