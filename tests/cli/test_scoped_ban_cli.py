"""``stagepilot ban add --stage ARN --scope join|publish`` / ``ban remove --stage`` (docs/cli.md)."""

from __future__ import annotations

from tests.cli.conftest import run

STAGE = "arn:aws:ivs:us-east-1:123456789012:stage/MainStage0001"


def test_a_stage_ban_and_a_global_publish_ban_are_listed_and_lifted_apart(aws: str) -> None:
    added = run("ban", "add", "troll-1", "--stage", STAGE, "--no-disconnect")
    assert added.status == 0, added.stderr
    assert added.stdout.strip() == f"banned troll-1 on {STAGE}"
    published = run("ban", "add", "troll-1", "--scope", "publish", "--no-disconnect")
    assert published.stdout.strip() == "banned troll-1 from publishing everywhere"

    listed = sorted(run("ban", "list", "--json").json(), key=lambda b: b["stageArn"] or "")
    assert [(b["userId"], b["stageArn"], b["scope"]) for b in listed] == [
        ("troll-1", None, "publish"),
        ("troll-1", STAGE, "join"),
    ]

    assert run("ban", "remove", "troll-1", "--stage", STAGE).status == 0
    [left] = run("ban", "list", "--json").json()
    assert (left["stageArn"], left["scope"]) == (None, "publish")
    again = run("ban", "remove", "troll-1", "--stage", STAGE)
    assert again.status == 1 and again.stderr.strip() == f"error: troll-1 is not banned on {STAGE}"


def test_a_malformed_stage_or_scope_is_refused_before_any_call(aws: str) -> None:
    bad_stage = run("ban", "add", "troll-1", "--stage", "arn:aws:ivs:us-east-1:123456789012:channel/X")
    assert bad_stage.status == 2 and bad_stage.stderr.startswith("error: not a stage ARN")
    bad_scope = run("ban", "add", "troll-1", "--scope", "watch")
    assert bad_scope.status == 2 and "Traceback" not in bad_scope.stderr
    assert run("ban", "list", "--json").json() == []
