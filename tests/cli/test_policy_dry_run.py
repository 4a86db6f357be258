"""``policy put|rollback|delete --dry-run``: what would change and what convergence would then do, with
nothing stored and nothing called (over HTTP, against moto and the IVS stand-in)."""

from __future__ import annotations

import json
from pathlib import Path

import boto3

from stagepilot.local.ivs import IvsStandIn
from tests.cli.conftest import TABLE, run
from tests.support import CHANNEL, ENCODER, STAGE, EventFactory

COMPOSING = {
    "stageArn": STAGE,
    "composition": {
        "destinations": [{"name": "live", "channel": {"channelArn": CHANNEL, "encoderConfigurationArn": ENCODER}}]
    },
}
BLOCKING = {"stageArn": STAGE, "moderation": {"blockedUserIds": ["troll-3"]}}


def table_items() -> list[dict]:
    return boto3.client("dynamodb").scan(TableName=TABLE)["Items"]


def write(tmp_path: Path, document: dict, name: str = "policy.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return str(path)


def test_put_dry_run_says_what_would_be_stored_and_done_and_changes_nothing(ivs: IvsStandIn, tmp_path: Path) -> None:
    assert run("policy", "put", write(tmp_path, BLOCKING, "v1.json"), "--no-converge").status == 0
    events = EventFactory()
    ivs.observe(events.published("host", user_id="host-1"))  # live, with nothing composing it
    before = table_items()

    result = run("policy", "put", write(tmp_path, COMPOSING), "--expected-version", "1", "--dry-run")

    assert result.status == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == (
        f"would store the policy for {STAGE} as version 2 (over version 1); changes: composition, moderation"
    )
    assert any(line.startswith(f"the convergence pass would then: {STAGE}  composition: a publisher") for line in lines)
    assert f"  would call StartComposition (stageArn={STAGE}" in result.stdout
    assert lines[-1] == "dry run: nothing changed"
    assert ivs.mutating_calls() == [] and table_items() == before
    as_json = run("policy", "put", write(tmp_path, COMPOSING), "--expected-version", "1", "--dry-run", "--json").json()
    assert (as_json["dryRun"], as_json["change"], as_json["version"]) == (True, "put", 2)
    assert [c["operation"] for c in as_json["convergence"]["wouldCall"]] == ["StartComposition"]
    # A dry run is refused where the put would be: the version read is stale.
    stale = run("policy", "put", write(tmp_path, COMPOSING), "--expected-version", "0", "--dry-run")
    assert stale.status == 1 and "version" in stale.stderr and table_items() == before


def test_delete_and_rollback_dry_runs_change_nothing(ivs: IvsStandIn, tmp_path: Path) -> None:
    assert run("policy", "put", write(tmp_path, BLOCKING, "v1.json"), "--no-converge").status == 0
    assert run("policy", "put", write(tmp_path, COMPOSING), "--force", "--no-converge").status == 0
    ivs.observe(EventFactory().published("troll", user_id="troll-3"))
    before = table_items()

    rollback = run("policy", "rollback", STAGE, "--to", "1", "--dry-run")
    delete = run("policy", "delete", STAGE, "--dry-run", "--json")

    assert rollback.status == 0, rollback.stderr
    assert rollback.stdout.splitlines()[0] == (
        f"would roll back to version 1: store the policy for {STAGE} as version 3 (over version 2); "
        "changes: composition, moderation"
    )
    assert f"would call DisconnectParticipant (stageArn={STAGE}, participantId=troll" in rollback.stdout
    assert delete.status == 0, delete.stderr
    assert (delete.json()["change"], delete.json()["version"]) == ("delete", 2)
    assert ivs.mutating_calls() == [] and table_items() == before
    assert run("policy", "get", STAGE, "--json").json()["version"] == 2


def test_validate_refuses_a_policy_dynamodb_cannot_store(tmp_path: Path) -> None:
    """A 520 KB policy is refused by `policy validate`, naming DynamoDB's 400 KB limit, not only by `put`."""
    users = [f"user-{n:06d}-" + "x" * 100 for n in range(4_500)]
    big = write(tmp_path, {"stageArn": STAGE, "moderation": {"blockedUserIds": users}})
    assert 500_000 < Path(big).stat().st_size < 560_000

    result = run("policy", "validate", big)

    assert result.status == 2
    assert "DynamoDB stores items of at most 400 KB, so a policy may be at most 405,504 bytes" in result.stdout
    assert run("policy", "validate", write(tmp_path, BLOCKING, "small.json")).status == 0
