"""Where commands write, and in which form.

Commands hand ``Output`` either readable lines (``line``) or one JSON-able document (``json``). The
document is what ``--output json|table|text`` render, after ``--query`` (JMESPath, as in the AWS CLI)
has picked from it; without ``--output`` and ``--query``, commands print their readable lines instead.

Terminals that cannot show the timeline's symbols (▶ ✔ ✗ ↻ …) get plain ASCII stand-ins. Nothing is
coloured; control sequences (clearing the screen for ``status --watch``) go only to a terminal whose
``TERM`` is set and not ``dumb``, and never when ``NO_COLOR`` is set.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any, Final, TextIO

FORMATS: Final = ("json", "yaml", "table", "text")
# Symbols the readable output uses, and what a terminal that cannot encode them shows instead.
ASCII_FALLBACK: Final = {
    "▶": ">",
    "✔": "+",
    "✗": "x",
    "↻": "~",
    "·": "-",
    "→": "->",
    "—": "-",
    "–": "-",
    "≥": ">=",
    "≤": "<=",
    "×": "x",
    "…": "...",
    "‘": "'",
    "’": "'",
    "“": '"',
    "”": '"',
}
_TRANSLATION: Final = str.maketrans(ASCII_FALLBACK)
# Control characters from data (a user id, a policy key, an event) must not reach the terminal as such
# (escape sequences, line breaks that fake another line): shown as \xNN / \uNNNN instead. Newline stays.
# So are Unicode's bidirectional controls (a user id with U+202E shown right to left reads as another):
# the marks (U+061C, U+200E, U+200F), embeddings and overrides (U+202A-202E), isolates (U+2066-2069).
BIDI_CONTROLS: Final = (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
_CONTROLS: Final = {
    code: f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    for code in [*range(0x00, 0x20), *range(0x7F, 0xA0), 0x2028, 0x2029, *BIDI_CONTROLS]
    if code not in (0x09, 0x0A)
}


def screen_controls(stream: Any) -> bool:
    """Whether ``stream`` may get control sequences (clear the screen): a terminal that understands them."""
    if not bool(getattr(stream, "isatty", lambda: False)()):
        return False
    return os.environ.get("TERM", "") not in ("", "dumb") and "NO_COLOR" not in os.environ


def can_encode(stream: Any, sample: str = "".join(ASCII_FALLBACK)) -> bool:
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        sample.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def plain(text: str, stream: Any) -> str:
    """``text`` as ``stream`` can show it: symbols replaced by ASCII, anything else unencodable by ``?``."""
    if can_encode(stream, text):
        return text
    encoding = getattr(stream, "encoding", None) or "ascii"
    try:
        return text.translate(_TRANSLATION).encode(encoding, "replace").decode(encoding)
    except LookupError:
        return text.translate(_TRANSLATION).encode("ascii", "replace").decode("ascii")


class PlainStream:
    """Wraps a text stream that cannot encode every character (a non-UTF-8 terminal): writes what it can."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(plain(text, self._stream))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class Output:
    """Where commands write: one document rendered as ``--output`` says, or readable lines."""

    def __init__(
        self,
        as_json: bool = False,
        stdout: Any = None,
        stderr: Any = None,
        *,
        output_format: str | None = None,
        query: Any = None,
    ) -> None:
        self.format = output_format or ("json" if as_json or query is not None else None)
        self.query = query  # a compiled JMESPath expression, or None
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr

    @property
    def as_json(self) -> bool:
        """True when the command must hand over its document (``json``) instead of readable lines."""
        return self.format is not None

    def line(self, text: str = "") -> None:
        """One readable line (a line break in the data is shown as \\x0a, never as a second line)."""
        self._write(self.stdout, _one_line(text))

    def lines(self, text: str) -> None:
        """Text that is several lines on purpose (a JSON document the command formatted)."""
        self._write(self.stdout, text)

    def json(self, value: Any) -> None:
        value = self._picked(value)
        if self.format == "table":
            self._write(self.stdout, render_table(value))
        elif self.format == "yaml":
            self._write(self.stdout, render_yaml(value))
        elif self.format == "text":
            for row in render_text(value):
                self._write(self.stdout, row)
        else:
            indent = None if isinstance(value, dict) and len(value) < 3 else 2
            self._write(self.stdout, json.dumps(value, indent=indent, default=str, ensure_ascii=False))

    def json_line(self, value: Any) -> None:
        """One document of a stream (JSON Lines)."""
        value = self._picked(value)
        if self.format == "yaml":
            self._write(self.stdout, "---\n" + render_yaml(value))
        elif self.format in ("table", "text"):
            for row in render_text(value):
                self._write(self.stdout, row)
        else:
            self._write(self.stdout, json.dumps(value, default=str, separators=(",", ":"), ensure_ascii=False))

    def notice(self, text: str) -> None:
        """A line on stderr, whatever the output format (problems found in the input, lines skipped)."""
        self._write(self.stderr, _one_line(text))

    def warn(self, text: str) -> None:
        self._write(self.stderr, _one_line(f"warning: {text}"))

    def error(self, text: str) -> None:
        self._write(self.stderr, _one_line(f"error: {text}"))

    def progress(self, text: str) -> None:
        """A line on stderr for people watching; none with structured output."""
        if not self.as_json:
            self._write(self.stderr, _one_line(text))

    def _picked(self, value: Any) -> Any:
        if self.query is None:
            return value
        return self.query.search(json.loads(json.dumps(value, default=str)))

    @staticmethod
    def _write(stream: Any, text: str) -> None:
        stream.write(plain(text.translate(_CONTROLS), stream) + "\n")
        stream.flush()


class ProgressLine:
    """One line on stderr, rewritten in place on a terminal; nothing elsewhere (the summary says it)."""

    def __init__(self, out: Output, label: str) -> None:
        self._out = out
        self._label = label
        self._terminal = not out.as_json and screen_controls(out.stderr)
        self._shown = False

    def update(self, text: str) -> None:
        if self._terminal:
            self._out.stderr.write(plain(f"\r{self._label}: {text}", self._out.stderr))
            self._out.stderr.flush()
            self._shown = True

    def done(self) -> None:
        if self._shown:
            self._out.stderr.write("\n")
            self._out.stderr.flush()
            self._shown = False


def _one_line(text: str) -> str:
    return text.replace("\n", "\\x0a")


# --output yaml: the document as YAML (block style, keys in the document's order), as the AWS CLI prints it
def render_yaml(value: Any) -> str:
    import yaml  # PyYAML (pinned in requirements.txt): only --output yaml imports it

    plain_value = json.loads(json.dumps(value, default=str))  # what --output json would print, as data
    text: str = yaml.safe_dump(plain_value, sort_keys=False, allow_unicode=True, default_flow_style=False, width=1000)
    return text.rstrip("\n")


# --output text: tab-separated values, as the AWS CLI prints them ------------------------------------
def render_text(value: Any) -> list[str]:
    if _scalar(value):
        return [_cell(value)]
    if isinstance(value, list):
        if all(_scalar(v) for v in value):
            return ["\t".join(_cell(v) for v in value)] if value else []
        rows: list[str] = []
        for item in value:
            rows.extend(render_text(item))
        return rows
    scalars = [_cell(v) for v in value.values() if _scalar(v)]
    rows = ["\t".join(scalars)] if scalars else []
    for key, item in value.items():
        if not _scalar(item):
            nested = render_text(item)
            rows.extend(f"{key.upper()}\t{row}" for row in nested)
    return rows


# --output table: a boxed table of ASCII characters ---------------------------------------------------
def render_table(value: Any) -> str:
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        columns: list[str] = []
        for item in value:
            columns.extend(k for k in item if k not in columns)
        return _box(columns, [[_cell(item.get(c, "")) for c in columns] for item in value])
    if isinstance(value, dict):
        return _box(["key", "value"], [[str(k), _cell(v)] for k, v in value.items()])
    if isinstance(value, list):
        return _box(["value"], [[_cell(v)] for v in value])
    return _box(["value"], [[_cell(value)]])


def _box(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(columns)]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def row(cells: Sequence[str]) -> str:
        return "|" + "|".join(f" {cell:<{width}} " for cell, width in zip(cells, widths, strict=True)) + "|"

    return "\n".join([rule, row(columns), rule, *(row(r) for r in rows), rule])


def _scalar(value: Any) -> bool:
    return not isinstance(value, dict | list)


def _cell(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, default=str, separators=(",", ":"), ensure_ascii=False)
    if value is None:
        return "None"
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value).replace("\t", " ").replace("\n", " ")
