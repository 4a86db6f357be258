"""``policy put``, ``policy rollback`` and ``resume`` converge a live stage at once (issue 11), with the same
pass ``stagepilot reconcile`` runs; --no-converge leaves it to the scheduled pass, and IVS being unreachable
never undoes or fails the change that was stored."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from stagepilot.local.ivs import IvsStandIn
from tests.cli.conftest import run
from tests.support import CHANNEL, ENCODER, STAGE, EventFactory

POLICY = {
    "stageArn": STAGE,
    "composition": {
        "destinations": [{"name": "live", "channel": {"channelArn": CHANNEL, "encoderConfigurationArn": ENCODER}}]
    },
}


def policy_file(tmp_path: Path, document: dict) -> str:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(document))
    return str(path)


def live(ivs: IvsStandIn) -> None:
    ivs.observe(EventFactory().published("host", user_id="host-1"))  # IVS saw it; stagepilot did not


def starts(ivs: IvsStandIn) -> int:
    return sum(1 for c in ivs.mutating_calls() if c.operation == "StartComposition")


def test_policy_put_on_a_live_stage_composes_it_at_once(ivs: IvsStandIn, tmp_path: Path) -> None:
    live(ivs)

    result = run("policy", "put", policy_file(tmp_path, POLICY))

    assert result.status == 0, result.stderr
    assert "converged now: composition: " in result.stdout
    assert starts(ivs) == 1
    again = run("reconcile", STAGE)
    assert again.stdout.splitlines()[-1] == f"no drift: {STAGE} is as its policy says"
    assert starts(ivs) == 1


def test_policy_put_json_carries_what_was_converged(ivs: IvsStandIn, tmp_path: Path) -> None:
    live(ivs)

    document = run("policy", "put", policy_file(tmp_path, POLICY), "--json").json()

    assert document["version"] == 1
    assert document["converged"]["live"] is True
    assert [(d["automation"], d["done"]) for d in document["converged"]["done"]] == [("composition", True)]


def test_no_converge_leaves_it_to_the_scheduled_pass(ivs: IvsStandIn, tmp_path: Path) -> None:
    live(ivs)

    result = run("policy", "put", policy_file(tmp_path, POLICY), "--no-converge", "--json")

    assert result.status == 0
    assert "converged" not in result.json()
    assert starts(ivs) == 0


def test_a_stage_that_is_not_live_is_left_to_its_first_event(ivs: IvsStandIn, tmp_path: Path) -> None:
    ivs.create_stage(STAGE)

    result = run("policy", "put", policy_file(tmp_path, POLICY))

    assert result.status == 0
    assert f"{STAGE} is not live" in result.stdout
    assert ivs.mutating_calls() == []


def test_resume_converges_what_the_pause_held_back(ivs: IvsStandIn, tmp_path: Path) -> None:
    assert run("policy", "put", policy_file(tmp_path, POLICY)).status == 0
    ivs.create_stage(STAGE)  # created, not live yet: pause refuses a stage IVS does not know
    assert run("pause", STAGE).status == 0
    live(ivs)
    assert "composition: " not in run("reconcile", STAGE).stdout  # paused: nothing is done
    assert starts(ivs) == 0

    resumed = run("resume", STAGE)

    assert resumed.status == 0, resumed.stderr
    assert resumed.stdout.splitlines()[0] == f"resumed {STAGE}"
    assert "converged now: composition: " in resumed.stdout
    assert starts(ivs) == 1


def test_rollback_converges_too(ivs: IvsStandIn, tmp_path: Path) -> None:
    assert run("policy", "put", policy_file(tmp_path, POLICY)).status == 0
    assert run("policy", "put", policy_file(tmp_path, {"stageArn": STAGE}), "--force").status == 0
    live(ivs)

    result = run("policy", "rollback", STAGE, "--to", "1")

    assert result.status == 0, result.stderr
    assert "converged now: composition: " in result.stdout
    assert starts(ivs) == 1


def test_ivs_unreachable_stores_the_policy_and_says_the_pass_will_converge(ivs: IvsStandIn, tmp_path: Path) -> None:
    live(ivs)
    ivs.outage(datetime.now(UTC) - timedelta(seconds=1), 600)

    result = run("policy", "put", policy_file(tmp_path, POLICY))

    assert result.status == 0
    assert "stored policy for" in result.stdout
    assert result.stderr.startswith(f"warning: could not converge {STAGE} now (")
    assert "the convergence pass does it within reconcileMinutes" in result.stderr
    assert "Traceback" not in result.stderr
    assert run("policy", "get", STAGE).status == 0
