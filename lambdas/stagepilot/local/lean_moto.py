"""moto's DynamoDB, made to cost what one request costs, for the tests and the simulations whose tables grow
with their size (``benchmarks.burst``, the door's thousand tokens). Two of moto's habits made time and memory
grow as requests × items; the tables and every answer stay moto's own.

``TransactWriteItems`` rolls back the items it touched, not a copy of every table it touched.

moto (5.2) backs up each table a transaction names with ``copy.deepcopy`` of the whole table before writing,
so that a cancelled transaction can put the copy back: the cost grows with the table, not the transaction.
The door writes a token record and its audit entry in one transaction per token (stagepilot/door/issuer.py),
so a thousand tokens made a thousand copies of a table a thousand items long (tests/handlers/test_door.py:
140 s, three quarters of it in ``deepcopy``). Here the backup is of the items the transaction names, taken
just before moto runs it, and a cancelled transaction puts exactly those back (or removes the ones it
created); moto's own code still decides what is written, what is refused and what the caller is told.
A table with a stream (whose records a rollback must also take back) keeps moto's whole-table copy.
The outcome is the same table (tests/local/test_lean_moto_transactions.py compares them).

moto also keeps every model object it ever creates (``BaseModel.__new__`` appends it to its class's
``instances_tracked``, for the moto server's dashboard), so every item ever written stayed alive (20 GB in the
1,000-stage burst). ``lean_dynamodb`` also keeps nothing there; nothing in-process reads those lists.
"""

from __future__ import annotations

import copy
import types
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any
from unittest import mock

import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table

MOTO_TRANSACT = DynamoDBBackend.transact_write_items  # moto's own, whatever is patched later


def _deepcopy_but_tables(value: Any, memo: dict[int, Any] | None = None) -> Any:
    """``copy.deepcopy`` for moto's DynamoDB module, except that a table is its own backup (the items are
    backed up by ``transact_write_items`` below, and put back by it)."""
    return value if type(value) is Table else copy.deepcopy(value, memo)


# moto.dynamodb.models calls ``copy.deepcopy`` in two places: a transaction's table backup, and update_item's
# copy of the one item it updates (which goes on as before).
LEAN_COPY = types.SimpleNamespace(deepcopy=_deepcopy_but_tables)

Backup = tuple[Table, DynamoType, DynamoType | None, Item | None]


def _named_item(backend: DynamoDBBackend, op_type: str, op: dict[str, Any]) -> tuple[Table, Any, Any] | None:
    """The table and key an operation of a transaction writes, when it names a table and a whole key."""
    table = backend.tables.get(op.get("TableName", ""))
    key = op.get("Item" if op_type == "Put" else "Key")
    if table is None or not isinstance(key, dict) or table.hash_key_attr not in key:
        return None
    if table.range_key_attr is not None and table.range_key_attr not in key:
        return None
    hash_value = DynamoType(key[table.hash_key_attr])
    range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr is not None else None
    return table, hash_value, range_value


def _stored(table: Table, hash_value: DynamoType, range_value: DynamoType | None) -> Item | None:
    found = table.items.get(hash_value) if range_value is None else table.items.get(hash_value, {}).get(range_value)
    return found if isinstance(found, Item) else None


def _put_back(table: Table, hash_value: DynamoType, range_value: DynamoType | None, item: Item | None) -> None:
    if range_value is None:
        if item is None:
            table.items.pop(hash_value, None)
        else:
            table.items[hash_value] = item  # type: ignore[assignment]  # moto types items as dicts of ranges
        return
    by_range = table.items.get(hash_value, {})
    if item is None:
        by_range.pop(range_value, None)
        if not by_range:
            table.items.pop(hash_value, None)
    else:
        table.items[hash_value] = by_range
        by_range[range_value] = item


def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    items: list[Backup] = []
    tables: dict[str, Table] = {}  # tables with a stream: their records are rolled back too, as moto does
    for entry in transact_items:
        for op_type, op in entry.items():
            named = _named_item(self, op_type, op) if isinstance(op, dict) else None
            if named is None:
                continue
            table, hash_value, range_value = named
            if table.stream_shard is not None:
                tables.setdefault(table.name, copy.deepcopy(table))
            else:
                items.append((table, hash_value, range_value, copy.deepcopy(_stored(table, hash_value, range_value))))
    try:
        MOTO_TRANSACT(self, transact_items)
    except Exception:
        for table, hash_value, range_value, item in reversed(items):
            _put_back(table, hash_value, range_value, item)
        self.tables.update(tables)
        raise


class _Untracked(list[Any]):
    """A model class's ``instances_tracked`` that keeps nothing."""

    def append(self, instance: Any) -> None:
        pass


@contextmanager
def lean_dynamodb() -> Iterator[None]:
    """Inside ``mock_aws()``: transactions back up only their items, and moto keeps no model object alive."""
    from moto.core.model_instances import model_data

    with ExitStack() as stack:
        stack.enter_context(transactions_roll_back_their_items())
        for model in model_data["dynamodb"].values():
            stack.enter_context(mock.patch.object(model, "instances_tracked", _Untracked()))
        yield


@contextmanager
def transactions_roll_back_their_items() -> Iterator[None]:
    """moto's ``TransactWriteItems`` backs up and rolls back only the items it names."""
    with (
        mock.patch.object(dynamodb_models, "copy", LEAN_COPY),
        mock.patch.object(DynamoDBBackend, "transact_write_items", transact_write_items),
    ):
        yield
