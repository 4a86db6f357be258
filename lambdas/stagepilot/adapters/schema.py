"""The table's physical schema, shared by the stack (infra/) and the stores. Design: docs/table.md.

``create_table`` makes it on a DynamoDB client (moto's, for the stand-in, the what-if shadow and the tests);
the stack makes the deployed one from the same names (infra/stack.py).
"""

from typing import Any, Final

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
# In the PAUSE partition: the change mark every write of a policy, pause switch or ban rewrites (adapters/changes.py);
# no stage ARN starts with "~".
CHANGE_MARK_SORT_KEY: Final = "~changed"
STAGE_PREFIX: Final = "STAGE#"  # + stage ARN: automation state, claims, counters and the audit trail
HISTORY_PREFIX: Final = "HISTORY#"  # + stage ARN (or "default"): the last versions of its policy
HISTORY_VERSIONS: Final = 20  # `policy history` / `policy rollback`: the last this many versions of a policy
TOKEN_PREFIX: Final = "TOKEN#"  # + user id: the door's record of every token issued to the user
AUDIT_PARTITION: Final = "AUDIT"  # the audit index's partition (auditPk), not a table partition
# + stage ARN (or "global"): the audit trail, a key space of its own that every role may only add to
# (PutItem if attribute_not_exists; IAM denies UpdateItem, DeleteItem and BatchWriteItem on it to all).
AUDIT_PREFIX: Final = "AUDIT#"
LEGACY_AUDIT_SORT_PREFIX: Final = "AUDIT#"  # entries written before AUDIT_PREFIX: under STAGE#, sk AUDIT#...


def create_table(client: Any, name: str) -> None:
    """The table exactly as the stack defines it (keys, audit index, TTL)."""
    client.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[
            {"AttributeName": PARTITION_KEY, "KeyType": "HASH"},
            {"AttributeName": SORT_KEY, "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": n, "AttributeType": "S"}
            for n in (PARTITION_KEY, SORT_KEY, AUDIT_INDEX_PARTITION_KEY, AUDIT_INDEX_SORT_KEY)
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": AUDIT_INDEX,
                "KeySchema": [
                    {"AttributeName": AUDIT_INDEX_PARTITION_KEY, "KeyType": "HASH"},
                    {"AttributeName": AUDIT_INDEX_SORT_KEY, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )
    client.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE}
    )
