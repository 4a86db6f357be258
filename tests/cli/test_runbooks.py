"""The runbooks, run as written (docs/runbooks/README.md, "Practise"): each page in a fresh ``stagepilot sandbox``
(moto server, the IVS stand-in, the automations, the convergence pass and the door, over HTTP), after the page's
own setup (its ``sh`` block that starts with ``source sandbox.env``: its ``stagepilot`` lines are run, its
``export NAME=value`` lines give the page's ``$NAME``; a page whose sandbox is started with options, a ``sh``
block line ``stagepilot sandbox OPTIONS``, gets a sandbox started with them), then every ``$ stagepilot ...``
line of its ``console`` blocks in order, whose output (stdout and stderr, as a terminal shows them) must be the
lines quoted under it. Times and dates (``2026-12-07T13:02:11Z``, ``13:02:11``, ``2026-12-07``) match any, and
``…`` stands for what differs from run to run (an id, a duration). A quoted output whose last line starts with
``error:`` must end with a non-zero exit; any other with 0. No fixture makes the situation: the page does."""

from __future__ import annotations

import io
import re
import shlex
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from stagepilot.cli.main import build_parser, main
from stagepilot.cli.sandbox import sandbox_options
from stagepilot.local.sandbox import Sandbox

ROOT = Path(__file__).parents[2]
RUNBOOKS = ROOT / "docs" / "runbooks"
PAGES = sorted(p for p in RUNBOOKS.glob("*.md") if p.name != "README.md")
BLOCK = re.compile(r"^([ \t]*)```(\w*)\n(.*?)^[ \t]*```", re.MULTILINE | re.DOTALL)
ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|\+00:00)")
CLOCK = re.compile(r"(?<!\d)\d\d:\d\d:\d\d(?:\.\d+)?(?!\d)")
DATE = re.compile(r"(?<!\d)\d{4}-\d\d-\d\d(?!\d)")
SETUP_START = "source sandbox.env"
SANDBOX_START = re.compile(r"^stagepilot sandbox(?! play)( |$)")


@dataclass
class Step:
    command: str
    expected: list[str] = field(default_factory=list)


@dataclass
class Page:
    setup: list[str]  # the setup block's lines
    steps: list[Step]  # the console blocks' commands and their quoted output
    loose: list[str]  # stagepilot lines in other sh blocks (none allowed: quote their output)


def blocks(page: Path, language: str) -> list[str]:
    return [textwrap.dedent(body) for _, lang, body in BLOCK.findall(page.read_text()) if lang == language]


def read_page(page: Path) -> Page:
    setups = [body for body in blocks(page, "sh") if body.lstrip().startswith(SETUP_START)]
    others = [body for body in blocks(page, "sh") if not body.lstrip().startswith(SETUP_START)]
    steps: list[Step] = []
    for body in blocks(page, "console"):
        for line in body.splitlines():
            if line.startswith("$ "):
                steps.append(Step(line[2:].strip()))
            elif steps:
                steps[-1].expected.append(line)
            elif line.strip():
                raise AssertionError(f"{page.name}: output before any command in a console block: {line!r}")
    # a command of its own in an sh block (not one inside a loop, indented) must be quoted in a console block
    loose = [
        line
        for body in others
        for line in body.splitlines()
        if line.startswith("stagepilot ") and not SANDBOX_START.match(line)
    ]
    return Page(setup=[line for body in setups for line in body.splitlines()], steps=steps, loose=loose)


def page_sandbox(page: Path) -> dict[str, Any]:
    """The ``Sandbox`` keyword arguments of the sandbox the page starts in another shell (its ``stagepilot
    sandbox OPTIONS`` line), read by the command's own parser; {} for a plain ``stagepilot sandbox``."""
    started = [line for body in blocks(page, "sh") for line in body.splitlines() if SANDBOX_START.match(line.strip())]
    if not started:
        return {}
    assert len(started) == 1, f"{page.name}: one sandbox a page, not {started}"
    return sandbox_options(build_parser().parse_args(shlex.split(started[0], comments=True)[1:]))


def normalized(line: str) -> str:
    return DATE.sub("<date>", CLOCK.sub("<clock>", ISO_TIME.sub("<time>", line.rstrip())))


def matches(expected: str, actual: str) -> bool:
    """One quoted line against one line of output: times are any time, ``…`` is anything."""
    pattern = ".*?".join(re.escape(part) for part in normalized(expected).split("…"))
    return re.fullmatch(pattern, normalized(actual)) is not None


class _Tee(io.StringIO):
    """One of the command's streams: kept apart, and also written to the terminal (``shown``)."""

    def __init__(self, shown: io.StringIO) -> None:
        super().__init__()
        self._shown = shown

    def write(self, text: str) -> int:
        self._shown.write(text)
        return super().write(text)


def run_terminal(argv: list[str]) -> tuple[int, str]:
    """The command as a terminal shows it: stdout and stderr interleaved in the order written; ``> FILE``
    sends stdout to FILE instead, as the shell does."""
    target = None
    if ">" in argv:
        argv, target = argv[: argv.index(">")], argv[argv.index(">") + 1]
    shown = io.StringIO()
    stdout, stderr = io.StringIO() if target else _Tee(shown), _Tee(shown)
    try:
        status = main(argv, stdout=stdout, stderr=stderr)
    except SystemExit as exc:  # argparse: bad usage
        status = int(exc.code or 0)
    if target:
        Path(target).write_text(stdout.getvalue())
    return status, shown.getvalue()


def expand(line: str, names: dict[str, str]) -> list[str]:
    text = re.sub(r"\$(\w+)", lambda m: shlex.quote(names[m.group(1)]), line)
    return shlex.split(text, comments=True)


def practise(page: Path) -> list[tuple[Step, int, str]]:
    """The page's setup, then its commands: (step, exit status, what the terminal showed) for each."""
    read = read_page(page)
    names: dict[str, str] = {}
    for line in read.setup:
        if line.startswith("export "):
            for assignment in shlex.split(line[len("export ") :], comments=True):
                name, _, value = assignment.partition("=")
                names[name] = value
        elif line.startswith("stagepilot "):
            status, shown = run_terminal(expand(line, names)[1:])
            assert status == 0, f"{page.name} setup: {line}\n{shown}"
    results = []
    for step in read.steps:
        status, shown = run_terminal(expand(step.command, names)[1:])
        results.append((step, status, shown))
    return results


def test_every_runbook_is_indexed_and_practisable():
    index = (RUNBOOKS / "README.md").read_text()
    assert PAGES
    for page in PAGES:
        read = read_page(page)
        assert f"]({page.name})" in index, page.name
        assert read.setup, f"{page.name} has no setup block (a sh block starting with {SETUP_START!r})"
        assert read.steps, f"{page.name} has no $ stagepilot command in a console block"
        assert all(step.command.startswith("stagepilot ") for step in read.steps), page.name
        assert not read.loose, f"{page.name}: quote the output of {read.loose[0]!r} in a console block"


def test_quoted_lines_match_the_output_modulo_times_and_ellipses():
    assert matches("banned spammer-7 until 2026-12-14T13:02:11Z", "banned spammer-7 until 2027-01-01T00:00:00Z")
    assert matches("13:02:11  ▶ composition …", "09:00:00  ▶ composition started")
    assert matches("(token issued 2026-12-07 13:12:18Z)", "(token issued 2026-11-22 20:00:02Z)")
    assert not matches("banned spammer-7", "banned spammer-8")
    assert not matches("banned", "banned spammer-7")


# its pass at start only; a failed record comes back at once (the pages' failed event: five receives, then
# its dead-letter queue, without two seconds between receives); and the options the page starts it with
PRACTICE = {"reconcile_seconds": 3600, "visibility_seconds": 0}


@pytest.mark.parametrize(
    ("page", "sandbox"),
    [pytest.param(p, {**PRACTICE, **page_sandbox(p)}, id=f"{p.stem}-sandbox0") for p in PAGES],
    indirect=["sandbox"],
)
def test_runbook_works_as_written_outputs_included(
    page: Path, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    (tmp_path / "docs").symlink_to(ROOT / "docs")  # the pages name their files from the repository's root
    monkeypatch.chdir(tmp_path)  # and write the files they redirect to where they run
    for step, status, shown in practise(page):
        said = shown.splitlines()
        where = f"{page.name}: $ {step.command}\n--- the terminal showed:\n{shown}--- the page quotes:\n" + "\n".join(
            step.expected
        )
        failing = bool(step.expected) and step.expected[-1].startswith("error:")
        assert (status != 0) if failing else (status == 0), where
        assert len(said) == len(step.expected) and all(map(matches, step.expected, said)), where


def test_the_token_service_snippet_sees_the_ban(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch):
    """docs/runbooks/ban-a-user.md: the check for a service that still makes its own tokens, run as written."""
    [snippet] = blocks(RUNBOOKS / "ban-a-user.md", "python")
    monkeypatch.setenv("STAGEPILOT_TABLE", "StagePilot-Table")
    namespace: dict[str, object] = {}
    exec(compile(snippet, "ban-a-user.md", "exec"), namespace)
    may_join = namespace["may_join"]
    stage = "arn:aws:ivs:us-east-1:123456789012:stage/MainStage0001"
    other = "arn:aws:ivs:us-east-1:123456789012:stage/GreenRoom0001"
    assert callable(may_join) and may_join("spammer-7", stage) is True
    assert run_terminal(["ban", "add", "spammer-7", "--stage", stage, "--no-disconnect"])[0] == 0
    assert may_join("spammer-7", stage) is False and may_join("spammer-7", other) is True
    assert run_terminal(["ban", "add", "spammer-7", "--scope", "publish", "--no-disconnect"])[0] == 0
    assert may_join("spammer-7", other) is True  # may watch
    assert run_terminal(["ban", "add", "spammer-7", "--no-disconnect", "--replace"])[0] == 0
    assert may_join("spammer-7", other) is False
