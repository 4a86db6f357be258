"""tests/moto_threads.py: a DynamoDB request moto receives while it answers another waits for it."""

from __future__ import annotations

import threading
from typing import Any
from unittest import mock

import boto3
from moto import mock_aws
from moto.dynamodb.models import DynamoDBBackend

from tests.moto_threads import dynamodb_answers_one_request_at_a_time
from tests.support import key_table

MOTO_GET_ITEM = DynamoDBBackend.get_item


def test_a_second_request_waits_until_the_first_is_answered() -> None:
    inside, release = threading.Event(), threading.Event()
    entered: list[str] = []

    def get_item(self: DynamoDBBackend, *args: Any, **kwargs: Any) -> Any:
        pk = "first" if "first" in str(args) else "second"
        entered.append(pk)
        if pk == "first":
            inside.set()
            release.wait(10)
        return MOTO_GET_ITEM(self, *args, **kwargs)

    with mock_aws(), dynamodb_answers_one_request_at_a_time(), mock.patch.object(DynamoDBBackend, "get_item", get_item):
        client = boto3.client("dynamodb", region_name="us-east-1")
        key_table(client, "t")

        def read(pk: str) -> None:
            client.get_item(TableName="t", Key={"pk": {"S": pk}})

        first = threading.Thread(target=read, args=("first",))
        first.start()
        assert inside.wait(10)
        second = threading.Thread(target=read, args=("second",))
        second.start()
        second.join(0.5)
        assert entered == ["first"] and second.is_alive()  # moto has not begun the second one
        release.set()
        first.join(10)
        second.join(10)
    assert entered == ["first", "second"]
