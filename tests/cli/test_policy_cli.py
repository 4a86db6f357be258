"""``stagepilot policy ...`` and the CLI's conventions, over real HTTP against moto in server mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.cli.conftest import TABLE, run
from tests.support import CHANNEL, ENCODER, OTHER_STAGE, STAGE

EXAMPLES = Path(__file__).parents[2] / "examples"
POLICY = {
    "stageArn": STAGE,
    "composition": {
        "destinations": [{"name": "live", "channel": {"channelArn": CHANNEL, "encoderConfigurationArn": ENCODER}}]
    },
}


def write(tmp_path: Path, document: Any, name: str = "policy.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return path


def test_validate_accepts_the_example_policies():
    result = run("policy", "validate", str(EXAMPLES / "policies.json"))
    assert result.status == 0, result.stderr
    assert "valid (2 policies)" in result.stdout


def test_validate_prints_every_problem_by_field_and_exits_2(tmp_path: Path):
    bad = {
        "stageArn": STAGE,
        "paused": "no",
        "composition": {
            "destinations": [
                {
                    "name": "live",
                    "channel": {
                        "channelArn": "arn:aws:ivs:us-east-1:123456789012:stage/x",
                        "encoderConfigurationArn": ENCODER,
                    },
                }
            ],
            "maxRestarts": 99,
        },
        "moderation": {"reason": "x" * 129},
    }
    result = run("policy", "validate", str(write(tmp_path, bad)))

    assert result.status == 2
    lines = result.stdout.splitlines()
    for field in (
        "paused",
        "composition.destinations[0].channel.channelArn",
        "composition.maxRestarts",
        "moderation.reason",
    ):
        assert any(f": {field}: " in line for line in lines), (field, lines)


def test_validate_json_output(tmp_path: Path):
    result = run("policy", "validate", "--json", str(write(tmp_path, {"stageArn": "nope"})))
    assert result.status == 2
    report = result.json()
    assert report["valid"] is False and report["problems"][0].startswith("stageArn: ")


def test_validate_warns_about_replication_cycles(tmp_path: Path):
    cycle = [
        {"stageArn": STAGE, "replication": [{"destinationStageArn": OTHER_STAGE}]},
        {"stageArn": OTHER_STAGE, "replication": [{"destinationStageArn": STAGE}]},
    ]
    result = run("policy", "validate", str(write(tmp_path, cycle)))
    assert result.status == 0
    assert "replication cycle" in result.stderr


@pytest.mark.parametrize("content, message", [("{not json", "not JSON"), (None, "cannot read")])
def test_unreadable_policy_file_is_one_line_and_exit_2(tmp_path: Path, content: str | None, message: str):
    path = tmp_path / "p.json"
    if content is not None:
        path.write_text(content)
    result = run("policy", "validate", str(path))
    assert result.status == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_put_get_list_delete_round_trip(aws: str, tmp_path: Path):
    path = write(tmp_path, POLICY)
    put = run("policy", "put", str(path))
    assert put.status == 0, put.stderr
    assert put.stdout.strip() == f"stored policy for {STAGE} (version 1)"

    got = run("policy", "get", STAGE, "--json").json()
    assert got["version"] == 1 and got["policy"]["composition"]["destinations"] == POLICY["composition"]["destinations"]

    assert run("policy", "put", str(path)).stdout.strip().endswith("(version 2)")
    listed = run("policy", "list", "--json").json()
    assert [(p["stageArn"], p["version"], p["sections"]) for p in listed] == [(STAGE, 2, ["composition"])]

    assert run("policy", "delete", STAGE).status == 0
    missing = run("policy", "get", STAGE)
    assert missing.status == 1 and missing.stderr.strip() == f"error: no policy stored for {STAGE}"


def test_put_rejects_an_invalid_policy_and_stores_nothing(aws: str, tmp_path: Path):
    result = run("policy", "put", str(write(tmp_path, {**POLICY, "paused": 1})))
    assert result.status == 2
    assert "paused: " in result.stderr
    assert run("policy", "list", "--json").json() == []


def test_concurrent_writer_gets_a_clear_conflict(aws: str, tmp_path: Path):
    path = write(tmp_path, POLICY)
    assert run("policy", "put", str(path)).status == 0
    assert run("policy", "put", str(path), "--expected-version", "1").status == 0  # now version 2
    stale = run("policy", "put", str(path), "--expected-version", "1")
    assert stale.status == 1
    assert "changed since version 1 was read" in stale.stderr
    assert run("policy", "get", STAGE, "--json").json()["version"] == 2


def test_explicit_table_and_missing_stack(aws: str, tmp_path: Path):
    assert run("policy", "list", "--table", TABLE).status == 0
    result = run("policy", "list", "--stack", "NoSuchStack")
    assert result.status == 1
    assert result.stderr.startswith("error: stack NoSuchStack not found in us-east-1")


def test_malformed_arn_is_bad_input(aws: str):
    result = run("policy", "get", "arn:aws:ivs:us-east-1:123456789012:channel/AbCd")
    assert result.status == 2 and "not a stage ARN" in result.stderr


def test_no_credentials_is_one_line_exit_1(aws: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    result = run("policy", "list")
    assert result.status == 1
    assert result.stderr.strip() == (
        "error: no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
    )


def test_bad_usage_exits_2(capsys: pytest.CaptureFixture[str]):
    assert run("policy").status == 2
    assert run("policy", "put").status == 2
    assert "usage: stagepilot" in capsys.readouterr().err


def test_console_script_in_an_operator_shell(aws: str, tmp_path: Path):
    """The installed ``stagepilot`` command, in its own process, reaching AWS by endpoint URL."""
    path = write(tmp_path, POLICY)
    script = Path(sys.executable).parent / "stagepilot"
    env = dict(os.environ)
    put = subprocess.run([str(script), "policy", "put", str(path)], env=env, capture_output=True, text=True, timeout=60)
    assert put.returncode == 0, put.stderr
    listed = subprocess.run(
        [str(script), "policy", "list", "--json"], env=env, capture_output=True, text=True, timeout=60
    )
    assert json.loads(listed.stdout)[0]["stageArn"] == STAGE
    helped = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and "simulate" in helped.stdout
