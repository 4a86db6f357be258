"""``stagepilot ban add|remove|list`` over real HTTP against moto in server mode."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

import boto3
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


def test_ban_add_does_not_shorten_a_ban_in_force_without_replace(aws: str):
    assert run("ban", "add", "troll-3", "--reason", "raid", "--no-disconnect").status == 0

    shorter = run("ban", "add", "troll-3", "--ttl", "1h", "--no-disconnect")

    assert shorter.status == 1
    assert shorter.stderr.strip() == "error: troll-3 is already banned permanently; pass --replace to replace that ban"
    [ban] = run("ban", "list", "--json").json()
    assert (ban["reason"], ban["expiresAt"]) == ("raid", None)  # still permanent, still its reason

    replaced = run("ban", "add", "troll-3", "--ttl", "1h", "--no-disconnect", "--replace")
    assert replaced.status == 0, replaced.stderr
    assert replaced.stdout.strip().endswith("(replaced a ban permanently)")
    [ban] = run("ban", "list", "--json").json()
    assert ban["expiresAt"] is not None


def test_ban_changes_are_audited_with_the_caller(aws: str):
    assert run("ban", "add", "troll-3", "--reason", "raid", "--no-disconnect").status == 0
    assert run("ban", "add", "troll-3", "--ttl", "2h", "--replace", "--no-disconnect").status == 0
    assert run("ban", "remove", "troll-3").status == 0
    assert run("ban", "add", "troll-3", "--no-disconnect").status == 0  # refused: not audited
    assert run("ban", "add", "troll-3", "--no-disconnect").status == 1

    trail = run("audit", "--json").json()

    caller = boto3.client("sts").get_caller_identity()["Arn"]
    assert [(e["stageArn"], e["action"], e["userId"]) for e in trail] == [
        ("global", "ban-add", "troll-3"),
        ("global", "ban-remove", "troll-3"),
        ("global", "ban-add", "troll-3"),
        ("global", "ban-add", "troll-3"),
    ]
    assert (
        trail[2]["reason"].startswith("banned troll-3 until ") and "(replaced a ban permanently)" in trail[2]["reason"]
    )
    assert {e["details"]["by"] for e in trail} == {caller}


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


def test_ban_add_disconnects_the_user_on_every_live_stage_whatever_its_policy(ivs, tmp_path):
    """The sweep runs against the IVS stand-in over HTTP: the user's connected participants on every stage
    with an active session are disconnected (own policy, default, or none); other users, paused stages and
    idle stages are left alone, and only what was done is printed."""
    import json

    from tests.support import OTHER_STAGE, STAGE, EventFactory

    events = EventFactory(at=datetime.now(UTC))
    third = "arn:aws:ivs:us-east-1:123456789012:stage/NoPolicy0001"
    paused = "arn:aws:ivs:us-east-1:123456789012:stage/Paused000001"
    for n in range(5):
        ivs.create_stage(f"arn:aws:ivs:us-east-1:123456789012:stage/Idle{n:08d}")
    for stage, session in (
        (STAGE, "st-MainSession01"),
        (OTHER_STAGE, "st-GreenSession1"),
        (third, "st-ThirdSession1"),
        (paused, "st-PausedSession"),
    ):
        ivs.create_stage(stage)
        ivs.observe(events.published(f"bad-{stage[-4:]}", user_id="spammer-7", stage=stage, session=session))
    ivs.observe(events.published("good-1", user_id="host-1", stage=STAGE, session="st-MainSession01"))
    for document in ({"stageArn": STAGE, "moderation": {}}, {"stageArn": paused, "paused": True}):
        path = tmp_path / "policy.json"
        path.write_text(json.dumps(document))
        assert run("policy", "put", str(path)).status == 0

    result = run("ban", "add", "spammer-7", "--reason", "spam", "--sweep")

    assert result.status == 0, result.stderr
    kicked = {
        (c.params["stageArn"], c.params["participantId"])
        for c in ivs.mutating_calls()
        if c.operation == "DisconnectParticipant"
    }
    assert kicked == {(STAGE, "bad-0001"), (OTHER_STAGE, "bad-0001"), (third, "bad-0001")}
    assert all(c.params["reason"] == "spam" for c in ivs.mutating_calls())
    lines = result.stdout.splitlines()
    assert lines[0] == "banned spammer-7" and len(lines) == 4, lines  # nothing about idle or paused stages
    assert all(line.startswith("  disconnect: bad-0001 on ") for line in lines[1:])
    assert result.stderr == ""  # the progress line is for terminals

    # The sessions whose last participant was kicked ended (IVS ends a session when everyone has left).
    again = run("ban", "add", "spammer-7", "--replace", "--sweep", "--json").json()
    assert (again["liveStagesChecked"], again["disconnected"]) == (2, [])
    assert run("ban", "add", "spammer-7", "--replace", "--sweep").stdout.splitlines()[1] == (
        "  not connected on any of the 2 live stage(s)"
    )


def test_a_global_ban_hands_the_rest_of_its_sweep_to_the_convergence_pass_and_ban_list_shows_how_far(ivs):
    """No listing of live stages (issue 26: a sweep took 29.6 s at 30 live stages): the door's token
    records now, the pass for the rest, saying so; ``ban list`` sums the passes since the ban."""
    from stagepilot.adapters.pass_log import PassLog, PassRecord
    from stagepilot.adapters.table import Table
    from tests.cli.conftest import TABLE
    from tests.support import STAGE, EventFactory

    log = PassLog(Table(boto3.client("dynamodb"), TABLE))
    log.record(PassRecord(datetime.now(UTC) - timedelta(minutes=1), examinable=300, reached=104))
    ivs.create_stage(STAGE)
    ivs.observe(EventFactory(at=datetime.now(UTC)).published("bad-1", user_id="spammer-7"))
    ivs.calls.clear()

    added = run("ban", "add", "spammer-7", "--reason", "spam", "--json")

    assert added.status == 0, added.stderr
    assert added.json()["sweep"] == {"by": "convergence-pass", "liveStages": 300, "passesNeeded": 3}
    assert [c.operation for c in ivs.calls] == []  # no token of the door's: nothing to ask IVS
    assert run("ban", "remove", "spammer-7").status == 0
    text = run("ban", "add", "spammer-7", "--reason", "spam").stdout
    assert (
        "the rest of the sweep (participants whose tokens stagepilot did not issue) is the convergence pass's: " in text
    )
    assert "300 live stage(s), about 3 pass(es), one every reconcileMinutes; `stagepilot ban list` shows" in text

    assert run("ban", "list").stdout.splitlines()[1] == (
        "  sweep: 0 of 300 live stage(s) checked by the convergence pass (0 pass(es) since the ban, about 3 more)"
    )
    later = datetime.now(UTC) + timedelta(seconds=1)
    for n in range(2):
        log.record(PassRecord(later + timedelta(minutes=n), examinable=300, reached=104))
    assert run("ban", "list").stdout.splitlines()[1] == (
        "  sweep: 208 of 300 live stage(s) checked by the convergence pass (2 pass(es) since the ban, about 1 more)"
    )
    log.record(PassRecord(later + timedelta(minutes=2), examinable=300, reached=104))
    [listed] = run("ban", "list", "--json").json()
    assert listed["sweep"]["done"] and listed["sweep"]["stagesChecked"] == 300 and listed["sweep"]["passesLeft"] == 0
    assert (
        "  sweep: done: every live stage checked by the convergence pass (the pass of 20" in run("ban", "list").stdout
    )


def test_a_stage_ban_checks_its_one_stage_at_once(ivs):
    from tests.support import OTHER_STAGE, STAGE, EventFactory

    events = EventFactory(at=datetime.now(UTC))
    for stage, session in ((STAGE, "st-MainSession01"), (OTHER_STAGE, "st-GreenSession1")):
        ivs.create_stage(stage)
        ivs.observe(events.published("bad-1", user_id="spammer-7", stage=stage, session=session))

    result = run("ban", "add", "spammer-7", "--stage", STAGE, "--reason", "spam")

    assert result.status == 0, result.stderr
    assert result.stdout.splitlines()[1:] == [
        f"  disconnect: bad-1 on {STAGE} (disconnected (stage-ban): user spammer-7 was banned)"
    ]
    kicked = [c.params["stageArn"] for c in ivs.mutating_calls() if c.operation == "DisconnectParticipant"]
    assert kicked == [STAGE]  # the other stage: not banned there
    # its sweep is its one stage, not the passes' progress through the fleet ("0 of 0 live stage(s)" before)
    assert run("ban", "list").stdout.splitlines()[1] == (
        "  sweep: its one stage, checked by ban add at once (unless --no-disconnect) and by the passes"
    )
    assert "ListStages" not in {c.operation for c in ivs.calls}


def test_ban_add_dry_run_shows_the_ban_and_whom_it_would_disconnect_and_changes_nothing(ivs):
    from tests.support import OTHER_STAGE, STAGE, EventFactory

    events = EventFactory(at=datetime.now(UTC))
    for stage, session in ((STAGE, "st-MainSession01"), (OTHER_STAGE, "st-GreenSession1")):
        ivs.create_stage(stage)
        ivs.observe(events.published("bad-1", user_id="spammer-7", stage=stage, session=session))

    result = run("ban", "add", "spammer-7", "--stage", STAGE, "--reason", "spam", "--ttl", "1h", "--dry-run")
    document = run("ban", "add", "spammer-7", "--reason", "spam", "--sweep", "--dry-run", "--json").json()

    assert result.status == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"would ban spammer-7 on {STAGE} until ")
    assert lines[1:] == [
        f"  would disconnect bad-1 on {STAGE}",
        f"  would call DisconnectParticipant (stageArn={STAGE}, participantId=bad-1, reason=spam)",
        "dry run: nothing changed",
    ]
    assert document["wouldStore"] is True and document["liveStagesChecked"] == 2
    assert sorted(d["stageArn"] for d in document["wouldDisconnect"]) == [OTHER_STAGE, STAGE]
    assert [c for c in ivs.mutating_calls() if c.operation == "DisconnectParticipant"] == []
    assert run("ban", "list", "--json").json() == []
    assert run("audit", "--json").json() == []


def test_ban_add_dry_run_of_a_ban_in_force_says_it_would_not_change_it(aws: str):
    assert run("ban", "add", "spammer-7", "--no-disconnect").status == 0

    result = run("ban", "add", "spammer-7", "--ttl", "1h", "--no-disconnect", "--dry-run")

    assert result.status == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith("would not ban: ")
    assert result.stdout.splitlines()[-1] == "dry run: nothing changed"


def test_a_long_ban_list_is_cut_at_max_items_and_says_how_to_go_on(aws: str):
    for n in range(5):
        assert run("ban", "add", f"user-{n}", "--no-disconnect").status == 0

    first = run("ban", "list", "--max-items", "2")

    assert [line.split()[0] for line in first.stdout.splitlines() if not line.startswith(" ")] == ["user-0", "user-1"]
    assert first.stderr.startswith("more bans than shown: add --starting-token ")
    token = first.stderr.split("--starting-token ")[1].split()[0]
    rest = run("ban", "list", "--starting-token", token, "--json")
    assert [b["userId"] for b in rest.json()] == ["user-2", "user-3", "user-4"]
    assert rest.stderr == ""
    assert run("ban", "list").stderr == ""  # all shown: no notice
    bad = run("ban", "list", "--starting-token", "bm90LW1pbmU")
    assert bad.status == 2 and "not a token a cut listing printed: 'bm90LW1pbmU'" in bad.stderr


def test_ban_remove_dry_run_names_the_ban_and_lifts_nothing(aws: str):
    assert run("ban", "add", "spammer-7", "--no-disconnect").status == 0

    result = run("ban", "remove", "spammer-7", "--dry-run")

    assert result.status == 0, result.stderr
    assert result.stdout.splitlines()[0] == "would lift the ban on spammer-7 (banned permanently)"
    assert result.stdout.splitlines()[-1] == "dry run: nothing changed"
    assert [b["userId"] for b in run("ban", "list", "--json").json()] == ["spammer-7"]
    assert [e["action"] for e in run("audit", "--json").json()] == ["ban-add"]
    missing = run("ban", "remove", "nobody", "--dry-run")
    assert missing.status == 1 and missing.stderr.strip() == "error: nobody is not banned"


def test_a_ban_made_when_no_stage_is_live_says_there_is_nothing_to_sweep_yet(ivs):
    """``ban list`` said "0 of 0 live stage(s) checked" when the last pass had found nothing live: true in
    numbers, no answer to "is the sweep done?"."""
    from stagepilot.adapters.pass_log import PassLog, PassRecord
    from stagepilot.adapters.table import Table
    from tests.cli.conftest import TABLE

    log = PassLog(Table(boto3.client("dynamodb"), TABLE))
    log.record(PassRecord(datetime.now(UTC) - timedelta(minutes=1), examinable=0, reached=0))

    added = run("ban", "add", "spammer-7", "--reason", "spam")

    assert added.status == 0, added.stderr
    assert "is the convergence pass's: no live stage to check at the last pass, the next one checks every stage " in (
        added.stdout
    )
    assert "0 live stage(s)" not in added.stdout
    assert run("ban", "list").stdout.splitlines()[1] == (
        "  sweep: nothing to sweep yet: the last convergence pass found no live stage to check; "
        "the passes after the ban check every stage live by then"
    )
    log.record(PassRecord(datetime.now(UTC) + timedelta(seconds=1), examinable=0, reached=0))
    assert "  sweep: done: every live stage checked by the convergence pass" in run("ban", "list").stdout
