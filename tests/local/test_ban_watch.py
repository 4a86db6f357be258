"""BanListWatch (adapters/bans.py): whether the ban list is empty, read once a lifetime and carried on by the
change mark; the read that decides it must see a ban added just before the mark was read."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto import mock_aws

from stagepilot.adapters.bans import BanListWatch
from stagepilot.adapters.changes import ChangeMark
from stagepilot.adapters.schema import create_table
from stagepilot.adapters.table import Table
from stagepilot.local.clients import local_client
from tests.support import REGION, QueryCalls


@pytest.fixture
def table() -> Iterator[Table]:
    with mock_aws():
        client = local_client("dynamodb", region=REGION)
        create_table(client, "bans")
        yield Table(client, "bans")


def test_the_ban_list_is_read_strongly_consistent(table: Table) -> None:
    """An unchanged change mark carries the watch's answer for up to 10 lifetimes (5 minutes): an eventually
    consistent read made just after `ban add` could answer "empty" (DynamoDB: such a read "might not reflect
    the results of a recently completed write operation"), and the mark, read after the ban was written,
    would then carry that answer while the banned user publishes."""
    queries = QueryCalls(table.client)
    watch = BanListWatch(table, ttl_seconds=30, mark=ChangeMark(table))

    assert watch.empty()
    assert len(queries.made) == 1
    assert queries.made[0].get("ConsistentRead") is True
