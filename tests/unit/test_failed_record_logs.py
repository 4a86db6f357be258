"""A record that fails logs the event as delivered (structured ``event_body``, cut at a bound), so the
operator can copy it into ``stagepilot explain`` from the function's log."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace
from typing import Any

import pytest

from stagepilot.config import Settings
from stagepilot.errors import RetryLater
from stagepilot.pipeline import LOGGED_BODY_CHARS, HandledEvents, Outcome, handle_record, logged_body
from tests.support import T0, EventFactory


class Parking:
    def __init__(self) -> None:
        self.parked: list[str] = []

    def park(self, record: Any, reason: str) -> None:
        self.parked.append(reason)

    def retry_after(self, record: Any, seconds: float) -> None:
        return None


class Failing:
    name = "composition"
    needs_policy = False

    def __init__(self, error: Exception) -> None:
        self.error = error

    def handle(self, event: Any, policy: Any, services: Any) -> Outcome:
        raise self.error


def services() -> Any:
    return SimpleNamespace(
        settings=Settings(table_name="StagePilot-Table"),
        effective_policies=SimpleNamespace(get=lambda arn: None),
        metrics=SimpleNamespace(count=lambda name, value=1: None),
        clock=lambda: T0,  # when the sample events happen
        handled=HandledEvents(ttl_seconds=30, clock=lambda: T0),  # what this container handled: nothing yet
    )


@pytest.mark.parametrize("error", [RetryLater("IVS: throttled"), RuntimeError("a bug")], ids=["retry", "bug"])
def test_a_failed_event_logs_its_body(error: Exception, caplog: pytest.LogCaptureFixture):
    body = json.dumps(EventFactory().published("p-1", event_id="evt-7"))
    with caplog.at_level(logging.INFO, logger="stagepilot"), pytest.raises(type(error)):
        handle_record({"body": body, "messageId": "m-1"}, Failing(error), services(), Parking())
    [logged] = [r for r in caplog.records if hasattr(r, "event_body")]
    assert logged.event_body == body and json.loads(logged.event_body)["id"] == "evt-7"  # type: ignore[attr-defined]


def test_a_malformed_event_logs_its_body_when_parked(caplog: pytest.LogCaptureFixture):
    parking = Parking()
    with caplog.at_level(logging.INFO, logger="stagepilot"):
        handle_record({"body": "{not json", "messageId": "m-1"}, Failing(RuntimeError()), services(), parking)
    assert [r.event_body for r in caplog.records if hasattr(r, "event_body")] == ["{not json"]  # type: ignore[attr-defined]
    assert parking.parked and parking.parked[0].startswith("malformed event")


def test_a_huge_body_is_cut():
    text = logged_body("x" * (LOGGED_BODY_CHARS + 10))
    assert text == "x" * LOGGED_BODY_CHARS + f"...[{LOGGED_BODY_CHARS + 10} chars]"
    assert logged_body({"a": 1}) == '{"a": 1}'
