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
TTL. Like the map before, the item is bounded by DynamoDB's 400 KB (some 8,000 events within the
window plus ``LATE_EVENT_TOLERANCE``).

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
from dataclasses import dataclass
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
from stagepilot.decisions.leases import CLAIM_LEASE

EVENT_PREFIX: Final = "e#"  # + event id: one attribute per counted event
REPORTER_PREFIX: Final = "r#"  # + reporter: a flag's reporter counts once, at its latest flag (CONTRACT §2)
EVENTS_ATTRIBUTE: Final = "events"  # the previous version's map of event id → time, still read
# Events can arrive hours late (ivs-facts §1.1): entries older than the newest event by more than the
# window plus this much are pruned; a duplicate that old cannot meet the newer events in any window.
LATE_EVENT_TOLERANCE: Final = timedelta(hours=6)
CLAIM_TIMEOUT: Final = CLAIM_LEASE  # past it the claim of an event that died can be taken over


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
    def __init__(self, table: Table, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._table = table
        self._clock = clock

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
        later one. Without a reporter the event counts once per event id."""
        pk, sk = counter_key(stage_arn, session_id, participant_id, kind)
        expires = epoch(self._clock() + STATE_RETENTION)  # processing time: an event cannot date it
        names = {"#ttl": TTL_ATTRIBUTE}
        if reporter is None:
            names.update({"#event": EVENT_PREFIX + event_id, "#events": EVENTS_ATTRIBUTE, "#id": event_id})
            # attribute_not_exists of a path in a missing map holds: no map, nothing to refuse there.
            condition = "attribute_not_exists(#event) AND attribute_not_exists(#events.#id)"
        else:
            names["#event"] = REPORTER_PREFIX + reporter
            condition = "attribute_not_exists(#event) OR #event < :time"  # a later flag moves it on
        # A refused write answers the item as stored (ALL_OLD), so a redelivery costs this one call and no read.
        item, stored = self._table.update_or_get(
            pk,
            sk,
            "SET #event = :time, #ttl = :ttl",
            condition=condition,
            names=names,
            values={":time": _millis(time), ":ttl": expires},
        )
        current = item if item is not None else stored or {}
        events = counted_events(current)
        self._prune(pk, sk, current, events, window_seconds=window_seconds)
        return Counted(times=tuple(sorted(events.values())), duplicate=item is None)

    def _prune(
        self, pk: str, sk: str, item: Mapping[str, Any], events: Mapping[str, datetime], *, window_seconds: int
    ) -> None:
        if not events:
            return
        horizon = max(events.values()) - timedelta(seconds=window_seconds) - LATE_EVENT_TOLERANCE
        stale = [event_id for event_id, at in events.items() if at < horizon][:50]
        if not stale:
            return
        # Removing named entries leaves concurrent additions alone (REMOVE of a missing one is a no-op).
        # An old map is emptied, never removed: the previous version may still be adding to it.
        names: dict[str, str] = {}
        paths = []
        for index, event_id in enumerate(stale):
            names[f"#s{index}"] = _attribute(item, event_id)
            paths.append(f"#s{index}")
            if event_id in (item.get(EVENTS_ATTRIBUTE) or {}):
                names.update({"#events": EVENTS_ATTRIBUTE, f"#m{index}": event_id})
                paths.append(f"#events.#m{index}")
        self._table.update(pk, sk, "REMOVE " + ", ".join(paths), names=names)


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
        if current.owner == owner:
            return current, None  # this event's earlier delivery claimed it and did not finish: resume
        if now - current.claimed_at <= CLAIM_TIMEOUT:
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
        return DisconnectClaim(owner=owner, state=ClaimState.CLAIMED, claimed_at=now), None

    def release(self, stage_arn: str, session_id: str, participant_id: str, *, owner: str, dry_run: bool) -> bool:
        """Give up ``owner``'s unfinished claim (its caller failed and will not retry on its own), so the
        next caller need not wait out ``CLAIM_TIMEOUT``. A finished claim, or another owner's, stays."""
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
