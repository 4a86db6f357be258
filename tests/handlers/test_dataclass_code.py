"""The dataclasses' generated methods compiled by the synth (handlers/dataclass_code.py): the classes are
the same, the shipped code is used when its text matches, and anything else is compiled as before."""

from __future__ import annotations

import builtins
import dataclasses
import importlib
import marshal
import sys
from pathlib import Path

import pytest

from stagepilot.handlers import dataclass_code

MODULE = """
from __future__ import annotations
from dataclasses import dataclass, field

@dataclass(frozen=True)
class Seat:
    stage: str
    row: int = 1
    tags: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)
"""


@pytest.fixture
def restore_exec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dataclasses, "exec", builtins.exec, raising=False)  # removed again after the test


def _module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, *, imported: bool = True) -> str:
    """A module ``name`` defining the dataclass ``Seat``: imported now, or left for ``record`` to import."""
    (tmp_path / f"{name}.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    if imported:
        importlib.import_module(name)
    return name


def test_the_shipped_code_gives_the_same_class(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_exec: None
) -> None:
    shipped = tmp_path / dataclass_code.SHIPPED
    assert dataclass_code.write(str(shipped), [_module(tmp_path, monkeypatch, "seats_recorded", imported=False)]) == 1
    recorded = sys.modules["seats_recorded"].Seat

    assert dataclass_code.use_shipped(str(shipped)) == 1
    seat = sys.modules[_module(tmp_path, monkeypatch, "seats_shipped")].Seat

    for method in ("__init__", "__repr__", "__eq__", "__hash__", "__setattr__", "__delattr__"):
        assert getattr(seat, method).__code__.co_code == getattr(recorded, method).__code__.co_code, method
    one = seat("arn:stage/a", tags=("x",))
    assert one == seat("arn:stage/a", 1, ("x",), [])
    assert repr(one) == "Seat(stage='arn:stage/a', row=1, tags=('x',), notes=[])"
    assert one.notes is not seat("arn:stage/a").notes  # the default factory, per instance
    with pytest.raises(dataclasses.FrozenInstanceError):
        one.row = 2  # type: ignore[misc]


def test_the_shipped_code_is_what_runs_when_its_text_matches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_exec: None
) -> None:
    [(text, _code)] = dataclass_code.record([_module(tmp_path, monkeypatch, "seats_to_mark", imported=False)]).items()
    assert "self.__class__.__qualname__" in text  # how 3.13's dataclasses write __repr__
    marked = compile(text.replace("self.__class__.__qualname__", "'shipped'"), "<string>", "exec", dont_inherit=True)
    shipped = tmp_path / dataclass_code.SHIPPED
    shipped.write_bytes(marshal.dumps([list(sys.version_info[:2]), {text: marshal.dumps(marked)}]))

    assert dataclass_code.use_shipped(str(shipped)) == 1
    seat = sys.modules[_module(tmp_path, monkeypatch, "seats_marked")].Seat

    assert repr(seat("a")).startswith("shipped(")


def test_a_text_not_shipped_is_compiled_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_exec: None
) -> None:
    shipped = tmp_path / dataclass_code.SHIPPED
    shipped.write_bytes(marshal.dumps([list(sys.version_info[:2]), {}]))
    assert dataclass_code.use_shipped(str(shipped)) == 0
    seat = sys.modules[_module(tmp_path, monkeypatch, "seats_unshipped")].Seat
    assert seat("a") == seat("a", 1)


@pytest.mark.parametrize(
    "content",
    [None, b"not marshal", marshal.dumps([[2, 7], {}]), marshal.dumps({"no": "version"})],
    ids=["missing", "garbage", "another-python", "no-version"],
)
def test_a_file_that_is_missing_or_from_another_python_changes_nothing(
    tmp_path: Path, restore_exec: None, content: bytes | None
) -> None:
    shipped = tmp_path / dataclass_code.SHIPPED
    if content is not None:
        shipped.write_bytes(content)
    assert dataclass_code.use_shipped(str(shipped)) == 0
    assert dataclasses.exec is builtins.exec  # type: ignore[attr-defined]
