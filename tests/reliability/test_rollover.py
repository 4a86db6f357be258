"""A show longer than IVS's 24-hour composition limit (docs/policy.md, "Rollover"; issue 28).

At 24 hours IVS ends every composition. With only an S3 destination the convergence pass starts its
successor before the limit (at most 2 minutes of overlap, no gap in the recording); with a channel the
successor starts as soon as IVS has ended the predecessor (a channel takes one composition at a time).
Either way it is audited ``rollover`` with both S3 prefixes, never ``event-lost`` (the events-lost alarm),
never a restart. Each show runs 26 hours of virtual time with the pass every minute, as deployed, from
half an hour before the limit (``make test``: the hours before ask nothing of the pass, and 1,500 passes
cost half a minute of CPU), or from the start (``make soak``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from stagepilot.adapters.state import CompositionRecords
from stagepilot.local.deployment import LocalDeployment
from tests.support import CHANNEL, ENCODER, SESSION, STAGE, STORAGE, T0, EventFactory, later, put_policy

PASS = 60
S3 = {"name": "archive", "s3": {"storageConfigurationArn": STORAGE, "encoderConfigurationArns": [ENCODER]}}
LIVE = {"name": "live", "channel": {"channelArn": CHANNEL, "encoderConfigurationArn": ENCODER}}


def run_show(
    make_deployment: Any,
    events: EventFactory,
    destinations: list[dict[str, Any]],
    *,
    passes_from: timedelta,
    lose_session_end: bool = False,
) -> LocalDeployment:
    """A host from the start and a cohost from hour 12 (each connection lasts 24 hours at most), 26 hours;
    the pass every minute from ``passes_from``."""
    deployment: LocalDeployment = make_deployment(reconcile_seconds=None)
    deployment.every(timedelta(seconds=PASS), deployment.reconcile, first=T0 + passes_from)
    if lose_session_end:
        deployment.lose_emitted("Session End", stage_arn=STAGE)
    put_policy(deployment, {"stageArn": STAGE, "composition": {"destinations": destinations, "maxRestarts": 0}})
    deployment.put_event(events.published("host"))
    deployment.put_event(events.published("cohost", at=later(12 * 3600)))
    deployment.run_until(T0 + timedelta(hours=26))
    return deployment


FAST = pytest.param(timedelta(hours=23, minutes=30), id="passes-from-23h30")
WHOLE = pytest.param(timedelta(seconds=PASS), id="every-pass", marks=pytest.mark.slow)
pytestmark = pytest.mark.story  # 26 hours of a show each


def compositions(deployment: LocalDeployment) -> list[Any]:
    return sorted(deployment.ivs.compositions(STAGE, include_deleted=True), key=lambda c: c.start_time)


def audit(deployment: LocalDeployment, action: str) -> list[dict[str, Any]]:
    return [e for e in deployment.services.audit.list(STAGE, limit=500) if e.get("action") == action]


def assert_rolled_over_once(deployment: LocalDeployment) -> dict[str, Any]:
    starts = [c for c in deployment.ivs.mutating_calls() if c.operation == "StartComposition"]
    assert len(starts) == 2  # the first, and its one successor: nothing more in 26 hours
    assert [c.operation for c in deployment.ivs.mutating_calls()] == ["StartComposition", "StartComposition"]
    [rollover] = audit(deployment, "rollover")
    first, second = compositions(deployment)
    assert rollover["details"]["predecessorArn"] == first.arn
    assert rollover["details"]["compositionArn"] == second.arn
    assert CompositionRecords(deployment.services.table).get(STAGE, SESSION).restarts == 0  # maxRestarts 0 unspent
    assert "HealedEventLost" not in deployment.metrics.counts  # nothing raised the events-lost alarm
    assert audit(deployment, "composition-restarted") == [] and audit(deployment, "composition-gave-up") == []
    assert deployment.metrics.counts.get("CompositionRolledOver") == 1
    return rollover


@pytest.mark.parametrize("passes_from", [FAST, WHOLE])
def test_an_s3_only_show_of_26_hours_has_two_compositions_overlapping_at_most_2_minutes(
    make_deployment: Any, events: EventFactory, passes_from: timedelta
) -> None:
    deployment = run_show(make_deployment, events, [S3], passes_from=passes_from)

    rollover = assert_rolled_over_once(deployment)
    first, second = compositions(deployment)
    assert first.end_time == first.start_time + timedelta(hours=24)  # IVS's own limit ended it
    overlap = first.end_time - second.start_time
    assert timedelta(0) < overlap <= timedelta(minutes=2)  # no gap in the recording, at most 2 minutes twice
    assert second.state == "ACTIVE"
    # both recordings are in the audit, where an operator looks for them
    assert rollover["details"]["predecessorS3Prefix"] == first.destinations[0].recording_prefix
    assert rollover["details"]["s3Prefix"] == second.destinations[0].recording_prefix
    healed = audit(deployment, "healed")
    assert [e["details"]["healReason"] for e in healed] == ["rollover"]


@pytest.mark.parametrize("passes_from", [FAST, WHOLE])
@pytest.mark.parametrize("session_end", ["delivered", "lost"])
def test_a_channel_show_of_26_hours_has_a_gap_no_longer_than_one_start(
    make_deployment: Any, events: EventFactory, session_end: str, passes_from: timedelta
) -> None:
    deployment = run_show(
        make_deployment, events, [LIVE, S3], passes_from=passes_from, lose_session_end=session_end == "lost"
    )

    assert_rolled_over_once(deployment)
    first, second = compositions(deployment)
    assert first.end_time == first.start_time + timedelta(hours=24)
    gap = second.start_time - first.end_time
    # the channel is free only once IVS ended the predecessor: the successor starts on its Session End
    # (one delivery and one start), or on the next pass when that event was lost
    assert timedelta(0) <= gap <= (timedelta(seconds=PASS + 5) if session_end == "lost" else timedelta(seconds=5))
    reasons = [e["details"]["healReason"] for e in audit(deployment, "healed")]
    assert reasons == (["rollover"] if session_end == "lost" else [])


def test_a_channel_shows_24_hour_end_delivered_three_times_beside_a_reconnecting_host_has_one_successor(
    make_deployment: Any, events: EventFactory
) -> None:
    """EventBridge delivers at least once: the ``Session End`` at the limit comes three times within half a
    second, each copy in its own container, as the host (whose own connection IVS cut at 24 hours too)
    publishes again, with the pass every minute. The copies that find another's claim on the successor come
    back once its lease can have run out and find it started. (Before, a copy that came after another's
    claim took it for its own end, wrote "ended" over it and started a second successor on the channel.)"""
    deployment: LocalDeployment = make_deployment(reconcile_seconds=None)
    deployment.every(
        timedelta(seconds=PASS), deployment.reconcile, first=T0 + timedelta(hours=23, minutes=30, seconds=30)
    )
    put_policy(deployment, {"stageArn": STAGE, "composition": {"destinations": [LIVE, S3], "maxRestarts": 0}})
    deployment.lose_emitted("Session End", stage_arn=STAGE)  # held back, to be delivered three times
    deployment.put_event(events.published("host"))
    deployment.put_event(events.published("cohost", at=later(12 * 3600)))
    deployment.run_until(T0 + timedelta(hours=24, seconds=1))
    [end] = [e for e in deployment.lost if e["detail"]["event_name"] == "Session End"]
    for delay in (0.0, 0.2, 0.5):
        deployment.put_event(end, observe=False, delay_seconds=delay)
    deployment.put_event(events.published("host", at=later(24 * 3600 + 1)))
    deployment.run_until(T0 + timedelta(hours=26))

    assert_rolled_over_once(deployment)
    first, second = compositions(deployment)
    assert timedelta(0) <= second.start_time - first.end_time <= timedelta(seconds=5)
    assert audit(deployment, "healed") == []  # the event path did it: nothing for the pass to heal
    held = [d for d in deployment.deliveries if d.error is not None]
    assert held and all(d.error is not None and d.error.startswith("ClaimHeld: ") for d in held)
    assert not any(deployment.dead_letters.values())
