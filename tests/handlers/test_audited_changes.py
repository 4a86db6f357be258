"""A policy or ban change and its audit entry are one transaction: both are stored, or neither. BAN items
say who banned and when. (The stores, on moto's DynamoDB.)"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from moto import mock_aws

from stagepilot.adapters.audit import AuditLog, AuditRecord, record_action
from stagepilot.adapters.bans import BanStore
from stagepilot.adapters.dynamo import ConditionalPut, Table
from stagepilot.adapters.policies import PolicyStore
from stagepilot.errors import ConflictError
from stagepilot.local.deployment import create_table
from stagepilot.policy import parse_policy
from tests.support import REGION, STAGE

ALICE = "arn:aws:sts::123456789012:assumed-role/Admin/alice"


@pytest.fixture
def table() -> Iterator[Table]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        create_table(client, "t")
        yield Table(client, "t")


def entry(action: str) -> AuditRecord:
    return AuditRecord(
        time=datetime.now(UTC), stage_arn=STAGE, automation="cli", action=action, reason="r", event_id="cli:1"
    )


def refused(item: dict[str, Any]) -> ConditionalPut:
    """An audit write that cannot be made (its condition fails): stands for any failure of the entry."""
    return ConditionalPut(item, "attribute_exists(#pk)", {"#pk": "pk"})


def test_a_policy_is_stored_with_its_audit_entry_or_not_at_all(table: Table) -> None:
    store, audit = PolicyStore(table), AuditLog(table)
    policy = parse_policy({"stageArn": STAGE, "moderation": {"blockedUserIds": ["troll-3"]}})

    with pytest.raises(ConflictError):
        store.put(policy, expected_version=0, history=True, audit=lambda _: refused(audit.item(entry("policy-put"))))
    assert store.get(STAGE) is None and audit.list(STAGE) == []

    stored = store.put(policy, expected_version=0, history=True, audit=lambda _: audit.put_with(entry("policy-put")))
    assert stored.version == 1 and [e["action"] for e in audit.list(STAGE)] == ["policy-put"]

    with pytest.raises(ConflictError):
        store.delete(STAGE, audit=lambda _: refused(audit.item(entry("policy-delete"))))
    assert store.get(STAGE) is not None
    store.delete(STAGE, audit=lambda _: audit.put_with(entry("policy-delete")))
    assert store.get(STAGE) is None and [e["action"] for e in audit.list(STAGE)] == ["policy-delete", "policy-put"]


def test_a_ban_carries_who_and_when_and_is_stored_with_its_audit_entry(table: Table) -> None:
    bans, audit = BanStore(table), AuditLog(table)

    with pytest.raises(ConflictError):
        bans.add("spammer-7", by=ALICE, replace=True, audit=lambda *_: refused(audit.item(entry("ban-add"))))
    assert bans.get("spammer-7") is None

    bans.add("spammer-7", by=ALICE, replace=False, audit=lambda *_: audit.put_with(entry("ban-add")))
    ban = bans.get("spammer-7")
    assert ban is not None and ban.created_by == ALICE and ban.created_at
    item = table.get("BAN", "spammer-7")
    assert item is not None and item["createdBy"] == ALICE and item["createdAt"] == ban.created_at

    bans.remove("spammer-7", audit=lambda _: audit.put_with(entry("ban-remove")))
    assert bans.get("spammer-7") is None
    assert [e["action"] for e in audit.list(STAGE)] == ["ban-remove", "ban-add"]


def test_an_action_with_the_items_it_audits_is_recorded_and_counted_all_or_nothing(table: Table) -> None:
    # The door's issued token: its record and its audit entry in one transaction, counted once written.
    audit, counted = AuditLog(table), Counter[str]()
    metrics = SimpleNamespace(count=lambda name, value=1: counted.update({name: value}))
    token = {"pk": "TOKEN#1", "sk": "RECORD"}
    first = ConditionalPut(token, "attribute_not_exists(#pk)", {"#pk": "pk"})

    assert record_action(audit, metrics, entry("token-issued"), "TokenIssued", puts=[first])
    assert table.get("TOKEN#1", "RECORD") is not None and [e["action"] for e in audit.list(STAGE)] == ["token-issued"]

    again = replace(entry("token-issued"), event_id="cli:2")  # its condition no longer holds: nothing written
    assert not record_action(audit, metrics, again, "TokenIssued", puts=[first])
    assert len(audit.list(STAGE)) == 1 and counted == {"TokenIssued": 1}
