"""Moderation automation: disconnect banned, blocked and over-the-limit participants.

- ``Participant Published``: the global ban list (every stage that is not paused, policy or not), then
  the stage's ``blockedUserIds``, then ``blockedAttributes`` (GetParticipant only when the policy has
  such rules). IVS's answer decides who the participant is: a match on the body's user id alone is
  confirmed with one GetParticipant before anyone is disconnected, and a body that disagrees with IVS is
  audited ``body-mismatch``. Replicas are participants of their destination stage and are judged by its
  policy; one that is disconnected is kept out of that stage for the rest of its source session
  (``blocked-at-destination``, on the source stage's side).
- ``Participant Publish Error`` / ``Participant Flagged``: counted per participant in the table on
  event time (adapters/counters.py); at ``publishErrorLimit`` / ``flagLimit`` the participant goes.
  Flags count distinct reporters: one ``reporter`` counts once per window whatever its event ids;
  flags without a reporter count once per event id (docs/events.md).
  Each is counted only where the policy sets its limit: neither has an implicit default.

Every disconnect goes through ``disconnect_participant``, which the CLI's manual kick uses too: at most
once per participant and session (a conditional claim), the participant's replicas stopped after it,
every decision audited and counted, and in ``dryRun`` nothing called on IVS.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from stagepilot.adapters.bans import BanList
from stagepilot.adapters.counters import ClaimState, Kind
from stagepilot.adapters.ivs import IvsConflict, IvsRejected, Participant
from stagepilot.adapters.publishers import (
    PublisherTokens,
    audit_body_mismatch,
    blocking_replica,
    publisher,
    publisher_key,
)
from stagepilot.adapters.table import JOIN, PUBLISH, AuditRecord, Ban
from stagepilot.decisions.leases import HeldClaim
from stagepilot.decisions.moderation import (
    MAX_REASON_LENGTH,
    NO_FLAG_LIMIT,
    Rule,
    Verdict,
    count_reason,
    disconnect_reason,
    events_in_window,
    needs_attributes,
    should_disconnect_over_limit,
    should_disconnect_publisher,
    should_disconnect_viewer,
)
from stagepilot.decisions.publishers import asks_ivs_about, may_need_attributes
from stagepilot.errors import RetryLater
from stagepilot.events import Event, ParticipantFlagged, StageUpdate
from stagepilot.pipeline import Outcome, Services, stage_gate
from stagepilot.policy import Limit, ModerationPolicy, PolicyInvalid, StagePolicy
from stagepilot.routing import MODERATION, PARTICIPANT_PUBLISH_ERROR, PARTICIPANT_PUBLISHED

if TYPE_CHECKING:
    from stagepilot.convergence import LiveStage

logger = logging.getLogger(__name__)

DISCONNECTED_METRIC = "ParticipantDisconnected"
WOULD_DISCONNECT_METRIC = "ParticipantWouldDisconnect"
DISCONNECT_REJECTED_METRIC = "DisconnectRejected"
NO_SESSION = "no-session"
IVS_REFUSED_PUBLISH = (
    "IVS refused the publish (the door issued the token without PUBLISH: INSUFFICIENT_CAPABILITIES); not abuse"
)


class ModerationAutomation:
    name = MODERATION
    needs_policy = False  # the global ban list applies to stages without a policy too

    def handle(self, event: Event, policy: StagePolicy | None, services: Services) -> Outcome:
        moderation = policy.moderation if policy is not None else None
        if isinstance(event, StageUpdate) and event.event_name == PARTICIPANT_PUBLISHED:
            replicated = asks_ivs_about(
                policy.replication if policy is not None else (), stage_arn=event.stage_arn, user_id=event.user_id
            )
            return self._on_published(event, moderation, services, replicated=replicated)
        if isinstance(event, StageUpdate) and event.event_name == PARTICIPANT_PUBLISH_ERROR:
            if moderation is None or moderation.publish_error_limit is None:
                return _skip("the stage's policy sets no publishErrorLimit")
            if (
                event.user_id
                and event.participant_id
                and services.tokens.issued_without_publish(event.user_id, event.stage_arn, event.participant_id)
            ):
                return _skip(IVS_REFUSED_PUBLISH, participant_id=event.participant_id)
            return self._on_counted(
                event,
                participant_id=event.participant_id,
                user_id=event.user_id,
                kind=Kind.PUBLISH_ERROR,
                limit=moderation.publish_error_limit,
                rule=Rule.PUBLISH_ERROR_LIMIT,
                moderation=moderation,
                services=services,
                what="publish errors",
            )
        if isinstance(event, ParticipantFlagged):
            if moderation is None or moderation.flag_limit is None:
                return _skip(NO_FLAG_LIMIT)
            return self._on_counted(
                event,
                participant_id=event.participant_id,
                user_id=event.user_id,
                kind=Kind.FLAG,
                limit=moderation.flag_limit,
                rule=Rule.FLAG_LIMIT,
                moderation=moderation,
                services=services,
                what="flags",
                flag_reason=event.reason,
                reporter=event.reporter,
            )
        return _skip(f"{getattr(event, 'event_name', type(event).__name__)} is not a moderation trigger")

    # Participant Published ---------------------------------------------------------------------------
    def _on_published(
        self, event: StageUpdate, moderation: ModerationPolicy | None, services: Services, *, replicated: bool
    ) -> Outcome:
        participant_id = event.participant_id
        if participant_id is None:
            return _skip("the event names no participant")
        judged = judge_publisher(event, participant_id, moderation, services, share=replicated)
        if isinstance(judged, str):
            return _skip(judged, participant_id=participant_id)
        verdict, found = judged
        user_id = found.user_id if found is not None else event.user_id
        # IVS's answer, asked for this decision: not a replication source, and no rule of the policy makes
        # stagepilot replicate it: no replica to stop after the disconnect (docs/reliability.md)
        unreplicated = not replicated and found is not None and found.state != "" and found.replication_type == "NONE"
        return self._act(
            event, participant_id, user_id, verdict, moderation, services, found=found, unreplicated=unreplicated
        )

    # Participant Publish Error / Participant Flagged -------------------------------------------------
    def _on_counted(
        self,
        event: StageUpdate | ParticipantFlagged,
        *,
        participant_id: str | None,
        user_id: str | None,
        kind: Kind,
        limit: Limit,
        rule: Rule,
        moderation: ModerationPolicy,
        services: Services,
        what: str,
        flag_reason: str | None = None,
        reporter: str | None = None,
    ) -> Outcome:
        if participant_id is None:
            return _skip("the event names no participant")
        counted = services.counters.add(
            event.stage_arn,
            event.session_id,
            participant_id,
            kind,
            event_id=event.event_id,
            time=event.time,
            window_seconds=limit.window_seconds,
            reporter=reporter,
        )
        verdict = should_disconnect_over_limit(
            counted.times, at=event.time, limit=limit, rule=rule, moderation=moderation, what=what
        )
        if verdict is None:
            seen = events_in_window(counted.times, at=event.time, window_seconds=limit.window_seconds)
            return _skip(count_reason(seen, limit, what), participant_id=participant_id)
        if flag_reason:
            verdict = Verdict(verdict.rule, verdict.reason, f"{verdict.why}; last flag: {flag_reason[:200]}")
        return self._act(event, participant_id, user_id, verdict, moderation, services)

    # the convergence pass -----------------------------------------------------------------------------
    def converge(self, stage: LiveStage, services: Services) -> list[Outcome]:
        """Every connected publisher (replicas included: they are participants of this stage) judged as its
        Participant Published would have been (bans, blocked user ids and attributes): one whose event never
        arrived is disconnected now. The listing is IVS's answer: who each one is, and which are replicas."""
        moderation = stage.policy.moderation if stage.policy is not None else None
        outcomes = []
        for participant in stage.connected():
            seen = stage.publish_seen(participant, "moderation")
            judged: tuple[Verdict, Participant | None] | str
            if participant.published:
                judged = judge_publisher(
                    seen, participant.participant_id, moderation, services, listed=participant, bans=stage.bans
                )
            elif participant.is_replica:
                continue  # replicas are moderated at their source
            else:  # a subscriber sends no events: only the pass finds a join-banned one
                viewer = judge_viewer(stage.bans, participant.user_id, stage.arn, moderation)
                judged = viewer if isinstance(viewer, str) else (viewer, participant)
            if isinstance(judged, str):
                continue
            verdict, known = judged
            who = "publisher" if participant.published else "participant"
            found = f"a connected {who} the policy removes ({verdict.rule.value}) that is still on the stage"
            outcome = self._act(
                seen, participant.participant_id, participant.user_id, verdict, moderation, services, found=known
            )
            if outcome.acted:
                outcome = Outcome(MODERATION, outcome.action, f"disconnected: {found}", True, outcome.details)
            outcomes.append(outcome)
        return outcomes

    def _act(
        self,
        event: Event,
        participant_id: str,
        user_id: str | None,
        verdict: Verdict,
        moderation: ModerationPolicy | None,
        services: Services,
        *,
        found: Participant | None = None,
        unreplicated: bool = False,
    ) -> Outcome:
        return disconnect_participant(
            services,
            stage_arn=event.stage_arn,
            session_id=event.session_id,
            participant_id=participant_id,
            user_id=user_id,
            rule=verdict.rule,
            reason=verdict.reason,
            dry_run=moderation.dry_run if moderation is not None else False,
            event_id=event.event_id,
            owner=event.envelope.owner,
            time=event.time,
            why=verdict.why,
            replica=found if found is not None and found.is_replica else None,
            unreplicated=unreplicated,
        )


# The one place a participant is disconnected ---------------------------------------------------------
def judge_publisher(
    event: StageUpdate,
    participant_id: str,
    moderation: ModerationPolicy | None,
    services: Services,
    *,
    share: bool = False,
    listed: Participant | None = None,
    bans: BanList | None = None,
) -> tuple[Verdict, Participant | None] | str:
    """The rule that disconnects this publisher and IVS's answer about it (None only when ``listed``
    gave none), or why no rule does.

    Who the participant is (user id, attributes, replica or not) is IVS's answer, never the body's:
    ``listed`` is the pass's (ListParticipants); on the event path the body's user id only chooses what
    to look at, and a rule it matches is confirmed with one GetParticipant before it may disconnect
    anyone (a body that disagrees with IVS is audited ``body-mismatch`` and judged as IVS says).
    The bans that apply come from ``bans`` (the list the pass read once), else nothing while this
    container knows the ban list empty (``BanListWatch``: read once a lifetime), else the user's two ban
    keys. The token's attributes are read only when a rule needs them: kept in the table when replication
    asks IVS about the publisher too (``share``; the pass always looks), read with the ban in one request,
    else from GetParticipant, kept for replication when ``share``. Shared by the handler and the pass."""
    user_id = listed.user_id if listed is not None else event.user_id
    ivs: Participant | None = None  # GetParticipant's answer (asked now, or kept in the table)
    no_bans = bans is None and services.ban_watch.empty()

    def ban_of(user: str | None) -> Ban | None:
        if not user or no_bans:
            return None
        if bans is not None:
            return bans.applying(user, event.stage_arn)
        return services.bans.for_stage(user, event.stage_arn)

    kept = publisher_key(event.stage_arn, event.session_id, participant_id)
    if user_id and may_need_attributes(user_id, moderation) and (share or listed is not None):
        if bans is None and not no_bans:  # read with the ban, in one request
            ban, item = services.bans.get_with(user_id, event.stage_arn, kept)
            ivs = publisher(item) if item else None
        elif listed is not None:
            ban, item = ban_of(user_id), services.table.get(*kept, consistent=True)
            ivs = publisher(item) if item else None
        else:  # read after the wait for moderation's GetParticipant frame instead, when it waits (ask)
            ban = ban_of(user_id)
    else:
        ban = ban_of(user_id)

    def ask() -> Participant | None:
        # A shared publisher's GetParticipant waits for moderation's frame (budget.py): replication's may
        # have come first and kept its answer meanwhile, read then instead of asking IVS again.
        tokens = PublisherTokens(services.table, clock=services.clock)
        kept_now = (lambda: tokens.get(event.stage_arn, event.session_id, participant_id)) if share else None
        try:
            found = services.ivs.participant(event.stage_arn, event.session_id, participant_id, kept=kept_now)
        except IvsRejected as exc:
            if not exc.not_found:
                raise
            return None
        if share and found.state:  # asked now (a kept answer has no state): kept for replication
            tokens.put(event.stage_arn, event.session_id, found)
        return found

    def identify(found: Participant) -> None:
        """IVS's answer decides who the participant is."""
        nonlocal user_id, ban
        if (found.user_id or None) == (user_id or None):
            return
        audit_body_mismatch(services.audit, services.metrics, event, found, automation=MODERATION)
        user_id = found.user_id
        ban = ban_of(user_id)

    if ivs is not None:
        identify(ivs)
    attributes = None
    if needs_attributes(user_id, banned=ban is not None, moderation=moderation):
        if ivs is None:
            ivs = ask()
            if ivs is None:
                return "IVS no longer knows the participant; nothing to check"
            identify(ivs)
        attributes = ivs.attributes
    verdict = should_disconnect_publisher(
        user_id,
        banned=ban is not None,
        ban_reason=ban.reason if ban is not None else "",
        moderation=moderation,
        attributes=attributes,
        stage_ban=ban is not None and ban.stage_arn is not None,
        publish_only=ban is not None and ban.scope == PUBLISH,
    )
    if verdict is not None and ivs is None and listed is None:
        # The match rests on the body alone: confirmed with IVS before anyone is disconnected.
        ivs = ask()
        if ivs is None:
            return "IVS no longer knows the participant; nothing to check"
        identify(ivs)
        if needs_attributes(user_id, banned=ban is not None, moderation=moderation):
            attributes = ivs.attributes
        verdict = should_disconnect_publisher(
            user_id,
            banned=ban is not None,
            ban_reason=ban.reason if ban is not None else "",
            moderation=moderation,
            attributes=attributes,
            stage_ban=ban is not None and ban.stage_arn is not None,
            publish_only=ban is not None and ban.scope == PUBLISH,
        )
    if verdict is None:
        return "no moderation rule matches the publisher"
    return verdict, ivs if ivs is not None else listed


def judge_viewer(
    bans: BanList, user_id: str | None, stage_arn: str, moderation: ModerationPolicy | None
) -> Verdict | str:
    """A connected participant that has not published: disconnected only under a ``join`` ban (global or
    the stage's), from the ban list the pass read once."""
    ban = bans.applying(user_id, stage_arn)
    verdict = should_disconnect_viewer(
        user_id,
        join_banned=ban is not None and ban.scope == JOIN,
        stage_ban=ban is not None and ban.stage_arn is not None,
        ban_reason=ban.reason if ban is not None else "",
        moderation=moderation,
    )
    return verdict if verdict is not None else "no join ban applies to the participant"


def disconnect_participant(
    services: Services,
    *,
    stage_arn: str,
    session_id: str | None,
    participant_id: str,
    user_id: str | None,
    rule: Rule | str,
    reason: str,
    dry_run: bool,
    event_id: str,
    time: datetime,
    why: str = "",
    replica: Participant | None = None,
    owner: str | None = None,
    unreplicated: bool = False,
) -> Outcome:
    """Disconnect one participant (once per stage session) and stop its replicas; audit and count it.

    ``session_id`` None: the stage's active session (the manual kick). ``owner`` (default ``event_id``, which
    the audit names) holds the disconnect's claim: a retry by the same owner (the same delivery of an
    event: ``Envelope.owner``) resumes a disconnect that was cut short, and anyone takes over one whose
    owner's lease ran out; either asks IVS first (GetParticipant) and does not disconnect again a participant
    the earlier try disconnected. Any other caller finds it done, or held while its owner acts, and does
    nothing now: the outcome names the held claim (``Outcome.held``), and an event is tried again once its
    lease can have run out (the pass, the sweep and the manual kick leave it to its owner). ``dry_run``: audit
    and count a would-disconnect, call nothing on IVS.
    ``replica``: IVS's answer when the participant is a replica on this (its destination) stage: before
    the disconnect its replication is blocked for the rest of its source session (audited
    ``blocked-at-destination`` on the source stage), and after it the replication is stopped.
    ``unreplicated``: GetParticipant, asked for this decision, said the participant is no replication
    source, and no rule of the stage's policy replicates it: its replicas are not listed after the
    disconnect (one that started since, within about a second, ends at its reconnect window).
    Raises ``RetryLater`` on a transient IVS or DynamoDB failure (the claim stays with its owner).
    """
    owner = owner or event_id
    reason = (reason or disconnect_reason(None))[:MAX_REASON_LENGTH]
    rule = Rule(rule)
    session = session_id or services.ivs.live_session_id(stage_arn) or NO_SESSION
    details: dict[str, Any] = {"session_id": session, "participant_id": participant_id, "rule": rule.value}
    claims = services.disconnect_claims
    claim, current = claims.claim(stage_arn, session, participant_id, owner=owner, dry_run=dry_run)
    if claim is None:
        if current is not None and current.state is ClaimState.DONE:
            done = "would have been disconnected" if dry_run else "already disconnected"
            return _skip(f"participant {done} in this session ({current.result or 'done'})", **details)
        # Another owner's claim, its lease running (``current``; None: taken over by a caller not named, just
        # now): an event is tried again once it can have run out (``pipeline.handle_record``).
        held = HeldClaim(current.owner, current.claimed_at) if current is not None else HeldClaim("", services.clock())
        return Outcome(
            MODERATION, "skip", "another event is disconnecting this participant", details=details, held=held
        )

    def audit(action: str, result: str, metric: str, **extra: Any) -> None:
        """Audit the decision and finish the claim with ``result``, in one call, and count ``metric``."""
        services.record_action(
            AuditRecord(
                time=time,
                stage_arn=stage_arn,
                automation=MODERATION,
                action=action,
                reason=reason,
                session_id=None if session == NO_SESSION else session,
                participant_id=participant_id,
                user_id=user_id,
                rule=rule.value,
                dry_run=dry_run,
                result=result,
                event_id=event_id,
                details={**({"why": why} if why else {}), **extra},
            ),
            metric,
            change=claims.finishing(stage_arn, session, participant_id, owner=owner, dry_run=dry_run, result=result),
        )

    if dry_run:
        audit("would-disconnect", "dry-run", WOULD_DISCONNECT_METRIC)
        return Outcome(
            MODERATION,
            "would-disconnect",
            f"dry run: would disconnect ({rule.value}): {why or reason}",
            details=details,
        )

    def rejected(code: str, message: str) -> Outcome:
        # The same request cannot succeed later (IAM, a stage that is gone): recorded once, not retried.
        audit("disconnect-rejected", code, DISCONNECT_REJECTED_METRIC, error=message)
        return Outcome(
            MODERATION, "rejected", f"IVS rejected DisconnectParticipant: {code}: {message}", details=details
        )

    if replica is not None:
        block_replica(services, replica, destination_stage_arn=stage_arn, rule=rule, event_id=event_id, time=time)
    try:
        if claim.verdict is not None and _disconnected_already(services, stage_arn, session, participant_id):
            # An earlier try (this delivery's, or a dead owner's) disconnected it and stopped before recording
            # it: IVS's answer says so, and DisconnectParticipant is not called twice (as a composition's resume
            # asks IVS before starting again).
            logger.info(
                "disconnect not repeated: IVS shows the participant disconnected by an earlier try",
                extra={"stage_arn": stage_arn, "session_id": session, "participant_id": participant_id},
            )
        else:
            services.ivs.disconnect(stage_arn, participant_id, reason)
        result = "disconnected"
    except IvsRejected as exc:
        if not exc.not_found:
            return rejected(exc.code, exc.ivs_message)
        result = "not-connected"  # gone already (or an earlier delivery of this event disconnected it)
    except IvsConflict as exc:
        return rejected("ConflictException", exc.ivs_message)
    if replica is not None:
        source = stop_replication_into(services, replica, destination_stage_arn=stage_arn)
        stopped = [source] if source else []
        audit("disconnect", result, DISCONNECTED_METRIC, **({"replicationStoppedFrom": source} if source else {}))
    else:
        stopped = [] if unreplicated else stop_replicas(services, stage_arn, participant_id)
        audit("disconnect", result, DISCONNECTED_METRIC, **({"replicasStopped": stopped} if stopped else {}))
    return Outcome(
        MODERATION,
        "disconnect",
        f"disconnected ({rule.value}): {why or reason}",
        acted=True,
        details={**details, "result": result, "replicas_stopped": stopped},
    )


def _disconnected_already(services: Services, stage_arn: str, session_id: str, participant_id: str) -> bool:
    """IVS shows the participant DISCONNECTED in the session (GetParticipant). A participant IVS does not
    know, or a read IVS refuses, says nothing: the disconnect goes ahead as on a first try."""
    if session_id == NO_SESSION:
        return False
    try:
        return services.ivs.participant(stage_arn, session_id, participant_id).state == "DISCONNECTED"
    except IvsRejected:
        return False


def block_replica(
    services: Services,
    replica: Participant,
    *,
    destination_stage_arn: str,
    rule: Rule,
    event_id: str,
    time: datetime,
) -> None:
    """Keep a replica this stage's moderation removes out of this stage for the rest of its source
    session: the source's replication record becomes ``blocked`` (neither the event path nor the pass
    replicates it here again) and the source stage's audit trail says so, in one transaction, once."""
    source, session = replica.source_stage_arn, replica.source_session_id
    if not source or not session:
        logger.warning(
            "replica without its source in IVS's answer: not blocked",
            extra={"stage_arn": destination_stage_arn, "participant_id": replica.participant_id},
        )
        return
    change = blocking_replica(
        source_stage_arn=source,
        source_session_id=session,
        participant_id=replica.participant_id,
        destination_stage_arn=destination_stage_arn,
        by=event_id,
        rule=rule.value,
        now=services.clock(),
    )
    entry = AuditRecord(
        time=time,
        stage_arn=source,
        automation=MODERATION,
        action="blocked-at-destination",
        reason=(
            f"the moderation of {destination_stage_arn} removes this participant's replica ({rule.value}): "
            "not replicated there again in this session"
        ),
        session_id=session,
        participant_id=replica.participant_id,
        user_id=replica.user_id,
        rule=rule.value,
        result="blocked",
        event_id=event_id,
        details={"destinationStageArn": destination_stage_arn},
    )
    services.record_action(entry, "ReplicaBlocked", change=change, only_if_changed=True)


def stop_replication_into(services: Services, replica: Participant, *, destination_stage_arn: str) -> str | None:
    """Stop the replication that brings ``replica`` into ``destination_stage_arn`` (IVS does not document
    whether disconnecting a replica ends its replication). Returns its source stage when one was stopped."""
    source = replica.source_stage_arn
    if not source:
        return None
    try:
        services.ivs.stop_replication(source, destination_stage_arn, replica.participant_id)
    except IvsRejected as exc:
        if not exc.not_found:
            raise
        return None  # ended with the disconnect (or before)
    return source


def stop_replicas(services: Services, stage_arn: str, participant_id: str) -> list[str]:
    """Stop the participant's ACTIVE replications out of ``stage_arn``; the destination stages stopped."""
    stopped = []
    for replica in services.ivs.replicas(stage_arn, participant_id):
        if replica.state != "ACTIVE":
            continue
        try:
            services.ivs.stop_replication(stage_arn, replica.destination_stage_arn, participant_id)
        except IvsRejected as exc:
            if not exc.not_found:
                raise
            continue  # stopped meanwhile
        stopped.append(replica.destination_stage_arn)
    return stopped


# The disconnect sweep of ``stagepilot ban add`` ------------------------------------------------------
def sweep_banned_user(
    services: Services, user_id: str, *, reason: str, stage_arns: Iterable[str], ban: Ban | None = None
) -> list[Outcome]:
    """Disconnect ``user_id``'s connected participants in the active sessions of ``stage_arns``
    (``ban``: the ban added, global when None; under a publish ban only those that published).

    ``stage_arns``: the stages that have a policy (the CLI lists them). Paused stages and stages
    outside the configured prefixes are left alone, like the automation does; a stage whose moderation
    is in ``dryRun`` records would-disconnects. Calls are paced by the IVS adapter (5-TPS quota). A
    participant IVS could not disconnect now (throttled, 5xx) is reported as ``failed``, not raised.
    """
    sweep_id = f"ban-sweep:{user_id}"  # the same for every sweep of this user: a rerun resumes a cut-short one
    now = services.clock()
    outcomes: list[Outcome] = []
    for stage_arn in dict.fromkeys(stage_arns):
        try:
            gate = stage_gate(services, stage_arn, needs_policy=False)
        except PolicyInvalid as exc:
            outcomes.append(_skip(f"the stored policy is invalid; stage skipped: {exc}", stage_arn=stage_arn))
            continue
        if gate.closed is not None:
            outcomes.append(_skip(gate.closed, stage_arn=stage_arn))
            continue
        moderation = gate.policy.moderation if gate.policy is not None else None
        try:
            session_id = services.ivs.live_session_id(stage_arn)
        except IvsRejected as exc:
            outcomes.append(_skip(f"IVS: {exc.code}: {exc.ivs_message}", stage_arn=stage_arn))
            continue
        if session_id is None:
            outcomes.append(_skip("no active session", stage_arn=stage_arn))
            continue
        found = services.ivs.participants(stage_arn, session_id, user_id=user_id)
        publish_only = ban is not None and ban.scope == PUBLISH
        connected = [
            p for p in found if p.state == "CONNECTED" and not p.is_replica and (p.published or not publish_only)
        ]
        if not connected:
            outcomes.append(_skip(f"{user_id} is not connected", stage_arn=stage_arn, session_id=session_id))
        for participant in connected:
            try:
                outcome = disconnect_participant(
                    services,
                    stage_arn=stage_arn,
                    session_id=session_id,
                    participant_id=participant.participant_id,
                    user_id=user_id,
                    rule=Rule.STAGE_BAN if ban is not None and ban.stage_arn else Rule.GLOBAL_BAN,
                    reason=disconnect_reason(moderation, ban_reason=reason),
                    dry_run=moderation.dry_run if moderation is not None else False,
                    event_id=sweep_id,
                    time=now,
                    why=f"user {user_id} was banned",
                )
            except RetryLater as exc:
                # Reported, not raised: the rest of the sweep still runs. The claim stays with this
                # sweep's id, so running the sweep again for the user resumes it.
                outcome = Outcome(
                    MODERATION,
                    "failed",
                    f"not disconnected yet ({exc}); run the command again to finish",
                    details={"session_id": session_id, "participant_id": participant.participant_id},
                )
            outcomes.append(
                Outcome(
                    outcome.automation,
                    outcome.action,
                    outcome.reason,
                    acted=outcome.acted,
                    details={**outcome.details, "stage_arn": stage_arn},
                )
            )
    return outcomes


def _skip(reason: str, **details: Any) -> Outcome:
    return Outcome(MODERATION, "skip", reason, details=details)
