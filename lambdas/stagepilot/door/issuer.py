"""The token issuer: one request of the door (docs/door.md), read → decide → make → record → audit.

Reads what decides in one request: the bans that can apply (global, the stage's) and, unless this
container's policy cache holds the stage's policy, the policy lookup (own, default, pause switches) in
the same ``BatchGetItem``. The decision is ``decision.decide_token``; a grant becomes a token
(``KeyPairTokens``: one KMS Sign, no IVS call; or ``CreatedTokens``: CreateParticipantToken), and the
token's record and the audit entry are written in one request (TransactWriteItems: the audit entry is
only added, never overwritten, docs/table.md). Every decision is counted
(``TokenIssued``, ``TokenRefused``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol

from stagepilot.adapters.audit import MetricSink, record_action
from stagepilot.adapters.dynamo import ConditionalPut
from stagepilot.adapters.table import AuditLog, AuditRecord, BanStore, PolicyStore, Table
from stagepilot.door.decision import Grant, Refusal, TokenRequest, decide_token
from stagepilot.door.records import TokenRecord, TokenRecords
from stagepilot.door.signing import IssuedToken
from stagepilot.errors import RetryLater
from stagepilot.pipeline import EffectivePolicies

logger = logging.getLogger(__name__)

DOOR: Final = "door"  # the audit trail's automation name for the door's decisions
ISSUED_METRIC: Final = "TokenIssued"
REFUSED_METRIC: Final = "TokenRefused"


class TokenMaker(Protocol):
    def make(
        self,
        *,
        stage_arn: str,
        user_id: str,
        capabilities: tuple[str, ...],
        attributes: Mapping[str, str],
        minutes: int,
    ) -> IssuedToken: ...


@dataclass
class TokenIssuer:
    """The door's ports: the table (bans, policies, records, audit), a policy cache, a token maker."""

    table: Table
    policies: EffectivePolicies
    maker: TokenMaker
    metrics: MetricSink
    clock: Callable[[], datetime]

    def __post_init__(self) -> None:
        self._bans = BanStore(self.table, clock=self.clock)
        self._records = TokenRecords(self.table, clock=self.clock)
        self._audit = AuditLog(self.table, clock=self.clock)

    def issue(self, request: TokenRequest) -> tuple[Grant | Refusal, IssuedToken | None]:
        """Decide and, on a grant, make the token; (the decision, the token or None). Raises ``RetryLater``
        (DynamoDB, KMS or IVS unavailable) and ``PolicyInvalid`` (the stored policy no longer validates)."""
        cached, effective = self.policies.cached(request.stage_arn)
        if cached:
            ban = self._bans.for_stage(request.user_id, request.stage_arn)
        else:
            ban, found = self._bans.for_stage_with(
                request.user_id, request.stage_arn, PolicyStore.lookup_keys(request.stage_arn)
            )
            effective = self.policies.keep(request.stage_arn, PolicyStore.lookup_in(request.stage_arn, found))
        decision = decide_token(
            request,
            policy=effective.policy if effective is not None else None,
            ban_scope=ban.scope if ban is not None else None,
            ban_reason=ban.reason if ban is not None else "",
            ban_on_stage=ban is not None and ban.stage_arn is not None,
        )
        if isinstance(decision, Refusal):
            record_action(
                self._audit,
                self.metrics,
                self._entry("token-refused", decision.reason, request, rule=decision.refused),
                REFUSED_METRIC,
            )
            logger.info(
                "token refused",
                extra={"stage_arn": request.stage_arn, "user_id": request.user_id, "refused": decision.refused},
            )
            return decision, None
        token = self.maker.make(
            stage_arn=decision.stage_arn,
            user_id=decision.user_id,
            capabilities=decision.capabilities,
            attributes=decision.attributes,
            minutes=decision.duration_minutes,
        )
        record = TokenRecord(
            stage_arn=decision.stage_arn,
            user_id=decision.user_id,
            participant_id=token.participant_id,
            capabilities=token.capabilities,
            expires_at=token.expiration_time,
            issued_at=self.clock(),
        )
        entry = self._entry(
            "token-issued",
            decision.why,
            request,
            participant_id=token.participant_id,
            details={
                "role": decision.role,
                "capabilities": list(token.capabilities),
                "expires": str(record.expires_at),
            },
        )
        if not record_action(
            self._audit, self.metrics, entry, ISSUED_METRIC, puts=[ConditionalPut(self._records.item(record))]
        ):
            raise RetryLater("the token's record and audit entry were not written (a concurrent write)")
        logger.info(
            "token issued",
            extra={
                "stage_arn": request.stage_arn,
                "user_id": request.user_id,
                "participant_id": token.participant_id,
                "role": decision.role,
            },
        )
        return decision, token

    def _entry(
        self,
        action: str,
        reason: str,
        request: TokenRequest,
        *,
        rule: str | None = None,
        participant_id: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> AuditRecord:
        now = self.clock()
        return AuditRecord(
            time=now,
            stage_arn=request.stage_arn,
            automation=DOOR,
            action=action,
            reason=reason,
            participant_id=participant_id,
            user_id=request.user_id,
            rule=rule,
            result=rule or "issued",
            event_id=f"door:{request.user_id}:{now.isoformat()}",
            details={"role": request.role or ""} if details is None else details,
        )
