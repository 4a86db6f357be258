"""benchmarks/request_units.py charges each DynamoDB call as DynamoDB documents ("DynamoDB read and write
operations"; "Global secondary indexes", write capacity), from the sizes of the items the call touches on moto's
table: what benchmarks/cost.py's DynamoDB line is computed from."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from benchmarks.item_sizes import item_size
from benchmarks.request_units import RequestUnitMeter, item_kind, measure_passes
from stagepilot.adapters.schema import create_table
from stagepilot.local.clients import local_client

TABLE = "units"
KB = 1024


@pytest.fixture
def tables() -> Iterator[tuple[Any, RequestUnitMeter]]:
    """A client whose calls are charged, and its meter (reading the items through a client of its own)."""
    with mock_aws():
        client = local_client("dynamodb", region="us-east-1")
        create_table(client, TABLE)
        meter = RequestUnitMeter(local_client("dynamodb", region="us-east-1"))
        meter.attach(client)
        yield client, meter


def sized(pk: str, sk: str, size: int, **extra: Any) -> dict[str, Any]:
    """An item of exactly ``size`` bytes (a string attribute ``pad`` fills it up)."""
    item: dict[str, Any] = {"pk": {"S": pk}, "sk": {"S": sk}, **extra, "pad": {"S": ""}}
    item["pad"] = {"S": "x" * (size - item_size(item))}
    assert item_size(item) == size
    return item


def key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def test_a_60_kb_put_is_60_write_units_and_so_is_replacing_it_with_a_small_one(tables: Any) -> None:
    client, meter = tables
    client.put_item(TableName=TABLE, Item=sized("STAGE#~convergence", "PASSES", 60 * KB))
    assert meter.write_units == 60
    client.put_item(TableName=TABLE, Item=sized("STAGE#~convergence", "PASSES", 100))
    assert meter.write_units == 120  # the larger of the item replaced and the item written
    assert meter.by_kind["pass log"].write_units == 120
    assert meter.by_operation["PutItem"].calls == 2


def test_an_update_of_one_attribute_is_charged_the_whole_item(tables: Any) -> None:
    client, meter = tables
    client.put_item(TableName=TABLE, Item=sized("STAGE#a", "SESSION#s#COMPOSITION", 10 * KB))
    meter.reset()
    client.update_item(
        TableName=TABLE,
        Key=key("STAGE#a", "SESSION#s#COMPOSITION"),
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "state"},
        ExpressionAttributeValues={":s": {"S": "started"}},
    )
    assert meter.write_units == 11  # 10 KB before, 10 KB + 12 bytes after: the larger, per started KB
    assert meter.by_kind["composition record"].write_units == 11


def test_a_write_whose_condition_failed_is_still_charged(tables: Any) -> None:
    client, meter = tables
    client.put_item(TableName=TABLE, Item=sized("STAGE#a", "SESSION#s#DISCONNECT#p", 3 * KB))
    meter.reset()
    with pytest.raises(client.exceptions.ConditionalCheckFailedException):
        client.put_item(
            TableName=TABLE,
            Item=sized("STAGE#a", "SESSION#s#DISCONNECT#p", 500),
            ConditionExpression="attribute_not_exists(pk)",
        )
    assert meter.write_units == 3  # the larger of the stored item and the one attempted


def test_a_delete_is_charged_the_item_it_deleted(tables: Any) -> None:
    client, meter = tables
    client.put_item(TableName=TABLE, Item=sized("PAUSE", "arn", 2 * KB + 1))
    meter.reset()
    client.delete_item(TableName=TABLE, Key=key("PAUSE", "arn"))
    assert meter.write_units == 3


def test_reads_are_charged_per_4_kb_half_when_eventually_consistent(tables: Any) -> None:
    client, meter = tables
    client.put_item(TableName=TABLE, Item=sized("STAGE#~convergence", "PASSES", 13 * KB))
    meter.reset()
    client.get_item(TableName=TABLE, Key=key("STAGE#~convergence", "PASSES"))
    assert meter.read_units == 2  # 16 KB started, eventually consistent
    client.get_item(TableName=TABLE, Key=key("STAGE#~convergence", "PASSES"), ConsistentRead=True)
    assert meter.read_units == 2 + 4
    client.get_item(TableName=TABLE, Key=key("PAUSE", "~changed"), ConsistentRead=True)
    assert meter.read_units == 2 + 4 + 1  # an item that does not exist still costs a read
    client.get_item(TableName=TABLE, Key=key("STAGE#~convergence", "PASSES"), ProjectionExpression="pk")
    assert meter.read_units == 2 + 4 + 1 + 2  # a projection does not change the size read


def test_a_batch_read_charges_each_key_as_its_own_read(tables: Any) -> None:
    client, meter = tables
    client.put_item(TableName=TABLE, Item=sized("POLICY", "a", int(1.5 * KB)))
    client.put_item(TableName=TABLE, Item=sized("POLICY", "b", int(6.5 * KB)))
    meter.reset()
    keys = [key("POLICY", "a"), key("POLICY", "b"), key("PAUSE", "a")]
    client.batch_get_item(RequestItems={TABLE: {"Keys": keys}})
    assert meter.read_units == (1 + 2 + 1) / 2  # 4 KB + 8 KB + a key that does not exist, eventually consistent
    assert meter.by_kind["policy"].read_units == 1.5
    assert meter.by_kind["pause switch"].read_units == 0.5
    assert meter.by_operation["BatchGetItem"].calls == 1


def test_a_query_is_charged_every_item_it_read_even_those_its_filter_dropped(tables: Any) -> None:
    client, meter = tables
    for n in range(10):
        client.put_item(TableName=TABLE, Item=sized("POLICY", f"arn-{n}", 4080, tier={"S": "gold"}))
    meter.reset()
    found = client.query(
        TableName=TABLE,
        KeyConditionExpression="#pk = :pk",
        FilterExpression="#tier = :none",
        ExpressionAttributeNames={"#pk": "pk", "#tier": "tier"},
        ExpressionAttributeValues={":pk": {"S": "POLICY"}, ":none": {"S": "none"}},
    )
    assert found["Items"] == []
    assert meter.read_units == 10 / 2  # 40,800 bytes read: 40 KB started, eventually consistent
    client.query(
        TableName=TABLE,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "POLICY"}},
        Limit=2,
        ConsistentRead=True,
    )
    assert meter.read_units == 5 + 2  # the two items the limit let it read, strongly consistent
    assert meter.by_operation["Query"].calls == 2


def test_a_transaction_writes_each_item_at_twice_the_rate_and_the_audit_index_too(tables: Any) -> None:
    client, meter = tables
    entry = sized("AUDIT#arn", "2026-12-07T20:00:00.000Z#u", 600, auditPk={"S": "AUDIT"}, auditSk={"S": "t#u"})
    client.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": TABLE, "Item": sized("STAGE#a", "SESSION#s#COMPOSITION", 300)}},
            {"Put": {"TableName": TABLE, "Item": entry, "ConditionExpression": "attribute_not_exists(pk)"}},
        ]
    )
    # 2 + 2 for the two items; the entry's copy in the audit index (projection ALL): one write of its own
    assert meter.write_units == 2 + 2 + 1
    assert meter.by_kind["audit entry"].write_units == 3
    assert meter.by_operation["TransactWriteItems"].calls == 1


def test_an_audit_entry_put_alone_writes_the_table_and_the_index(tables: Any) -> None:
    client, meter = tables
    entry = sized("AUDIT#arn", "2026-12-07T20:00:00.000Z#u", 1500, auditPk={"S": "AUDIT"}, auditSk={"S": "t#u"})
    client.put_item(TableName=TABLE, Item=entry, ConditionExpression="attribute_not_exists(pk)")
    assert meter.write_units == 2 + 2
    with pytest.raises(client.exceptions.ConditionalCheckFailedException):
        client.put_item(TableName=TABLE, Item=entry, ConditionExpression="attribute_not_exists(pk)")
    assert meter.write_units == 2 + 2 + 2  # the refused retry: the table's write only, nothing reached the index


def test_a_throttled_or_refused_request_is_not_charged(tables: Any) -> None:
    client, meter = tables
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_item(TableName="missing", Key=key("POLICY", "a"))
    assert meter.read_units == 0


@pytest.mark.parametrize(
    ("pk", "sk", "kind"),
    [
        ("POLICY", "default", "policy"),
        ("PAUSE", "~changed", "change mark"),
        ("PAUSE", "arn", "pause switch"),
        ("STAGE#~convergence", "PASSES", "pass log"),
        ("STAGE#~convergence", "CURSOR", "pass cursor"),
        ("STAGE#arn", "SESSION#s#COMPOSITION", "composition record"),
        ("STAGE#arn", "COMPOSITIONS", "composition ledger"),
        ("STAGE#arn", "SESSION#s#REPLICA#p#dest", "replication record"),
        ("STAGE#arn", "SESSION#s#DISCONNECT#p", "disconnect claim"),
        ("AUDIT#arn", "2026-12-07T20:00:00.000Z#u", "audit entry"),
        ("TOKEN#user", "arn#p", "issued token"),
    ],
)
def test_each_item_is_told_by_its_key(pk: str, sk: str, kind: str) -> None:
    assert item_kind(pk, sk) == kind


@pytest.mark.story
def test_the_pass_reads_and_rewrites_its_whole_log_every_pass() -> None:
    """The pass log (adapters/pass_log.py: the last 240 passes and the live stages' listing, one item) is
    read and put whole by every full pass, idle or not: its size in KB is the pass's write units for it."""
    measured = measure_passes(20)
    for state in ("idle", "live"):
        one = measured[state]
        size = one["pass_log_bytes"]
        assert size > 12 * KB  # 240 passes of {at, examinable, reached}
        log = one["by_kind"]["pass log"]
        assert log["calls"] == 2 * one["passes"]  # a GetItem and a PutItem a pass
        assert log["write_units"] == -(-size // KB) * one["passes"]
        assert log["read_units"] == -(-size // (4 * KB)) / 2 * one["passes"]
    assert measured["live"]["stages_reached_per_pass"] == 20
    assert measured["live"]["pass_log_bytes"] > measured["idle"]["pass_log_bytes"]  # the listing of 20 live stages


def test_a_read_the_meter_cannot_charge_is_kept_apart_not_missed(tables: Any) -> None:
    client, meter = tables
    client.scan(TableName=TABLE)
    client.describe_table(TableName=TABLE)  # the control plane costs no request unit
    assert meter.uncharged == {"Scan": 1}
    assert meter.read_units == 0
