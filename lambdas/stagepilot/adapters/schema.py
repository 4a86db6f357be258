"""The table's physical schema, shared by the stack (infra/) and the stores. Design: docs/table.md."""

from typing import Final

PARTITION_KEY: Final = "pk"
SORT_KEY: Final = "sk"
TTL_ATTRIBUTE: Final = "expiresAt"  # epoch seconds; DynamoDB deletes expired state/counters/bans
AUDIT_INDEX: Final = "auditByTime"  # sparse GSI over audit records only: the newest-first trail of all stages
AUDIT_INDEX_PARTITION_KEY: Final = "auditPk"
AUDIT_INDEX_SORT_KEY: Final = "auditSk"

# Partition keys (docs/table.md). IAM scopes writes by them (dynamodb:LeadingKeys, infra/stack.py):
# the functions write only under STAGE_PREFIX.
POLICY_PARTITION: Final = "POLICY"
BAN_PARTITION: Final = "BAN"
PAUSE_PARTITION: Final = "PAUSE"  # the kill switch: one item per paused stage (or "default"), apart from policies
STAGE_PREFIX: Final = "STAGE#"  # + stage ARN: automation state, claims, counters and the audit trail
HISTORY_PREFIX: Final = "HISTORY#"  # + stage ARN (or "default"): the last versions of its policy
TOKEN_PREFIX: Final = "TOKEN#"  # + user id: the door's record of every token issued to the user
AUDIT_PARTITION: Final = "AUDIT"  # the audit index's partition (auditPk), not a table partition
