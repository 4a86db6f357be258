"""Malformed input (hypothesis): missing, extra and wrong-typed fields, huge strings, unknown event names,
non-JSON bodies. Each is delivered once, never crashes the handler, never loops through retries, and is
either handled as a valid event or parked in the DLQ and counted once (``MalformedEvent``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from stagepilot.local.deployment import LocalDeployment
from stagepilot.routing import AUTOMATIONS
from tests.support import ACCOUNT, REGION, STAGE, T0, EventFactory

STORAGE = f"arn:aws:ivs:{REGION}:{ACCOUNT}:storage-configuration/ShowStorage01"
ENCODER = f"arn:aws:ivs:{REGION}:{ACCOUNT}:encoder-configuration/ShowEncoder01"


@pytest.fixture(scope="module")
def shared() -> Iterator[LocalDeployment]:
    """One deployment for all hypothesis examples (building one per example would dominate the run)."""
    with mock_aws():
        deployment = LocalDeployment(account=ACCOUNT, region=REGION, start=T0)
        deployment.ivs.create_stage(STAGE)
        yield deployment


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


def _valid_event() -> dict[str, Any]:
    return EventFactory().published("pArticipant1", user_id="u-1")


@st.composite
def broken_events(draw: st.DrawFn) -> str:
    event = _valid_event()
    how = draw(st.sampled_from(["drop", "retype", "huge", "unknown-name", "extra", "not-json", "not-object"]))
    if how == "not-json":
        return draw(st.text(max_size=200).filter(lambda s: not _is_json(s)))
    if how == "not-object":
        return json.dumps(draw(st.lists(json_values, max_size=3) | st.integers() | st.text(max_size=20)))
    where = draw(st.sampled_from(["envelope", "detail"]))
    target = event if where == "envelope" else event["detail"]
    key = draw(st.sampled_from(sorted(target)))
    if how == "drop":
        del target[key]
    elif how == "retype":
        target[key] = draw(json_values.filter(lambda v: not isinstance(v, str)))
    elif how == "huge":
        target[key] = "x" * draw(st.integers(min_value=10_000, max_value=300_000))
    elif how == "unknown-name":
        event["detail"]["event_name"] = draw(st.text(min_size=1, max_size=40))
        event["detail-type"] = draw(st.sampled_from(["IVS Stage Update", "Something Else"]))
    else:
        target[draw(st.text(min_size=1, max_size=10))] = draw(json_values)
    return json.dumps(event)


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=broken_events(), automation=st.sampled_from(AUTOMATIONS))
def test_malformed_input_is_reported_once_and_never_retried(
    shared: LocalDeployment, body: str, automation: str
) -> None:
    deployment = shared
    before_deliveries = len(deployment.deliveries)
    before_dead = len(deployment.dead_letters[automation])
    before_malformed = deployment.metrics.counts.get("MalformedEvent", 0)
    deployment.put_raw(automation, body)
    deployment.drain()
    deliveries = deployment.deliveries[before_deliveries:]
    # Delivered exactly once: handled (an unknown event name is a valid event the automation skips) or
    # parked at once and counted once. Never an exception, never a second receive.
    assert len(deliveries) == 1, [d.error for d in deliveries]
    delivery = deliveries[0]
    assert delivery.receive == 1
    assert delivery.error is None
    malformed = deployment.metrics.counts.get("MalformedEvent", 0) - before_malformed
    parked = len(deployment.dead_letters[automation]) - before_dead
    if delivery.parked:
        assert (malformed, parked) == (1, 1)
        assert delivery.outcome is not None and delivery.outcome.action == "park"
    else:
        assert (malformed, parked) == (0, 0)
