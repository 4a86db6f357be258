"""Moderation's state in the table: windowed event counters and once-per-session disconnect claims.

Counters: one item per (stage, session, participant, kind) holding each event as its own attribute,
``e#<event id>`` → event time (epoch milliseconds). Adding an event is one ``UpdateItem``, whatever the
item's state (absent, or holding earlier events): it sets the event's attribute only if it is absent,
and returns the whole item as it is after the write (or, for a redelivery, as it was: ``ALL_OLD``).
A single map ``events: {event id: time}`` could not do that: DynamoDB cannot make a map and set a path
in it in one expression, so a participant's first event cost two calls. DynamoDB applies updates to one
item one at a time, so concurrent deliveries each see every event written before theirs (nothing is
lost to a read-modify-write race), and a redelivered event (same id) does not count twice. Windows are
computed over the event times (decisions/moderation.py), never the clock of the Lambda. Entries far
older than the newest event are pruned (a second call, only when there are some); the item expires by
TTL. The item never holds more than ``MAX_ENTRIES`` entries (a storm of events for one participant
cannot grow it toward DynamoDB's 400 KB, which would fail every later event of the participant): it
keeps its number of entries (``entryCount``), the add's condition refuses a full item, and the add is
then made in the same write as the removal of the oldest entries.

Items written before (the ``events`` map) live until ``STATE_RETENTION`` after their last add, and the
previous version may still be running during a deployment: every read takes both shapes
(``counted_events``), an add refuses an event id already in the map, and pruning removes stale entries
of both.

Claims: one item per (stage, session, participant). The first caller to claim a disconnect owns it;
the owner's retry (a crash after DisconnectParticipant returned) resumes it; when it is done, repeats
are no-ops.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from stagepilot.adapters.schema import PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE
from stagepilot.adapters.table import (
    STATE_RETENTION,
    ConditionalUpdate,
    Table,
    epoch,
    iso,
    parse_iso,
    stage_partition,
    utc_now,
)
from stagepilot.decisions.leases import ClaimVerdict, claim_verdict
from stagepilot.errors import RetryLater

EVENT_PREFIX: Final = "e#"  # + event id: one attribute per counted event
REPORTER_PREFIX: Final = "r#"  # + reporter: a flag's reporter counts once, at its latest flag (docs/events.md)
EVENTS_ATTRIBUTE: Final = "events"  # the previous version's map of event id → time, still read
# Events can arrive hours late (docs/events.md, "Delivery is best effort"): entries older than the newest
# event by more than the window plus this much are pruned; a duplicate that old cannot meet the newer
# events in any window.
LATE_EVENT_TOLERANCE: Final = timedelta(hours=6)
# A counter item never holds more than this many entries (≤ 280 bytes each: under 340 KB, clear of
# DynamoDB's 400 KB), and at least a limit's largest ``count`` (1,000) plus room, so every decision
# about the newest events is exact. ``ENTRY_COUNT`` keeps the number, so the add's condition can refuse a
# full item; the add is then made together with the removal of the oldest ``PRUNE_BATCH`` entries.
MAX_ENTRIES: Final = 1_200
PRUNE_BATCH: Final = 100
STALE_PER_ADD: Final = 50
FULL_RETRIES: Final = 3
ENTRY_COUNT: Final = "entryCount"


class Kind(StrEnum):
    PUBLISH_ERROR = "PUBLISH-ERROR"
    FLAG = "FLAG"


@dataclass(frozen=True)
class Counted:
    """The participant's counted events after adding one."""

    times: tuple[datetime, ...]
    duplicate: bool  # the event had been counted before (a redelivery)


def counter_key(stage_arn: str, session_id: str, participant_id: str, kind: Kind) -> tuple[str, str]:
    return stage_partition(stage_arn), f"SESSION#{session_id}#COUNT#{kind.value}#{participant_id}"


class WindowCounters:
    def __init__(
        self, table: Table, *, clock: Callable[[], datetime] = utc_now, max_entries: int = MAX_ENTRIES
    ) -> None:
        self._table = table
        self._clock = clock
        self._max = max_entries  # MAX_ENTRIES; smaller only in tests
        self._batch = min(PRUNE_BATCH, max(max_entries // 4, 1))

    def add(
        self,
        stage_arn: str,
        session_id: str,
        participant_id: str,
        kind: Kind,
        *,
        event_id: str,
        time: datetime,
        window_seconds: int,
        reporter: str | None = None,
    ) -> Counted:
        """Count ``event_id`` (at event time ``time``) once; return every event time remembered.

        ``reporter`` (flags): the event counts as its reporter's, once whatever its id — the reporter's
        one entry holds the time of its latest flag, so a reporter counts once per window, and again in a
        later one. Without a reporter the event counts once per event id.

        The item holds at most ``MAX_ENTRIES`` entries: an add to a full item is refused by its condition
        and made again together with the removal of the oldest ``PRUNE_BATCH`` entries, in one write."""
        pk, sk = counter_key(stage_arn, session_id, participant_id, kind)
        entry = _Entry(event_id=event_id, reporter=reporter, time=_millis(time))
        expires = epoch(self._clock() + STATE_RETENTION)  # processing time: an event cannot date it
        for _ in range(FULL_RETRIES):
            # A refused write answers the item as stored (ALL_OLD), so a redelivery costs this one call and no read.
            item, stored = self._table.update_or_get(
                pk,
                sk,
                "SET #event = :time, #ttl = :ttl ADD #n :one",
                condition=f"({entry.condition}) AND (attribute_not_exists(#n) OR #n < :cap)",
                names={**entry.names, "#ttl": TTL_ATTRIBUTE, "#n": ENTRY_COUNT},
                values={":time": entry.time, ":ttl": expires, ":one": 1, ":cap": self._max},
            )
            if item is not None:
                events = counted_events(item)
                self._prune(pk, sk, item, events, window_seconds=window_seconds)
                return Counted(times=tuple(sorted(events.values())), duplicate=False)
            current = stored or {}
            if entry.counted_in(current):  # a redelivery, or a reporter's older flag
                return Counted(times=tuple(sorted(counted_events(current).values())), duplicate=True)
            added = self._add_to_full(pk, sk, current, entry, expires)
            if added is not None:
                return Counted(times=tuple(sorted(counted_events(added).values())), duplicate=False)
        raise RetryLater("the counter item changed under every try to make room in it")

    def _add_to_full(
        self, pk: str, sk: str, item: Mapping[str, Any], entry: _Entry, expires: int
    ) -> dict[str, Any] | None:
        """Add ``entry`` to a full item and remove its oldest entries, in one write; None when the item
        changed since it was read (the caller tries again)."""
        events = counted_events(item)
        oldest = sorted((at, key) for key, at in events.items() if _attribute(item, key) != entry.attribute)
        removed = [key for _, key in oldest[: self._batch]]
        names, paths = _paths(item, removed)
        count = len(events) - len(removed) + (0 if entry.attribute in item else 1)
        seen = item.get(ENTRY_COUNT)
        added, _ = self._table.update_or_get(
            pk,
            sk,
            "SET #event = :time, #ttl = :ttl, #n = :n" + (" REMOVE " + ", ".join(paths) if paths else ""),
            condition=f"({entry.condition}) AND " + ("#n = :seen" if seen is not None else "attribute_not_exists(#n)"),
            names={**entry.names, **names, "#ttl": TTL_ATTRIBUTE, "#n": ENTRY_COUNT},
            values={
                ":time": entry.time,
                ":ttl": expires,
                ":n": count,
                **({":seen": seen} if seen is not None else {}),
            },
        )
        return added

    def _prune(
        self, pk: str, sk: str, item: Mapping[str, Any], events: Mapping[str, datetime], *, window_seconds: int
    ) -> None:
        """Remove entries too old to meet the newer ones in any window, and any beyond ``MAX_ENTRIES`` (an
        item an earlier version wrote, which kept no count): a second call, only when there are some."""
        if not events:
            return
        horizon = max(events.values()) - timedelta(seconds=window_seconds) - LATE_EVENT_TOLERANCE
        oldest = sorted((at, key) for key, at in events.items())
        stale = [key for at, key in oldest if at < horizon][:STALE_PER_ADD]
        over = [key for _, key in oldest[: max(len(events) - self._max, 0)]]
        removed = list(dict.fromkeys(stale + over))[:PRUNE_BATCH]
        if not removed:
            return
        # Removing named entries leaves concurrent additions alone (REMOVE of a missing one is a no-op), and
        # the count is set only if no one changed it since this add: else the next add prunes.
        names, paths = _paths(item, removed)
        seen = item.get(ENTRY_COUNT)
        self._table.update(
            pk,
            sk,
            "SET #n = :n REMOVE " + ", ".join(paths),
            condition="#n = :seen" if seen is not None else "attribute_not_exists(#n)",
            names={**names, "#n": ENTRY_COUNT},
            values={":n": len(events) - len(removed), **({":seen": seen} if seen is not None else {})},
        )


@dataclass(frozen=True)
class _Entry:
    """The attribute one counted event sets, and when it may."""

    event_id: str
    reporter: str | None
    time: int  # epoch milliseconds

    @property
    def attribute(self) -> str:
        return REPORTER_PREFIX + self.reporter if self.reporter is not None else EVENT_PREFIX + self.event_id

    @property
    def names(self) -> dict[str, str]:
        if self.reporter is not None:
            return {"#event": self.attribute}
        return {"#event": self.attribute, "#events": EVENTS_ATTRIBUTE, "#id": self.event_id}

    @property
    def condition(self) -> str:
        if self.reporter is not None:
            return "attribute_not_exists(#event) OR #event < :time"  # a later flag moves the reporter's on
        # attribute_not_exists of a path in a missing map holds: no map, nothing to refuse there.
        return "attribute_not_exists(#event) AND attribute_not_exists(#events.#id)"

    def counted_in(self, item: Mapping[str, Any]) -> bool:
        """The item already holds this event (or, for a reporter, a flag at least as new)."""
        if self.reporter is not None:
            return self.attribute in item and int(item[self.attribute]) >= self.time
        return self.attribute in item or self.event_id in (item.get(EVENTS_ATTRIBUTE) or {})


def _paths(item: Mapping[str, Any], keys: list[str]) -> tuple[dict[str, str], list[str]]:
    """Placeholders and paths that remove ``counted_events``' ``keys`` from ``item``, in both shapes. An
    old map is emptied, never removed: the previous version may still be adding to it."""
    names: dict[str, str] = {}
    paths = []
    for index, key in enumerate(keys):
        names[f"#s{index}"] = _attribute(item, key)
        paths.append(f"#s{index}")
        if key in (item.get(EVENTS_ATTRIBUTE) or {}):
            names.update({"#events": EVENTS_ATTRIBUTE, f"#m{index}": key})
            paths.append(f"#events.#m{index}")
    return names, paths


def counted_events(item: Mapping[str, Any]) -> dict[str, datetime]:
    """Every event id a counter item holds and its event time, in either shape (an event id found in
    both counts once), and each reporter's entry (keyed ``r#<reporter>``, its latest flag's time)."""
    events = {str(event_id): _time(value) for event_id, value in (item.get(EVENTS_ATTRIBUTE) or {}).items()}
    for name, value in item.items():
        if name.startswith(EVENT_PREFIX):
            events.setdefault(name.removeprefix(EVENT_PREFIX), _time(value))
        elif name.startswith(REPORTER_PREFIX):
            events[name] = _time(value)
    return events


def _attribute(item: Mapping[str, Any], key: str) -> str:
    """The top-level attribute holding ``counted_events``' ``key``."""
    if key.startswith(REPORTER_PREFIX) and key in item:
        return key
    return EVENT_PREFIX + key


# Disconnect claims ---------------------------------------------------------------------------------
class ClaimState(StrEnum):
    CLAIMED = "claimed"
    DONE = "done"


@dataclass(frozen=True)
class DisconnectClaim:
    """The claim that one participant's disconnect happens once per session."""

    owner: str
    state: ClaimState
    claimed_at: datetime
    result: str = ""
    # how ``DisconnectClaims.claim``'s caller came to hold it: None, a new claim; ``RESUME``, its own earlier
    # try's; ``TAKE_OVER``, an owner's whose lease ran out. Either earlier try may have disconnected already.
    verdict: ClaimVerdict | None = None


def claim_key(stage_arn: str, session_id: str, participant_id: str, *, dry_run: bool) -> tuple[str, str]:
    kind = "WOULD-DISCONNECT" if dry_run else "DISCONNECT"
    return stage_partition(stage_arn), f"SESSION#{session_id}#{kind}#{participant_id}"


class DisconnectClaims:
    """At most one disconnect (or, in dry-run, one would-disconnect) per participant and session."""

    def __init__(self, table: Table, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._table = table
        self._clock = clock

    def get(self, stage_arn: str, session_id: str, participant_id: str, *, dry_run: bool) -> DisconnectClaim | None:
        item = self._table.get(*claim_key(stage_arn, session_id, participant_id, dry_run=dry_run), consistent=True)
        return _claim(item) if item else None

    def disconnected(self, stage_arn: str, session_id: str) -> dict[str, DisconnectClaim]:
        """The participants stagepilot disconnected in the session (the manual kick included), by id: one
        ``Query`` of the session's disconnect claims (``status STAGE_ARN`` shows them as kicked)."""
        pk, prefix = claim_key(stage_arn, session_id, "", dry_run=False)
        found = {}
        for item in self._table.query(pk, sk_prefix=prefix):
            claim = _claim(item)
            if claim.state is ClaimState.DONE and claim.result == "disconnected":
                found[str(item[SORT_KEY])[len(prefix) :]] = claim
        return found

    def claim(
        self, stage_arn: str, session_id: str, participant_id: str, *, owner: str, dry_run: bool
    ) -> tuple[DisconnectClaim | None, DisconnectClaim | None]:
        """Take the disconnect for ``owner``: (the claim to act on, None); or (None, the stored claim)
        when another caller holds a live claim or the disconnect is already done (its ``state`` tells
        which). A first claim is one call, and so is a refused one: the failed write answers the stored
        claim (``ALL_OLD``) instead of a read after it."""
        pk, sk = claim_key(stage_arn, session_id, participant_id, dry_run=dry_run)
        now = self._clock()
        item = {
            PARTITION_KEY: pk,
            SORT_KEY: sk,
            "owner": owner,
            "state": ClaimState.CLAIMED.value,
            "claimedAt": iso(now),
            TTL_ATTRIBUTE: epoch(now + STATE_RETENTION),
        }
        written, old = self._table.put_or_get(item, condition="attribute_not_exists(#pk)", names={"#pk": PARTITION_KEY})
        if written:
            return DisconnectClaim(owner=owner, state=ClaimState.CLAIMED, claimed_at=now), None
        current = _claim(old) if old else None
        if current is None or current.state is not ClaimState.CLAIMED:
            return None, current
        verdict = claim_verdict(owner=current.owner, claimed_at=current.claimed_at, caller=owner, now=now)
        if verdict is ClaimVerdict.RESUME:
            return replace(current, verdict=verdict), None  # this event's earlier delivery did not finish: resume
        if verdict is ClaimVerdict.HELD:
            return None, current
        taken = self._table.update(
            pk,
            sk,
            "SET #owner = :owner, #claimedAt = :now",
            condition="#state = :claimed AND #owner = :previous",
            names={"#owner": "owner", "#claimedAt": "claimedAt", "#state": "state"},
            values={
                ":owner": owner,
                ":now": iso(now),
                ":claimed": ClaimState.CLAIMED.value,
                ":previous": current.owner,
            },
        )
        if taken is None:  # another caller took it over first
            return None, DisconnectClaim(owner="", state=ClaimState.CLAIMED, claimed_at=now)
        return DisconnectClaim(owner=owner, state=ClaimState.CLAIMED, claimed_at=now, verdict=verdict), None

    def release(self, stage_arn: str, session_id: str, participant_id: str, *, owner: str, dry_run: bool) -> bool:
        """Give up ``owner``'s unfinished claim (its caller failed and will not retry on its own), so the
        next caller need not wait out its lease (decisions/leases.py). A finished claim, or another owner's, stays."""
        pk, sk = claim_key(stage_arn, session_id, participant_id, dry_run=dry_run)
        return self._table.delete(
            pk,
            sk,
            condition="#owner = :owner AND #state = :claimed",
            names={"#owner": "owner", "#state": "state"},
            values={":owner": owner, ":claimed": ClaimState.CLAIMED.value},
        )

    def finish(
        self, stage_arn: str, session_id: str, participant_id: str, *, owner: str, dry_run: bool, result: str
    ) -> bool:
        """Mark the claim done with ``result``, without an audit entry."""
        return self._table.apply(
            self.finishing(stage_arn, session_id, participant_id, owner=owner, dry_run=dry_run, result=result)
        )

    def finishing(
        self, stage_arn: str, session_id: str, participant_id: str, *, owner: str, dry_run: bool, result: str
    ) -> ConditionalUpdate:
        """Mark the claim done with ``result`` — written together with its audit entry (``AuditLog.record_with``)."""
        pk, sk = claim_key(stage_arn, session_id, participant_id, dry_run=dry_run)
        return ConditionalUpdate(
            pk,
            sk,
            "SET #state = :done, #result = :result, #doneAt = :now",
            "#owner = :owner",
            {"#state": "state", "#result": "result", "#doneAt": "doneAt", "#owner": "owner"},
            {":done": ClaimState.DONE.value, ":result": result, ":now": iso(self._clock()), ":owner": owner},
        )


def _claim(item: Mapping[str, Any]) -> DisconnectClaim:
    return DisconnectClaim(
        owner=str(item.get("owner", "")),
        state=ClaimState(item.get("state", ClaimState.CLAIMED.value)),
        claimed_at=parse_iso(item.get("claimedAt")) or datetime.min.replace(tzinfo=UTC),
        result=str(item.get("result", "")),
    )


def _millis(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _time(value: Any) -> datetime:
    return datetime.fromtimestamp(int(value) / 1000, UTC)
