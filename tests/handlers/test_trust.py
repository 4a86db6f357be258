"""Who may make the functions act: bodies sent straight to a queue (past the rules) are checked again.

A body in a queue is only a claim. The functions act on it only if its source is allowed, its account
and region are the stack's own, and its time is believable; otherwise it is parked as malformed, with
the reason, and nothing is called on IVS. Flags count only where the policy sets ``flagLimit``.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest

from stagepilot.automations.moderation import ModerationAutomation
from stagepilot.local.deployment import LocalDeployment
from tests.support import STAGE, T0, EventFactory, later, put_policy

BLOCKS_ONLY = {"stageArn": STAGE, "moderation": {"blockedUserIds": ["spammer-7"]}}
COUNTS_FLAGS = {
    "stageArn": STAGE,
    "moderation": {"blockedUserIds": ["spammer-7"], "flagLimit": {"count": 1, "windowSeconds": 300}},
}


@pytest.fixture
def moderation(make_deployment: Any) -> LocalDeployment:
    deployment: LocalDeployment = make_deployment(automations=[ModerationAutomation()])
    deployment.ivs.observe(EventFactory().published("p1", user_id="viewer-3", event_id="joined"))
    return deployment


def disconnects(deployment: LocalDeployment) -> list[dict[str, Any]]:
    return [c.params for c in deployment.ivs.mutating_calls() if c.operation == "DisconnectParticipant"]


def forge(deployment: LocalDeployment, event: dict[str, Any]) -> None:
    """Someone with sqs:SendMessage puts a body on the moderation queue directly (no rule involved)."""
    deployment.put_raw("moderation", json.dumps(event))
    deployment.drain()


# flags -----------------------------------------------------------------------------------------------
def test_a_flag_on_a_policy_without_flag_limit_kicks_no_one(moderation: LocalDeployment, events: EventFactory) -> None:
    put_policy(moderation, BLOCKS_ONLY)

    for second in range(3):
        moderation.put_event(events.flagged("p1", user_id="viewer-3", at=later(second)))
    moderation.drain()

    assert disconnects(moderation) == []
    assert {d.outcome.reason for d in moderation.deliveries if d.outcome} == {
        "the stage's policy sets no flagLimit: flags are not counted"
    }
    assert moderation.services.audit.list(STAGE) == []


def test_a_flag_on_a_policy_with_flag_limit_kicks(moderation: LocalDeployment, events: EventFactory) -> None:
    put_policy(moderation, COUNTS_FLAGS)

    moderation.put_event(events.flagged("p1", user_id="viewer-3", at=later(1)))
    moderation.drain()

    assert [d["participantId"] for d in disconnects(moderation)] == ["p1"]


# forged bodies ---------------------------------------------------------------------------------------
def _with(event: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {**event, **fields}


FORGERIES = {
    "another account": (lambda e: _with(e.published("p1", user_id="spammer-7"), account="210987654321"), "account"),
    "another region": (lambda e: _with(e.published("p1", user_id="spammer-7"), region="eu-west-1"), "region"),
    "a flag from a source not allowed": (lambda e: e.flagged("p1", source="someone.else"), "source"),
    "a flag dated 2001": (lambda e: e.flagged("p1", at=T0.replace(year=2001)), "older than the stack's queues"),
    "a flag dated 9999": (lambda e: _with(e.flagged("p1"), time="9999-12-31T23:59:59Z"), "in the future"),
    "a flag past the last representable time": (
        lambda e: _with(e.flagged("p1"), time="9999-12-31T23:00:00-05:00"),
        "out of range",
    ),
    "publish errors from tomorrow": (
        lambda e: e.publish_error("p1", user_id="viewer-3", at=T0 + timedelta(days=1)),
        "in the future",
    ),
}


@pytest.mark.parametrize("name", sorted(FORGERIES))
def test_a_forged_body_in_the_queue_is_parked_without_acting(
    moderation: LocalDeployment, events: EventFactory, name: str
) -> None:
    put_policy(
        moderation,
        {
            **COUNTS_FLAGS,
            "moderation": {**COUNTS_FLAGS["moderation"], "publishErrorLimit": {"count": 1, "windowSeconds": 60}},
        },
    )
    build, why = FORGERIES[name]

    forge(moderation, build(events))

    assert disconnects(moderation) == []
    [delivery] = moderation.deliveries  # parked at once: not retried
    assert delivery.parked and delivery.outcome is not None and delivery.outcome.action == "park"
    [(_body, reason)] = moderation.dead_letters["moderation"]
    assert reason.startswith("malformed event: ") and why in reason
    assert moderation.metrics.counts["MalformedEvent"] == 1


def test_the_same_body_with_the_stacks_own_origin_is_acted_on(
    moderation: LocalDeployment, events: EventFactory
) -> None:
    # The control for the forgeries: the checks refuse what is wrong, not every body sent to a queue.
    # (About a participant IVS knows as that user: IVS's answer, not the body, says who it is.)
    put_policy(moderation, COUNTS_FLAGS)
    moderation.ivs.declare_participant(STAGE, "p1", user_id="spammer-7")

    forge(moderation, events.published("p1", user_id="spammer-7", at=later(2)))

    assert [d["participantId"] for d in disconnects(moderation)] == ["p1"]
    assert moderation.dead_letters["moderation"] == []


def test_a_body_naming_a_participant_as_a_blocked_user_ivs_does_not_know_as_that_user_kicks_no_one(
    moderation: LocalDeployment, events: EventFactory
) -> None:
    put_policy(moderation, COUNTS_FLAGS)

    forge(moderation, events.published("p1", user_id="spammer-7", at=later(2)))  # p1 is viewer-3 at IVS

    assert disconnects(moderation) == []
    assert [e["action"] for e in moderation.services.audit.list(STAGE)] == ["body-mismatch"]


def test_an_event_a_little_ahead_of_the_clock_is_acted_on(moderation: LocalDeployment, events: EventFactory) -> None:
    # Clocks differ: up to 5 minutes ahead is believed.
    put_policy(moderation, COUNTS_FLAGS)

    forge(moderation, events.flagged("p1", user_id="viewer-3", at=moderation.clock() + timedelta(minutes=4)))

    assert [d["participantId"] for d in disconnects(moderation)] == ["p1"]


# time the audit trail can trust --------------------------------------------------------------------------
def test_audit_entries_are_dated_and_expire_by_processing_time(
    moderation: LocalDeployment, events: EventFactory
) -> None:
    put_policy(moderation, COUNTS_FLAGS)
    moderation.run_until(T0 + timedelta(hours=3))
    late = events.flagged("p1", user_id="viewer-3", at=T0 + timedelta(minutes=1))  # delivered 3 h late

    forge(moderation, late)

    [entry] = moderation.services.audit.list(STAGE)
    assert entry["time"].startswith("2026-11-21T23:00:0")  # when it was acted on (its calls and pacing take s)
    assert entry["eventTime"] == "2026-11-21T20:01:00.000Z"  # what the event said
    [item] = moderation.table.query(f"AUDIT#{STAGE}")
    assert item["sk"].startswith(f"{entry['time']}#")
    acted = datetime.fromisoformat(entry["time"].replace("Z", "+00:00"))
    assert item["expiresAt"] == int((acted + timedelta(days=90)).timestamp())
