"""``stagepilot.local.lean_moto.lean_dynamodb``: the burst benchmark's moto DynamoDB answers and stores exactly
what moto does, without copying the table per transaction or keeping every model object it made."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
from typing import Any

import boto3
from botocore.exceptions import ClientError
from moto import mock_aws

from stagepilot.local.lean_moto import lean_dynamodb

TABLE = "lean"


def _item(pk: str, sk: str, n: int) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}, "n": {"N": str(n)}}


def _transactions() -> Iterator[dict[str, Any]]:
    """Each transaction mixes an update, a put, a delete and a condition: the first fails its condition
    (nothing may change), the second succeeds."""
    for guard in ("attribute_exists(pk)", "attribute_not_exists(pk)"):
        yield {
            "TransactItems": [
                {
                    "Update": {
                        "TableName": TABLE,
                        "Key": {"pk": {"S": "a"}, "sk": {"S": "1"}},
                        "UpdateExpression": "SET n = n + :one",
                        "ExpressionAttributeValues": {":one": {"N": "1"}},
                    }
                },
                {"Put": {"TableName": TABLE, "Item": _item("c", "1", 3)}},
                {"Delete": {"TableName": TABLE, "Key": {"pk": {"S": "b"}, "sk": {"S": "1"}}}},
                {
                    "ConditionCheck": {
                        "TableName": TABLE,
                        "Key": {"pk": {"S": "missing"}, "sk": {"S": "1"}},
                        "ConditionExpression": guard,
                    }
                },
            ]
        }


def _run(lean: bool) -> tuple[list[Any], list[str]]:
    """The table's content after each transaction, and each transaction's outcome."""
    with mock_aws(), lean_dynamodb() if lean else nullcontext():
        client = _table()
        client.put_item(TableName=TABLE, Item=_item("a", "1", 1))
        client.put_item(TableName=TABLE, Item=_item("b", "1", 2))
        contents, outcomes = [], []
        for transaction in _transactions():
            try:
                client.transact_write_items(**transaction)
                outcomes.append("ok")
            except ClientError as exc:
                outcomes.append(exc.response["Error"]["Code"])
            items = client.scan(TableName=TABLE)["Items"]
            contents.append(sorted(items, key=lambda item: (item["pk"]["S"], item["sk"]["S"])))
        return contents, outcomes


def test_a_cancelled_and_a_committed_transaction_leave_the_table_as_moto_does() -> None:
    lean, plain = _run(lean=True), _run(lean=False)

    assert lean == plain
    contents, outcomes = lean
    assert outcomes == ["TransactionCanceledException", "ok"]
    assert contents[0] == [_item("a", "1", 1), _item("b", "1", 2)]  # nothing of the cancelled one stayed
    assert contents[1] == [_item("a", "1", 2), _item("c", "1", 3)]


def test_moto_keeps_no_copy_of_what_it_made() -> None:
    from moto.core.model_instances import model_data

    with mock_aws(), lean_dynamodb():
        _table().put_item(TableName=TABLE, Item=_item("a", "1", 1))
        assert all(len(model.instances_tracked) == 0 for model in model_data["dynamodb"].values())


def _table() -> Any:
    """A client, and the table the tests write: a partition key and a sort key, as stagepilot's."""
    client = boto3.client("dynamodb")
    client.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return client
