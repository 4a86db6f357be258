"""Shell completion is generated at build time (``make completion``, shtab) from the same parser the CLI
runs, and costs the CLI nothing at run time."""

from __future__ import annotations

import subprocess
import sys

import pytest
import shtab

from stagepilot.cli.main import build_parser
from tests.cli.conftest import run

COMMANDS = ["policy", "ban", "disconnect", "audit", "pause", "resume", "status", "explain", "dlq", "simulate"]


def test_bash_completion_knows_every_command_subcommand_and_global_option():
    script = shtab.complete(build_parser(), shell="bash")
    for word in [*COMMANDS, "validate", "redrive", "--output", "--query", "--profile", "--endpoint-url", "--yes"]:
        assert word in script, word


def test_file_arguments_complete_file_names():
    script = shtab.complete(build_parser(), shell="zsh")
    assert "--policies[JSON array of stage policies]:FILE:_files" in script


@pytest.mark.story
def test_the_cli_does_not_import_shtab():
    code = "import sys; from stagepilot.cli.main import build_parser; build_parser(); print('shtab' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


@pytest.mark.story
def test_completion_bash_is_a_script_bash_accepts_that_completes_commands(tmp_path):
    result = run("completion", "bash")

    assert result.status == 0, result.stderr
    script = tmp_path / "stagepilot.bash"
    script.write_text(result.stdout)
    subprocess.run(["bash", "-n", str(script)], check=True)
    probe = (
        f"source {script}; COMP_WORDS=(stagepilot pau); COMP_CWORD=1; COMP_LINE='stagepilot pau'; "
        'COMP_POINT=${#COMP_LINE}; _shtab_stagepilot; echo "${COMPREPLY[@]}"'
    )
    completed = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True)
    assert completed.stdout.split() == ["pause"]


def test_completion_zsh_and_fish():
    zsh = run("completion", "zsh")
    fish = run("completion", "fish")

    assert zsh.status == 0 and zsh.stdout.startswith("#compdef stagepilot")
    assert fish.status == 0, fish.stderr
    lines = fish.stdout.splitlines()
    assert (
        "complete -c stagepilot -n '__fish_use_subcommand' -a pause -d "
        + ("'the per-stage kill switch (pause list: every paused stage)'")
        in lines
    )
    assert any(
        line.startswith("complete -c stagepilot -n '__fish_seen_subcommand_from audit' -l since -x") for line in lines
    )
    assert any(
        "__fish_seen_subcommand_from policy; and __fish_seen_subcommand_from put' -F" in line for line in lines
    )  # FILE completes file names


def test_completion_of_another_shell_is_refused():
    result = run("completion", "powershell")

    assert result.status == 2
    assert "argument SHELL: invalid choice: 'powershell'" in result.stderr
