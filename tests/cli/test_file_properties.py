"""Property: whatever bytes or JSON a file holds, every command that reads it answers with the contract's
exit status and one line (or, for a policy, its problems field by field), never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tests.cli.conftest import NO_PASSES, Result, run
from tests.cli.test_failures import offline  # noqa: F401  (fixture)
from tests.support import STAGE

EXAMPLES = Path(__file__).parents[2] / "examples"
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
keys = st.sampled_from(["stageArn", "composition", "moderation", "replication", "paused", "detail", "id"]) | st.text(
    max_size=12
)
json_values = st.recursive(
    scalars | st.just(STAGE) | st.just("default"),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=5),
    max_leaves=30,
)
# JSON text: generated documents (lone surrogates survive as \\udXXX escapes), deep or huge ones, and raw bytes.
documents = (
    json_values.map(lambda v: json.dumps(v).encode())
    | st.integers(min_value=1, max_value=3000).map(lambda n: ("[" * n + "]" * n).encode())
    | st.integers(min_value=41, max_value=6000).map(lambda n: b"[" + b"7" * n + b"]")
    | st.binary(max_size=300)
)

READERS = {
    "policy validate": ("policy", "validate", "{f}"),
    "policy put": ("policy", "put", "{f}"),
    "explain": ("explain", "{f}"),
    "simulate --policies": ("simulate", "--policies", "{f}", "--events", str(EXAMPLES / "show.jsonl")),
    "simulate --bans": (
        "simulate",
        "--policies",
        str(EXAMPLES / "policies.json"),
        "--events",
        "{empty}",
        "--bans",
        "{f}",
    ),
}


def is_valid_policy_set(content: bytes) -> bool:
    from stagepilot.policy import validate_policy

    try:
        value = json.loads(content)
    except (ValueError, RecursionError):
        return False
    items = value if isinstance(value, list) else [value]
    return all(isinstance(i, dict) and not validate_policy(i) for i in items)


def assert_refused(result: Result, file: Path) -> None:
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    assert result.status == 2, (result.status, result.stderr)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    problems = [line for line in [*result.stdout.splitlines(), *result.stderr.splitlines()] if line not in errors]
    assert len(errors) <= 1, result.stderr
    assert errors or problems, "exit 2 says why"
    assert all(line.startswith(f"{file}: ") for line in problems), problems


@pytest.mark.parametrize("command", list(READERS), ids=list(READERS))
@SETTINGS
@given(content=documents)
def test_any_file_is_refused_in_one_line(command: str, content: bytes, offline: Path) -> None:  # noqa: F811
    assume(not is_valid_policy_set(content) or command in ("explain", "simulate --bans"))
    file = offline / "input.json"
    file.write_bytes(content)
    (offline / "empty.jsonl").write_bytes(b"")
    argv = [a.format(f=file, empty=offline / "empty.jsonl") for a in READERS[command]]
    if command == "simulate --bans":
        assume(_not_a_ban_list(content))
    if command == "explain":
        assume(_not_an_envelope(content))
    assert_refused(run(*argv), file)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=documents | st.lists(documents, min_size=1, max_size=4).map(b"\n".join))
def test_any_events_file_runs_the_good_lines_and_skips_the_rest(content: bytes, offline: Path) -> None:  # noqa: F811
    file = offline / "events.jsonl"
    file.write_bytes(content)
    result = run("simulate", "--policies", str(EXAMPLES / "policies.json"), "--events", str(file), *NO_PASSES)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    if result.status == 2:  # the file as a whole: not text, or too large
        assert len(lines) == 1 and lines[0].startswith(f"error: {file}: "), lines
    else:
        assert result.status == 0, result.stderr
        assert all(line.startswith(f"{file}: line ") and line.endswith("(skipped)") for line in lines), lines


def _not_a_ban_list(content: bytes) -> bool:
    try:
        value = json.loads(content)
    except (ValueError, RecursionError):
        return True
    return not (
        isinstance(value, list)
        and all(isinstance(b, dict) and isinstance(b.get("userId"), str) and b["userId"] for b in value)
    )


def _not_an_envelope(content: bytes) -> bool:
    try:
        value = json.loads(content)
    except (ValueError, RecursionError):
        return True
    return not (isinstance(value, dict) and isinstance(value.get("detail"), dict))
