"""The world the IVS real-time stand-in keeps, and the API operations over it.

``IvsWorld`` holds stages, sessions, participants, compositions and replications, applies the
time-based transitions IVS makes on its own (compositions stopping, replicas ending, clean-up) and
queues the EventBridge envelopes IVS would emit. It knows nothing about HTTP, faults or locking:
``IvsStandIn`` (``ivs.py``) adds those and calls the ``_op_*`` methods with the parsed, validated
request body, under its lock. An ``IvsApiError`` raised by an operation becomes the modelled error.

Every behaviour cites what it follows; ``docs/simulate.md`` has the whole table. Where IVS's behaviour
is undocumented the choice is the one hardest on the automation, written next to the code (search for
"UNDOCUMENTED"). The facts and their sources: docs/simulate.md, "What the stand-in models".
"""

from __future__ import annotations

import copy
import heapq
import random
import re
import string
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from stagepilot.local.ivs_model import (
    LIVE_COMPOSITION_STATES,
    RECORDING_DEFAULTS,
    Composition,
    Destination,
    IvsApiError,
    Participant,
    ParticipantEvent,
    Replication,
    Stage,
    StageSession,
    composition_summary_view,
    composition_view,
    event_time,
    paginate,
    participant_event_view,
    participant_summary_view,
    participant_view,
    replica_view,
    session_view,
    stage_summary_view,
    stage_view,
)

# StartComposition API doc: "After a 1-minute timeout, when all participants are disconnected from the
# stage"; server-side composition guide: "no participant is actively publishing ... for 60 seconds".
# The guide's wording stops a composition sooner (a connected subscriber does not keep it alive), so
# that is what is modelled: 60 s after the last publisher stopped (or the composition started without one).
AUTO_STOP_AFTER = timedelta(seconds=60)
MAX_COMPOSITION_DURATION = timedelta(hours=24)  # "Composition: max duration" 24 h, not adjustable [quotas]
# A participant may publish or subscribe for 24 hours at most [quotas], not adjustable: the stand-in ends a
# connection 24 h after it began (UNDOCUMENTED whether the same token may join again: it may, as a new
# connection with 24 hours of its own).
MAX_CONNECTION_DURATION = timedelta(hours=24)
CLEANUP_AFTER = timedelta(minutes=5)  # STOPPED/FAILED compositions vanish after five minutes [ssc]
MAX_REPLICATIONS_PER_PARTICIPANT = 5  # "Concurrent participant replications" [quotas]
MAX_COMPOSITIONS_PER_STAGE = 5  # "Compositions per stage" [quotas]
MAX_COMPOSITIONS_PER_ACCOUNT = 20  # "Compositions" [quotas]
MAX_PUBLISHERS_PER_STAGE = 12  # "Stage participants (publishers)" 12, not adjustable [quotas]
# Participant recordingState values during which the stage's recording counts as "active" (UpdateStage).
# The stand-in moves a recording straight to ACTIVE and from it to STOPPED/FAILED; STARTING and STOPPING
# are listed for a world that has them (UNDOCUMENTED whether IVS counts them: it is assumed to).
RECORDING_ACTIVE_STATES = frozenset({"STARTING", "ACTIVE", "STOPPING"})
# The Destination Failure reason when a composition's channel is live already (UNDOCUMENTED text; the
# event table's example is "another broadcast was happening" [eb]).
CHANNEL_ON_AIR_REASON = "the channel already has a live stream"
SESSION_ID = re.compile(r"st-[a-zA-Z0-9]{13}")  # StageSession sessionId: "Fixed length of 16" [model]
_ID_ALPHABET = string.ascii_letters + string.digits
_ARN = re.compile(r"arn:aws:ivs:(?P<region>[a-z0-9-]+):(?P<account>[0-9]+):(?P<kind>[a-z-]+)/[a-zA-Z0-9-]+")


class IvsWorld:
    """State and semantics of one account/region of IVS real-time. Not thread-safe by itself."""

    def __init__(self, *, account: str, region: str, clock: Callable[[], datetime] | None, seed: int | None) -> None:
        self.account = account
        self.region = region
        self._clock = clock or (lambda: datetime.now(UTC))
        self._random = random.Random(seed)
        self._seq = 0
        self._stages: dict[str, Stage] = {}
        self._compositions: dict[str, Composition] = {}  # visible ones (not cleaned up), by ARN, in start order
        self._cleaned_up: list[Composition] = []
        self._live: dict[str, Composition] = {}  # STARTING/ACTIVE, by ARN
        self._cleanup: list[tuple[datetime, int, str]] = []  # heap of (when to clean up, seq, ARN)
        self._by_token: dict[str, Composition] = {}
        self._replications: dict[tuple[str, str], list[Replication]] = {}  # (source stage, participant) -> all
        self._stopping: list[Replication] = []  # active, source stopped publishing: ends unless it returns
        self._recordings_ending: list[tuple[Stage, Participant]] = []  # end after recordingReconnectWindowSeconds
        # heap of (when the connection reaches its 24 hours, seq, stage ARN, session id, participant id);
        # entries of connections that ended sooner are skipped when they come up
        self._connections: list[tuple[datetime, int, str, str, str]] = []
        self._missing: set[str] = set()
        self._encoders_on_air: set[str] = set()  # channels an encoder streams into, outside any stage
        self._followed: set[str] = set()  # ids of the envelopes the world has followed (duplicates are ignored)
        self._outbox: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []  # every envelope emitted, in order
        self.operations: dict[str, Callable[[dict[str, Any], datetime], dict[str, Any]]] = {
            "GetStage": self._op_get_stage,
            "UpdateStage": self._op_update_stage,
            "ListStages": self._op_list_stages,
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
        return {"stage": stage_view(stage)}

    def _op_update_stage(self, params: dict[str, Any], now: datetime) -> dict[str, Any]:
        stage = self._require_stage(params["arn"])
        if "name" in params:
            stage.name = params["name"]
        wanted = params.get("autoParticipantRecordingConfiguration")
        if wanted is not None:
            recorded = self.recorded_participants(stage)
            if recorded:
                # UpdateStage [model]: autoParticipantRecordingConfiguration "cannot be updated while
                # recording is active". UNDOCUMENTED which error IVS answers: ValidationException (400)
                # here, the hardest on the automation: it is also the answer to a configuration IVS can
                # never take (a storage configuration that does not exist), so a caller cannot tell the
                # two apart by the code and must ask IVS who is being recorded (ListParticipants
                # filterByRecordingState). Refused while any participant of any session of the stage is
                # recorded: a publisher who left stays recorded for recordingReconnectWindowSeconds.
                raise IvsApiError(
                    "ValidationException",
                    "autoParticipantRecordingConfiguration cannot be updated while recording is active "
                    f"({len(recorded)} participant(s) recorded: {', '.join(sorted(recorded))})",
                )
            self.set_recording_locked(stage, wanted)
        return {"stage": stage_view(stage)}

    @staticmethod
    def recorded_participants(stage: Stage) -> set[str]:
        """The ids of the stage's participants whose individual recording is active (any session)."""
        return {p.participant_id for p in stage.participants.values() if p.recording_state in RECORDING_ACTIVE_STATES}

    def set_recording_locked(self, stage: Stage, wanted: dict[str, Any]) -> None:
        """Apply an autoParticipantRecordingConfiguration. storageConfigurationArn "" turns recording off
        and resets every other member to its default [model]. UNDOCUMENTED whether members left out of an
        update keep their value or are reset: they keep it here (a merge), the harder case: a caller that
        sends only what it wants does not undo what someone else changed in the members it left out."""
        storage = wanted.get("storageConfigurationArn")
        if storage:
            self._require_local_arn(storage, "autoParticipantRecordingConfiguration.storageConfigurationArn")
            if storage in self._missing:
                raise IvsApiError("ValidationException", f"{storage} does not exist")
        if storage == "":
            stage.recording = copy.deepcopy(RECORDING_DEFAULTS)
            return
        merged = copy.deepcopy(stage.recording)
        for key, value in wanted.items():
            if isinstance(value, dict):
                merged[key] = {**merged.get(key, {}), **copy.deepcopy(value)}
            else:
                merged[key] = copy.deepcopy(value)
        stage.recording = merged

    def _op_list_stages(self, params: dict[str, Any], now: datetime) -> dict[str, Any]:
        page, token = paginate(
            "ListStages",
            sorted(self._stages.values(), key=lambda s: s.seq),
            max_results=params.get("maxResults", 50),
            next_token=params.get("nextToken"),
        )
        return _with_token({"stages": [stage_summary_view(s) for s in page]}, token)

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
            # "published": whether the participant ever published to the stage session [model]
            found = [p for p in found if p.published == params["filterByPublished"]]
        if "filterByState" in params:
            found = [p for p in found if p.state == params["filterByState"]]
        if "filterByRecordingState" in params:
            found = [p for p in found if p.recording_state == params["filterByRecordingState"]]
        page, token = paginate(
            "ListParticipants",
            found,
            max_results=params.get("maxResults", 50),
            next_token=params.get("nextToken"),
        )
        return _with_token({"participants": [participant_summary_view(p) for p in page]}, token)

    def _op_list_participant_events(self, params: dict[str, Any], now: datetime) -> dict[str, Any]:
        """The participant's history, oldest first. UNDOCUMENTED: the order IVS returns; callers must
        not depend on it (the automation compares event times)."""
        stage = self._stages.get(params["stageArn"])
        p = stage.participants.get((params["sessionId"], params["participantId"])) if stage else None
        page, token = paginate(
            "ListParticipantEvents",
            p.history if p is not None else [],
            max_results=params.get("maxResults", 50),
            next_token=params.get("nextToken"),
        )
        return _with_token({"events": [participant_event_view(params["participantId"], e) for e in page]}, token)

    def _op_disconnect_participant(self, params: dict[str, Any], now: datetime) -> dict[str, Any]:
        stage = self._require_stage(params["stageArn"])
        participant_id = params["participantId"]
        p = stage.participants.get((stage.active_session_id or "", participant_id))
        if p is None:
            raise IvsApiError("ResourceNotFoundException", f"participant {participant_id} not found")
        # "This token was disconnected by the DisconnectParticipant API. This token can no longer be used."
        # (Web SDK StageLeftReason.PARTICIPANT_DISCONNECTED): the participant id (token) is revoked.
        stage.revoked.add(participant_id)
        # UNDOCUMENTED: disconnecting someone already disconnected is a no-op success here.
        self._leave(stage, p, now)
        return {}

    # ------------------------------------------------------------------------------------ compositions

    def _op_start_composition(self, params: dict[str, Any], now: datetime) -> dict[str, Any]:
        token = params.get("idempotencyToken")
        if token and token in self._by_token:
            # UNDOCUMENTED: the token's scope/window. Here: while the composition it created is still
            # visible (not cleaned up), the same token returns it, whatever the other parameters.
            return {"composition": composition_view(self._by_token[token])}
        stage = self._require_stage(params["stageArn"])
        destinations = params["destinations"]
        self._check_destinations(destinations)
        if sum(c.stage_arn == stage.arn for c in self._live.values()) >= MAX_COMPOSITIONS_PER_STAGE:
            raise IvsApiError("ServiceQuotaExceededException", "compositions per stage quota reached")
        if len(self._live) >= MAX_COMPOSITIONS_PER_ACCOUNT:
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
        self._compositions[composition.arn] = composition
        self._live[composition.arn] = composition
        if token:
            self._by_token[token] = composition
        response = {"composition": composition_view(composition)}  # IVS answers while STARTING
        # No STARTING phase is simulated: the pipeline comes up at once (no Destination Start events).
        composition.state = "ACTIVE"
        self._composition_event(composition, "Session Start", now)
        for d in built:
            if d.kind == "channel" and self.channel_on_air(d.configuration["channel"]["channelArn"], composition):
                # channelArn [model]: "The channel must be offline (not broadcasting)." What IVS does when it
                # is not is the Destination Failure event [eb]: "broadcasting to a channel failed because ...
                # another broadcast was happening". UNDOCUMENTED whether StartComposition refuses it instead
                # (ConflictException is in its error list, mapped to nothing): it does not here. The start
                # succeeds and the channel destination fails at once, the harder case: the caller holds a
                # composition that never reaches its channel, learns it only from an event (which may be
                # lost) or GetComposition, and the composition lives on if it records to S3 as well.
                self.fail_destination_locked(composition, "channel", CHANNEL_ON_AIR_REASON, now)
        return response

    def channel_on_air(self, channel_arn: str, starting: Composition | None = None) -> bool:
        """Whether the channel takes a stream already: an encoder streams into it, or another live
        composition's channel destination does. An IVS channel takes one stream at a time."""
        if channel_arn in self._encoders_on_air:
            return True
        return any(
            d.kind == "channel" and d.state == "ACTIVE" and d.configuration["channel"]["channelArn"] == channel_arn
            for c in self._live.values()
            if c is not starting
            for d in c.destinations
        )

    def _check_destinations(self, destinations: list[dict[str, Any]]) -> None:
        # "A Composition can contain either one destination (channel or s3) or two (one channel and one s3)."
        if sum("channel" in d for d in destinations) > 1 or sum("s3" in d for d in destinations) > 1:
            raise IvsApiError("ValidationException", "at most one channel and one s3 destination")
        for index, d in enumerate(destinations):
            if ("channel" in d) == ("s3" in d):
                raise IvsApiError("ValidationException", f"destinations[{index}] needs exactly one of channel, s3")
            arns = [d["channel"]["channelArn"], d["channel"].get("encoderConfigurationArn")] if "channel" in d else []
            if "s3" in d:
                arns = [d["s3"]["storageConfigurationArn"], *d["s3"]["encoderConfigurationArns"]]
            for arn in filter(None, arns):
                # channelArn / encoderConfigurationArn docs: "must be in the same AWS account and region"
                self._require_local_arn(arn, f"destinations[{index}]")
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
            for c in self._compositions.values()
            if (stage_arn is None or c.stage_arn == stage_arn)
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
        # UNDOCUMENTED whether replication may cross accounts or regions (an aws-cli example does);
        # StartComposition's ARNs "must be in the same AWS account and region", and the contract says
        # IVS refuses foreign ARNs: refused here with ValidationException.
        self._require_local_arn(params["destinationStageArn"], "destinationStageArn")
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
        active = [r for r in self._all_replications_of(participant_id) if r.state == "ACTIVE"]
        if any(r.source_stage_arn == source.arn and r.destination_stage_arn == destination.arn for r in active):
            # UNDOCUMENTED: a duplicate start is answered with ConflictException (409).
            raise IvsApiError("ConflictException", f"{participant_id} is already replicated to {destination.arn}")
        if len(active) >= MAX_REPLICATIONS_PER_PARTICIPANT:
            raise IvsApiError(
                "ServiceQuotaExceededException",
                f"{participant_id} already has {MAX_REPLICATIONS_PER_PARTICIPANT} concurrent replications",
            )
        if destination.publisher_count() >= MAX_PUBLISHERS_PER_STAGE:
            # UNDOCUMENTED: a replica publishes in the destination, so it counts against its 12 publishers.
            raise IvsApiError("ServiceQuotaExceededException", f"{destination.arn} already has 12 publishers")
        destination_session = self._active_session(destination, now)
        replication = Replication(
            source_stage_arn=source.arn,
            participant_id=participant_id,
            source_session_id=p.session_id,
            destination_stage_arn=destination.arn,
            destination_session_id=destination_session.session_id,
            reconnect_window_seconds=params.get("reconnectWindowSeconds", 0),
            attributes=dict(params.get("attributes") or {}),
            start_time=now,
            seq=self._next_seq(),
        )
        self._replications.setdefault((source.arn, participant_id), []).append(replication)
        p.replication_type, p.replication_state = "SOURCE", "ACTIVE"
        self._log(
            p,
            "REPLICATION_STARTED",
            now,
            destination_stage_arn=destination.arn,
            destination_session_id=destination_session.session_id,
        )
        replica = self._join(destination, destination_session, participant_id, now, user_id=p.user_id)
        replica.attributes = {**p.attributes, **replication.attributes}
        replica.user_id = p.user_id
        if replica.state != "CONNECTED" or replica.connected_at is None:
            self._connected(destination, replica, now)
        replica.publishing, replica.published = True, True
        replica.replication_type, replica.replication_state = "REPLICA", "ACTIVE"
        replica.source_stage_arn, replica.source_session_id = source.arn, p.session_id
        self._log(replica, "PUBLISH_STARTED", now, replica=True)
        self._start_recording(destination, replica, now)
        self._refresh_idle(destination, now)
        # Only the documented Stage Update fields (session_id, event_name, participant_id, user_id): no
        # IVS document shows a replica flag or the other stage on these events, so the automation must
        # ask IVS (GetParticipant replicationType, ListParticipantReplicas).
        self._stage_event(destination, replica, "Participant Published", now)
        self._stage_event(source, p, "Participant Replication Started", now, documented_only=True)
        return {}

    def _op_stop_participant_replication(self, params: dict[str, Any], now: datetime) -> dict[str, Any]:
        source = self._require_stage(params["sourceStageArn"])
        destination = self._require_stage(params["destinationStageArn"])
        participant_id = params["participantId"]
        replication = next(
            (
                r
                for r in self._replications.get((source.arn, participant_id), [])
                if r.state == "ACTIVE" and r.destination_stage_arn == destination.arn
            ),
            None,
        )
        if replication is None:
            raise IvsApiError(
                "ResourceNotFoundException", f"no active replication of {participant_id} to {destination.arn}"
            )
        self._end_replication(replication, now)
        return {}

    def _op_list_participant_replicas(self, params: dict[str, Any], now: datetime) -> dict[str, Any]:
        # ACTIVE and STOPPED replications alike (the shape carries replicationState), oldest first.
        page, token = paginate(
            "ListParticipantReplicas",
            self._replications.get((params["sourceStageArn"], params["participantId"]), []),
            max_results=params.get("maxResults", 50),
            next_token=params.get("nextToken"),
        )
        return _with_token({"replicas": [replica_view(r) for r in page]}, token)

    # ------------------------------------------------------------------------------------ what IVS does on its own

    def next_transition(self) -> datetime | None:
        """When IVS will next change something on its own (a composition or replica ending, a clean-up)."""
        due: list[datetime] = [self._replica_deadline(r) for r in self._stopping]
        due += [p.recording_stops_at for _, p in self._recordings_ending if p.recording_stops_at is not None]
        due += [self._composition_deadline(c) for c in self._live.values()]
        if self._cleanup:
            due.append(self._cleanup[0][0])
        self._drop_ended_connections()
        if self._connections:
            due.append(self._connections[0][0])
        return min(due, default=None)

    def _advance_locked(self, now: datetime) -> None:
        """Apply what IVS does on its own up to ``now``, in time order, each at the moment it happens."""
        while True:
            moment = self.next_transition()
            if moment is None or moment > now:
                return
            for r in [r for r in self._stopping if self._replica_deadline(r) <= moment]:
                # "the publisher stopped and the reconnect window expired" [repl]
                self._end_replication(r, moment)
            for stage, p in [(s, p) for s, p in self._recordings_ending if (p.recording_stops_at or moment) <= moment]:
                self._end_recording(stage, p, moment, failed=False)
            for c in [c for c in self._live.values() if self._composition_deadline(c) <= moment]:
                self._end_composition(c, moment, state="STOPPED", event="Session End")
            while self._connections and self._connections[0][0] <= moment:
                _, _, stage_arn, session_id, participant_id = heapq.heappop(self._connections)
                holder = self._stages.get(stage_arn)
                connected = holder.participants.get((session_id, participant_id)) if holder is not None else None
                if holder is not None and connected is not None and self._connection_deadline(connected) == moment:
                    self._leave(holder, connected, moment)  # its 24 hours are over [quotas]
            while self._cleanup and self._cleanup[0][0] <= moment:
                _, _, arn = heapq.heappop(self._cleanup)
                gone = self._compositions.pop(arn, None)
                if gone is not None:
                    gone.deleted = True
                    self._cleaned_up.append(gone)
                    if gone.idempotency_token and self._by_token.get(gone.idempotency_token) is gone:
                        del self._by_token[gone.idempotency_token]

    def _composition_deadline(self, c: Composition) -> datetime:
        deadline = c.start_time + MAX_COMPOSITION_DURATION
        stage = self._stages.get(c.stage_arn)
        if stage is not None and stage.idle_since is not None:
            deadline = min(deadline, max(c.start_time, stage.idle_since) + AUTO_STOP_AFTER)
        return deadline

    @staticmethod
    def _connection_deadline(p: Participant) -> datetime | None:
        if p.state != "CONNECTED" or p.connected_at is None:
            return None
        return p.connected_at + MAX_CONNECTION_DURATION

    def _drop_ended_connections(self) -> None:
        """Forget heap entries of connections that ended before their 24 hours (left, disconnected)."""
        while self._connections:
            at, _, stage_arn, session_id, participant_id = self._connections[0]
            stage = self._stages.get(stage_arn)
            p = stage.participants.get((session_id, participant_id)) if stage is not None else None
            if p is not None and self._connection_deadline(p) == at:
                return
            heapq.heappop(self._connections)

    @staticmethod
    def _replica_deadline(r: Replication) -> datetime:
        assert r.source_stopped_at is not None
        return r.source_stopped_at + timedelta(seconds=r.reconnect_window_seconds)

    # ------------------------------------------------------------------------------------ internals

    def _now(self) -> datetime:
        return utc(self._clock())

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _random_id(self, length: int) -> str:
        return "".join(self._random.choice(_ID_ALPHABET) for _ in range(length))

    def is_local_arn(self, arn: str) -> bool:
        match = _ARN.fullmatch(arn)
        return match is not None and match["account"] == self.account and match["region"] == self.region

    def _require_local_arn(self, arn: str, where: str) -> None:
        if not self.is_local_arn(arn):
            raise IvsApiError(
                "ValidationException",
                f"{where}: {arn} must be in the same AWS account and region as the stage "
                f"({self.account}, {self.region})",
            )

    def _require_stage(self, arn: str) -> Stage:
        stage = self._stages.get(arn)
        if stage is None:
            raise IvsApiError("ResourceNotFoundException", f"stage {arn} not found")
        return stage

    def _require_composition(self, arn: str) -> Composition:
        composition = self._compositions.get(arn)
        if composition is None:
            raise IvsApiError("ResourceNotFoundException", f"composition {arn} not found")
        return composition

    def _ensure_stage(self, arn: str, now: datetime) -> Stage | None:
        if arn in self._missing or not self.is_local_arn(arn):
            return None
        if arn not in self._stages:
            self._stages[arn] = Stage(arn=arn, idle_since=now, seq=self._next_seq())
        return self._stages[arn]

    def _all_replications_of(self, participant_id: str) -> list[Replication]:
        return [r for (_, pid), rs in self._replications.items() if pid == participant_id for r in rs]

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
        # An event of a session we have not seen: the scenario says the previous one is over.
        self._end_session_locked(stage, now)
        return self._active_session(stage, now, session_id)

    def _end_session_locked(self, stage: Stage, now: datetime) -> None:
        """Everyone left: the session ends. Compositions are the stage's, not the session's: they stop
        60 s later unless someone publishes again (in the next session) within the minute."""
        session = stage.session(stage.active_session_id) if stage.active_session_id else None
        if session is None:
            return
        for p in stage.in_session(session.session_id):
            if p.state == "CONNECTED":
                self._leave(stage, p, now, end_session_when_empty=False)
        session.end_time = now
        stage.active_session_id = None
        self._refresh_idle(stage, now)

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
            self._connected(stage, stage.participants[key], now)
            self._log(stage.participants[key], "JOINED", now)
        return stage.participants[key]

    def _publish(self, stage: Stage, p: Participant, now: datetime) -> None:
        if p.is_publisher:
            return
        if stage.publisher_count() >= MAX_PUBLISHERS_PER_STAGE:
            # "Stage participants (publishers)": 12 "publishing to a stage at once" [quotas]; the 13th
            # cannot publish (STAGE_AT_CAPACITY in the SDK; QUOTA_EXCEEDED in its participant events).
            self._log(p, "PUBLISH_ERROR", now, error_code="QUOTA_EXCEEDED")
            return
        p.publishing = p.published = True
        self._log(p, "PUBLISH_STARTED", now)
        self._start_recording(stage, p, now)
        for r in self._source_replications(stage, p):
            if r.source_stopped_at is not None:  # back within the reconnect window: the replica carries on
                r.source_stopped_at = None
                self._stopping.remove(r)

    def _unpublish(self, stage: Stage, p: Participant, now: datetime) -> None:
        if not p.publishing:
            return
        p.publishing = False
        self._log(p, "PUBLISH_STOPPED", now)
        self._stop_recording(stage, p, now)
        for r in self._source_replications(stage, p):
            if r.reconnect_window_seconds == 0:
                self._end_replication(r, now)  # reconnectWindowSeconds defaults to 0: the replica ends at once
            elif r.source_stopped_at is None:
                r.source_stopped_at = now
                self._stopping.append(r)

    def _leave(self, stage: Stage, p: Participant, now: datetime, *, end_session_when_empty: bool = True) -> None:
        """The participant disconnects (left, was disconnected, or its session ended)."""
        if p.state != "CONNECTED":
            return
        was_publishing = p.publishing
        # A source that leaves (or is kicked) stops publishing: its replicas end like on any stop, after
        # the reconnect window. UNDOCUMENTED whether IVS waits out the window for a participant that can
        # never return (a revoked token); it is waited out here, the harder case: a kicked publisher's
        # replica stays on air unless the automation stops it.
        if was_publishing:
            # UNDOCUMENTED whether IVS sends Participant Unpublished when a publisher leaves or is kicked;
            # it is sent here (the publish did stop), so subscribers of the event see the stop.
            self._stage_event(stage, p, "Participant Unpublished", now)
        self._unpublish(stage, p, now)
        p.state = "DISCONNECTED"
        self._log(p, "LEFT", now)
        if p.replication_type == "REPLICA":
            for r in self._replications.get((p.source_stage_arn or "", p.participant_id), []):
                if r.state == "ACTIVE" and r.destination_stage_arn == stage.arn:
                    self._end_replication(r, now)
        self._refresh_idle(stage, now)
        if end_session_when_empty and stage.active_session_id == p.session_id and not stage.anyone_connected():
            self._end_session_locked(stage, now)

    def _source_replications(self, stage: Stage, p: Participant) -> list[Replication]:
        return [
            r
            for r in self._replications.get((stage.arn, p.participant_id), [])
            if r.state == "ACTIVE" and r.source_session_id == p.session_id
        ]

    def _end_replication(self, r: Replication, at: datetime) -> None:
        if r.state != "ACTIVE":
            return
        r.state, r.end_time = "STOPPED", at
        if r.source_stopped_at is not None:
            r.source_stopped_at = None
            self._stopping.remove(r)
        destination = self._stages.get(r.destination_stage_arn)
        replica = destination.participants.get((r.destination_session_id, r.participant_id)) if destination else None
        if destination is not None and replica is not None and replica.state == "CONNECTED":
            replica.replication_state = "STOPPED"
            self._leave(destination, replica, at)
        source = self._stages.get(r.source_stage_arn)
        p = source.participants.get((r.source_session_id, r.participant_id)) if source else None
        if source is not None and p is not None:
            still_active = any(x.state == "ACTIVE" for x in self._replications.get((source.arn, r.participant_id), []))
            p.replication_state = "ACTIVE" if still_active else "STOPPED"
            self._log(
                p,
                "REPLICATION_STOPPED",
                at,
                destination_stage_arn=r.destination_stage_arn,
                destination_session_id=r.destination_session_id,
            )
            self._stage_event(source, p, "Participant Replication Stopped", at, documented_only=True)

    # individual participant recording [ipr] --------------------------------------------------------------

    def _records(self, stage: Stage, p: Participant) -> bool:
        config = stage.recording
        if not config.get("storageConfigurationArn") or config.get("mediaTypes") == ["NONE"]:
            return False
        return p.replication_type != "REPLICA" or bool(config.get("recordParticipantReplicas", True))

    def _start_recording(self, stage: Stage, p: Participant, now: datetime) -> None:
        if p.recording_stops_at is not None:  # back within recordingReconnectWindowSeconds: one recording
            p.recording_stops_at = None
            self._recordings_ending = [(s, x) for s, x in self._recordings_ending if x is not p]
            return
        if not self._records(stage, p):
            return
        storage = stage.recording["storageConfigurationArn"]
        stage_id = stage.arn.rsplit("/", 1)[-1]
        p.recording_bucket = f"ivs-recordings-{storage.rsplit('/', 1)[-1].lower()}"
        p.recording_prefix = f"{stage_id}/{p.session_id}/{p.participant_id}/{now:%Y-%m-%dT%H-%M-%SZ}"
        if storage in self._missing:
            # "Recording Start Failure": the recording could not start (e.g. the bucket is missing) [eb]
            p.recording_state = "FAILED"
            self._recording_event(stage, p, "Recording Start Failure", now)
            return
        p.recording_state = "ACTIVE"
        self._recording_event(stage, p, "Recording Start", now)

    def start_recording_locked(self, stage: Stage, p: Participant, now: datetime) -> bool:
        """IVS starts recording this participant (the ``recording`` directive): with the stage's storage
        configuration when it has one. Returns whether it was not recorded before."""
        if p.recording_state == "ACTIVE":
            return False
        p.recording_stops_at = None
        self._recordings_ending = [(s, x) for s, x in self._recordings_ending if x is not p]
        storage = stage.recording.get("storageConfigurationArn") or "directive"
        stage_id = stage.arn.rsplit("/", 1)[-1]
        p.recording_bucket = f"ivs-recordings-{storage.rsplit('/', 1)[-1].lower()}"
        p.recording_prefix = f"{stage_id}/{p.session_id}/{p.participant_id}/{now:%Y-%m-%dT%H-%M-%SZ}"
        p.recording_state = "ACTIVE"
        self._recording_event(stage, p, "Recording Start", now)
        return True

    def stop_recording_locked(self, stage: Stage, p: Participant, now: datetime) -> bool:
        """IVS stops recording this participant now (``Recording End``). Returns whether it was recorded."""
        if p.recording_state != "ACTIVE":
            return False
        self._end_recording(stage, p, now, failed=False)
        return True

    def _stop_recording(self, stage: Stage, p: Participant, now: datetime) -> None:
        if p.recording_state != "ACTIVE":
            return
        # "Recording End events ... are delayed by at least recordingReconnectWindowSeconds" [ipr]
        window = int(stage.recording.get("recordingReconnectWindowSeconds", 0))
        p.recording_stops_at = now + timedelta(seconds=window)
        self._recordings_ending.append((stage, p))
        if window == 0:
            self._end_recording(stage, p, now, failed=False)

    def _end_recording(self, stage: Stage, p: Participant, at: datetime, *, failed: bool) -> None:
        self._recordings_ending = [(s, x) for s, x in self._recordings_ending if x is not p]
        p.recording_stops_at = None
        p.recording_state = "FAILED" if failed else "STOPPED"
        self._recording_event(stage, p, "Recording End Failure" if failed else "Recording End", at)

    def _recording_event(self, stage: Stage, p: Participant, name: str, at: datetime) -> None:
        """``IVS Participant Recording State Change``, with the fields of the official sample [ipr]."""
        detail = {
            "session_id": p.session_id,
            "event_name": name,
            "participant_id": p.participant_id,
            "recording_s3_bucket_name": p.recording_bucket,
            "recording_s3_key_prefix": p.recording_prefix,
        }
        self._envelope("IVS Participant Recording State Change", stage.arn, detail, at)

    def _refresh_idle(self, stage: Stage, now: datetime) -> None:
        if stage.has_publisher():
            stage.idle_since = None
        elif stage.idle_since is None:
            stage.idle_since = now

    def _end_composition(
        self, c: Composition, at: datetime, *, state: str, event: str, reason: str | None = None
    ) -> None:
        """The composition ends: ``STOPPED`` (a stop, its 24 hours, the idle minute) ends each destination still
        live first, with a ``Destination End`` each ("output to a destination completed" [eb]), then the
        session (``Session End``); ``FAILED`` fails them with the session (``Session Failure``)."""
        c.state, c.end_time = state, at
        self._live.pop(c.arn, None)
        heapq.heappush(self._cleanup, (at + CLEANUP_AFTER, c.seq, c.arn))
        for d in c.destinations:
            if d.state not in ("STOPPED", "FAILED"):
                d.state, d.end_time = state, at
                if state == "STOPPED":
                    self._composition_event(c, "Destination End", at)
        self._composition_event(c, event, at, reason=reason)

    def fail_destination_locked(self, c: Composition, kind: str | None, reason: str, now: datetime) -> bool:
        """One live destination of ``c`` (the first, or the one of ``kind``: channel or s3) fails, with the
        ``Destination Failure`` event; "IVS keeps the composition alive if at least one of its destinations
        is active" [ssc], else it fails (``Session Failure``). Returns whether a destination failed.
        UNDOCUMENTED whether the event names the destination: it does not here (only ``reason``), so the
        automation must ask GetComposition which one failed."""
        target = next((d for d in c.destinations if d.state == "ACTIVE" and kind in (None, d.kind)), None)
        if c.arn not in self._live or target is None:
            return False
        target.state, target.end_time = "FAILED", now
        self._composition_event(c, "Destination Failure", now, reason=reason)
        if not any(d.state == "ACTIVE" for d in c.destinations):
            self._end_composition(c, now, state="FAILED", event="Session Failure", reason=reason)
        return True

    def _delete_stage_locked(self, arn: str, now: datetime) -> None:
        """DeleteStage: the stage's compositions end ("failed due to stage deletion", the ko/ja event
        table; UNDOCUMENTED which of Session End / Failure: Failure, which invites a restart that must
        then find the stage gone), its replications in and out end, and the stage is gone."""
        stage = self._stages.get(arn)
        if stage is None:
            return
        for c in [c for c in self._live.values() if c.stage_arn == arn]:
            self._end_composition(c, now, state="FAILED", event="Session Failure", reason="stage deleted")
        for rs in self._replications.values():
            for r in rs:
                if r.state == "ACTIVE" and arn in (r.source_stage_arn, r.destination_stage_arn):
                    self._end_replication(r, now)
        if stage.active_session_id:
            self._end_session_locked(stage, now)
        del self._stages[arn]
        self._missing.add(arn)

    def _log(self, p: Participant, name: str, at: datetime, **fields: Any) -> None:
        p.history.append(ParticipantEvent(name=name, time=at, seq=self._next_seq(), **fields))

    def _connected(self, stage: Stage, p: Participant, at: datetime) -> None:
        """A connection of ``p`` begins (a join, the same token back): it lasts 24 hours at most [quotas]."""
        p.state = "CONNECTED"
        p.connected_at = at
        heapq.heappush(
            self._connections,
            (at + MAX_CONNECTION_DURATION, self._next_seq(), stage.arn, p.session_id, p.participant_id),
        )

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

    def _stage_event(
        self, stage: Stage, p: Participant, name: str, at: datetime, *, documented_only: bool = False
    ) -> None:
        """An ``IVS Stage Update``: the documented detail fields, plus ``event_time`` (seen on real captured
        Published/Unpublished events; not on the replication events, whose fields nothing documents)."""
        detail = {
            "session_id": p.session_id,
            "event_name": name,
            "user_id": p.user_id,
            "participant_id": p.participant_id,
        }
        if not documented_only:
            detail["event_time"] = event_time(at)
        self._envelope("IVS Stage Update", stage.arn, detail, at)

    def _composition_event(self, c: Composition, name: str, at: datetime, *, reason: str | None = None) -> None:
        """``IVS Composition State Change``: ``resources[0]`` is the composition, ``detail.stage_arn`` the
        stage, a ``reason`` on failures. No session id: a composition belongs to the stage."""
        detail: dict[str, Any] = {"event_name": name, "stage_arn": c.stage_arn}
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
