"""What the convergence function takes from an operator (convergence_request.py), and the report's round trip."""

from __future__ import annotations

import pytest

from stagepilot.config import Settings
from stagepilot.convergence import PassReport
from stagepilot.convergence_request import (
    ConvergeRequest,
    RequestRefused,
    parse_request,
    report_from_json,
    report_json,
)
from stagepilot.pipeline import Outcome
from tests.support import ACCOUNT, REGION, STAGE

SETTINGS = Settings(table_name="t", account=ACCOUNT, region=REGION)


def test_a_request_names_one_stage_or_all_and_the_schedule_is_no_request() -> None:
    assert parse_request(ConvergeRequest(STAGE).payload(), SETTINGS) == ConvergeRequest(STAGE)
    assert parse_request(ConvergeRequest(None).payload(), SETTINGS) == ConvergeRequest(None)
    scheduled = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}
    assert parse_request(scheduled, SETTINGS) is None


@pytest.mark.parametrize(
    ("request_", "why"),
    [
        ({"stagepilot": "converge", "stageArn": STAGE.replace(ACCOUNT, "999999999999")}, "account 999999999999"),
        ({"stagepilot": "converge", "stageArn": STAGE.replace(REGION, "eu-west-1")}, "region eu-west-1"),
        ({"stagepilot": "converge", "stageArn": STAGE.replace("stage/", "channel/")}, "not a stage ARN"),
        ({"stagepilot": "converge"}, "not a stage ARN"),
        ({"stagepilot": "converge", "all": True, "stageArn": STAGE, "tags": {}}, "unknown field(s) tags"),
        ({"stagepilot": "disconnect", "stageArn": STAGE}, "is not 'converge'"),
    ],
)
def test_the_function_refuses_what_is_not_a_stage_of_its_own(request_: dict, why: str) -> None:
    with pytest.raises(RequestRefused, match=why.replace("(", r"\(").replace(")", r"\)")):
        parse_request(request_, SETTINGS)


def test_a_stage_outside_the_prefixes_is_refused() -> None:
    limited = Settings(table_name="t", account=ACCOUNT, region=REGION, stage_arn_prefixes=(STAGE + "X",))
    with pytest.raises(RequestRefused, match="stageArnPrefixes"):
        parse_request(ConvergeRequest(STAGE).payload(), limited)


def test_the_report_survives_the_invoke() -> None:
    report = PassReport(stages_listed=3, live=2, examined=1, deferred=["arn:x"])
    healed = Outcome("composition", "start-composition", "a publisher and no composition", acted=True)
    report.outcomes = [(STAGE, healed), (STAGE, Outcome("moderation", "skip", "nothing to do"))]
    report.errors = [("arn:y", "throttled")]

    back = report_from_json(report_json(report))

    assert back.drift == report.drift and back.errors == report.errors and back.deferred == report.deferred
    assert (back.stages_listed, back.live, back.examined) == (3, 2, 1)
