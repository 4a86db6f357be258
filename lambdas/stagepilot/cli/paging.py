"""``--max-items N`` / ``--starting-token T`` on listings that can be long, as the AWS CLI has them: a
listing cut at N says so on stderr with the token that goes on from there (docs/cli.md, "Lists that
are cut"). The token is the sort key of the last item shown, so items added or removed meanwhile do not
shift the next page."""

from __future__ import annotations

import argparse
import base64
import binascii
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final, TypeVar

if TYPE_CHECKING:
    from stagepilot.cli.output import Output

T = TypeVar("T")
MAX_TOKEN: Final = 2048
_MARK: Final = "sp1:"  # a token this module made (anything else is refused, not read as a position)


def paging_options() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--max-items", type=positive, metavar="N", help="show at most N (default: all)")
    parser.add_argument(
        "--starting-token", type=_token, metavar="TOKEN", help="go on where a cut listing stopped (its notice's token)"
    )
    return parser


def page(items: Sequence[T], key: Callable[[T], str], args: argparse.Namespace) -> tuple[list[T], str | None]:
    """The items (ordered by ``key``) after ``--starting-token``, at most ``--max-items``; and the token of
    the next page (None: nothing more)."""
    ordered = sorted(items, key=key)
    start = args.starting_token
    if start is not None:
        ordered = [item for item in ordered if key(item) > start]
    limit = args.max_items
    if limit is None or len(ordered) <= limit:
        return ordered, None
    shown = ordered[:limit]
    return shown, _encode(key(shown[-1]))


def say_more(out: Output, token: str | None, what: str) -> None:
    if token is not None:
        out.notice(f"more {what} than shown: add --starting-token {token} for the next ones")


def _encode(key: str) -> str:
    return base64.urlsafe_b64encode((_MARK + key).encode()).decode("ascii").rstrip("=")


def _token(text: str) -> str:
    try:
        if len(text) > MAX_TOKEN:
            raise ValueError(text)
        padded = text + "=" * (-len(text) % 4)
        decoded = base64.b64decode(padded.replace("-", "+").replace("_", "/").encode("ascii"), validate=True).decode()
        if not decoded.startswith(_MARK):
            raise ValueError(decoded)
    except (ValueError, UnicodeError, binascii.Error):
        raise argparse.ArgumentTypeError(f"not a token a cut listing printed: {text[:80]!r}") from None
    return decoded[len(_MARK) :]


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number ≥ 1, got {text[:80]!r}")
    return value
