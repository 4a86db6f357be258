"""Fixtures for every suite.

**One AWS environment.** Every test runs with the same fake account's environment: none of the shell's
``AWS_*`` variables (a profile, an endpoint, real credentials), no config or credentials file, credentials
``testing`` and the region ``REGION`` (tests/support.py), no instance metadata. moto and the stand-in take
it as is; a test that needs another (the CLI's moto server, the sandbox, a shell without credentials) changes
it with ``monkeypatch``, which puts this one back afterwards.

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

**One botocore loader per process.** Every boto3 session reads botocore's service models afresh (a
``LocalDeployment`` makes several: about 0.26 s each); here every session shares one loader, whose cache
keeps each model once read (0.056 s). The models are read-only data, so sharing them changes nothing.

**moto writes items out as it holds them.** moto builds each DynamoDB answer by walking every attribute
value member by member (about 20 µs each: half the CPU of a 26-hour show went to reading back the pass's
log); tests/moto_items.py writes the ones already in wire form as they are, and reads them so from a request
(moto walks those too). The answers are the same text, the requests read the same.

**moto's transactions back up their own items.** moto copies every table a ``TransactWriteItems`` names
before writing, so each transaction cost as much as the table was long (the door's thousand tokens: 140 s);
stagepilot/local/lean_moto.py backs up and rolls back only the items the transaction names. The tables left
behind are the same.

**moto lists a response class's methods once** (tests/moto_methods.py), not on every request.

**moto answers one DynamoDB request at a time.** moto's tables are plain dicts; two requests at once (the
CLI's side-by-side reads against moto's server) could meet inside one and get a 500 from moto's race, not
from stagepilot (tests/moto_threads.py).

**The CDK tests share one worker.** Each xdist worker that synthesizes pays the ~16 s jsii/CDK boot once;
``tests/infra`` is one ``xdist_group``, so with ``--dist loadgroup`` (``make test``) only one worker pays
(xdist's group marks get lost on pytest 9.2 without tests/xdist_groups.py, which also groups by path).

**The stories start first.** ``make test`` runs every test, the long ones too: a subprocess, a sandbox, a
whole show, a hypothesis property (``story``, ``is_story`` below). They are collected first, so the workers
take them (after the CDK group, the largest) while the many short tests are left to fill the gaps; a long
test handed out last would keep one worker busy while the other idles.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import botocore.loaders
import botocore.session
import pytest
import time_machine

from stagepilot.local.lean_moto import transactions_roll_back_their_items
from tests.moto_items import items_as_moto_holds_them
from tests.moto_methods import method_names_kept_per_class
from tests.moto_threads import dynamodb_answers_one_request_at_a_time
from tests.support import REAL_CLOCK_START, REGION

pytest_plugins = ["tests.xdist_groups"]  # xdist_group marks reach the scheduler on pytest 9.2


@pytest.fixture(scope="session", autouse=True)
def aws_environment() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as env:
        for name in list(os.environ):
            if name.startswith("AWS_"):
                env.delenv(name)
        env.setenv("AWS_CONFIG_FILE", os.devnull)
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_REGION", REGION)
        env.setenv("AWS_DEFAULT_REGION", REGION)
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")
        env.setattr(boto3, "DEFAULT_SESSION", None)
        yield


# ``stagepilot --debug`` (run in-process by the CLI tests) hangs a redacting handler on these loggers and sets
# them to DEBUG; the handler's filter takes each record's traceback for its own text, so a later test of the
# same worker that reads a traceback from caplog would find none.
DEBUGGED_LOGGERS = ("stagepilot", "botocore", "boto3")


@pytest.fixture(autouse=True)
def logging_left_as_found() -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in DEBUGGED_LOGGERS]
    saved = [(logger, logger.level, list(logger.handlers)) for logger in loggers]
    yield
    for logger, level, handlers in saved:
        logger.setLevel(level)
        logger.handlers[:] = handlers


@pytest.fixture(autouse=True)
def pinned_clock(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.node.get_closest_marker("wall_clock"):
        yield
        return
    with time_machine.travel(REAL_CLOCK_START, tick=True):
        yield


@pytest.fixture(autouse=True)
def no_metrics_left_by_another_test() -> None:
    """Powertools keeps one metric set per process, shared by every ``Metrics()``: a metric another test
    added without a handler's flush would be published by the next handler this worker runs (seen:
    ``test_a_pass_that_finds_nothing_to_do_publishes_no_metric`` failing under xdist only). Each test starts
    with none; a Lambda container runs one handler, which flushes what it adds."""
    from aws_lambda_powertools import Metrics

    Metrics().clear_metrics()


@pytest.fixture(scope="session", autouse=True)
def one_botocore_loader() -> Iterator[None]:
    shared = botocore.loaders.create_loader()
    create_loader = botocore.session.create_loader

    def loader(search_path_string: str | None = None) -> botocore.loaders.Loader:
        return shared if search_path_string is None else create_loader(search_path_string)

    botocore.session.create_loader = loader  # type: ignore[assignment]
    yield
    botocore.session.create_loader = create_loader


@pytest.fixture(scope="session", autouse=True)
def moto_items_as_held() -> Iterator[None]:
    with items_as_moto_holds_them():
        yield


@pytest.fixture(scope="session", autouse=True)
def moto_method_names_kept() -> Iterator[None]:
    with method_names_kept_per_class():
        yield


@pytest.fixture(scope="session", autouse=True)
def moto_answers_one_dynamodb_request_at_a_time() -> Iterator[None]:
    with dynamodb_answers_one_request_at_a_time():
        yield


@pytest.fixture(scope="session", autouse=True)
def moto_transactions_back_up_their_items() -> Iterator[None]:
    with transactions_roll_back_their_items():
        yield


CDK_TESTS = Path(__file__).parent / "infra"


def is_story(item: pytest.Item) -> bool:
    """A test of seconds, not milliseconds: marked ``story`` (a subprocess, a whole show), driving a whole
    sandbox (moto's server, the stand-in, the automations' threads), or a hypothesis property (its examples)."""
    return (
        item.get_closest_marker("story") is not None
        or "sandbox" in getattr(item, "fixturenames", ())
        or getattr(getattr(item, "obj", None), "is_hypothesis_test", False)
    )


@pytest.hookimpl(tryfirst=True)  # before xdist's, which reads the xdist_group marks added here
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(CDK_TESTS):
            item.add_marker(pytest.mark.xdist_group("cdk"))
        elif is_story(item):
            item.add_marker(pytest.mark.story)
    items.sort(key=lambda item: not is_story(item))  # stable: the stories first, each file's order kept
