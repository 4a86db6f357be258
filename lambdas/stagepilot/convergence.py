"""The convergence pass: IVS is the state, events are hints (README.md, "Two paths").

Events make stagepilot fast; this pass makes it certain. Every period (``reconcileMinutes``, default
1) it lists what IVS says is live and compares each live stage with its policy:

    ListStages ─ activeSessionId → live stages      (1 call per 100 stages)
    ListCompositions (unfiltered)  → live compositions of every stage (1 call: at most 20 are live)
    per live stage that needs it:   ListParticipants (connected), ListParticipantEvents (publishing now?),
                                    GetParticipant (attributes), ListParticipantReplicas

and hands each stage to the automations' ``converge``, which decide with the same decision functions
and claims as the event path what is missing (a composition, a replica, a disconnect) and do it. Every
healed action is audited as ``healed`` with what was found, and counted (``Healed`` and
``Healed<Automation>``): healing that happens often means events are being lost.

The pass acts as a caller like any event: its claims carry a deterministic owner per stage session
(``reconcile:<session>:<what>``), so a pass that dies mid-way is resumed by the next one, and its
claims expire after the same lease (``decisions/leases.py``) as everyone's.
"""

from __future__ import annotations

import bisect
import copy
import logging
import math
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Final, Protocol, cast

from stagepilot.adapters.bans import BanList
from stagepilot.adapters.ivs import CompositionSummary, IvsStage, Participant, PublishTimes, StageInfo
from stagepilot.adapters.pass_log import ListedStage, PassLog, PassRecord
from stagepilot.adapters.schema import PARTITION_KEY, SORT_KEY, STAGE_PREFIX
from stagepilot.adapters.table import AuditRecord, Table, iso
from stagepilot.automations.composition_hours import keep_the_day
from stagepilot.decisions.composition import managed_attempt
from stagepilot.decisions.heals import HEALED_METRIC, HealReason, Observed, explain_heal
from stagepilot.decisions.heals import metric_name as heal_metric
from stagepilot.decisions.limits import GUARDED
from stagepilot.errors import Deferred, RetryLater
from stagepilot.events import Envelope, StageUpdate
from stagepilot.failures import Log, Meaning, Path, describe, handling, metrics
from stagepilot.pipeline import EffectivePolicy, Outcome, Services, stage_gate
from stagepilot.policy import StagePolicy
from stagepilot.routing import COMPOSITION

logger = logging.getLogger(__name__)

HEAL_SOURCE = "stagepilot.reconcile"
PENDING = "pending"  # an Outcome's action for drift IVS cannot take yet
# The pass lists at most this many stages' participants. Its share of ListParticipants is 1 call in any
# 1.2 s (stagepilot.budget, since the bound of issue 24; 2 calls/s before), so the deadline stops a
# one-minute pass after about 50 listings first. With more live stages, the next pass starts with the
# first stage this one did not reach (``PassCursor``).
PARTICIPANT_LISTINGS_PER_PASS = 120
# The deadline (``remaining_ms``). No IVS read starts with less than CALL_MARGIN_MS left: the slowest
# read (its pacing wait at the pass's 1 call/s, IVS's latency, a throttled retry) and the writes it may
# lead to (a start, the claim and audit writes) fit in it. No stage starts with less than STAGE_MARGIN_MS:
# room for its first reads, so a stage is not begun only to be cut after its listing.
CALL_MARGIN_MS: Final = 4_000
STAGE_MARGIN_MS: Final = 6_000
# A scheduled pass waits for a limit's deadline (``act_at_deadlines``) only within this long of its own
# start, with STAGE_MARGIN_MS left before its timeout: it ends before the next pass of the schedule (every
# minute at the shortest, the function's timeout), which takes the deadlines after it.
DEADLINE_WINDOW_SECONDS: Final = 60 - STAGE_MARGIN_MS / 1000
# Meanwhile it looks this often at the stages whose noPublisherSeconds or hostGone grace is shorter than a
# pass (their clock may start after the pass examined them), at most this many a pass (each look is a
# GetComposition and the stage's publishers, at the pass's pace).
POLL_SECONDS: Final = 10.0
WATCHED_PER_PASS: Final = 5
CURSOR_PARTITION_SUFFIX: Final = "~convergence"  # STAGE#~convergence: no stage ARN starts with "~"
# GetParticipant answers kept per container (a participant's token attributes cannot change within its
# session): a pass over a stage with many publishers reads each once per session, not once per pass.
PARTICIPANT_CACHE_SIZE: Final = 20_000


class Deadline:
    """The time left before the pass's function times out (``remaining_ms``: None = no limit)."""

    def __init__(self, remaining_ms: Callable[[], float] | None) -> None:
        self._remaining_ms = remaining_ms

    def left_ms(self) -> float:
        return float(self._remaining_ms()) if self._remaining_ms is not None else math.inf

    def check(self, margin_ms: float) -> None:
        if self.left_ms() < margin_ms:
            raise Deferred(f"the pass has less than {margin_ms / 1000:.0f} s left before its timeout")


class ParticipantCache(OrderedDict[tuple[str, str, str], Participant]):
    """GetParticipant's answers by (stage, session, participant), the oldest dropped past
    ``PARTICIPANT_CACHE_SIZE``: one per container (the reconcile handler keeps it across passes)."""


class PassIvs(IvsStage):
    """IVS as the pass calls it: ``inner``'s calls (its client, pacer, what-if hold-back), where no read
    starts with less than ``CALL_MARGIN_MS`` left (a write goes on: it follows a read that fitted, and
    cutting it would leave its claim to wait for the next pass), and GetParticipant's answers are kept
    per stage session (``PARTICIPANT_CACHE_SIZE``; token attributes cannot change within a session)."""

    def __init__(self, inner: IvsStage, deadline: Deadline, participants: ParticipantCache | None = None) -> None:
        super().__init__(inner._client, pacer=inner._pacer)
        self._inner = inner
        self._deadline = deadline
        self._participants = participants if participants is not None else ParticipantCache()

    def _call(
        self, operation: str, *, mutating: bool = False, paced_once: bool = False, **params: Any
    ) -> dict[str, Any]:
        if not mutating:
            self._deadline.check(CALL_MARGIN_MS)
        try:
            return self._inner._call(operation, mutating=mutating, paced_once=paced_once, **params)
        except Exception:
            if mutating and "participantId" in params:  # what IVS knows of it may have changed: ask again
                self.forget_participant(str(params["participantId"]))
            raise

    def participant(
        self,
        stage_arn: str,
        session_id: str,
        participant_id: str,
        *,
        kept: Callable[[], Participant | None] | None = None,
    ) -> Participant:
        key = (stage_arn, session_id, participant_id)
        cached = self._participants.get(key)
        if cached is not None and cached.state == "CONNECTED":
            self._participants.move_to_end(key)
            return cached
        found = super().participant(stage_arn, session_id, participant_id, kept=kept)
        self._participants[key] = found
        while len(self._participants) > PARTICIPANT_CACHE_SIZE:
            self._participants.popitem(last=False)
        return found

    def forget_participant(self, participant_id: str) -> None:
        for key in [k for k in self._participants if k[2] == participant_id]:
            del self._participants[key]


class ReadBudget:
    def __init__(self, limit: int) -> None:
        self.remaining = limit

    def take(self) -> None:
        if self.remaining <= 0:
            raise Deferred("the pass's participant-listing budget is spent")
        self.remaining -= 1


@dataclass
class LiveStage:
    """One live stage as IVS lists it, read lazily and at most once per pass."""

    arn: str
    session_id: str
    policy: StagePolicy | None
    compositions: list[CompositionSummary]  # this stage's, from the account-wide listing
    ivs: IvsStage
    now: datetime
    budget: ReadBudget = field(default_factory=lambda: ReadBudget(PARTICIPANT_LISTINGS_PER_PASS), repr=False)
    bans: BanList = field(default_factory=BanList)  # the ban list, read once per pass (publishers and
    # subscribers are judged on it; a user whose ban item cannot be read fails on their stages)
    policy_updated_at: datetime | None = None  # when the stage's effective policy was written
    # when a limit of the policy's ``limits`` falls due if nothing changes (automations/limits.py): the pass
    # looks again then when it falls within the pass's own minute (``act_at_deadlines``)
    limits_due: datetime | None = None
    limits_short: bool = False  # a noPublisherSeconds or hostGone shorter than a pass: watched while it waits
    _connected: list[Participant] | None = field(default=None, repr=False)
    _publishing: dict[str, tuple[bool, datetime | None]] = field(default_factory=dict, repr=False)
    _history: list[tuple[Participant, PublishTimes]] | None = field(default=None, repr=False)

    def connected(self) -> list[Participant]:
        if self._connected is None:
            self.budget.take()
            self._connected = self.ivs.connected_participants(self.arn, self.session_id)
        return self._connected

    def forget_participants(self) -> None:
        self._connected = None
        self._history = None

    def publish_history(self) -> list[tuple[Participant, PublishTimes]]:
        """Everyone who ever published in the session, connected or not, with when their last publish
        started and stopped (one ListParticipants, one ListParticipantEvents each): what the policy's
        ``limits`` measure idleness and a host's absence by."""
        if self._history is None:
            self.budget.take()
            found = self.ivs.published_participants(self.arn, self.session_id)
            self._history = [(p, self.ivs.publish_times(self.arn, self.session_id, p.participant_id)) for p in found]
        return self._history

    def publishing_now(self, participant_id: str) -> bool:
        """ListParticipants' ``published`` means "ever published in the session": only the participant's
        events say whether it publishes now (so the pass never restarts a composition IVS stopped after a
        minute without publishers)."""
        if participant_id not in self._publishing:
            self._publishing[participant_id] = self.ivs.publish_state(self.arn, self.session_id, participant_id)
        return self._publishing[participant_id][0]

    def publishing_since(self) -> datetime | None:
        """Since when someone has published without a stop: the earliest current publish of the stage."""
        starts = [self._publishing[p.participant_id][1] for p in self.publishers()]
        return min((at for at in starts if at is not None), default=None)

    def published_at(self, participant_id: str) -> datetime | None:
        """When the participant's current publish started, if the pass read it (``publishing_now``)."""
        return self._publishing.get(participant_id, (False, None))[1]

    def first_published_at(self) -> datetime | None:
        """When the earliest current publish the pass read on this stage started: what should have composed it."""
        return min((at for now, at in self._publishing.values() if now and at is not None), default=None)

    def publishers(self, *, replicas: bool = True) -> list[Participant]:
        """Connected participants publishing now (replicas publish too; ``replicas=False`` leaves them out)."""
        return [
            p
            for p in self.connected()
            if p.published and (replicas or not p.is_replica) and self.publishing_now(p.participant_id)
        ]

    def publish_seen(self, participant: Participant, what: str) -> StageUpdate:
        """What the listing shows, in the shape the automations decide on: ``participant`` publishes in this
        session now. Its id names the pass's claim for ``what`` in this session, the same on every pass."""
        event_id = f"reconcile:{self.session_id}:{participant.participant_id}:{what}"
        envelope = Envelope(
            event_id=event_id,
            detail_type="Convergence Pass",
            source=HEAL_SOURCE,
            account=self.arn.split(":")[4],
            region=self.arn.split(":")[3],
            time=self.now,
            resources=(self.arn,),
            detail={},
        )
        return StageUpdate(
            envelope=envelope,
            stage_arn=self.arn,
            session_id=self.session_id,
            event_name="Participant Published",
            participant_id=participant.participant_id,
            user_id=participant.user_id,
            time=self.now,
        )


class Converging(Protocol):
    name: str

    def converge(self, stage: LiveStage, services: Services) -> list[Outcome]: ...


class ConvergingFleet(Protocol):
    """An automation that looks at the fleet once per pass (live and idle stages alike) and chooses
    which stages to ask IVS about: the stages' recording settings (automations/stage_settings.py)."""

    name: str

    def converge_fleet(
        self, stages: Sequence[StageInfo], services: Services, *, budget: ReadBudget, only_stage: str | None = None
    ) -> FleetReport: ...


class FleetReport(Protocol):
    outcomes: list[tuple[str, Outcome]]
    errors: list[tuple[str, str]]
    deferred: list[str]


@dataclass
class PassReport:
    """What one pass found and did."""

    stages_listed: int = 0
    live: int = 0
    examined: int = 0
    outcomes: list[tuple[str, Outcome]] = field(default_factory=list)  # (stage ARN, outcome)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (stage ARN, why it could not be examined)
    deferred: list[str] = field(default_factory=list)  # stages left to the next pass (read budget or time spent)
    reached: int = 0  # examinable stages finished: every automation ran on them (adapters/pass_log.py)
    out_of_time: bool = False  # the pass stopped starting stages: its deadline came near

    @property
    def healed(self) -> list[tuple[str, Outcome]]:
        return [(arn, o) for arn, o in self.outcomes if o.acted]

    @property
    def drift(self) -> list[tuple[str, Outcome]]:
        """What differs from the policies: healed now (on what-if services: what would be), rejected, or
        pending (IVS cannot take it yet: recording settings while someone is recorded)."""
        return [(arn, o) for arn, o in self.outcomes if o.acted or o.action in ("rejected", PENDING)]

    @property
    def pending(self) -> list[tuple[str, Outcome]]:
        """Drift IVS cannot take yet; a later pass applies it (never retried into an error)."""
        return [(arn, o) for arn, o in self.outcomes if o.action == PENDING]


def run_pass(
    services: Services,
    automations: Iterable[Converging | ConvergingFleet],
    *,
    only_stage: str | None = None,
    participant_listings: int = PARTICIPANT_LISTINGS_PER_PASS,
    remaining_ms: Callable[[], float] | None = None,
    participants: ParticipantCache | None = None,
    progress: Callable[[int, int], None] | None = None,
    sleep: Callable[[float], None] | None = None,
) -> PassReport:
    """One convergence pass over every live stage (or ``only_stage``). Never raises for one stage's
    trouble: whatever one stage and automation raise (an IVS or DynamoDB error, a missing permission, a
    malformed item) is logged with the stage, counted (``ReconcileStageFailed``) and reported, and the pass
    moves on. ``remaining_ms``: the time left before the function's timeout (Lambda's
    ``context.get_remaining_time_in_millis``; a virtual-clock equivalent locally): no IVS read starts
    with less than ``CALL_MARGIN_MS`` left and no stage with less than ``STAGE_MARGIN_MS``, and the stages
    not reached are examined first by the next pass (``PassCursor``). ``participants``: GetParticipant's
    answers kept from earlier passes of this container. A dry run is this same pass on
    what-if services (operator/whatif.py): its heals, audit entries and metrics are recorded there, not
    made. ``progress(done, of)``: called before each stage it examines and once at the end (the CLI's
    progress line)."""
    report = PassReport()
    every = list(automations)
    chosen = [a for a in every if not hasattr(a, "converge_fleet")]
    fleet = [cast(ConvergingFleet, a) for a in every if hasattr(a, "converge_fleet")]
    now = services.clock()
    budget = ReadBudget(participant_listings)
    deadline = Deadline(remaining_ms)
    ivs = PassIvs(services.ivs, deadline, participants)
    pass_services = copy.copy(services)  # what the automations act through: IVS within the deadline
    pass_services.ivs = ivs
    try:
        stages = services.ivs.stages()
        report.stages_listed = len(stages)
        covered = [s for s in stages if services.settings.covers(s.arn) and (only_stage is None or s.arn == only_stage)]
        live = [s for s in covered if s.active_session_id]
        report.live = len(live)
    except RetryLater as exc:  # IVS or DynamoDB unavailable: the next pass tries again
        report.errors.append(("*", f"cannot list what is live: {exc}"))
        services.metrics.count("ReconcileFailed")
        logger.warning("convergence pass could not list what is live", extra={"error": str(exc)})
        return report
    for checker in fleet:  # first: a few checks, whatever the size of the live fleet after them
        _converge_fleet(checker, covered, pass_services, report, budget=budget, only_stage=only_stage, now=now)
    if not live:
        if services.settings.composition_hours is not None:  # what ended since the last pass is counted
            _keep_composition_hours(services, report, None, now)
        _log_pass(services, report, now=now, only_stage=only_stage, listed=stages)
        return report
    try:
        compositions = services.ivs.all_compositions()
        bans = services.bans.listing()
        banned = bool(bans) or bool(bans.unreadable)
        _count_unmanaged(services, compositions)
    except RetryLater as exc:  # IVS or DynamoDB unavailable: the next pass tries again
        report.errors.append(("*", f"cannot list what is live: {exc}"))
        services.metrics.count("ReconcileFailed")
        logger.warning("convergence pass could not list what is live", extra={"error": str(exc)})
        return report
    _keep_composition_hours(services, report, compositions, now)
    examinable: list[tuple[str, str, EffectivePolicy | None]] = []
    for info in live:
        arn = info.arn
        assert info.active_session_id is not None
        try:
            gate = stage_gate(services, arn, needs_policy=not banned)
        except Exception as exc:
            _stage_failed(services, report, arn, "policy", exc)
            continue
        if gate.closed is not None:
            continue  # paused, or nothing could apply: no policy, no default, nobody banned
        examinable.append((arn, info.active_session_id, gate.effective))
    report.examined = len(examinable)
    if not examinable:
        _log_pass(services, report, now=now, only_stage=only_stage, listed=stages)
        return report
    cursor = PassCursor(services.table, now=now) if only_stage is None else None
    ordered = sorted(examinable, key=lambda stage: stage[0])
    start = cursor.start([arn for arn, _, _ in ordered]) if cursor is not None else 0
    not_reached: list[str] = []
    running_down: list[LiveStage] = []  # stages whose limits fall due later: ``act_at_deadlines``
    for index, (arn, session_id, effective) in enumerate(ordered[start:] + ordered[:start]):
        if progress is not None:
            progress(index, len(ordered))
        if not_reached or deadline.left_ms() < STAGE_MARGIN_MS:
            not_reached.append(arn)
            continue
        stage = LiveStage(
            arn=arn,
            session_id=session_id,
            policy=effective.policy if effective is not None else None,
            compositions=[c for c in compositions if c.stage_arn == arn],
            ivs=ivs,
            now=now,
            budget=budget,
            bans=bans,
            policy_updated_at=effective.updated_at if effective is not None else None,
        )
        if not _converge_stage(pass_services, report, stage, chosen):
            not_reached.append(arn)
        else:
            report.reached += 1
            if stage.limits_due is not None or stage.limits_short:
                running_down.append(stage)
    if progress is not None:
        progress(len(ordered), len(ordered))
    report.deferred.extend(arn for arn in not_reached if arn not in report.deferred)
    report.out_of_time = bool(not_reached) and deadline.left_ms() < STAGE_MARGIN_MS
    if cursor is not None:
        cursor.save(not_reached[0] if not_reached else None)
    if sleep is not None and only_stage is None:
        act_at_deadlines(pass_services, report, running_down, deadline=deadline, began=now, sleep=sleep)
    _log_pass(services, report, now=now, only_stage=only_stage, listed=stages)
    if report.out_of_time:
        services.metrics.count("ReconcileOutOfTime")
        logger.warning(
            "convergence pass out of time: the rest is the next pass's, first",
            extra={"not_reached": len(not_reached), "examined": report.examined},
        )
    return report


def act_at_deadlines(
    services: Services,
    report: PassReport,
    stages: list[LiveStage],
    *,
    deadline: Deadline,
    began: datetime,
    sleep: Callable[[float], None],
) -> None:
    """Limits act within seconds of their deadline (docs/policy.md, "What a stage may cost"): the scheduled
    pass, done with every stage, waits for each deadline that falls within its own minute
    (``DEADLINE_WINDOW_SECONDS`` of its start, with time left before its timeout) and looks at that stage
    again then: the stage gate (paused since?), the composition (``GetComposition``: still live?), who
    publishes (read afresh), and ``CostGuard`` stops it only if a limit is due now. Meanwhile it looks every
    ``POLL_SECONDS`` at the stages whose ``noPublisherSeconds`` or ``hostGone`` is shorter than a pass
    (``WATCHED_PER_PASS`` of them at most): a last publisher (a host) leaving after the pass starts that
    limit's clock, and its deadline is then waited for too. A deadline beyond the window is the next pass's
    (it comes within seconds of it); whatever changed meanwhile (a publisher back, a stop already made) is
    seen when it looks, so a deadline that no longer holds does nothing."""
    window_end = began + timedelta(seconds=DEADLINE_WINDOW_SECONDS)
    due = {s.arn: s for s in stages if s.limits_due is not None}
    watching = {s.arn: s for s in stages if s.limits_short}
    watching = dict(list(watching.items())[:WATCHED_PER_PASS])
    next_poll = services.clock() + timedelta(seconds=POLL_SECONDS)
    while True:
        moments = [(s.limits_due, arn) for arn, s in due.items() if s.limits_due is not None]
        if watching:
            moments.append((next_poll, ""))  # "": every watched stage
        moments = [(when, arn) for when, arn in moments if when <= window_end]
        if not moments:
            return
        when, arn = min(moments)
        wait = (when - services.clock()).total_seconds()
        if deadline.left_ms() - max(wait, 0) * 1000 < STAGE_MARGIN_MS:
            return  # the rest are the next pass's
        if wait > 0:
            sleep(wait)
        looking = list(watching.values()) if arn == "" else [due.pop(arn)]
        for stage in looking:
            again = _look_again(services, report, stage)
            if again is None:  # nothing of stagepilot's runs there any more, or the stage is closed
                watching.pop(stage.arn, None)
                due.pop(stage.arn, None)
                continue
            if stage.arn in watching:
                watching[stage.arn] = again
            if again.limits_due is not None and again.limits_due > when:
                due[stage.arn] = again  # its clock started, or moved on (a publisher back and gone again)
        if arn == "":
            next_poll = services.clock() + timedelta(seconds=POLL_SECONDS)


def _look_again(services: Services, report: PassReport, stage: LiveStage) -> LiveStage | None:
    """One stage's limits, read afresh now (``act_at_deadlines``); None when nothing is left to watch."""
    from stagepilot.automations.limits import CostGuard

    try:
        gate = stage_gate(services, stage.arn, needs_policy=True)
        policy = gate.policy
        if gate.closed is not None or policy is None or policy.limits is None:
            return None
        fresh = [services.ivs.composition(c.arn) for c in stage.compositions if c.active]
        live = [c for c in fresh if c is not None and c.active and managed_attempt(dict(c.tags)) is not None]
    except Exception as exc:  # the next pass looks again
        _stage_failed(services, report, stage.arn, "limits", exc)
        return None
    if not live:
        return None
    again = replace(stage, policy=policy, compositions=live, now=services.clock(), limits_due=None, limits_short=False)
    again.forget_participants()
    _converge_stage(services, report, again, [_Limits(CostGuard(COMPOSITION), live)])
    return again


@dataclass
class _Limits:
    """The limits alone, as the composition automation checks them first (automations/composition.py)."""

    guard: Any
    live: list[CompositionSummary]
    name: str = COMPOSITION

    def converge(self, stage: LiveStage, services: Services) -> list[Outcome]:
        assert stage.policy is not None and stage.policy.limits is not None
        return self.guard.converge(stage, self.live, stage.policy.limits, services) or []


def _keep_composition_hours(
    services: Services, report: PassReport, compositions: list[CompositionSummary] | None, now: datetime
) -> None:
    """The fleet's composition budget (docs/policy.md): the day's figure from the pass's listing (``None``:
    listed here, when no stage is live: a composition that ended since the last pass is still counted)."""
    try:
        keep_the_day(services, services.ivs.all_compositions() if compositions is None else compositions, now)
    except Exception as exc:  # the budget's trouble never stops the pass for the stages
        _stage_failed(services, report, "*", "compositionHoursPerDay", exc)


def _count_unmanaged(services: Services, compositions: list[CompositionSummary]) -> None:
    """Compositions stagepilot did not start (no stagepilot:managed tag) that run now: counted
    (``UnmanagedCompositions``, each pass) and logged, never stopped (docs/policy.md, "What a stage may cost")."""
    unmanaged = [c for c in compositions if c.active and managed_attempt(dict(c.tags)) is None]
    if unmanaged:
        services.metrics.count("UnmanagedCompositions", len(unmanaged))
        logger.info(
            "compositions stagepilot did not start are running; left alone",
            extra={"count": len(unmanaged), "composition_arns": [c.arn for c in unmanaged[:20]]},
        )


def _log_pass(
    services: Services, report: PassReport, *, now: datetime, only_stage: str | None, listed: list[StageInfo]
) -> None:
    """A full pass's record, for ``ban list``'s sweep progress, with its listing of the live stages, for
    the fleet view (adapters/pass_log.py); never raises."""
    if only_stage is None:
        PassLog(services.table).record(
            PassRecord(started_at=now, examinable=report.examined, reached=report.reached),
            [ListedStage(s.arn, s.active_session_id, s.name) for s in listed if s.active_session_id],
            stages_listed=len(listed),
        )


def _converge_stage(services: Services, report: PassReport, stage: LiveStage, automations: list[Converging]) -> bool:
    """Every automation on one stage. False when the stage was not finished (the read budget or the time
    ran out): the next pass examines it first. Nothing it raises leaves this function."""
    for automation in automations:
        try:
            outcomes = automation.converge(stage, services)
            for outcome in outcomes:
                report.outcomes.append((stage.arn, outcome))
                if outcome.acted:
                    stage.forget_participants()  # someone was disconnected or replicated: read again
                    if outcome.action != GUARDED:  # a limit's stop is audited as such, never as a heal
                        _record_healed(services, stage.arn, stage.session_id, stage.now, outcome, stage)
                logger.info(
                    outcome.reason,
                    extra={
                        "stage_arn": stage.arn,
                        "automation": outcome.automation,
                        "action": outcome.action,
                        "acted": outcome.acted,
                    },
                )
        except Exception as exc:
            if handling(exc, Path.PASS).meaning is Meaning.DEFER:
                return False
            _stage_failed(services, report, stage.arn, automation.name, exc)
    return True


def _stage_failed(services: Services, report: PassReport, arn: str, what: str, exc: Exception) -> None:
    """A failure on one stage (``arn``; ``*``: a fleet check), as ``failures.handling`` says for the pass:
    reported with the stage and what failed (an automation, ``policy``), counted, logged; the pass goes on
    and the next pass tries again (nothing here defers: the caller has)."""
    found = handling(exc, Path.PASS)
    for metric in metrics(exc, Path.PASS):
        services.metrics.count(metric)
    why = describe(exc)
    report.errors.append((arn, f"{what}: {why}"))
    extra = {"stage_arn": arn, "automation": what, "error": why}
    if found.log is Log.WARNING:
        logger.warning("stage left to the next pass", extra=extra)
    elif found.log is not Log.QUIET:
        logger.error(
            "stage failed in the convergence pass; the pass goes on", extra=extra, exc_info=found.log is Log.TRACEBACK
        )


def _converge_fleet(
    automation: ConvergingFleet,
    stages: Sequence[StageInfo],
    services: Services,
    report: PassReport,
    *,
    budget: ReadBudget,
    only_stage: str | None,
    now: datetime,
) -> None:
    try:
        found = automation.converge_fleet(stages, services, budget=budget, only_stage=only_stage)
    except Exception as exc:  # one check's trouble never stops the pass for the stages; the next pass tries again
        _stage_failed(services, report, "*", automation.name, exc)
        return
    report.errors.extend(found.errors)
    report.deferred.extend(arn for arn in found.deferred if arn not in report.deferred)
    for arn, outcome in found.outcomes:
        report.outcomes.append((arn, outcome))
        if outcome.acted:
            session = outcome.details.get("session_id")
            try:
                _record_healed(services, arn, session if isinstance(session, str) else None, now, outcome)
            except Exception as exc:  # the heal happened; its audit entry is what failed
                _stage_failed(services, report, arn, automation.name, exc)
        logger.info(
            outcome.reason,
            extra={"stage_arn": arn, "automation": outcome.automation, "action": outcome.action},
        )


def _record_healed(
    services: Services,
    arn: str,
    session_id: str | None,
    now: datetime,
    outcome: Outcome,
    stage: LiveStage | None = None,
) -> None:
    reason = explain_heal(_observed(services, arn, now, outcome, stage), known=_known_reason(outcome))
    participant = outcome.details.get("participant_id")
    details = {k: v for k, v in outcome.details.items() if isinstance(v, str | int | float | bool | list)}
    services.record_action(
        AuditRecord(
            time=now,
            stage_arn=arn,
            automation=outcome.automation,
            action="healed",
            reason=outcome.reason,
            session_id=session_id,
            participant_id=participant if isinstance(participant, str) else None,
            result=outcome.action,
            event_id=f"reconcile:{session_id or 'idle'}",
            details={**details, "healReason": reason.value},
        ),
        HEALED_METRIC,
        f"{HEALED_METRIC}{outcome.automation.capitalize()}",
        heal_metric(reason),
    )


def _known_reason(outcome: Outcome) -> str | None:
    """The reason the converge function gave (``Outcome.heal_reason``, or ``healReason`` in its details),
    unless it is ``event-lost``: that is what is left when nothing else explains a heal, so the pass
    still looks for what else does (a resume, a policy change, a publish too recent for its event)."""
    known = outcome.heal_reason or outcome.details.get("healReason")
    return str(known) if known and known != HealReason.EVENT_LOST else None


def _observed(services: Services, arn: str, now: datetime, outcome: Outcome, stage: LiveStage | None) -> Observed:
    """What the pass saw of the stage, to explain one heal: when the publish the missing event reports
    started (the participant's, else the stage's first publisher's), when the policy was written, when the
    stage was resumed (one read, only for a heal no converge function explained). A fleet check's heal
    (no ``LiveStage``) knows only the resume."""
    happened = None
    if stage is not None:
        participant = outcome.details.get("participant_id")
        happened = stage.published_at(participant) if isinstance(participant, str) else stage.first_published_at()
    resumed_at = None
    if _known_reason(outcome) is None:
        try:
            resumed_at = services.pauses.resumed_at(arn)
        except Exception as exc:
            logger.warning("could not read when the stage was resumed", extra={"stage_arn": arn, "error": str(exc)})
    queued = None
    if _known_reason(outcome) is None:
        try:
            queued = services.events_queued(outcome.automation)
        except Exception as exc:  # unknown: the heal is explained by the age of what happened
            logger.warning("could not read the automation's queue", extra={"stage_arn": arn, "error": str(exc)})
    return Observed(
        now=now,
        happened_at=happened,
        policy_changed_at=stage.policy_updated_at if stage is not None else None,
        resumed_at=resumed_at,
        events_queued=queued,
    )


class PassCursor:
    """Where the next pass starts: the first live stage (in ARN order) the last pass did not reach, kept in
    one item. Kept rather than derived from the clock because how far a pass gets depends on the time its
    stages take, not only on their number: a pass cut short by its deadline must be continued, not
    skipped over. An ARN rather than a position, so stages going live or idle between passes do not shift
    the others; a cursor that cannot be read or written costs at most one pass re-examining stages
    (converging is idempotent), never a stage left out."""

    KEY: Final = (f"{STAGE_PREFIX}{CURSOR_PARTITION_SUFFIX}", "CURSOR")

    def __init__(self, table: Table, *, now: datetime) -> None:
        self._table = table
        self._now = now
        self._was: str | None = None

    def start(self, arns: list[str]) -> int:
        """The position in ``arns`` (sorted) where this pass begins."""
        try:
            item = self._table.get(*self.KEY)
        except Exception as exc:
            logger.warning("could not read the convergence cursor", extra={"error": str(exc)})
            return 0
        self._was = str(item.get("next", "")) if item else None
        return bisect.bisect_left(arns, self._was) % len(arns) if self._was else 0

    def save(self, next_arn: str | None) -> None:
        """``next_arn``: the first stage this pass did not reach; None when it reached every stage (the
        cursor stays: the next pass starts where this one did)."""
        if next_arn is None or next_arn == self._was:
            return
        try:
            self._table.put({PARTITION_KEY: self.KEY[0], SORT_KEY: self.KEY[1], "next": next_arn, "at": iso(self._now)})
        except Exception as exc:
            logger.warning("could not save the convergence cursor", extra={"error": str(exc)})
