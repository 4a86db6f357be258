"""The one reader for every file the operator names (policies, bans, an event, a scenario).

Whatever the file holds, reading it either returns plain JSON data the rest of the code can trust or
raises ``BadInput`` (exit 2) with one line that names the file and the problem. Bounded: the size read,
the nesting depth, the length of numbers; and strictly UTF-8, with no lone surrogates (``"\\ud800"``),
which JSON allows but nothing downstream (botocore, DynamoDB, the terminal) can encode. An object that names
a key twice is refused (JSON parsers disagree on which one wins: ``"dryRun": true, "dryRun": false`` must not
kick for real). ``-`` is standard input, as in the AWS CLI.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any, Final

from stagepilot.cli.errors import BadInput

MAX_DOCUMENT_BYTES: Final = 1024 * 1024  # policies, bans, one event (a DynamoDB item is at most 400 KB)
MAX_LINES_BYTES: Final = 64 * 1024 * 1024  # a JSON Lines scenario
MAX_DEPTH: Final = 32  # DynamoDB's own nesting limit for a document attribute
MAX_NUMBER_CHARS: Final = 40  # DynamoDB numbers have at most 38 significant digits
STDIN: Final = "-"


class _Refused(ValueError):
    """A JSON value this reader does not accept; the message says why."""


def read_json_file(path: Path, *, max_bytes: int = MAX_DOCUMENT_BYTES) -> Any:
    """One JSON document from ``path``."""
    text = read_text_file(path, max_bytes=max_bytes)
    try:
        return parse_json(text)
    except json.JSONDecodeError as exc:
        raise BadInput(f"{path}: not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except _Refused as exc:
        raise BadInput(f"{path}: {exc}") from exc


def read_text_file(path: Path, *, max_bytes: int = MAX_LINES_BYTES) -> str:
    """The file's text: at most ``max_bytes``, UTF-8 (a byte-order mark is allowed), no NUL bytes."""
    try:
        if str(path) == STDIN:
            data = _stdin_bytes(max_bytes + 1)
        else:
            with path.open("rb") as stream:
                data = stream.read(max_bytes + 1)
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(data) > max_bytes:
        raise BadInput(f"{path}: larger than {_size(max_bytes)}; is it the right file?")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path}: not UTF-8 text (byte {exc.start}: {data[exc.start : exc.start + 1]!r})") from exc
    if "\x00" in text:
        raise BadInput(f"{path}: binary data (a NUL byte at character {text.index(chr(0))}); is it the right file?")
    return text


def _stdin_bytes(limit: int) -> bytes:
    """Up to ``limit`` bytes of standard input (``-``); a terminal is not waited on."""
    stream = sys.stdin
    if stream is None:
        raise BadInput("-: no standard input to read")
    if stream.isatty():
        raise BadInput("-: standard input is a terminal; pipe the file in (stagepilot ... - < file.json)")
    buffer = getattr(stream, "buffer", None)
    if buffer is not None:
        return bytes(buffer.read(limit))
    return str(stream.read(limit)).encode("utf-8", "surrogatepass")


def parse_json(text: str) -> Any:
    """JSON text as plain data, refusing what cannot be used downstream (raises ``json.JSONDecodeError`` or
    ``ValueError`` with the reason)."""
    try:
        value = json.loads(
            text, parse_int=_int, parse_float=_float, parse_constant=_constant, object_pairs_hook=_unique_keys
        )
    except RecursionError as exc:
        raise _Refused(f"nested more than {MAX_DEPTH} levels deep") from exc
    _check(value)
    return value


def _int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise _Refused(f"a number of {len(text)} characters ({text[:12]}...): at most {MAX_NUMBER_CHARS}")
    return int(text)


def _float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise _Refused(f"a number of {len(text)} characters ({text[:12]}...): at most {MAX_NUMBER_CHARS}")
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"the number {text} is out of range")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise _Refused(f"the key {key!r} is given twice in one object (which one counts is ambiguous)")
        seen.add(key)
    return dict(pairs)


def _constant(text: str) -> Any:
    raise _Refused(f"{text} is not a JSON value")


def _check(value: Any) -> None:
    """Depth and strings, iteratively (a deep document must not exhaust the stack here either)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_string(item)
        elif isinstance(item, dict | list):
            if depth >= MAX_DEPTH:
                raise _Refused(f"nested more than {MAX_DEPTH} levels deep")
            if isinstance(item, dict):
                for key, child in item.items():
                    _check_string(key)
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)


def _check_string(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _Refused(f"a string holds a lone surrogate (\\u{ord(text[exc.start]):04x}): not valid Unicode") from exc


def _size(count: int) -> str:
    return f"{count // (1024 * 1024)} MiB" if count >= 1024 * 1024 else f"{count // 1024} KiB"
