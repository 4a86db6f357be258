"""tests/moto_items.py: moto's DynamoDB answers are the same text with the items written out as moto holds
them, and only wire-form attribute values skip moto's walk."""

from __future__ import annotations

import base64
import json
from typing import Any
from unittest import mock

import boto3
import pytest
from moto import mock_aws
from moto.core.parse import BaseJSONParser, JSONParser
from moto.core.responses import ActionResult, XFormedAttributePicker
from moto.core.serialize import BaseJSONSerializer, get_serializer_class
from moto.core.utils import get_service_model

from tests.moto_items import MOTO_PARSE, MOTO_WALK, in_wire_form, items_as_moto_holds_them
from tests.support import key_table

EVERY_KIND = {
    "pk": {"S": "STAGE#arn:aws:ivs:us-east-1:123456789012:stage/a"},
    "empty": {"S": ""},
    "n": {"N": "-12.5"},
    "b": {"B": b"\x00\xffbytes"},
    "ss": {"SS": ["a", "b"]},
    "ns": {"NS": ["1", "2"]},
    "bs": {"BS": [b"\x01", b"\x02"]},
    "flag": {"BOOL": False},
    "nothing": {"NULL": True},
    "m": {"M": {"at": {"S": "2026-11-21T20:00:00Z"}, "deep": {"L": [{"N": "1"}, {"M": {"x": {"BOOL": True}}}]}}},
    "l": {"L": [{"S": "x"}, {"B": b"in a list"}, {"M": {}}, {"L": []}]},
}
PASSES = {
    "passes": {"L": [{"M": {"at": {"S": f"2026-11-21T20:{n:02d}:00Z"}, "reached": {"N": "1"}}} for n in range(60)]}
}


def answer(operation: str, result: dict[str, Any]) -> str:
    """The body moto's server would send for ``result`` (as ``ActionResult.execute_result`` builds it)."""
    service = get_service_model("dynamodb")
    serializer_class = get_serializer_class(service.service_name, service.protocol)
    serializer = serializer_class(
        operation_model=service.operation_model(operation), value_picker=XFormedAttributePicker()
    )
    body: str = serializer.serialize(ActionResult(result).result)["body"]
    return body


@pytest.mark.parametrize(
    ("operation", "result"),
    [
        ("GetItem", {"Item": EVERY_KIND}),
        ("GetItem", {"Item": PASSES}),
        (
            "Query",
            {"Items": [EVERY_KIND, PASSES], "Count": 2, "ScannedCount": 2, "LastEvaluatedKey": {"pk": {"S": "x"}}},
        ),
        ("BatchGetItem", {"Responses": {"t": [EVERY_KIND]}, "UnprocessedKeys": {}}),
        ("UpdateItem", {"Attributes": EVERY_KIND}),
    ],
    ids=["every-kind", "pass-log", "query", "batch-get", "update"],
)
def test_the_answer_is_the_same_text(operation: str, result: dict[str, Any]) -> None:
    with mock.patch.object(BaseJSONSerializer, "_serialize_type_structure", MOTO_WALK):  # tests/conftest.py's aside
        walked = answer(operation, result)
    with items_as_moto_holds_them():
        assert answer(operation, result) == walked


def read(operation: str, body: dict[str, Any]) -> dict[str, Any]:
    """The parameters moto's DynamoDB reads from a request with ``body`` (as ``parse_parameters`` reads them)."""
    parser = JSONParser(get_service_model("dynamodb").operation_model(operation), map_type=dict)
    parsed: dict[str, Any] = parser.parse({"method": "POST", "headers": {}, "body": json.dumps(body).encode()})
    return parsed


@pytest.mark.parametrize(
    ("operation", "body"),
    [
        (
            "PutItem",
            {"TableName": "t", "Item": {**EVERY_KIND, **PASSES}, "ConditionExpression": "attribute_exists(pk)"},
        ),
        ("GetItem", {"TableName": "t", "Key": {"pk": EVERY_KIND["pk"]}}),
        (
            "Query",
            {
                "TableName": "t",
                "KeyConditionExpression": "#pk = :pk",
                "ExpressionAttributeValues": {":pk": {"S": "x"}, ":b": {"B": "AP8="}, ":m": EVERY_KIND["m"]},
            },
        ),
        (
            "TransactWriteItems",
            {
                "TransactItems": [
                    {"Put": {"TableName": "t", "Item": {**EVERY_KIND, **PASSES}}},
                    {"Delete": {"TableName": "t", "Key": {"pk": {"S": "y"}}}},
                ]
            },
        ),
    ],
    ids=["put", "get", "query", "transaction"],
)
def test_a_request_is_read_the_same(operation: str, body: dict[str, Any]) -> None:
    body = json.loads(json.dumps(body, default=lambda b: base64.b64encode(b).decode()))  # as botocore sends it
    with mock.patch.object(BaseJSONParser, "_parse_structure", MOTO_PARSE):  # tests/conftest.py's aside
        walked = read(operation, body)
    with items_as_moto_holds_them():
        assert read(operation, body) == walked


def test_only_wire_form_values_skip_the_walk() -> None:
    assert in_wire_form({"S": "x"}) and in_wire_form({"M": {"a": {"L": [{"N": "1"}, {"NULL": True}]}}})
    assert not in_wire_form({"B": b"x"})  # moto's walk base64-encodes it
    assert not in_wire_form({"M": {"a": {"BS": [b"x"]}}})
    assert not in_wire_form({"N": 1})  # moto's walk writes it as text
    assert not in_wire_form({"S": "x", "N": "1"})
    assert not in_wire_form({"SS": ["a", 1]})


def test_a_table_round_trip_reads_back_what_was_written() -> None:
    with mock_aws(), items_as_moto_holds_them():
        client = boto3.client("dynamodb", region_name="us-east-1")
        key_table(client, "t")
        client.put_item(TableName="t", Item={**EVERY_KIND, **PASSES})
        item = client.get_item(TableName="t", Key={"pk": EVERY_KIND["pk"]}, ConsistentRead=True)["Item"]
    assert item == {**EVERY_KIND, **PASSES}
