"""``policy diff`` before storing, and ``policy export``/``import`` of every policy: an export then an
import restores exactly what was stored (issue 26, "safe changes")."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import run
from tests.support import CHANNEL, ENCODER, OTHER_STAGE, STAGE

COMPOSITION = {
    "destinations": [{"name": "live", "channel": {"channelArn": CHANNEL, "encoderConfigurationArn": ENCODER}}]
}
POLICIES = [
    {"stageArn": "default", "moderation": {"blockedUserIds": ["spammer-7"]}},
    {"stageArn": STAGE, "composition": COMPOSITION},
    {"stageArn": OTHER_STAGE, "paused": True},
]


def write(path: Path, document: object) -> str:
    path.write_text(json.dumps(document))
    return str(path)


def put(tmp_path: Path, document: dict) -> None:
    result = run("policy", "put", write(tmp_path / "put.json", document), "--force", "--no-converge")
    assert result.status == 0, result.stderr


def test_diff_shows_what_storing_the_file_would_change(aws: str, tmp_path: Path):
    put(tmp_path, {"stageArn": STAGE, "composition": COMPOSITION})
    edited = {"stageArn": STAGE, "composition": {**COMPOSITION, "maxRestarts": 5}}

    result = run("policy", "diff", write(tmp_path / "edited.json", edited))

    assert result.status == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == [f"--- {STAGE} stored (version 1)", f"+++ {STAGE} {tmp_path / 'edited.json'}"]
    assert [line for line in lines[2:] if line[:1] in "+-"] == ['-    "maxRestarts": 3,', '+    "maxRestarts": 5,']
    same = run("policy", "diff", write(tmp_path / "same.json", {"stageArn": STAGE, "composition": COMPOSITION}))
    assert same.stdout.strip() == f"no difference: {STAGE} stored (version 1) is {tmp_path / 'same.json'}"
    assert run("policy", "get", STAGE, "--json").json()["version"] == 1  # diff stores nothing


def test_diff_against_a_kept_version(aws: str, tmp_path: Path):
    put(tmp_path, {"stageArn": STAGE, "composition": COMPOSITION})
    put(tmp_path, {"stageArn": STAGE, "composition": COMPOSITION, "paused": True})

    result = run("policy", "diff", STAGE, "--version", "1", "--json").json()

    assert (result["from"], result["to"], result["differs"]) == ("version 1", "stored (version 2)", True)
    assert [line for line in result["diff"] if line[:1] in "+-" and line[:3] not in ("---", "+++")] == [
        '-  "paused": false,',
        '+  "paused": true,',
    ]
    assert run("policy", "diff", STAGE).status == 2  # a stage ARN needs --version
    missing = run("policy", "diff", STAGE, "--version", "9")
    assert missing.status == 1 and "version 9 of the policy for" in missing.stderr


def test_diff_of_a_new_policy_and_of_an_invalid_file(aws: str, tmp_path: Path):
    new = run("policy", "diff", write(tmp_path / "new.json", {"stageArn": STAGE}))
    invalid = run("policy", "diff", write(tmp_path / "bad.json", {"stageArn": STAGE, "paused": "yes"}))

    assert new.stdout.splitlines()[0] == f"--- {STAGE} nothing stored"
    assert invalid.status == 2
    assert invalid.stderr.splitlines()[-1] == f"error: {tmp_path / 'bad.json'}: invalid policy (1 problems)"


def test_export_then_import_restores_every_policy(aws: str, tmp_path: Path):
    for document in POLICIES:
        put(tmp_path, document)
    exported = run("policy", "export")
    assert exported.status == 0, exported.stderr
    assert exported.stderr == "# 3 policies exported\n"
    backup = tmp_path / "backup.json"
    backup.write_text(exported.stdout)
    assert [d["stageArn"] for d in json.loads(exported.stdout)] == ["default", OTHER_STAGE, STAGE]
    for document in POLICIES:
        assert run("policy", "delete", document["stageArn"]).status == 0
    put(tmp_path, {"stageArn": STAGE})  # changed since the backup

    planned = run("policy", "import", str(backup), "--dry-run")

    assert planned.status == 0, planned.stderr
    assert planned.stdout.splitlines() == [
        "would store default: new",
        f"would store {OTHER_STAGE}: new",
        f"would store {STAGE}: changed (over version 2)",
        "dry run: nothing stored",
    ]
    assert [p["stageArn"] for p in run("policy", "list", "--json").json()] == [STAGE]
    assert run("policy", "import", str(backup)).status == 2  # not on a terminal: --yes

    restored = run("policy", "import", str(backup), "--yes")

    assert restored.status == 0, restored.stderr
    assert restored.stdout.splitlines()[:3] == [
        "stored     default: new, version 2",  # a deleted policy's versions go on from its last
        f"stored     {OTHER_STAGE}: new, version 2",
        f"stored     {STAGE}: changed, version 3",
    ]
    assert run("policy", "export").stdout == exported.stdout  # round trip
    again = run("policy", "import", str(backup), "--yes")
    assert again.stdout.splitlines()[0] == "unchanged  default (version 2)"
    imports = [e for e in run("audit", "--action", "policy-put", "--json").json() if "imported" in e["reason"]]
    assert len(imports) == 3 and all(e["automation"] == "cli" for e in imports)


def test_import_refuses_an_invalid_file_and_stores_nothing(aws: str, tmp_path: Path):
    bad = write(tmp_path / "bad.json", [POLICIES[1], {"stageArn": OTHER_STAGE, "paused": "yes"}])
    twice = write(tmp_path / "twice.json", [POLICIES[1], POLICIES[1]])

    invalid = run("policy", "import", bad, "--yes")
    duplicated = run("policy", "import", twice, "--yes")

    assert invalid.status == 2 and invalid.stderr.splitlines()[-1].endswith(
        "invalid policies (1 problems); nothing stored"
    )
    assert duplicated.status == 2 and "is already the stageArn of [0]" in duplicated.stderr
    assert run("policy", "list", "--json").json() == []


def test_a_long_policy_list_is_cut_at_max_items_and_says_how_to_go_on(aws: str, tmp_path: Path):
    for document in POLICIES:
        put(tmp_path, document)

    first = run("policy", "list", "--max-items", "2", "--json")
    token = first.stderr.split("--starting-token ")[1].split()[0]
    rest = run("policy", "list", "--starting-token", token)

    assert [p["stageArn"] for p in first.json()] == ["default", OTHER_STAGE]
    assert first.stderr.startswith("more policies than shown: ")
    assert [line.split()[0] for line in rest.stdout.splitlines()] == [STAGE]
    assert rest.stderr == ""
