"""Stage policies in the table: the current version of each, its history, and the lookup the automations
read (the stage's own policy or ``default``, and whether either is paused).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stagepilot.adapters.changes import mark_changed
from stagepilot.adapters.dynamo import ConditionalPut, Table, iso, utc_now
from stagepilot.adapters.schema import (
    CHANGE_MARK_SORT_KEY,
    HISTORY_PREFIX,
    HISTORY_VERSIONS,
    PARTITION_KEY,
    PAUSE_PARTITION,
    POLICY_PARTITION,
    SORT_KEY,
)
from stagepilot.errors import ConflictError, NotFound
from stagepilot.policy import DEFAULT_STAGE, StagePolicy, parse_policy


def history_partition(stage_arn: str) -> str:
    return f"{HISTORY_PREFIX}{stage_arn}"


@dataclass(frozen=True)
class StoredPolicy:
    """A policy item as stored: its document, version and who wrote it when."""

    stage_arn: str
    version: int
    updated_at: str
    document: dict[str, Any]
    updated_by: str = ""  # the caller's ARN (STS GetCallerIdentity) of the CLI command that wrote it

    def parse(self) -> StagePolicy:
        return parse_policy(self.document)


@dataclass(frozen=True)
class PolicyLookup:
    """What one read found for a stage: its own policy, the default one, and the pause switch."""

    own: StoredPolicy | None
    default: StoredPolicy | None
    paused_by: str | None  # the pause switch that holds the stage: its own ARN, "default", or None


@dataclass(frozen=True)
class PolicySnapshot:
    """Every stored policy (raw items by stage ARN) and the ARNs of every pause switch, read together."""

    policies: Mapping[str, Mapping[str, Any]]
    paused: frozenset[str]

    def lookup(self, stage_arn: str) -> PolicyLookup:
        """What ``PolicyStore.lookup`` reads for the stage, from the snapshot."""
        return _policy_lookup(stage_arn, self.policies, self.paused)


def _policy_lookup(stage_arn: str, policies: Mapping[str, Mapping[str, Any]], paused: AbstractSet[str]) -> PolicyLookup:
    """A stage's own policy, the default one, and which pause switch holds it, from the items read."""
    own, default = policies.get(stage_arn), policies.get(DEFAULT_STAGE)
    paused_by = None
    if stage_arn in paused:
        paused_by = stage_arn
    elif own is None and DEFAULT_STAGE in paused:
        paused_by = DEFAULT_STAGE  # 'default' is paused, and the stage follows 'default'
    return PolicyLookup(
        own=_stored_policy(own, stage_arn) if own else None,
        default=_stored_policy(default, DEFAULT_STAGE) if default else None,
        paused_by=paused_by,
    )


class PolicyStore:
    """Policies, one item each, under one partition (a Query lists them all; ≤ a few thousand items).

    With ``history=True`` a write also keeps the new version's document under ``HISTORY#<stage>``, in the
    same transaction (so a role that may not write history cannot put it), and drops versions older than
    the last ``HISTORY_VERSIONS``. Versions keep counting up across a delete, so a version number names
    one document for good.
    """

    # The snapshot's pages, both partitions together: 4 MB at most, 1,024 read units (consistent). Enough for
    # IVS's default quota of 1,000 stages (adjustable) with policies 2.2 times the example's 1.4 KB; near where
    # (4.6 MB) a snapshot every 10 lifetimes costs the read units of 60 stages a lifetime read on their own (a
    # busy container's, at 20 events a stage-hour: docs/performance.md, section 11). A pathological table
    # costs each container 4 MB every 10 lifetimes before it falls back to reading per stage.
    SNAPSHOT_PAGES = 4

    def __init__(self, table: Table, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._table = table
        self._clock = clock

    def get(self, stage_arn: str) -> StoredPolicy | None:
        item = self._table.get(POLICY_PARTITION, stage_arn, consistent=True)
        return _stored_policy(item) if item else None

    def lookup(self, stage_arn: str) -> PolicyLookup:
        """Everything that decides a stage's effective policy, in one request: its own policy, the default
        policy, and the pause switches of the stage and of ``default``."""
        return self.lookup_in(stage_arn, self._table.get_many(self.lookup_keys(stage_arn)))

    @staticmethod
    def lookup_keys(stage_arn: str) -> list[tuple[str, str]]:
        """The keys ``lookup`` reads (for a caller that reads them with others in one request)."""
        return list(
            dict.fromkeys(
                [
                    (POLICY_PARTITION, stage_arn),
                    (POLICY_PARTITION, DEFAULT_STAGE),
                    (PAUSE_PARTITION, stage_arn),
                    (PAUSE_PARTITION, DEFAULT_STAGE),
                ]
            )
        )

    @staticmethod
    def lookup_in(stage_arn: str, found: Mapping[tuple[str, str], Mapping[str, Any]]) -> PolicyLookup:
        """What ``lookup`` answers, from items read at (at least) ``lookup_keys(stage_arn)``."""
        policies = {sk: item for (pk, sk), item in found.items() if pk == POLICY_PARTITION}
        return _policy_lookup(stage_arn, policies, {sk for (pk, sk) in found if pk == PAUSE_PARTITION})

    def snapshot(self) -> PolicySnapshot | None:
        """Every policy and every pause switch, in at most ``SNAPSHOT_PAGES`` ``Query`` pages of both partitions
        together (each page up to 1 MB): what ``lookup`` would find for any stage. None when they need more
        (some 2,200 policies of the example's 1.4 KB; 1,000 stages take two pages of policies and one of
        switches): the caller reads each stage on its own.

        What it guarantees, read after the change mark (``adapters/changes.py``: the caller reads the mark,
        consistently, first): every page is read strongly consistent, so the snapshot holds every write of a
        policy or pause switch that rewrote the mark before the mark was read (each write through the stores
        stores its item, then the mark). A write made while the pages are read may be in it, or in part of it
        (a page read before it, the next after): that write rewrote the mark after the one the snapshot was
        read under, so the next lifetime reads a snapshot again, as a write between one page of policies and
        one of switches always could. Read eventually consistent, a page could miss a write stored just before
        the mark was read, and the unchanged mark would carry that snapshot for ``FORCED_LIFETIMES``."""
        policies, made, complete = self._table.query_pages(
            POLICY_PARTITION, pages=self.SNAPSHOT_PAGES - 1, consistent=True
        )
        if not complete:
            return None
        switches, _, complete = self._table.query_pages(
            PAUSE_PARTITION, pages=self.SNAPSHOT_PAGES - made, consistent=True
        )
        if not complete:
            return None
        return PolicySnapshot(policies={item[SORT_KEY]: item for item in policies}, paused=_switches(switches))

    def full_snapshot(self) -> PolicySnapshot:
        """``snapshot``, however many pages each partition takes (the convergence pass's settings check,
        once per pass: reading each stage on its own would be a call per stage)."""
        return PolicySnapshot(
            policies={item[SORT_KEY]: item for item in self._table.query(POLICY_PARTITION)},
            paused=_switches(self._table.query(PAUSE_PARTITION)),
        )

    def list(self) -> list[StoredPolicy]:
        return [_stored_policy(item) for item in self._table.query(POLICY_PARTITION)]

    def put(
        self,
        policy: StagePolicy,
        *,
        expected_version: int | None = None,
        updated_by: str = "",
        history: bool = False,
        audit: Callable[[StoredPolicy], ConditionalPut] | None = None,
    ) -> StoredPolicy:
        """Write a policy. ``expected_version``: the version the writer read (0 = must not exist yet);
        None means "whatever is stored now", read first, so two concurrent writers still conflict.
        ``audit``: the audit entry of this change (given the version stored), written in the same
        transaction: the policy and its entry are stored together or not at all."""
        if expected_version is None:
            current = self.get(policy.stage_arn)
            expected_version = current.version if current else 0
        after = expected_version if expected_version else self._last_version(policy.stage_arn)
        stored = StoredPolicy(
            stage_arn=policy.stage_arn,
            version=after + 1,
            updated_at=iso(self._clock()),
            document=policy.to_document(),
            updated_by=updated_by,
        )
        item = {
            PARTITION_KEY: POLICY_PARTITION,
            SORT_KEY: stored.stage_arn,
            "version": stored.version,
            "updatedAt": stored.updated_at,
            "document": json.dumps(stored.document, sort_keys=True),
            **({"updatedBy": updated_by} if updated_by else {}),
        }
        if expected_version == 0:
            write = ConditionalPut(item, "attribute_not_exists(#pk)", {"#pk": PARTITION_KEY})
        else:
            write = ConditionalPut(item, "#v = :v", {"#v": "version"}, {":v": expected_version})
        together = [audit(stored)] if audit is not None else []
        if history:
            kept = {**item, PARTITION_KEY: history_partition(stored.stage_arn), SORT_KEY: _version_key(stored.version)}
            written = self._table.put_all([write, ConditionalPut(kept), *together])
        elif together:
            written = self._table.put_all([write, *together])
        else:
            written = self._table.put(write.item, condition=write.condition, names=write.names, values=write.values)
        if not written:
            raise ConflictError(
                f"policy for {policy.stage_arn} changed since version {expected_version} was read; "
                "get it again, re-apply your change, and put it"
            )
        mark_changed(self._table, clock=self._clock)
        if history:
            self._prune_history(stored.stage_arn)
        return stored

    def delete(
        self,
        stage_arn: str,
        *,
        expected_version: int | None = None,
        audit: Callable[[StoredPolicy], ConditionalPut] | None = None,
    ) -> StoredPolicy:
        """Delete the stored policy (only if it is still ``expected_version``, when given); returns it.
        ``audit``: the audit entry of this change, written in the same transaction."""
        current = self.get(stage_arn)
        if current is None:
            raise NotFound(f"no policy stored for {stage_arn}")
        version = current.version if expected_version is None else expected_version
        condition: dict[str, Any] = {
            "condition": "attribute_exists(#pk) AND #v = :v",
            "names": {"#pk": PARTITION_KEY, "#v": "version"},
            "values": {":v": version},
        }
        if audit is not None:
            deleted = self._table.delete_and_put(POLICY_PARTITION, stage_arn, audit(current), **condition)
        else:
            deleted = self._table.delete(POLICY_PARTITION, stage_arn, **condition)
        if not deleted:
            raise ConflictError(f"policy for {stage_arn} changed since version {version} was read; nothing deleted")
        mark_changed(self._table, clock=self._clock)
        return current

    def history(self, stage_arn: str) -> tuple[StoredPolicy, ...]:
        """The kept versions of the stage's policy, newest first."""
        return tuple(
            _stored_policy(item, stage_arn)
            for item in self._table.query(history_partition(stage_arn), newest_first=True, limit=HISTORY_VERSIONS)
        )

    def version(self, stage_arn: str, version: int) -> StoredPolicy | None:
        item = self._table.get(history_partition(stage_arn), _version_key(version), consistent=True)
        return _stored_policy(item, stage_arn) if item else None

    def _last_version(self, stage_arn: str) -> int:
        newest = next(iter(self._table.query(history_partition(stage_arn), newest_first=True, limit=1)), None)
        return int(newest.get("version", 0)) if newest else 0

    def _prune_history(self, stage_arn: str) -> None:
        items = self._table.query(history_partition(stage_arn), newest_first=True)
        for item in list(items)[HISTORY_VERSIONS:]:
            self._table.delete(item[PARTITION_KEY], item[SORT_KEY])


def _switches(items: Iterable[Mapping[str, Any]]) -> frozenset[str]:
    """The stages (or ``default``) a ``PAUSE`` partition's items pause: all but the change mark."""
    return frozenset(str(item[SORT_KEY]) for item in items if item[SORT_KEY] != CHANGE_MARK_SORT_KEY)


def _version_key(version: int) -> str:
    return f"v{version:010d}"  # sorts by version


def _stored_policy(item: Mapping[str, Any], stage_arn: str | None = None) -> StoredPolicy:
    raw = item.get("document", "")
    try:
        document = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError:
        document = {"__unreadable__": raw}
    return StoredPolicy(
        stage_arn=stage_arn or item[SORT_KEY],
        version=int(item.get("version", 0)),
        updated_at=str(item.get("updatedAt", "")),
        document=document,
        updated_by=str(item.get("updatedBy", "")),
    )
