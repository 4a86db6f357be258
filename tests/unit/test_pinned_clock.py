"""The real clock every test starts with (tests/conftest.py): a day after T0, whatever today's date, so an
event at T0 is one the handlers accept on the real clock, today and in ten years."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from stagepilot.config import Settings
from stagepilot.errors import MalformedEvent
from stagepilot.events import parse_event
from stagepilot.origin import check_origin
from tests.support import ACCOUNT, REAL_CLOCK_START, REGION, T0, EventFactory


def test_the_real_clock_starts_a_day_after_t0_and_ticks() -> None:
    now = datetime.now(UTC)
    assert T0 + timedelta(days=1) == REAL_CLOCK_START
    assert timedelta(0) <= now - REAL_CLOCK_START < timedelta(minutes=5)
    assert abs(time.time() - now.timestamp()) < 60
    seen: list[datetime] = []
    worker = threading.Thread(target=lambda: seen.append(datetime.now(UTC)))  # moto's server threads too
    worker.start()
    worker.join()
    assert timedelta(0) <= seen[0] - REAL_CLOCK_START < timedelta(minutes=5)


def test_an_event_at_t0_is_fresh_on_the_pinned_real_clock() -> None:
    settings = Settings(table_name="t", account=ACCOUNT, region=REGION)
    event = parse_event(EventFactory().published("host1"))
    check_origin(event, settings, now=datetime.now(UTC))  # a day old: accepted
    with pytest.raises(MalformedEvent, match="older than the stack's queues can hold"):
        check_origin(event, settings, now=datetime.now(UTC) + timedelta(days=20))  # what the calendar did


@pytest.mark.wall_clock
def test_a_wall_clock_test_keeps_the_calendar() -> None:
    assert datetime.now(UTC) - REAL_CLOCK_START > timedelta(days=1)  # the calendar is past 2026-11-22
