"""The one reader for every file the operator names (policies, bans, events, scenarios)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stagepilot.cli.errors import BadInput


def read_json_file(path: Path) -> Any:
    """A JSON file the user named; unreadable or not JSON is bad input (exit 2), said in one line."""
    text = read_text_file(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(f"{path}: not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc


def read_text_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror}") from exc
