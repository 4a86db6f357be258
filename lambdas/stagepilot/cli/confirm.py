"""``--yes``: destructive commands ask first on a terminal, and refuse without ``--yes`` elsewhere."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from stagepilot.cli.errors import BadInput, CliError


def yes_option() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument(
        "--yes", "-y", action="store_true", help="do it without asking (required when stdin is not a terminal)"
    )
    return parser


def confirm(args: argparse.Namespace, what: str, *, stdin: Any = None, stderr: Any = None) -> None:
    """Return when the operator agreed to ``what`` (``--yes``, or "y" typed on a terminal); raise otherwise."""
    if getattr(args, "yes", False):
        return
    stdin = stdin or sys.stdin
    stderr = stderr or sys.stderr
    if stdin is None or not stdin.isatty():
        raise BadInput(f"{what}: add --yes to confirm (not asking: stdin is not a terminal)")
    stderr.write(f"{what}. Continue? [y/N] ")
    stderr.flush()
    answer = stdin.readline()
    if answer.strip().lower() not in ("y", "yes"):
        raise CliError("not confirmed; nothing done")
