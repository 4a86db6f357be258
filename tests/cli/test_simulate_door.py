"""``simulate``'s ``issue`` and ``join`` directives (docs/simulate.md): the door's decisions, and IVS's check of
the tokens at join."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.cli.conftest import run

STAGE = "arn:aws:ivs:us-east-1:123456789012:stage/MainStage0001"
POLICIES = [
    {
        "stageArn": STAGE,
        "tokens": {
            "roles": {
                "host": {"capabilities": ["PUBLISH", "SUBSCRIBE"], "durationMinutes": 10},
                "viewer": {"capabilities": ["SUBSCRIBE"], "durationMinutes": 10},
            },
            "defaultRole": "viewer",
        },
        "moderation": {"publishErrorLimit": {"count": 2, "windowSeconds": 60}},
    },
]
BANS = [{"userId": "troll-1", "reason": "raid"}, {"userId": "loud-2", "scope": "publish"}]
LINES = [
    {
        "simulate": "issue",
        "stageArn": STAGE,
        "userId": "host-1",
        "role": "host",
        "as": "H",
        "time": "2026-12-07T20:00:00Z",
    },
    {"simulate": "issue", "stageArn": STAGE, "userId": "troll-1", "as": "T", "time": "2026-12-07T20:00:01Z"},
    {
        "simulate": "issue",
        "stageArn": STAGE,
        "userId": "loud-2",
        "role": "host",
        "as": "L",
        "time": "2026-12-07T20:00:02Z",
    },
    {"simulate": "join", "token": "H", "publish": True, "time": "2026-12-07T20:00:03Z"},
    {"simulate": "join", "token": "L", "publish": True, "time": "2026-12-07T20:00:04Z"},
    {"simulate": "join", "token": "L", "publish": True, "time": "2026-12-07T20:00:05Z"},
    {"simulate": "join", "token": "L", "publish": True, "time": "2026-12-07T20:00:06Z"},
]


def scenario(tmp_path: Path, lines: list[dict[str, Any]], *extra: str) -> Any:
    (tmp_path / "policies.json").write_text(json.dumps(POLICIES))
    (tmp_path / "bans.json").write_text(json.dumps(BANS))
    (tmp_path / "events.jsonl").write_text("\n".join(json.dumps(line) for line in lines))
    return run(
        "simulate",
        "--policies",
        str(tmp_path / "policies.json"),
        "--bans",
        str(tmp_path / "bans.json"),
        "--events",
        str(tmp_path / "events.jsonl"),
        "--settle",
        "60",
        *extra,
    )


def test_json_prints_one_object_per_decision_and_a_refused_publish_is_not_counted(tmp_path: Path) -> None:
    result = scenario(tmp_path, LINES, "--json")

    assert result.status == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    decisions = [line for line in lines if "token" in line]
    assert [(d["userId"], d["token"], d["capabilities"]) for d in decisions] == [
        ("host-1", "issued", ["PUBLISH", "SUBSCRIBE"]),
        ("troll-1", "refused", []),
        ("loud-2", "issued", ["SUBSCRIBE"]),
    ]
    assert decisions[1]["reason"] == "user troll-1 is banned from every stage: raid"
    assert all(d["stageArn"] == STAGE and d["time"].startswith("2026-12-07T20:00:0") for d in decisions)
    # loud-2's three refused publishes are IVS's refusals, not abuse: nobody is disconnected
    assert [line for line in lines if line.get("operation") == "DisconnectParticipant"] == []


def test_the_timeline_says_what_the_door_and_ivs_did(tmp_path: Path) -> None:
    result = scenario(tmp_path, LINES[:5])

    assert result.status == 0, result.stderr
    text = result.stdout
    assert "door         refused (banned): user troll-1 is banned from every stage: raid" in text
    assert "publish refused: INSUFFICIENT_CAPABILITIES" in text


def test_a_malformed_directive_is_reported_and_skipped(tmp_path: Path) -> None:
    result = scenario(
        tmp_path, [{"simulate": "issue", "stageArn": "nope", "userId": "u"}, {"simulate": "join"}], "--json"
    )
    assert result.status == 0
    assert "line 1: stageArn: required, a stage ARN (skipped)" in result.stderr
    assert "line 2: token: required" in result.stderr


def test_a_ban_mid_run_disconnects_the_users_participant_and_the_door_refuses_the_next_token(tmp_path: Path) -> None:
    lines = [
        {"simulate": "issue", "stageArn": STAGE, "userId": "fan-3", "as": "F", "time": "2026-12-07T20:00:00Z"},
        {
            "simulate": "issue",
            "stageArn": STAGE,
            "userId": "host-1",
            "role": "host",
            "as": "H",
            "time": "2026-12-07T20:00:00Z",
        },
        {"simulate": "join", "token": "H", "publish": True, "time": "2026-12-07T20:00:01Z"},
        {"simulate": "join", "token": "F", "time": "2026-12-07T20:00:02Z"},
        {"simulate": "ban", "userId": "fan-3", "stageArn": STAGE, "reason": "spam", "time": "2026-12-07T20:01:00Z"},
        {"simulate": "issue", "stageArn": STAGE, "userId": "fan-3", "time": "2026-12-07T20:01:30Z"},
    ]

    result = scenario(tmp_path, lines, "--json", "--reconcile-seconds", "0")

    assert result.status == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    decisions = [line for line in out if "token" in line]
    [kick] = [line for line in out if line.get("operation") == "DisconnectParticipant"]
    assert kick["params"]["participantId"] == decisions[0]["participantId"]
    assert kick["params"]["reason"] == "spam" and kick["time"] == "2026-12-07T20:01:00Z"
    assert decisions[-1]["token"] == "refused" and decisions[-1]["refused"] == "banned"
