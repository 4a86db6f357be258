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


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [("account", "999999999999", "the stage's account"), ("region", "eu-west-1", "the stage's region")],
)
def test_a_stage_of_another_account_or_region_than_the_envelope_is_refused(field: str, value: str, why: str) -> None:
    """The origin check compares the stage ARN with the envelope: a body that names the stack's account and
    region in its envelope but a stage elsewhere is not an event IVS sent."""
    settings = Settings(table_name="t")  # local: the envelope is not pinned, the stage still must match it
    body = EventFactory().published("host1")
    forged = {**body, field: value}
    check_origin(parse_event(body), settings, now=datetime.now(UTC))
    with pytest.raises(MalformedEvent, match=why):
        check_origin(parse_event(forged), settings, now=datetime.now(UTC))
