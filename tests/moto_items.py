"""moto's DynamoDB answers with each item written out as moto already holds it, not walked member by member.

moto (5.2) builds every answer by walking the operation's output shape with a generic serializer that, for
each member of each structure, asks five alias providers where the value might be. An item is a map of
``AttributeValue`` structures (ten members each), so an answer costs about 20 µs per attribute value:
the convergence pass's record of its last 240 passes (adapters/pass_log.py, about a thousand attribute
values) took 0.3 s to read back, and half the CPU of a 26-hour show (tests/reliability/test_rollover.py)
went there. moto's DynamoDB already hands the serializer each attribute value in its wire form
(``{"S": "..."}``, ``{"M": {...}}``, ...: ``moto.dynamodb.models.utilities.dynamo_to_dict``); for those the
walk changes nothing, so here it is skipped. A value the walk would change (binary, which it base64-encodes;
anything not plain strings, booleans, lists and maps) still goes through moto's own code. The answers are
the same text (tests/unit/test_moto_items.py compares them).

The same holds the other way: moto reads each request by walking its input shape (``moto.core.parse``), every
member of every ``AttributeValue`` in it, to build the same dict the JSON already is; the pass's record took
a third of its ``PutItem``'s CPU there. A wire-form value is taken as it came (the same dict: a request's body
is decoded afresh for each call); anything else still goes through moto's parser.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

from moto.core.parse import BaseJSONParser
from moto.core.serialize import BaseJSONSerializer

ATTRIBUTE_VALUE = "AttributeValue"
MOTO_WALK = BaseJSONSerializer._serialize_type_structure  # moto's own, whatever is patched later
MOTO_PARSE = BaseJSONParser._parse_structure


@contextmanager
def items_as_moto_holds_them() -> Iterator[None]:
    """moto's JSON answers write a wire-form ``AttributeValue`` as it is, and its requests read one as it came
    (the rest as moto does)."""

    def serialize_structure(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if key and shape.name == ATTRIBUTE_VALUE and in_wire_form(value):
            serialized[self.get_serialized_name(shape, key)] = value
            return
        MOTO_WALK(self, serialized, value, shape, key)

    def parse_structure(self: Any, shape: Any, value: Any) -> Any:
        if shape.name == ATTRIBUTE_VALUE and self.MAP_TYPE is dict and in_wire_form(value):
            return value
        return MOTO_PARSE(self, shape, value)

    with (
        mock.patch.object(BaseJSONSerializer, "_serialize_type_structure", serialize_structure),
        mock.patch.object(BaseJSONParser, "_parse_structure", parse_structure),
    ):
        yield


def in_wire_form(value: Any) -> bool:
    """``value`` is one attribute value exactly as DynamoDB's JSON writes it, with no binary in it."""
    if type(value) is not dict or len(value) != 1:
        return False
    ((kind, inner),) = value.items()
    if kind in ("S", "N"):
        return type(inner) is str
    if kind in ("BOOL", "NULL"):
        return type(inner) is bool
    if kind in ("SS", "NS"):
        return type(inner) is list and all(type(v) is str for v in inner)
    if kind == "M":
        return type(inner) is dict and all(type(k) is str and in_wire_form(v) for k, v in inner.items())
    if kind == "L":
        return type(inner) is list and all(in_wire_form(v) for v in inner)
    return False
