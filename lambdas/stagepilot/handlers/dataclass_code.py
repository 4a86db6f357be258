"""The methods ``@dataclass`` writes, compiled by the synth instead of at every cold start; used by the entry
modules only (through ``heap.pause``) and by ``infra/bundling.py``.

Python 3.13's dataclasses write each class's ``__init__``, ``__repr__``, ``__eq__``, ``__hash__`` (and, when
frozen, ``__setattr__``/``__delattr__``) as source text and compile it with one ``exec``: about 0.6 ms of
the 1.1 ms a class costs, and each function defines some 44 dataclasses while it loads, 24 ms of CPU in
every cold start (docs/performance.md §1). The synth runs the entry modules' imports once (``record``) and
ships every text it saw with its compiled code in the zip beside this module (``SHIPPED``). ``use_shipped``
gives dataclasses an ``exec`` that runs the shipped code compiled from exactly that text, and compiles any
text it does not find as before.

Nothing about the classes changes: the code run is what ``exec`` would have compiled from the same text (the
same file name, ``<string>``, and the same compiler flags: none, the stdlib dataclasses module has no ``__future__``
import). Code objects are only valid on the Python that wrote them, so the file is written by a synth on
the runtime's Python (as the bytecode beside it) and refused on any other; without it nothing changes.
"""

from __future__ import annotations

import builtins
import dataclasses
import marshal
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable
    from types import CodeType

SHIPPED = "dataclass_code.marshal"  # beside this module, in the zip only
_FLAGS = 0  # the compiler flags dataclasses' own exec compiles with (it inherits the stdlib dataclasses module's: none)


def use_shipped(path: str | None = None) -> int:
    """Run the shipped code for every text it has; returns how many texts (0: none shipped or not usable)."""
    try:
        with open(path or os.path.join(os.path.dirname(__file__), SHIPPED), "rb") as shipped:
            python, codes = marshal.load(shipped)
    except (OSError, EOFError, ValueError, TypeError):  # not shipped, or written by another Python
        return 0
    if python != list(sys.version_info[:2]) or not isinstance(codes, dict):
        return 0
    dataclasses.exec = _exec_with(codes)  # type: ignore[attr-defined]  # dataclasses looks exec up as a global
    return len(codes)


def _exec_with(codes: dict[str, bytes]) -> Any:
    """Each text's code is kept marshalled until a class needs it: loading all of them at once (some 500 code
    objects) cost 11 ms of a cold start, most of them for classes this function never defines."""

    def exec_shipped(source: Any, globals: Any = None, locals: Any = None, /) -> None:
        shipped = codes.get(source) if isinstance(source, str) else None
        builtins.exec(source if shipped is None else marshal.loads(shipped), globals, locals)

    return exec_shipped


def record(modules: Iterable[str]) -> dict[str, CodeType]:
    """Import ``modules`` (in a fresh interpreter: a class already defined is not seen) and return every
    text dataclasses compiled meanwhile, with its code."""
    import importlib

    codes: dict[str, CodeType] = {}

    def exec_recording(source: Any, globals: Any = None, locals: Any = None, /) -> None:
        if isinstance(source, str):
            source = codes.setdefault(source, compile(source, "<string>", "exec", flags=_FLAGS, dont_inherit=True))
        builtins.exec(source, globals, locals)

    dataclasses.exec = exec_recording  # type: ignore[attr-defined]
    try:
        for module in modules:
            importlib.import_module(module)
    finally:
        del dataclasses.exec  # type: ignore[attr-defined]
    return codes


def write(path: str, modules: Iterable[str]) -> int:
    """``record(modules)`` into ``path`` for ``use_shipped``; returns how many texts."""
    codes = record(modules)
    with open(path, "wb") as out:
        marshal.dump([list(sys.version_info[:2]), {text: marshal.dumps(code) for text, code in codes.items()}], out)
    return len(codes)
