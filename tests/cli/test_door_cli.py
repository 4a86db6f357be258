"""``stagepilot token issue`` and ``stagepilot keys list|rotate|lockout`` (docs/cli.md, §5), over real HTTP:
moto in server mode (DynamoDB, KMS, CloudFormation), the IVS stand-in on loopback, and the token function's
handler behind a loopback URL that takes only SigV4-signed requests for the ``lambda`` service."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest

from stagepilot.adapters.table import PolicyStore, Table
from stagepilot.local.ivs import IvsStandIn
from stagepilot.policy import parse_policy
from tests.cli.conftest import TABLE, run

STAGE = "arn:aws:ivs:us-east-1:123456789012:stage/MainStage0001"
TOKENS = {
    "roles": {
        "host": {"capabilities": ["PUBLISH", "SUBSCRIBE"], "durationMinutes": 10},
        "viewer": {"capabilities": ["SUBSCRIBE"], "durationMinutes": 10},
    },
    "defaultRole": "viewer",
}


class _Context:
    function_name = "StagePilot-Door"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:StagePilot-Door"
    aws_request_id = "req"


@pytest.fixture
def door(ivs: IvsStandIn, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    monkeypatch.setenv("STAGEPILOT_TABLE", TABLE)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "door")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "StagePilot")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")  # the function's EMF lines would share stdout here
    from stagepilot.handlers import token

    token.door.cache_clear()
    seen: list[str] = []

    class Url(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            authorization = self.headers.get("Authorization", "")
            seen.append(authorization)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
            if not authorization.startswith("AWS4-HMAC-SHA256") or "/lambda/aws4_request" not in authorization:
                status, answer = 403, json.dumps({"Message": "Forbidden"})
            else:
                event = {"requestContext": {"http": {"method": "POST"}}, "body": body, "isBase64Encoded": False}
                result = token.lambda_handler(event, _Context())
                status, answer = result["statusCode"], result["body"]
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(answer.encode())

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Url)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    cloudformation = boto3.client("cloudformation")
    template = json.loads(json.dumps(cloudformation.get_template(StackName="StagePilot")["TemplateBody"]))
    template["Outputs"]["TokenUrl"] = {"Value": url}
    cloudformation.update_stack(StackName="StagePilot", TemplateBody=json.dumps(template))
    ivs.create_stage(STAGE)
    PolicyStore(Table(boto3.client("dynamodb"), TABLE)).put(parse_policy({"stageArn": "default", "tokens": TOKENS}))
    yield {"ivs": ivs, "seen": seen}
    server.shutdown()
    token.door.cache_clear()


def test_token_issue_asks_the_door_signed_and_the_token_joins(door: dict[str, Any]) -> None:
    assert run("keys", "rotate").status == 0

    issued = run("token", "issue", STAGE, "host-1", "--role", "host", "--attributes", '{"team": "blue"}', "--json")

    assert issued.status == 0, issued.stderr
    answer = issued.json()
    assert answer["capabilities"] == ["PUBLISH", "SUBSCRIBE"]
    assert door["seen"] and all(h.startswith("AWS4-HMAC-SHA256") for h in door["seen"])
    assert door["ivs"].join(answer["token"], publish=True).refused is None


def test_a_refusal_is_one_line_and_exit_1(door: dict[str, Any]) -> None:
    assert run("keys", "rotate").status == 0
    assert run("ban", "add", "troll-1", "--reason", "raid", "--no-disconnect").status == 0

    refused = run("token", "issue", STAGE, "troll-1")

    assert refused.status == 1
    assert refused.stderr == "error: refused (banned): user troll-1 is banned from every stage: raid\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("token", "issue", "arn:aws:ivs:us-east-1:123456789012:channel/x", "u"), "not a stage ARN"),
        (("token", "issue", STAGE, "u", "--attributes", "{"), "--attributes: not JSON"),
        (("token", "issue", STAGE, "u", "--attributes", '{"a": 1}'), "--attributes: must be a JSON object"),
    ],
)
def test_bad_input_is_exit_2_before_any_call(door: dict[str, Any], argv: tuple[str, ...], message: str) -> None:
    result = run(*argv)
    assert result.status == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert door["seen"] == []


def test_keys_rotate_list_and_lockout(door: dict[str, Any]) -> None:
    first = run("keys", "rotate", "--json").json()
    second = run("keys", "rotate", "--json").json()
    assert second["previous"] == first["active"]

    again = run("keys", "rotate")
    assert again.status == 1 and again.stderr.startswith("error: the previous key may still sign tokens")
    listed = {k["arn"]: k["role"] for k in run("keys", "list", "--json").json()}
    assert listed == {second["active"]: "active", first["active"]: "previous"}

    refused = run("keys", "lockout")
    assert refused.status == 2 and "--yes" in refused.stderr
    locked = run("keys", "lockout", "--yes", "--json").json()
    assert {k["arn"] for k in run("keys", "list", "--json").json()} == {locked["active"]}


def test_the_readmes_backend_call_gets_a_token(door: dict[str, Any]) -> None:
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("## The door") :]
    [snippet] = re.findall(r"```python\n(.*?)```", section[: section.index("\n## ", 10)], flags=re.S)
    namespace: dict[str, Any] = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    assert run("keys", "rotate").status == 0
    outputs = boto3.client("cloudformation").describe_stacks(StackName="StagePilot")["Stacks"][0]["Outputs"]
    [address] = [o["OutputValue"] for o in outputs if o["OutputKey"] == "TokenUrl"]  # as the backend reads it

    answer = namespace["participant_token"](address, STAGE, "fan-1")

    assert answer["status"] == 200 and answer["capabilities"] == ["SUBSCRIBE"]
    assert door["ivs"].join(answer["token"]).refused is None
