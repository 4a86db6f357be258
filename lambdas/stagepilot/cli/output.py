"""Where commands write: JSON documents with ``--json``, readable lines otherwise."""

from __future__ import annotations

import json
import sys
from typing import Any


class Output:
    """Where commands write: JSON documents with ``--json``, readable lines otherwise."""

    def __init__(self, as_json: bool, stdout: Any = None, stderr: Any = None) -> None:
        self.as_json = as_json
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr

    def line(self, text: str = "") -> None:
        print(text, file=self.stdout)

    def json(self, value: Any) -> None:
        print(
            json.dumps(value, indent=None if isinstance(value, dict) and len(value) < 3 else 2, default=str),
            file=self.stdout,
        )

    def json_line(self, value: Any) -> None:
        print(json.dumps(value, default=str, separators=(",", ":")), file=self.stdout)

    def warn(self, text: str) -> None:
        print(f"warning: {text}", file=self.stderr)

    def progress(self, text: str) -> None:
        if not self.as_json:
            print(text, file=self.stderr)
