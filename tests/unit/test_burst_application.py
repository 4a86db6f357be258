"""The burst benchmark's application that keeps to its part (benchmarks/burst.py, ``bounded_sends``): the
same Poisson arrivals as the unbounded model, each call held back (never dropped) until it puts at most
the application's part (5 - 3 = 2) of its calls of an operation into any one second."""

from __future__ import annotations

import heapq
import itertools
import random

from benchmarks import burst
from stagepilot import budget

OPERATIONS = ["GetParticipant", "GetStage", "StartComposition"]


def _busiest(times: list[float]) -> int:
    return max(sum(1 for u in times if t - 1.0 < u <= t) for t in times)


def test_the_application_part_is_what_the_budget_leaves_it() -> None:
    assert burst.APPLICATION_PART == budget.QUOTA_PER_OPERATION - budget.FUNCTIONS_PER_SECOND == 2


def test_a_bounded_application_sends_every_call_it_would_send_unbounded_never_more_than_its_part_a_second() -> None:
    arrivals = list(itertools.islice(burst._arrivals(OPERATIONS, random.Random(7)), 3000))
    sends = list(itertools.islice(burst.bounded_sends(iter(arrivals)), 2900))
    unbounded = {op: [at for at, o in arrivals if o == op] for op in OPERATIONS}
    assert any(_busiest(times) > burst.APPLICATION_PART for times in unbounded.values())  # Poisson bursts
    assert [at for at, _ in sends] == sorted(at for at, _ in sends)
    for operation in OPERATIONS:
        sent = [at for at, op in sends if op == operation]
        arose = unbounded[operation][: len(sent)]
        assert _busiest(sent) == burst.APPLICATION_PART
        assert all(s >= a for s, a in zip(sent, arose, strict=True))  # held back, never early, in order
        assert sum(1 for s, a in zip(sent, arose, strict=True) if s > a) < len(sent) / 2  # most go at once
        assert sent[-1] - arose[-1] < 10.0  # at 1 call/s on average the limiter's queue drains


def test_the_unbounded_model_keeps_the_arrivals_it_had() -> None:
    """The Poisson runs are the sensitivity figure: factoring the arrivals out for both models kept their draws
    (each operation's next arrival drawn when its call is sent, as the application's loop did)."""
    rng = random.Random(3)
    heap = [(rng.expovariate(budget.APPLICATION_RESERVE), op) for op in OPERATIONS]
    heapq.heapify(heap)
    before = []
    for _ in range(200):
        at, operation = heapq.heappop(heap)
        before.append((at, operation))
        heapq.heappush(heap, (at + rng.expovariate(budget.APPLICATION_RESERVE), operation))
    assert list(itertools.islice(burst._arrivals(OPERATIONS, random.Random(3)), 200)) == before
