"""A record that fails logs the event as delivered (structured ``event_body``, cut at a bound), so the
operator can copy it into ``stagepilot explain`` from the function's log."""

from __future__ import annotations

import json
import logging

import pytest

from stagepilot.errors import RetryLater
from stagepilot.pipeline import LOGGED_BODY_CHARS, handle_record, logged_body
from tests.support import EventFactory
from tests.unit.failing_records import Failing, Queue, services


@pytest.mark.parametrize("error", [RetryLater("IVS: throttled"), RuntimeError("a bug")], ids=["retry", "bug"])
def test_a_failed_event_logs_its_body(error: Exception, caplog: pytest.LogCaptureFixture):
    body = json.dumps(EventFactory().published("p-1", event_id="evt-7"))
    with caplog.at_level(logging.INFO, logger="stagepilot"), pytest.raises(type(error)):
        handle_record({"body": body, "messageId": "m-1"}, Failing(error, "composition"), services(), Queue())
    [logged] = [r for r in caplog.records if hasattr(r, "event_body")]
    assert logged.event_body == body and json.loads(logged.event_body)["id"] == "evt-7"  # type: ignore[attr-defined]


def test_a_malformed_event_logs_its_body_when_parked(caplog: pytest.LogCaptureFixture):
    parking = Queue()
    with caplog.at_level(logging.INFO, logger="stagepilot"):
        record = {"body": "{not json", "messageId": "m-1"}
        handle_record(record, Failing(RuntimeError(), "composition"), services(), parking)
    assert [r.event_body for r in caplog.records if hasattr(r, "event_body")] == ["{not json"]  # type: ignore[attr-defined]
    assert parking.parked and parking.parked[0].startswith("malformed event")


def test_a_huge_body_is_cut():
    text = logged_body("x" * (LOGGED_BODY_CHARS + 10))
    assert text == "x" * LOGGED_BODY_CHARS + f"...[{LOGGED_BODY_CHARS + 10} chars]"
    assert logged_body({"a": 1}) == '{"a": 1}'
