"""An audit answer you can trust (issue 26): a typo'd --action or a future --since is an error, not "no
actions"; --until; a cut listing says so and how to go on (--max-items/--starting-token); CSV; the time
window is the query's key condition; `stagepilot flag` is in the trail."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import boto3

from stagepilot.adapters.table import AuditLog, AuditRecord, Table
from stagepilot.local.ivs import IvsStandIn
from tests.cli.conftest import TABLE, run
from tests.support import STAGE, T0


def table() -> Table:
    return Table(boto3.client("dynamodb"), TABLE)


def record(minutes: int, action: str = "disconnect", **extra: object) -> None:
    when = T0 + timedelta(minutes=minutes)
    AuditLog(table(), clock=lambda: when).record(
        AuditRecord(
            time=when,
            stage_arn=STAGE,
            automation="moderation",
            action=action,
            reason=f"at {minutes}",
            event_id=f"e{minutes}",
            **extra,  # type: ignore[arg-type]
        )
    )


def reasons(*argv: str) -> list[str]:
    result = run("audit", *argv, "--json")
    assert result.status == 0, result.stderr
    return [entry["reason"] for entry in result.json()]


def test_a_typod_action_is_refused_with_the_valid_ones(aws: str):
    result = run("audit", "--action", "disconect")

    assert result.status == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(
        "error: argument --action: no action 'disconect' in the audit trail (did you mean disconnect"
    )
    assert "actions: ban-add, ban-remove, blocked-at-destination, body-mismatch, budget, composition-gave-up," in line


def test_a_future_since_is_an_error_and_until_before_since_too(aws: str):
    future = run("audit", "--since", "2999-01-01T00:00:00Z")
    backwards = run("audit", "--since", "2026-11-21T20:00:00Z", "--until", "2026-11-20T00:00:00Z")

    assert future.status == 2
    assert future.stderr.startswith("error: --since 2999-01-01T00:00:00Z is in the future (now ")
    assert backwards.status == 2
    assert backwards.stderr.strip() == "error: --until 2026-11-20T00:00:00Z is before --since 2026-11-21T20:00:00Z"


def test_until_bounds_the_window(aws: str):
    for minutes in range(4):
        record(minutes)

    assert reasons("--until", "2026-11-21T20:01:00Z") == ["at 1", "at 0"]
    assert reasons("--since", "2026-11-21T20:01:00Z", "--until", "2026-11-21T20:02:00Z") == ["at 2", "at 1"]
    assert reasons(STAGE, "--until", "2026-11-21T20:00:00Z") == ["at 0"]


def test_a_cut_listing_says_so_and_the_token_goes_on(aws: str):
    for minutes in range(5):
        record(minutes)

    first = run("audit", "--max-items", "2", "--json")

    assert [e["reason"] for e in first.json()] == ["at 4", "at 3"]
    notice = first.stderr.strip()
    assert notice.startswith("more entries than shown: add --starting-token ")
    token = notice.split("--starting-token ")[1].split()[0]
    second = run("audit", "--max-items", "2", "--starting-token", token, "--json")
    assert [e["reason"] for e in second.json()] == ["at 2", "at 1"]
    token = second.stderr.split("--starting-token ")[1].split()[0]
    last = run("audit", "--max-items", "2", "--starting-token", token, "--json")
    assert [e["reason"] for e in last.json()] == ["at 0"]
    assert last.stderr == ""  # all shown: no notice
    per_stage = run("audit", STAGE, "--limit", "4")
    assert len(per_stage.stdout.splitlines()) == 4 and "--starting-token" in per_stage.stderr
    assert run("audit", "--limit", "5").stderr == ""  # exactly all: not cut


def test_a_token_that_is_not_one_is_refused(aws: str):
    result = run("audit", "--starting-token", "garbage")

    assert result.status == 2
    assert (
        result.stderr.strip() == "error: argument --starting-token: not a token a cut audit listing printed: 'garbage' "
        "(see: stagepilot audit --help)"
    )


def test_csv_output(aws: str):
    record(0, user_id="troll-9", participant_id="p-1")
    record(1, "pause", details={"by": "arn:aws:sts::123456789012:assumed-role/ops/alice"})

    result = run("audit", "--csv")

    assert result.status == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["action"], r["userId"], r["participantId"], r["by"]) for r in rows] == [
        ("pause", "", "", "arn:aws:sts::123456789012:assumed-role/ops/alice"),
        ("disconnect", "troll-9", "p-1", ""),
    ]
    assert rows[0]["time"] == "2026-11-21T20:01:00.000Z" and rows[0]["stageArn"] == STAGE
    assert run("audit", "--csv", "--json").status == 2


def test_flag_is_in_the_audit_trail(ivs: IvsStandIn):
    from tests.support import EventFactory

    ivs.observe(EventFactory().published("p-1", user_id="troll-9"))

    flagged = run("flag", STAGE, "p-1", "--reason", "spam in chat")

    assert flagged.status == 0, flagged.stderr
    [entry] = run("audit", "--action", "flag", "--json").json()
    assert (entry["stageArn"], entry["participantId"], entry["userId"]) == (STAGE, "p-1", "troll-9")
    assert entry["automation"] == "cli" and entry["details"]["by"].startswith("arn:aws:sts::")
    assert entry["reason"].endswith(": spam in chat")


def test_action_is_filtered_by_dynamodb_and_entries_from_before_the_attribute_still_match(aws: str):
    import json as jsonlib

    from stagepilot.adapters.schema import AUDIT_INDEX_PARTITION_KEY

    record(0, "composition-started")
    record(1, "disconnect")
    for minutes in range(2, 40):
        record(minutes, "token-issued")
    old = AuditLog(table(), clock=lambda: T0 + timedelta(minutes=50)).item(
        AuditRecord(time=T0, stage_arn=STAGE, automation="moderation", action="disconnect", reason="old", event_id="o")
    )
    del old["action"]  # written before the attribute existed
    table().put(old)
    queried: list[dict] = []
    client = boto3.client("dynamodb")
    client.meta.events.register("provide-client-params.dynamodb.Query", lambda params, **_: queried.append(params))
    log = AuditLog(Table(client, TABLE))

    found = [entry["reason"] for _, entry in log.trail(None, actions=["disconnect"])]

    assert found == ["old", "at 1"]
    assert "#in IN (:in0)" in queried[0]["FilterExpression"]
    assert reasons("--action", "disconnect") == ["old", "at 1"]  # the CLI: the same, through the filter
    assert old[AUDIT_INDEX_PARTITION_KEY] and jsonlib.loads(old["entry"])["action"] == "disconnect"
