"""One place says what each error type means (``stagepilot.failures``), for the event path and the pass.

A table: every error type stagepilot raises (``stagepilot.errors``, the policy's, IVS's and AWS's as the
adapters raise them, and anything else) × each path → what happens to the work, what is counted, how
it is logged. Each row is checked through the real caller (``pipeline.handle_record`` for one record,
``convergence._converge_stage`` for one stage), not only against the map.
"""

from __future__ import annotations

import inspect
import json
import logging
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError

from stagepilot import errors
from stagepilot.adapters.ivs import IvsConflict, IvsQuotaExceeded, IvsRejected
from stagepilot.convergence import PassReport, _converge_stage
from stagepilot.errors import (
    ClaimHeld,
    ConfigurationError,
    ConflictError,
    Deferred,
    MalformedEvent,
    MalformedItem,
    NotFound,
    RetryLater,
)
from stagepilot.failures import Log, Meaning, Path, handling, metrics
from stagepilot.pipeline import handle_record
from stagepilot.policy import PolicyInvalid
from stagepilot.policy.problems import Problem
from tests.support import STAGE, T0, EventFactory
from tests.unit.failing_records import Failing, Queue, services

RETRY, PARK, DEFER = Meaning.RETRY, Meaning.PARK, Meaning.DEFER
EVENT_BUG = (RETRY, ("EventFailed",), Log.TRACEBACK)
PASS_BUG = (RETRY, ("ReconcileStageFailed",), Log.TRACEBACK)
PASS_TRANSIENT = (RETRY, ("ReconcileStageFailed",), Log.WARNING)

# (id, the error, on the event path, in the pass): (meaning, metrics counted, how logged)
ROWS: list[tuple[str, Exception, tuple[Any, ...], tuple[Any, ...]]] = [
    (
        "MalformedEvent",
        MalformedEvent("detail.session_id", "missing"),
        (PARK, ("MalformedEvent",), Log.ERROR),
        PASS_BUG,
    ),
    ("RetryLater", RetryLater("IVS: 500"), (RETRY, ("EventRetried",), Log.WARNING), PASS_TRANSIENT),
    # another owner's live claim: retried once its lease can have run out, counted apart, one info line; the
    # pass never raises it (it leaves a held claim to its owner), and would treat it as any RetryLater
    (
        "ClaimHeld",
        ClaimHeld("another event is starting this replication", owner="e-2@m-2", delay_seconds=125),
        (RETRY, ("EventClaimHeld",), Log.INFO),
        PASS_TRANSIENT,
    ),
    (
        "RetryLater, throttled",
        RetryLater("IVS: slow down", throttled=True),
        (RETRY, ("EventRetried", "IvsThrottled"), Log.WARNING),
        PASS_TRANSIENT,
    ),
    (
        "PolicyInvalid",
        PolicyInvalid([Problem("composition", "is not an object")]),
        (RETRY, ("PolicyInvalid", "EventRetried"), Log.WARNING),
        (RETRY, ("PolicyInvalid",), Log.QUIET),
    ),
    ("ConfigurationError", ConfigurationError("the door has no signing key yet"), EVENT_BUG, PASS_TRANSIENT),
    ("IvsRejected", IvsRejected("GetParticipant", "AccessDeniedException", "no"), EVENT_BUG, PASS_TRANSIENT),
    (
        "IvsQuotaExceeded",
        IvsQuotaExceeded("StartComposition", "ServiceQuotaExceededException", "20"),
        EVENT_BUG,
        PASS_TRANSIENT,
    ),
    ("IvsConflict", IvsConflict("StartParticipantReplication", "exists"), EVENT_BUG, PASS_TRANSIENT),
    (
        "MalformedItem",
        MalformedItem("BAN/troll-3", "expiresAt", "expected a number"),
        EVENT_BUG,
        (RETRY, ("ReconcileStageFailed", "MalformedItem"), Log.ERROR),
    ),
    ("Deferred", Deferred("the pass's read budget is spent"), EVENT_BUG, (DEFER, (), Log.QUIET)),
    ("NotFound", NotFound("no such policy"), EVENT_BUG, PASS_BUG),
    ("ConflictError", ConflictError("changed first"), EVENT_BUG, PASS_BUG),
    ("StagePilotError", errors.StagePilotError("any other"), EVENT_BUG, PASS_BUG),
    (
        "ClientError",
        ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "DeleteItem"),
        EVENT_BUG,
        PASS_BUG,
    ),
    ("anything else", RuntimeError("a bug"), EVENT_BUG, PASS_BUG),
]


def test_every_error_type_stagepilot_defines_has_a_row() -> None:
    defined = {
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, Exception) and cls.__module__ == errors.__name__
    }
    assert defined <= {type(row[1]) for row in ROWS}


@pytest.mark.parametrize(("error", "expected"), [(r[1], r[2]) for r in ROWS], ids=[r[0] for r in ROWS])
def test_the_map_on_the_event_path(error: Exception, expected: tuple[Any, ...]) -> None:
    found = handling(error, Path.EVENT)
    assert (found.meaning, metrics(error, Path.EVENT), found.log) == expected


@pytest.mark.parametrize(("error", "expected"), [(r[1], r[3]) for r in ROWS], ids=[r[0] for r in ROWS])
def test_the_map_in_the_pass(error: Exception, expected: tuple[Any, ...]) -> None:
    found = handling(error, Path.PASS)
    assert (found.meaning, metrics(error, Path.PASS), found.log) == expected


# through the callers ------------------------------------------------------------------------------------
def logged(caplog: pytest.LogCaptureFixture) -> Log:
    mine = [r for r in caplog.records if r.name.startswith("stagepilot")]
    if not mine:
        return Log.QUIET
    [record] = mine
    if record.exc_info:
        return Log.TRACEBACK
    if record.levelno >= logging.ERROR:
        return Log.ERROR
    return Log.WARNING if record.levelno >= logging.WARNING else Log.INFO


@pytest.mark.parametrize(("error", "expected"), [(r[1], r[2]) for r in ROWS], ids=[r[0] for r in ROWS])
def test_an_event_that_fails(error: Exception, expected: tuple[Any, ...], caplog: pytest.LogCaptureFixture) -> None:
    counted: list[str] = []
    queue = Queue()
    record = {"body": json.dumps(EventFactory().published("p-1")), "messageId": "m-1"}
    with caplog.at_level(logging.INFO, logger="stagepilot"):
        if expected[0] is PARK:
            outcome = handle_record(record, Failing(error), services(counted), queue)
            assert outcome.action == "park" and queue.parked and not queue.retried
        else:
            with pytest.raises(type(error)):
                handle_record(record, Failing(error), services(counted), queue)
            assert len(queue.retried) == 1 and not queue.parked
    assert (expected[0], tuple(counted), logged(caplog)) == expected


@pytest.mark.parametrize(("error", "expected"), [(r[1], r[3]) for r in ROWS], ids=[r[0] for r in ROWS])
def test_a_stage_that_fails_in_the_pass(
    error: Exception, expected: tuple[Any, ...], caplog: pytest.LogCaptureFixture
) -> None:
    counted: list[str] = []
    report = PassReport()
    stage = SimpleNamespace(arn=STAGE, session_id="st-1", now=T0)
    with caplog.at_level(logging.INFO, logger="stagepilot"):
        finished = _converge_stage(services(counted), report, stage, [Failing(error)])  # type: ignore[arg-type,list-item]
    if expected[0] is DEFER:
        assert not finished and report.errors == []  # the next pass examines it first
    else:
        assert finished
        [(arn, why)] = report.errors
        assert arn == STAGE and why.startswith("moderation: ")
    assert (expected[0], tuple(counted), logged(caplog)) == expected
