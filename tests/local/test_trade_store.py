"""The shared-store trade (benchmarks/trades.py, ``SharedStore``; docs/performance.md section 3): every IVS
call it paces costs one DynamoDB call, one more for each refusal, and the log in the table is the bound."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from moto import mock_aws

from benchmarks.counting import CallCounter
from benchmarks.trades import SharedStore
from stagepilot.adapters.ivs import IvsStage
from stagepilot.local.clients import local_client
from stagepilot.local.deployment import TABLE_NAME, create_table
from stagepilot.local.ivs import IvsStandIn
from tests.support import Time

STAGE = "arn:aws:ivs:us-east-1:123456789012:stage/AbCdef1G2hij"
T0 = 1_795_000_000.0  # epoch seconds: the virtual clock's start


@pytest.fixture
def paced() -> Iterator[SimpleNamespace]:
    """IVS (the stand-in) paced by a store over the deployment's table, and a counter on both clients."""
    with mock_aws():
        dynamodb = local_client("dynamodb", region="us-east-1")
        create_table(dynamodb)
        clock = Time(T0)
        ivs_world = IvsStandIn(clock=lambda: datetime.fromtimestamp(clock.now, UTC))
        ivs_world.create_stage(STAGE)
        store = SharedStore(lambda: dynamodb, table_name=TABLE_NAME, clock=clock.clock, sleep=clock.sleep)
        client = ivs_world.client()
        counter = CallCounter()
        counter.attach(dynamodb)
        counter.attach(client)
        yield SimpleNamespace(
            ivs=IvsStage(client, pacer=store, sleep=clock.sleep),
            store=store,
            counter=counter,
            clock=clock,
            world=ivs_world,
            dynamodb=dynamodb,
        )


def sent_at(world: IvsStandIn) -> list[float]:
    """When each GetStage reached IVS, in seconds from the start."""
    return [c.time.timestamp() - T0 for c in world.calls if c.operation == "GetStage"]


def test_each_ivs_call_the_store_paces_costs_one_dynamodb_call(paced: SimpleNamespace) -> None:
    """Calls a second apart: the log has room for each, so one UpdateItem before each IVS call."""
    for _ in range(5):
        assert paced.ivs.get_stage(STAGE) is not None
        paced.clock.sleep(1.0)
    assert paced.counter.by_operation() == {"dynamodb:UpdateItem": 5, "ivs-realtime:GetStage": 5}
    assert (paced.store.writes, paced.store.refused) == (5, 0)


def test_a_call_over_the_log_costs_a_refused_write_and_waits_a_window_after_the_oldest(paced: SimpleNamespace) -> None:
    """Four calls at once against a log of 3 a window: the fourth write is refused (its ALL_OLD says when),
    the fourth call is written for a window after the first and waits until then: 5 DynamoDB calls."""
    for _ in range(4):
        paced.ivs.get_stage(STAGE)
    assert paced.counter.by_operation() == {"dynamodb:UpdateItem": 5, "ivs-realtime:GetStage": 4}
    assert (paced.store.writes, paced.store.refused) == (5, 1)
    assert sent_at(paced.world) == pytest.approx([0.0, 0.0, 0.0, 1.2])
    assert paced.clock.slept == pytest.approx([1.2])


def test_two_stores_over_one_table_share_one_log(paced: SimpleNamespace) -> None:
    """Every container holds a store of its own; the log in the table bounds them together."""
    other = SharedStore(lambda: paced.dynamodb, table_name=TABLE_NAME, clock=paced.clock.clock, sleep=paced.clock.sleep)
    second = paced.ivs.paced(other)
    paced.ivs.get_stage(STAGE)
    paced.ivs.get_stage(STAGE)
    second.get_stage(STAGE)
    second.get_stage(STAGE)  # the log holds 3 within the window: a window after the first
    assert sent_at(paced.world) == pytest.approx([0.0, 0.0, 0.0, 1.2])
    assert (other.writes, other.refused) == (3, 1)
    assert paced.counter.calls[("dynamodb", "UpdateItem")] == 5
