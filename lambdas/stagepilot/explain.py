"""What each automation would do with one event now, and why, without acting (``stagepilot explain``).

Every verdict comes from the same code the handlers run: the routing table (which automations receive
the event at all), the pipeline's common checks (stage in scope, effective policy, paused), and the pure
decision functions in ``stagepilot.decisions``, fed the same reads of the table and of IVS that the
handlers make. What ``explain`` cannot do is write: where a handler would claim, count or call IVS, it
reads what is there and predicts the result. IVS may still reject a request it would make (a channel
that no longer exists, a quota), and a concurrent event may get there first.

``Explanation.action`` is the ``Outcome.action`` the handler would return (``composition-started``,
``replication-started``, ``disconnect``, ``would-disconnect``, ``skip``, ...), plus ``retry`` (the event
would be retried later), ``park`` (malformed: parked in the dead-letter queue) and ``not-routed``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from stagepilot.adapters.counters import CLAIM_TIMEOUT as DISCONNECT_CLAIM_TIMEOUT
from stagepilot.adapters.counters import ClaimState as DisconnectClaimState
from stagepilot.adapters.counters import DisconnectClaims, Kind, counter_key
from stagepilot.adapters.ivs import IvsRejected
from stagepilot.adapters.replication_state import ReplicationRecords
from stagepilot.adapters.state import CompositionRecords
from stagepilot.automations.composition import _policy_hash
from stagepilot.automations.moderation import NO_SESSION, judge_publisher
from stagepilot.automations.replication import _target
from stagepilot.decisions.composition import (
    Decision,
    State,
    decide_on_failure,
    decide_on_publish,
    managed_attempt,
)
from stagepilot.decisions.moderation import (
    NO_FLAG_LIMIT,
    Rule,
    Verdict,
    count_reason,
    events_in_window,
    should_disconnect_over_limit,
)
from stagepilot.decisions.replication import (
    MAX_REPLICATIONS_PER_PARTICIPANT,
    candidate_rules,
    decide_claim,
    match_publisher,
    plan_capacity,
    publisher_is_replica,
    replication_event_kind,
    rule_hash,
)
from stagepilot.decisions.replication import (
    needs_attributes as replication_needs_attributes,
)
from stagepilot.errors import MalformedEvent
from stagepilot.events import (
    CompositionStateChange,
    Event,
    ParticipantFlagged,
    RecordingStateChange,
    StageUpdate,
    parse_event,
)
from stagepilot.origin import check_origin
from stagepilot.pipeline import Services
from stagepilot.policy import CompositionPolicy, Limit, ModerationPolicy, PolicyInvalid, StagePolicy
from stagepilot.routing import (
    AUTOMATIONS,
    COMPOSITION,
    MODERATION,
    PARTICIPANT_PUBLISH_ERROR,
    PARTICIPANT_PUBLISHED,
    REPLICATION,
    Route,
)

NEEDS_POLICY = {COMPOSITION: True, REPLICATION: True, MODERATION: False}  # as each automation declares


@dataclass(frozen=True)
class Explanation:
    """One automation's verdict on the event."""

    automation: str
    routed: bool
    action: str  # the handler's Outcome.action, or "retry" / "park" / "not-routed"
    acts: bool  # it would call IVS (start, restart, replicate, disconnect)
    reason: str
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        if not self.routed:
            return f"not sent to {self.automation}: {self.reason}"
        if self.acts or self.action in ("would-disconnect", "retry", "park") or self.action.startswith("record-"):
            return f"would {self.reason}"
        return f"would not: {self.reason}"

    def to_json(self) -> dict[str, Any]:
        return {
            "automation": self.automation,
            "routed": self.routed,
            "action": self.action,
            "acts": self.acts,
            "summary": self.summary,
            "reason": self.reason,
            "details": dict(self.details),
        }


def routed_automations(document: Mapping[str, Any], routes: Sequence[Route]) -> set[str]:
    """The automations whose EventBridge rules match the event (moto's matcher, as ``simulate`` uses)."""
    from moto.events.models import EventPattern

    message: Any = dict(document)
    return {route.automation for route in routes if EventPattern.load(json.dumps(route.pattern)).matches_event(message)}


def explain_event(document: Mapping[str, Any], services: Services, *, routes: Sequence[Route]) -> list[Explanation]:
    """What each automation would do with ``document`` (an EventBridge envelope) now, in AUTOMATIONS order."""
    routed = routed_automations(document, routes)
    try:
        parsed = parse_event(dict(document))
        check_origin(parsed, services.settings, now=services.clock())
        event: Event | None = parsed
        malformed = ""
    except MalformedEvent as exc:
        event, malformed = None, str(exc)
    out = []
    for name in AUTOMATIONS:
        if name not in routed:
            out.append(Explanation(name, False, "not-routed", False, "no rule of this automation matches the event"))
        elif event is None:
            out.append(Explanation(name, True, "park", False, f"park it in the dead-letter queue: {malformed}"))
        else:
            out.append(_explain(name, event, services))
    return out


# the pipeline's common checks (pipeline.handle_event) ---------------------------------------------------
def _explain(name: str, event: Event, services: Services) -> Explanation:
    if not services.settings.covers(event.stage_arn):
        return _skip(name, "stage is outside the configured stage ARN prefixes")
    try:
        effective = services.effective_policies.get(event.stage_arn)
    except PolicyInvalid as exc:
        return Explanation(
            name, True, "retry", False, f"retry later: the stored policy for this stage is invalid: {exc}"
        )
    policy = effective.policy if effective else None
    details = {"policySource": effective.source if effective else "none"}
    if policy is not None and policy.paused:
        return _skip(name, "stage is paused", **details)
    if policy is None and NEEDS_POLICY[name]:
        return _skip(name, "no policy for this stage and no default policy", **details)
    try:
        found = {COMPOSITION: _composition, REPLICATION: _replication, MODERATION: _moderation}[name](
            event, policy, services
        )
    except IvsRejected as exc:
        return Explanation(name, True, "retry", False, f"fail on an IVS read and be retried: {exc}")
    return replace(found, details={**details, **found.details})


def _skip(name: str, reason: str, **details: Any) -> Explanation:
    return Explanation(name, True, "skip", False, reason, details)


# composition ---------------------------------------------------------------------------------------
def _composition(event: Event, policy: StagePolicy | None, services: Services) -> Explanation:
    if isinstance(event, RecordingStateChange):
        also = ", and audit and count the failure" if event.failed else ""
        return _skip(COMPOSITION, f"{event.event_name}: would record it for status{also}")
    if policy is None or policy.composition is None:
        return _skip(COMPOSITION, "the stage's policy has no composition section")
    composition = policy.composition
    if isinstance(event, StageUpdate) and event.event_name == PARTICIPANT_PUBLISHED:
        record = CompositionRecords(services.table, clock=services.clock).get(event.stage_arn, event.session_id)
        decision = decide_on_publish(
            record,
            event_id=event.event_id,
            now=services.clock(),
            event_time=event.time,
            policy_hash=_policy_hash(composition),
        )
        if not decision.act:
            return _skip(COMPOSITION, decision.reason, session_id=event.session_id)
        return _composition_start(event.stage_arn, event.session_id, decision, composition, services, restart=False)
    if isinstance(event, CompositionStateChange):
        return _composition_state_change(event, composition, services)
    return _skip(COMPOSITION, f"{getattr(event, 'event_name', type(event).__name__)} is not a composition trigger")


def _composition_state_change(
    event: CompositionStateChange, composition: CompositionPolicy, services: Services
) -> Explanation:
    tags = services.ivs.composition_tags(event.composition_arn)
    if tags is None:
        return _skip(COMPOSITION, "the composition no longer exists at IVS (the event is stale)")
    owned = managed_attempt(dict(tags))
    if owned is None:
        return _skip(COMPOSITION, "not a composition stagepilot started; left alone")
    session_id, attempt = owned
    if event.event_name == "Session End":
        return _skip(COMPOSITION, "composition ended normally; recorded, nothing to restart", session_id=session_id)
    if event.event_name == "Destination Failure":
        return _skip(
            COMPOSITION,
            "destination failed while the composition is alive; recorded, no restart",
            session_id=session_id,
        )
    if event.event_name != "Session Failure":
        return _skip(COMPOSITION, f"{event.event_name} needs no action")
    record = CompositionRecords(services.table, clock=services.clock).get(event.stage_arn, session_id)
    if record is not None and record.attempt == attempt and record.state in (State.STARTED, State.CLAIMED):
        record = replace(record, state=State.FAILED, failed_at=event.time)  # what the handler marks first
    decision = decide_on_failure(
        record,
        failed_attempt=attempt,
        max_restarts=composition.max_restarts,
        failed_at=event.time,
        now=services.clock(),
    )
    if not decision.act:
        return _skip(COMPOSITION, decision.reason, session_id=session_id)
    if decision.delay is not None:
        return Explanation(
            COMPOSITION,
            True,
            "retry",
            False,
            f"restart the composition after a back-off of {decision.delay.total_seconds():.0f} s ({decision.reason})",
            {"session_id": session_id},
        )
    return _composition_start(event.stage_arn, session_id, decision, composition, services, restart=True)


def _composition_start(
    stage_arn: str,
    session_id: str,
    decision: Decision,
    composition: CompositionPolicy,
    services: Services,
    *,
    restart: bool,
) -> Explanation:
    """The checks of CompositionAutomation._start, read-only."""
    ids = {"session_id": session_id}
    active_session = services.ivs.active_session_id(stage_arn)
    if active_session != session_id:
        return _skip(COMPOSITION, f"session {session_id} is not the stage's active session ({active_session})", **ids)
    if decision.needs_publishers and not services.ivs.has_publishers(stage_arn, session_id):
        return _skip(COMPOSITION, "nobody is publishing in the session", **ids)
    existing = next(
        (c for c in services.ivs.compositions(stage_arn) if c.active and managed_attempt(dict(c.tags)) is not None),
        None,
    )
    if existing is not None:
        return _skip(
            COMPOSITION,
            f"a stagepilot composition is already {existing.state.lower()} on the stage",
            **ids,
            composition_arn=existing.arn,
        )
    destinations = [d.get("name") or next(iter(k for k in d if k != "name"), "?") for d in composition.destinations]
    verb = "restart" if restart else "start"
    return Explanation(
        COMPOSITION,
        True,
        f"composition-{verb}ed",
        True,
        f"{verb} a composition: {decision.reason} {session_id} (attempt {decision.attempt}, "
        f"destinations {', '.join(map(str, destinations))})",
        {**ids, "attempt": decision.attempt},
    )


# replication ---------------------------------------------------------------------------------------
def _replication(event: Event, policy: StagePolicy | None, services: Services) -> Explanation:
    if not isinstance(event, StageUpdate):
        return _skip(REPLICATION, f"{type(event).__name__} is not a replication trigger")
    if event.event_name == PARTICIPANT_PUBLISHED:
        if policy is None or not policy.replication:
            return _skip(REPLICATION, "the stage's policy has no replication entries", session_id=event.session_id)
        return _replication_publish(event, policy, services)
    if "replication" in event.event_name.lower():
        kind = replication_event_kind(event.event_name)
        if kind is None:
            return _skip(REPLICATION, f"unknown replication event {event.event_name!r}; recorded nothing")
        if event.participant_id is None or event.destination_stage_arn is None:
            return _skip(REPLICATION, f"{event.event_name} names no participant or destination stage; recorded nothing")
        return Explanation(
            REPLICATION,
            True,
            f"record-replication-{kind.value}",
            False,
            f"record: replication {kind.value} (unless a newer event is already recorded)",
        )
    return _skip(REPLICATION, f"{event.event_name} is not a replication trigger")


def _replication_publish(event: StageUpdate, policy: StagePolicy, services: Services) -> Explanation:
    participant_id = event.participant_id
    assert participant_id is not None
    ids = {"session_id": event.session_id, "participant_id": participant_id}
    if publisher_is_replica(replica_flag=event.envelope.detail.get("replica"), source_stage_arn=event.source_stage_arn):
        return _skip(
            REPLICATION,
            f"the publisher is a replica from {event.source_stage_arn or 'another stage'}; replicas are never "
            "replicated again",
            **ids,
        )
    rules = policy.replication
    attributes: Mapping[str, str] | None = None
    if replication_needs_attributes(candidate_rules(rules, stage_arn=event.stage_arn), user_id=event.user_id):
        try:
            found = services.ivs.participant(event.stage_arn, event.session_id, participant_id)
        except IvsRejected as exc:
            if not exc.not_found:
                raise
            return _skip(REPLICATION, "the publisher left before the event was handled", **ids)
        if found.is_replica:
            return _skip(
                REPLICATION,
                f"the publisher is a replica from {found.source_stage_arn or 'another stage'} (GetParticipant); "
                "replicas are never replicated again",
                **ids,
            )
        attributes = found.attributes
    match = match_publisher(rules, stage_arn=event.stage_arn, user_id=event.user_id, attributes=attributes)
    if not match.matching:
        reason = "no replication entry matches the publisher"
        if match.own_stage and not match.not_matching:
            reason = "the only replication entries point at this stage itself"
        return _skip(REPLICATION, reason, **ids)
    records = ReplicationRecords(services.table, clock=services.clock)
    skipped: dict[str, str] = {}
    wanted = []
    for rule in match.matching:
        claim = records.get(_target(event, rule))
        decision = decide_claim(claim, event_id=event.event_id, now=services.clock(), rule_hash=rule_hash(rule))
        if decision.act:
            wanted.append(rule)
        else:
            skipped[rule.destination_stage_arn] = decision.reason
    if wanted and attributes is None:  # the handler confirms with GetParticipant before acting
        try:
            publisher = services.ivs.participant(event.stage_arn, event.session_id, participant_id)
        except IvsRejected as exc:
            if not exc.not_found:
                raise
            return _skip(REPLICATION, "the publisher left before the event was handled", **ids)
        if publisher.is_replica:
            return _skip(
                REPLICATION,
                f"the publisher is a replica from {publisher.source_stage_arn or 'another stage'} (GetParticipant); "
                "replicas are never replicated again",
                **ids,
            )
    start: list[str] = []
    already: list[str] = []
    over: list[str] = []
    if wanted:
        active = {
            r.destination_stage_arn
            for r in services.ivs.replicas(event.stage_arn, participant_id)
            if r.state == "ACTIVE"
        }
        plan = plan_capacity(wanted, active_destinations=active)
        start = [r.destination_stage_arn for r in plan.start]
        already = [r.destination_stage_arn for r in plan.already_active]
        over = [r.destination_stage_arn for r in plan.over_limit]
    parts = []
    if already:
        parts.append(f"already replicating to {len(already)}")
    if over:
        parts.append(
            f"{len(over)} skipped: over the limit of {MAX_REPLICATIONS_PER_PARTICIPANT} concurrent replications "
            "per participant"
        )
    if skipped:
        parts.append("; ".join(sorted(set(skipped.values()))))  # worded as ReplicationAutomation._summary
    details = {**ids, "start": start, "already": already, "over_limit": over, "skipped": skipped}
    if start:
        rest = f" ({'; '.join(parts)})" if parts else ""
        return Explanation(
            REPLICATION,
            True,
            "replication-started",
            True,
            f"replicate {participant_id} to {', '.join(start)}{rest}",
            details,
        )
    return _skip(REPLICATION, "; ".join(parts) or "nothing to replicate", **details)


# moderation ----------------------------------------------------------------------------------------
def _moderation(event: Event, policy: StagePolicy | None, services: Services) -> Explanation:
    moderation = policy.moderation if policy is not None else None
    if isinstance(event, StageUpdate) and event.event_name == PARTICIPANT_PUBLISHED:
        return _moderation_publish(event, moderation, services)
    if isinstance(event, StageUpdate) and event.event_name == PARTICIPANT_PUBLISH_ERROR:
        if moderation is None or moderation.publish_error_limit is None:
            return _skip(MODERATION, "the stage's policy sets no publishErrorLimit")
        return _moderation_counted(
            event, Kind.PUBLISH_ERROR, moderation.publish_error_limit, Rule.PUBLISH_ERROR_LIMIT, moderation, services
        )
    if isinstance(event, ParticipantFlagged):
        if moderation is None or moderation.flag_limit is None:
            return _skip(MODERATION, NO_FLAG_LIMIT)
        return _moderation_counted(event, Kind.FLAG, moderation.flag_limit, Rule.FLAG_LIMIT, moderation, services)
    return _skip(MODERATION, f"{getattr(event, 'event_name', type(event).__name__)} is not a moderation trigger")


def _moderation_publish(event: StageUpdate, moderation: ModerationPolicy | None, services: Services) -> Explanation:
    participant_id = event.participant_id
    if participant_id is None:
        return _skip(MODERATION, "the event names no participant")
    if event.source_stage_arn is not None:
        return _skip(MODERATION, "a replica: moderated on its source stage", participant_id=participant_id)
    verdict = judge_publisher(event, participant_id, moderation, services)
    if isinstance(verdict, str):
        return _skip(MODERATION, verdict, participant_id=participant_id)
    return _disconnect(event, participant_id, verdict, moderation, services)


def _moderation_counted(
    event: StageUpdate | ParticipantFlagged,
    kind: Kind,
    limit: Limit,
    rule: Rule,
    moderation: ModerationPolicy,
    services: Services,
) -> Explanation:
    participant_id = event.participant_id
    if participant_id is None:
        return _skip(MODERATION, "the event names no participant")
    what = "flags" if kind is Kind.FLAG else "publish errors"
    item = services.table.get(*counter_key(event.stage_arn, event.session_id, participant_id, kind), consistent=True)
    counted: dict[str, Any] = dict((item or {}).get("events") or {})
    times = [datetime.fromtimestamp(int(v) / 1000, UTC) for k, v in counted.items() if k != event.event_id]
    times.append(event.time)  # the handler counts this event first (once: a redelivery is not counted twice)
    verdict = should_disconnect_over_limit(
        times, at=event.time, limit=limit, rule=rule, moderation=moderation, what=what
    )
    if verdict is None:
        seen = events_in_window(times, at=event.time, window_seconds=limit.window_seconds)
        return _skip(MODERATION, count_reason(seen, limit, what), participant_id=participant_id)
    return _disconnect(event, participant_id, verdict, moderation, services)


def _disconnect(
    event: Event, participant_id: str, verdict: Verdict, moderation: ModerationPolicy | None, services: Services
) -> Explanation:
    """The claim check of moderation.disconnect_participant, read-only."""
    dry_run = moderation.dry_run if moderation is not None else False
    session = event.session_id or NO_SESSION
    ids = {"session_id": session, "participant_id": participant_id, "rule": verdict.rule.value}
    claim = DisconnectClaims(services.table, clock=services.clock).get(
        event.stage_arn, session, participant_id, dry_run=dry_run
    )
    if claim is not None and claim.state is DisconnectClaimState.DONE:
        done = "would have been disconnected" if dry_run else "already disconnected"
        return _skip(MODERATION, f"participant {done} in this session ({claim.result or 'done'})", **ids)
    if (
        claim is not None
        and claim.owner != event.event_id
        and services.clock() - claim.claimed_at <= DISCONNECT_CLAIM_TIMEOUT
    ):
        return _skip(MODERATION, "another event is disconnecting this participant", **ids)
    if dry_run:
        return Explanation(
            MODERATION,
            True,
            "would-disconnect",
            False,
            f"record a dry-run disconnect ({verdict.rule.value}): {verdict.why}; moderation.dryRun is on, "
            "nothing is called on IVS",
            ids,
        )
    return Explanation(
        MODERATION,
        True,
        "disconnect",
        True,
        f"disconnect {participant_id} ({verdict.rule.value}): {verdict.why}; reason sent: {verdict.reason!r}",
        ids,
    )
