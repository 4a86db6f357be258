"""Fixtures for every suite.

**The real clock is pinned.** Tests on a virtual clock (``LocalDeployment``, ``simulate``) start at ``T0``
(tests/support.py), a fixed date, so what they assert never depends on the day they run. Tests on the real
clock (a Lambda entry point, the CLI against moto's server, the sandbox) would otherwise meet ``T0`` on the
calendar: an event at ``T0`` that reaches a handler more than the queues' retention after ``T0`` is parked as
stale (stagepilot/origin.py), so a test that forgets ``at=now`` passes for 19 days and then fails. Here every
test starts with this process's real clock (``datetime.now``, ``time.time``, in every thread, moto's server
included) at ``REAL_CLOCK_START``, a day after ``T0``, and ticking from there: events at ``T0`` are a day
old, ``datetime.now(UTC)`` is a day after ``T0``, whatever today's date. Monotonic clocks (timeouts, waits)
are not moved. A test whose subprocess reads the real clock and exchanges times with the test is marked
``wall_clock`` and keeps the calendar's clock.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import time_machine

from tests.support import REAL_CLOCK_START


@pytest.fixture(autouse=True)
def pinned_clock(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.node.get_closest_marker("wall_clock"):
        yield
        return
    with time_machine.travel(REAL_CLOCK_START, tick=True):
        yield
