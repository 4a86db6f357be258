"""The IVS adapter paces every call per operation and tries a throttled read again within the budget."""

from __future__ import annotations

from typing import Any

import pytest

from stagepilot.adapters.ivs import FUNCTION_CLIENT_CONFIG, READ_RETRIES, IvsStage, Pacer
from stagepilot.errors import RetryLater
from stagepilot.local.ivs import IvsStandIn

STAGE = "arn:aws:ivs:us-east-1:123456789012:stage/AbCdef1G2hij"


class Time:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_each_operation_is_paced_on_its_own() -> None:
    time = Time()
    pacer = Pacer(2.0, clock=time.clock, sleep=time.sleep)
    for operation in ("GetStage", "GetStage", "ListParticipants", "GetStage"):
        pacer.wait(operation)
    assert time.slept == [0.5, 0.5]  # the third GetStage waited; ListParticipants did not


def test_a_pacer_spaces_each_operation_at_its_own_rate() -> None:
    time = Time()
    pacer = Pacer(0.5, rates={"StartComposition": 4.0, "GetStage": 2.0}, clock=time.clock, sleep=time.sleep)
    for operation in ("StartComposition", "StartComposition", "GetStage", "GetStage", "ListStages", "ListStages"):
        pacer.wait(operation)
    # 4/s -> 0.25 s apart; GetStage's first call came 0.25 s in, so its second waits 0.5 - 0; ListStages
    # (not listed) takes the default 0.5/s: 2 s apart.
    assert time.slept == [0.25, 0.5, 2.0]


def test_a_pacer_refuses_a_rate_that_is_not_positive() -> None:
    with pytest.raises(ValueError):
        Pacer(1.0, rates={"GetStage": 0.0})
    with pytest.raises(ValueError):
        Pacer(-1.0)


@pytest.mark.parametrize("error", ["ThrottlingException", "ServiceQuotaExceededException"])
def test_a_throttled_read_is_tried_again_after_the_pacers_wait(error: str) -> None:
    ivs = IvsStandIn()
    ivs.create_stage(STAGE)
    time = Time()
    stage = IvsStage(ivs.client(), pacer=Pacer(2.0, clock=time.clock, sleep=time.sleep))
    ivs.fail_next("GetStage", READ_RETRIES, error=error)

    assert stage.active_session_id(STAGE) is None  # answered on the last try

    assert [c.status for c in ivs.calls] == [429 if error == "ThrottlingException" else 402] * READ_RETRIES + [200]
    assert time.slept == [0.5] * READ_RETRIES


def test_a_read_throttled_past_its_retries_fails_the_event_for_the_queue() -> None:
    ivs = IvsStandIn()
    ivs.create_stage(STAGE)
    ivs.fail_next("GetStage", READ_RETRIES + 1, error="ThrottlingException")
    with pytest.raises(RetryLater):
        IvsStage(ivs.client()).active_session_id(STAGE)


def test_a_throttled_write_is_not_tried_again_here() -> None:
    ivs = IvsStandIn()
    ivs.create_stage(STAGE)
    ivs.fail_next("DisconnectParticipant", 1, error="ThrottlingException")
    with pytest.raises(RetryLater):
        IvsStage(ivs.client()).disconnect(STAGE, "p1", "reason")
    calls: list[Any] = [c for c in ivs.calls if c.operation == "DisconnectParticipant"]
    assert len(calls) == 1  # the claim and the queue decide when to try again


def test_every_request_of_the_functions_client_waits_for_the_pacer() -> None:
    """botocore retrying a throttled request itself would spend the quota outside the budget."""
    ivs = IvsStandIn()
    ivs.create_stage(STAGE)
    waits: list[str] = []

    class Counting(Pacer):
        def wait(self, key: str = "") -> None:
            waits.append(key)

    stage = IvsStage(ivs.client(config=FUNCTION_CLIENT_CONFIG), pacer=Counting(1000.0))
    ivs.fail_next("GetStage", READ_RETRIES, error="ThrottlingException")

    assert stage.active_session_id(STAGE) is None
    assert len(ivs.calls) == len(waits) == READ_RETRIES + 1
