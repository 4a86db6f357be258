"""The CPU ``benchmarks/counting.CallCounter`` counts inside AWS calls is never more than the CPU spent over
the same interval: ``work_per_event`` printed a negative "own CPU per delivery" (``cpu_ms_per_delivery_own``)
because every call's ``process_time`` included the other containers' work while the call waited its latency
on the scheduler, and a call made inside another call was counted twice.

The clients are real boto3 clients; a ``before-send`` handler answers each call after spinning a known amount
of the calling thread's CPU (and, in ``LocalDeployment``'s way, waiting its latency on the virtual clock)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse

from benchmarks.counting import CallCounter
from stagepilot.local.scheduler import Scheduler, call_latency

IN_CALL = 0.030  # CPU seconds each call spins inside itself (botocore's work and the fake's, in the benchmark)
OWN = 0.050  # CPU seconds each container spins between its calls (the handler's own code)


def spin(seconds: float) -> None:
    """Use ``seconds`` of this thread's CPU."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


class _Body:
    def stream(self, **_: Any) -> Any:
        yield b"{}"


def answered(then: Callable[[], None] = lambda: None) -> Callable[..., AWSResponse]:
    """A ``before-send`` handler: spins ``IN_CALL``, runs ``then`` (a wait, or a call of its own), answers."""

    def answer(request: Any, **_: Any) -> AWSResponse:
        spin(IN_CALL)
        then()
        return AWSResponse(request.url, 200, {}, _Body())

    return answer


def client(answer: Callable[..., AWSResponse]) -> Any:
    made = boto3.session.Session(region_name="us-east-1").client("dynamodb")
    made.meta.events.register("before-send", answer)
    return made


def get(table: Any) -> None:
    table.get_item(TableName="t", Key={"pk": {"S": "k"}})


@dataclass
class _Clock:
    now: datetime


def test_two_containers_whose_calls_wait_on_the_clock_are_each_counted_only_for_their_own_cpu() -> None:
    scheduler = Scheduler(_Clock(datetime(2026, 12, 7, tzinfo=UTC)))
    waits = call_latency(scheduler, (0.100, 0.100), random.Random(7))  # as LocalDeployment's clients wait
    counter = CallCounter()
    tables = [client(answered(then=waits)) for _ in range(2)]
    for table in tables:
        counter.attach(table)
    calls_each = 2

    def container(table: Any) -> Callable[[], None]:
        def handle() -> None:
            for _ in range(calls_each):
                spin(OWN)
                get(table)

        return handle

    counter.reset()
    began = time.process_time()
    for table in tables:
        scheduler.spawn(container(table))
    scheduler.run()
    total = time.process_time() - began

    assert counter.total == 2 * calls_each
    assert counter.call_cpu >= 2 * calls_each * IN_CALL
    # what is left of the total is at least the containers' own work: none of it was counted in a call
    assert total - counter.call_cpu >= 2 * calls_each * OWN


def test_a_call_made_inside_another_call_is_counted_once() -> None:
    counter = CallCounter()
    inner = client(answered())
    outer = client(answered(then=lambda: get(inner)))  # an in-process fake that calls a counted client
    counter.attach(inner)
    counter.attach(outer)

    began = time.process_time()
    get(outer)
    total = time.process_time() - began

    assert counter.total == 2
    assert 2 * IN_CALL <= counter.call_cpu <= total


def test_a_call_begun_before_reset_is_not_counted_after_it() -> None:
    scheduler = Scheduler(_Clock(datetime(2026, 12, 7, tzinfo=UTC)))
    counter = CallCounter()
    table = client(answered(then=call_latency(scheduler, (0.100, 0.100), random.Random(7))))
    counter.attach(table)
    scheduler.spawn(lambda: get(table))
    scheduler.step()  # the call has spun and waits its latency

    counter.reset()
    scheduler.run()

    assert counter.total == 0
    assert counter.call_cpu == 0.0
