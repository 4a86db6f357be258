"""The Makefile's Python versions: CPython 3.11–3.13 are listed once (SUPPORTED_PYTHONS); PYTHON_VERSIONS may
narrow them (CI insists on 3.13) but never name another one. ``make -n`` only: nothing is built or run."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def _make_n(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-n", "-C", str(ROOT), "--no-print-directory", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@pytest.mark.parametrize("versions", ["3.10", "3.12 3.10", "3.14", ""])
def test_an_unsupported_python_is_refused_in_one_line(versions: str) -> None:
    result = _make_n("test", f"PYTHON_VERSIONS={versions}")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"PYTHON_VERSIONS='{versions}'" in lines[0]
    assert "stagepilot supports CPython 3.13 3.12 3.11 only" in lines[0]


def test_the_supported_list_cannot_be_overridden() -> None:
    result = _make_n("test", "SUPPORTED_PYTHONS=3.10", "PYTHON_VERSIONS=3.10")
    assert result.returncode != 0
    assert "stagepilot supports CPython 3.13 3.12 3.11 only" in result.stderr


@pytest.mark.parametrize("versions", ["3.13", "3.12 3.11"])
def test_supported_versions_are_accepted(versions: str) -> None:
    """CI runs ``make test PYTHON_VERSIONS=3.13`` (.ci/run)."""
    result = _make_n("test", f"PYTHON_VERSIONS={versions}")
    assert result.returncode == 0, result.stderr
    assert "-m pytest" in result.stdout
