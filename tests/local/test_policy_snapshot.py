"""PolicyStore.snapshot on moto DynamoDB past one Query page (1 MB): a fleet of example-sized policies larger
than a page (800: moto's page holds about 720, DynamoDB's about 750) is read whole over a few pages, a pause
switch on a later page is seen, and a table past the snapshot's bound of pages gives None after at most that
many calls, so the policy cache reads per stage (docs/table.md, docs/performance.md section 11)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto import mock_aws

from benchmarks.item_sizes import item_size
from stagepilot.adapters.schema import PARTITION_KEY, PAUSE_PARTITION, POLICY_PARTITION, SORT_KEY, create_table
from stagepilot.adapters.table import PauseSwitches, PolicyStore, Table
from stagepilot.local.clients import local_client
from stagepilot.policy import parse_policy
from tests.support import FLEET_ARN as ARN
from tests.support import REGION, QueryCalls, example_document, store_fleet

FLEET = 800  # example-sized policies: more than one page holds


@pytest.fixture
def table() -> Iterator[Table]:
    with mock_aws():
        client = local_client("dynamodb", region=REGION)
        create_table(client, "snapshot")
        yield Table(client, "snapshot")


def test_a_fleet_past_one_page_of_policies_is_read_whole(table: Table) -> None:
    """800 policies of the example's size are more than one Query page: the old snapshot gave up (None) and
    every busy container read each stage on its own."""
    store_fleet(table, FLEET)
    stored = table.client.get_item(
        TableName=table.name, Key={PARTITION_KEY: {"S": POLICY_PARTITION}, SORT_KEY: {"S": ARN.format(FLEET - 1)}}
    )["Item"]
    assert 1_300 < item_size(stored) < 1_500  # the example's size (docs/performance.md, section 11)
    first_page = table.client.query(
        TableName=table.name,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": POLICY_PARTITION}},
    )
    assert "LastEvaluatedKey" in first_page  # more than one page, as in DynamoDB

    store = PolicyStore(table)
    snapshot = store.snapshot()

    assert snapshot is not None
    assert len(snapshot.policies) == FLEET
    for n in (0, FLEET // 2, FLEET - 1):  # stages on the first page and on the second
        assert snapshot.lookup(ARN.format(n)) == store.lookup(ARN.format(n))
        own = snapshot.lookup(ARN.format(n)).own
        assert own is not None
        moderation = own.parse().moderation
        assert moderation is not None and moderation.blocked_user_ids == {f"troll-{n}"}


def test_a_pause_switch_on_a_later_page_is_seen(table: Table) -> None:
    """The pause switches past the first page of their partition (switches written with large attributes
    behind the CLI's back), for a stage whose policy is on the policies' second page, hold the stage."""
    store_fleet(table, FLEET)
    for n in range(40):  # 40 switches of 30 KB: more than one page of the PAUSE partition
        table.put({PARTITION_KEY: PAUSE_PARTITION, SORT_KEY: f"arn:aws:ivs:a{n:03d}", "note": "x" * 30_000})
    paused = ARN.format(FLEET - 1)
    PauseSwitches(table).pause(paused, by="operator")  # sorts after the padded ones: the last page
    first_page = table.client.query(
        TableName=table.name,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": PAUSE_PARTITION}},
    )
    assert "LastEvaluatedKey" in first_page
    assert paused not in {item[SORT_KEY]["S"] for item in first_page["Items"]}

    store = PolicyStore(table)
    snapshot = store.snapshot()

    assert snapshot is not None
    assert paused in snapshot.paused
    assert snapshot.lookup(paused).paused_by == paused
    assert snapshot.lookup(paused) == store.lookup(paused)
    assert snapshot.lookup(ARN.format(1)).paused_by is None


def test_a_table_past_the_bound_gives_no_snapshot_after_at_most_the_bound_of_pages(table: Table) -> None:
    """Policies of some 100 KB each (a long block list), 45 of them: more pages than the snapshot reads. It
    gives up (None: the policy cache reads per stage) after ``SNAPSHOT_PAGES`` calls, not after all of it."""
    store = PolicyStore(table)
    for n in range(45):
        document = example_document(n)
        document["moderation"]["blockedUserIds"] = [f"troll-{n}-{k:04d}-" + "u" * 80 for k in range(1_100)]
        store.put(parse_policy(document))
    queries = QueryCalls(table.client)

    assert store.snapshot() is None
    assert 1 < len(queries.made) <= PolicyStore.SNAPSHOT_PAGES
    assert len(list(table.query(POLICY_PARTITION))) == 45  # all stored: the bound, not the table, said no


def test_the_snapshot_reads_every_page_consistently(table: Table) -> None:
    """The change mark is read (consistently) before the snapshot and carries it over up to 10 lifetimes while
    unchanged: an eventually consistent page could miss a write made just before the mark was read, and the
    mark would then carry the stale snapshot for 5 minutes (DynamoDB: an eventually consistent read "might not
    reflect the results of a recently completed write operation")."""
    store_fleet(table, FLEET)
    queries = QueryCalls(table.client)

    assert PolicyStore(table).snapshot() is not None
    assert len(queries.made) == 3  # two pages of policies, one of pause switches
    assert all(query.get("ConsistentRead") is True for query in queries.made)
