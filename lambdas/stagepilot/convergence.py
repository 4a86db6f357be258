"""The convergence pass: IVS is the state, events are hints (CONTRACT §1).

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

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, cast

from stagepilot.adapters.ivs import CompositionSummary, IvsStage, Participant, StageInfo
from stagepilot.adapters.table import AuditRecord, Ban
from stagepilot.errors import ConfigurationError, RetryLater
from stagepilot.events import Envelope, StageUpdate
from stagepilot.pipeline import Outcome, Services
from stagepilot.policy import PolicyInvalid, StagePolicy

logger = logging.getLogger(__name__)

HEAL_SOURCE = "stagepilot.reconcile"
PENDING = "pending"  # an Outcome's action for drift IVS cannot take yet
HEALED_METRIC = "Healed"
# The pass's share of ListParticipants' 5 TPS: 2 calls/s (the event path lists participants only to
# confirm a publisher before a start), so a one-minute pass may list the participants of 120 stages. With
# more live stages to check, each pass starts further along (the order rotates with the clock, no state
# kept), so every live stage is checked within ceil(live / 120) passes.
PARTICIPANT_LISTINGS_PER_PASS = 120
PASS_PERIOD_SECONDS = 60


class Deferred(Exception):
    """The pass's read budget is spent: this stage is examined on a later pass."""


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
    bans: tuple[Ban, ...] = ()  # every ban in force, read once per pass (subscribers are judged on it)
    _connected: list[Participant] | None = field(default=None, repr=False)
    _publishing: dict[str, tuple[bool, datetime | None]] = field(default_factory=dict, repr=False)

    def connected(self) -> list[Participant]:
        if self._connected is None:
            self.budget.take()
            self._connected = self.ivs.connected_participants(self.arn, self.session_id)
        return self._connected

    def forget_participants(self) -> None:
        self._connected = None

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
    deferred: list[str] = field(default_factory=list)  # stages left to the next pass (read budget spent)

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
) -> PassReport:
    """One convergence pass over every live stage (or ``only_stage``). Never raises for one stage's
    trouble: a stage that cannot be examined now is reported and left to the next pass. A dry run is this
    same pass on what-if services (adapters/whatif.py): its heals, audit entries and metrics are recorded
    there, not made."""
    report = PassReport()
    every = list(automations)
    chosen = [cast(Converging, a) for a in every if not hasattr(a, "converge_fleet")]
    fleet = [cast(ConvergingFleet, a) for a in every if hasattr(a, "converge_fleet")]
    now = services.clock()
    budget = ReadBudget(participant_listings)
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
        _converge_fleet(checker, covered, services, report, budget=budget, only_stage=only_stage, now=now)
    if not live:
        return report
    try:
        compositions = services.ivs.all_compositions()
        bans = tuple(services.bans.list())
        banned = bool(bans)
    except RetryLater as exc:  # IVS or DynamoDB unavailable: the next pass tries again
        report.errors.append(("*", f"cannot list what is live: {exc}"))
        services.metrics.count("ReconcileFailed")
        logger.warning("convergence pass could not list what is live", extra={"error": str(exc)})
        return report
    examinable: list[tuple[str, str, StagePolicy | None]] = []
    for info in live:
        arn = info.arn
        assert info.active_session_id is not None
        try:
            effective = services.effective_policies.get(arn)
        except PolicyInvalid as exc:
            services.metrics.count("PolicyInvalid")
            report.errors.append((arn, f"the stored policy is invalid: {exc}"))
            continue
        except RetryLater as exc:
            report.errors.append((arn, f"cannot read its policy: {exc}"))
            continue
        policy = effective.policy if effective else None
        if policy is not None and policy.paused:
            continue
        if policy is None and not banned:
            continue  # nothing could apply: no policy, no default, nobody banned
        examinable.append((arn, info.active_session_id, policy))
    report.examined = len(examinable)
    if not examinable:
        return report
    # Each pass starts a budget further along the list than the one a period before: every stage is
    # examined within ceil(stages / budget) passes, with no state kept between passes.
    turn = int(now.timestamp() // PASS_PERIOD_SECONDS) * participant_listings % len(examinable)
    for arn, session_id, policy in examinable[turn:] + examinable[:turn]:
        stage = LiveStage(
            arn=arn,
            session_id=session_id,
            policy=policy,
            compositions=[c for c in compositions if c.stage_arn == arn],
            ivs=services.ivs,
            now=now,
            budget=budget,
            bans=bans,
        )
        for automation in chosen:
            try:
                outcomes = automation.converge(stage, services)
            except Deferred:
                if arn not in report.deferred:
                    report.deferred.append(arn)
                continue
            except (RetryLater, ConfigurationError) as exc:
                report.errors.append((arn, f"{automation.name}: {exc}"))
                logger.warning(
                    "stage left to the next pass",
                    extra={"stage_arn": arn, "automation": automation.name, "error": str(exc)},
                )
                continue
            for outcome in outcomes:
                report.outcomes.append((arn, outcome))
                if outcome.acted:
                    _record_healed(services, stage.arn, stage.session_id, stage.now, outcome)
                    stage.forget_participants()  # someone was disconnected or replicated: read again
                logger.info(
                    outcome.reason,
                    extra={
                        "stage_arn": arn,
                        "automation": outcome.automation,
                        "action": outcome.action,
                        "acted": outcome.acted,
                    },
                )
    return report


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
    except (RetryLater, ConfigurationError) as exc:  # its own listing failed: the next pass tries again
        report.errors.append(("*", f"{automation.name}: {exc}"))
        logger.warning("fleet check left to the next pass", extra={"automation": automation.name, "error": str(exc)})
        return
    report.errors.extend(found.errors)
    report.deferred.extend(arn for arn in found.deferred if arn not in report.deferred)
    for arn, outcome in found.outcomes:
        report.outcomes.append((arn, outcome))
        if outcome.acted:
            session = outcome.details.get("session_id")
            _record_healed(services, arn, session if isinstance(session, str) else None, now, outcome)
        logger.info(
            outcome.reason,
            extra={"stage_arn": arn, "automation": outcome.automation, "action": outcome.action},
        )


def _record_healed(services: Services, arn: str, session_id: str | None, now: datetime, outcome: Outcome) -> None:
    services.metrics.count(HEALED_METRIC)
    services.metrics.count(f"{HEALED_METRIC}{outcome.automation.capitalize()}")
    participant = outcome.details.get("participant_id")
    services.audit.record(
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
            details={k: v for k, v in outcome.details.items() if isinstance(v, str | int | float | bool | list)},
        )
    )
