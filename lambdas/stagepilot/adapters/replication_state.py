"""Replication state in the table: one item per (source stage session, participant, destination stage).

The item is both the claim that lets exactly one delivery start the replication (conditional writes,
see decisions/replication.py) and the record of the replication events IVS sent about it, which
``stagepilot status`` lists as the stage's replicas. Key: ``STAGE#<source stage>`` /
``SESSION#<session>#REPLICA#<participant>#<destination stage>``; expires ``STATE_RETENTION`` after its
last write.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from stagepilot.adapters.publishers import replication_key
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
from stagepilot.decisions.replication import ClaimState, ReplicationClaim, ReplicationEventKind

_REPLICA = "#REPLICA#"
__all__ = ["KnownEvent", "ReplicaRecord", "ReplicationRecords", "ReplicationTarget", "replication_key"]


class KnownEvent(StrEnum):
    """What became of a replication event applied to the replication its caller inferred."""

    RECORDED = "recorded"
    STALE = "stale"  # the record holds a newer event, a claim newer than this stop, or a block: nothing to change
    UNKNOWN = "unknown"  # no started or stopped replication recorded there: the event may be about another


@dataclass(frozen=True)
class ReplicaRecord:
    """One replication as ``stagepilot status`` shows it."""

    session_id: str
    participant_id: str
    destination_stage_arn: str
    state: str  # claimed | started | stopped | rejected | blocked
    started_at: str | None = None
    stopped_at: str | None = None
    last_event: str | None = None  # the name of the last replication event IVS sent about it
    destination_session_id: str | None = None
    rejection: str | None = None

    @property
    def live(self) -> bool:
        return self.state == ClaimState.STARTED.value


@dataclass(frozen=True)
class ReplicationTarget:
    """Which replication an operation is about."""

    stage_arn: str
    session_id: str
    participant_id: str
    destination_stage_arn: str

    @property
    def key(self) -> tuple[str, str]:
        return replication_key(self.stage_arn, self.session_id, self.participant_id, self.destination_stage_arn)


class ReplicationRecords:
    def __init__(self, table: Table, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._table = table
        self._clock = clock

    def get(self, target: ReplicationTarget) -> ReplicationClaim | None:
        item = self._table.get(*target.key, consistent=True)
        return _claim(item) if item and item.get("state") else None

    def claim_first(
        self, target: ReplicationTarget, *, owner: str
    ) -> tuple[ReplicationClaim | None, ReplicationClaim | None]:
        """Claim a replication nobody has recorded yet, or learn what is recorded — one call either way
        (no read before the write). (the new claim, None) when ``owner`` took it; (None, the stored
        claim) when there is one — None too for an item that holds only replication events."""
        claimed, old = self._table.put_or_get(
            self._new_claim(target, owner=owner),
            condition="attribute_not_exists(#pk)",
            names={"#pk": PARTITION_KEY},
        )
        if claimed:
            return ReplicationClaim(state=ClaimState.CLAIMED, owner=owner, claimed_at=self._clock()), None
        return None, (_claim(old) if old and old.get("state") else None)

    def claim(self, target: ReplicationTarget, *, owner: str, expected: ReplicationClaim | None) -> bool:
        """Take the right to start this replication; only one caller wins for a given previous state."""
        pk, sk = target.key
        now = self._clock()
        if expected is None:
            item = self._new_claim(target, owner=owner)
            return self._table.put(item, condition="attribute_not_exists(#pk)", names={"#pk": PARTITION_KEY})
        updated = self._table.update(
            pk,
            sk,
            "SET #state = :claimed, #owner = :owner, #claimedAt = :now, #ttl = :ttl REMOVE #ruleHash, #rejection",
            condition="#state = :expected_state AND #owner = :expected_owner",
            names={
                "#state": "state",
                "#owner": "owner",
                "#claimedAt": "claimedAt",
                "#ttl": TTL_ATTRIBUTE,
                "#ruleHash": "ruleHash",
                "#rejection": "rejection",
            },
            values={
                ":claimed": ClaimState.CLAIMED.value,
                ":owner": owner,
                ":now": iso(now),
                ":ttl": epoch(now + STATE_RETENTION),
                ":expected_state": expected.state.value,
                ":expected_owner": expected.owner,
            },
        )
        return updated is not None

    def _new_claim(self, target: ReplicationTarget, *, owner: str) -> dict[str, Any]:
        pk, sk = target.key
        now = self._clock()
        return {
            PARTITION_KEY: pk,
            SORT_KEY: sk,
            **_identity(target),
            "state": ClaimState.CLAIMED.value,
            "owner": owner,
            "claimedAt": iso(now),
            TTL_ATTRIBUTE: epoch(now + STATE_RETENTION),
        }

    def mark_started(self, target: ReplicationTarget, *, owner: str, how: str) -> bool:
        """The owner's claim became a running replication (IVS accepted it, or answered it already runs)."""
        return self._table.apply(self.starting(target, owner=owner, how=how))

    def starting(self, target: ReplicationTarget, *, owner: str, how: str) -> ConditionalUpdate:
        """The update ``mark_started`` makes, for a caller that writes it together with its audit entry."""
        return self._finish(target, owner=owner, state=ClaimState.STARTED, startedAt=iso(self._clock()), startedBy=how)

    def mark_rejected(self, target: ReplicationTarget, *, owner: str, rule_hash: str, rejection: str) -> bool:
        return self._table.apply(
            self._finish(target, owner=owner, state=ClaimState.REJECTED, ruleHash=rule_hash, rejection=rejection)
        )

    def release(self, target: ReplicationTarget, *, owner: str) -> bool:
        """Give the claim up (nothing was started): a later event may claim again."""
        pk, sk = target.key
        return self._table.delete(
            pk,
            sk,
            condition="#state = :claimed AND #owner = :owner",
            names={"#state": "state", "#owner": "owner"},
            values={":claimed": ClaimState.CLAIMED.value, ":owner": owner},
        )

    def record_event(
        self,
        target: ReplicationTarget,
        *,
        kind: ReplicationEventKind,
        event_name: str,
        at: datetime,
        destination_session_id: str | None = None,
        only_if_known: bool = False,
    ) -> KnownEvent:
        """Apply a replication event IVS sent, in one conditional write. Events arrive late and out of order:
        one older than the last applied is ignored, and a stop older than the current claim is about an
        earlier replication (STALE). ``only_if_known``, for a caller that inferred the destination (the
        event names none): apply it only to a replication recorded as started or stopped; anything else —
        no record, a claim whose start is under way, a rejected one — may be another replication than the
        one inferred: UNKNOWN, nothing written, the caller asks IVS. The stored item (ALL_OLD) tells the
        two refusals apart without a read."""
        pk, sk = target.key
        now = self._clock()
        names = {
            "#state": "state",
            "#owner": "owner",
            "#eventAt": "eventAt",
            "#lastEvent": "lastEvent",
            "#ttl": TTL_ATTRIBUTE,
            "#session": "sessionId",
            "#participant": "participantId",
            "#destination": "destinationStageArn",
            "#when": "startedAt" if kind is ReplicationEventKind.STARTED else "stoppedAt",
        }
        identity = _identity(target)
        values: dict[str, Any] = {
            ":state": (ClaimState.STARTED if kind is ReplicationEventKind.STARTED else ClaimState.STOPPED).value,
            ":empty": "",
            ":at": iso(at),
            ":name": event_name,
            ":ttl": epoch(now + STATE_RETENTION),
            ":session": identity["sessionId"],
            ":participant": identity["participantId"],
            ":destination": identity["destinationStageArn"],
        }
        sets = [
            "#state = :state",
            "#owner = if_not_exists(#owner, :empty)",
            "#eventAt = :at",
            "#lastEvent = :name",
            "#ttl = :ttl",
            "#session = :session",
            "#participant = :participant",
            "#destination = :destination",
            "#when = :at",
        ]
        if destination_session_id:
            names["#destinationSession"] = "destinationSessionId"
            values[":destinationSession"] = destination_session_id
            sets.append("#destinationSession = :destinationSession")
        # A replica the destination's moderation removed stays blocked, whatever IVS reports after.
        values[":blocked"] = ClaimState.BLOCKED.value
        condition = "(attribute_not_exists(#state) OR #state <> :blocked) AND "
        condition += "(attribute_not_exists(#eventAt) OR #eventAt <= :at)"
        if kind is ReplicationEventKind.STOPPED:
            # Event times have whole seconds; claims have milliseconds.
            names["#claimedAt"] = "claimedAt"
            values[":until"] = iso(at.replace(microsecond=0) + timedelta(seconds=1))
            condition += " AND (attribute_not_exists(#claimedAt) OR #claimedAt < :until)"
        if only_if_known:
            values[":started"] = ClaimState.STARTED.value
            values[":stopped"] = ClaimState.STOPPED.value
            condition = f"#state IN (:started, :stopped) AND {condition}"
        updated, stored = self._table.update_or_get(
            pk, sk, "SET " + ", ".join(sets), condition=condition, names=names, values=values
        )
        if updated is not None:
            return KnownEvent.RECORDED
        if only_if_known and (stored or {}).get("state") not in (ClaimState.STARTED.value, ClaimState.STOPPED.value):
            return KnownEvent.UNKNOWN
        return KnownEvent.STALE

    def list(self, stage_arn: str, *, session_id: str | None = None) -> list[ReplicaRecord]:
        """The replications recorded for a source stage (one session, or all kept), oldest session first."""
        prefix = f"SESSION#{session_id}{_REPLICA}" if session_id else "SESSION#"
        return [
            _replica(item)
            for item in self._table.query(stage_partition(stage_arn), sk_prefix=prefix)
            if _REPLICA in str(item.get(SORT_KEY, "")) and item.get("state")
        ]

    def _finish(
        self, target: ReplicationTarget, *, owner: str, state: ClaimState, **attributes: str
    ) -> ConditionalUpdate:
        pk, sk = target.key
        names = {"#state": "state", "#owner": "owner"}
        values: dict[str, Any] = {":state": state.value, ":claimed": ClaimState.CLAIMED.value, ":owner": owner}
        sets = ["#state = :state"]
        for index, (name, value) in enumerate(attributes.items()):
            names[f"#a{index}"] = name
            values[f":a{index}"] = value
            sets.append(f"#a{index} = :a{index}")
        return ConditionalUpdate(
            pk, sk, "SET " + ", ".join(sets), "#state = :claimed AND #owner = :owner", names, values
        )


def _identity(target: ReplicationTarget) -> dict[str, str]:
    return {
        "sessionId": target.session_id,
        "participantId": target.participant_id,
        "destinationStageArn": target.destination_stage_arn,
    }


def _claim(item: dict[str, Any]) -> ReplicationClaim:
    return ReplicationClaim(
        state=ClaimState(item["state"]),
        owner=str(item.get("owner", "")),
        claimed_at=parse_iso(item.get("claimedAt")) or datetime.min.replace(tzinfo=UTC),
        rule_hash=item.get("ruleHash"),
        rejection=item.get("rejection"),
    )


def _replica(item: dict[str, Any]) -> ReplicaRecord:
    return ReplicaRecord(
        session_id=str(item.get("sessionId", "")),
        participant_id=str(item.get("participantId", "")),
        destination_stage_arn=str(item.get("destinationStageArn", "")),
        state=str(item["state"]),
        started_at=item.get("startedAt"),
        stopped_at=item.get("stoppedAt"),
        last_event=item.get("lastEvent"),
        destination_session_id=item.get("destinationSessionId"),
        rejection=item.get("rejection"),
    )
