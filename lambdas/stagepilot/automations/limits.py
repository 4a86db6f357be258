"""What a stage may cost (docs/policy.md, "What a stage may cost"): the convergence pass stops a stage
session's composition at its policy's ``limits``.

The pass examines every live stage each period (one minute, deployed), and a limit whose deadline falls
within the pass's own minute is waited for: the pass looks at that stage again at its deadline
(convergence.py, ``act_at_deadlines``), so a limit acts within seconds of it; one beyond the pass's minute
is the next pass's, which comes within seconds of it. A stop is ``StopComposition`` on a composition
stagepilot started (the function's role may stop no other), audited ``guarded`` with the limit and its
figures and counted (``CompositionGuarded``, and ``Guarded<limit>``), written together with the session
record's move, before the call: ``guarded`` for a final limit (``maxSessionMinutes``, ``hostGone``:
nothing composes again in the session), ``ended`` for ``noPublisherSeconds`` (a later publish composes
again, as after IVS's own idle stop). A stop that did not happen (an error, the pass's deadline) is made
again by the next pass, not audited again. ``hostGone``'s ``end-show`` also stops the replicas of the
stage's publishers and then disconnects everyone, at most ``END_SHOW_DISCONNECTS_PER_PASS`` a pass (paced
like every IVS call), until nobody is left.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Final

from stagepilot.adapters.ivs import CompositionSummary, Participant
from stagepilot.adapters.table import AuditRecord
from stagepilot.decisions.composition import SessionCompositions, State
from stagepilot.decisions.limits import (
    GUARDED,
    Bound,
    Guard,
    Seen,
    guard_due,
    needs_publishers,
    next_deadline,
    short_clock,
)
from stagepilot.pipeline import Outcome, Services
from stagepilot.policy import HostGone, LimitsPolicy

if TYPE_CHECKING:
    from stagepilot.convergence import LiveStage

logger = logging.getLogger(__name__)

GUARDED_METRIC: Final = "CompositionGuarded"
END_SHOW_DISCONNECTS_PER_PASS: Final = 100
END_SHOW_REASON: Final = "The show has ended (no host)"


def guarded_metric(bound: Bound) -> str:
    """The per-limit metric: ``GuardedMaxSessionMinutes``, ``GuardedHostGone``, ``GuardedNoPublisherSeconds``."""
    return f"Guarded{bound.value[0].upper()}{bound.value[1:]}"


class CostGuard:
    """The limits of one live stage's session, checked by the pass (automations/composition.py calls it
    first, before any heal)."""

    def __init__(self, automation: str) -> None:
        self.automation = automation

    def converge(
        self, stage: LiveStage, live: list[CompositionSummary], limits: LimitsPolicy, services: Services
    ) -> list[Outcome] | None:
        """Outcomes when a limit stopped (or goes on stopping) the session's composition; None: nothing to
        do, the composition automation carries on."""
        ends_show = limits.host_gone is not None and limits.host_gone.ends_show
        if not live and not ends_show:
            return None
        record = services.compositions.get(stage.arn, stage.session_id)
        if record is None:
            return None
        current = next((c for c in live if c.arn == record.composition_arn), None)
        details = {"session_id": stage.session_id}
        if record.stopped_by is not None and record.state in (State.GUARDED, State.ENDED):
            # stopped at a limit already (audited then): finish what was cut short
            outcomes = []
            if current is not None:
                services.ivs.stop_composition(current.arn)
                why = f"stopped again at limits.{record.stopped_by} (the earlier stop did not happen)"
                outcomes.append(Outcome(self.automation, GUARDED, why, acted=True, details=details))
            if record.stopped_by == Bound.HOST_GONE and ends_show:
                outcomes += self._end_show(stage, record, services, first=False)
            return outcomes or None
        if current is None or record.state is not State.STARTED:
            return None
        seen = self._seen(stage, record, current, limits)
        guard = guard_due(limits, seen)
        if guard is None:  # the pass waits for the deadline if it falls before the next pass (convergence.py)
            stage.limits_due = next_deadline(limits, seen)
            stage.limits_short = short_clock(limits)
            return None
        return self._stop(stage, record, current, guard, services)

    def _stop(
        self,
        stage: LiveStage,
        record: SessionCompositions,
        current: CompositionSummary,
        guard: Guard,
        services: Services,
    ) -> list[Outcome]:
        moved: dict[str, Any] = {"stoppedBy": guard.bound.value}
        if guard.final:
            state, moved["guardedAt"] = State.GUARDED, stage.now
        else:
            state, moved["endedAt"] = State.ENDED, stage.now  # a later publish composes again
        details = {"session_id": stage.session_id, "composition_arn": current.arn}
        recorded = services.record_action(
            AuditRecord(
                time=stage.now,
                stage_arn=stage.arn,
                automation=self.automation,
                action=GUARDED,
                reason=guard.reason,
                session_id=stage.session_id,
                result="StopComposition",
                event_id=f"reconcile:{stage.session_id}:limits",
                details={"limit": guard.bound.value, "compositionArn": current.arn, **guard.figures},
            ),
            GUARDED_METRIC,
            guarded_metric(guard.bound),
            change=services.compositions.marking(
                stage.arn,
                stage.session_id,
                attempt=record.attempt,
                state=state,
                from_states=(State.STARTED,),
                **moved,
            ),
        )
        if not recorded:  # the record moved meanwhile (a failure, an end): the next pass looks again
            return [Outcome(self.automation, "skip", "the session's record changed; the next pass looks again")]
        services.ivs.stop_composition(current.arn)
        logger.info(
            "composition stopped at a limit",
            extra={"stage_arn": stage.arn, "limit": guard.bound.value, "composition_arn": current.arn},
        )
        outcomes = [Outcome(self.automation, GUARDED, guard.reason, acted=True, details=details)]
        if guard.end_show:
            outcomes += self._end_show(stage, record, services, first=True)
        return outcomes

    def _end_show(
        self, stage: LiveStage, record: SessionCompositions, services: Services, *, first: bool
    ) -> list[Outcome]:
        """``end-show``: the replicas of the stage's publishers stopped first (on their destination stages
        they would outlive the show), then everyone disconnected, ``END_SHOW_DISCONNECTS_PER_PASS`` a pass."""
        stage.forget_participants()
        connected = stage.connected()
        if not connected:
            return []
        stopped = 0
        for participant in connected:
            if participant.published and not participant.is_replica:
                for replica in services.ivs.replicas(stage.arn, participant.participant_id):
                    if replica.state == "ACTIVE":
                        services.ivs.stop_replication(
                            stage.arn, replica.destination_stage_arn, participant.participant_id
                        )
                        stopped += 1
        now_leaving = connected[:END_SHOW_DISCONNECTS_PER_PASS]
        for participant in now_leaving:
            services.ivs.disconnect(stage.arn, participant.participant_id, END_SHOW_REASON)
        stage.forget_participants()
        left = len(connected) - len(now_leaving)
        reason = (
            f"limits.hostGone end-show: {len(now_leaving)} participants disconnected, {stopped} replicas stopped"
            + (f"; {left} left for the next pass" if left else "")
        )
        services.record_action(
            AuditRecord(
                time=stage.now,
                stage_arn=stage.arn,
                automation=self.automation,
                action=GUARDED,
                reason=reason,
                session_id=stage.session_id,
                result="DisconnectParticipant",
                event_id=f"reconcile:{stage.session_id}:limits",
                details={
                    "limit": Bound.HOST_GONE.value,
                    "disconnected": len(now_leaving),
                    "replicasStopped": stopped,
                    "left": left,
                    "first": first,
                },
            ),
        )
        return [Outcome(self.automation, GUARDED, reason, acted=True, details={"session_id": stage.session_id})]

    def _seen(
        self, stage: LiveStage, record: SessionCompositions, current: CompositionSummary, limits: LimitsPolicy
    ) -> Seen:
        composing_since = record.first_started_at or record.started_at or current.start_time or stage.now
        composition_started = current.start_time or record.started_at or composing_since
        if not needs_publishers(limits):
            return Seen(stage.now, composing_since, composition_started)
        history = stage.publish_history()
        publishing = any(times.publishing for _, times in history)
        stops = [times.stopped_at for _, times in history if times.stopped_at is not None]
        host_publishing: bool | None = None
        host_last_seen = None
        if limits.host_gone is not None:
            hosts = [(p, times) for p, times in history if self._is_host(stage, p, limits.host_gone)]
            host_publishing = any(times.publishing for _, times in hosts)
            host_stops = [times.stopped_at for _, times in hosts if times.stopped_at is not None]
            host_last_seen = max(host_stops, default=None)
        return Seen(
            stage.now,
            composing_since,
            composition_started,
            publishing=publishing,
            nobody_since=max(stops, default=None),
            host_publishing=host_publishing,
            host_last_seen=host_last_seen,
        )

    @staticmethod
    def _is_host(stage: LiveStage, participant: Participant, host_gone: HostGone) -> bool:
        attributes = None
        if host_gone.hosts.needs_attributes:
            attributes = stage.ivs.participant(stage.arn, stage.session_id, participant.participant_id).attributes
        return host_gone.hosts.matches(user_id=participant.user_id, attributes=attributes)
