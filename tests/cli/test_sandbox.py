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
from typing import Any

import pytest
import requests

from stagepilot.cli.policies import load_policy_file
from stagepilot.decisions.composition_hours import CompositionHoursPerDay
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
    assert played.stdout == "played 8 events (17 deliveries to automations), 5 directives\n"
    assert played.stderr == ""  # the composition failure too: IVS fails it, the automation restarts it

    fleet = {row["stageArn"]: row for row in run("status", "--json").json()["stages"]}
    assert fleet[MAIN]["composition"]["state"] == "ACTIVE" and fleet[MAIN]["compositionRecord"]["state"] == "started"
    assert GREEN in fleet and not fleet[MAIN]["problems"]  # who publishes and replicas: status ARN (below)

    actions = {(e["automation"], e["action"], e.get("rule")) for e in run("audit", "--json", "--limit", "50").json()}
    assert {
        ("composition", "composition-started", None),
        ("replication", "replication-started", None),
        ("moderation", "disconnect", "global-ban"),
        ("moderation", "disconnect", "flag-limit"),
        ("composition", "composition-restarted", None),
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


def _free_port_block() -> int:
    """A port whose next four are free too (the sandbox takes five)."""
    import socket

    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base > 65000:
            continue
        try:
            held = []
            for offset in range(5):
                sock = socket.socket()
                held.append(sock)
                sock.bind(("127.0.0.1", base + offset))
            return base
        except OSError:
            continue
        finally:
            for sock in held:
                sock.close()
    raise AssertionError("no four free ports in a row")


@pytest.mark.story
def test_the_sandbox_command_writes_sandbox_env_on_fixed_ports_and_stops_on_ctrl_c(tmp_path: Path):
    """`source sandbox.env` in another shell: the CLI points at the sandbox and `stagepilot` is on PATH; the
    ports are the ones asked for, so the exports stay valid across restarts. Ctrl-C stops it even when it
    was started with SIGINT ignored, as a non-interactive shell starts its background jobs (`stagepilot
    sandbox &` in a script, a test suite run in the background): Python leaves an ignored SIGINT ignored."""
    port = _free_port_block()
    command = [sys.executable, "-c", "import sys; from stagepilot.cli.main import main; sys.exit(main())"]
    started = [*command, "sandbox", "--port", str(port), "--policies", str(EXAMPLES / "policies.json")]
    in_background = ["bash", "-c", 'trap "" INT; exec "$@"', "bash"]  # SIGINT ignored, as `&` leaves it
    process = subprocess.Popen(
        [*in_background, *started], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path
    )
    env_file = tmp_path / "sandbox.env"
    try:
        deadline = time.monotonic() + 60
        while not env_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        exports = env_file.read_text().splitlines()
        again = subprocess.run([*command, "sandbox", "--port", str(port)], capture_output=True, text=True, cwd=tmp_path)
        shell = subprocess.run(
            ["bash", "-c", "source sandbox.env && command -v stagepilot && echo $STAGEPILOT_SANDBOX_URL"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        )
    finally:
        process.send_signal(signal.SIGINT)
        try:
            stdout, stderr = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()  # not left running (its ports, its passes) after the test
            process.communicate()
            raise
    assert process.returncode == 0, stderr
    names = [line.split("=", 1)[0] for line in exports]
    assert names == [
        "export AWS_ACCESS_KEY_ID",
        "export AWS_SECRET_ACCESS_KEY",
        "export AWS_REGION",
        "export AWS_DEFAULT_REGION",
        "export AWS_ENDPOINT_URL",
        "export AWS_ENDPOINT_URL_IVS_REALTIME",
        "export AWS_ENDPOINT_URL_LAMBDA",
        "export STAGEPILOT_STACK",
        "export STAGEPILOT_SANDBOX_URL",
        "export PATH",
    ]
    assert f"export AWS_ENDPOINT_URL=http://127.0.0.1:{port}" in exports
    assert f"export AWS_ENDPOINT_URL_IVS_REALTIME=http://127.0.0.1:{port + 1}" in exports
    assert stdout.splitlines() == exports
    ivs = f"http://127.0.0.1:{port + 1}"
    assert stderr.startswith(f"# stagepilot sandbox: AWS at http://127.0.0.1:{port}, IVS at {ivs}")
    assert "# in another shell: source sandbox.env\n" in stderr and "# sandbox stopped" in stderr
    assert shell.returncode == 0, shell.stderr
    on_path, control = shell.stdout.splitlines()
    assert on_path.endswith("/stagepilot") and control == f"http://127.0.0.1:{port + 2}"
    assert again.returncode == 1 and again.stderr == (
        f"error: cannot listen on ports {port}-{port + 4} (Address already in use): is a sandbox already running? "
        "(--port N for others)\n"
    )


def test_a_port_taken_by_any_program_is_one_line_and_starts_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """moto's port in use by something that is not a sandbox (the next four free): the command says so and
    ends, as for a sandbox already running; it does not wait for ever for a moto server that cannot start."""
    import socket
    import threading

    monkeypatch.chdir(tmp_path)
    port = _free_port_block()
    said: list[Any] = []
    with socket.create_server(("127.0.0.1", port)):
        command = threading.Thread(target=lambda: said.append(run("sandbox", "--port", str(port))), daemon=True)
        command.start()
        command.join(timeout=20)
    assert said, "the sandbox still waits for its moto server"
    assert said[0].status == 1 and said[0].stderr == (
        f"error: cannot listen on ports {port}-{port + 4} (Address already in use): is a sandbox already running? "
        "(--port N for others)\n"
    )
    assert not (tmp_path / "sandbox.env").exists()


def test_sandbox_env_is_not_committed():
    ignored = (Path(__file__).parents[2] / ".gitignore").read_text().splitlines()
    assert "sandbox.env" in ignored


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


def test_play_runs_every_simulate_directive_as_simulate_does(sandbox: Sandbox, tmp_path: Path):
    """The door, a ban, a fault and a composition failure, played into the sandbox: nothing is refused as
    'for simulate only', and the operator commands see what happened."""
    [main_policy] = [d for d in load_policy_file(EXAMPLES / "policies.json") if d["stageArn"] == MAIN]
    roles = {"host": {"capabilities": ["PUBLISH", "SUBSCRIBE"], "durationMinutes": 10}}
    sandbox.store(
        [parse_policy({"stageArn": MAIN, "composition": main_policy["composition"], "tokens": {"roles": roles}})], []
    )
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines = [
        {"simulate": "fault", "operation": "StartComposition", "error": "ThrottlingException", "count": 1, "time": now},
        {"simulate": "issue", "stageArn": MAIN, "userId": "host-1", "role": "host", "as": "h", "time": now},
        {"simulate": "join", "token": "h", "publish": True, "time": now},
        {"simulate": "issue", "stageArn": MAIN, "userId": "raider-1", "role": "host", "as": "r", "time": now},
        {"simulate": "join", "token": "r", "publish": True, "time": now},
        {"simulate": "ban", "userId": "raider-1", "reason": "raid", "time": now},
        {"simulate": "issue", "stageArn": MAIN, "userId": "raider-1", "role": "host", "time": now},
        {"simulate": "composition-failure", "stageArn": MAIN, "time": now},
    ]
    scenario = tmp_path / "bad-day.jsonl"
    scenario.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    played = run("sandbox", "play", str(scenario))
    assert played.status == 0 and played.stderr == "", played.stderr
    said = played.stdout.splitlines()
    assert said[-1] == "played 0 events (0 deliveries to automations), 8 directives"
    assert sum("door         issued PUBLISH+SUBSCRIBE token" in line for line in said) == 2
    assert any("door         refused (banned)" in line for line in said)
    assert sum("✔ joined as" in line and "publishes" in line for line in said) == 2

    actions = [(e["action"], e.get("userId")) for e in run("audit", MAIN, "--json", "--limit", "50").json()]
    assert ("disconnect", "raider-1") in actions  # the ban directive, through the door's token records
    assert ("composition-restarted", None) in actions  # IVS failed it (the directive): restarted
    starts = [c.status for c in sandbox.ivs.calls if c.operation == "StartComposition"]
    assert starts[0] == 429 and 200 in starts  # the fault, then a retry started it


def test_the_sandbox_serves_the_door_as_the_token_function_url(sandbox: Sandbox):
    """`token issue` (a SigV4-signed POST to TokenUrl, as a backend makes it) gets a token the sandbox's IVS
    takes; a ban refuses the next one; an unsigned request is refused as a Function URL with AWS_IAM does."""
    roles = {"host": {"capabilities": ["PUBLISH", "SUBSCRIBE"], "durationMinutes": 10}}
    sandbox.store([parse_policy({"stageArn": MAIN, "tokens": {"roles": roles, "defaultRole": "host"}})], [])
    issued = run("token", "issue", MAIN, "host-1", "--json")
    assert issued.status == 0, issued.stderr
    joined = sandbox.ivs.join(issued.json()["token"], publish=True)
    assert joined.refused is None and joined.published

    assert run("ban", "add", "host-1", "--reason", "raid").status == 0
    refused = run("token", "issue", MAIN, "host-1")
    assert refused.status == 1 and refused.stderr.startswith("error: refused (banned): ")

    unsigned = requests.post(sandbox.door_url, json={"stageArn": MAIN, "userId": "x"}, timeout=10)
    assert (unsigned.status_code, unsigned.json()) == (403, {"Message": "Forbidden"})


def test_the_readme_backend_call_gets_a_token_from_the_sandbox_door(sandbox: Sandbox):
    """README, "The door": the backend's SigV4 call, run as written against the sandbox's TokenUrl."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    door_section = readme[readme.index("## The door") :]
    snippet = door_section[door_section.index("```python") + len("```python") : door_section.index("```\n\n")]
    roles = {"viewer": {"capabilities": ["SUBSCRIBE"], "durationMinutes": 5}}
    sandbox.store([parse_policy({"stageArn": MAIN, "tokens": {"roles": roles, "defaultRole": "viewer"}})], [])
    namespace: dict[str, Any] = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    issued = namespace["participant_token"](sandbox.door_url, MAIN, "viewer-1")
    assert issued["status"] == 200 and issued["capabilities"] == ["SUBSCRIBE"]
    sandbox.store([], [{"userId": "viewer-2", "reason": "spam"}])
    assert namespace["participant_token"](sandbox.door_url, MAIN, "viewer-2")["refused"] == "banned"


def test_the_sandbox_alarms_fire_on_their_metrics_over_their_periods(sandbox: Sandbox):
    """HealedAlarm: 5 heals explained by a lost event within 15 minutes; ReconcileFailedAlarm: a failed
    listing in each of 3 one-minute periods in a row (2 are not enough), as the stack defines them."""
    import time_machine

    def firing() -> list[str]:
        sandbox.alarms.evaluate()
        return list(run("status", "--json").json()["summary"]["alarmsInAlarm"])

    for _ in range(4):
        sandbox.metric_store.add("convergence", "HealedEventLost", 1)
    assert firing() == []
    sandbox.metric_store.add("convergence", "HealedEventLost", 1)
    assert firing() == ["StagePilot-Convergence-HealedAlarm"]

    now = time.time()
    for minutes_ago in (2, 1):
        with time_machine.travel(now - 60 * minutes_ago, tick=False):
            sandbox.metric_store.add("convergence", "ReconcileFailed", 1)
    assert "StagePilot-Convergence-ReconcileFailedAlarm" not in firing()
    sandbox.metric_store.add("convergence", "ReconcileFailed", 1)
    assert "StagePilot-Convergence-ReconcileFailedAlarm" in firing()


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ('{"limit": 40, "mode": "blok"}', 'compositionHoursPerDay.mode: must be "alert" or "block", got \'blok\''),
        ('{"limit": 0}', "compositionHoursPerDay.limit: must be a number of hours, more than 0 and at most 48000"),
        ("40", "compositionHoursPerDay must be an object like"),
        ("{limit: 40}", "compositionHoursPerDay must be JSON like"),
        ('{"limit": 40, "mod": "block"}', "compositionHoursPerDay.mod: unknown field (expected limit and mode)"),
        ("", "compositionHoursPerDay: empty"),
    ],
)
def test_a_bad_composition_budget_is_one_line_and_starts_nothing(value: str, says: str, tmp_path: Path):
    result = run("sandbox", "--composition-hours-per-day", value, "--env-file", str(tmp_path / "sandbox.env"))
    assert result.status == 2 and result.stdout == ""
    assert result.stderr.startswith(f"error: argument --composition-hours-per-day: {says}")
    assert result.stderr.endswith("(see: stagepilot sandbox --help)\n") and result.stderr.count("\n") == 1
    assert not (tmp_path / "sandbox.env").exists()


@pytest.mark.parametrize(
    "sandbox", [{"composition_hours": CompositionHoursPerDay(limit=0.0001, mode="block")}], indirect=True
)
def test_the_sandbox_takes_the_composition_budget_as_the_stack_takes_it(sandbox: Sandbox, tmp_path: Path):
    """`--composition-hours-per-day` reaches the functions (the pass keeps the day with it) and the stack's
    CompositionBudgetAlarm, as `cdk deploy -c compositionHoursPerDay=...` does."""
    from stagepilot.cli.main import build_parser
    from stagepilot.cli.sandbox import sandbox_options

    asked = build_parser().parse_args(["sandbox", "--composition-hours-per-day", '{"limit": 0.0001, "mode": "block"}'])
    assert sandbox_options(asked) == {"composition_hours": CompositionHoursPerDay(limit=0.0001, mode="block")}
    plain = build_parser().parse_args(["sandbox"])
    assert sandbox_options(plain) == {"composition_hours": None}  # no budget, as the stack without the context

    status = run("status", "--json").json()
    assert status["summary"]["compositionHours"]["limit"] == 0.0001  # the pass at start kept the day with it
    assert status["summary"]["compositionHours"]["mode"] == "block"
    assert status["summary"]["alarms"] == 25  # the 24 of every stack and CompositionBudgetAlarm
