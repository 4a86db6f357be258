"""Automation state in the table: per-session records, written with conditions so that concurrent
deliveries of events for one stage cannot both act."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

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
from stagepilot.decisions.composition import NOTHING_LIVE, SessionCompositions, State


def composition_key(stage_arn: str, session_id: str) -> tuple[str, str]:
    return stage_partition(stage_arn), f"SESSION#{session_id}#COMPOSITION"


def ledger_key(stage_arn: str) -> tuple[str, str]:
    return stage_partition(stage_arn), "COMPOSITIONS"


BATCH_GET_KEYS = 100  # DynamoDB's BatchGetItem limit
LEDGER_ENTRY = "session#"  # one attribute per session in the ledger: ``session#<session id>`` = claim time


@dataclass(frozen=True)
class Ledger:
    """The stage's composition ledger as it was before a session entered it."""

    kept: bool  # False: the stage had none (it is written since stagepilot keeps one)
    others: Mapping[str, datetime]  # the other sessions' entries: session id → its last claim


class CompositionRecords:
    """The ``SessionCompositions`` record of each stage session (see decisions/composition.py)."""

    def __init__(self, table: Table, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._table = table
        self._clock = clock

    def get(self, stage_arn: str, session_id: str) -> SessionCompositions | None:
        item = self._table.get(*composition_key(stage_arn, session_id), consistent=True)
        return _record(item) if item else None

    def get_many(self, sessions: list[tuple[str, str]]) -> dict[tuple[str, str], SessionCompositions]:
        """The records of many (stage, session) pairs, 100 keys a ``BatchGetItem`` (the fleet view's read:
        eventually consistent, as a view may be)."""
        keys = {composition_key(arn, session): (arn, session) for arn, session in sessions}
        ordered = list(keys)
        found = {}
        for start in range(0, len(ordered), BATCH_GET_KEYS):
            for key, item in self._table.get_many(ordered[start : start + BATCH_GET_KEYS]).items():
                found[keys[key]] = _record(item)
        return found

    def holding(self, stage_arn: str, composition_arn: str) -> list[tuple[str, SessionCompositions]]:
        """The stage's session records that hold ``composition_arn``, oldest claim first. A composition is
        the stage's: one carried into the next session is held by both sessions' records."""
        found = []
        for item in self._table.query(stage_partition(stage_arn), sk_prefix="SESSION#"):
            sk = str(item.get(SORT_KEY, ""))
            if sk.endswith("#COMPOSITION") and item.get("compositionArn") == composition_arn:
                found.append((sk.removeprefix("SESSION#").removesuffix("#COMPOSITION"), _record(item)))
        return sorted(found, key=lambda held: held[1].claimed_at)

    def enter(self, stage_arn: str, session_id: str) -> Ledger:
        """Note in the stage's ledger that ``session_id`` is starting a composition, and learn which other
        sessions may hold one — one call. A session stays in the ledger until its record says nothing is
        live (``mark``); entries left by a crash are dropped once IVS shows them stale (``forget``)."""
        pk, sk = ledger_key(stage_arn)
        now = self._clock()
        old = self._table.swap(
            pk,
            sk,
            "SET #entry = :now, #ttl = :ttl",
            names={"#entry": LEDGER_ENTRY + session_id, "#ttl": TTL_ATTRIBUTE},
            values={":now": iso(now), ":ttl": epoch(now + STATE_RETENTION)},
        )
        others = {}
        for name, value in (old or {}).items():
            at = parse_iso(value) if name.startswith(LEDGER_ENTRY) else None
            if at is not None and name != LEDGER_ENTRY + session_id:
                others[name.removeprefix(LEDGER_ENTRY)] = at
        return Ledger(kept=old is not None, others=others)

    def forget(self, stage_arn: str, entries: Mapping[str, datetime]) -> bool:
        """Drop these sessions' entries, unless one was renewed meanwhile (a claim taken over)."""
        if not entries:
            return False
        names, values, removed, same = {}, {}, [], []
        for index, (session_id, at) in enumerate(sorted(entries.items())):
            names[f"#e{index}"] = LEDGER_ENTRY + session_id
            values[f":e{index}"] = iso(at)
            removed.append(f"#e{index}")
            same.append(f"#e{index} = :e{index}")
        change = ConditionalUpdate(
            *ledger_key(stage_arn), "REMOVE " + ", ".join(removed), " AND ".join(same), names, values
        )
        return self._table.apply(change)

    def leaving(self, stage_arn: str, session_id: str) -> ConditionalUpdate:
        """The ledger update that takes ``session_id`` out (nothing of it is live any more)."""
        return ConditionalUpdate(*ledger_key(stage_arn), "REMOVE #entry", names={"#entry": LEDGER_ENTRY + session_id})

    def claim_first(self, stage_arn: str, session_id: str, *, owner: str) -> tuple[bool, SessionCompositions | None]:
        """Claim attempt 1 of a session nobody has claimed yet, or learn what is recorded — one call
        either way (no read before the write). (True, None): ``owner`` holds the new claim; (False,
        record): the session has a record already (None only if it vanished in between)."""
        claimed, old = self._table.put_or_get(
            self._first_claim(stage_arn, session_id, attempt=1, owner=owner),
            condition="attribute_not_exists(#pk)",
            names={"#pk": PARTITION_KEY},
        )
        return claimed, (_record(old) if old else None)

    def claim(
        self,
        stage_arn: str,
        session_id: str,
        *,
        attempt: int,
        owner: str,
        expected: SessionCompositions | None,
    ) -> bool:
        """Take the right to start ``attempt``; only one caller wins for a given previous state."""
        pk, sk = composition_key(stage_arn, session_id)
        now = self._clock()
        if expected is None:
            item = self._first_claim(stage_arn, session_id, attempt=attempt, owner=owner)
            return self._table.put(item, condition="attribute_not_exists(#pk)", names={"#pk": PARTITION_KEY})
        restarts = expected.restarts + (1 if expected.state is State.FAILED else 0)
        updated = self._table.update(
            pk,
            sk,
            "SET #attempt = :attempt, #state = :claimed, #owner = :owner, #claimedAt = :now, #restarts = :restarts "
            "REMOVE #stoppedBy",  # a new attempt: what stopped the last one (a limit) is history
            condition="#attempt = :expected_attempt AND #state = :expected_state AND #owner = :expected_owner",
            names={
                "#attempt": "attempt",
                "#state": "state",
                "#owner": "owner",
                "#claimedAt": "claimedAt",
                "#restarts": "restarts",
                "#stoppedBy": "stoppedBy",
            },
            values={
                ":attempt": attempt,
                ":claimed": State.CLAIMED.value,
                ":owner": owner,
                ":now": iso(now),
                ":restarts": restarts,
                ":expected_attempt": expected.attempt,
                ":expected_state": expected.state.value,
                ":expected_owner": expected.owner,
            },
        )
        return updated is not None

    def _first_claim(self, stage_arn: str, session_id: str, *, attempt: int, owner: str) -> dict[str, Any]:
        pk, sk = composition_key(stage_arn, session_id)
        now = self._clock()
        return {
            PARTITION_KEY: pk,
            SORT_KEY: sk,
            "attempt": attempt,
            "state": State.CLAIMED.value,
            "owner": owner,
            "claimedAt": iso(now),
            "restarts": 0,
            TTL_ATTRIBUTE: epoch(now + STATE_RETENTION),
        }

    def mark(
        self,
        stage_arn: str,
        session_id: str,
        *,
        attempt: int,
        state: State,
        from_states: tuple[State, ...],
        **attributes: Any,
    ) -> bool:
        """Move ``attempt`` to ``state`` if it is still in one of ``from_states``; a state with nothing live
        takes the session out of the stage's ledger in the same transaction."""
        change = self.marking(
            stage_arn, session_id, attempt=attempt, state=state, from_states=from_states, **attributes
        )
        if state in NOTHING_LIVE:
            return self._table.apply_all([change, self.leaving(stage_arn, session_id)])
        return self._table.apply(change)

    def noting_destination_failure(
        self, stage_arn: str, session_id: str, composition_arn: str, kind: str, at: datetime
    ) -> ConditionalUpdate:
        """The update that notes one failed destination of a composition on the session's record, once: a
        duplicated or redelivered ``Destination Failure``, or the pass finding it in IVS's listing, is
        audited and alarmed once (attribute ``destinationFailed#<composition id>#<channel|s3>``)."""
        pk, sk = composition_key(stage_arn, session_id)
        return ConditionalUpdate(
            pk,
            sk,
            "SET #failed = :at",
            "attribute_exists(#pk) AND attribute_not_exists(#failed)",
            {"#failed": f"destinationFailed#{composition_arn.rsplit('/', 1)[-1]}#{kind}", "#pk": PARTITION_KEY},
            {":at": iso(at)},
        )

    def marking(
        self,
        stage_arn: str,
        session_id: str,
        *,
        attempt: int,
        state: State,
        from_states: tuple[State, ...],
        **attributes: Any,
    ) -> ConditionalUpdate:
        """The update ``mark`` makes, for a caller that writes it together with its audit entry."""
        pk, sk = composition_key(stage_arn, session_id)
        names = {"#attempt": "attempt", "#state": "state"}
        values: dict[str, Any] = {":attempt": attempt, ":state": state.value}
        sets = ["#state = :state"]
        for index, (name, value) in enumerate(attributes.items()):
            names[f"#a{index}"] = name
            values[f":a{index}"] = iso(value) if isinstance(value, datetime) else value
            sets.append(f"#a{index} = :a{index}")
        allowed = []
        for index, from_state in enumerate(from_states):
            values[f":from{index}"] = from_state.value
            allowed.append(f":from{index}")
        condition = f"#attempt = :attempt AND #state IN ({', '.join(allowed)})"
        return ConditionalUpdate(pk, sk, "SET " + ", ".join(sets), condition, names, values)


def _record(item: dict[str, Any]) -> SessionCompositions:
    return SessionCompositions(
        attempt=int(item["attempt"]),
        state=State(item["state"]),
        owner=str(item.get("owner", "")),
        claimed_at=parse_iso(item.get("claimedAt")) or datetime.min.replace(tzinfo=UTC),
        restarts=int(item.get("restarts", 0)),
        composition_arn=item.get("compositionArn"),
        failed_at=parse_iso(item.get("failedAt")),
        failed_by=item.get("failedBy"),
        ended_at=parse_iso(item.get("endedAt")),
        policy_hash=item.get("policyHash"),
        started_at=parse_iso(item.get("startedAt")),
        first_started_at=parse_iso(item.get("firstStartedAt")),
        stopped_by=item.get("stoppedBy"),
        refused_day=item.get("refusedDay"),
    )


def recording_key(stage_arn: str, session_id: str, participant_id: str) -> tuple[str, str]:
    return stage_partition(stage_arn), f"SESSION#{session_id}#RECORDING#{participant_id}"


class RecordingRecords:
    """The last recording state IVS reported per participant (for ``stagepilot status``); newest wins."""

    def __init__(self, table: Table, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._table = table
        self._clock = clock

    def record(
        self,
        stage_arn: str,
        session_id: str,
        participant_id: str,
        *,
        event_name: str,
        at: datetime,
        bucket: str | None,
        key_prefix: str | None,
    ) -> bool:
        """Keep this report unless a newer one is recorded (events arrive late and out of order)."""
        pk, sk = recording_key(stage_arn, session_id, participant_id)
        item = {
            PARTITION_KEY: pk,
            SORT_KEY: sk,
            "eventName": event_name,
            "eventAt": iso(at),
            "bucket": bucket or "",
            "keyPrefix": key_prefix or "",
            TTL_ATTRIBUTE: epoch(self._clock() + STATE_RETENTION),
        }
        return self._table.put(
            item,
            condition="attribute_not_exists(#pk) OR #eventAt <= :at",
            names={"#pk": PARTITION_KEY, "#eventAt": "eventAt"},
            values={":at": iso(at)},
        )

    def get(self, stage_arn: str, session_id: str, participant_id: str) -> dict[str, Any] | None:
        return self._table.get(*recording_key(stage_arn, session_id, participant_id))
