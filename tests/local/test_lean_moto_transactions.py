"""stagepilot/local/lean_moto.py: a transaction leaves the same table as moto's own, and backs up only its items."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import boto3
import moto.dynamodb.models as dynamodb_models
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table

from stagepilot.local.lean_moto import MOTO_TRANSACT, transactions_roll_back_their_items
from tests.support import key_table


@contextmanager
def moto_as_released() -> Iterator[None]:
    """moto's own TransactWriteItems, whole-table copies included (tests/conftest.py's aside)."""
    with (
        mock.patch.object(dynamodb_models, "copy", copy),
        mock.patch.object(DynamoDBBackend, "transact_write_items", MOTO_TRANSACT),
    ):
        yield


def s(value: str) -> dict[str, str]:
    return {"S": value}


def put(table: str, pk: str, sk: str, **more: Any) -> dict[str, Any]:
    return {"Put": {"TableName": table, "Item": {"pk": s(pk), "sk": s(sk), **more}}}


def update(table: str, pk: str, sk: str, condition: str | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {
        "TableName": table,
        "Key": {"pk": s(pk), "sk": s(sk)},
        "UpdateExpression": "SET n = if_not_exists(n, :zero) + :one",
        "ExpressionAttributeValues": {":zero": {"N": "0"}, ":one": {"N": "1"}},
    }
    if condition:
        op["ConditionExpression"] = condition
    return {"Update": op}


def delete(table: str, pk: str, sk: str) -> dict[str, Any]:
    return {"Delete": {"TableName": table, "Key": {"pk": s(pk), "sk": s(sk)}}}


def held(pk: str) -> dict[str, Any]:
    return {"Put": {"TableName": "flat", "Item": {"pk": s(pk)}, "ConditionExpression": "attribute_not_exists(pk)"}}


TRANSACTIONS = {
    "writes": [[put("t", "a", "1", x=s("new")), update("t", "a", "2"), delete("t", "b", "1"), held("fresh")]],
    "cancelled-late": [
        [put("t", "a", "9"), update("t", "a", "2"), delete("t", "b", "1"), held("taken")],
    ],
    "cancelled-by-a-condition": [
        [put("t", "c", "1"), update("t", "a", "1", condition="attribute_not_exists(pk)"), held("new-flat")]
    ],
    "same-key-twice": [[put("t", "d", "1"), update("t", "a", "1"), put("t", "d", "1")]],
    "creates-then-cancelled": [[update("t", "e", "1"), put("t", "e", "2"), held("taken")]],
    "one-after-another": [
        [put("t", "f", "1")],
        [update("t", "f", "1"), held("taken")],
        [update("t", "f", "1"), delete("t", "a", "1")],
    ],
}


def outcome(transactions: list[list[dict[str, Any]]]) -> tuple[list[Any], dict[str, list[Any]]]:
    """What each transaction answered (the cancellation reasons) and both tables' items afterwards."""
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        key_table(client, "flat")
        for pk, sk in (("a", "1"), ("a", "2"), ("b", "1")):
            client.put_item(TableName="t", Item={"pk": s(pk), "sk": s(sk), "n": {"N": "5"}})
        client.put_item(TableName="flat", Item={"pk": s("taken")})
        answers: list[Any] = []
        for items in transactions:
            try:
                client.transact_write_items(TransactItems=items)
                answers.append("ok")
            except ClientError as exc:
                answers.append((exc.response["Error"]["Code"], exc.response.get("CancellationReasons")))
        tables = {
            name: sorted(
                client.scan(TableName=name)["Items"], key=lambda item: (item["pk"]["S"], item.get("sk", s(""))["S"])
            )
            for name in ("t", "flat")
        }
        return answers, tables


@pytest.mark.parametrize("transactions", TRANSACTIONS.values(), ids=TRANSACTIONS.keys())
def test_the_tables_and_the_answers_are_the_same_as_motos(transactions: list[list[dict[str, Any]]]) -> None:
    with moto_as_released():
        released = outcome(transactions)
    with transactions_roll_back_their_items():
        assert outcome(transactions) == released
    answers, _ = released
    assert answers[0] == "ok" or answers[0][0] in ("TransactionCanceledException", "ValidationException")


def test_a_transaction_copies_no_table() -> None:
    def copied(*_: Any) -> Any:
        raise AssertionError("a whole table was copied")

    with (
        transactions_roll_back_their_items(),
        mock.patch.object(Table, "__deepcopy__", copied, create=True),
    ):
        answers, tables = outcome(TRANSACTIONS["cancelled-late"] + TRANSACTIONS["writes"])
    assert answers[0][0] == "TransactionCanceledException" and answers[1] == "ok"
    assert {"pk": s("a"), "sk": s("1"), "x": s("new")} in tables["t"]
