"""The command line of every ``python -m benchmarks.NAME``: an argparse parser that says what the benchmark
measures (its module docstring's first sentence), and the type of the counts they take (runs, stages,
events), so that ``--help`` prints the usage and exits 0 and a bad value is argparse's one-line error
(exit 2), never a traceback nor a benchmark started on arguments it does not take."""

from __future__ import annotations

import argparse
import re


def parser(module: str, doc: str | None, *, more: str = "") -> argparse.ArgumentParser:
    """The parser of ``python -m MODULE``: described by ``doc``'s first sentence, then ``more`` (what it
    writes or reads, how long it runs)."""
    description = " ".join(part for part in (first_sentence(doc), more) if part)
    return argparse.ArgumentParser(prog=f"python -m {module}", description=description)


def first_sentence(doc: str | None) -> str:
    """The first sentence of a docstring's first paragraph, on one line, reStructuredText's ``x`` as `x`."""
    paragraph = " ".join((doc or "").strip().split("\n\n")[0].split())
    return re.split(r"(?<=\.)\s", paragraph, maxsplit=1)[0].replace("``", "`")


def count(text: str) -> int:
    """A positive whole number (runs, stages, events): ``abc``, ``0`` and ``-3`` are refused."""
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def count_argument(parser: argparse.ArgumentParser, metavar: str, *, default: int, what: str) -> None:
    """An optional count, ``[RUNS]``: ``default`` when not given; read back as ``metavar.lower()``."""
    parser.add_argument(
        metavar.lower(), nargs="?", type=count, default=default, metavar=metavar, help=f"{what} (default {default})"
    )


def counts_argument(parser: argparse.ArgumentParser, metavar: str, *, default: tuple[int, ...], what: str) -> None:
    """Any number of counts, ``[SIZE ...]``, one run each: ``default`` when none is given; read back as a tuple
    under ``metavar.lower()``."""
    parser.add_argument(
        metavar.lower(),
        nargs="*",
        type=count,
        default=default,
        metavar=metavar,
        help=f"{what} (default: {' '.join(map(str, default))})",
    )
