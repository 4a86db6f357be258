"""Replication automation: replicate publishers into other stages by policy, once, never in loops.

On ``Participant Published`` each replication rule of the stage's policy that matches the publisher is
started once per (session, participant, destination): a conditional claim in the table lets one delivery
act, and IVS answering 409 Conflict ("already replicated") counts as done, so a delivery that crashed
after IVS accepted the call finishes on its retry without a second replication. Replicas are never
replicated again, so policies replicating A→B and B→A are safe. The replication events IVS sends are
recorded for ``stagepilot status``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stagepilot.adapters.ivs import IvsConflict, IvsQuotaExceeded, IvsRejected, Participant
from stagepilot.adapters.publishers import PublisherTokens, audit_body_mismatch
from stagepilot.adapters.replication_state import KnownEvent, ReplicationRecords, ReplicationTarget
from stagepilot.adapters.table import AuditRecord
from stagepilot.decisions.leases import HeldClaim
from stagepilot.decisions.publishers import (
    PublisherMatch,
    candidate_rules,
    match_publisher,
    may_need_attributes,
    rules_need_attributes,
)
from stagepilot.decisions.replication import (
    MAX_REPLICATIONS_PER_PARTICIPANT,
    ClaimState,
    ReplicationClaim,
    ReplicationEventKind,
    decide_claim,
    only_destination,
    plan_capacity,
    replication_event_kind,
    rule_hash,
)
from stagepilot.errors import RetryLater
from stagepilot.events import Event, StageUpdate
from stagepilot.pipeline import Outcome, Services
from stagepilot.policy import ModerationPolicy, ReplicationRule, StagePolicy
from stagepilot.routing import PARTICIPANT_PUBLISHED, REPLICATION

if TYPE_CHECKING:
    from stagepilot.convergence import LiveStage

logger = logging.getLogger(__name__)


@dataclass
class _Progress:
    """What happened to each destination of one event, for the outcome and the log line."""

    started: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)
    over_limit: list[str] = field(default_factory=list)
    retry: RetryLater | None = None
    retrying: list[ReplicationTarget] = field(default_factory=list)  # claims kept for this event's retry
    held: HeldClaim | None = None  # the latest-ending live claim of another owner this event found

    def wait_for(self, held: HeldClaim | None) -> None:
        """Another owner's live claim kept a destination from this event: it is tried again once the last
        such lease can have run out (``pipeline.handle_record``)."""
        if held is not None and (self.held is None or held.lease_ends > self.held.lease_ends):
            self.held = held

    def details(self, session_id: str, participant_id: str) -> dict[str, Any]:
        out: dict[str, Any] = {"session_id": session_id, "participant_id": participant_id}
        for name in ("started", "already", "skipped", "rejected", "over_limit"):
            value = getattr(self, name)
            if value:
                out[name] = value
        return out


class ReplicationAutomation:
    name = REPLICATION
    needs_policy = True

    def handle(self, event: Event, policy: StagePolicy | None, services: Services) -> Outcome:
        if not isinstance(event, StageUpdate):
            return self._skip(f"{type(event).__name__} is not a replication trigger")
        if event.event_name == PARTICIPANT_PUBLISHED:
            if policy is None or not policy.replication:
                return self._skip("the stage's policy has no replication entries", session_id=event.session_id)
            return self._on_publish(event, policy.replication, services, moderation=policy.moderation)
        if "replication" in event.event_name.lower():
            return self._on_replication_event(event, policy.replication if policy is not None else (), services)
        return self._skip(f"{event.event_name} is not a replication trigger")

    # Participant Published ---------------------------------------------------------------------------
    def _on_publish(
        self,
        event: StageUpdate,
        rules: tuple[ReplicationRule, ...],
        services: Services,
        *,
        moderation: ModerationPolicy | None = None,
    ) -> Outcome:
        participant_id = event.participant_id
        assert participant_id is not None  # the parser requires it on Participant Published
        ids = {"session_id": event.session_id, "participant_id": participant_id}
        # Whether the publisher is a replica, and who it is, are IVS's answer (GetParticipant), asked before
        # anything is started: never the event's body (docs/policy.md, one rule for replicas).
        candidates = candidate_rules(rules, stage_arn=event.stage_arn)
        found: Participant | None = None
        if rules_need_attributes(candidates, user_id=event.user_id):
            asked = self._source_publisher(services, event, ids, moderation)
            if isinstance(asked, Outcome):
                return asked
            found = asked
        match = self._match(rules, event, found, services)
        if not match.matching:
            reason = "no replication entry matches the publisher"
            if match.own_stage and not match.not_matching:
                reason = "the only replication entries point at this stage itself"
            return self._skip(reason, **ids)

        progress = _Progress()
        records = services.replications
        wanted: list[ReplicationRule] = []
        claims: dict[str, ReplicationClaim | None] = {}
        resumed: set[str] = set()  # destinations whose claim this event's earlier delivery holds
        fresh: list[ReplicationTarget] = []  # claims this event made now, on destinations nobody had claimed
        for rule in match.matching:
            # Claim first and decide after: a first claim is one write, and a failed one answers the stored
            # claim (what a read before the write would have).
            target = _target(event, rule.destination_stage_arn)
            new, claim = records.claim_first(target, owner=event.envelope.owner)
            if new is not None:
                fresh.append(target)
                claim = new
            decision = decide_claim(claim, owner=event.envelope.owner, now=services.clock(), rule_hash=rule_hash(rule))
            if decision.act:
                wanted.append(rule)
                claims[rule.destination_stage_arn] = claim
                if decision.resume:
                    resumed.add(rule.destination_stage_arn)
            else:
                progress.skipped[rule.destination_stage_arn] = decision.reason
                progress.wait_for(decision.held)
        if wanted and found is None:
            # About to replicate and IVS has not been asked yet: GetParticipant says whether the publisher
            # is a replica (never replicated back) and who it is — the body's user id only chose whom to ask.
            asked = self._source_publisher(services, event, ids, moderation)
            if isinstance(asked, Outcome):
                for target in fresh:
                    records.release(target, owner=event.envelope.owner)
                return asked
            found = asked
            if _user(found.user_id) != _user(event.user_id):
                matching = {r.destination_stage_arn for r in self._match(rules, event, found, services).matching}
                for rule in [rule for rule in wanted if rule.destination_stage_arn not in matching]:
                    records.release(_target(event, rule.destination_stage_arn), owner=event.envelope.owner)
                    progress.skipped[rule.destination_stage_arn] = "IVS's answer does not match this entry"
                wanted = [rule for rule in wanted if rule.destination_stage_arn in matching]
        if wanted:
            plan = plan_capacity(wanted, active_destinations=self._active(services, event, wanted, fresh))
            for rule in plan.over_limit:  # the claims this event holds for them would block a later publish
                records.release(_target(event, rule.destination_stage_arn), owner=event.envelope.owner)
            for rule in plan.already_active:
                destination = rule.destination_stage_arn
                self._already_active(records, event, rule, claims[destination], destination in resumed, progress)
            if plan.over_limit:
                skipped = [rule.destination_stage_arn for rule in plan.over_limit]
                progress.over_limit.extend(skipped)
                services.metrics.count("ReplicationSkippedLimit", len(skipped))
                logger.warning(
                    "replication skipped: participant at its replication limit",
                    extra={
                        "stage_arn": event.stage_arn,
                        **ids,
                        "limit": MAX_REPLICATIONS_PER_PARTICIPANT,
                        "active_elsewhere": plan.active_elsewhere,
                        "skipped_destinations": skipped,
                    },
                )
            for index, rule in enumerate(plan.start):
                destination = rule.destination_stage_arn
                gone = self._start(
                    records, event, rule, claims[destination], destination in resumed, services, progress
                )
                if gone is not None:  # the publisher is gone: the other destinations would fail the same way
                    progress.skipped[rule.destination_stage_arn] = gone
                    for untried in plan.start[index + 1 :]:  # their claims (taken up front) are given up too
                        records.release(_target(event, untried.destination_stage_arn), owner=event.envelope.owner)
                    break
        if progress.retry is not None:
            raise progress.retry
        return self._summary(progress, ids)

    @staticmethod
    def _active(
        services: Services, event: StageUpdate, wanted: list[ReplicationRule], fresh: list[ReplicationTarget]
    ) -> set[str]:
        """Where IVS replicates the publisher now (ListParticipantReplicas) — asked only when the claims are
        ambiguous. When this event made every claim it acts on (nobody had tried these destinations in this
        session) the listing only guards rare cases, which the start call answers itself: a replication that
        exists anyway gets a 409 (confirmed by the listing, below), and one over the participant's limit of
        concurrent replications a quota error (retried: the redelivery resumes its own claims, lists, and
        releases what does not fit)."""
        if {target.destination_stage_arn for target in fresh} >= {rule.destination_stage_arn for rule in wanted}:
            return set()
        assert event.participant_id is not None
        return {
            r.destination_stage_arn
            for r in services.ivs.replicas(event.stage_arn, event.participant_id)
            if r.state == "ACTIVE"
        }

    def _start(
        self,
        records: ReplicationRecords,
        event: StageUpdate,
        rule: ReplicationRule,
        claim: ReplicationClaim | None,
        resuming: bool,
        services: Services,
        progress: _Progress,
    ) -> str | None:
        """Start one destination. Returns a reason when the publisher turned out to be gone (stop here).
        ``resuming``: this event's earlier delivery holds ``claim`` (``decide_claim``): no claim again."""
        target = _target(event, rule.destination_stage_arn)
        destination = rule.destination_stage_arn
        owner = event.envelope.owner
        if not resuming and not records.claim(target, owner=owner, expected=claim):
            progress.skipped[destination] = "another event claimed this replication first"
            progress.wait_for(HeldClaim("", services.clock()))  # claimed by a caller not named, just now
            return None
        request = rule.start_request(source_stage_arn=event.stage_arn, participant_id=target.participant_id)
        try:
            services.ivs.start_replication(request)
        except IvsQuotaExceeded:
            # 402: the participant's 5 concurrent replications (or the destination's 12 publishers) are
            # taken, replicas others started included. A limit, not a throttle: the destination is skipped
            # (reported over the limit), never retried, and its claim given up so a later publish may try.
            records.release(target, owner=owner)
            progress.over_limit.append(destination)
            services.metrics.count("ReplicationSkippedLimit")
            return None
        except IvsConflict:
            # 409 is undocumented for this operation: it may mean "already replicating", or not. IVS's own
            # listing decides; without an ACTIVE replica there, the claim stays ours and the event retries.
            listed = services.ivs.replicas(event.stage_arn, target.participant_id)
            if any(r.destination_stage_arn == destination and r.state == "ACTIVE" for r in listed):
                records.mark_started(target, owner=owner, how="conflict")
                progress.already.append(destination)
                return None
            progress.retry = progress.retry or RetryLater(
                f"StartParticipantReplication answered 409 but IVS lists no active replication to {destination}"
            )
            progress.retrying.append(target)
            return None
        except RetryLater as exc:  # the claim stays ours: this event's retry finishes it
            progress.retry = progress.retry or exc
            progress.retrying.append(target)
            return None
        except IvsRejected as exc:
            return self._rejected(records, event, rule, target, exc, services, progress)
        services.record_action(
            AuditRecord(
                time=event.time,
                stage_arn=event.stage_arn,
                automation=self.name,
                action="replication-started",
                reason=f"replicating to {destination}",
                session_id=event.session_id,
                participant_id=target.participant_id,
                user_id=event.user_id,
                result="started",
                event_id=event.event_id,
                details={"destinationStageArn": destination},
            ),
            "ReplicationStarted",
            change=records.starting(target, owner=owner, how="started"),
        )
        progress.started.append(destination)
        logger.info(
            "replication started",
            extra={
                "stage_arn": event.stage_arn,
                "participant_id": target.participant_id,
                "destination_stage_arn": destination,
                "reconnect_window_seconds": rule.reconnect_window_seconds,
            },
        )
        return None

    def _rejected(
        self,
        records: ReplicationRecords,
        event: StageUpdate,
        rule: ReplicationRule,
        target: ReplicationTarget,
        exc: IvsRejected,
        services: Services,
        progress: _Progress,
    ) -> str | None:
        # What a rejection means depends on the publisher, not on IVS's message: gone or no longer
        # publishing is a race (no-op); a publisher still there means the request itself is wrong.
        found = self._participant(services, event)
        gone = None
        if found is None or found.state != "CONNECTED" or not self._publishing(services, event):
            services.metrics.count("ReplicationPublisherGone")
            gone = f"the publisher stopped publishing before replication ({exc.code}: {exc.ivs_message})"
        elif found.is_replica:
            gone = "the publisher is a replica (GetParticipant); replicas are never replicated again"
        if gone is not None:
            # Nothing was started: give the claims up so a later publish may try again.
            for claimed in (target, *progress.retrying):
                records.release(claimed, owner=event.envelope.owner)
            progress.retry = None
            return gone
        destination = rule.destination_stage_arn
        reason = (
            f"destination stage {destination} was not found"
            if exc.not_found
            else f"IVS rejected StartParticipantReplication: {exc.code}: {exc.ivs_message}"
        )
        records.mark_rejected(target, owner=event.envelope.owner, rule_hash=rule_hash(rule), rejection=exc.code)
        services.record_action(
            AuditRecord(
                time=event.time,
                stage_arn=event.stage_arn,
                automation=self.name,
                action="replication-rejected",
                reason=reason,
                session_id=event.session_id,
                participant_id=target.participant_id,
                user_id=event.user_id,
                result=exc.code,
                event_id=event.event_id,
                details={
                    "operation": exc.operation,
                    "destinationStageArn": destination,
                    "message": exc.ivs_message,
                },
            ),
            "ReplicationFailed",
        )
        logger.error(
            "replication rejected: configuration error",
            extra={
                "stage_arn": event.stage_arn,
                "event_id": event.event_id,
                "destination_stage_arn": destination,
                "code": exc.code,
                "error": exc.ivs_message,
            },
        )
        progress.rejected[destination] = reason
        return None

    def _already_active(
        self,
        records: ReplicationRecords,
        event: StageUpdate,
        rule: ReplicationRule,
        claim: ReplicationClaim | None,
        resuming: bool,
        progress: _Progress,
    ) -> None:
        target = _target(event, rule.destination_stage_arn)
        owner = event.envelope.owner
        if resuming or records.claim(target, owner=owner, expected=claim):
            records.mark_started(target, owner=owner, how="already-active")
        progress.already.append(rule.destination_stage_arn)

    def _source_publisher(
        self, services: Services, event: StageUpdate, ids: dict[str, str], moderation: ModerationPolicy | None
    ) -> Participant | Outcome:
        """The publisher's token (user id, attributes, replication type), when it is not itself a replica;
        else why not. Moderation asks IVS about the same publisher when its attributes may decide: then
        whichever of the two asks first keeps the answer in the table for the other (adapters/publishers.py)."""
        assert event.participant_id is not None
        shared = may_need_attributes(event.user_id, moderation)
        tokens = PublisherTokens(services.table, clock=services.clock)
        # Replication asks IVS at once and keeps the answer; moderation, whose frame of GetParticipant comes
        # after (budget.py), reads it then (adapters/publishers.py). Replication starts a replica: it does not
        # wait on moderation, the busier function (every publish, flag and error).
        found = self._participant(services, event)
        if found is None:
            return self._skip("the publisher left before the event was handled", **ids)
        if shared and found.state:  # asked now (a kept answer has no state): kept for moderation
            tokens.put(event.stage_arn, event.session_id, found)
        if found.is_replica:
            return self._skip(
                f"the publisher is a replica from {found.source_stage_arn or 'another stage'} (GetParticipant); "
                "replicas are never replicated again",
                **ids,
            )
        return found

    def _match(
        self, rules: tuple[ReplicationRule, ...], event: StageUpdate, found: Participant | None, services: Services
    ) -> PublisherMatch:
        """The rules that match the publisher: on IVS's answer (user id, attributes) when there is one —
        a body that disagrees is audited ``body-mismatch`` — else on the body's user id, which only
        chooses whether IVS is asked before anything is started."""
        if found is None:
            return match_publisher(rules, stage_arn=event.stage_arn, user_id=event.user_id, attributes=None)
        if _user(found.user_id) != _user(event.user_id):
            audit_body_mismatch(services.audit, services.metrics, event, found, automation=self.name)
        return match_publisher(rules, stage_arn=event.stage_arn, user_id=found.user_id, attributes=found.attributes)

    @staticmethod
    def _publishing(services: Services, event: StageUpdate) -> bool:
        assert event.participant_id is not None
        return services.ivs.is_publishing(event.stage_arn, event.session_id, event.participant_id)

    @staticmethod
    def _participant(services: Services, event: StageUpdate) -> Participant | None:
        """GetParticipant; None when the participant (or its session) no longer exists."""
        assert event.participant_id is not None
        try:
            return services.ivs.participant(event.stage_arn, event.session_id, event.participant_id)
        except IvsRejected as exc:
            if exc.not_found:
                return None
            raise

    def _summary(self, progress: _Progress, ids: dict[str, str]) -> Outcome:
        details = progress.details(**ids)
        parts = []
        if progress.started:
            parts.append(f"started replication to {len(progress.started)} stage(s)")
        if progress.already:
            parts.append(f"already replicating to {len(progress.already)}")
        if progress.rejected:
            parts.append("IVS rejected " + "; ".join(progress.rejected.values()))
        if progress.over_limit:
            parts.append(
                f"{len(progress.over_limit)} skipped: over the limit of "
                f"{MAX_REPLICATIONS_PER_PARTICIPANT} concurrent replications per participant"
            )
        if progress.skipped:
            parts.append("; ".join(sorted(set(progress.skipped.values()))))
        reason = "; ".join(parts) or "nothing to replicate"
        held = progress.held
        if progress.started:
            return Outcome(self.name, "replication-started", reason, acted=True, details=details, held=held)
        if progress.rejected:
            return Outcome(self.name, "rejected", reason, details=details, held=held)
        return Outcome(self.name, "skip", reason, details=details, held=held)

    # the convergence pass -----------------------------------------------------------------------------
    def converge(self, stage: LiveStage, services: Services) -> list[Outcome]:
        """Every publisher a rule matches has an ACTIVE replica in each destination, as IVS lists them
        (ListParticipantReplicas); a missing one — its publish event lost, or IVS ended it and its stop
        event was lost — is made again through the same path as a Participant Published."""
        rules = stage.policy.replication if stage.policy is not None else ()
        candidates = candidate_rules(rules, stage_arn=stage.arn)
        if not candidates:
            return []
        records = services.replications
        outcomes = []
        for participant in stage.publishers(replicas=False):
            attributes = None
            if rules_need_attributes(candidates, user_id=participant.user_id):
                attributes = services.ivs.participant(
                    stage.arn, stage.session_id, participant.participant_id
                ).attributes
            match = match_publisher(rules, stage_arn=stage.arn, user_id=participant.user_id, attributes=attributes)
            if not match.matching:
                continue
            active = {
                r.destination_stage_arn
                for r in services.ivs.replicas(stage.arn, participant.participant_id)
                if r.state == "ACTIVE"
            }
            claims = {
                destination: records.get(
                    ReplicationTarget(stage.arn, stage.session_id, participant.participant_id, destination)
                )
                for destination in [rule.destination_stage_arn for rule in match.matching]
                if destination not in active
            }
            # A replica the destination's moderation removed is not missing: it was kept out (blocked).
            missing = [d for d, claim in claims.items() if claim is None or claim.state is not ClaimState.BLOCKED]
            if not missing:
                continue
            found = f"a matching publisher with no replica in {', '.join(missing)} at IVS"
            seen = stage.publish_seen(participant, "replication")
            for destination in missing:
                target = ReplicationTarget(stage.arn, stage.session_id, participant.participant_id, destination)
                claim = claims[destination]
                if claim is not None and claim.state is ClaimState.STARTED:
                    # The record says it runs; IVS says it does not (its stop event was lost): IVS wins.
                    records.record_event(
                        target,
                        kind=ReplicationEventKind.STOPPED,
                        event_name="ListParticipantReplicas",
                        at=stage.now,
                        destination_session_id=None,
                    )
            outcome = self._on_publish(
                seen, rules, services, moderation=stage.policy.moderation if stage.policy else None
            )
            if outcome.acted:
                outcome = Outcome(self.name, outcome.action, f"replicated: {found}", True, outcome.details)
            outcomes.append(outcome)
        return outcomes

    # Replication events ------------------------------------------------------------------------------
    def _on_replication_event(
        self, event: StageUpdate, rules: tuple[ReplicationRule, ...], services: Services
    ) -> Outcome:
        """Record what IVS says about the participant's replications. The event names the participant and
        its session, not which destination it is about (undocumented). When the policy replicates this stage
        to one destination only and stagepilot recorded that replication as started or stopped, the event
        is applied to it: one conditional write, no IVS call. Otherwise IVS's own listing says
        (ListParticipantReplicas), and each replication of this session is recorded as IVS reports it.
        docs/events.md says why a wrong guess (the application replicating the same participant elsewhere
        itself) is safe."""
        kind = replication_event_kind(event.event_name)
        ids = {"session_id": event.session_id}
        if kind is None:
            return self._skip(f"unknown replication event {event.event_name!r}; recorded nothing", **ids)
        if event.participant_id is None:
            return self._skip(f"{event.event_name} names no participant; recorded nothing", **ids)
        records = services.replications
        destination = only_destination(rules, stage_arn=event.stage_arn)
        if destination is not None:
            target = _target(event, destination)
            known = records.record_event(
                target, kind=kind, event_name=event.event_name, at=event.time, only_if_known=True
            )
            if known is not KnownEvent.UNKNOWN:
                recorded = [f"{destination} {kind.value}"] if known is KnownEvent.RECORDED else []
                return self._recorded(event, kind, recorded, services, how="for the policy's only destination")
        recorded = []
        for reported, state, destination_session_id in self._reported(event, kind, services):
            if (
                records.record_event(
                    _target(event, reported),
                    kind=state,
                    event_name=event.event_name,
                    at=event.time,
                    destination_session_id=destination_session_id,
                )
                is KnownEvent.RECORDED
            ):
                recorded.append(f"{reported} {state.value}")
        return self._recorded(event, kind, recorded, services, how="as IVS lists them")

    @staticmethod
    def _reported(
        event: StageUpdate, kind: ReplicationEventKind, services: Services
    ) -> list[tuple[str, ReplicationEventKind, str | None]]:
        """(destination, state, destination session) of each replication of this session that IVS lists:
        what the event may be about (its body names no destination IVS documents, and is not trusted to)."""
        assert event.participant_id is not None
        return [
            (
                r.destination_stage_arn,
                ReplicationEventKind.STARTED if r.state == "ACTIVE" else ReplicationEventKind.STOPPED,
                r.destination_session_id,
            )
            for r in services.ivs.replicas(event.stage_arn, event.participant_id)
            if r.source_session_id in (None, event.session_id)
        ]

    def _recorded(
        self, event: StageUpdate, kind: ReplicationEventKind, recorded: list[str], services: Services, *, how: str
    ) -> Outcome:
        details = {"session_id": event.session_id, "participant_id": event.participant_id, "recorded": recorded}
        if not recorded:
            return self._skip(f"{event.event_name}: nothing newer than what is recorded", **details)
        services.metrics.count("ReplicationEventRecorded", len(recorded))
        return Outcome(
            self.name,
            f"record-replication-{kind.value}",
            f"recorded {how}: {', '.join(recorded)}",
            details=details,
        )

    def _skip(self, reason: str, **details: Any) -> Outcome:
        return Outcome(self.name, "skip", reason, details=details)


def _user(user_id: str | None) -> str | None:
    return user_id or None  # IVS sends "" for a token without a user id


def _target(event: StageUpdate, destination_stage_arn: str) -> ReplicationTarget:
    assert event.participant_id is not None
    return ReplicationTarget(
        stage_arn=event.stage_arn,
        session_id=event.session_id,
        participant_id=event.participant_id,
        destination_stage_arn=destination_stage_arn,
    )
