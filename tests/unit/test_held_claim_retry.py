"""An event that finds another owner's live claim is not done: the pipeline sends it back to its queue until
that lease can have run out (``pipeline.handle_record``, ``Outcome.held``; decisions/leases.py).

Not a failure either: counted ``EventClaimHeld`` (not ``EventRetried``, not ``IvsThrottled``, not
``EventSkipped``), logged at info level with the reason, and not remembered as handled, so its return is
handled again. The automations' side (which outcomes name a held claim) is in
tests/handlers/test_held_claims.py.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

import pytest

from stagepilot.decisions.leases import CLAIM_LEASE, HELD_RETRY_MARGIN, HeldClaim
from stagepilot.errors import ClaimHeld
from stagepilot.pipeline import Outcome, handle_record
from tests.support import T0, EventFactory
from tests.unit.failing_records import Queue, services

REASON = "another event is starting this session's composition"


class Holding:
    """An automation that finds, on every event, a claim another owner took ``age`` ago."""

    name = "composition"
    needs_policy = False

    def __init__(self, age: timedelta) -> None:
        self.held = HeldClaim("reconcile:st-1:composition", T0 - age)
        self.handled = 0

    def handle(self, event: Any, policy: Any, services: Any) -> Outcome:
        self.handled += 1
        return Outcome(self.name, "skip", REASON, held=self.held)


def record(receive: int = 1) -> dict[str, Any]:
    body = json.dumps(EventFactory().published("p-1"))
    return {"body": body, "messageId": "m-1", "attributes": {"ApproximateReceiveCount": str(receive)}}


def test_the_event_goes_back_to_its_queue_until_the_lease_can_have_run_out(caplog: pytest.LogCaptureFixture) -> None:
    counted: list[str] = []
    queue = Queue()
    automation = Holding(age=timedelta(seconds=20))

    with caplog.at_level(logging.INFO, logger="stagepilot"), pytest.raises(ClaimHeld) as raised:
        handle_record(record(), automation, services(counted), queue)

    wait = CLAIM_LEASE - timedelta(seconds=20) + HELD_RETRY_MARGIN
    assert queue.retried == [wait.total_seconds()] and not queue.parked
    assert raised.value.owner == "reconcile:st-1:composition"
    assert counted == ["EventClaimHeld"]  # not a failure, a throttle, nor a skip
    [line] = [r for r in caplog.records if r.name.startswith("stagepilot")]
    assert line.levelno == logging.INFO and line.exc_info is None
    assert line.getMessage() == "event will be retried once another owner's claim can have run out"
    why = line.__dict__["reason"]
    assert why.startswith(REASON) and "reconcile:st-1:composition" in why
    assert (T0 + CLAIM_LEASE - timedelta(seconds=20)).isoformat() in why  # until when


def test_its_return_is_handled_again_not_answered_from_memory() -> None:
    queue = Queue()
    automation = Holding(age=timedelta(0))
    shared = services()

    for _ in range(2):
        with pytest.raises(ClaimHeld):
            handle_record(record(), automation, shared, queue)

    assert automation.handled == 2
    assert queue.retried == [(CLAIM_LEASE + HELD_RETRY_MARGIN).total_seconds()] * 2


def test_on_the_last_receive_the_log_says_it_goes_to_the_dead_letter_queue(caplog: pytest.LogCaptureFixture) -> None:
    counted: list[str] = []
    with caplog.at_level(logging.INFO, logger="stagepilot"), pytest.raises(ClaimHeld):
        handle_record(record(receive=5), Holding(age=timedelta(0)), services(counted), Queue())

    assert counted == ["EventClaimHeld"]
    assert any(
        r.levelno == logging.WARNING and "goes to the dead-letter queue" in r.getMessage() for r in caplog.records
    )


def test_what_it_did_meanwhile_is_counted_and_logged_before_it_goes_back(caplog: pytest.LogCaptureFixture) -> None:
    """Replication to two destinations: one started, the other held by another owner's claim."""
    counted: list[str] = []
    acted = Outcome("replication", "replication-started", "started replication to 1 stage(s)", acted=True)

    class Partly(Holding):
        def handle(self, event: Any, policy: Any, services: Any) -> Outcome:
            return Outcome(acted.automation, acted.action, acted.reason, acted=True, held=self.held)

    with caplog.at_level(logging.INFO, logger="stagepilot"), pytest.raises(ClaimHeld) as raised:
        handle_record(record(), Partly(age=timedelta(0)), services(counted), Queue())

    assert counted == ["EventActed", "EventClaimHeld"]
    assert [r.getMessage() for r in caplog.records][:2] == [
        acted.reason,
        "event will be retried once another owner's claim can have run out",
    ]
    assert isinstance(raised.value.outcome, Outcome) and raised.value.outcome.acted
