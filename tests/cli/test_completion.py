"""Shell completion is generated at build time (``make completion``, shtab) from the same parser the CLI
runs, and costs the CLI nothing at run time."""

from __future__ import annotations

import subprocess
import sys

import shtab

from stagepilot.cli.main import build_parser

COMMANDS = ["policy", "ban", "disconnect", "audit", "pause", "resume", "status", "explain", "dlq", "simulate"]


def test_bash_completion_knows_every_command_subcommand_and_global_option():
    script = shtab.complete(build_parser(), shell="bash")
    for word in [*COMMANDS, "validate", "redrive", "--output", "--query", "--profile", "--endpoint-url", "--yes"]:
        assert word in script, word


def test_file_arguments_complete_file_names():
    script = shtab.complete(build_parser(), shell="zsh")
    assert "--policies[JSON array of stage policies]:FILE:_files" in script


def test_the_cli_does_not_import_shtab():
    code = "import sys; from stagepilot.cli.main import build_parser; build_parser(); print('shtab' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
