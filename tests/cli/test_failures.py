"""Whatever the input, the environment, the pipe or the terminal: no traceback, the contract's exit status
(1 failure, 2 bad input) and one line on stderr that says what is wrong (docs/cli.md).

These run without AWS: the endpoint is a closed port on loopback, so a command that reaches for AWS when it
should have refused its input first fails with "cannot reach" instead of the expected line."""

from __future__ import annotations

import contextlib
import http.server
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest

from tests.cli.conftest import NO_PASSES, Result, run
from tests.support import STAGE

CLOSED_ENDPOINT = "http://127.0.0.1:9"  # the discard port: nothing listens there
EXAMPLES = Path(__file__).parents[2] / "examples"
VALID_EVENT = {
    "version": "0",
    "id": "e-1",
    "detail-type": "IVS Stage Update",
    "source": "aws.ivs",
    "account": "123456789012",
    "time": "2026-11-21T20:00:00Z",
    "region": "us-east-1",
    "resources": [STAGE],
    "detail": {"session_id": "st-1", "event_name": "Participant Published", "participant_id": "p-1"},
}


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An operator's shell with credentials and a region, pointed at an endpoint that is not there."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", CLOSED_ENDPOINT)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


@dataclass(frozen=True)
class Case:
    """``argv`` runs in a directory holding ``files``; ``env`` values of None unset the variable."""

    name: str
    argv: tuple[str, ...]
    status: int
    says: str  # in the one stderr line
    files: dict[str, bytes] = field(default_factory=dict)
    env: dict[str, str | None] = field(default_factory=dict)
    problems: bool = False  # an invalid policy: its problems, one per line, come before the error line


def policy_file(content: bytes) -> dict[str, bytes]:
    return {"p.json": content}


def validating(name: str, says: str, content: bytes) -> Case:
    """``policy validate`` of a file holding ``content``."""
    return Case(name, ("policy", "validate", "p.json"), 2, says, policy_file(content))


CASES = [
    # files --------------------------------------------------------------------------------------------
    Case("missing file", ("policy", "validate", "nope.json"), 2, "cannot read nope.json: No such file"),
    Case("a directory", ("policy", "validate", "."), 2, "cannot read .: Is a directory"),
    validating("empty file", "p.json: not JSON: Expecting value", b""),
    Case("/dev/null", ("policy", "validate", "/dev/null"), 2, "/dev/null: not JSON"),
    Case("/dev/zero", ("policy", "validate", "/dev/zero"), 2, "/dev/zero: larger than 1 MiB"),
    validating("invalid UTF-8", "not UTF-8 text (byte 7", b'{"a": "\xff\xfe"}'),
    validating("UTF-16", "not UTF-8 text", '{"a": 1}'.encode("utf-16")),
    validating("NUL bytes", "binary data", b"\x00\x01\x02"),
    validating("lone surrogate", "a string holds a lone surrogate (\\ud800)", b'{"stageArn": "\\ud800"}'),
    validating("surrogate in a key", "lone surrogate (\\udfff)", b'{"\\udfff": 1}'),
    validating("5000 levels deep", "nested more than 32", deep(5000).encode()),
    validating("33 levels deep", "nested more than 32", deep(33).encode()),
    validating(
        "5000-digit number", "a number of 5000 characters", b'{"composition": {"maxRestarts": ' + b"9" * 5000 + b"}}"
    ),
    validating("1e999", "the number 1e999 is out of range", b"[1e999]"),
    validating("NaN", "NaN is not a JSON value", b'{"x": NaN}'),
    validating("2 MiB", "larger than 1 MiB", b" " * (2 * 1024 * 1024)),
    validating("two documents", "not JSON: Extra data", b"{} {}"),
    Case("event is a string", ("explain", "p.json"), 2, "expected one EventBridge event", policy_file(b'"x"')),
    Case("put: not JSON", ("policy", "put", "p.json"), 2, "p.json: not JSON", policy_file(b"{")),
    Case(
        "put: invalid",
        ("policy", "put", "p.json"),
        2,
        "p.json: invalid policy (1 problems); nothing stored",
        policy_file(b'{"stageArn": "x"}'),
        problems=True,
    ),
    Case("explain {}", ("explain", "p.json"), 2, "not an EventBridge event", policy_file(b"{}")),
    Case("explain []", ("explain", "p.json"), 2, "expected one EventBridge event", policy_file(b"[]")),
    Case(
        "explain detail string",
        ("explain", "p.json"),
        2,
        "detail: must be an object",
        policy_file(json.dumps({**VALID_EVENT, "detail": "x"}).encode()),
    ),
    Case(
        "simulate: policies missing",
        ("simulate", "--policies", "nope.json", "--events", "p.json"),
        2,
        "cannot read nope.json",
        policy_file(b""),
    ),
    Case(
        "simulate: bans not a list",
        ("simulate", "--policies", "e.json", "--events", "e.json", "--bans", "p.json"),
        2,
        "must be a JSON array",
        {"p.json": b"{}", "e.json": b"[]"},
    ),
    Case(
        "simulate: invalid policies",
        ("simulate", "--policies", "p.json", "--events", "p.json"),
        2,
        "p.json: invalid policies; nothing simulated",
        policy_file(b"{}"),
        problems=True,
    ),
    Case(
        "simulate: events not UTF-8",
        ("simulate", "--policies", "e.json", "--events", "p.json"),
        2,
        "not UTF-8 text",
        {"p.json": b"\xc3\x28", "e.json": b"[]"},
    ),
    # arguments ----------------------------------------------------------------------------------------
    Case("no command", (), 2, "required: COMMAND"),
    Case("unknown command", ("polcy", "list"), 2, "invalid choice: 'polcy'"),
    Case("unknown option", ("policy", "list", "--colour"), 2, "unrecognized arguments: --colour"),
    Case("--ttl overflow", ("ban", "add", "u", "--ttl", "99999999999w"), 2, "longer than 3650 days"),
    Case("--ttl 11 years", ("ban", "add", "u", "--ttl", "4000d"), 2, "longer than 3650 days"),
    Case("--ttl 0s", ("ban", "add", "u", "--ttl", "0s"), 2, "longer than 0"),
    Case("--ttl 1y", ("ban", "add", "u", "--ttl", "1y"), 2, "not a duration: '1y'"),
    Case("empty user id", ("ban", "add", "", "--no-disconnect"), 2, "USER_ID must be 1-128 characters"),
    Case("--output xml", ("--output", "xml", "policy", "list"), 2, "invalid choice: 'xml'"),
    Case("--cli-read-timeout -1", ("--cli-read-timeout", "-1", "ban", "list"), 2, "must be a number of seconds"),
    Case("--cli-connect-timeout x", ("ban", "list", "--cli-connect-timeout", "x"), 2, "must be a number of seconds"),
    Case("--query syntax", ("policy", "list", "--query", "[?"), 2, "--query: not a JMESPath expression"),
    Case("--limit 0", ("audit", "--limit", "0"), 2, "must be a whole number"),
    Case("--limit huge", ("audit", "--limit", "9" * 5000), 2, "must be a whole number"),
    Case("not a stage ARN", ("status", "not-an-arn"), 2, "not a stage ARN: 'not-an-arn'"),
    Case("channel ARN", ("policy", "get", STAGE.replace("stage/", "channel/")), 2, "not a stage ARN"),
    Case("participant id with spaces", ("disconnect", STAGE, "bad id with spaces"), 2, "not a participant id"),
    Case("participant id too long", ("disconnect", STAGE, "p" * 65), 2, "not a participant id"),
    Case("empty reason", ("disconnect", STAGE, "p-1", "--reason", ""), 2, "--reason must be 1-128"),
    Case("pause both", ("pause", STAGE, "--all"), 2, "not allowed with argument"),
    Case("dlq unknown automation", ("dlq", "list", "--automation", "x"), 2, "invalid choice: 'x'"),
    Case("whoami offline", ("whoami",), 1, "caller: cannot reach http://127.0.0.1:9"),
    Case("dlq list --max -5", ("dlq", "list", "--max", "-5"), 2, "must be a whole number ≥ 1, got '-5'"),
    Case("dlq list --max-items 0", ("dlq", "list", "--max-items", "0"), 2, "must be a whole number ≥ 1, got '0'"),
    Case("audit --action typo", ("audit", "--action", "disconect"), 2, "(did you mean disconnect"),
    Case("audit --since future", ("audit", "--since", "2999-01-01T00:00:00Z"), 2, "is in the future"),
    Case("ban list token", ("ban", "list", "--starting-token", "x" * 3000), 2, "not a token a cut listing printed"),
    # issue 26, "Why 9": inputs that used to be accepted -------------------------------------------------
    validating(
        "duplicate JSON keys",
        "p.json: the key 'dryRun' is given twice in one object",
        b'{"stageArn": "' + STAGE.encode() + b'", "moderation": {"dryRun": true, "dryRun": false}}',
    ),
    Case(
        "one stageArn twice in a file",
        ("simulate", "--policies", "p.json", "--events", "e.json"),
        2,
        "p.json: invalid policies; nothing simulated",
        {"p.json": json.dumps([{"stageArn": STAGE}, {"stageArn": STAGE, "paused": True}]).encode(), "e.json": b""},
        problems=True,
    ),
    Case("--stack ''", ("ban", "list", "--stack", ""), 2, "argument --stack: not a stack name: ''"),
    Case("--table too short", ("ban", "list", "--table", "T"), 2, "argument --table: not a DynamoDB table name"),
    Case(
        "100,000-character ARN",
        ("status", STAGE + "a" * 100_000),
        2,
        f"{len(STAGE) + 100_000:,} characters (IVS's have at most 128)",
    ),
    Case("ARN whose account is not 12 digits", ("pause", STAGE.replace("123456789012", "1")), 2, "not a stage ARN"),
    Case(
        "another region's stage",
        ("pause", STAGE.replace("us-east-1", "eu-west-1")),
        2,
        "is in eu-west-1; this command acts in us-east-1, the stack's region",
    ),
    Case(
        "a policy for another region's stage",
        ("policy", "put", "p.json"),
        2,
        "stageArn arn:aws:ivs:eu-west-1:123456789012:stage/MainStage0001 is in eu-west-1",
        {"p.json": json.dumps({"stageArn": STAGE.replace("us-east-1", "eu-west-1")}).encode()},
    ),
    # environment --------------------------------------------------------------------------------------
    Case("AWS_PROFILE unknown", ("policy", "list"), 1, "AWS profile 'prod' not found", env={"AWS_PROFILE": "prod"}),
    Case("--profile unknown", ("--profile", "prod", "policy", "list"), 1, "AWS profile 'prod' not found"),
    Case(
        "no region",
        ("ban", "list"),
        1,
        "no AWS region configured",
        env={"AWS_DEFAULT_REGION": None, "AWS_REGION": None},
    ),
    Case(
        "no credentials",
        ("policy", "list"),
        1,
        "no AWS credentials found",
        env={"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None},
    ),
    Case("endpoint unreachable", ("policy", "list"), 1, f"cannot reach {CLOSED_ENDPOINT}/"),
    Case("table endpoint unreachable", ("ban", "list", "--table", "T-1"), 1, "cannot reach"),
    Case(
        "ivs endpoint unreachable (RetryLater inside)",
        ("status", STAGE, "--table", "T-1"),
        1,
        "cannot reach http://127.0.0.1:1/",
        env={"AWS_ENDPOINT_URL_IVS_REALTIME": "http://127.0.0.1:1"},
    ),
    Case("--endpoint-url not a URL", ("--endpoint-url", "not-a-url", "policy", "list"), 1, "Invalid endpoint"),
    Case(
        "config file unparsable",
        ("policy", "list"),
        1,
        "Unable to parse config file",
        env={"AWS_CONFIG_FILE": "p.json"},
        files=policy_file(b"[default\nregion"),
    ),
    Case("AWS_MAX_ATTEMPTS=abc", ("policy", "list"), 1, "AWS configuration:", env={"AWS_MAX_ATTEMPTS": "abc"}),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_one_line_and_the_contract_exit_status(
    case: Case, offline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, content in case.files.items():
        (offline / name).write_bytes(content)
    for variable, value in case.env.items():
        if value is None:
            monkeypatch.delenv(variable, raising=False)
        else:
            monkeypatch.setenv(variable, value)

    result = run(*case.argv)

    assert_one_line(result, case.status, case.says, problems=case.problems)


def test_the_table_has_at_least_forty_cases():
    assert len({c.name for c in CASES}) == len(CASES) >= 40


def assert_one_line(result: Result, status: int, says: str, *, problems: bool = False) -> None:
    assert result.status == status, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    if problems:
        *found, lines = lines[:-1], lines[-1:]
        assert found[0] and all(line.startswith("p.json: ") for line in found[0]), result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and says in lines[0], lines[0]


def test_debug_adds_the_traceback_to_the_line(offline: Path):
    result = run("policy", "list", "--debug")
    assert result.status == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.splitlines()[-1].startswith(f"error: cannot reach {CLOSED_ENDPOINT}/")


@pytest.mark.story
def test_simulate_never_uses_the_configured_aws_endpoint(offline: Path, monkeypatch: pytest.MonkeyPatch):
    """An operator's shell set up for a local AWS (or a broken one) does not leak into simulate."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", CLOSED_ENDPOINT)
    monkeypatch.setenv("AWS_PROFILE", "prod")  # does not exist
    argv = ("--endpoint-url", CLOSED_ENDPOINT, "simulate", "--policies", str(EXAMPLES / "policies.json"))
    for passes in ((), NO_PASSES):  # the second run used to find the first run's table
        result = run(*argv, "--events", str(EXAMPLES / "show.jsonl"), "--json", *passes)
        assert result.status == 0, result.stderr
        assert any(json.loads(line)["operation"] == "StartComposition" for line in result.stdout.splitlines())
    assert os.environ["AWS_ENDPOINT_URL"] == CLOSED_ENDPOINT  # the shell's environment is left as it was
    assert os.environ["AWS_PROFILE"] == "prod"


def test_simulate_skips_lines_the_reader_refuses_and_runs_the_rest(offline: Path):
    lines = (EXAMPLES / "show.jsonl").read_text().splitlines()
    events = offline / "events.jsonl"
    events.write_text("\n".join([deep(100), *lines[:3], '{"id": ' + "1" * 5000 + "}", '"\\udc00"']) + "\n")
    result = run(
        "simulate", "--policies", str(EXAMPLES / "policies.json"), "--events", str(events), "--json", *NO_PASSES
    )
    assert result.status == 0, result.stderr
    skipped = result.stderr.splitlines()
    assert [line.split(":")[1].strip() for line in skipped] == ["line 1", "line 5", "line 6"]
    assert all(line.endswith("(skipped)") for line in skipped) and "Traceback" not in result.stderr


# pipes and terminals ----------------------------------------------------------------------------------
class ClosedPipe(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_closed_pipe_ends_the_command_quietly(offline: Path):
    from stagepilot.cli.main import main

    stderr = io.StringIO()
    status = main(["policy", "validate", str(EXAMPLES / "policies.json")], stdout=ClosedPipe(), stderr=stderr)
    assert status == 1 and stderr.getvalue() == ""


def ascii_terminal() -> io.TextIOWrapper:
    return io.TextIOWrapper(io.BytesIO(), encoding="ascii", errors="strict")


def written(stream: io.TextIOWrapper) -> str:
    stream.flush()
    buffer = stream.buffer
    assert isinstance(buffer, io.BytesIO)
    return buffer.getvalue().decode("ascii")


def test_an_ascii_terminal_gets_plain_symbols_in_the_timeline(offline: Path):
    from stagepilot.cli.main import main

    stdout, stderr = ascii_terminal(), ascii_terminal()
    argv = ["simulate", "--policies", str(EXAMPLES / "policies.json"), "--events", str(EXAMPLES / "show.jsonl")]
    assert main([*argv, *NO_PASSES], stdout=stdout, stderr=stderr) == 0
    timeline = written(stdout)
    assert "  > Participant Published" in timeline and "composition  + started composition" in timeline
    assert "\u25b6" not in timeline


@pytest.mark.story
def test_an_ascii_terminal_gets_help_and_errors_without_a_crash(offline: Path):
    from stagepilot.cli.main import main

    stdout, stderr = ascii_terminal(), ascii_terminal()
    with pytest.raises(SystemExit) as exited:
        main(["audit", "--help"], stdout=stdout, stderr=stderr)
    assert exited.value.code == 0 and "at most N entries" in written(stdout)
    assert main(["status", "arn:\u2603"], stdout=stdout, stderr=stderr) == 2
    assert written(stderr).startswith("error: not a stage ARN: 'arn:?'")


def stagepilot(*argv: str, env: dict[str, str], stdout: int | None = subprocess.PIPE) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-c", "import sys; from stagepilot.cli.main import main; sys.exit(main())", *argv]
    return subprocess.Popen(command, stdout=stdout, stderr=subprocess.PIPE, env=env)


@pytest.mark.story
def test_a_real_pipe_closed_by_head_and_a_latin1_terminal(offline: Path):
    """As a shell runs it: `stagepilot simulate ... | head -1` under a non-UTF-8 locale."""
    env = {**os.environ, "PYTHONIOENCODING": "latin-1", "PYTHONUTF8": "0"}
    argv = ("simulate", "--policies", str(EXAMPLES / "policies.json"), "--events", str(EXAMPLES / "show.jsonl"))
    process = stagepilot(*argv, *NO_PASSES, env=env)
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.readline()
    process.stdout.close()  # what `head -1` does after one line
    status = process.wait(timeout=120)
    errors = process.stderr.read().decode("latin-1")
    assert b"  > " in first and status in (0, 1)
    assert "Traceback" not in errors and "Exception ignored" not in errors, errors


@pytest.mark.parametrize("make_stdout", [lambda: io.StringIO()], ids=["captured"])
def test_version_names_the_package_and_botocore(make_stdout: Callable[[], io.StringIO]):
    from stagepilot.cli.main import main

    stdout = make_stdout()
    with pytest.raises(SystemExit):
        main(["--version"], stdout=stdout)
    assert stdout.getvalue().startswith("stagepilot/") and " botocore/" in stdout.getvalue()


def test_a_pasted_megabyte_stays_a_short_line(offline: Path):
    result = run("pause", STAGE + "a" * 100_000)
    assert result.status == 2 and len(result.stderr) < 300, result.stderr[:300]


def test_policy_validate_refuses_one_stage_twice(offline: Path):
    (offline / "p.json").write_text(json.dumps([{"stageArn": STAGE}, {"stageArn": STAGE, "paused": True}]))
    result = run("policy", "validate", "p.json")
    assert result.status == 2
    assert f"p.json: [1].stageArn: {STAGE} is already the stageArn of [0]: one policy per stage" in result.stdout


# `-` is standard input ----------------------------------------------------------------------------------
class Piped(io.StringIO):
    def isatty(self) -> bool:
        return False


class Typing(Piped):
    def isatty(self) -> bool:
        return True


def test_dash_reads_the_policy_from_stdin(offline: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(sys, "stdin", Piped(json.dumps({"stageArn": STAGE, "paused": True})))
    result = run("policy", "validate", "-")
    assert result.status == 0 and result.stdout == "-: valid (1 policy)\n", result.stderr


def test_dash_refuses_duplicate_keys_on_stdin_too(offline: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(sys, "stdin", Piped('{"stageArn": "x", "stageArn": "y"}'))
    assert_one_line(run("policy", "validate", "-"), 2, "-: the key 'stageArn' is given twice")


def test_dash_does_not_wait_on_a_terminal(offline: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(sys, "stdin", Typing(""))
    assert_one_line(run("policy", "put", "-"), 2, "-: standard input is a terminal")


# Ctrl-C -------------------------------------------------------------------------------------------------
def test_ctrl_c_exits_130_with_one_line(offline: Path, monkeypatch: pytest.MonkeyPatch):
    from stagepilot.cli import policies

    def interrupted(path: Path) -> list[object]:
        raise KeyboardInterrupt

    monkeypatch.setattr(policies, "load_policy_file", interrupted)
    assert_one_line(run("policy", "validate", "p.json"), 130, "interrupted")


# endpoints that are not the AWS service ------------------------------------------------------------------
@contextlib.contextmanager
def answering(status: int, body: bytes, content_type: str = "text/html") -> Iterator[str]:
    """An HTTP server on loopback that answers every request with ``status`` and ``body`` (a proxy's page,
    or another service)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    "body, content_type, says",
    [
        (b"<html><body>Welcome to the proxy</body></html>", "text/html", "not JSON ('<html><body>Welcome"),
        (b"{}", "application/json", "no Count in a successful answer"),
        (b"[]", "application/json", "JSON but not an object"),
    ],
    ids=["html page", "empty object", "array"],
)
def test_a_garbage_200_is_an_error_never_no_bans(
    offline: Path, monkeypatch: pytest.MonkeyPatch, body: bytes, content_type: str, says: str
):
    with answering(200, body, content_type) as url:
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", url)
        result = run("ban", "list", "--table", "StagePilot-Table")
    assert "no bans" not in result.stdout
    assert_one_line(result, 1, f"the answer of {url}/ to DynamoDB Query is not DynamoDB's: {says}")
    assert "AWS_ENDPOINT_URL_DYNAMODB" in result.stderr


def test_an_ivs_listing_without_its_required_member_is_an_error(offline: Path, monkeypatch: pytest.MonkeyPatch):
    with answering(200, b"{}", "application/json") as url:
        monkeypatch.setenv("AWS_ENDPOINT_URL_IVS_REALTIME", url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", url)
        result = run("status", "--table", "StagePilot-Table")
    assert_one_line(result, 1, "to IVS RealTime ListStages is not IVS RealTime's: no stages in a successful answer")


@pytest.mark.parametrize(
    "status, body",
    [
        (400, b'{"__type": "com.amazonaws.dynamodb.v20120810#UnknownOperationException"}'),
        (200, b'{"stages": []}'),
        (200, b"<html>proxy</html>"),
    ],
    ids=["a JSON error", "a JSON answer", "an HTML page"],
)
def test_a_wrong_service_endpoint_is_named_not_a_parser_error(
    offline: Path, monkeypatch: pytest.MonkeyPatch, status: int, body: bytes
):
    """CloudFormation (XML) pointed at a JSON service: botocore's ResponseParserError (or a KeyError) before."""
    with answering(status, body, "application/json") as url:
        result = run("--endpoint-url", url, "policy", "list")
    assert_one_line(result, 1, f"the answer of {url}/ to CloudFormation DescribeStacks is not CloudFormation's")


def test_an_endpoint_that_never_answers_times_out_as_told(offline: Path):
    with socket.socket() as listening:  # accepts connections (the kernel's backlog) and never answers
        listening.bind(("127.0.0.1", 0))
        listening.listen(8)
        url = f"http://127.0.0.1:{listening.getsockname()[1]}"
        started = time.monotonic()
        result = run("--cli-read-timeout", "0.2", "ban", "list", "--table", "StagePilot-Table", "--endpoint-url", url)
        took = time.monotonic() - started
    assert_one_line(result, 1, f"{url}/ did not answer in time")
    assert took < 5, took


def test_timeouts_reach_every_client_and_zero_means_none(offline: Path):
    from stagepilot.adapters.ivs import CLIENT_CONFIG
    from stagepilot.cli import resources

    resources.use_aws_options(resources.AwsOptions())
    default = resources.client("dynamodb").meta.config
    assert (default.connect_timeout, default.read_timeout) == (5.0, 15.0)
    ivs = resources.client("ivs-realtime", config=CLIENT_CONFIG).meta.config
    assert ivs.retries["total_max_attempts"] == 4  # the client's own retries kept (3 retries)
    resources.use_aws_options(resources.AwsOptions(connect_timeout=0, read_timeout=30))
    given = resources.client("ivs-realtime", config=CLIENT_CONFIG).meta.config
    assert (given.connect_timeout, given.read_timeout) == (None, 30)
    resources.use_aws_options(resources.AwsOptions())


# terminals ----------------------------------------------------------------------------------------------
class Screen(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    "env, clears",
    [
        ({"TERM": "xterm-256color"}, True),
        ({"TERM": "dumb"}, False),
        ({"TERM": None}, False),
        ({"TERM": "xterm", "NO_COLOR": "1"}, False),
    ],
    ids=["xterm", "TERM=dumb", "no TERM", "NO_COLOR"],
)
def test_watch_clears_the_screen_only_on_a_terminal_that_takes_it(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str | None], clears: bool
):
    from stagepilot.cli.output import Output
    from stagepilot.cli.status import watch

    monkeypatch.delenv("NO_COLOR", raising=False)
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    screen = Screen()
    frames = iter(range(2))

    def stop_after_two(seconds: float) -> None:
        if next(frames) == 1:
            raise KeyboardInterrupt

    assert (
        watch(Output(stdout=screen), lambda: {"time": "t"}, lambda r, o: o.line("frame"), every=1, sleep=stop_after_two)
        == 0
    )
    assert ("\x1b" in screen.getvalue()) is clears
    assert screen.getvalue().count("frame") == 2


@pytest.mark.parametrize("mark", ["\u202e", "\u202a", "\u2066", "\u2069", "\u200f", "\u061c", "\x1b[2J"])
def test_bidi_and_control_characters_from_data_are_shown_escaped(mark: str) -> None:
    """A user id carrying a right-to-left override (or an isolate, a mark, an escape sequence) cannot
    reorder or repaint what the operator reads: it is shown as its code, in lines and in JSON alike."""
    import io

    from stagepilot.cli.output import Output

    for as_json in (False, True):
        stdout = io.StringIO()
        out = Output(as_json=as_json, stdout=stdout, stderr=io.StringIO())
        out.json({"userId": f"evil{mark}1-tsoh"}) if as_json else out.line(f"banned evil{mark}1-tsoh")
        shown = stdout.getvalue()
        assert mark[0] not in shown
        assert f"\\u{ord(mark[0]):04x}" in shown or f"\\x{ord(mark[0]):02x}" in shown
        if as_json and mark[0] != "\x1b":
            assert json.loads(shown)["userId"] == f"evil{mark}1-tsoh"  # still the same JSON document
