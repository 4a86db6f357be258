"""DynamoDB item sizes and the request units a call is charged, computed the way DynamoDB documents them.

Item size (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html,
"DynamoDB item sizes and formats"): the sum over its attributes of the name's UTF-8 bytes and the value's
size. A string: its UTF-8 bytes. A number: 1 byte per two significant digits (leading and trailing zeroes
trimmed) plus 1 byte. A binary: its raw bytes (not the base64 sent on the wire). Null or Boolean: 1 byte.
A list or map: 3 bytes, plus each element's size and 1 byte per element (a map's element also counts its
key's UTF-8 bytes, as an attribute name). A set: the sum of its elements' sizes, each sized as the scalar
of its type, without overhead. Stored, each item also takes 100 bytes of indexing overhead (storage only).

Request units (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html):
a write is 1 unit per started KB (1,024 bytes) of the item, 2 in a transaction; a read 1 unit per started
4 KB when strongly consistent, half of that when eventually consistent, 2 in a transaction.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from typing import Any

KB = 1024
WRITE_UNIT_BYTES = KB  # one write request unit writes up to 1 KB of the item
READ_UNIT_BYTES = 4 * KB  # one read request unit reads up to 4 KB, strongly consistent
STORAGE_OVERHEAD_BYTES = 100  # "All items in DynamoDB require 100 bytes of storage overhead for indexing"


def number_size(text: str) -> int:
    """A number's size: 1 byte per two significant digits, plus 1 (leading and trailing zeroes trimmed)."""
    mantissa = text.strip().lstrip("+-").lower().split("e", 1)[0]
    digits = mantissa.replace(".", "").strip("0") or "0"
    return math.ceil(len(digits) / 2) + 1


def binary_size(value: bytes | bytearray | memoryview | str) -> int:
    """Raw bytes; a ``str`` is taken as the base64 the wire carries (JSON's form) and decoded first."""
    if isinstance(value, str):
        return len(base64.b64decode(value))
    return len(bytes(value))


def value_size(value: Mapping[str, Any]) -> int:
    """The size of one attribute value in DynamoDB's wire form (``{"S": "abc"}``), without its name."""
    if len(value) != 1:
        raise ValueError(f"not one typed attribute value: {sorted(value)}")
    kind, data = next(iter(value.items()))
    if kind == "S":
        return len(str(data).encode())
    if kind == "N":
        return number_size(str(data))
    if kind == "B":
        return binary_size(data)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(str(s).encode()) for s in data)
    if kind == "NS":
        return sum(number_size(str(n)) for n in data)
    if kind == "BS":
        return sum(binary_size(b) for b in data)
    if kind == "L":
        return 3 + sum(value_size(element) + 1 for element in data)
    if kind == "M":
        return 3 + sum(len(str(name).encode()) + value_size(element) + 1 for name, element in data.items())
    raise ValueError(f"unknown attribute type {kind!r}")


def item_size(item: Mapping[str, Mapping[str, Any]]) -> int:
    """An item's size in bytes, as DynamoDB counts it for request units (the attributes' names and values)."""
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def write_units(size: int, *, transactional: bool = False) -> int:
    """Write request units for writing an item of ``size`` bytes: one per started KB (at least one)."""
    units = max(1, math.ceil(size / WRITE_UNIT_BYTES))
    return 2 * units if transactional else units


def read_units(size: int, *, consistent: bool = False) -> float:
    """Read request units for reading ``size`` bytes (one item, or a Query's items together): one per started
    4 KB (at least one, even for an item that does not exist), half when eventually consistent."""
    units = max(1, math.ceil(size / READ_UNIT_BYTES))
    return float(units) if consistent else units / 2
