"""``stagepilot simulate`` exactly as CONTRACT §4 describes it."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import run

EXAMPLES = Path(__file__).parents[2] / "examples"


def simulate(*extra: str) -> list[dict]:
    result = run(
        "simulate",
        "--policies",
        str(EXAMPLES / "policies.json"),
        "--events",
        str(EXAMPLES / "show.jsonl"),
        "--bans",
        str(EXAMPLES / "bans.json"),
        *extra,
    )
    assert result.status == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_demo_starts_the_show_composition_once_and_restarts_it_after_the_failure():
    calls = [c for c in simulate("--json") if c["operation"] == "StartComposition"]
    assert [c["params"]["idempotencyToken"] for c in calls] == [
        "sp-MainStage0001-st-ShowSession01-1",
        "sp-MainStage0001-st-ShowSession01-2",
    ]
    first = calls[0]["params"]
    assert {d["name"] for d in first["destinations"]} == {"live", "archive"}
    assert first["layout"] == {"grid": {"featuredParticipantAttribute": "featured"}}


def test_json_lines_name_operation_and_exact_params():
    for call in simulate("--json"):
        assert set(call) >= {"operation", "params"}
        assert call["operation"] in {
            "StartComposition",
            "StopComposition",
            "StartParticipantReplication",
            "StopParticipantReplication",
            "DisconnectParticipant",
        }


def test_readable_timeline_says_what_was_done_and_why():
    result = run("simulate", "--policies", str(EXAMPLES / "policies.json"), "--events", str(EXAMPLES / "show.jsonl"))
    assert result.status == 0
    assert "started composition: first publisher of the session" in result.stdout
    assert "composition already started for this session" in result.stdout
    assert "restarted composition: restart 1 of 2" in result.stdout


def test_malformed_lines_are_reported_with_their_number_and_skipped(tmp_path: Path):
    lines = (EXAMPLES / "show.jsonl").read_text().splitlines()
    lines.insert(1, "{not json")
    lines.insert(3, json.dumps({"simulate": "teleport"}))
    lines.insert(5, json.dumps({"version": "0", "id": "x"}))
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(lines) + "\n")

    result = run("simulate", "--json", "--policies", str(EXAMPLES / "policies.json"), "--events", str(events))

    assert result.status == 0
    errors = result.stderr.splitlines()
    assert errors[0].startswith(f"{events}: line 2: not JSON")
    assert errors[1].startswith(f"{events}: line 4: simulate: unknown directive 'teleport'")
    assert errors[2].startswith(f"{events}: line 6: not an EventBridge event: missing detail-type")
    assert any(json.loads(line)["operation"] == "StartComposition" for line in result.stdout.splitlines())


def test_invalid_policies_stop_the_simulation(tmp_path: Path):
    policies = tmp_path / "policies.json"
    policies.write_text(json.dumps([{"stageArn": "default", "moderation": {"dryRun": "yes"}}]))
    result = run("simulate", "--policies", str(policies), "--events", str(EXAMPLES / "show.jsonl"))
    assert result.status == 2
    assert "moderation.dryRun: " in result.stderr


def test_demo_replicates_the_host_and_removes_the_banned_user_and_the_flagged_guest():
    calls = simulate("--json")
    replications = [c["params"] for c in calls if c["operation"] == "StartParticipantReplication"]
    assert replications == [
        {
            "sourceStageArn": "arn:aws:ivs:us-east-1:123456789012:stage/MainStage0001",
            "destinationStageArn": "arn:aws:ivs:us-east-1:123456789012:stage/GreenRoom0001",
            "participantId": "hOst1AbCdEf1",
            "reconnectWindowSeconds": 30,
            "attributes": {"replicated": "true"},
        }
    ]
    kicked = [c["params"]["participantId"] for c in calls if c["operation"] == "DisconnectParticipant"]
    assert kicked == ["bAnNed0pArt1", "gUe5t9pArt1c"]
