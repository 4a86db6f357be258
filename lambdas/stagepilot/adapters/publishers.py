"""The publisher a stage session's GetParticipant answered, kept in the table for the other automation.

Separate from ``adapters.state`` so that replication and moderation, which share it, do not import the
composition records (and their decisions) they never use: each frozen dataclass a Lambda imports costs
about a millisecond of its cold start (docs/performance.md, section 1).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from stagepilot.adapters.ivs import Participant
from stagepilot.adapters.schema import PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE
from stagepilot.adapters.table import STATE_RETENTION, Table, epoch, stage_partition, utc_now


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
    )
