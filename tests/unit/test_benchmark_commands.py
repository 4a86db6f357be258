"""Every ``python -m benchmarks.NAME`` parses its arguments (benchmarks/cli.py): ``--help`` prints the usage and
what the benchmark measures and exits 0; a bad value is argparse's usage line and one error line, exit 2,
never a traceback (``burst --help`` was ``ValueError: invalid literal for int()``) nor a benchmark started
on arguments it does not take (``work_per_event --help`` ran for minutes). Each entry point's ``main`` is
called in-process: no benchmark runs, its ``run`` is replaced where valid arguments reach it."""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from benchmarks import cli

NAMES = (
    "burst",
    "cold_start",
    "convergence",
    "cost",
    "door",
    "first_record",
    "fleet",
    "latency",
    "package",
    "pass_coverage",
    "request_units",
    "simulate_throughput",
    "work_per_event",
)


def benchmark(name: str) -> ModuleType:
    return importlib.import_module(f"benchmarks.{name}")


@pytest.fixture(autouse=True)
def usage_on_one_line(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """argparse wraps at the terminal's width: 100 columns, whatever the terminal the tests run in; and
    ``main`` turns logging down for the benchmark's run (first_record, latency): turned back on after."""
    monkeypatch.setenv("COLUMNS", "100")
    yield
    logging.disable(logging.NOTSET)


@pytest.mark.parametrize("name", NAMES)
def test_help_says_what_the_benchmark_measures_and_exits_0(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    module = benchmark(name)
    with pytest.raises(SystemExit) as exited:
        module.main(["--help"])

    assert exited.value.code == 0
    shown = capsys.readouterr()
    assert shown.out.startswith(f"usage: python -m benchmarks.{name} [-h]")
    assert cli.first_sentence(module.__doc__) in " ".join(shown.out.split())
    assert shown.err == ""


@pytest.mark.parametrize("value", ["abc", "-3", "0"])
@pytest.mark.parametrize("name", NAMES)
def test_a_bad_value_is_the_usage_and_one_error_line_exit_2(
    name: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        benchmark(name).main([value])

    assert exited.value.code == 2
    shown = capsys.readouterr()
    assert "Traceback" not in shown.err
    usage, error = shown.err.splitlines()
    assert usage.startswith(f"usage: python -m benchmarks.{name} [-h]")
    assert error.startswith(f"python -m benchmarks.{name}: error: ")
    assert f"'{value}' is" in error or error.endswith(f"unrecognized arguments: {value}")
    assert shown.out == ""


def test_fleet_takes_one_of_its_two_halves_not_both(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        benchmark("fleet").main(["--fleet", "--reconcile", "30"])

    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines()[1] == (
        "python -m benchmarks.fleet: error: argument --reconcile: not allowed with argument --fleet"
    )


# What each entry point handed its benchmark before it parsed its arguments, for the same command line.
VALID = [
    ("burst", [], "run_all", {"sizes": (200, 1000)}),
    ("burst", ["30", "60"], "run_all", {"sizes": (30, 60)}),
    ("cold_start", [], "run", {"runs": 15}),
    ("cold_start", ["3"], "run", {"runs": 3}),
    ("first_record", [], "run", {"runs": 11, "without_bytecode": True}),
    ("first_record", ["--no-source", "5"], "run", {"runs": 5, "without_bytecode": False}),
    ("fleet", [], "run", {"sizes": (30, 300, 1000), "fleet": True, "reconcile": True}),
    ("fleet", ["--fleet", "30", "300"], "run", {"sizes": (30, 300), "fleet": True, "reconcile": False}),
    ("fleet", ["30", "--reconcile"], "run", {"sizes": (30,), "fleet": False, "reconcile": True}),
    ("latency", [], "run", {"stages": 100}),
    ("latency", ["7"], "run", {"stages": 7}),
    ("pass_coverage", [], "run", {"sizes": (100, 300, 1000), "scenarios": ("attributes", "user-ids", "no-deadline")}),
    (
        "pass_coverage",
        ["user-ids", "100", "no-deadline"],
        "run",
        {"sizes": (100,), "scenarios": ("user-ids", "no-deadline")},
    ),
    ("request_units", [], "run", {"sizes": (100, 1000), "policies": 100}),
    ("request_units", ["30"], "run", {"sizes": (30,), "policies": 100}),
    ("request_units", ["--policies", "1000"], "run", {"sizes": (100, 1000), "policies": 1000}),
    ("simulate_throughput", [], "run", {"sizes": (1000, 5000, 20000)}),
    ("simulate_throughput", ["1000"], "run", {"sizes": (1000,)}),
    ("convergence", [], "run", {}),
    ("package", [], "run", {}),
    ("work_per_event", [], "run", {}),
    ("door", [], "run_all", {}),
]


@pytest.mark.parametrize(("name", "argv", "function", "expected"), VALID)
def test_valid_arguments_reach_the_benchmark_as_before(
    name: str,
    argv: list[str],
    function: str,
    expected: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    module = benchmark(name)
    signature = inspect.signature(getattr(module, function))
    called: list[dict[str, Any]] = []

    def instead(*args: Any, **kwargs: Any) -> dict[str, Any]:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        called.append(dict(bound.arguments))
        return {"runs": [], "alternatives": []} if name == "burst" else {}

    monkeypatch.setattr(module, function, instead)
    monkeypatch.setattr(module, "RESULTS", tmp_path / "results.json", raising=False)  # burst writes its own

    assert module.main(argv) == 0
    assert [{k: v for k, v in arguments.items() if k != "workers"} for arguments in called] == [expected]
