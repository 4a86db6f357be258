"""The kill switch you can trust during a show (issue 26): ``pause`` refuses a stage IVS does not know
(a typo'd ARN, another region's or account's) instead of printing "paused" while the real stage runs on;
``pause list``; ``resume --all`` names the switches it lifts (``--since``: only the incident's);
``--dry-run`` says what would change and what convergence would then do, and changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import boto3

from stagepilot.adapters.table import PauseSwitches, Table
from stagepilot.local.ivs import IvsStandIn
from tests.cli.conftest import TABLE, run
from tests.support import CHANNEL, ENCODER, OTHER_STAGE, STAGE, EventFactory

POLICY = {
    "stageArn": STAGE,
    "composition": {
        "destinations": [{"name": "live", "channel": {"channelArn": CHANNEL, "encoderConfigurationArn": ENCODER}}]
    },
}
TYPO = STAGE[:-1] + "2"  # one character off: a stage IVS does not have


def switches() -> dict:
    return PauseSwitches(Table(boto3.client("dynamodb"), TABLE)).list()


def test_pause_refuses_a_stage_ivs_does_not_know(ivs: IvsStandIn):
    ivs.create_stage(STAGE)

    result = run("pause", TYPO)

    assert result.status == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: IVS has no stage {TYPO} in us-east-1: a typo? nothing paused")
    assert len(result.stderr.splitlines()) == 1
    assert switches() == {}


def test_pause_force_presets_a_stage_not_created_yet(ivs: IvsStandIn):
    result = run("pause", TYPO, "--force")

    assert result.status == 0, result.stderr
    assert result.stdout.strip() == f"paused {TYPO}"
    assert list(switches()) == [TYPO]


def test_pause_refuses_another_regions_stage_before_any_call(ivs: IvsStandIn):
    elsewhere = STAGE.replace("us-east-1", "eu-west-1")
    ivs.create_stage(elsewhere)

    result = run("pause", elsewhere, "--force")

    assert result.status == 2
    assert result.stderr.strip() == (
        f"error: stage {elsewhere} is in eu-west-1; this command acts in us-east-1, the stack's region "
        "(--region eu-west-1 for a stack deployed there)"
    )
    assert switches() == {}


def test_pause_refuses_another_accounts_stage(ivs: IvsStandIn):
    theirs = STAGE.replace("123456789012", "210987654321")

    result = run("pause", theirs, "--force")

    assert result.status == 2 and result.stdout == ""
    [line] = result.stderr.splitlines()  # one line, never a traceback (docs/cli.md)
    assert line.startswith("error: ") and "belongs to account 210987654321; you act in account 123456789012" in line
    assert switches() == {}


def test_pause_list_shows_every_switch_and_every_policy_that_pauses(ivs: IvsStandIn, tmp_path: Path):
    assert run("pause", "list").stdout.splitlines()[0] == "nothing is paused"
    ivs.create_stage(STAGE)
    (tmp_path / "p.json").write_text(json.dumps({"stageArn": OTHER_STAGE, "paused": True}))
    assert run("policy", "put", str(tmp_path / "p.json"), "--no-converge").status == 0
    assert run("pause", STAGE).status == 0
    assert run("pause", "default").status == 0

    listed = run("pause", "list")
    document = run("pause", "list", "--json").json()

    assert listed.status == 0
    lines = listed.stdout.splitlines()
    assert lines[0].startswith("default  paused at ") and lines[0].endswith("(every stage without a policy of its own)")
    assert lines[1].startswith(f"{STAGE}  paused at ") and " by arn:aws:" in lines[1]
    assert lines[2].startswith(f"{OTHER_STAGE}  its policy says paused: true (version 1,")
    assert [(d["stageArn"], d["pausedBy"]) for d in document] == [
        ("default", "pause"),
        (STAGE, "pause"),
        (OTHER_STAGE, "policy"),
    ]


def test_resume_all_names_the_switches_it_lifts_and_since_keeps_older_ones(ivs: IvsStandIn):
    ivs.create_stage(STAGE)
    ivs.create_stage(OTHER_STAGE)
    table = Table(boto3.client("dynamodb"), TABLE)
    table.put({"pk": "PAUSE", "sk": OTHER_STAGE, "pausedAt": "2026-01-01T00:00:00Z", "pausedBy": "arn:bob"})
    assert run("pause", STAGE).status == 0  # the incident's

    since = run("resume", "--all", "--since", "1h", "--yes")

    assert since.status == 0, since.stderr
    [line] = since.stdout.splitlines()
    assert line.startswith(f"resumed {STAGE} (paused at ") and line.endswith(" by arn:aws:sts::123456789012:user/moto)")
    assert f"lifts: {STAGE} (paused at " in since.stderr
    assert list(switches()) == [OTHER_STAGE]  # paused before the incident: still paused

    every = run("resume", "--all", "--yes")

    assert every.stdout.strip() == f"resumed {OTHER_STAGE} (paused at 2026-01-01T00:00:00Z by arn:bob)"
    assert switches() == {}


def test_resume_since_needs_all(ivs: IvsStandIn):
    result = run("resume", STAGE, "--since", "1h")

    assert result.status == 2
    assert result.stderr.strip() == "error: --since goes with --all (one stage: stagepilot resume STAGE_ARN)"


def test_pause_dry_run_changes_nothing(ivs: IvsStandIn):
    ivs.create_stage(STAGE)

    result = run("pause", STAGE, "--dry-run")

    assert result.status == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"would pause {STAGE}",
        "the convergence pass would do nothing on a paused stage: no automation acts on it while it is paused "
        "(bans included)",
        "dry run: nothing changed",
    ]
    assert switches() == {}
    assert run("audit", "--json").json() == []


def test_resume_dry_run_shows_what_convergence_would_do_and_does_nothing(ivs: IvsStandIn, tmp_path: Path):
    (tmp_path / "p.json").write_text(json.dumps(POLICY))
    assert run("policy", "put", str(tmp_path / "p.json")).status == 0
    ivs.create_stage(STAGE)
    assert run("pause", STAGE).status == 0
    ivs.observe(EventFactory().published("host", user_id="host-1"))  # live; paused, so nothing composes it
    before = list(ivs.mutating_calls())

    result = run("resume", STAGE, "--dry-run")
    document = run("resume", STAGE, "--dry-run", "--json").json()

    assert result.status == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"would resume {STAGE} (paused at ")
    assert any(line.startswith(f"the convergence pass would then: {STAGE}  composition: ") for line in lines)
    assert any(line.startswith("  would call StartComposition (") for line in lines)
    assert lines[-1] == "dry run: nothing changed"
    assert [c["operation"] for c in document["convergence"]["wouldCall"]] == ["StartComposition"]
    assert document["changes"] == [{"stageArn": STAGE, "wouldChange": True, "message": lines[0]}]
    assert list(ivs.mutating_calls()) == before  # nothing started
    assert list(switches()) == [STAGE]  # still paused
    assert [e["action"] for e in run("audit", "--json").json()] == ["pause", "policy-put"]


def test_policy_put_refuses_another_accounts_stage(ivs: IvsStandIn, tmp_path: Path):
    theirs = STAGE.replace("123456789012", "210987654321")
    (tmp_path / "p.json").write_text(json.dumps({"stageArn": theirs}))

    result = run("policy", "put", str(tmp_path / "p.json"))

    assert result.status == 2
    assert result.stderr.strip() == (
        f"error: stageArn {theirs} belongs to account 210987654321; you act in account 123456789012 "
        "(use that account's credentials, --profile)"
    )
    assert run("policy", "list", "--json").json() == []


def test_a_long_pause_list_is_cut_at_max_items(ivs: IvsStandIn):
    for stage in (STAGE, OTHER_STAGE):
        assert run("pause", stage, "--force").status == 0
    assert run("pause", "default").status == 0

    first = run("pause", "list", "--max-items", "2")
    token = first.stderr.split("--starting-token ")[1].split()[0]
    rest = run("pause", "list", "--starting-token", token, "--json")

    assert [line.split()[0] for line in first.stdout.splitlines()] == ["default", OTHER_STAGE]
    assert first.stderr.startswith("more paused stages than shown: ")
    assert [r["stageArn"] for r in rest.json()] == [STAGE] and rest.stderr == ""
    assert run("pause", STAGE, "--max-items", "2").status == 2


def test_resume_all_dry_run_names_every_switch_and_lifts_none(ivs: IvsStandIn):
    ivs.create_stage(STAGE)
    assert run("pause", STAGE).status == 0
    assert run("pause", "default").status == 0

    result = run("resume", "--all", "--dry-run")  # no --yes: nothing is lifted

    assert result.status == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("would resume default (paused at ")
    assert lines[1].startswith(f"would resume {STAGE} (paused at ")
    assert lines[-1] == "dry run: nothing changed"
    assert sorted(switches()) == sorted(["default", STAGE])
    paused_all = run("pause", "--all", "--dry-run")
    assert paused_all.status == 0 and paused_all.stdout.splitlines()[0] == "default is already paused"
