"""Every command's --help ends with examples (issue 26), and every example parses as written."""

from __future__ import annotations

import argparse
import re
import shlex
from collections.abc import Iterator

import pytest

from stagepilot.cli.examples import EXAMPLES
from stagepilot.cli.main import build_parser
from tests.cli.conftest import run
from tests.support import STAGE


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, (*path, name))


COMMANDS = list(commands(build_parser()))


@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(p) or "stagepilot" for p in COMMANDS])
def test_every_help_ends_with_examples_of_that_command(path: tuple[str, ...]):
    result = run(*path, "--help")

    assert result.status == 0
    shown = result.stdout.split("\nexamples:\n")
    assert len(shown) == 2, f"no examples in stagepilot {' '.join(path)} --help"
    lines = [line.strip() for line in shown[1].splitlines() if line.strip()]
    assert lines
    for line in lines:
        assert re.search(r"\bstagepilot " + " ".join(path), line) or not path, line


def argv_of(example: str) -> list[str]:
    """The stagepilot part of a shell line, with its placeholders filled in."""
    text = example.split("#")[0]
    text = text.split("stagepilot ", 1)[1]
    text = re.split(r"\s(?:>|&&|\|)\s|\)$", text)[0]
    text = text.replace("$STAGE_ARN", STAGE).replace(" N", " 3").replace("EVENT_ID", "evt-1")
    return shlex.split(text.rstrip(")"))


@pytest.mark.parametrize("example", sorted({e for lines in EXAMPLES.values() for e in lines}))
def test_every_example_parses(example: str):
    build_parser().parse_args(argv_of(example))  # a bad option or value raises (exit 2)


def test_every_example_belongs_to_a_command():
    assert set(EXAMPLES) == {" ".join(p) for p in COMMANDS}
