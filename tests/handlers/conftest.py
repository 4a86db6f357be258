"""Handler-level fixtures: the automations end to end on moto DynamoDB and the IVS stand-in.

``deployment`` is a ``LocalDeployment`` (routing rules, queues with retries/DLQs, handler code) on a
virtual clock starting at ``T0``; ``events`` builds real-shaped EventBridge envelopes (tests/support.py);
``table`` is its DynamoDB table alone and ``calls`` counts the calls made on it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from moto import mock_aws

from stagepilot.adapters.table import Table
from stagepilot.local.deployment import LocalDeployment
from tests.support import ACCOUNT, OTHER_STAGE, REGION, STAGE, T0, EventFactory


@pytest.fixture
def make_deployment() -> Iterator[Any]:
    """Factory: ``make_deployment(automations=[...], **kwargs)`` inside one moto mock."""
    built: list[LocalDeployment] = []
    with mock_aws():

        def build(**kwargs: Any) -> LocalDeployment:
            kwargs.setdefault("account", ACCOUNT)
            kwargs.setdefault("region", REGION)
            kwargs.setdefault("start", T0)
            deployment = LocalDeployment(**kwargs)
            built.append(deployment)
            for stage in (STAGE, OTHER_STAGE):
                deployment.ivs.create_stage(stage)
            return deployment

        yield build
        for deployment in built:  # its containers' threads end with the test
            deployment.close()


@pytest.fixture
def deployment(make_deployment: Any) -> LocalDeployment:
    return make_deployment()  # type: ignore[no-any-return]


@pytest.fixture
def events() -> EventFactory:
    return EventFactory()


class Calls:
    """Every DynamoDB call made on a client, by operation, counted on botocore's ``before-call``."""

    def __init__(self, client: Any) -> None:
        self.made: Counter[str] = Counter()
        self._hooks: list[Callable[[str], None]] = []
        client.meta.events.register("before-call.dynamodb", self._before)

    def _before(self, model: Any, **_: Any) -> None:
        self.made[model.name] += 1
        for hook in self._hooks:
            hook(model.name)

    def before_next(self, operation: str, action: Callable[[], None]) -> None:
        """Run ``action`` once, just before the next ``operation`` call is sent (an interleaving writer)."""
        fired = False

        def hook(name: str) -> None:
            nonlocal fired
            if name == operation and not fired:
                fired = True
                action()

        self._hooks.append(hook)

    def reset(self) -> None:
        self.made.clear()


@pytest.fixture
def table(make_deployment: Any) -> Table:
    deployment: LocalDeployment = make_deployment(automations=[])
    return deployment.table


@pytest.fixture
def calls(table: Table) -> Calls:
    return Calls(table.client)
