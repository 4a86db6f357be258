"""The world the IVS real-time stand-in keeps, and the API operations over it.

``IvsWorld`` holds stages, sessions, participants, compositions and replications, applies the
time-based transitions and queues the EventBridge envelopes IVS would emit. It knows nothing about
HTTP, faults or locking: ``IvsStandIn`` (``ivs.py``) adds those and calls the ``_op_*`` methods with
the parsed request body, under its lock. An ``IvsApiError`` raised by an operation becomes the
modelled error response.

Where IVS's behaviour is undocumented, the choice made here is written next to the code (search for
"UNDOCUMENTED"). Facts come from ``shared/reference/ivs-facts.md``.
"""

from __future__ import annotations

import copy
import random
import string
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from stagepilot.local.ivs_model import (
    ENDED_COMPOSITION_STATES,
    LIVE_COMPOSITION_STATES,
    Composition,
    Destination,
    IvsApiError,
    Participant,
    Replication,
    Stage,
    StageSession,
    composition_summary_view,
    composition_view,
    event_time,
    paginate,
    participant_summary_view,
    participant_view,
    replica_view,
    session_view,
)

AUTO_STOP_AFTER = timedelta(seconds=60)  # composition stops after 60 s without a publisher [ssc]
CLEANUP_AFTER = timedelta(minutes=5)  # STOPPED/FAILED compositions vanish after 5 minutes [ssc]
MAX_REPLICATIONS_PER_PARTICIPANT = 5  # "Concurrent participant replications" [quotas]
MAX_COMPOSITIONS_PER_STAGE = 5  # "Compositions per stage" [quotas]
MAX_COMPOSITIONS_PER_ACCOUNT = 20  # "Compositions" [quotas]
_ID_ALPHABET = string.ascii_letters + string.digits


class IvsWorld:
    """State and semantics of one account/region of IVS real-time. Not thread-safe by itself."""

    def __init__(self, *, account: str, region: str, clock: Callable[[], datetime] | None, seed: int | None) -> None:
        self.account = account
        self.region = region
        self._clock = clock or (lambda: datetime.now(UTC))
        self._random = random.Random(seed)
        self._seq = 0
        self._stages: dict[str, Stage] = {}
        self._compositions: list[Composition] = []
        self._replications: list[Replication] = []
        self._missing: set[str] = set()
        self._outbox: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []  # every envelope emitted, in order
        self.operations: dict[str, Callable[[dict[str, Any], datetime], dict[str, Any]]] = {
            "GetStage": self._op_get_stage,
            "GetStageSession": self._op_get_stage_session,
            "ListStageSessions": self._op_list_stage_sessions,
            "GetParticipant": self._op_get_participant,
            "ListParticipants": self._op_list_participants,
            "ListParticipantEvents": self._op_list_participant_events,
            "StartComposition": self._op_start_composition,
            "StopComposition": self._op_stop_composition,
            "GetComposition": self._op_get_composition,
            "ListCompositions": self._op_list_compositions,
            "StartParticipantReplication": self._op_start_participant_replication,
            "StopParticipantReplication": self._op_stop_participant_replication,
            "ListParticipantReplicas": self._op_list_participant_replicas,
            "DisconnectParticipant": self._op_disconnect_participant,
        }

    # ------------------------------------------------------------------------------------ stages

    def _op_get_stage(self, params: dict[str, Any], now: datetime) -> dict[str, Any]:
        stage = self._require_stage(params["arn"])
        view: dict[str, Any] = {"arn": stage.arn, "name": stage.name, "tags": dict(stage.tags)}
        if stage.active_session_id:
            view["activeSessionId"] = stage.active_session_id
        return {"stage": view}

    def _op_get_stage_session(self, params: dict[str, Any], now: datetime) -> dict[str, Any]:
        stage = self._require_stage(params["stageArn"])
        session = stage.session(params["sessionId"])
        if session is None:
            raise IvsApiError("ResourceNotFoundException", f"session {params['sessionId']} not found")
        return {"stageSession": session_view(session)}

    def _op_list_stage_sessions(self, params: dict[str, Any], now: datetime) -> dict[str, Any]:
        # Only Validation/AccessDenied are modelled, so an unknown stage lists nothing.
        stage = self._stages.get(params["stageArn"])
        newest_first = list(reversed(stage.sessions)) if stage else []
        page, token = paginate(
            "ListStageSessions",
            newest_first,
            max_results=params.get("maxResults", 50),
            next_token=params.get("nextToken"),
            descending=True,
        )
        return _with_token({"stageSessions": [session_view(s) for s in page]}, token)

    # ------------------------------------------------------------------------------------ participants

    def _op_get_participant(self, params: dict[str, Any], now: datetime) -> dict[str, Any]:
        stage = self._require_stage(params["stageArn"])
        if stage.session(params["sessionId"]) is None:
            raise IvsApiError("ResourceNotFoundException", f"session {params['sessionId']} not found")
        p = stage.participants.get((params["sessionId"], params["participantId"]))
        if p is None:
            raise IvsApiError("ResourceNotFoundException", f"participant {params['participantId']} not found")
        return {"participant": participant_view(p)}

    def _op_list_participants(self, params: dict[str, Any], now: datetime) -> dict[str, Any]:
        filters = [
            k for k in ("filterByUserId", "filterByPublished", "filterByState", "filterByRecordingState") if k in params
        ]
        if len(filters) > 1:
            raise IvsApiError("ValidationException", f"only one filter may be used at a time, got {filters}")
        stage = self._stages.get(params["stageArn"])
        found = stage.in_session(params["sessionId"]) if stage else []
        if "filterByUserId" in params:
            found = [p for p in found if p.user_id == params["filterByUserId"]]
        if "filterByPublished" in params:
            found = [p for p in found if p.published == params["filterByPublished"]]
        if "filterByState" in params:
            found = [p for p in found if p.state == params["filterByState"]]
        if "filterByRecordingState" in params:
            found = []  # participant recording is never on in the stand-in (recordingState DISABLED)
        page, token = paginate(
            "ListParticipants",
            found,
            max_results=params.get("maxResults", 50),
            next_token=params.get("nextToken"),
        )
        return _with_token({"participants": [participant_summary_view(p) for p in page]}, token)

    def _op_list_participant_events(self, params: dict[str, Any], now: datetime) -> dict[str, Any]:
        """The participant's history as IVS summarises it, oldest first. The stand-in keeps state, not a log,
        so the history is rebuilt from it: joined, started publishing (if it ever did), stopped (if it did
        and is not publishing now), left (if disconnected). UNDOCUMENTED: the order IVS returns."""
        stage = self._stages.get(params["stageArn"])
        p = stage.participants.get((params["sessionId"], params["participantId"])) if stage else None
        history: list[str] = []
        if p is not None:
            history.append("JOINED")
            if p.published:
                history.append("PUBLISH_STARTED")
                if not p.publishing:
                    history.append("PUBLISH_STOPPED")
            if p.state == "DISCONNECTED":
                history.append("LEFT")
        when = event_time(p.first_join_time or now) if p is not None else event_time(now)
        events = [{"name": name, "participantId": params["participantId"], "eventTime": when} for name in history]
        return {"events": events[: params.get("maxResults", 50)]}  # at most four: one page

    def _op_disconnect_participant(self, params: dict[str, Any], now: datetime) -> dict[str, Any]:
        stage = self._require_stage(params["stageArn"])
        participant_id = params["participantId"]
        p = stage.participants.get((stage.active_session_id or "", participant_id))
        if p is None:
            raise IvsApiError("ResourceNotFoundException", f"participant {participant_id} not found")
        # UNDOCUMENTED: disconnecting someone already disconnected is a no-op success here.
        # Replications whose source is this participant are left alone (the docs don't say they stop).
        was_publishing = p.is_publisher
        p.state, p.publishing = "DISCONNECTED", False
        if was_publishing:
            # The kicked publisher stops publishing, which IVS reports like any unpublish.
            self._stage_event(stage, p, "Participant Unpublished", now)
        self._refresh_idle(stage, now)
        return {}

    # ------------------------------------------------------------------------------------ compositions

    def _op_start_composition(self, params: dict[str, Any], now: datetime) -> dict[str, Any]:
        token = params.get("idempotencyToken")
        if token:
            # UNDOCUMENTED: the token's scope/window. Here: while the composition it created is still
            # visible (not cleaned up), the same token returns it, whatever the other parameters.
            for c in self._compositions:
                if c.idempotency_token == token and not c.deleted:
                    return {"composition": composition_view(c)}
        stage = self._require_stage(params["stageArn"])
        destinations = params["destinations"]
        self._check_destinations(destinations)
        live = [c for c in self._compositions if c.state in LIVE_COMPOSITION_STATES]
        if sum(c.stage_arn == stage.arn for c in live) >= MAX_COMPOSITIONS_PER_STAGE:
            raise IvsApiError("ServiceQuotaExceededException", "compositions per stage quota reached")
        if len(live) >= MAX_COMPOSITIONS_PER_ACCOUNT:
            raise IvsApiError("ServiceQuotaExceededException", "compositions per account quota reached")
        composition_id = self._random_id(12)
        stage_id = stage.arn.rsplit("/", 1)[-1]
        built = []
        for config in destinations:
            destination_id = self._random_id(12)
            prefix = None
            if "s3" in config:
                prefix = f"{stage_id}/{stage.active_session_id or 'no-session'}/{composition_id}/{destination_id}"
            built.append(Destination(destination_id, config, "ACTIVE", now, recording_prefix=prefix))
        composition = Composition(
            arn=f"arn:aws:ivs:{self.region}:{self.account}:composition/{composition_id}",
            stage_arn=stage.arn,
            session_id=stage.active_session_id,
            state="STARTING",
            layout=params.get("layout") or {"grid": {}},
            destinations=built,
            tags=dict(params.get("tags") or {}),
            start_time=now,
            idempotency_token=token,
            seq=self._next_seq(),
        )
        self._compositions.append(composition)
        response = {"composition": composition_view(composition)}  # IVS answers while STARTING
        # No STARTING phase is simulated: the pipeline comes up at once (no Destination Start events).
        composition.state = "ACTIVE"
        self._composition_event(composition, "Session Start", now)
        return response

    def _check_destinations(self, destinations: list[dict[str, Any]]) -> None:
        if sum("channel" in d for d in destinations) > 1 or sum("s3" in d for d in destinations) > 1:
            raise IvsApiError("ValidationException", "at most one channel and one s3 destination")
        for index, d in enumerate(destinations):
            if ("channel" in d) == ("s3" in d):
                raise IvsApiError("ValidationException", f"destinations[{index}] needs exactly one of channel, s3")
            arns = [d["channel"]["channelArn"], d["channel"].get("encoderConfigurationArn")] if "channel" in d else []
            if "s3" in d:
                arns = [d["s3"]["storageConfigurationArn"], *d["s3"]["encoderConfigurationArns"]]
            for arn in arns:
                if arn in self._missing:
                    raise IvsApiError("ValidationException", f"{arn} does not exist")

    def _op_stop_composition(self, params: dict[str, Any], now: datetime) -> dict[str, Any]:
        composition = self._require_composition(params["arn"])
        # UNDOCUMENTED: stopping an already stopped/failed composition is a no-op success here.
        if composition.state in LIVE_COMPOSITION_STATES:
            self._end_composition(composition, now, state="STOPPED", event="Session End")
        return {}

    def _op_get_composition(self, params: dict[str, Any], now: datetime) -> dict[str, Any]:
        return {"composition": composition_view(self._require_composition(params["arn"]))}

    def _op_list_compositions(self, params: dict[str, Any], now: datetime) -> dict[str, Any]:
        stage_arn = params.get("filterByStageArn")
        encoder_arn = params.get("filterByEncoderConfigurationArn")
        found = [
            c
            for c in self._compositions
            if not c.deleted
            and (stage_arn is None or c.stage_arn == stage_arn)
            and (encoder_arn is None or encoder_arn in _encoder_arns(c))
        ]
        page, token = paginate(
            "ListCompositions",
            found,
            max_results=params.get("maxResults", 100),
            next_token=params.get("nextToken"),
        )
        return _with_token({"compositions": [composition_summary_view(c) for c in page]}, token)

    # ------------------------------------------------------------------------------------ replication

    def _op_start_participant_replication(self, params: dict[str, Any], now: datetime) -> dict[str, Any]:
        source = self._require_stage(params["sourceStageArn"])
        destination = self._require_stage(params["destinationStageArn"])
        participant_id = params["participantId"]
        if source.arn == destination.arn:
            raise IvsApiError("ValidationException", "source and destination stages must differ")
        p = source.participants.get((source.active_session_id or "", participant_id))
        if p is None or p.state != "CONNECTED":
            raise IvsApiError("ResourceNotFoundException", f"participant {participant_id} not found")
        if not p.publishing:
            # UNDOCUMENTED which error: a third-party note reports the text "<id> is not publishing";
            # ValidationException (400) is the modelled error that fits a bad request best.
            raise IvsApiError("ValidationException", f"{participant_id} is not publishing")
        active = [r for r in self._replications if r.participant_id == participant_id and r.state == "ACTIVE"]
        if any(r.source_stage_arn == source.arn and r.destination_stage_arn == destination.arn for r in active):
            # UNDOCUMENTED: a duplicate start is answered with ConflictException (409).
            raise IvsApiError("ConflictException", f"{participant_id} is already replicated to {destination.arn}")
        if len(active) >= MAX_REPLICATIONS_PER_PARTICIPANT:
            raise IvsApiError(
                "ServiceQuotaExceededException",
                f"{participant_id} already has {MAX_REPLICATIONS_PER_PARTICIPANT} concurrent replications",
            )
        destination_session = self._active_session(destination, now)
        source_session_id = p.session_id
        replication = Replication(
            source_stage_arn=source.arn,
            participant_id=participant_id,
            source_session_id=source_session_id,
            destination_stage_arn=destination.arn,
            destination_session_id=destination_session.session_id,
            reconnect_window_seconds=params.get("reconnectWindowSeconds", 0),
            attributes=dict(params.get("attributes") or {}),
            start_time=now,
            seq=self._next_seq(),
        )
        self._replications.append(replication)
        p.replication_type, p.replication_state = "SOURCE", "ACTIVE"
        replica = self._join(destination, destination_session, participant_id, now, user_id=p.user_id)
        replica.attributes = {**p.attributes, **replication.attributes}
        replica.user_id = p.user_id
        replica.state, replica.publishing, replica.published = "CONNECTED", True, True
        replica.replication_type, replica.replication_state = "REPLICA", "ACTIVE"
        replica.source_stage_arn, replica.source_session_id = source.arn, source_session_id
        self._refresh_idle(destination, now)
        self._stage_event(destination, replica, "Participant Published", now, **_replica_detail(replica))
        self._stage_event(source, p, "Participant Replication Started", now, **_destination_detail(replication))
        return {}

    def _op_stop_participant_replication(self, params: dict[str, Any], now: datetime) -> dict[str, Any]:
        source = self._require_stage(params["sourceStageArn"])
        destination = self._require_stage(params["destinationStageArn"])
        participant_id = params["participantId"]
        replication = next(
            (
                r
                for r in self._replications
                if r.state == "ACTIVE"
                and r.participant_id == participant_id
                and r.source_stage_arn == source.arn
                and r.destination_stage_arn == destination.arn
            ),
            None,
        )
        if replication is None:
            raise IvsApiError(
                "ResourceNotFoundException", f"no active replication of {participant_id} to {destination.arn}"
            )
        replication.state, replication.end_time = "STOPPED", now
        replica = destination.participants.get((replication.destination_session_id, participant_id))
        if replica is not None:
            replica.state, replica.publishing, replica.replication_state = "DISCONNECTED", False, "STOPPED"
            self._refresh_idle(destination, now)
            self._stage_event(destination, replica, "Participant Unpublished", now, **_replica_detail(replica))
        p = source.participants.get((replication.source_session_id, participant_id))
        if p is not None:
            still_active = any(
                r.state == "ACTIVE" and r.participant_id == participant_id and r.source_stage_arn == source.arn
                for r in self._replications
            )
            p.replication_state = "ACTIVE" if still_active else "STOPPED"
            self._stage_event(source, p, "Participant Replication Stopped", now, **_destination_detail(replication))
        return {}

    def _op_list_participant_replicas(self, params: dict[str, Any], now: datetime) -> dict[str, Any]:
        # ACTIVE and STOPPED replications alike (the shape carries replicationState), oldest first.
        found = [
            r
            for r in self._replications
            if r.source_stage_arn == params["sourceStageArn"] and r.participant_id == params["participantId"]
        ]
        page, token = paginate(
            "ListParticipantReplicas",
            found,
            max_results=params.get("maxResults", 50),
            next_token=params.get("nextToken"),
        )
        return _with_token({"replicas": [replica_view(r) for r in page]}, token)

    # ------------------------------------------------------------------------------------ internals

    def _now(self) -> datetime:
        return utc(self._clock())

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _random_id(self, length: int) -> str:
        return "".join(self._random.choice(_ID_ALPHABET) for _ in range(length))

    def _require_stage(self, arn: str) -> Stage:
        stage = self._stages.get(arn)
        if stage is None:
            raise IvsApiError("ResourceNotFoundException", f"stage {arn} not found")
        return stage

    def _require_composition(self, arn: str) -> Composition:
        for c in self._compositions:
            if c.arn == arn and not c.deleted:
                return c
        raise IvsApiError("ResourceNotFoundException", f"composition {arn} not found")

    def _ensure_stage(self, arn: str, now: datetime) -> Stage | None:
        if arn in self._missing:
            return None
        if arn not in self._stages:
            self._stages[arn] = Stage(arn=arn, idle_since=now)
        return self._stages[arn]

    def _active_session(self, stage: Stage, now: datetime, session_id: str | None = None) -> StageSession:
        if stage.active_session_id is not None:
            current = stage.session(stage.active_session_id)
            assert current is not None
            return current
        session = StageSession(session_id or f"st-{self._random_id(13)}", now, seq=self._next_seq())
        stage.sessions.append(session)
        stage.active_session_id = session.session_id
        return session

    def _session_for_event(self, stage: Stage, session_id: str | None, now: datetime) -> StageSession | None:
        if session_id is None or session_id == stage.active_session_id:
            return self._active_session(stage, now)
        if stage.session(session_id) is not None:
            return None  # a late event for a session that has ended
        self._end_session_locked(stage, now)
        return self._active_session(stage, now, session_id)

    def _end_session_locked(self, stage: Stage, now: datetime) -> None:
        session = stage.session(stage.active_session_id) if stage.active_session_id else None
        if session is None:
            return
        session.end_time = now
        for p in stage.in_session(session.session_id):
            p.state, p.publishing = "DISCONNECTED", False
        stage.active_session_id = None
        self._refresh_idle(stage, now)
        for c in self._compositions:
            if c.stage_arn == stage.arn and c.state in LIVE_COMPOSITION_STATES:
                self._end_composition(c, now, state="STOPPED", event="Session End")

    def _join(
        self, stage: Stage, session: StageSession, participant_id: str, now: datetime, *, user_id: str
    ) -> Participant:
        key = (session.session_id, participant_id)
        if key not in stage.participants:
            declared_user, attributes = stage.declared.get(participant_id, (user_id, {}))
            stage.participants[key] = Participant(
                participant_id=participant_id,
                session_id=session.session_id,
                user_id=declared_user or user_id,
                attributes=dict(attributes),
                first_join_time=now,
                seq=self._next_seq(),
            )
        return stage.participants[key]

    def _refresh_idle(self, stage: Stage, now: datetime) -> None:
        if stage.has_publisher():
            stage.idle_since = None
        elif stage.idle_since is None:
            stage.idle_since = now

    def _advance_locked(self, now: datetime) -> None:
        for c in self._compositions:
            stage = self._stages.get(c.stage_arn)
            if c.state in LIVE_COMPOSITION_STATES and stage is not None and stage.idle_since is not None:
                deadline = max(c.start_time, stage.idle_since) + AUTO_STOP_AFTER
                if deadline <= now:
                    self._end_composition(c, deadline, state="STOPPED", event="Session End")
            if c.state in ENDED_COMPOSITION_STATES and c.end_time and c.end_time + CLEANUP_AFTER <= now:
                c.deleted = True

    def _end_composition(
        self, c: Composition, at: datetime, *, state: str, event: str, reason: str | None = None
    ) -> None:
        c.state, c.end_time = state, at
        for d in c.destinations:
            if d.state not in ("STOPPED", "FAILED"):
                d.state, d.end_time = state, at
        self._composition_event(c, event, at, reason=reason)

    # ------------------------------------------------------------------------------------ events

    def _envelope(self, detail_type: str, resource: str, detail: dict[str, Any], at: datetime) -> None:
        envelope = {
            "version": "0",
            "id": str(uuid.UUID(int=self._random.getrandbits(128), version=4)),
            "detail-type": detail_type,
            "source": "aws.ivs",
            "account": self.account,
            "time": event_time(at),
            "region": self.region,
            "resources": [resource],
            "detail": detail,
        }
        self._outbox.append(envelope)

    def _stage_event(self, stage: Stage, p: Participant, name: str, at: datetime, **extra: Any) -> None:
        detail = {
            "session_id": p.session_id,
            "event_name": name,
            "user_id": p.user_id,
            "participant_id": p.participant_id,
            "event_time": event_time(at),
            **extra,
        }
        self._envelope("IVS Stage Update", stage.arn, detail, at)

    def _composition_event(self, c: Composition, name: str, at: datetime, *, reason: str | None = None) -> None:
        detail: dict[str, Any] = {"event_name": name, "stage_arn": c.stage_arn}
        if c.session_id:
            detail["session_id"] = c.session_id
        if reason is not None:
            detail["reason"] = reason
        self._envelope("IVS Composition State Change", c.arn, detail, at)

    def take_outbox(self) -> list[dict[str, Any]]:
        pending, self._outbox = self._outbox, []
        self.events.extend(copy.deepcopy(pending))
        return pending


def utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _with_token(body: dict[str, Any], token: str | None) -> dict[str, Any]:
    if token:
        body["nextToken"] = token
    return body


def _encoder_arns(c: Composition) -> list[str]:
    arns = []
    for d in c.destinations:
        channel = d.configuration.get("channel") or {}
        arns += [channel["encoderConfigurationArn"]] if "encoderConfigurationArn" in channel else []
        arns += (d.configuration.get("s3") or {}).get("encoderConfigurationArns", [])
    return arns


def _replica_detail(replica: Participant) -> dict[str, Any]:
    return {
        "replica": True,
        "source_stage_arn": replica.source_stage_arn,
        "source_session_id": replica.source_session_id,
    }


def _destination_detail(r: Replication) -> dict[str, Any]:
    return {
        "destination_stage_arn": r.destination_stage_arn,
        "destination_session_id": r.destination_session_id,
    }
