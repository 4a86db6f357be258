"""moto's DynamoDB, made to cost what one request costs: for simulations whose table grows with their size
(``benchmarks.burst``), where two of moto's habits make time and memory grow as requests × items.

- ``TransactWriteItems`` deep-copies every table it writes to before it starts, to roll back by putting the
  copy in the table's place: each transaction paid for the whole table. Here the backup is only the items
  the transaction names (every other item it cannot change), and a failed transaction puts exactly those
  back, when moto would have rolled back.
- moto keeps every model object it ever creates (``BaseModel.__new__`` appends it to its class's
  ``instances_tracked``, for the moto server's dashboard), so every item of every copy stayed alive
  (20 GB in the 1,000-stage burst). Nothing in-process reads those lists; here they keep nothing.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any
from unittest import mock

# (table, hash key, range key or None, the item before the transaction or None)
_Saved = tuple[Any, Any, Any, Any]


@contextmanager
def lean_dynamodb() -> Iterator[None]:
    """Inside ``mock_aws()``: the table's content and every answer stay exactly moto's."""
    import moto.dynamodb.models as dynamodb_models
    from moto.core.model_instances import model_data

    backend = dynamodb_models.DynamoDBBackend
    with ExitStack() as stack:
        stack.enter_context(mock.patch.object(dynamodb_models, "copy", _TablesUncopied(dynamodb_models.Table)))
        transact = _backing_up_named_items(backend.transact_write_items)
        stack.enter_context(mock.patch.object(backend, "transact_write_items", transact))
        for model in model_data["dynamodb"].values():
            stack.enter_context(mock.patch.object(model, "instances_tracked", _Untracked()))
        yield


class _TablesUncopied:
    """``copy`` as moto's DynamoDB backend sees it: a table's "copy" is the table itself, so a rollback puts
    it back in its own place (``_backing_up_named_items`` restores its items); anything else is copied."""

    def __init__(self, table_type: type) -> None:
        self._table_type = table_type

    def deepcopy(self, value: Any, memo: dict[int, Any] | None = None) -> Any:
        return value if isinstance(value, self._table_type) else copy.deepcopy(value, memo)

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)


def _backing_up_named_items(transact: Callable[..., None]) -> Callable[..., None]:
    from moto.dynamodb.exceptions import MockValidationException, TransactionCanceledException

    rolled_back = (TransactionCanceledException, MockValidationException)  # moto rolls back on exactly these

    def transact_write_items(backend: Any, transact_items: list[dict[str, Any]]) -> None:
        saved = [one for one in (_save(backend, item) for item in transact_items) if one is not None]
        try:
            transact(backend, transact_items)
        except rolled_back:
            for table, hash_key, range_key, item in reversed(saved):  # the first save of a key is the oldest
                _restore(table, hash_key, range_key, item)
            raise

    return transact_write_items


def _save(backend: Any, transact_item: dict[str, Any]) -> _Saved | None:
    """The item one operation of the transaction names, as it is now (None: moto refuses the operation
    before it changes anything, or the table does not exist)."""
    try:
        (operation,) = transact_item.values()
        table = backend.tables.get(operation.get("TableName"))
        if table is None:
            return None
        key = operation.get("Key") or {name: operation["Item"][name] for name in table.table_key_attrs}
        hash_key, range_key = backend.get_keys_value(table, key)
    except Exception:  # malformed: moto answers it with an error and writes nothing for it
        return None
    return table, hash_key, range_key, copy.deepcopy(table.get_item(hash_key, range_key))


def _restore(table: Any, hash_key: Any, range_key: Any, item: Any) -> None:
    if range_key is None:
        if item is None:
            table.items.pop(hash_key, None)
        else:
            table.items[hash_key] = item
    elif item is None:
        table.items.get(hash_key, {}).pop(range_key, None)
    else:
        table.items[hash_key][range_key] = item


class _Untracked(list[Any]):
    """A model class's ``instances_tracked`` that keeps nothing."""

    def append(self, instance: Any) -> None:
        pass
