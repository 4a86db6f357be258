"""The AWS CLI's habits: global options before or after the command, --output json|table|text, --query,
--profile/--region/--endpoint-url, --yes for destructive commands."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest

from stagepilot.cli.confirm import confirm
from stagepilot.cli.errors import CliError
from stagepilot.cli.output import render_table, render_text
from tests.cli.conftest import run
from tests.support import STAGE


@pytest.fixture
def stored(aws: str, tmp_path: Path) -> str:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps({"stageArn": STAGE, "paused": True}))
    assert run("policy", "put", str(path)).status == 0
    return aws


@pytest.mark.parametrize(
    "argv",
    [
        ("--json", "policy", "list"),
        ("policy", "--json", "list"),
        ("policy", "list", "--json"),
        ("--output", "json", "policy", "list"),
        ("policy", "list", "--output", "json"),
    ],
)
def test_global_options_go_before_or_after_the_command(stored: str, argv: tuple[str, ...]):
    result = run(*argv)
    assert result.status == 0, result.stderr
    [row] = result.json()
    assert (row["stageArn"], row["paused"]) == (STAGE, True)


def test_an_option_after_the_command_wins_over_one_before(stored: str):
    assert run("--output", "text", "policy", "list", "--output", "json").stdout.startswith("[")


def test_query_picks_from_the_document_and_text_prints_it_tab_separated(stored: str):
    assert run("policy", "list", "--query", "[].stageArn").json() == [STAGE]
    text = run("--output", "text", "policy", "list", "--query", "[].[stageArn, version, paused]")
    assert text.stdout == f"{STAGE}\t1\tTrue\n"


def test_table_output_is_a_boxed_table_with_a_header(stored: str):
    lines = run(
        "policy", "list", "--output", "table", "--query", "[].{stage: stageArn, v: version}"
    ).stdout.splitlines()
    assert lines[1].split("|")[1:3] == [" stage" + " " * (len(STAGE) - 4), " v "]
    assert lines[3] == f"| {STAGE} | 1 |"
    assert lines[0] == lines[2] == lines[4] and set(lines[0]) == {"+", "-"}


def test_region_selects_where_the_stack_is_looked_up(stored: str):
    result = run("--region", "eu-west-1", "policy", "list")
    assert result.status == 1
    assert result.stderr.startswith("error: stack StagePilot not found in eu-west-1")


def test_endpoint_url_reaches_aws_like_the_environment_variable(stored: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    assert run("policy", "list").status == 1  # the real AWS is not reachable with test credentials
    result = run("policy", "list", "--endpoint-url", stored, "--json")
    assert result.status == 0, result.stderr
    assert [r["stageArn"] for r in result.json()] == [STAGE]


def test_profile_comes_from_the_config_file(stored: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    config = tmp_path / "config"
    config.write_text("[profile show]\nregion = eu-west-1\naws_access_key_id = a\naws_secret_access_key = b\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    result = run("--profile", "show", "policy", "list")
    assert result.stderr.startswith("error: stack StagePilot not found in eu-west-1")


def test_stack_defaults_to_stagepilot_stack_variable(stored: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("STAGEPILOT_STACK", "StagePilot-staging")
    result = run("ban", "list")
    assert result.status == 1 and result.stderr.startswith("error: stack StagePilot-staging not found")
    assert run("ban", "list", "--stack", "StagePilot").status == 0


def test_destructive_commands_want_yes_when_nobody_can_be_asked(stored: str):
    refused = run("pause", "--all")
    assert refused.status == 2
    assert refused.stderr == "error: pause every stage: add --yes to confirm (not asking: stdin is not a terminal)\n"
    assert run("pause", "--all", "--yes").status == 0


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("answer, agreed", [("y\n", True), ("YES\n", True), ("\n", False), ("n\n", False), ("", False)])
def test_on_a_terminal_the_operator_is_asked(answer: str, agreed: bool):
    prompt = io.StringIO()
    args = argparse.Namespace(yes=False)
    if agreed:
        confirm(args, "purge it", stdin=Terminal(answer), stderr=prompt)
    else:
        with pytest.raises(CliError, match="not confirmed"):
            confirm(args, "purge it", stdin=Terminal(answer), stderr=prompt)
    assert prompt.getvalue() == "purge it. Continue? [y/N] "


def test_text_rendering_of_nested_documents():
    document = {"stageArn": STAGE, "count": 2, "ok": None, "items": [{"id": "a", "n": 1}, {"id": "b\tc", "n": 2}]}
    assert render_text(document) == [f"{STAGE}\t2\tNone", "ITEMS\ta\t1", "ITEMS\tb c\t2"]
    assert render_text([]) == [] and render_text("x") == ["x"] and render_text([1, True]) == ["1\tTrue"]


def test_table_rendering_of_a_document_and_of_rows_with_different_keys():
    assert render_table({"a": 1, "b": [1, 2]}).splitlines()[3:5] == ["| a   | 1     |", "| b   | [1,2] |"]
    rows = render_table([{"a": 1}, {"b": "x"}]).splitlines()
    assert rows[1] == "| a | b |" and rows[3] == "| 1 |   |" and rows[4] == "|   | x |"


def test_output_yaml_prints_the_document_as_yaml(stored: str):
    import yaml

    result = run("policy", "list", "--output", "yaml")
    assert result.status == 0, result.stderr
    assert result.stdout.startswith(f"- stageArn: {STAGE}\n  version: 1\n")
    assert yaml.safe_load(result.stdout) == run("policy", "list", "--json").json()


def test_no_cli_pager_is_accepted_before_or_after_the_command(stored: str):
    assert (
        run("--no-cli-pager", "policy", "list", "--json").json()
        == run("policy", "list", "--no-cli-pager", "--json").json()
    )
