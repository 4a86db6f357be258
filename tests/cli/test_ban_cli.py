"""``stagepilot ban add|remove|list`` over real HTTP against moto in server mode."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

import pytest

from stagepilot.cli.bans import parse_duration
from tests.cli.conftest import run


def test_ban_add_list_remove(aws: str):
    added = run("ban", "add", "spammer-7", "--reason", "spam", "--no-disconnect")
    assert added.status == 0, added.stderr
    assert added.stdout.startswith("banned spammer-7")
    [ban] = run("ban", "list", "--json").json()
    assert (ban["userId"], ban["reason"], ban["expiresAt"]) == ("spammer-7", "spam", None)

    assert run("ban", "remove", "spammer-7").status == 0
    assert run("ban", "list", "--json").json() == []
    again = run("ban", "remove", "spammer-7")
    assert again.status == 1 and again.stderr.strip() == "error: spammer-7 is not banned"


def test_ban_with_ttl_records_its_expiry(aws: str):
    result = run("ban", "add", "troll-3", "--ttl", "12h", "--no-disconnect", "--json")
    assert result.status == 0
    assert result.json()["expiresAt"] is not None
    assert "until" in run("ban", "list").stdout


@pytest.mark.parametrize(
    "text, seconds", [("90s", 90), ("30m", 1800), ("12h", 43200), ("7d", 604800), ("1d12h", 129600), ("2w", 1209600)]
)
def test_durations(text: str, seconds: int):
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "12", "h", "1.5h", "0s", "-1d", "1y", "1h 30m"])
def test_bad_durations_are_rejected(text: str):
    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration(text)


def test_reason_longer_than_disconnect_allows_is_bad_input(aws: str):
    result = run("ban", "add", "u1", "--reason", "x" * 129, "--no-disconnect")
    assert result.status == 2 and "--reason" in result.stderr


def test_ban_add_disconnects_the_user_on_every_stage_with_a_policy(ivs, tmp_path):
    """The sweep runs against the IVS stand-in over HTTP: the user's connected participants on stages with
    a policy are disconnected; other users and stages without a policy are left alone."""
    import json

    from tests.support import OTHER_STAGE, STAGE, EventFactory

    events = EventFactory(at=datetime.now(UTC))
    third = "arn:aws:ivs:us-east-1:123456789012:stage/NoPolicy0001"
    for stage, session in (
        (STAGE, "st-MainSession01"),
        (OTHER_STAGE, "st-GreenSession1"),
        (third, "st-ThirdSession1"),
    ):
        ivs.create_stage(stage)
        ivs.observe(events.published(f"bad-{stage[-4:]}", user_id="spammer-7", stage=stage, session=session))
    ivs.observe(events.published("good-1", user_id="host-1", stage=STAGE, session="st-MainSession01"))
    for stage in (STAGE, OTHER_STAGE):
        path = tmp_path / f"{stage[-4:]}.json"
        path.write_text(json.dumps({"stageArn": stage, "moderation": {}}))
        assert run("policy", "put", str(path)).status == 0

    result = run("ban", "add", "spammer-7", "--reason", "spam")

    assert result.status == 0, result.stderr
    kicked = {
        (c.params["stageArn"], c.params["participantId"])
        for c in ivs.mutating_calls()
        if c.operation == "DisconnectParticipant"
    }
    assert kicked == {(STAGE, "bad-0001"), (OTHER_STAGE, "bad-0001")}
    assert all(c.params["reason"] == "spam" for c in ivs.mutating_calls())
    assert len([line for line in result.stdout.splitlines() if line.startswith("  disconnect: bad-0001 on ")]) == 2
