"""The token function's entry point (docs/door.md): Function URL events in, 200/403/400/405 out, with moto
(DynamoDB, KMS) and the IVS stand-in behind the real boto3 clients."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from stagepilot.adapters.ivs import IvsStage
from stagepilot.adapters.table import BanStore, PolicyStore, Table
from stagepilot.door.keys import SigningKeys
from stagepilot.local.deployment import create_table
from stagepilot.local.ivs import IvsStandIn
from stagepilot.policy import parse_policy
from tests.support import ACCOUNT, REGION, STAGE

TABLE = "stagepilot-test"
TOKENS = {
    "roles": {
        "host": {"capabilities": ["PUBLISH", "SUBSCRIBE"], "attributes": {"role": "host"}, "durationMinutes": 10},
        "viewer": {"capabilities": ["SUBSCRIBE"], "durationMinutes": 10},
    },
    "defaultRole": "viewer",
}


@dataclass
class LambdaContext:
    function_name: str = "StagePilot-Token"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:StagePilot-Token"
    aws_request_id: str = "req-1"


@pytest.fixture
def door_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "token")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "StagePilot")
    from stagepilot.handlers import token  # after the environment: Powertools reads it when the module loads

    with mock_aws():
        monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
        boto3.setup_default_session()
        ivs = IvsStandIn(account=ACCOUNT, region=REGION)
        ivs.create_stage(STAGE)
        ivs.attach_session(boto3.DEFAULT_SESSION)
        create_table(boto3.client("dynamodb"), TABLE)
        table = Table(boto3.client("dynamodb"), TABLE)
        PolicyStore(table).put(parse_policy({"stageArn": "default", "tokens": TOKENS}))
        SigningKeys(table, ivs=IvsStage(boto3.client("ivs-realtime")), kms=boto3.client("kms"), name="t").rotate(
            longest_token_minutes=10
        )
        monkeypatch.setenv("STAGEPILOT_TABLE", TABLE)
        token.door.cache_clear()
        package_logger = logging.getLogger("stagepilot")
        handlers, level = list(package_logger.handlers), package_logger.level
        yield {"ivs": ivs, "table": table, "handler": token.lambda_handler}
        token.door.cache_clear()
        package_logger.handlers[:], package_logger.level = handlers, level


def call(env: dict[str, Any], body: object, *, method: str = "POST", encoded: bool = False) -> tuple[int, Any]:
    raw = body if isinstance(body, str) else json.dumps(body)
    event = {
        "requestContext": {"http": {"method": method}},
        "body": base64.b64encode(raw.encode()).decode() if encoded else raw,
        "isBase64Encoded": encoded,
    }
    answer = env["handler"](event, LambdaContext())
    return answer["statusCode"], json.loads(answer["body"])


def test_a_token_is_issued_and_joins(door_env: dict[str, Any]) -> None:
    status, body = call(door_env, {"stageArn": STAGE, "userId": "host-1", "role": "host"}, encoded=True)

    assert status == 200, body
    assert body["capabilities"] == ["PUBLISH", "SUBSCRIBE"]
    joined = door_env["ivs"].join(body["token"], publish=True)
    assert joined.refused is None and joined.participant_id == body["participantId"]


def test_a_banned_user_is_refused_with_403(door_env: dict[str, Any]) -> None:
    BanStore(door_env["table"]).add("troll-1", reason="raid")
    assert call(door_env, {"stageArn": STAGE, "userId": "troll-1"}) == (
        403,
        {"refused": "banned", "reason": "user troll-1 is banned from every stage: raid"},
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [("not json", "body"), ({"userId": "u"}, "stageArn"), ({"stageArn": STAGE, "userId": "u", "x": 1}, "x")],
)
def test_a_bad_request_is_400_naming_the_field(door_env: dict[str, Any], body: object, field: str) -> None:
    status, answer = call(door_env, body)
    assert status == 400 and answer["field"] == field


def test_another_method_is_405(door_env: dict[str, Any]) -> None:
    assert call(door_env, {}, method="GET")[0] == 405
