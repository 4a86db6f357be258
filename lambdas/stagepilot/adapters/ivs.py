"""The IVS real-time API, as the automations need it.

Owns the boto3 ``ivs-realtime`` client: paces every call at the container's share of each operation's
5-TPS account quota (``stagepilot.budget``), follows ``nextToken`` (these list operations have no boto3
paginator) and turns AWS errors into the project's exceptions, decided once here:

- 5xx and throttling (429; the functions' client leaves no retry to botocore, ``FUNCTION_CLIENT_CONFIG``)
  → ``RetryLater`` (a throttled call only after it was sent again in-process: ``IvsStage._call``);
- ``ServiceQuotaExceededException`` (402, a resource limit, not a throttle) → ``IvsQuotaExceeded``, an
  ``IvsRejected``: reported, not retried;
- ``ValidationException``/``ResourceNotFoundException``/``AccessDenied``/``PendingVerification`` →
  ``IvsRejected`` (a ``ConfigurationError``: the same request cannot succeed later);
- ``ConflictException`` (409) → ``IvsConflict``; callers decide.
"""

from __future__ import annotations

import copy
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from stagepilot import budget
from stagepilot.errors import ConfigurationError, RetryLater

if TYPE_CHECKING:
    from mypy_boto3_ivs_realtime import IvsrealtimeClient

# CompositionState [model]: STARTING | ACTIVE | STOPPING | FAILED | STOPPED. Only the first two are live: IVS
# keeps listing a STOPPED or FAILED composition for about five minutes after it ends [ssc].
ACTIVE_COMPOSITION_STATES = frozenset({"STARTING", "ACTIVE"})
# A participant's recordingState while its recording holds the stage's settings: UpdateStage's
# autoParticipantRecordingConfiguration "cannot be updated while recording is active" [model].
RECORDING_ACTIVE_STATES = frozenset({"STARTING", "ACTIVE", "STOPPING"})
# The CLI's client: botocore retries a throttled or failed request itself (an operator's command, paced at
# ``budget.OPERATOR_PER_SECOND``; botocore's retries are outside that pacer: docs/performance.md, section 3).
CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=10)
# The functions' client: botocore does not retry, so every request that leaves goes through the pacer and
# stays within the container's share of the quota. A throttled call is tried again in ``IvsStage._call``
# after a jittered wait; any other transient failure is the event's redelivery (claims make it safe).
# The IVS stand-in's clients default to the same, so what the tests see is what the functions do.
FUNCTION_CLIENT_CONFIG = Config(
    retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=5, read_timeout=10
)

_RETRYABLE_CODES = frozenset(
    {
        "InternalServerException",
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "ServiceUnavailable",
        "RequestTimeout",
    }
)
_THROTTLE_CODES = frozenset({"ThrottlingException", "Throttling", "TooManyRequestsException"})
# 402 in IVS's model: "Request would cause a service quota to be exceeded" (compositions per account, per
# stage...). A limit on resources, not on the call rate: sending it again in a second cannot help.
_QUOTA_CODES = frozenset({"ServiceQuotaExceededException"})
READ_RETRIES = 3  # without a deadline: a throttled read is sent again this many times
THROTTLE_RETRIES = 3  # a throttled call is sent again at most this many times in one invocation
THROTTLE_WAIT = (1.0, 3.0)  # seconds, jittered: long enough for IVS's one-second window to pass
# What an invocation must still have left after the wait to send the call again (a call's own read
# timeout is 10 s, FUNCTION_CLIENT_CONFIG; the record's audit and claim writes follow it).
THROTTLE_TIME_NEEDED = 15.0
_REJECTED_CODES = frozenset(
    {"ValidationException", "ResourceNotFoundException", "AccessDeniedException", "PendingVerification"}
)


class IvsRejected(ConfigurationError):
    """IVS refused the request for a reason retrying cannot fix."""

    def __init__(self, operation: str, code: str, message: str) -> None:
        super().__init__(f"{operation}: {code}: {message}")
        self.operation = operation
        self.code = code
        self.ivs_message = message

    @property
    def not_found(self) -> bool:
        return self.code == "ResourceNotFoundException"


class IvsQuotaExceeded(IvsRejected):
    """402 ``ServiceQuotaExceededException``: the request would exceed an IVS resource quota (e.g. 20
    compositions per account, 5 per stage). Reported like any rejection (audited with IVS's reason,
    counted), not retried: it is not a throttle."""


class IvsConflict(ConfigurationError):
    """409: the request conflicts with the resource's current state."""

    def __init__(self, operation: str, message: str) -> None:
        super().__init__(f"{operation}: ConflictException: {message}")
        self.operation = operation
        self.ivs_message = message


class Pacer:
    """Paces this process's IVS calls, separately for each operation (IVS's quotas are per operation).

    ``shares`` (``stagepilot.budget.container_shares``): for each operation, the calls this container may
    send in any sliding window of ``window`` seconds: one number (any time), or one per frame of the
    operation's rotation (wall-clock frames of ``frame`` seconds; a container sends only in the first
    ``send_span`` seconds of a frame whose number is not 0). A true bound: never more than that many calls
    in any window, whenever they are asked for. Any operation not in ``shares`` is spaced at ``rates``'
    rate for it, else at ``rate`` (one call per ``1 / rate`` seconds: the door's CreateParticipantToken).

    After IVS throttles an operation (``throttled``), this container sends it at most once per
    ``SLOWED_SPACING`` seconds until ``RECOVERY_SECONDS`` pass without another throttle.

    An invocation starts (``invocation_started``): nothing is sent until one window after it. Reserved
    concurrency caps how many invocations run at once, not how many environments hold pacers (a deploy
    brings one more; docs/performance.md, section 3), and the environment an invocation lands in may not
    be the one that just sent from that concurrency slot: a window after its start, every call the slot's
    previous invocations sent has left it, so the slots' calls never exceed their shares.
    """

    SLOWED_SPACING = 2 * budget.WINDOW_SECONDS
    RECOVERY_SECONDS = 30.0

    def __init__(
        self,
        rate: float,
        *,
        rates: Mapping[str, float] | None = None,
        shares: Mapping[str, tuple[int, ...]] | None = None,
        window: float = budget.WINDOW_SECONDS,
        frame: float = budget.FRAME_SECONDS,
        send_span: float = budget.SEND_SPAN,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0 or any(r <= 0 for r in (rates or {}).values()):
            raise ValueError("a pacer's rates must be > 0")
        if any(not calls or min(calls) < 0 or max(calls) < 1 for calls in (shares or {}).values()):
            raise ValueError("a pacer's shares must allow at least one call")
        self._interval = 1.0 / rate
        self._intervals = {key: 1.0 / r for key, r in (rates or {}).items()}
        self._shares = dict(shares or {})
        self._window = window
        self._frame = frame
        self._span = send_span
        self._clock = clock
        self._sleep = sleep
        self._next: dict[str, float] = {}
        self._sent: dict[str, deque[float]] = {}
        self._slowed_until: dict[str, float] = {}
        self._quiet_until = 0.0  # one window after the current invocation started
        self._lock = threading.Lock()

    @classmethod
    def for_caller(
        cls,
        caller: str | None,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Pacer:
        """The pacer a function's container builds (``handlers/wiring.budget_pacer``; the local deployment
        and the burst benchmark build theirs here too, on their virtual clock): each IVS operation at this
        container's share of it (``stagepilot.budget``). A function that does not say which caller it is
        sends one call of each operation a window, in no frame: never more."""
        shares = budget.container_shares(caller) if caller is not None else {}
        return cls(budget.CONSERVATIVE_CALLS / budget.WINDOW_SECONDS, shares=shares, clock=clock, sleep=sleep)

    def rate(self, key: str) -> float:
        """The average calls per second this pacer allows ``key`` (its bound is per window: ``share``)."""
        calls = self._shares.get(key)
        if calls is None:
            return 1.0 / self._intervals.get(key, self._interval)
        if len(calls) == 1:
            return calls[0] / self._window
        return sum(calls) / (len(calls) * self._frame)

    def share(self, key: str) -> tuple[int, ...] | None:
        return self._shares.get(key)

    def throttled(self, key: str) -> None:
        """IVS throttled ``key``: slow it down in this container until it has been quiet a while."""
        with self._lock:
            self._slowed_until[key] = self._clock() + self.RECOVERY_SECONDS

    def slowed(self, key: str) -> bool:
        return self._slowed_until.get(key, 0.0) > self._clock()

    def invocation_started(self) -> None:
        """An invocation starts in this environment: its first call of any operation waits until one window
        has passed (the class docstring says why)."""
        with self._lock:
            self._quiet_until = self._clock() + self._window

    def wait(self, key: str = "") -> float:
        """Wait until ``key`` may be sent; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            start = self._reserve(key, now)
        if start > now:
            self._sleep(start - now)
            return start - now
        return 0.0

    def _reserve(self, key: str, now: float) -> float:
        calls = self._shares.get(key)
        now = max(now, self._quiet_until)
        if calls is None:
            start = max(now, self._next.get(key, 0.0))
            self._next[key] = start + self._intervals.get(key, self._interval)
            return start
        sent = self._sent.setdefault(key, deque())
        start = max(now, sent[-1]) if sent else now
        if self._slowed_until.get(key, 0.0) > now and sent:
            start = max(start, sent[-1] + self.SLOWED_SPACING)
        horizon = max(self._window, self._frame)
        while sent and sent[0] <= start - horizon:
            sent.popleft()
        while True:
            if len(calls) == 1:
                recent = [t for t in sent if t > start - self._window + 1e-9]  # (float: the window's own end)
                if len(recent) < calls[0]:
                    break
                start = recent[-calls[0]] + self._window
                continue
            number = math.floor(start / self._frame + 1e-9)  # a frame's own start is in it
            opens = number * self._frame
            allowed = calls[number % len(calls)]
            if allowed and start - opens < self._span and sum(1 for t in sent if t >= opens - 1e-9) < allowed:
                break
            number += 1
            while not calls[number % len(calls)]:
                number += 1
            start = number * self._frame
        sent.append(start)
        return start


@dataclass(frozen=True)
class CompositionSummary:
    """A composition as ``ListCompositions`` lists it (or ``GetComposition`` returns it). Ended ones are
    listed too, for about five minutes: only ``active`` ones are live."""

    arn: str
    stage_arn: str
    state: str
    tags: Mapping[str, str]
    destination_states: tuple[str, ...] = ()  # each destination's state (ACTIVE, FAILED, ...), as listed
    end_time: datetime | None = None  # when IVS ended it (STOPPED or FAILED)
    start_time: datetime | None = None
    # GetComposition only (a listing has no configuration): each destination's kind (channel or s3), in
    # the order of ``destination_states``, and the S3 destination's recording prefix
    destination_kinds: tuple[str, ...] = ()
    recording_prefix: str | None = None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_COMPOSITION_STATES


@dataclass(frozen=True)
class PublishTimes:
    """A participant's publishing as its events tell it (``IvsStage.publish_times``)."""

    publishing: bool
    started_at: datetime | None  # its last publish's start
    stopped_at: datetime | None  # when that publish stopped (None while it publishes, or if it never did)


@dataclass(frozen=True)
class Participant:
    """A participant as ``GetParticipant`` or ``ListParticipants`` returns it (a listing has no attributes)."""

    participant_id: str
    user_id: str | None
    state: str
    published: bool
    attributes: Mapping[str, str]
    replication_type: str | None  # SOURCE | REPLICA | NONE
    source_stage_arn: str | None
    recording_state: str | None = None  # individual participant recording: ACTIVE, STOPPED, FAILED, DISABLED...
    source_session_id: str | None = None  # a replica's: the session of its source stage

    @property
    def is_replica(self) -> bool:
        """The one rule for replicas (docs/policy.md), from IVS's own answer — GetParticipant or
        ListParticipants, whichever the caller has: ``replicationType`` REPLICA, or, in an answer that
        carries no replication type, a ``sourceStageArn``. Event bodies never decide it: IVS documents
        no replica field on its events, and a body in a queue can say anything."""
        if self.replication_type:
            return self.replication_type == "REPLICA"
        return bool(self.source_stage_arn)


@dataclass(frozen=True)
class Replica:
    """A participant replica as ``ListParticipantReplicas`` lists it."""

    source_stage_arn: str
    participant_id: str
    destination_stage_arn: str
    destination_session_id: str | None
    state: str
    source_session_id: str | None = None


@dataclass(frozen=True)
class StageInfo:
    """A stage as ``GetStage`` or ``ListStages`` returns it: ``active_session_id`` is None when idle."""

    arn: str
    name: str
    active_session_id: str | None


@dataclass(frozen=True)
class StageSession:
    """A stage session as ``GetStageSession`` returns it (``end_time`` None while it runs)."""

    session_id: str
    start_time: Any  # datetime, as botocore parses it
    end_time: Any


class IvsStage:
    """The IVS real-time operations stagepilot uses. ``client`` is a boto3 ``ivs-realtime`` client."""

    def __init__(
        self,
        client: IvsrealtimeClient,
        *,
        pacer: Pacer | None = None,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self._client = client
        self._pacer = pacer
        self._sleep = sleep
        self._jitter = jitter
        # Seconds the current invocation has left (Lambda's remaining time), set per invocation by the
        # handler; None: no deadline (the CLI), so a throttled call is sent again THROTTLE_RETRIES times.
        self.time_left: Callable[[], float] | None = None

    def invocation_started(self) -> None:
        """A function's invocation starts (``handlers/wiring``): the pacer's quiet window (``Pacer``)."""
        if self._pacer is not None:
            self._pacer.invocation_started()

    def on_client(self, client: IvsrealtimeClient) -> IvsStage:
        """The same adapter (its pacing included) over another client: another function's credentials."""
        other = IvsStage(client, pacer=self._pacer, sleep=self._sleep, jitter=self._jitter)
        other.time_left = self.time_left
        return other

    def paced(self, pacer: Pacer) -> IvsStage:
        """This adapter paced by ``pacer``: one container's share of the quota (LocalDeployment). A copy,
        so whatever was set on this one (a test's replaced method) holds on it too."""
        paced = copy.copy(self)
        paced._pacer = pacer
        return paced

    # reads -----------------------------------------------------------------------------------------
    def get_stage(self, stage_arn: str) -> dict[str, Any] | None:
        """GetStage's ``stage``; None when the stage does not exist (deleted: no session, no settings)."""
        try:
            stage: dict[str, Any] = self._call("GetStage", arn=stage_arn)["stage"]
        except IvsRejected as exc:
            if exc.not_found:
                return None
            raise
        return stage

    def active_session_id(self, stage_arn: str) -> str | None:
        stage = self.get_stage(stage_arn)
        return (stage.get("activeSessionId") or None) if stage is not None else None

    def stage(self, stage_arn: str) -> StageInfo | None:
        """GetStage; None when the stage does not exist."""
        stage = self.get_stage(stage_arn)
        if stage is None:
            return None
        return StageInfo(arn=stage["arn"], name=stage.get("name") or "", active_session_id=stage.get("activeSessionId"))

    def stages(self) -> list[StageInfo]:
        """Every stage, live or idle, from ListStages (one call per 100 stages)."""
        return [
            StageInfo(arn=s["arn"], name=s.get("name") or "", active_session_id=s.get("activeSessionId") or None)
            for s in self._paginate("ListStages", "stages", {"maxResults": 100})
        ]

    def live_stages(self) -> list[StageInfo]:
        """Every stage with an active session, from ListStages (one call per 100 stages)."""
        return [s for s in self.stages() if s.active_session_id]

    def all_compositions(self) -> list[CompositionSummary]:
        """Every composition of the account and region, ended ones included (one call per 100: at most 20
        are live at once, and those that ended in the last five minutes are listed beside them)."""
        return [_composition(c) for c in self._paginate("ListCompositions", "compositions", {"maxResults": 100})]

    def connected_participants(self, stage_arn: str, session_id: str) -> list[Participant]:
        """Who is connected now (ListParticipants ``filterByState`` CONNECTED; no attributes)."""
        params = {"stageArn": stage_arn, "sessionId": session_id, "filterByState": "CONNECTED", "maxResults": 100}
        return [_participant(p) for p in self._paginate("ListParticipants", "participants", params)]

    def recorded_participants(self, stage_arn: str, session_id: str) -> list[str]:
        """Who IVS is recording now in this session (ListParticipants ``filterByRecordingState`` ACTIVE,
        those who left but are still recorded within the reconnect window included)."""
        params = {"stageArn": stage_arn, "sessionId": session_id, "filterByRecordingState": "ACTIVE", "maxResults": 100}
        return [p["participantId"] for p in self._paginate("ListParticipants", "participants", params)]

    def recording_participants(self, stage_arn: str, session_id: str) -> list[str]:
        """Whose recording is starting, active or stopping in this session (every participant listed:
        one call per 100), for when IVS has just refused the settings and ``ACTIVE`` alone may miss one."""
        params = {"stageArn": stage_arn, "sessionId": session_id, "maxResults": 100}
        return [
            p["participantId"]
            for p in self._paginate("ListParticipants", "participants", params)
            if p.get("recordingState") in RECORDING_ACTIVE_STATES
        ]

    def recent_session_ids(self, stage_arn: str, *, ended_after: datetime) -> list[str]:
        """The stage's sessions that are active or ended after ``ended_after`` (one ListStageSessions call,
        its 5 newest): a participant of an ended session stays recorded for its reconnect window."""
        response = self._call("ListStageSessions", stageArn=stage_arn, maxResults=5)
        return [
            str(s["sessionId"])
            for s in response.get("stageSessions") or []
            if s.get("endTime") is None or s["endTime"] > ended_after
        ]

    def live_session_id(self, stage_arn: str) -> str | None:
        """The stage's active session from ListStageSessions (the one with no ``endTime``; 100 a page), for
        a caller with no share of GetStage (moderation, ``stagepilot.budget``); None when the stage is idle
        or does not exist."""
        params = {"stageArn": stage_arn, "maxResults": 100}
        try:
            for session in self._paginate("ListStageSessions", "stageSessions", params):
                if session.get("endTime") is None and session.get("sessionId"):
                    return str(session["sessionId"])
        except IvsRejected as exc:
            if exc.not_found:
                return None
            raise
        return None

    def update_stage_recording(self, stage_arn: str, configuration: Mapping[str, Any]) -> None:
        self._call(
            "UpdateStage", mutating=True, arn=stage_arn, autoParticipantRecordingConfiguration=dict(configuration)
        )

    def stage_session(self, stage_arn: str, session_id: str) -> StageSession | None:
        """GetStageSession; None when IVS does not know the session."""
        try:
            session = self._call("GetStageSession", stageArn=stage_arn, sessionId=session_id)["stageSession"]
        except IvsRejected as exc:
            if exc.not_found:
                return None
            raise
        return StageSession(
            session_id=session["sessionId"], start_time=session.get("startTime"), end_time=session.get("endTime")
        )

    def has_publishers(self, stage_arn: str, session_id: str) -> bool:
        """True when someone who published in this session is still connected ("published" means ever)."""
        params = {
            "stageArn": stage_arn,
            "sessionId": session_id,
            "filterByPublished": True,
            "maxResults": 100,
        }
        return any(p.get("state") == "CONNECTED" for p in self._paginate("ListParticipants", "participants", params))

    def participants(self, stage_arn: str, session_id: str, *, user_id: str | None = None) -> list[Participant]:
        params: dict[str, Any] = {"stageArn": stage_arn, "sessionId": session_id, "maxResults": 100}
        if user_id is not None:
            params["filterByUserId"] = user_id
        return [_participant(p) for p in self._paginate("ListParticipants", "participants", params)]

    def published_participants(self, stage_arn: str, session_id: str) -> list[Participant]:
        """Everyone who ever published in the session, connected or not (ListParticipants
        ``filterByPublished``; no attributes)."""
        params = {"stageArn": stage_arn, "sessionId": session_id, "filterByPublished": True, "maxResults": 100}
        return [_participant(p) for p in self._paginate("ListParticipants", "participants", params)]

    def participant(
        self,
        stage_arn: str,
        session_id: str,
        participant_id: str,
        *,
        kept: Callable[[], Participant | None] | None = None,
    ) -> Participant:
        """GetParticipant. ``kept``: asked when the pacer made the call wait (another automation's frame of
        a framed operation came first, budget.py): its answer, when it has one, instead of the call."""
        params: dict[str, Any] = {"stageArn": stage_arn, "sessionId": session_id, "participantId": participant_id}
        if kept is not None and self._pacer is not None and self._pacer.wait("GetParticipant") > 0:
            found = kept()
            if found is not None:
                return found
            return _participant(self._call("GetParticipant", paced_once=True, **params)["participant"])
        return _participant(self._call("GetParticipant", **params)["participant"])

    def is_publishing(self, stage_arn: str, session_id: str, participant_id: str) -> bool:
        """Whether the participant publishes now. GetParticipant's ``published`` means "ever published";
        only its events say whether the last publish was stopped (ListParticipantEvents)."""
        return self.publish_state(stage_arn, session_id, participant_id)[0]

    def publish_state(self, stage_arn: str, session_id: str, participant_id: str) -> tuple[bool, datetime | None]:
        """(publishing now, since when): its last PUBLISH_STARTED with no stop after it (ListParticipantEvents;
        the time is None if IVS gave none)."""
        times = self.publish_times(stage_arn, session_id, participant_id)
        return (True, times.started_at) if times.publishing else (False, None)

    def publish_times(self, stage_arn: str, session_id: str, participant_id: str) -> PublishTimes:
        """Whether the participant publishes now, when its last publish started and when it stopped (its
        PUBLISH_STOPPED, or its LEFT: leaving stops a publish), from its events (ListParticipantEvents)."""
        params = {"stageArn": stage_arn, "sessionId": session_id, "participantId": participant_id, "maxResults": 100}
        events = [
            (str(event.get("eventTime", "")), index, event.get("name"), event.get("eventTime"))
            for index, event in enumerate(self._paginate("ListParticipantEvents", "events", params))
            if event.get("name") in ("PUBLISH_STARTED", "PUBLISH_STOPPED", "LEFT")
        ]
        publishing, started, stopped = False, None, None
        for _, _, name, at in sorted(events, key=lambda e: e[:2]):
            when = at if isinstance(at, datetime) else None
            if name == "PUBLISH_STARTED":
                publishing, started = True, when
            elif publishing:  # PUBLISH_STOPPED, or LEFT while publishing
                publishing, stopped = False, when
        return PublishTimes(publishing, started, stopped)

    def compositions(self, stage_arn: str) -> list[CompositionSummary]:
        params = {"filterByStageArn": stage_arn, "maxResults": 100}
        return [_composition(c) for c in self._paginate("ListCompositions", "compositions", params)]

    def composition(self, composition_arn: str) -> CompositionSummary | None:
        """GetComposition; None when IVS no longer knows it (cleaned up about five minutes after it ended)."""
        try:
            response = self._call("GetComposition", arn=composition_arn)
        except IvsRejected as exc:
            if exc.not_found:
                return None
            raise
        return _composition(response["composition"])

    def replicas(self, stage_arn: str, participant_id: str) -> list[Replica]:
        params = {"sourceStageArn": stage_arn, "participantId": participant_id, "maxResults": 50}
        return [
            Replica(
                source_stage_arn=r["sourceStageArn"],
                participant_id=r["participantId"],
                destination_stage_arn=r["destinationStageArn"],
                destination_session_id=r.get("destinationSessionId"),
                state=r.get("replicationState", ""),
                source_session_id=r.get("sourceSessionId"),
            )
            for r in self._paginate("ListParticipantReplicas", "replicas", params)
        ]

    # writes --------------------------------------------------------------------------------
    def start_composition(self, request: Mapping[str, Any]) -> str:
        response = self._call("StartComposition", mutating=True, **request)
        return str(response["composition"]["arn"])

    def stop_composition(self, composition_arn: str) -> None:
        """StopComposition; a composition IVS no longer knows (ended and cleaned up) is stopped already."""
        try:
            self._call("StopComposition", mutating=True, arn=composition_arn)
        except IvsRejected as exc:
            if not exc.not_found:
                raise

    def start_replication(self, request: Mapping[str, Any]) -> None:
        self._call("StartParticipantReplication", mutating=True, **request)

    def stop_replication(self, source_stage_arn: str, destination_stage_arn: str, participant_id: str) -> None:
        self._call(
            "StopParticipantReplication",
            mutating=True,
            sourceStageArn=source_stage_arn,
            destinationStageArn=destination_stage_arn,
            participantId=participant_id,
        )

    def disconnect(self, stage_arn: str, participant_id: str, reason: str) -> None:
        self._call(
            "DisconnectParticipant",
            mutating=True,
            stageArn=stage_arn,
            participantId=participant_id,
            reason=reason,
        )

    # the door's tokens and keys (docs/door.md) --------------------------------------------------------
    def create_participant_token(
        self, stage_arn: str, *, user_id: str, capabilities: list[str], attributes: Mapping[str, str], duration: int
    ) -> dict[str, Any]:
        """CreateParticipantToken's ``participantToken`` (IVS's 50 TPS; the pacer keeps the door under it)."""
        response = self._call(
            "CreateParticipantToken",
            mutating=True,
            stageArn=stage_arn,
            userId=user_id,
            capabilities=capabilities,
            attributes=dict(attributes),
            duration=duration,
        )
        token: dict[str, Any] = response["participantToken"]
        return token

    def import_public_key(self, pem: str, *, name: str, tags: Mapping[str, str]) -> dict[str, Any]:
        response = self._call("ImportPublicKey", mutating=True, publicKeyMaterial=pem, name=name, tags=dict(tags))
        key: dict[str, Any] = response["publicKey"]
        return key

    def public_keys(self) -> list[dict[str, Any]]:
        """Every public key imported in the account and region (at most 3)."""
        return list(self._paginate("ListPublicKeys", "publicKeys", {"maxResults": 100}))

    def public_key(self, arn: str) -> dict[str, Any] | None:
        try:
            key: dict[str, Any] = self._call("GetPublicKey", arn=arn)["publicKey"]
        except IvsRejected as exc:
            if exc.not_found:
                return None
            raise
        return key

    def delete_public_key(self, arn: str) -> None:
        self._call("DeletePublicKey", mutating=True, arn=arn)

    # plumbing --------------------------------------------------------------------------------------
    def _paginate(self, operation: str, key: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        token: str | None = None
        while True:
            page = self._call(operation, **{**params, **({"nextToken": token} if token else {})})
            yield from page.get(key, [])
            token = page.get("nextToken")
            if not token:
                return

    def _call(
        self, operation: str, *, mutating: bool = False, paced_once: bool = False, **params: Any
    ) -> dict[str, Any]:
        """Every call waits for the pacer (reads share the quota as much as writes), and a throttled one
        slows the pacer's operation down for a while (``Pacer.throttled``).

        In a function (``time_left`` set: Lambda's remaining time) a call IVS throttles (429) was refused,
        not done, so it is sent again here, read or write, after a jittered ``THROTTLE_WAIT`` (1-3 s: IVS's
        one-second window has passed), at most ``THROTTLE_RETRIES`` times and only while the invocation has
        ``THROTTLE_TIME_NEEDED`` left after the wait; then ``RetryLater``, for the queue. Without a deadline
        (the CLI, a local run) a throttled read is sent again after the pacer's wait, ``READ_RETRIES`` times;
        a write is not. 402 ``ServiceQuotaExceededException`` is not a throttle: a resource limit
        (compositions per account or stage), answered ``IvsQuotaExceeded`` at once (reported, not spun on).
        """
        method: Callable[..., dict[str, Any]] = getattr(self._client, _snake(operation))
        deadline = self.time_left
        tries = 1 + (THROTTLE_RETRIES if deadline is not None else 0 if mutating else READ_RETRIES)
        for attempt in range(1, tries + 1):
            if self._pacer is not None and not (paced_once and attempt == 1):  # paced_once: the caller waited
                self._pacer.wait(operation)
            try:
                return method(**params)
            except ClientError as exc:
                if not _throttled(exc):
                    raise _translate(operation, exc) from exc
                if self._pacer is not None:
                    self._pacer.throttled(operation)
                if attempt == tries:
                    raise _translate(operation, exc) from exc
                if deadline is not None:
                    wait = self._jitter(*THROTTLE_WAIT)
                    if deadline() - wait < THROTTLE_TIME_NEEDED:
                        raise _translate(operation, exc) from exc
                    self._sleep(wait)
            except ParamValidationError:
                raise  # a bug in this code (or a policy that escaped validation), not a transient failure
            except BotoCoreError as exc:  # connection errors, timeouts: transient
                raise RetryLater(f"{operation}: {exc}") from exc
        raise AssertionError("unreachable: the last try returns or raises")


def _throttled(exc: ClientError) -> bool:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code in _THROTTLE_CODES or (status == 429 and code not in _QUOTA_CODES)


def _translate(operation: str, exc: ClientError) -> Exception:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    # IVS puts its text in the modelled member ``exceptionMessage``, which botocore surfaces at the top level.
    message = str(error.get("Message") or exc.response.get("exceptionMessage") or exc)
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    if code in _QUOTA_CODES or status == 402:
        return IvsQuotaExceeded(operation, code or str(status), message)
    if code in _RETRYABLE_CODES or status == 429 or status >= 500:
        return RetryLater(f"{operation}: {code or status}: {message}", throttled=_throttled(exc))
    if code == "ConflictException":
        return IvsConflict(operation, message)
    if code in _REJECTED_CODES or 400 <= status < 500:
        return IvsRejected(operation, code or str(status), message)
    return RetryLater(f"{operation}: {code or status}: {message}")


def _composition(raw: Mapping[str, Any]) -> CompositionSummary:
    """A CompositionSummary (ListCompositions) or Composition (GetComposition): the same members here."""
    return CompositionSummary(
        arn=raw["arn"],
        stage_arn=raw["stageArn"],
        state=raw["state"],
        tags=raw.get("tags") or {},
        destination_states=tuple(str(d.get("state", "")) for d in raw.get("destinations") or ()),
        end_time=raw.get("endTime"),
        start_time=raw.get("startTime"),
        destination_kinds=tuple(
            ("channel" if "channel" in d["configuration"] else "s3")
            for d in raw.get("destinations") or ()
            if isinstance(d.get("configuration"), Mapping)
        ),
        recording_prefix=next(
            (
                str(d["detail"]["s3"]["recordingPrefix"])
                for d in raw.get("destinations") or ()
                if "recordingPrefix" in ((d.get("detail") or {}).get("s3") or {})
            ),
            None,
        ),
    )


def _participant(raw: Mapping[str, Any]) -> Participant:
    return Participant(
        participant_id=raw["participantId"],
        user_id=raw.get("userId") or None,
        state=raw.get("state", ""),
        published=bool(raw.get("published", False)),
        attributes=raw.get("attributes") or {},
        replication_type=raw.get("replicationType"),
        source_stage_arn=raw.get("sourceStageArn"),
        recording_state=raw.get("recordingState"),
        source_session_id=raw.get("sourceSessionId"),
    )


def _snake(operation: str) -> str:
    out = []
    for index, char in enumerate(operation):
        if char.isupper() and index:
            out.append("_")
        out.append(char.lower())
    return "".join(out)
