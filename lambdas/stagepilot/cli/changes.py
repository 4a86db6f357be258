"""Changes people make through the CLI (policies, bans, pause), in the audit trail with who made them.

Who: the caller's ARN as STS GetCallerIdentity reports it (an assumed role's session ARN names the
person's session), so every change can be traced to an identity, whatever the IAM policy allowed.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from stagepilot.cli.resources import client

if TYPE_CHECKING:
    from stagepilot.adapters.table import AuditRecord, Table

ACTOR: Final = "cli"  # the audit entry's "automation": a person, through the CLI
GLOBAL_STAGE: Final = "global"  # the audit trail's stage for changes that belong to no stage (bans)


def caller_arn() -> str:
    """The ARN of whoever runs the command. Fails like any AWS call (no credentials: one line, exit 1)."""
    return str(client("sts").get_caller_identity()["Arn"])


def record_change(table: Table, **change: Any) -> None:
    """One audit entry for one change made on its own (``change_entry``'s arguments)."""
    from stagepilot.adapters.table import AuditLog

    AuditLog(table).record(change_entry(**change))


def change_entry(
    *,
    stage_arn: str,
    action: str,
    by: str,
    reason: str,
    previous_version: int | None = None,
    version: int | None = None,
    user_id: str | None = None,
    participant_id: str | None = None,
    session_id: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> AuditRecord:
    """The audit entry of one change: ``action`` (``policy-put``, ``ban-add``...), by whom, and the
    versions before and after (policies). Written with the change in one transaction where the store
    takes it (``AuditLog.put_with``), else on its own (``record_change``)."""
    from stagepilot.adapters.table import AuditRecord

    versions = {
        **({"previousVersion": previous_version} if previous_version is not None else {}),
        **({"version": version} if version is not None else {}),
    }
    return AuditRecord(
        time=datetime.now(UTC),
        stage_arn=stage_arn,
        automation=ACTOR,
        action=action,
        reason=reason,
        user_id=user_id,
        participant_id=participant_id,
        session_id=session_id,
        event_id=f"cli:{uuid.uuid4()}",
        details={"why": f"by {by}", "by": by, **versions, **(details or {})},
    )
