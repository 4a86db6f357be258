"""The steps every automation shares, from one SQS record to one outcome.

    body ─parse→ event ─from where it may, at a believable time? (origin.py)→ event
         ─stage in scope?→ effective policy (cached) ─paused?→ automation.handle → Outcome

What a failure means is decided once, for this path and the convergence pass (``stagepilot.failures``);
here it is carried out: a malformed event is parked in the dead-letter queue at once and counted
(``MalformedEvent``), a transient failure is reported as a batch item failure with a back-off so the queue
redelivers it, and after the queue's last receive the event is in the DLQ where an alarm fires (that last
receive first releases the claims its event holds, ``adapters/leases.py``). Used by the Lambda handlers
and by ``stagepilot simulate``.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

from stagepilot.adapters.audit import AuditLog, AuditRecord, MetricSink, record_action
from stagepilot.adapters.bans import BanListWatch, BanStore
from stagepilot.adapters.changes import FORCED_LIFETIMES, ChangeMark
from stagepilot.adapters.dynamo import ConditionalUpdate, Table, parse_iso
from stagepilot.adapters.ivs import IvsStage
from stagepilot.adapters.leases import release_claims
from stagepilot.adapters.pauses import PauseSwitches
from stagepilot.adapters.policies import PolicyLookup, PolicySnapshot, PolicyStore, StoredPolicy
from stagepilot.config import Settings
from stagepilot.decisions.leases import MAX_RECEIVES, HeldClaim
from stagepilot.errors import ClaimHeld, MalformedEvent, RetryLater
from stagepilot.events import Event, delivered, parse_body
from stagepilot.failures import Log, Meaning, Path, describe, handling, metrics
from stagepilot.origin import check_origin
from stagepilot.policy import PolicyInvalid, StagePolicy

if TYPE_CHECKING:
    from stagepilot.adapters.counters import DisconnectClaims, WindowCounters
    from stagepilot.adapters.replication_state import ReplicationRecords
    from stagepilot.adapters.settings_records import SettingsRecords
    from stagepilot.adapters.state import CompositionRecords, RecordingRecords
    from stagepilot.door.records import TokenRecords

logger = logging.getLogger(__name__)

MAX_RETRY_DELAY_SECONDS = 900  # SQS's maximum visibility extension per change we use
# Back-off 30 s × 3ⁿ: the four retries before the fifth (last) receive span 16–24 minutes with jitter, so an
# IVS outage of 15 minutes does not put every event of it in a DLQ. Whatever still lands there has been
# healed by the convergence pass meanwhile, and a redrive finds the work done.
RETRY_BASE_SECONDS = 30
RETRY_GROWTH = 3
LOGGED_BODY_CHARS = 4096  # of a failed event, in its log line (CloudWatch takes 256 KB per event)


class Redelivery(Protocol):
    """What the queue does with a record that is not done: park it in the DLQ, or show it again later."""

    def park(self, record: Mapping[str, Any], reason: str) -> None: ...

    def retry_after(self, record: Mapping[str, Any], seconds: float) -> None: ...


@dataclass(frozen=True)
class Outcome:
    """What an automation did with one event, and why: one log line, one timeline entry."""

    automation: str
    action: str  # e.g. "start-composition", "skip"
    reason: str
    acted: bool = False
    details: Mapping[str, Any] = field(default_factory=dict)
    # A heal's reason when the converge function knows it (decisions/heals.py: ``taken-over``,
    # ``ivs-ended``...); None: the convergence pass explains it from what it observed of the stage.
    heal_reason: str | None = None
    # Another owner's live claim kept it from acting (decisions/leases.py, ``HELD``): on the event path the
    # record is tried again once that lease can have run out (``handle_record``); the convergence pass and
    # the operators' commands leave the claim to its owner.
    held: HeldClaim | None = None


@dataclass
class Services:
    """The ports an automation acts through. Built once per container (or per simulation).

    Every store of the table hangs off it, on the services' table and clock. The stores one automation alone
    uses are built (and their modules imported) on first use, so each function loads only its own.
    """

    settings: Settings
    table: Table
    ivs: IvsStage
    metrics: MetricSink
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    # Whether an automation's queue holds events now (visible, in flight or delayed): what tells a late
    # event from a lost one when the pass explains a heal (decisions/heals.py). None: not known.
    events_queued: Callable[[str], bool | None] = lambda automation: None
    policies: PolicyStore = field(init=False)
    bans: BanStore = field(init=False)
    audit: AuditLog = field(init=False)
    pauses: PauseSwitches = field(init=False)
    effective_policies: EffectivePolicies = field(init=False)
    ban_watch: BanListWatch = field(init=False)  # per container, like the policy cache
    handled: HandledEvents = field(init=False)  # per container: the events it handled (a second delivery)

    def __post_init__(self) -> None:
        self.policies = PolicyStore(self.table, clock=self.clock)
        self.bans = BanStore(self.table, clock=self.clock)
        self.audit = AuditLog(self.table, clock=self.clock)
        self.pauses = PauseSwitches(self.table, clock=self.clock)
        mark = self.new_change_mark()
        self.effective_policies = self.new_policy_cache(mark)
        self.ban_watch = self.new_ban_watch(mark)
        self.handled = HandledEvents(ttl_seconds=self.settings.policy_cache_seconds, clock=self.clock)

    def record_action(
        self,
        entry: AuditRecord,
        *counted: str,
        change: ConditionalUpdate | None = None,
        only_if_changed: bool = False,
    ) -> bool:
        """Audit ``entry`` and count each metric in ``counted`` (``adapters.audit.record_action``)."""
        return record_action(self.audit, self.metrics, entry, *counted, change=change, only_if_changed=only_if_changed)

    @cached_property
    def compositions(self) -> CompositionRecords:
        from stagepilot.adapters.state import CompositionRecords

        return CompositionRecords(self.table, clock=self.clock)

    @cached_property
    def recordings(self) -> RecordingRecords:
        from stagepilot.adapters.state import RecordingRecords

        return RecordingRecords(self.table, clock=self.clock)

    @cached_property
    def replications(self) -> ReplicationRecords:
        from stagepilot.adapters.replication_state import ReplicationRecords

        return ReplicationRecords(self.table, clock=self.clock)

    @cached_property
    def disconnect_claims(self) -> DisconnectClaims:
        from stagepilot.adapters.counters import DisconnectClaims

        return DisconnectClaims(self.table, clock=self.clock)

    @cached_property
    def counters(self) -> WindowCounters:
        from stagepilot.adapters.counters import WindowCounters

        return WindowCounters(self.table, clock=self.clock)

    @cached_property
    def settings_records(self) -> SettingsRecords:
        from stagepilot.adapters.settings_records import SettingsRecords

        return SettingsRecords(self.table, clock=self.clock)

    @cached_property
    def tokens(self) -> TokenRecords:
        from stagepilot.door.records import TokenRecords

        return TokenRecords(self.table, clock=self.clock)

    def new_policy_cache(self, mark: ChangeMark | None = None) -> EffectivePolicies:
        """An empty policy cache over this table, with the settings' lifetime: one per container, with the
        container's change mark (``adapters/changes.py``; None: a snapshot is read again every lifetime)."""
        return EffectivePolicies(
            self.policies, ttl_seconds=self.settings.policy_cache_seconds, clock=self.clock, mark=mark
        )

    def new_ban_watch(self, mark: ChangeMark | None = None) -> BanListWatch:
        """Whether the ban list is empty, read once per policy-cache lifetime: one per container (with the
        container's change mark, shared with its policy cache)."""
        return BanListWatch(self.table, ttl_seconds=self.settings.policy_cache_seconds, clock=self.clock, mark=mark)

    def new_change_mark(self) -> ChangeMark:
        return ChangeMark(self.table, clock=self.clock)


class Automation(Protocol):
    name: str
    needs_policy: bool  # False: acts even on stages without a policy (moderation's global ban list)

    def handle(self, event: Event, policy: StagePolicy | None, services: Services) -> Outcome: ...


@dataclass(frozen=True)
class EffectivePolicy:
    """The policy that applies to a stage, its version, and where it came from."""

    policy: StagePolicy
    version: int
    source: str  # "stage", "default", or "none" (no policy, but a pause switch holds the stage)
    updated_at: datetime | None = None  # when that version was written (None: unknown, or no policy)


class EffectivePolicies:
    """A stage's effective policy (its own, else ``default``, else none), cached briefly per container.

    A container that reads few stages reads each on its own (``PolicyStore.lookup``: its policy, the
    default and both pause switches in one ``BatchGetItem``) and keeps the answer for one lifetime. Once
    a lifetime has read ``SNAPSHOT_FROM_STAGES`` stages or more, the next lifetime starts with a snapshot of
    every policy and pause switch instead (``PolicyStore.snapshot``: a ``Query`` page of each partition,
    two of policies past about 750 of the example's size, at most ``PolicyStore.SNAPSHOT_PAGES``), which
    answers every stage, so a busy container reads the table a few times per lifetime however many stages
    its events name. A stage the snapshot has nothing for (no policy, no default, no pause) has none for the
    lifetime: its first policy, like any change, reaches the container within one lifetime (since
    2026-12-07; a read of its own per stage and function cost 300 calls on the 100-stage show, mostly stages
    that never get one, docs/reliability.md). When the policies do not fit in those pages (some 2,200 of the
    example's size) the container reads per stage and tries the snapshot again after
    ``SNAPSHOT_RETRY_LIFETIMES``. Either way a policy change, a first one included, reaches the container
    within one lifetime.

    A pause switch (``stagepilot pause``) on the stage, or on ``default`` for a stage that follows it,
    makes the policy paused whatever it says. A stored policy that no longer validates (written behind
    the CLI's back) raises ``PolicyInvalid`` for that stage only, unless the stage is paused; the error is
    cached like a policy so a broken item does not hammer the table.
    """

    SNAPSHOT_FROM_STAGES = 3  # a snapshot: a read a page (2 up to some 750 policies), then the mark one a lifetime
    SNAPSHOT_RETRY_LIFETIMES = 10

    def __init__(
        self,
        store: PolicyStore,
        *,
        ttl_seconds: float,
        clock: Callable[[], datetime],
        mark: ChangeMark | None = None,
    ) -> None:
        self._store = store
        self._mark = mark
        self._ttl = ttl_seconds
        self._clock = clock
        self._cache: dict[str, tuple[datetime, EffectivePolicy | PolicyInvalid | None]] = {}
        self._lock = threading.Lock()
        self._window_lock = threading.Lock()
        self._window: _Window | None = None
        self._stages_read: set[str] = set()  # stages read (either way) in the current window

    def get(self, stage_arn: str) -> EffectivePolicy | None:
        now = self._clock()
        with self._lock:
            cached = self._cache.get(stage_arn)
        if cached is None or self._expired(cached[0], now):
            read_at, found = self._lookup(stage_arn, now)
            cached = (read_at, _effective(stage_arn, found))
            with self._lock:
                self._cache[stage_arn] = cached
        value = cached[1]
        if isinstance(value, PolicyInvalid):
            raise value
        return value

    def cached(self, stage_arn: str) -> tuple[bool, EffectivePolicy | None]:
        """(True, the policy) when the cache holds the stage's for this lifetime, else (False, None): for a
        caller that reads the policy together with other items when it must (the door: one request)."""
        with self._lock:
            cached = self._cache.get(stage_arn)
        if cached is None or self._expired(cached[0], self._clock()):
            return False, None
        if isinstance(cached[1], PolicyInvalid):
            raise cached[1]
        return True, cached[1]

    def keep(self, stage_arn: str, found: PolicyLookup) -> EffectivePolicy | None:
        """Cache what ``found`` (read now, ``PolicyStore.lookup_in``) says of the stage, and answer it."""
        value = _effective(stage_arn, found)
        with self._lock:
            self._cache[stage_arn] = (self._clock(), value)
        if isinstance(value, PolicyInvalid):
            raise value
        return value

    def _expired(self, read_at: datetime, now: datetime, lifetimes: int = 1) -> bool:
        return (now - read_at).total_seconds() >= self._ttl * lifetimes

    def _lookup(self, stage_arn: str, now: datetime) -> tuple[datetime, PolicyLookup]:
        """What decides the stage's policy, and when it was read (a value cached from a snapshot expires
        with the snapshot)."""
        with self._window_lock:  # one reader takes the snapshot; the others wait for it
            window = self._window
            if window is None or self._expired(window.started, now, window.lifetimes):
                window = self._window = self._next_window(now)
            self._stages_read.add(stage_arn)
        if window.snapshot is None:
            return now, self._store.lookup(stage_arn)
        return window.started, window.snapshot.lookup(stage_arn)

    def _next_window(self, now: datetime) -> _Window:
        busy = len(self._stages_read) >= self.SNAPSHOT_FROM_STAGES
        if not busy:
            self._stages_read = set()
            return _Window(now, None, 1)
        previous = self._window
        token = None
        if self._mark is not None:  # the change mark (adapters/changes.py): is the last snapshot still current?
            token, read_at = self._mark.read_since(previous.started if previous is not None else None)
            if (
                previous is not None
                and previous.snapshot is not None
                and previous.token == token
                and previous.carried + 1 < FORCED_LIFETIMES
            ):
                self._stages_read = set()
                return replace(previous, started=read_at, lifetimes=1, carried=previous.carried + 1)
        snapshot = self._store.snapshot()  # a failed read keeps the count for the retry
        self._stages_read = set()
        return _Window(now, snapshot, 1 if snapshot is not None else self.SNAPSHOT_RETRY_LIFETIMES, token)


@dataclass(frozen=True)
class _Window:
    """One stretch of the policy cache: from ``started``, for ``lifetimes`` lifetimes, with or without a
    snapshot (None: every stage is read on its own); the change mark the snapshot was read under, and how
    many lifetimes it was carried on for since it was read (the mark unchanged)."""

    started: datetime
    snapshot: PolicySnapshot | None
    lifetimes: int
    token: str | None = None
    carried: int = 0


def effective_policy(stage_arn: str, found: PolicyLookup) -> EffectivePolicy | None:
    """The stage's effective policy from what one read (or a snapshot) found; ``PolicyInvalid`` when the
    policy that applies no longer validates."""
    value = _effective(stage_arn, found)
    if isinstance(value, PolicyInvalid):
        raise value
    return value


def _effective(stage_arn: str, found: PolicyLookup) -> EffectivePolicy | PolicyInvalid | None:
    chosen: StoredPolicy | None = found.own or found.default
    source = "stage" if found.own else "default" if found.default else "none"
    if found.paused_by is not None:  # the kill switch wins over anything the policy says
        try:
            policy = chosen.parse() if chosen is not None else StagePolicy(stage_arn=stage_arn)
        except PolicyInvalid:
            policy = StagePolicy(stage_arn=stage_arn)
        return EffectivePolicy(replace(policy, paused=True), chosen.version if chosen else 0, source)
    if chosen is None:
        return None
    try:
        policy = chosen.parse()
    except PolicyInvalid as exc:
        return exc
    return EffectivePolicy(
        policy=policy, version=chosen.version, source=source, updated_at=parse_iso(chosen.updated_at)
    )


class HandledEvents:
    """The events one container handled (whatever it decided) in the last ``ttl_seconds`` (the policy
    cache's lifetime), by EventBridge event id: a second delivery of one (EventBridge delivers at least
    once, 10% twice on the 100-stage show) is answered from here, with no call, when it reaches the same
    container. Handled again it would decide the same, on the same policy and bans as cached then: the
    claims, counters and records make a second delivery on another container a no-op anyway. A delivery
    that failed is not kept: its retry is handled."""

    MAX_KEPT = 10_000

    def __init__(self, *, ttl_seconds: float, clock: Callable[[], datetime]) -> None:
        self._ttl = ttl_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._handled: dict[str, datetime] = {}

    def when(self, event_id: str) -> datetime | None:
        with self._lock:
            at = self._handled.get(event_id)
        if at is None or (self._clock() - at).total_seconds() >= self._ttl:
            return None
        return at

    def keep(self, event_id: str) -> None:
        now = self._clock()
        with self._lock:
            self._handled.pop(event_id, None)
            self._handled[event_id] = now
            while self._handled:  # oldest first: drop what has expired, and beyond MAX_KEPT
                oldest, at = next(iter(self._handled.items()))
                if len(self._handled) <= self.MAX_KEPT and (now - at).total_seconds() < self._ttl:
                    break
                del self._handled[oldest]


@dataclass(frozen=True)
class StageGate:
    """Whether any automation may act on a stage now, and why not (``closed``: the skip reason)."""

    effective: EffectivePolicy | None
    closed: str | None = None

    @property
    def policy(self) -> StagePolicy | None:
        return self.effective.policy if self.effective is not None else None


def stage_gate(
    services: Services, stage_arn: str, *, needs_policy: bool, found: PolicyLookup | None = None
) -> StageGate:
    """The one stage gate of the event path, the convergence pass, its fleet checks and the ban sweep: the
    stage is in the configured prefixes, not paused (its policy or a pause switch), and has a policy when
    ``needs_policy`` (moderation's ban list needs none). ``found``: what a snapshot of the policies holds
    for the stage (``PolicySnapshot.lookup``), instead of the policy cache. Raises ``PolicyInvalid`` for a
    stored policy that no longer validates (``failures.handling`` says what that means)."""
    if not services.settings.covers(stage_arn):
        return StageGate(None, "stage is outside the configured stage ARN prefixes")
    effective = effective_policy(stage_arn, found) if found is not None else services.effective_policies.get(stage_arn)
    if effective is not None and effective.policy.paused:
        return StageGate(effective, "stage is paused")
    if effective is None and needs_policy:
        return StageGate(None, "no policy for this stage and no default policy")
    return StageGate(effective)


def handle_event(event: Event, automation: Automation, services: Services) -> Outcome:
    """Run one parsed event through the common checks and the automation. Raises what fails
    (``PolicyInvalid`` for a stored policy that no longer validates); ``failures.handling`` says what it means."""
    gate = stage_gate(services, event.stage_arn, needs_policy=automation.needs_policy)
    if gate.closed is not None:
        return Outcome(automation.name, "skip", gate.closed)
    return automation.handle(event, gate.policy, services)


def handle_record(
    record: Mapping[str, Any], automation: Automation, services: Services, redelivery: Redelivery
) -> Outcome:
    """One SQS record. Returns the outcome; raises when the record must be retried."""
    body = record.get("body", "")
    try:
        event = delivered(parse_body(body if isinstance(body, str) else json.dumps(body)), record.get("messageId"))
        check_origin(event, services.settings, now=services.clock())
    except MalformedEvent as exc:
        return _failed(exc, record, None, automation, services, redelivery, {"message_id": record.get("messageId")})
    extra = {"event_id": event.event_id, "stage_arn": event.stage_arn, "automation": automation.name}
    handled_at = services.handled.when(event.event_id)
    if handled_at is not None:  # EventBridge delivered it twice, and this container handled the first
        outcome = Outcome(
            automation.name,
            "skip",
            f"a second delivery of an event this container handled at {handled_at.isoformat()}: done already",
        )
    else:
        try:
            outcome = handle_event(event, automation, services)
        except Exception as exc:
            return _failed(exc, record, event, automation, services, redelivery, extra)
        if outcome.held is not None:  # not done: what it did (another destination) is logged, then it comes back
            if outcome.acted:
                _log_outcome(outcome, services, extra)
            held = claim_held(outcome, outcome.held, services.clock())
            return _failed(held, record, event, automation, services, redelivery, extra)
        services.handled.keep(event.event_id)
    _log_outcome(outcome, services, extra)
    return outcome


def _log_outcome(outcome: Outcome, services: Services, extra: Mapping[str, Any]) -> None:
    services.metrics.count("EventActed" if outcome.acted else "EventSkipped")
    logger.info(
        outcome.reason,
        extra={
            **extra,
            "action": outcome.action,
            "acted": outcome.acted,
            **{f"detail_{k}": v for k, v in outcome.details.items()},
        },
    )


def claim_held(outcome: Outcome, held: HeldClaim, now: datetime) -> ClaimHeld:
    """The event could not act because another owner's claim is live: not done, not failed. It comes back
    once that lease can have run out, and then finds the action done or takes the claim over with the same
    attempt and idempotency token (decisions/leases.py), so a dead owner never silently drops it."""
    return ClaimHeld(
        f"{outcome.reason}: the claim of {held.owner or 'another caller'} runs until "
        f"{held.lease_ends.isoformat()}; tried again then, to find it done or take it over",
        owner=held.owner,
        delay_seconds=held.retry_in(now),
        outcome=outcome,
    )


def _failed(
    exc: Exception,
    record: Mapping[str, Any],
    event: Event | None,
    automation: Automation,
    services: Services,
    redelivery: Redelivery,
    extra: Mapping[str, Any],
) -> Outcome:
    """Carry out what ``exc`` means for an event (``failures.handling``): park the record and return, or
    have the queue deliver it again after a back-off (its own delay if it says one) and raise."""
    found = handling(exc, Path.EVENT)
    for metric in metrics(exc, Path.EVENT):
        services.metrics.count(metric)
    body = logged_body(record.get("body", ""))
    if found.meaning is Meaning.PARK:
        logger.error(
            "malformed event parked in the dead-letter queue", extra={**extra, "error": str(exc), "event_body": body}
        )
        redelivery.park(record, f"malformed event: {exc}")
        return Outcome(automation.name, "park", f"malformed event: {exc}")
    delay = exc.delay_seconds if isinstance(exc, RetryLater) and exc.delay_seconds is not None else None
    if delay is not None:  # a visibility change per retry, well within SQS's 12 hours
        delay = min(max(delay, 0.0), float(MAX_RETRY_DELAY_SECONDS))
    if found.log is Log.TRACEBACK:
        logger.exception("event failed; the queue will retry it", extra={**extra, "event_body": body})
    elif found.log is Log.INFO:  # a held claim: expected, not a failure
        logger.info(
            "event will be retried once another owner's claim can have run out",
            extra={**extra, "reason": describe(exc), "retry_in_seconds": delay},
        )
        if _receives(record) >= MAX_RECEIVES:
            logger.warning(
                "a claim still held on the record's last receive: the event goes to the dead-letter queue "
                "(redrive it: it finds the action done or takes the claim over; the convergence pass heals the stage)",
                extra={**extra, "reason": describe(exc)},
            )
    else:
        delay = delay if delay is not None else backoff_seconds(record)
        logger.warning(
            "event will be retried",
            extra={**extra, "error": describe(exc), "retry_in_seconds": delay, "event_body": body},
        )
    if event is not None:
        _release_if_last(record, event, services, extra)
    redelivery.retry_after(record, delay if delay is not None else backoff_seconds(record))
    raise exc


def _release_if_last(record: Mapping[str, Any], event: Event, services: Services, extra: Mapping[str, Any]) -> None:
    """On the record's last receive (it goes to the DLQ next), give up the claims its event holds, so the
    next event or the convergence pass takes them over now rather than after the lease. Best effort: if the
    table is down too, the lease runs out on its own."""
    if _receives(record) < MAX_RECEIVES:
        return
    try:
        released = release_claims(services.table, event.stage_arn, event.envelope.owner, clock=services.clock)
    except Exception as exc:  # the event failed already; this must not hide why
        logger.warning("could not release the claims of an event going to the DLQ", extra={**extra, "error": str(exc)})
        return
    if released:
        services.metrics.count("ClaimsReleased", len(released))
        logger.warning("last receive: claims released for the next event", extra={**extra, "released": released})


def _receives(record: Mapping[str, Any]) -> int:
    try:
        return int(record.get("attributes", {}).get("ApproximateReceiveCount", "1"))
    except (TypeError, ValueError):
        return 1


def logged_body(body: object) -> str:
    """The event as delivered, for the log of a record that failed: what an operator copies into
    ``stagepilot explain`` (docs/runbooks/replay-failed-events.md). Cut at ``LOGGED_BODY_CHARS``."""
    text = body if isinstance(body, str) else json.dumps(body, default=str)
    return text if len(text) <= LOGGED_BODY_CHARS else text[:LOGGED_BODY_CHARS] + f"...[{len(text)} chars]"


def backoff_seconds(record: Mapping[str, Any]) -> float:
    """Exponential back-off with jitter from the record's receive count: ~30 s, 90 s, 270 s, 810 s (≤ 15 min)."""
    receives = _receives(record)
    base = min(RETRY_BASE_SECONDS * RETRY_GROWTH ** max(receives - 1, 0), MAX_RETRY_DELAY_SECONDS)
    return float(min(MAX_RETRY_DELAY_SECONDS, base * random.uniform(0.8, 1.2)))  # jitter, not security
