"""The one discrete-event scheduler (local/scheduler.py): actors take turns in virtual-time order."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from stagepilot.local.scheduler import Scheduler, call_latency
from tests.support import T0


class Clock:
    def __init__(self) -> None:
        self.now = T0


def test_actors_run_one_at_a_time_in_virtual_time_order_and_move_the_clock() -> None:
    clock = Clock()
    scheduler = Scheduler(clock)
    seen: list[tuple[str, float, object]] = []

    def actor(name: str, waits: list[float]) -> None:
        for wait in waits:
            seen.append((name, scheduler.now, clock.now))
            scheduler.sleep(wait)
        seen.append((name, scheduler.now, clock.now))

    scheduler.spawn(lambda: actor("a", [1.0, 1.0]))
    scheduler.spawn(lambda: actor("b", [0.5, 2.0]), at=0.25)
    scheduler.run()

    assert [(name, at) for name, at, _ in seen] == [
        ("a", 0.0),
        ("b", 0.25),
        ("b", 0.75),
        ("a", 1.0),
        ("a", 2.0),
        ("b", 2.75),
    ]
    assert all(moment == T0 + timedelta(seconds=at) for _, at, moment in seen)


def test_a_wait_outside_any_actor_takes_no_time() -> None:
    clock = Clock()
    scheduler = Scheduler(clock)
    scheduler.sleep(30)
    call_latency(scheduler, (0.05, 0.15), random.Random(1))()
    assert (scheduler.now, clock.now) == (0.0, T0)


def test_a_failing_actor_stops_the_run_with_its_error() -> None:
    scheduler = Scheduler(Clock())

    def broken() -> None:
        scheduler.sleep(1)
        raise ValueError("broken actor")

    scheduler.spawn(broken)
    with pytest.raises(ValueError, match="broken actor"):
        scheduler.run()


def test_a_cancelled_actor_stops_where_it_waits_and_close_stops_the_rest() -> None:
    scheduler = Scheduler(Clock())
    reached: list[str] = []

    def long_runner(name: str) -> None:
        scheduler.sleep(100)
        reached.append(name)

    killed = scheduler.spawn(lambda: long_runner("killed"))
    scheduler.spawn(lambda: long_runner("left"))
    scheduler.spawn(lambda: scheduler.cancel(killed), at=10)
    scheduler.run(until=50)
    assert reached == [] and scheduler.alive == 1  # the killed one ended at 10 s, without going on
    scheduler.close()
    assert reached == [] and scheduler.alive == 0
