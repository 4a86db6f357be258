"""Handler-level fixtures: the automations end to end on moto DynamoDB and the IVS stand-in.

``deployment`` is a ``LocalDeployment`` (routing rules, queues with retries/DLQs, handler code) on a
virtual clock starting at ``T0``; ``events`` builds real-shaped EventBridge envelopes (tests/support.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from stagepilot.local.deployment import LocalDeployment
from tests.support import ACCOUNT, OTHER_STAGE, REGION, STAGE, T0, EventFactory


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_IVS_REALTIME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)


@pytest.fixture
def make_deployment() -> Iterator[Any]:
    """Factory: ``make_deployment(automations=[...], **kwargs)`` inside one moto mock."""
    with mock_aws():

        def build(**kwargs: Any) -> LocalDeployment:
            kwargs.setdefault("account", ACCOUNT)
            kwargs.setdefault("region", REGION)
            kwargs.setdefault("start", T0)
            deployment = LocalDeployment(**kwargs)
            for stage in (STAGE, OTHER_STAGE):
                deployment.ivs.create_stage(stage)
            return deployment

        yield build


@pytest.fixture
def deployment(make_deployment: Any) -> LocalDeployment:
    return make_deployment()  # type: ignore[no-any-return]


@pytest.fixture
def events() -> EventFactory:
    return EventFactory()
