"""The runbooks' commands, run as written: every ``stagepilot ...`` line of every ```sh block in
docs/runbooks/, in order, against ``stagepilot sandbox`` (moto server, the IVS stand-in and the
automations, over HTTP), so the docs cannot drift from the CLI.
A line whose comment quotes text (``# "disconnected p-spam"``) promises the operator sees it: checked."""

from __future__ import annotations

import json
import re
import shlex
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stagepilot.local.sandbox import Sandbox
from tests.cli.conftest import TABLE, run
from tests.support import CHANNEL, ENCODER, STAGE, EventFactory

RUNBOOKS = Path(__file__).parents[2] / "docs" / "runbooks"
PAGES = sorted(p for p in RUNBOOKS.glob("*.md") if p.name != "README.md")
BLOCK = re.compile(r"^\s*```(\w*)\n(.*?)^\s*```", re.MULTILINE | re.DOTALL)
USER = "spammer-7"
PARTICIPANT = "p-spam"
FAILED_EVENT = "evt-failed-1"
PROMISE = re.compile(r'\s#\s*"([^"]+)"[^"]*$')  # the quoted text of a command's comment


def promised(line: str) -> str | None:
    found = PROMISE.search(line)
    return found.group(1) if found else None


def blocks(page: Path, language: str) -> list[str]:
    return [body for lang, body in BLOCK.findall(page.read_text()) if lang == language]


def commands(page: Path) -> list[str]:
    lines = []
    for body in blocks(page, "sh"):
        lines.extend(line.strip() for line in body.splitlines() if line.strip().startswith("stagepilot "))
    return lines


@pytest.fixture
def placeholders(sandbox: Sandbox, tmp_path: Path) -> dict[str, str]:
    """``stagepilot sandbox`` with one onboarded stage whose composition IVS refused (its channel does not
    exist), a live session with a publisher, and a failed event in the composition dead-letter queue."""
    policy = {
        "stageArn": STAGE,
        "composition": {
            "destinations": [{"name": "live", "channel": {"channelArn": CHANNEL, "encoderConfigurationArn": ENCODER}}]
        },
        "moderation": {"flagLimit": {"count": 2, "windowSeconds": 60}},
    }
    policy_file = tmp_path / "policy.json"
    policy_file.write_text(json.dumps(policy))
    assert run("policy", "put", str(policy_file)).status == 0  # version 1
    sandbox.ivs.missing(CHANNEL)
    now = datetime.now(UTC)
    events = EventFactory(at=now)
    published = events.published(PARTICIPANT, user_id=USER, at=now)
    scenario = tmp_path / "show.jsonl"
    token = {"simulate": "participant", "stageArn": STAGE, "participantId": PARTICIPANT, "userId": USER}
    scenario.write_text(json.dumps(token) + "\n" + json.dumps(published) + "\n")
    played = run("sandbox", "play", str(scenario))
    assert played.status == 0 and played.stdout.startswith("played 1 events"), played.stderr
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(published))
    failed = events.published("p-other", event_id=FAILED_EVENT, at=now)
    sandbox.client("sqs").send_message(QueueUrl=sandbox.queues["composition"][1], MessageBody=json.dumps(failed))
    return {
        "STAGE_ARN": STAGE,
        "PARTICIPANT_ID": PARTICIPANT,
        "USER_ID": USER,
        "POLICY_FILE": str(policy_file),
        "EVENT_FILE": str(event_file),
        "EVENT_ID": FAILED_EVENT,
    }


def test_every_runbook_is_indexed_and_has_commands():
    index = (RUNBOOKS / "README.md").read_text()
    assert PAGES
    for page in PAGES:
        assert f"]({page.name})" in index, page.name
        assert commands(page), f"{page.name} has no stagepilot command in a sh block"


@pytest.mark.parametrize(
    "page",
    PAGES,
    ids=[p.stem for p in PAGES],
)
def test_runbook_commands_run_as_written(page: Path, placeholders: dict[str, str]):
    for line in commands(page):
        text = re.sub(r"\$(\w+)", lambda m: shlex.quote(placeholders[m.group(1)]), line)
        argv = shlex.split(text, comments=True)
        result = run(*argv[1:])
        assert result.status == 0, f"{page.name}: {line}\n{result.stderr}"
        expected = promised(line)
        if expected is not None:
            assert expected in result.stdout, f"{page.name}: {line}\n{result.stdout}"


def test_promises_are_read_from_comments():
    assert promised('stagepilot disconnect A B --reason "x y"   # "disconnected p-spam"') == "disconnected p-spam"
    assert promised('stagepilot disconnect A B --reason "x y"') is None
    assert promised("stagepilot dlq list   # anything still waiting") is None
    assert sum(promised(line) is not None for page in PAGES for line in commands(page)) >= 15


def test_the_token_service_snippet_sees_the_ban(placeholders: dict[str, str], monkeypatch: pytest.MonkeyPatch):
    [snippet] = blocks(RUNBOOKS / "ban-a-user.md", "python")
    monkeypatch.setenv("STAGEPILOT_TABLE", TABLE)
    namespace: dict[str, object] = {}
    exec(compile(textwrap.dedent(snippet), "ban-a-user.md", "exec"), namespace)
    may_join = namespace["may_join"]
    stage = "arn:aws:ivs:us-east-1:123456789012:stage/MainStage0001"
    other = "arn:aws:ivs:us-east-1:123456789012:stage/GreenRoom0001"
    assert callable(may_join) and may_join(USER, stage) is True
    assert run("ban", "add", USER, "--stage", stage, "--no-disconnect").status == 0
    assert may_join(USER, stage) is False and may_join(USER, other) is True
    assert run("ban", "add", USER, "--scope", "publish", "--no-disconnect").status == 0
    assert may_join(USER, other) is True  # may watch
    assert run("ban", "add", USER, "--no-disconnect", "--replace").status == 0
    assert may_join(USER, other) is False
