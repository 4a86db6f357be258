"""``stagepilot policy ...`` and the CLI's conventions, over real HTTP against moto in server mode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from stagepilot.local.ivs import IvsStandIn
from tests.cli.conftest import TABLE, run
from tests.support import CHANNEL, ENCODER, OTHER_STAGE, STAGE, STORAGE

EXAMPLES = Path(__file__).parents[2] / "examples"
POLICY = {
    "stageArn": STAGE,
    "composition": {
        "destinations": [{"name": "live", "channel": {"channelArn": CHANNEL, "encoderConfigurationArn": ENCODER}}]
    },
}


def write(tmp_path: Path, document: Any, name: str = "policy.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return path


def test_validate_accepts_the_example_policies():
    result = run("policy", "validate", str(EXAMPLES / "policies.json"))
    assert result.status == 0, result.stderr
    assert "valid (2 policies)" in result.stdout


def test_validate_prints_every_problem_by_field_and_exits_2(tmp_path: Path):
    bad = {
        "stageArn": STAGE,
        "paused": "no",
        "composition": {
            "destinations": [
                {
                    "name": "live",
                    "channel": {
                        "channelArn": "arn:aws:ivs:us-east-1:123456789012:stage/x",
                        "encoderConfigurationArn": ENCODER,
                    },
                }
            ],
            "maxRestarts": 99,
        },
        "moderation": {"reason": "x" * 129},
    }
    result = run("policy", "validate", str(write(tmp_path, bad)))

    assert result.status == 2
    lines = result.stdout.splitlines()
    for field in (
        "paused",
        "composition.destinations[0].channel.channelArn",
        "composition.maxRestarts",
        "moderation.reason",
    ):
        assert any(f": {field}: " in line for line in lines), (field, lines)


def test_validate_json_output(tmp_path: Path):
    result = run("policy", "validate", "--json", str(write(tmp_path, {"stageArn": "nope"})))
    assert result.status == 2
    report = result.json()
    assert report["valid"] is False and report["problems"][0].startswith("stageArn: ")


def test_validate_warns_about_replication_cycles(tmp_path: Path):
    cycle = [
        {"stageArn": STAGE, "replication": [{"destinationStageArn": OTHER_STAGE}]},
        {"stageArn": OTHER_STAGE, "replication": [{"destinationStageArn": STAGE}]},
    ]
    result = run("policy", "validate", str(write(tmp_path, cycle)))
    assert result.status == 0
    assert "replication cycle" in result.stderr


@pytest.mark.parametrize("content, message", [("{not json", "not JSON"), (None, "cannot read")])
def test_unreadable_policy_file_is_one_line_and_exit_2(tmp_path: Path, content: str | None, message: str):
    path = tmp_path / "p.json"
    if content is not None:
        path.write_text(content)
    result = run("policy", "validate", str(path))
    assert result.status == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_put_get_list_delete_round_trip(aws: str, tmp_path: Path):
    path = write(tmp_path, POLICY)
    put = run("policy", "put", str(path))
    assert put.status == 0, put.stderr
    assert put.stdout.strip() == f"stored policy for {STAGE} (version 1)"

    got = run("policy", "get", STAGE, "--json").json()
    assert got["version"] == 1 and got["policy"]["composition"]["destinations"] == POLICY["composition"]["destinations"]

    edited = write(tmp_path, {**POLICY, "paused": True}, "edited.json")
    assert run("policy", "put", str(edited), "--expected-version", "1").stdout.strip().endswith("(version 2)")
    listed = run("policy", "list", "--json").json()
    assert [(p["stageArn"], p["version"], p["sections"]) for p in listed] == [(STAGE, 2, ["composition"])]

    assert run("policy", "delete", STAGE, "--expected-version", "2").status == 0
    missing = run("policy", "get", STAGE)
    assert missing.status == 1 and missing.stderr.strip() == f"error: no policy stored for {STAGE}"


def test_get_prints_exactly_what_put_takes(aws: str, tmp_path: Path):
    assert run("policy", "put", str(write(tmp_path, POLICY))).status == 0

    got = run("policy", "get", STAGE)

    assert got.status == 0
    assert json.loads(got.stdout)["stageArn"] == STAGE  # stdout is the document alone: valid JSON, no comment
    assert got.stderr.startswith("# version 1, updated ") and "by arn:aws:" in got.stderr
    copy = tmp_path / "copy.json"
    copy.write_text(got.stdout)
    assert run("policy", "validate", str(copy)).status == 0
    same = run("policy", "put", str(copy), "--expected-version", "1")
    assert same.status == 0
    assert same.stdout.strip() == f"policy for {STAGE} is already this document (version 1); unchanged"
    assert run("policy", "get", STAGE, "--json").json()["version"] == 1  # no new version for nothing


def test_two_operators_get_edit_put_and_the_second_is_refused(aws: str, tmp_path: Path):
    assert run("policy", "put", str(write(tmp_path, POLICY))).status == 0
    # Both read version 1 and edit their own copy.
    alice, bob = run("policy", "get", STAGE), run("policy", "get", STAGE)
    version = alice.stderr.split()[2].rstrip(",")
    assert version == bob.stderr.split()[2].rstrip(",") == "1"
    alice_file = write(tmp_path, {**json.loads(alice.stdout), "paused": True}, "alice.json")
    bob_doc = json.loads(bob.stdout)
    bob_doc["composition"]["maxRestarts"] = 1
    bob_file = write(tmp_path, bob_doc, "bob.json")

    first = run("policy", "put", str(alice_file), "--expected-version", version)
    second = run("policy", "put", str(bob_file), "--expected-version", version)

    assert first.status == 0, first.stderr
    assert second.status == 1
    assert second.stderr.strip() == (
        f"error: policy for {STAGE} changed since version 1 was read; get it again, re-apply your change, and put it"
    )
    stored = run("policy", "get", STAGE, "--json").json()
    assert stored["version"] == 2 and stored["policy"]["paused"] is True  # Alice's change, not lost
    assert stored["policy"]["composition"].get("maxRestarts", 3) == 3  # Bob's was refused, not applied


def test_put_over_a_stored_policy_needs_the_version_read_or_force(aws: str, tmp_path: Path):
    assert run("policy", "put", str(write(tmp_path, POLICY))).status == 0
    edited = write(tmp_path, {**POLICY, "paused": True}, "edited.json")

    blind = run("policy", "put", str(edited))

    assert blind.status == 1
    assert blind.stderr.strip() == (
        f"error: a policy is stored for {STAGE} (version 1): pass --expected-version N with the version you read "
        "(policy get prints it) so a change made since is not lost, or --force to overwrite it"
    )
    assert run("policy", "get", STAGE, "--json").json()["version"] == 1
    forced = run("policy", "put", str(edited), "--force")
    assert forced.status == 0 and forced.stdout.strip().endswith("(version 2)")
    assert run("policy", "put", str(edited), "--force", "--expected-version", "2").status == 2  # one or the other


def test_delete_with_a_stale_version_deletes_nothing(aws: str, tmp_path: Path):
    assert run("policy", "put", str(write(tmp_path, POLICY))).status == 0

    stale = run("policy", "delete", STAGE, "--expected-version", "7")

    assert stale.status == 1
    assert stale.stderr.strip() == f"error: policy for {STAGE} changed since version 7 was read; nothing deleted"
    assert run("policy", "get", STAGE, "--json").json()["version"] == 1
    assert run("policy", "delete", STAGE, "--expected-version", "-1").status == 2


def test_every_change_is_audited_with_the_caller_and_the_previous_version(aws: str, tmp_path: Path):
    assert run("policy", "put", str(write(tmp_path, POLICY))).status == 0
    assert run("policy", "put", str(write(tmp_path, {**POLICY, "paused": True})), "--expected-version", "1").status == 0
    assert run("policy", "delete", STAGE).status == 0

    trail = run("audit", STAGE, "--json").json()

    caller = boto3.client("sts").get_caller_identity()["Arn"]
    assert [(e["action"], e["details"].get("previousVersion"), e["details"].get("version")) for e in trail] == [
        ("policy-delete", 2, None),
        ("policy-put", 1, 2),
        ("policy-put", None, 1),
    ]
    assert {e["details"]["by"] for e in trail} == {caller} and {e["automation"] for e in trail} == {"cli"}


def test_history_and_rollback(aws: str, tmp_path: Path):
    documents = [{**POLICY, "composition": {**POLICY["composition"], "maxRestarts": n}} for n in range(3)]
    assert run("policy", "put", str(write(tmp_path, documents[0]))).status == 0
    for version, document in enumerate(documents[1:], start=1):
        assert run("policy", "put", str(write(tmp_path, document)), "--expected-version", str(version)).status == 0

    history = run("policy", "history", STAGE, "--json").json()
    assert [(h["version"], h["policy"]["composition"]["maxRestarts"]) for h in history] == [(3, 2), (2, 1), (1, 0)]
    assert all(h["updatedBy"].startswith("arn:aws:") for h in history)

    rolled = run("policy", "rollback", STAGE, "--to", "1")
    assert rolled.status == 0, rolled.stderr
    assert rolled.stdout.strip() == f"rolled the policy for {STAGE} back to version 1: stored as version 4"
    stored = run("policy", "get", STAGE, "--json").json()
    assert (stored["version"], stored["policy"]["composition"]["maxRestarts"]) == (4, 0)
    assert run("audit", STAGE, "--json").json()[0]["action"] == "policy-rollback"

    gone = run("policy", "rollback", STAGE, "--to", "9")
    assert gone.status == 1 and "version 9 of the policy" in gone.stderr


def test_rollback_restores_a_deleted_policy_and_versions_keep_counting(aws: str, tmp_path: Path):
    assert run("policy", "put", str(write(tmp_path, POLICY))).status == 0
    assert run("policy", "delete", STAGE).status == 0

    assert run("policy", "rollback", STAGE, "--to", "1").status == 0

    assert run("policy", "get", STAGE, "--json").json()["version"] == 2  # never a second "version 1"
    assert [h["version"] for h in run("policy", "history", STAGE, "--json").json()] == [2, 1]


@pytest.mark.story
def test_history_keeps_the_last_20_versions(aws: str, tmp_path: Path):
    path = write(tmp_path, POLICY)
    assert run("policy", "put", str(path)).status == 0
    for version in range(1, 23):
        document = {**POLICY, "composition": {**POLICY["composition"], "maxRestarts": version % 10}}
        path.write_text(json.dumps({**document, "paused": version % 2 == 0}))
        assert run("policy", "put", str(path), "--expected-version", str(version)).status == 0

    kept = [h["version"] for h in run("policy", "history", STAGE, "--json").json()]

    assert kept == list(range(23, 3, -1))
    assert run("policy", "rollback", STAGE, "--to", "3").status == 1  # dropped


def test_explicit_table_and_missing_stack(aws: str, tmp_path: Path):
    assert run("policy", "list", "--table", TABLE).status == 0
    result = run("policy", "list", "--stack", "NoSuchStack")
    assert result.status == 1
    assert result.stderr.startswith("error: stack NoSuchStack not found in us-east-1")


def test_malformed_arn_is_bad_input(aws: str):
    result = run("policy", "get", "arn:aws:ivs:us-east-1:123456789012:channel/AbCd")
    assert result.status == 2 and "not a stage ARN" in result.stderr


def test_no_credentials_is_one_line_exit_1(aws: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    result = run("policy", "list")
    assert result.status == 1
    assert result.stderr.strip() == (
        "error: no AWS credentials found (hint: set AWS_PROFILE or --profile, or "
        "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY; `aws sso login`)"
    )


def test_bad_usage_exits_2_with_one_line():
    missing = run("policy")
    assert missing.status == 2
    assert missing.stderr == "error: the following arguments are required: COMMAND (see: stagepilot policy --help)\n"
    assert run("policy", "put").status == 2


@pytest.mark.story
def test_console_script_in_an_operator_shell(aws: str, tmp_path: Path):
    """The installed ``stagepilot`` command, in its own process, reaching AWS by endpoint URL."""
    path = write(tmp_path, POLICY)
    script = Path(sys.executable).parent / "stagepilot"
    env = dict(os.environ)
    put = subprocess.run([str(script), "policy", "put", str(path)], env=env, capture_output=True, text=True, timeout=60)
    assert put.returncode == 0, put.stderr
    listed = subprocess.run(
        [str(script), "policy", "list", "--json"], env=env, capture_output=True, text=True, timeout=60
    )
    assert json.loads(listed.stdout)[0]["stageArn"] == STAGE
    helped = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and "simulate" in helped.stdout


RECORDING = {"storageConfigurationArn": STORAGE, "recordingReconnectWindowSeconds": 30}


def test_put_applies_the_recording_settings_once_stored(ivs: IvsStandIn, tmp_path: Path):
    ivs.create_stage(STAGE)
    path = write(tmp_path, {"stageArn": STAGE, "stage": {"participantRecording": RECORDING}})

    checked = run("policy", "put", str(path), "--check")
    assert checked.status == 0, checked.stderr
    assert "≠ recordingReconnectWindowSeconds: stage 0  policy 30" in checked.stdout
    assert checked.stdout.splitlines()[-1] == "nothing stored (--check)"
    assert ivs.mutating_calls() == [] and run("policy", "list", "--json").json() == []

    stored = run("policy", "put", str(path))
    assert stored.status == 0, stored.stderr
    assert stored.stdout.splitlines()[:2] == [
        f"stored policy for {STAGE} (version 1)",
        "converged now: stage: the stage's recording settings differ from the policy in "
        "recordingReconnectWindowSeconds, storageConfigurationArn",
    ]
    [update] = ivs.mutating_calls()
    assert update.operation == "UpdateStage"
    assert update.params["autoParticipantRecordingConfiguration"]["recordingReconnectWindowSeconds"] == 30
    again = run("policy", "put", str(path), "--check")
    assert again.stdout.splitlines()[-2] == "the stage matches"


def test_recording_settings_ivs_refuses_are_stored_reported_and_exit_1(ivs: IvsStandIn, tmp_path: Path):
    """The policy is stored first (nothing reaches IVS before the version check), so a refusal cannot
    undo the store: put says the policy is stored, why IVS refused, and exits 1."""
    ivs.create_stage(STAGE)
    ivs.missing(STORAGE)  # the storage configuration was deleted
    path = write(tmp_path, {"stageArn": STAGE, "stage": {"participantRecording": RECORDING}})

    result = run("policy", "put", str(path))

    assert result.status == 1
    [warning] = [line for line in result.stderr.splitlines() if "refused" in line]
    assert "the policy is stored, but the stage's recording settings differ" in warning
    assert "IVS refused them with nobody recorded" in warning and "ValidationException" in warning
    assert [p["version"] for p in run("policy", "list", "--json").json()] == [1]
    assert ivs.mutating_calls() == []


def test_a_losing_put_leaves_the_stage_untouched(ivs: IvsStandIn, tmp_path: Path):
    """Two operators read version 1; the second to store loses the version check, and IVS never saw its
    settings (today's code applied them first, then failed)."""
    ivs.create_stage(STAGE)
    first = run(
        "policy", "put", str(write(tmp_path, {"stageArn": STAGE, "stage": {"participantRecording": RECORDING}}))
    )
    assert first.status == 0, first.stderr
    mine = {"stageArn": STAGE, "stage": {"participantRecording": {**RECORDING, "mediaTypes": ["AUDIO_ONLY"]}}}
    theirs = {
        "stageArn": STAGE,
        "stage": {"participantRecording": {**RECORDING, "recordingReconnectWindowSeconds": 60}},
    }
    won = run("policy", "put", str(write(tmp_path, theirs, "theirs.json")), "--expected-version", "1")
    assert won.status == 0, won.stderr
    calls_before = len(ivs.mutating_calls())

    lost = run("policy", "put", str(write(tmp_path, mine, "mine.json")), "--expected-version", "1")

    assert lost.status == 1
    assert len(ivs.mutating_calls()) == calls_before
    settings = ivs.stage(STAGE).recording  # type: ignore[union-attr]
    assert (settings["mediaTypes"], settings["recordingReconnectWindowSeconds"]) == (["AUDIO_VIDEO"], 60)
    assert run("policy", "get", STAGE).json()["stage"] == theirs["stage"]


def test_a_put_while_the_stage_records_stores_the_policy_and_says_when_it_applies(ivs: IvsStandIn, tmp_path: Path):
    ivs.create_stage(STAGE)
    assert (
        run(
            "policy", "put", str(write(tmp_path, {"stageArn": STAGE, "stage": {"participantRecording": RECORDING}}))
        ).status
        == 0
    )
    ivs.observe(_published("host"))  # the stage records its publisher
    changed = {"stageArn": STAGE, "stage": {"participantRecording": {**RECORDING, "mediaTypes": ["AUDIO_ONLY"]}}}

    checked = run("policy", "put", str(write(tmp_path, changed, "changed.json")), "--check")
    assert "IVS is recording 1 participant(s) and takes no new settings meanwhile" in checked.stdout

    result = run("policy", "put", str(write(tmp_path, changed, "changed.json")), "--expected-version", "1")

    assert result.status == 0, result.stderr
    [pending] = [line for line in result.stdout.splitlines() if line.startswith("pending: ")]
    assert "differ from the policy in mediaTypes" in pending
    assert "applied by the first convergence pass that finds nobody recorded" in pending
    assert [c.operation for c in ivs.mutating_calls()] == ["UpdateStage"]  # the first put's only
    as_json = run("policy", "put", str(write(tmp_path, changed, "changed.json")), "--expected-version", "2", "--json")
    assert as_json.status == 0  # unchanged: already stored


def _published(participant_id: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": f"published-{participant_id}",
        "detail-type": "IVS Stage Update",
        "source": "aws.ivs",
        "account": STAGE.split(":")[4],
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": STAGE.split(":")[3],
        "resources": [STAGE],
        "detail": {
            "session_id": "st-MainSession01",
            "event_name": "Participant Published",
            "user_id": "",
            "participant_id": participant_id,
        },
    }


def test_ivs_down_while_applying_recording_settings_stores_nothing_and_says_why(ivs: IvsStandIn, tmp_path: Path):
    ivs.create_stage(STAGE)
    ivs.outage(datetime.now(UTC) - timedelta(seconds=1), 600)
    path = write(tmp_path, {"stageArn": STAGE, "stage": {"participantRecording": RECORDING}})

    result = run("policy", "put", str(path))

    assert result.status != 0
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ") and "GetStage" in line
    assert "Traceback" not in result.stderr
    assert run("policy", "list", "--json").json() == []
