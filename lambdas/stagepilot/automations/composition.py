"""Composition automation: exactly one running composition per stage session, healed when it fails.

Two guards make "exactly once" hold under duplicated, concurrent and retried events: a conditional
claim in the table (only one invocation may start a given attempt) and a deterministic
``idempotencyToken`` per (stage, session, attempt), so a handler that crashed after StartComposition
returned and is retried gets the same composition back from IVS instead of a second one.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from stagepilot.adapters.ivs import CompositionSummary, IvsRejected
from stagepilot.adapters.state import CompositionRecords, Ledger
from stagepilot.adapters.table import AuditRecord
from stagepilot.automations.composition_hours import REFUSED_METRIC, count_end, refused
from stagepilot.automations.limits import CostGuard
from stagepilot.decisions.composition import (
    Converging,
    Decision,
    Published,
    Seen,
    SessionCompositions,
    State,
    asks_ivs,
    decide_on_end,
    decide_on_failure,
    decide_rollover_ahead,
    decide_start,
    ended_at_limit,
    failure_unrecorded,
    forgettable,
    idempotency_token,
    managed_attempt,
    managed_tags,
    rollover_due,
    why_list_compositions,
)
from stagepilot.decisions.composition_hours import BUDGET
from stagepilot.decisions.heals import HealReason
from stagepilot.decisions.leases import HeldClaim
from stagepilot.errors import RetryLater
from stagepilot.events import CompositionStateChange, Event, RecordingStateChange, StageUpdate
from stagepilot.pipeline import Outcome, Services
from stagepilot.policy import CompositionPolicy, StagePolicy
from stagepilot.routing import COMPOSITION, PARTICIPANT_PUBLISHED

if TYPE_CHECKING:
    from stagepilot.convergence import LiveStage

logger = logging.getLogger(__name__)


class CompositionAutomation:
    name = COMPOSITION
    needs_policy = True

    def handle(self, event: Event, policy: StagePolicy | None, services: Services) -> Outcome:
        if isinstance(event, RecordingStateChange):
            return self._on_recording(event, services)
        if policy is None or policy.composition is None:
            return self._skip("the stage's policy has no composition section")
        if isinstance(event, StageUpdate) and event.event_name == PARTICIPANT_PUBLISHED:
            return self._on_publish(event, policy.composition, services)
        if isinstance(event, CompositionStateChange):
            return self._on_state_change(event, policy.composition, services)
        return self._skip(f"{getattr(event, 'event_name', type(event).__name__)} is not a composition trigger")

    # Participant Published ---------------------------------------------------------------------------
    def _on_publish(self, event: StageUpdate, composition: CompositionPolicy, services: Services) -> Outcome:
        records = services.compositions
        # Claim first and decide after: the first publisher's claim is one write, and any later one's
        # failed write answers the record (what a read before the write would have).
        claimed, record = records.claim_first(event.stage_arn, event.session_id, owner=event.envelope.owner)
        decision = decide_start(
            record,
            Published(at=event.time),
            owner=event.envelope.owner,
            now=services.clock(),
            policy_hash=_policy_hash(composition),
            max_restarts=composition.max_restarts,
        )
        if not decision.act:
            return self._skip(decision.reason, decision.held, session_id=event.session_id)
        return self._start(
            event.stage_arn,
            event.session_id,
            decision,
            record,
            composition,
            services,
            owner=event.envelope.owner,
            restart=False,
            event_time=event.time,
            claimed=claimed,
        )

    # IVS Composition State Change --------------------------------------------------------------------
    def _on_state_change(
        self, event: CompositionStateChange, composition: CompositionPolicy, services: Services
    ) -> Outcome:
        summary = services.ivs.composition(event.composition_arn)
        owned = managed_attempt(dict(summary.tags)) if summary is not None else None
        if summary is None:
            return self._skip("the composition no longer exists at IVS (the event is stale)")
        if owned is None:
            return self._skip("not a composition stagepilot started; left alone")
        session_id, attempt = owned
        records = services.compositions
        # The composition is the stage's: carried into the next session (everyone left and came back within
        # the minute), that session's record holds it too. Its end closes every record that holds it, and a
        # restart belongs to the newest of them; the tags name only the session that started it.
        ending = event.event_name in ("Session End", "Session Failure")
        holders = records.holding(event.stage_arn, event.composition_arn) if ending else []
        if ending:  # the fleet's composition hours (compositionHoursPerDay): counted once, whoever sees the end
            count_end(services, summary, event.time)
        if event.event_name == "Session End":
            # A record that holds the composition and says "claimed" claims its successor (a claim records no
            # composition): that claim is not the ended composition's, and is left to the claim rule
            # (``decide_on_end``).
            for held_session, held in holders:
                records.mark(
                    event.stage_arn,
                    held_session,
                    attempt=held.attempt,
                    state=State.ENDED,
                    from_states=(State.STARTED,),
                    endedAt=event.time,
                )
            if not holders:
                # No record holds it: the start that made it (the tags' session and attempt) was cut short before
                # recording it. Its claim is ended and learns which composition it was, so a 24-hour end still
                # rolls over at once (``decide_on_end``) and the pass knows the limit when the event is lost.
                started = {"startedAt": summary.start_time} if summary.start_time is not None else {}
                records.mark(
                    event.stage_arn,
                    session_id,
                    attempt=attempt,
                    state=State.ENDED,
                    from_states=(State.STARTED, State.CLAIMED),
                    endedAt=event.time,
                    compositionArn=event.composition_arn,
                    **started,
                )
            current = holders[-1][0] if holders else session_id
            return self._roll_over_after_end(event, current, summary, composition, services, records)
        if holders and holders[-1][0] != session_id:
            for older_session, older in holders[:-1]:
                records.mark(
                    event.stage_arn,
                    older_session,
                    attempt=older.attempt,
                    state=State.ENDED,
                    from_states=(State.STARTED,),
                    endedAt=event.time,
                )
            session_id, attempt = holders[-1][0], holders[-1][1].attempt
        if event.event_name == "Destination Failure":
            found = self._destination_failed(
                event.stage_arn,
                session_id,
                summary,
                reason=event.reason or "",
                at=event.time,
                event_id=event.event_id,
                services=services,
                records=records,
            )
            if not found:
                return self._skip("the failed destination is recorded already", session_id=session_id)
            return replace(found[0], reason="; ".join(o.reason for o in found))
        if event.event_name != "Session Failure":
            return self._skip(f"{event.event_name} needs no action")
        names_it = any(holder == session_id for holder, _ in holders)
        return self._on_failure(event, session_id, attempt, composition, services, records, names_it=names_it)

    def _roll_over_after_end(
        self,
        event: CompositionStateChange,
        session_id: str,
        ended: CompositionSummary,
        composition: CompositionPolicy,
        services: Services,
        records: CompositionRecords,
    ) -> Outcome:
        """IVS ended the composition normally: at its 24-hour limit with the stage still publishing, its
        successor starts now (a channel takes one composition at a time); audited ``rollover``. A successor
        another owner claims while its lease runs is waited for (``Outcome.held``: the event comes back), and
        a record the end is not on yet is decided again once it is (``RetryLater``): never dropped."""
        record = records.get(event.stage_arn, session_id)
        decision = decide_on_end(
            record,
            ended_arn=event.composition_arn,
            started_at=ended.start_time,
            ended_at=event.time,
            owner=event.envelope.owner,
            now=services.clock(),
        )
        if not decision.act and decision.delay is not None:
            raise RetryLater(decision.reason, delay_seconds=decision.delay.total_seconds())
        if not decision.act:
            return self._skip(decision.reason, decision.held, session_id=session_id)
        return self._start(
            event.stage_arn,
            session_id,
            decision,
            record,
            composition,
            services,
            owner=event.envelope.owner,
            restart=False,
            event_time=event.time,
        )

    def _on_failure(
        self,
        event: CompositionStateChange,
        session_id: str,
        attempt: int,
        composition: CompositionPolicy,
        services: Services,
        records: CompositionRecords,
        *,
        names_it: bool,
    ) -> Outcome:
        """``names_it``: the session's record names the failed composition (``attempt`` is that record's). A record
        that names it and says "claimed" is someone's claim on its restart (a claim records no composition),
        left to the claim rule (``decide_on_failure``); only a record that does not name it (the start that
        made it, cut short before recording it: the tags' attempt) is marked failed from "claimed"."""
        records.mark(
            event.stage_arn,
            session_id,
            attempt=attempt,
            state=State.FAILED,
            from_states=(State.STARTED,) if names_it else (State.STARTED, State.CLAIMED),
            failedAt=event.time,
            failedBy=event.event_id,
            failureReason=event.reason or "",
        )
        record = records.get(event.stage_arn, session_id)
        decision = decide_on_failure(
            record,
            failed_attempt=attempt,
            max_restarts=composition.max_restarts,
            failed_at=event.time,
            now=services.clock(),
            owner=event.envelope.owner,
            failed_arn=event.composition_arn,
        )
        if not decision.act:
            if record is not None and record.attempt == attempt and record.state is State.FAILED:
                self._give_up(
                    event.stage_arn,
                    session_id,
                    record,
                    reason=decision.reason,
                    services=services,
                    records=records,
                    at=event.time,
                    event_id=event.event_id,
                    failure=event.reason or "",
                    composition_arn=event.composition_arn,
                )
            return self._skip(decision.reason, decision.held, session_id=session_id)
        if decision.delay is not None:
            raise RetryLater(
                f"restart back-off: {decision.delay.total_seconds():.0f} s to wait",
                delay_seconds=decision.delay.total_seconds(),
            )
        return self._start(
            event.stage_arn,
            session_id,
            decision,
            record,
            composition,
            services,
            owner=event.envelope.owner,
            restart=True,
            event_time=event.time,
        )

    # IVS Participant Recording State Change --------------------------------------------------------
    def _on_recording(self, event: RecordingStateChange, services: Services) -> Outcome:
        """A participant's recording started, ended or failed: kept for status; a failure is audited and
        counted (``RecordingFailed``, alarmed) so a missing recording is known before someone looks for it."""
        details = {"session_id": event.session_id, "participant_id": event.participant_id}
        services.recordings.record(
            event.stage_arn,
            event.session_id,
            event.participant_id,
            event_name=event.event_name,
            at=event.time,
            bucket=event.bucket,
            key_prefix=event.key_prefix,
        )
        if not event.failed:
            return self._skip(f"{event.event_name}: recorded for status", **details)
        services.record_action(
            AuditRecord(
                time=event.time,
                stage_arn=event.stage_arn,
                automation=self.name,
                action="recording-failed",
                reason=f"IVS reported {event.event_name} (see the stage's storage configuration and bucket)",
                session_id=event.session_id,
                participant_id=event.participant_id,
                result=event.event_name,
                event_id=event.event_id,
                details={"bucket": event.bucket or "", "keyPrefix": event.key_prefix or ""},
            ),
            "RecordingFailed",
        )
        return Outcome(self.name, "recording-failed", f"{event.event_name}: audited and counted", details=details)

    # the convergence pass -----------------------------------------------------------------------------
    def converge(self, stage: LiveStage, services: Services) -> list[Outcome]:
        """Someone publishes now and no stagepilot composition is live at IVS: start one (once). A
        composition IVS shows FAILED is recorded as failed first, so the restart counts toward
        ``maxRestarts`` as the failure event's would, and an ended one is never taken for a failure."""
        policy = stage.policy
        if policy is None or policy.composition is None:
            return []
        composition = policy.composition
        records = services.compositions
        owner = f"reconcile:{stage.session_id}:composition"
        live = [c for c in stage.compositions if c.active and managed_attempt(dict(c.tags)) is not None]
        if policy.limits is not None:  # what a stage may cost (docs/policy.md): checked first
            guarded = CostGuard(self.name).converge(stage, live, policy.limits, services)
            if guarded is not None:
                return guarded
        if live:  # IVS says it runs: nothing to do, unless it nears its 24-hour limit with only S3 to record
            found = self._failed_destinations(stage, live, services, records)
            return found + self._roll_over_ahead(stage, live, composition, services, records, owner)
        record: SessionCompositions | None = None
        ended = {c.arn: c for c in stage.compositions if managed_attempt(dict(c.tags)) is not None}
        if ended:
            # IVS lists a stagepilot composition of this stage that ended (it keeps them ~5 minutes): a
            # failure is recorded now, before any budgeted read, so that it is never missed.
            record = records.get(stage.arn, stage.session_id)
            held = ended.get(record.composition_arn or "") if record is not None else None
            record = self._record_failure(stage, record, held, records, owner)
            gave_up = self._give_up_if_out(stage, record, composition, services, records, owner)
            if gave_up is not None:
                return [gave_up]
        publishers = stage.publishers()
        if not publishers:
            return []
        if not ended:
            record = records.get(stage.arn, stage.session_id)
        held = self._held(record, stage, services, owner)
        record = self._record_failure(stage, record, held, records, owner)
        decision = decide_start(
            record,
            Converging(
                publishing_since=stage.publishing_since(),
                seen=Seen.of(held.state if held else None) if asks_ivs(record, owner=owner, now=stage.now) else None,
                at_limit=held is not None and ended_at_limit(held.start_time, held.end_time),
            ),
            owner=owner,
            now=stage.now,
            policy_hash=_policy_hash(composition),
            max_restarts=composition.max_restarts,
        )
        details = {"session_id": stage.session_id, "publishers": len(publishers)}
        if decision.give_up:
            gave_up = self._give_up_if_out(stage, record, composition, services, records, owner)
            return [gave_up] if gave_up is not None else []
        if not decision.act:
            return [Outcome(self.name, "skip", decision.reason, details=details)]
        outcome = self._start(
            stage.arn,
            stage.session_id,
            decision,
            record,
            composition,
            services,
            owner=owner,
            restart=decision.restart,
            event_time=stage.now,
        )
        if outcome.acted:
            healed = Outcome(self.name, outcome.action, decision.reason, acted=True, details=outcome.details)
            return [replace(healed, heal_reason=decision.heal_reason)]  # None: the pass explains it
        return [outcome]

    def _destination_failed(
        self,
        stage_arn: str,
        session_id: str,
        summary: CompositionSummary,
        *,
        reason: str,
        at: datetime,
        event_id: str,
        services: Services,
        records: CompositionRecords,
    ) -> list[Outcome]:
        """A destination failed (a channel already live, a bucket refused): the show is off-air or
        unrecorded. Audited ``destination-failed`` with IVS's reason, counted ``DestinationFailed`` (its
        alarm fires at once), once per composition and destination whoever sees it first (the event, its
        duplicate, the pass). Nothing is restarted for it: a restart would cut the other destination's
        recording. IVS's event does not say which destination: ``GetComposition``'s states do."""
        failed = [
            k
            for k, state in zip(summary.destination_kinds, summary.destination_states, strict=False)
            if state == "FAILED"
        ]
        outcomes = []
        for kind in failed:
            recorded = services.record_action(
                AuditRecord(
                    time=at,
                    stage_arn=stage_arn,
                    automation=self.name,
                    action="destination-failed",
                    reason=f"the {kind} destination failed: {reason or 'IVS gave no reason'}",
                    session_id=session_id,
                    result="FAILED",
                    event_id=event_id,
                    details={"compositionArn": summary.arn, "destination": kind, "ivsReason": reason},
                ),
                "DestinationFailed",
                change=records.noting_destination_failure(stage_arn, session_id, summary.arn, kind, at),
                only_if_changed=True,
            )
            if recorded:
                why = f"the {kind} destination failed ({reason or 'no reason given'}); audited and alarmed, no restart"
                outcomes.append(Outcome(self.name, "destination-failed", why, details={"session_id": session_id}))
        return outcomes

    def _failed_destinations(
        self, stage: LiveStage, live: list[CompositionSummary], services: Services, records: CompositionRecords
    ) -> list[Outcome]:
        """IVS lists a live stagepilot composition with a FAILED destination: its ``Destination Failure`` may
        have been lost; recorded as the event would have (once: usually it was)."""
        outcomes: list[Outcome] = []
        for listed in live:
            if "FAILED" not in listed.destination_states:
                continue
            summary = services.ivs.composition(listed.arn)  # the listing does not say which destination
            owned = managed_attempt(dict(summary.tags)) if summary is not None else None
            if summary is None or owned is None:
                continue
            outcomes += self._destination_failed(
                stage.arn,
                owned[0],
                summary,
                reason="IVS lists the destination FAILED",
                at=stage.now,
                event_id=f"reconcile:{stage.session_id}:composition",
                services=services,
                records=records,
            )
        return outcomes

    def _roll_over_ahead(
        self,
        stage: LiveStage,
        live: list[CompositionSummary],
        composition: CompositionPolicy,
        services: Services,
        records: CompositionRecords,
        owner: str,
    ) -> list[Outcome]:
        """The planned rollover of an S3-only composition: within ``ROLLOVER_LEAD`` of IVS's 24-hour limit,
        with someone still publishing, its successor starts before it ends (no gap in the recording; the
        two overlap at most 2 minutes). A channel takes one composition at a time: its successor waits for
        IVS to end the predecessor (``_roll_over_after_end``). Costs nothing until a composition is due."""
        due = [c for c in live if rollover_due(c.start_time, stage.now)]
        if not due or any("channel" in d for d in composition.destinations):
            return []
        details = {"session_id": stage.session_id}
        refusal = refused(services, stage.now)
        if refusal is not None:  # its predecessor runs on to IVS's limit; after it, the refused start is audited
            return [Outcome(self.name, "skip", f"no successor before the 24-hour limit: {refusal}", details=details)]
        if not stage.publishers():
            why = "nobody publishes: no successor before the 24-hour limit"
            return [Outcome(self.name, "skip", why, details=details)]
        record = records.get(stage.arn, stage.session_id)
        for predecessor in due:
            decision = decide_rollover_ahead(
                record, live_arn=predecessor.arn, started_at=predecessor.start_time, owner=owner, now=stage.now
            )
            if not decision.act:
                continue
            outcome = self._start(
                stage.arn,
                stage.session_id,
                decision,
                record,
                composition,
                services,
                owner=owner,
                restart=False,
                event_time=stage.now,
            )
            return [replace(outcome, heal_reason=HealReason.ROLLOVER) if outcome.acted else outcome]
        return []

    @staticmethod
    def _held(
        record: SessionCompositions | None, stage: LiveStage, services: Services, owner: str
    ) -> CompositionSummary | None:
        """The record's composition as IVS shows it: from the pass's listing, else ``GetComposition`` (the
        listing is older than this stage's turn, and a composition ended more than ~5 minutes ago is in
        neither: None). For the pass's own unfinished claim, the composition before it: what it heals."""
        if record is None or record.composition_arn is None or not asks_ivs(record, owner=owner, now=stage.now):
            return None
        listed = next((c for c in stage.compositions if c.arn == record.composition_arn), None)
        return listed if listed is not None else services.ivs.composition(record.composition_arn)

    @staticmethod
    def _record_failure(
        stage: LiveStage,
        record: SessionCompositions | None,
        held: CompositionSummary | None,
        records: CompositionRecords,
        owner: str,
    ) -> SessionCompositions | None:
        """IVS shows the record's composition FAILED while the record says it runs (its Session Failure was
        lost or is late): record the failure as the event would have. Returns the record as it is now."""
        if held is None or not failure_unrecorded(record, Seen.of(held.state)):
            return record
        assert record is not None
        failed_at = held.end_time or stage.now
        if records.mark(
            stage.arn,
            stage.session_id,
            attempt=record.attempt,
            state=State.FAILED,
            from_states=(State.STARTED,),
            failedAt=failed_at,
            failedBy=owner,
            failureReason="IVS lists the composition FAILED; its Session Failure was not handled",
        ):
            return replace(record, state=State.FAILED, failed_at=failed_at, failed_by=owner)
        return records.get(stage.arn, stage.session_id)  # someone else moved it first: decide on theirs

    def _give_up_if_out(
        self,
        stage: LiveStage,
        record: SessionCompositions | None,
        composition: CompositionPolicy,
        services: Services,
        records: CompositionRecords,
        owner: str,
    ) -> Outcome | None:
        """A failed composition with no restart left: the session's record gives up, as on the event path."""
        if record is None or record.state is not State.FAILED:
            return None
        decision = decide_start(
            record,
            Converging(publishing=False),
            owner=owner,
            now=stage.now,
            policy_hash=_policy_hash(composition),
            max_restarts=composition.max_restarts,
        )
        if not decision.give_up:
            return None
        self._give_up(
            stage.arn,
            stage.session_id,
            record,
            reason=decision.reason,
            services=services,
            records=records,
            at=stage.now,
            event_id=owner,
            failure=record.composition_arn or "",
        )
        return Outcome(self.name, "skip", decision.reason, details={"session_id": stage.session_id})

    def _give_up(
        self,
        stage_arn: str,
        session_id: str,
        record: SessionCompositions,
        *,
        reason: str,
        services: Services,
        records: CompositionRecords,
        at: datetime,
        event_id: str,
        failure: str,
        composition_arn: str | None = None,
    ) -> None:
        """Out of restarts: ``gave-up``, counted and audited once (whoever records it first)."""
        if not records.mark(
            stage_arn, session_id, attempt=record.attempt, state=State.GAVE_UP, from_states=(State.FAILED,)
        ):
            return
        services.record_action(
            AuditRecord(
                time=at,
                stage_arn=stage_arn,
                automation=self.name,
                action="composition-gave-up",
                reason=reason,
                session_id=session_id,
                event_id=event_id,
                details={"compositionArn": composition_arn or record.composition_arn or "", "failure": failure},
            ),
            "CompositionGaveUp",
        )

    # the one place a composition is started ----------------------------------------------------------
    def _start(
        self,
        stage_arn: str,
        session_id: str,
        decision: Decision,
        record: SessionCompositions | None,
        composition: CompositionPolicy,
        services: Services,
        *,
        owner: str,
        restart: bool,
        event_time: datetime,
        claimed: bool = False,
    ) -> Outcome:
        """``claimed``: the caller already holds the claim of ``decision.attempt`` (``claim_first``)."""
        records = services.compositions
        attempt = decision.attempt
        resumed = not claimed and decision.resume  # the caller's earlier try holds this attempt's claim
        if not (claimed or resumed) and not records.claim(
            stage_arn, session_id, attempt=attempt, owner=owner, expected=record
        ):
            # a caller not named claimed it between the read and this write: held from now
            held = HeldClaim("", services.clock())
            return self._skip("another event claimed this start first", held, session_id=session_id)
        refusal = refused(services, services.clock())
        if refusal is not None:
            return self._refuse(stage_arn, session_id, attempt, refusal, services, owner=owner, event_time=event_time)
        ledger = records.enter(stage_arn, session_id)
        active_session = services.ivs.active_session_id(stage_arn)
        if active_session != session_id:
            records.mark(stage_arn, session_id, attempt=attempt, state=State.STALE, from_states=(State.CLAIMED,))
            return self._skip(
                f"session {session_id} is not the stage's active session ({active_session})",
                session_id=session_id,
            )
        if decision.needs_publishers and not services.ivs.has_publishers(stage_arn, session_id):
            # Over for now; a later publisher in this session starts a new attempt.
            records.mark(stage_arn, session_id, attempt=attempt, state=State.ENDED, from_states=(State.CLAIMED,))
            return self._skip("nobody is publishing in the session", session_id=session_id)
        existing = self._live_elsewhere(
            stage_arn, ledger, resumed=resumed, recorded=record is not None, records=records, services=services
        )
        if existing is not None:
            started = {"startedAt": existing.start_time} if existing.start_time is not None else {}
            first = _first_start(record, existing.start_time or services.clock())
            started["firstStartedAt"] = first
            records.mark(
                stage_arn,
                session_id,
                attempt=attempt,
                state=State.STARTED,
                from_states=(State.CLAIMED,),
                compositionArn=existing.arn,
                **started,
            )
            return self._skip(
                f"a stagepilot composition is already {existing.state.lower()} on the stage",
                session_id=session_id,
                composition_arn=existing.arn,
            )
        request = composition.start_request(
            stage_arn=stage_arn,
            idempotency_token=idempotency_token(stage_arn, session_id, attempt),
            extra_tags=managed_tags(session_id, attempt),
        )
        try:
            arn = services.ivs.start_composition(request)
        except IvsRejected as exc:
            records.mark(
                stage_arn,
                session_id,
                attempt=attempt,
                state=State.REJECTED,
                from_states=(State.CLAIMED,),
                policyHash=_policy_hash(composition),
                rejection=exc.ivs_message,
            )
            services.record_action(
                AuditRecord(
                    time=event_time,
                    stage_arn=stage_arn,
                    automation=self.name,
                    action="composition-rejected",
                    reason=exc.ivs_message,
                    session_id=session_id,
                    result=exc.code,
                    event_id=owner,
                    details={"operation": exc.operation},
                ),
                "CompositionStartFailed",
            )
            return Outcome(
                self.name,
                "rejected",
                f"IVS rejected StartComposition: {exc.code}: {exc.ivs_message}",
                details={"session_id": session_id},
            )
        verb = "restarted" if restart else "started"
        action = f"composition-{verb}"
        details: dict[str, Any] = {"compositionArn": arn, "attempt": attempt}
        if decision.rollover:
            action = "rollover"
            details.update(_rollover_details(record, arn, services))
        counted = "CompositionRestarted" if restart else "CompositionStarted"
        services.record_action(
            AuditRecord(
                time=event_time,
                stage_arn=stage_arn,
                automation=self.name,
                action=action,
                reason=decision.reason,
                session_id=session_id,
                result=verb,
                event_id=owner,
                details=details,
            ),
            "CompositionRolledOver" if decision.rollover else counted,
            change=records.marking(
                stage_arn,
                session_id,
                attempt=attempt,
                state=State.STARTED,
                from_states=(State.CLAIMED,),
                compositionArn=arn,
                startedAt=services.clock(),
                firstStartedAt=_first_start(record, services.clock()),
            ),
        )
        return Outcome(
            self.name,
            action,
            f"{verb} composition: {decision.reason}",
            acted=True,
            details={"session_id": session_id, "composition_arn": arn, "attempt": attempt},
            heal_reason=decision.heal_reason,
        )

    def _refuse(
        self,
        stage_arn: str,
        session_id: str,
        attempt: int,
        refusal: str,
        services: Services,
        *,
        owner: str,
        event_time: datetime,
    ) -> Outcome:
        """``compositionHoursPerDay`` in ``block`` mode, the day's hours spent: the claimed attempt is
        refused, audited ``budget`` and counted once per session and day (the record says ``budget``, which
        no start decision leaves that day: decisions/composition.py)."""
        records = services.compositions
        day = services.clock().astimezone(UTC).date().isoformat()
        services.record_action(
            AuditRecord(
                time=event_time,
                stage_arn=stage_arn,
                automation=self.name,
                action=BUDGET,
                reason=refusal,
                session_id=session_id,
                result="refused",
                event_id=owner,
                details={"day": day, "attempt": attempt},
            ),
            REFUSED_METRIC,
            change=records.marking(
                stage_arn, session_id, attempt=attempt, state=State.BUDGET, from_states=(State.CLAIMED,), refusedDay=day
            ),
        )
        services.table.apply(records.leaving(stage_arn, session_id))  # nothing of the session is live
        logger.warning("composition start refused by the budget", extra={"stage_arn": stage_arn, "reason": refusal})
        return Outcome(self.name, BUDGET, refusal, details={"session_id": session_id})

    @staticmethod
    def _live_elsewhere(
        stage_arn: str,
        ledger: Ledger,
        *,
        resumed: bool,
        recorded: bool,
        records: CompositionRecords,
        services: Services,
    ) -> CompositionSummary | None:
        """The stagepilot composition live on the stage, as IVS lists it — asked only when the claim and
        the stage's ledger cannot tell that there is none (``why_list_compositions``)."""
        now = services.clock()
        why = why_list_compositions(
            resumed=resumed, ledger_kept=ledger.kept, others=ledger.others, now=now, session_recorded=recorded
        )
        if why is None:
            return None
        live = [c for c in services.ivs.compositions(stage_arn) if c.active and managed_attempt(dict(c.tags))]
        if not live:  # IVS shows the other entries stale (their Session End lost, a crash): drop them
            stale = forgettable(ledger.others, now=now)
            records.forget(stage_arn, {session: ledger.others[session] for session in stale})
        return live[0] if live else None

    def _skip(self, reason: str, held: HeldClaim | None = None, /, **details: str) -> Outcome:
        """Nothing done, and why; ``held``: another owner's live claim is why (``Outcome.held``)."""
        return Outcome(self.name, "skip", reason, details=details, held=held)


def _rollover_details(record: SessionCompositions | None, successor: str, services: Services) -> dict[str, Any]:
    """What the audit keeps of a rollover: both compositions and where each recorded (their S3 prefixes, as
    GetComposition shows them; best effort: the start has happened, a failed read leaves a prefix out)."""
    details: dict[str, Any] = {"predecessorArn": record.composition_arn if record is not None else ""}
    for key, arn in (("predecessorS3Prefix", details["predecessorArn"]), ("s3Prefix", successor)):
        try:
            found = services.ivs.composition(arn) if arn else None
        except Exception as exc:  # the rollover happened; only its audit detail is missing
            logger.warning("could not read a rolled-over composition's prefix", extra={"arn": arn, "error": str(exc)})
            continue
        if found is not None and found.recording_prefix:
            details[key] = found.recording_prefix
    return details


def _first_start(record: SessionCompositions | None, now: datetime) -> datetime:
    """When the session's first composition started (``limits.maxSessionMinutes`` counts from it): the
    record's, or its current one's for a record written before it was kept, else now."""
    if record is None:
        return now
    return record.first_started_at or record.started_at or now


def _policy_hash(composition: CompositionPolicy) -> str:
    text = json.dumps([composition.layout, list(composition.destinations), composition.tags], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
