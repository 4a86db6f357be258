"""The table's physical schema, shared by the stack (infra/) and the stores. Design: docs/table.md."""

from typing import Final

PARTITION_KEY: Final = "pk"
SORT_KEY: Final = "sk"
TTL_ATTRIBUTE: Final = "expiresAt"  # epoch seconds; DynamoDB deletes expired state/counters/bans
AUDIT_INDEX: Final = "auditByTime"  # sparse GSI over audit records only: the newest-first trail of all stages
AUDIT_INDEX_PARTITION_KEY: Final = "auditPk"
AUDIT_INDEX_SORT_KEY: Final = "auditSk"
