"""What replication and moderation share about one publisher in the table: the publisher a stage
session's GetParticipant answered, kept for the other automation, and the block a destination's moderation
puts on a replica it removed.

Separate from ``adapters.state`` so that replication and moderation, which share it, do not import the
composition records (and their decisions) they never use: each frozen dataclass a Lambda imports costs
about a millisecond of its cold start (docs/performance.md, section 1).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from stagepilot.adapters.audit import MetricSink, record_action
from stagepilot.adapters.ivs import Participant
from stagepilot.adapters.schema import PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE
from stagepilot.adapters.table import (
    STATE_RETENTION,
    AuditLog,
    AuditRecord,
    ConditionalUpdate,
    Table,
    epoch,
    iso,
    stage_partition,
    utc_now,
)

if TYPE_CHECKING:
    from stagepilot.events import StageUpdate

logger = logging.getLogger(__name__)

# The replication record's ``state`` once the destination's moderation removed the replica: the
# replication state machine's ``blocked`` (decisions/replication.py, ``ClaimState.BLOCKED``).
REPLICA_BLOCKED = "blocked"
_REPLICA = "#REPLICA#"


def publisher_key(stage_arn: str, session_id: str, participant_id: str) -> tuple[str, str]:
    return stage_partition(stage_arn), f"SESSION#{session_id}#PUBLISHER#{participant_id}"


class PublisherTokens:
    """What GetParticipant said about a publisher, kept for the other automations of the same publish.

    Replication (is it a replica? its attributes) and moderation (its attributes) both ask IVS about the
    same participant; IVS allows 5 such calls a second for the whole account. Only what cannot change
    for a participant is kept — the user id, attributes and replication type of its token — never its
    ``state`` or ``published``, which do. Written by whichever automation asked IVS first, when the other
    one will need it; the item expires with the session's other state.
    """

    def __init__(self, table: Table, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._table = table
        self._clock = clock

    def get(self, stage_arn: str, session_id: str, participant_id: str) -> Participant | None:
        item = self._table.get(*publisher_key(stage_arn, session_id, participant_id), consistent=True)
        return publisher(item) if item else None

    def put(self, stage_arn: str, session_id: str, found: Participant) -> None:
        pk, sk = publisher_key(stage_arn, session_id, found.participant_id)
        self._table.put(
            {
                PARTITION_KEY: pk,
                SORT_KEY: sk,
                "participantId": found.participant_id,
                "userId": found.user_id or "",
                "attributes": dict(found.attributes),
                "replicationType": found.replication_type or "",
                "sourceStageArn": found.source_stage_arn or "",
                "sourceSessionId": found.source_session_id or "",
                TTL_ATTRIBUTE: epoch(self._clock() + STATE_RETENTION),
            }
        )


def publisher(item: Mapping[str, Any]) -> Participant:
    """A kept publisher, with what may change left unknown (``state`` empty, ``published`` False)."""
    return Participant(
        participant_id=str(item["participantId"]),
        user_id=str(item.get("userId") or "") or None,
        state="",
        published=False,
        attributes={str(k): str(v) for k, v in (item.get("attributes") or {}).items()},
        replication_type=str(item.get("replicationType") or "") or None,
        source_stage_arn=str(item.get("sourceStageArn") or "") or None,
        source_session_id=str(item.get("sourceSessionId") or "") or None,
    )


def replication_key(
    stage_arn: str, session_id: str, participant_id: str, destination_stage_arn: str
) -> tuple[str, str]:
    """The replication record of one participant of one source session into one destination
    (adapters/replication_state.py keeps it)."""
    return stage_partition(stage_arn), f"SESSION#{session_id}{_REPLICA}{participant_id}#{destination_stage_arn}"


def blocking_replica(
    *,
    source_stage_arn: str,
    source_session_id: str,
    participant_id: str,
    destination_stage_arn: str,
    by: str,
    rule: str,
    now: datetime,
) -> ConditionalUpdate:
    """The write that keeps a replica out of its destination for the rest of its source session: the
    replication record becomes ``blocked`` whatever it held (no replication path starts a ``blocked``
    one, and IVS's replication events do not overwrite it). Written by the destination's moderation
    before it disconnects the replica, with its ``blocked-at-destination`` audit entry, once: a retry
    of the same disconnect finds the block there and writes nothing."""
    pk, sk = replication_key(source_stage_arn, source_session_id, participant_id, destination_stage_arn)
    return ConditionalUpdate(
        pk,
        sk,
        "SET #state = :blocked, #owner = if_not_exists(#owner, :by), #blockedAt = :now, #blockedBy = :by, "
        "#blockedRule = :rule, #session = :session, #participant = :participant, #destination = :destination, "
        "#ttl = :ttl",
        "attribute_not_exists(#blockedAt)",
        {
            "#state": "state",
            "#owner": "owner",
            "#blockedAt": "blockedAt",
            "#blockedBy": "blockedBy",
            "#blockedRule": "blockedRule",
            "#session": "sessionId",
            "#participant": "participantId",
            "#destination": "destinationStageArn",
            "#ttl": TTL_ATTRIBUTE,
        },
        {
            ":blocked": REPLICA_BLOCKED,
            ":now": iso(now),
            ":by": by,
            ":rule": rule,
            ":session": source_session_id,
            ":participant": participant_id,
            ":destination": destination_stage_arn,
            ":ttl": epoch(now + STATE_RETENTION),
        },
    )


def audit_body_mismatch(
    audit: AuditLog, metrics: MetricSink, event: StageUpdate, found: Participant, *, automation: str
) -> None:
    """An event body that disagrees with IVS about who a participant is: audited ``body-mismatch`` and
    counted (``BodyMismatch``); the caller goes on with IVS's answer."""
    record_action(
        audit,
        metrics,
        AuditRecord(
            time=event.time,
            stage_arn=event.stage_arn,
            automation=automation,
            action="body-mismatch",
            reason=(
                f"the event says user {event.user_id or '(none)'}; IVS says {found.user_id or '(none)'}: "
                "IVS's answer decides"
            ),
            session_id=event.session_id,
            participant_id=found.participant_id,
            user_id=found.user_id,
            result="ivs-answer-used",
            event_id=event.event_id,
            details={"bodyUserId": event.user_id or ""},
        ),
        "BodyMismatch",
    )
    logger.warning(
        "event body disagrees with IVS; IVS's answer used",
        extra={
            "stage_arn": event.stage_arn,
            "event_id": event.event_id,
            "automation": automation,
            "participant_id": found.participant_id,
            "body_user_id": event.user_id,
            "ivs_user_id": found.user_id,
        },
    )
