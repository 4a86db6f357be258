"""``stagepilot sandbox``: StagePilot on loopback. The example show is played into it and the operator
commands see what the automations did, over HTTP, exactly as against a deployed stack."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stagepilot.cli.policies import load_policy_file
from stagepilot.local.sandbox import Sandbox
from stagepilot.policy import parse_policy
from tests.cli.conftest import run
from tests.support import EventFactory

EXAMPLES = Path(__file__).parents[2] / "examples"
MAIN = "arn:aws:ivs:us-east-1:123456789012:stage/MainStage0001"
GREEN = "arn:aws:ivs:us-east-1:123456789012:stage/GreenRoom0001"


@pytest.fixture
def show(sandbox: Sandbox) -> Sandbox:
    """The sandbox with the example policies and bans."""
    sandbox.store(
        [parse_policy(d) for d in load_policy_file(EXAMPLES / "policies.json")],
        json.loads((EXAMPLES / "bans.json").read_text()),
    )
    return sandbox


def test_the_example_show_played_into_the_sandbox_is_what_the_operator_commands_see(show: Sandbox):
    played = run("sandbox", "play", str(EXAMPLES / "show.jsonl"))
    assert played.status == 0, played.stderr
    assert played.stdout.startswith("played 8 events (17 deliveries to automations), 4 participants declared")
    assert "composition-failure directives are for simulate only (skipped)" in played.stderr

    fleet = {row["stageArn"]: row for row in run("status", "--json").json()["stages"]}
    assert fleet[MAIN]["composition"]["state"] == "ACTIVE" and fleet[MAIN]["compositionRecord"]["state"] == "started"
    assert GREEN in fleet and not fleet[MAIN]["problems"]  # who publishes and replicas: status ARN (below)

    actions = {(e["automation"], e["action"], e.get("rule")) for e in run("audit", "--json", "--limit", "50").json()}
    assert {
        ("composition", "composition-started", None),
        ("replication", "replication-started", None),
        ("moderation", "disconnect", "global-ban"),
        ("moderation", "disconnect", "flag-limit"),
    } <= actions
    assert [r["count"] for r in run("dlq", "list", "--json").json()] == [0, 0, 0]
    stage = run("status", MAIN).stdout
    assert "policy   own v1, sections: composition, replication, moderation" in stage
    assert f"replicated to {GREEN}: ACTIVE" in stage


@pytest.mark.parametrize("sandbox", [{"reconcile_seconds": 0.5}], indirect=True)
def test_the_sandbox_runs_the_convergence_pass_on_what_no_event_told(sandbox: Sandbox, tmp_path: Path):
    """A publisher IVS knows but no event was delivered for: the convergence pass starts the composition."""
    [main_policy] = [d for d in load_policy_file(EXAMPLES / "policies.json") if d["stageArn"] == MAIN]
    sandbox.store([parse_policy({"stageArn": MAIN, "composition": main_policy["composition"]})], [])
    sandbox.ivs.observe(EventFactory().published("host", user_id="host-1", stage=MAIN, at=datetime.now(UTC)))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        [row] = run("status", "--json").json()["stages"]
        if row["composition"]["state"] in ("STARTING", "ACTIVE"):
            break
        time.sleep(0.5)
    assert row["composition"]["state"] in ("STARTING", "ACTIVE")
    assert any(e["action"] == "composition-started" for e in run("audit", MAIN, "--json").json())


def test_play_needs_a_running_sandbox(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("STAGEPILOT_SANDBOX_URL", raising=False)
    missing = run("sandbox", "play", str(EXAMPLES / "show.jsonl"))
    assert missing.status == 1 and missing.stderr.startswith("error: no sandbox: run `stagepilot sandbox`")
    monkeypatch.setenv("STAGEPILOT_SANDBOX_URL", "http://127.0.0.1:9")
    gone = run("sandbox", "play", str(EXAMPLES / "show.jsonl"))
    assert gone.status == 1 and gone.stderr == (
        "error: cannot reach the sandbox at http://127.0.0.1:9 (is `stagepilot sandbox` running?)\n"
    )


def test_the_sandbox_command_prints_the_environment_and_stops_on_ctrl_c(tmp_path: Path):
    env_file = tmp_path / "sandbox.env"
    command = [sys.executable, "-c", "import sys; from stagepilot.cli.main import main; sys.exit(main())"]
    process = subprocess.Popen(
        [*command, "sandbox", "--env-file", str(env_file), "--policies", str(EXAMPLES / "policies.json")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not env_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        exports = env_file.read_text().splitlines()
    finally:
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    names = [line.split("=", 1)[0] for line in exports]
    assert names == [
        "export AWS_ACCESS_KEY_ID",
        "export AWS_SECRET_ACCESS_KEY",
        "export AWS_REGION",
        "export AWS_DEFAULT_REGION",
        "export AWS_ENDPOINT_URL",
        "export AWS_ENDPOINT_URL_IVS_REALTIME",
        "export STAGEPILOT_STACK",
        "export STAGEPILOT_SANDBOX_URL",
    ]
    assert stdout.splitlines() == exports
    assert stderr.startswith("# stagepilot sandbox: AWS at http://127.0.0.1:") and "# sandbox stopped" in stderr


def test_a_flag_put_with_the_cli_reaches_moderation_in_the_sandbox(sandbox: Sandbox, tmp_path: Path):
    sandbox.store(
        [parse_policy({"stageArn": MAIN, "moderation": {"flagLimit": {"count": 1, "windowSeconds": 60}}})], []
    )
    scenario = tmp_path / "show.jsonl"
    scenario.write_text(
        json.dumps(EventFactory(at=datetime.now(UTC)).published("guest", user_id="guest-9", stage=MAIN))
    )
    assert run("sandbox", "play", str(scenario)).status == 0

    flagged = run("flag", MAIN, "guest", "--reason", "spam in chat")
    assert flagged.status == 0, flagged.stderr

    deadline = time.monotonic() + 20
    kicks: list[dict] = []
    while not kicks and time.monotonic() < deadline:
        kicks = run("audit", MAIN, "--action", "disconnect", "--json").json()
        time.sleep(0.3)
    assert [(k["participantId"], k["rule"]) for k in kicks] == [("guest", "flag-limit")]
