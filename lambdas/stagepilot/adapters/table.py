"""The table's stores by their old address: every name that ``stagepilot.adapters.table`` held before it was
split into one module per concept. New code imports from the concept's own module:

- ``dynamo``: ``Table`` (the client wrapper), conditional writes, attribute encodings (times, partitions);
- ``policies``: ``PolicyStore`` and the policy lookup; ``pauses``: the kill switch;
- ``bans``: ``BanStore``; ``audit``: ``AuditLog``.
"""

from stagepilot.adapters.audit import AUDIT_RETENTION, AuditLog, AuditRecord
from stagepilot.adapters.bans import BAN_SCOPES, JOIN, PUBLISH, Ban, BanStore, ban_key, ban_keys, strongest
from stagepilot.adapters.dynamo import (
    STATE_RETENTION,
    ConditionalPut,
    ConditionalUpdate,
    Table,
    epoch,
    iso,
    parse_iso,
    stage_partition,
    utc_now,
)
from stagepilot.adapters.pauses import RESUMED_KEY, PauseSwitch, PauseSwitches
from stagepilot.adapters.policies import (
    HISTORY_VERSIONS,
    PolicyLookup,
    PolicySnapshot,
    PolicyStore,
    StoredPolicy,
    history_partition,
)

__all__ = [
    "AUDIT_RETENTION",
    "BAN_SCOPES",
    "HISTORY_VERSIONS",
    "JOIN",
    "PUBLISH",
    "RESUMED_KEY",
    "STATE_RETENTION",
    "AuditLog",
    "AuditRecord",
    "Ban",
    "BanStore",
    "ConditionalPut",
    "ConditionalUpdate",
    "PauseSwitch",
    "PauseSwitches",
    "PolicyLookup",
    "PolicySnapshot",
    "PolicyStore",
    "StoredPolicy",
    "Table",
    "ban_key",
    "ban_keys",
    "epoch",
    "history_partition",
    "iso",
    "parse_iso",
    "stage_partition",
    "strongest",
    "utc_now",
]
