"""moto's DynamoDB answers one request at a time, as DynamoDB's own consistency would have it.

moto (5.2) keeps a table's items in plain dicts and answers each request in the caller's thread (``mock_aws``)
or in one thread per request (its server). Two requests at once can meet inside a dict: a ``Query`` walking
the items while a ``GetItem`` of a missing partition adds an empty one (the items are a ``defaultdict``) fails
with "dictionary changed size during iteration", and moto answers 500. stagepilot reads side by side (the CLI's
``status``, the functions' containers), so a test could fail on moto's race rather than on stagepilot. Here
every DynamoDB request moto answers in this process holds one lock while it is answered; Python runs one
thread at a time anyway, so nothing that was parallel becomes slower.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

from moto.dynamodb.responses import DynamoHandler

MOTO_CALL_ACTION = DynamoHandler.call_action  # moto's own, whatever is patched later
ANSWERING = threading.RLock()


def call_action(self: DynamoHandler) -> Any:
    with ANSWERING:
        return MOTO_CALL_ACTION(self)


@contextmanager
def dynamodb_answers_one_request_at_a_time() -> Iterator[None]:
    with mock.patch.object(DynamoHandler, "call_action", call_action):
        yield
