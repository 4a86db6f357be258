"""``dlq list`` and ``dlq show`` peek without hiding: every message stays visible (and so counted by the
DLQ alarm), and the viewer's policy needs no sqs:ChangeMessageVisibility (tests/infra/test_access.py)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.client import BaseClient

from tests.cli.conftest import run
from tests.cli.test_dlq_explain_cli import queue_urls
from tests.support import EventFactory


def hidden(url: str) -> int:
    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessagesNotVisible"])


def test_list_and_show_leave_every_message_visible_and_change_no_visibility(
    aws: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, dlq_url = queue_urls("replication")
    factory = EventFactory()
    events = [factory.published(f"p-{n}") for n in range(3)]
    for event in events:
        boto3.client("sqs").send_message(QueueUrl=dlq_url, MessageBody=json.dumps(event))
    made: list[str] = []
    original = BaseClient._make_api_call

    def spy(self: Any, operation: str, params: Any) -> Any:
        made.append(operation)
        return original(self, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", spy)
    [report] = run("dlq", "list", "--automation", "replication", "--json").json()
    assert hidden(dlq_url) == 0
    shown = run("dlq", "show", events[1]["id"], "--json")
    assert hidden(dlq_url) == 0

    assert sorted(e["eventId"] for e in report["events"]) == sorted(e["id"] for e in events)
    assert shown.status == 0 and shown.json()["body"] == events[1]
    assert "ReceiveMessage" in made  # the spy saw the CLI's calls
    assert [operation for operation in made if operation.startswith("ChangeMessageVisibility")] == []
