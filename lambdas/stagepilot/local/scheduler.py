"""One virtual clock for everything that runs at once: a discrete-event scheduler (docs/simulate.md, "Time
passes as deployed").

Deployed, the automations' function containers and the convergence pass run side by side, and every AWS
call they make takes time. Here each of them is an *actor*: a thread that runs only while the scheduler
hands it the clock. One heap ordered by virtual time decides who runs next; exactly one actor runs at a
time, the earliest, until it waits (``sleep``: an AWS call's latency, a pacer's wait, a back-off) or ends.
So a pass over many stages takes the virtual time it would take deployed, and an event delivered while it
runs is handled meanwhile, in the order of virtual time, deterministically (ties go to whoever was
scheduled first).

Used by ``LocalDeployment`` (``stagepilot simulate``, the handler tests) and by ``benchmarks/burst.py``.
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol


class Clock(Protocol):
    now: datetime


class Cancelled(BaseException):
    """Raised in an actor woken by ``Scheduler.close`` (or ``cancel``): it must stop, as a killed
    process stops, wherever it was (not an ``Exception``: nothing in the code it runs may swallow it)."""


@dataclass(frozen=True)
class Latency:
    """How long one AWS call takes, drawn uniformly (seconds): IVS about 50-150 ms, DynamoDB 5-15 ms."""

    ivs: tuple[float, float] = (0.050, 0.150)
    dynamodb: tuple[float, float] = (0.005, 0.015)


AS_DEPLOYED = Latency()
# Real seconds an actor may run before yielding: no step of handler code takes this long, but an actor that
# blocks on a (real) lock whose holder waits on the virtual clock never yields; this turns that into an error.
STUCK_SECONDS = 300.0


class Scheduler:
    """One heap of (virtual time, actor): exactly one actor runs at a time, the earliest.

    ``clock`` (anything with a ``now`` datetime) is set to each actor's time before it runs; ``now`` is the
    same moment in seconds after the clock's start (a float: the clock itself keeps microseconds only).
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._origin = clock.now
        self._heap: list[tuple[float, int, threading.Event]] = []
        self._seq = itertools.count()
        self._yielded = threading.Event()
        self._local = threading.local()
        self._cancelled: set[threading.Event] = set()
        self._closed = False
        self.alive = 0
        self.failure: BaseException | None = None
        self.now = 0.0

    # the clock ---------------------------------------------------------------------------------------
    def seconds(self, moment: datetime) -> float:
        return (moment - self._origin).total_seconds()

    def moment(self, seconds: float) -> datetime:
        return self._origin + timedelta(seconds=seconds)

    def advance_to(self, moment: datetime) -> None:
        """Move the clock forward to ``moment`` (never backwards) between actors' turns."""
        seconds = self.seconds(moment)
        if seconds > self.now:
            self.now = seconds
            self.clock.now = moment

    def _sync(self) -> float:
        """``now``, caught up with the clock if its driver moved it directly (never backwards)."""
        seconds = self.seconds(self.clock.now)
        if seconds > self.now + 1e-6:  # the clock keeps microseconds: a smaller gap is its rounding
            self.now = seconds
        return self.now

    # actors ------------------------------------------------------------------------------------------
    def spawn(self, body: Callable[[], None], *, at: float | None = None) -> threading.Event:
        """Start ``body`` as an actor at ``at`` seconds (default: now). Returns its handle (for ``cancel``)."""
        turn = threading.Event()
        now = self._sync()
        self._push(now if at is None else max(at, now), turn)
        self.alive += 1

        def run() -> None:
            turn.wait()
            self._local.turn = turn
            try:
                if turn in self._cancelled:
                    raise Cancelled
                body()
            except Cancelled:
                pass
            except BaseException as exc:  # surfaced by step(): the simulation stops
                self.failure = exc
            finally:
                self.alive -= 1
                self._cancelled.discard(turn)
                self._yielded.set()

        threading.Thread(target=run, daemon=True, name="stagepilot-actor").start()
        return turn

    def in_actor(self) -> bool:
        """Whether the caller is an actor (its waits take virtual time) rather than the driver."""
        return getattr(self._local, "turn", None) is not None

    def sleep(self, seconds: float) -> None:
        """Called by an actor: give the clock back and resume ``seconds`` later (in virtual time). A call
        from outside any actor (the driver, a test's setup) returns at once: its time does not pass."""
        turn: threading.Event | None = getattr(self._local, "turn", None)
        if turn is None:
            return
        turn.clear()
        self._push(self.now + max(0.0, seconds), turn)
        self._yielded.set()
        turn.wait()
        if turn in self._cancelled or self._closed:
            raise Cancelled

    def cancel(self, handle: threading.Event) -> None:
        """The actor stops now, wherever it waits (its process was killed: a function's timeout)."""
        for index, (_, _, turn) in enumerate(self._heap):
            if turn is handle:
                self._cancelled.add(handle)
                self._heap[index] = (self.now, next(self._seq), handle)
                heapq.heapify(self._heap)
                return

    # the driver --------------------------------------------------------------------------------------
    def next_at(self) -> float | None:
        """When the earliest waiting actor runs next (seconds on this clock); None when none waits."""
        return self._heap[0][0] if self._heap else None

    def step(self) -> None:
        """Run the earliest actor until it waits or ends."""
        at, _, turn = heapq.heappop(self._heap)
        if at > self._sync():
            self.now = at
            self.clock.now = self.moment(at)
        self._yielded.clear()
        turn.set()
        if not self._yielded.wait(STUCK_SECONDS):
            raise RuntimeError(
                f"an actor held the virtual clock for {STUCK_SECONDS:.0f} s of real time: is it blocked on a lock "
                "that another actor holds across an AWS call (its latency or pacing waits on the clock)?"
            )
        if self.failure is not None:
            failure, self.failure = self.failure, None
            raise failure

    def run(self, *, until: float | None = None) -> None:
        """Run actors in time order until none is left (or the next is later than ``until``)."""
        while self._heap and (until is None or self._heap[0][0] <= until):
            self.step()

    def close(self) -> None:
        """Stop every actor still waiting (each raises ``Cancelled`` where it waits and ends)."""
        self._closed = True
        while self._heap:
            _, _, turn = heapq.heappop(self._heap)
            self._cancelled.add(turn)
            self._yielded.clear()
            turn.set()
            self._yielded.wait()
        self.failure = None

    def _push(self, at: float, turn: threading.Event) -> None:
        heapq.heappush(self._heap, (at, next(self._seq), turn))


def call_latency(scheduler: Scheduler, bounds: tuple[float, float], rng: random.Random) -> Callable[..., None]:
    """A botocore ``before-send`` handler: the calling actor waits one call's latency (virtual time)."""

    def wait(**_: Any) -> None:
        if scheduler.in_actor():
            scheduler.sleep(rng.uniform(*bounds))

    return wait


class VirtualTime:
    """``time`` as botocore's endpoint sees it (patch ``botocore.endpoint.time``): its retry back-off sleeps
    on the scheduler's virtual clock."""

    scheduler: Scheduler | None = None

    def sleep(self, seconds: float) -> None:
        if VirtualTime.scheduler is not None:
            VirtualTime.scheduler.sleep(seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)
