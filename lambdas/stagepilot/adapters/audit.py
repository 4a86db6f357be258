"""The audit trail: one record per action taken or skipped, kept ``AUDIT_RETENTION``.

Entries live in a key space of their own (``AUDIT#<stage ARN>``, docs/table.md): every writer only adds
(``attribute_not_exists``: an entry is never overwritten by stagepilot's code), and IAM denies every role
and managed policy of the stack ``UpdateItem``, ``DeleteItem`` and ``BatchWriteItem`` on those keys, so
only the table's TTL removes one. Entries written before this key space (under ``STAGE#<stage ARN>``, sort
key ``AUDIT#...``) are still read, merged in time order, until their TTL removes them (90 days).
"""

from __future__ import annotations

import heapq
import itertools
import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from stagepilot.adapters.dynamo import ConditionalPut, ConditionalUpdate, Table, epoch, iso, stage_partition, utc_now
from stagepilot.adapters.schema import (
    AUDIT_INDEX,
    AUDIT_INDEX_PARTITION_KEY,
    AUDIT_INDEX_SORT_KEY,
    AUDIT_PARTITION,
    AUDIT_PREFIX,
    LEGACY_AUDIT_SORT_PREFIX,
    PARTITION_KEY,
    SORT_KEY,
    TTL_ATTRIBUTE,
)

AUDIT_RETENTION = timedelta(days=90)
ACTION_ATTRIBUTE = "action"  # the entry's action, as an attribute of its own (entries from before: none)
ADD_ONLY = "attribute_not_exists(#pk)"  # an audit entry is added, never overwritten
ADD_ONLY_NAMES = {"#pk": PARTITION_KEY}


def audit_partition(stage_arn: str) -> str:
    """The partition of a stage's audit trail (``stage_arn`` may be ``global``: changes of no one stage)."""
    return f"{AUDIT_PREFIX}{stage_arn}"


# Every action the audit trail records (the automations, the pass, the door and the CLI): what
# `stagepilot audit --action` accepts; tests/unit/test_audit_actions.py keeps it in step with the code.
AUDIT_ACTIONS: frozenset[str] = frozenset(
    {
        # composition
        "composition-started",
        "composition-restarted",
        "composition-rejected",
        "composition-gave-up",
        "rollover",
        "destination-failed",
        "recording-failed",
        "budget",  # a start refused: the day's composition hours are spent (decisions/composition_hours.py)
        "guarded",  # a composition stopped at a policy limit (decisions/limits.py)
        # replication
        "replication-started",
        "replication-rejected",
        "blocked-at-destination",
        # moderation
        "disconnect",
        "would-disconnect",
        "disconnect-rejected",
        "body-mismatch",
        # the convergence pass
        "healed",
        # the door
        "token-issued",
        "token-refused",
        # people, through the CLI
        "policy-put",
        "policy-rollback",
        "policy-delete",
        "pause",
        "resume",
        "ban-add",
        "ban-remove",
        "flag",
    }
)


class MetricSink(Protocol):
    def count(self, name: str, value: float = 1) -> None: ...


@dataclass(frozen=True)
class AuditRecord:
    """One audit entry: what an automation did (or would have done) on a stage, and why."""

    time: datetime  # when it happened by the event's word; ``AuditLog`` stamps its own clock's time
    stage_arn: str
    automation: str
    action: str  # e.g. "composition-start-rejected", "disconnect", "would-disconnect"
    reason: str
    session_id: str | None = None
    participant_id: str | None = None
    user_id: str | None = None
    rule: str | None = None
    dry_run: bool = False
    result: str = ""
    event_id: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    event_time: datetime | None = None  # set by ``AuditLog.record``: the event's own time

    def to_json(self) -> dict[str, Any]:
        out = {
            "time": iso(self.time),
            "eventTime": iso(self.event_time) if self.event_time is not None else None,
            "stageArn": self.stage_arn,
            "automation": self.automation,
            "action": self.action,
            "reason": self.reason,
            "sessionId": self.session_id,
            "participantId": self.participant_id,
            "userId": self.user_id,
            "rule": self.rule,
            "dryRun": self.dry_run,
            "result": self.result,
            "eventId": self.event_id,
            "details": dict(self.details),
        }
        return {k: v for k, v in out.items() if v not in (None, {}, "")}


class AuditLog:
    """Newest-first trail of actions per stage, and across stages through the sparse time index.

    Entries are ordered, and expire, by the time they are written (this clock), never by the time an
    event claims: a sender cannot date an entry into the past to hide it or make it expire at once.
    The event's own time is kept as ``eventTime``.
    """

    def __init__(self, table: Table, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._table = table
        self._clock = clock

    def record(self, entry: AuditRecord) -> None:
        """Add the entry; an entry already there (a retry writes the same key) is left as it is."""
        self._table.put(self.item(entry), condition=ADD_ONLY, names=ADD_ONLY_NAMES)

    def record_with(self, entry: AuditRecord, change: ConditionalUpdate) -> bool:
        """Apply ``change`` (the state change this entry audits) and write the entry, in one call. The
        entry is written even when the change's condition no longer holds (then in a second call), as
        ``record`` next to a separate update would have. True when the change was applied."""
        item = self.item(entry)
        if self._table.update_and_put(change, item, item_condition=(ADD_ONLY, ADD_ONLY_NAMES)):
            return True
        self._table.put(item, condition=ADD_ONLY, names=ADD_ONLY_NAMES)
        return False

    def record_if(self, entry: AuditRecord, change: ConditionalUpdate) -> bool:
        """Apply ``change`` and write the entry in one transaction, or neither when the change's condition
        no longer holds (someone else made it): True when both were written."""
        return self._table.update_and_put(change, self.item(entry), item_condition=(ADD_ONLY, ADD_ONLY_NAMES))

    def record_all(self, entry: AuditRecord, puts: Sequence[ConditionalPut]) -> bool:
        """Write ``puts`` (what this entry audits) and the entry in one transaction, or none of them: True
        when all were written."""
        return self._table.put_all([*puts, self.put_with(entry)])

    def put_with(self, entry: AuditRecord) -> ConditionalPut:
        """The entry as one write of a caller's transaction (``Table.put_all``): the change it audits and
        the entry are stored together or not at all."""
        return ConditionalPut(self.item(entry), ADD_ONLY, ADD_ONLY_NAMES)

    def item(self, entry: AuditRecord) -> dict[str, Any]:
        """The table item ``record`` writes, for a caller that writes it in the same transaction as the
        state change it audits (``Table.update_and_put``)."""
        entry = replace(entry, time=self._clock(), event_time=entry.event_time or entry.time)
        # The suffix is deterministic per (event, action): a retry at the same time writes the same item.
        identity = json.dumps(
            [entry.event_id, entry.action, entry.participant_id, entry.rule, dict(entry.details)],
            sort_keys=True,
            default=str,
        )
        suffix = str(uuid.uuid5(uuid.NAMESPACE_URL, identity))
        when = iso(entry.time)
        return {
            PARTITION_KEY: audit_partition(entry.stage_arn),
            SORT_KEY: f"{when}#{suffix}",
            AUDIT_INDEX_PARTITION_KEY: AUDIT_PARTITION,
            AUDIT_INDEX_SORT_KEY: f"{when}#{suffix}",
            TTL_ATTRIBUTE: epoch(entry.time + AUDIT_RETENTION),
            ACTION_ATTRIBUTE: entry.action,  # `audit --action` filters on it server-side
            "entry": json.dumps(entry.to_json(), sort_keys=True),
        }

    def list(self, stage_arn: str | None = None, *, limit: int = 50) -> list[dict[str, Any]]:
        if stage_arn:
            return [entry for _, entry in itertools.islice(self.trail(stage_arn), limit)]
        items = self._table.query(AUDIT_PARTITION, index=AUDIT_INDEX, newest_first=True, limit=limit)
        return [json.loads(item["entry"]) for item in items]

    def newest_first(self, stage_arn: str | None = None, *, since: datetime | None = None) -> Iterator[dict[str, Any]]:
        """Every entry newest first (one stage, or all), back to ``since``; pages are read as consumed."""
        for _, entry in self.trail(stage_arn, since=since):
            yield entry

    def trail(
        self,
        stage_arn: str | None = None,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        before: str | None = None,
        actions: Sequence[str] | None = None,
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """(position, entry) newest first, one stage or all, written from ``since`` to ``until`` and strictly
        before ``position`` ``before`` (a position this returned: where a cut listing goes on). The window is
        the query's key condition: only the entries in it are read, pages as consumed. ``actions``: DynamoDB
        returns only entries of those actions (and entries written before the action attribute existed,
        which the caller filters itself)."""
        low = iso(since) if since is not None else "0"  # a key condition cannot hold an empty string
        high = (iso(until) + "#~") if until is not None else "~"  # every suffix of the last instant
        if before is not None:
            high = min(high, before)
        only = (ACTION_ATTRIBUTE, list(actions)) if actions else None
        if stage_arn:
            legacy = LEGACY_AUDIT_SORT_PREFIX
            current = self._positions(
                self._table.query(
                    audit_partition(stage_arn), newest_first=True, sk_between=(low, high), attribute_in=only
                ),
                SORT_KEY,
                "",
            )
            older = self._positions(
                self._table.query(
                    stage_partition(stage_arn),
                    newest_first=True,
                    sk_between=(legacy + low, legacy + high),
                    attribute_in=only,
                ),
                SORT_KEY,
                legacy,
            )
            # Both newest first: merged, still newest first (entries from before the audit key space too).
            found: Iterator[tuple[str, dict[str, Any]]] = heapq.merge(current, older, key=lambda p: p[0], reverse=True)
        else:
            found = self._positions(
                self._table.query(
                    AUDIT_PARTITION, index=AUDIT_INDEX, newest_first=True, sk_between=(low, high), attribute_in=only
                ),
                AUDIT_INDEX_SORT_KEY,
                "",
            )
        for position, entry in found:
            if position == before:
                continue
            yield position, entry

    @staticmethod
    def _positions(items: Iterable[dict[str, Any]], key: str, prefix: str) -> Iterator[tuple[str, dict[str, Any]]]:
        for item in items:
            yield str(item[key])[len(prefix) :], json.loads(item["entry"])


def record_action(
    audit: AuditLog,
    metrics: MetricSink,
    entry: AuditRecord,
    *counted: str,
    change: ConditionalUpdate | None = None,
    only_if_changed: bool = False,
    puts: Sequence[ConditionalPut] = (),
) -> bool:
    """Record one action: its audit entry, then one count of each metric in ``counted``. The one way the
    automations, the convergence pass and the door record what they did (``Services.record_action``).

    With ``change`` (the state change the entry audits) both are written in one call
    (``AuditLog.record_with``: the entry is written even when the change's condition no longer holds); with
    ``only_if_changed`` too, neither the entry nor the counts are recorded then (``AuditLog.record_if``).
    With ``puts`` (the items the entry audits, e.g. an issued token's record) they and the entry are written
    in one transaction, all or none: none, nothing counted, when a condition did not hold (``Table.put_all``).
    Returns whether the change (or the puts) was applied (True without one).
    """
    if puts:
        if change is not None:
            raise ValueError("record_action takes a change or puts, not both")
        if not audit.record_all(entry, puts):
            return False
        applied = True
    elif change is None:
        audit.record(entry)
        applied = True
    elif only_if_changed:
        applied = audit.record_if(entry, change)
        if not applied:
            return False
    else:
        applied = audit.record_with(entry, change)
    for name in counted:
        metrics.count(name)
    return applied
