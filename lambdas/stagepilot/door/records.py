"""Every token the door issued (docs/door.md): so ``ban add`` finds a user's participants without listing
every live stage. One item per token, under the user: ``TOKEN#<user id>`` / ``<stage ARN>#<participant id>``.

A record is kept past the token's expiry for as long as a participant that joined with it can still be
connected (IVS: 24 hours at most per connection), then DynamoDB's TTL deletes it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from stagepilot.adapters.schema import PARTITION_KEY, SORT_KEY, TOKEN_PREFIX, TTL_ATTRIBUTE
from stagepilot.adapters.table import Table, epoch, iso, parse_iso, utc_now

CONNECTION_LIMIT: Final = timedelta(hours=24)  # IVS: a participant publishes or subscribes 24 hours at most


@dataclass(frozen=True)
class TokenRecord:
    """One issued token: who, where, as which participant, with what, until when."""

    stage_arn: str
    user_id: str
    participant_id: str
    capabilities: tuple[str, ...]
    expires_at: datetime  # the token's own expiry (it joins only before)
    issued_at: datetime

    @property
    def may_publish(self) -> bool:
        return "PUBLISH" in self.capabilities


def token_partition(user_id: str) -> str:
    return f"{TOKEN_PREFIX}{user_id}"


class TokenRecords:
    """The door writes one record per token; ``ban add`` reads a user's."""

    def __init__(self, table: Table, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._table = table
        self._clock = clock

    def item(self, record: TokenRecord) -> dict[str, object]:
        """The item for ``record`` (for a caller writing it with its audit entry in one request)."""
        return {
            PARTITION_KEY: token_partition(record.user_id),
            SORT_KEY: f"{record.stage_arn}#{record.participant_id}",
            "stageArn": record.stage_arn,
            "userId": record.user_id,
            "participantId": record.participant_id,
            "capabilities": list(record.capabilities),
            "tokenExpiresAt": iso(record.expires_at),
            "issuedAt": iso(record.issued_at),
            TTL_ATTRIBUTE: epoch(record.expires_at + CONNECTION_LIMIT),
        }

    def issued_without_publish(self, user_id: str, stage_arn: str, participant_id: str) -> bool:
        """True when the door issued this participant's token without PUBLISH: a publish error of it is
        IVS's own refusal (``INSUFFICIENT_CAPABILITIES``), never abuse. False when the door did not issue
        it (unknown: judged as any publish error)."""
        item = self._table.get(token_partition(user_id), f"{stage_arn}#{participant_id}")
        return item is not None and "PUBLISH" not in item.get("capabilities", [])

    def of_user(self, user_id: str, *, stage_arn: str | None = None) -> list[TokenRecord]:
        """The user's tokens whose participants may still be connected (on ``stage_arn`` only, if given)."""
        now = self._clock()
        records = []
        for item in self._table.query(token_partition(user_id), sk_prefix=f"{stage_arn}#" if stage_arn else None):
            expires = parse_iso(item.get("tokenExpiresAt")) or datetime.min.replace(tzinfo=UTC)
            if expires + CONNECTION_LIMIT <= now:
                continue  # TTL lags: a participant of this token cannot be connected any more
            records.append(
                TokenRecord(
                    stage_arn=str(item["stageArn"]),
                    user_id=str(item["userId"]),
                    participant_id=str(item["participantId"]),
                    capabilities=tuple(str(c) for c in item.get("capabilities", [])),
                    expires_at=expires,
                    issued_at=parse_iso(item.get("issuedAt")) or expires,
                )
            )
        return records
