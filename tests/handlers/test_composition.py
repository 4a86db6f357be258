"""Composition automation end to end: routing → queue → handler code → moto DynamoDB + IVS stand-in."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from stagepilot.adapters.state import CompositionRecords
from stagepilot.automations.composition import CompositionAutomation
from stagepilot.decisions.composition import State
from stagepilot.decisions.leases import CLAIM_LEASE, HELD_RETRY_MARGIN
from stagepilot.errors import ClaimHeld
from stagepilot.local.deployment import LocalDeployment
from tests.handlers.conftest import Calls
from tests.support import (
    CHANNEL,
    ENCODER,
    SESSION,
    STAGE,
    STORAGE,
    EventFactory,
    deliver_concurrently,
    later,
    put_policy,
)

POLICY: dict[str, Any] = {
    "stageArn": STAGE,
    "composition": {
        "layout": {"grid": {"featuredParticipantAttribute": "featured"}},
        "destinations": [
            {"name": "live", "channel": {"channelArn": CHANNEL, "encoderConfigurationArn": ENCODER}},
            {"name": "archive", "s3": {"storageConfigurationArn": STORAGE, "encoderConfigurationArns": [ENCODER]}},
        ],
        "tags": {"team": "shows"},
        "maxRestarts": 2,
    },
}


@pytest.fixture
def show(make_deployment: Any) -> LocalDeployment:
    deployment: LocalDeployment = make_deployment(automations=[CompositionAutomation()])
    put_policy(deployment, POLICY)
    return deployment


def starts(deployment: LocalDeployment) -> list[dict[str, Any]]:
    """The StartComposition requests stagepilot made (the application's own are not counted)."""
    return [
        c.params
        for c in deployment.ivs.mutating_calls()
        if c.operation == "StartComposition" and c.params.get("tags", {}).get("stagepilot:managed") == "true"
    ]


def publish(deployment: LocalDeployment, event: dict[str, Any]) -> None:
    deployment.put_event(event)
    deployment.run_due()


def test_first_publisher_starts_the_composition_the_policy_describes(show: LocalDeployment, events: EventFactory):
    publish(show, events.published("host1", user_id="host-1"))

    assert starts(show) == [
        {
            "stageArn": STAGE,
            "idempotencyToken": f"sp-MainStage0001-{SESSION}-1",
            "layout": {"grid": {"featuredParticipantAttribute": "featured"}},
            "destinations": POLICY["composition"]["destinations"],
            "tags": {
                "team": "shows",
                "stagepilot:managed": "true",
                "stagepilot:session": SESSION,
                "stagepilot:attempt": "1",
            },
        }
    ]
    assert show.metrics.counts["CompositionStarted"] == 1
    assert [c.state for c in show.ivs.compositions(STAGE)] == ["ACTIVE"]


def test_second_publisher_and_duplicate_delivery_leave_one_composition(show: LocalDeployment, events: EventFactory):
    first = events.published("host1", user_id="host-1")
    publish(show, first)
    publish(show, events.published("host2", user_id="host-2", at=later(1)))
    publish(show, first)  # EventBridge delivered it again

    assert len(starts(show)) == 1
    skipped = [d.outcome.reason for d in show.deliveries if d.outcome and not d.outcome.acted]
    assert any("already started" in reason for reason in skipped)


def test_a_second_delivery_to_the_container_that_handled_the_event_costs_no_call(
    show: LocalDeployment, events: EventFactory
):
    first = events.published("host1", user_id="host-1")
    publish(show, first)
    calls = Calls(show.table.client)
    ivs_before = len(show.ivs.calls)

    show._route(first)  # EventBridge delivers it again, a moment later: the same container takes it
    show.run_due()

    assert (sum(calls.made.values()), len(show.ivs.calls) - ivs_before) == (0, 0)
    outcome = show.deliveries[-1].outcome
    assert outcome is not None and "a second delivery of an event this container handled" in outcome.reason
    assert len(starts(show)) == 1

    show.clock.advance_to(later(60))  # past the lifetime: a late copy is judged again, and changes nothing
    show._route(first)
    show.run_due()
    assert "already" in show.deliveries[-1].outcome.reason  # type: ignore[union-attr]
    assert len(starts(show)) == 1


def test_twenty_concurrent_invocations_for_one_session_start_once(show: LocalDeployment, events: EventFactory):
    import json

    show.ivs.observe(events.published("host1"))
    bodies = [json.dumps(events.published(f"p{i}", at=later(i % 3))) for i in range(20)]
    results = deliver_concurrently(show, show.automations["composition"], bodies)

    # Those that found the winner's claim live are sent back until its lease can have run out (a held claim
    # is retried, not dropped: test_held_claims.py); nothing else fails.
    assert [r for r in results if isinstance(r, BaseException) and not isinstance(r, ClaimHeld)] == []
    assert len(starts(show)) == 1
    assert len([c for c in show.ivs.compositions(STAGE) if c.state == "ACTIVE"]) == 1
    assert listings(show) == 0  # a new stage: the claim alone decides who starts
    show.clock.advance_to(show.clock() + CLAIM_LEASE + HELD_RETRY_MARGIN)  # their return finds it started
    again = deliver_concurrently(show, show.automations["composition"], bodies)
    assert [r for r in again if isinstance(r, BaseException)] == []
    assert len(starts(show)) == 1


def test_failed_composition_is_restarted_until_max_restarts(show: LocalDeployment, events: EventFactory):
    publish(show, events.published("host1"))
    for _ in range(3):  # maxRestarts is 2: two restarts, then give up
        show.clock.advance_to(show.clock() + timedelta(minutes=1))
        show.ivs.fail_compositions(STAGE)
        show.drain()

    tokens = [params["idempotencyToken"] for params in starts(show)]
    assert tokens == [f"sp-MainStage0001-{SESSION}-{n}" for n in (1, 2, 3)]
    assert show.metrics.counts["CompositionRestarted"] == 2
    assert show.metrics.counts["CompositionGaveUp"] == 1
    audit = show.services.audit.list(STAGE)
    assert [entry["action"] for entry in audit] == [
        "composition-gave-up",
        "composition-restarted",
        "composition-restarted",
        "composition-started",
    ]
    assert [entry["details"]["attempt"] for entry in audit[1:]] == [3, 2, 1]
    assert not any(show.dead_letters.values())


def test_restart_waits_for_its_back_off(show: LocalDeployment, events: EventFactory):
    publish(show, events.published("host1"))
    failed_at = show.clock()
    show.ivs.fail_compositions(STAGE)
    show.run_due()
    assert len(starts(show)) == 1  # not yet: the back-off has not passed
    show.drain()

    restart = [c for c in show.ivs.mutating_calls() if c.operation == "StartComposition"][1]
    assert restart.time - failed_at >= timedelta(seconds=5)


def test_max_restarts_zero_never_restarts(make_deployment: Any, events: EventFactory):
    deployment = make_deployment(automations=[CompositionAutomation()])
    put_policy(deployment, {**POLICY, "composition": {**POLICY["composition"], "maxRestarts": 0}})
    publish(deployment, events.published("host1"))
    deployment.ivs.fail_compositions(STAGE)
    deployment.drain()

    assert len(starts(deployment)) == 1


def test_duplicate_failure_event_restarts_once(show: LocalDeployment, events: EventFactory):
    publish(show, events.published("host1"))
    [failure] = show.ivs.fail_compositions(STAGE)
    show.drain()
    show.put_event(failure)  # delivered again, late
    show.drain()

    assert len(starts(show)) == 2


def test_normal_end_is_recorded_and_not_restarted(show: LocalDeployment, events: EventFactory):
    publish(show, events.published("host1"))
    show.ivs.end_session(STAGE)
    show.settle(120)  # IVS stops the composition a minute after everyone left (not at once)

    assert len(starts(show)) == 1
    reasons = [d.outcome.reason for d in show.deliveries if d.outcome]
    assert any("ended normally" in reason for reason in reasons)


def test_late_publish_after_a_normal_end_with_nobody_publishing_starts_nothing(
    show: LocalDeployment, events: EventFactory
):
    first = events.published("host1")
    publish(show, first)
    show.ivs.observe(events.stage("Participant Unpublished", "host1", at=later(10)))
    show.clock.advance_to(later(120))
    show.ivs.advance()  # the composition auto-stops after 60 s without a publisher
    show.run_due()
    late = events.published("host1", at=later(5))  # arrives late, out of order
    show._route(late)  # delivered without changing the stand-in's view of the world
    show.run_due()

    assert len(starts(show)) == 1


def test_event_for_a_session_that_is_no_longer_active_starts_nothing(show: LocalDeployment, events: EventFactory):
    show.ivs.observe(events.published("host9", session="st-NewerSession1", at=later(3600)))
    stale = events.published("host1", session=SESSION, at=later(10))
    show._route(stale)  # hours late: the stage has moved on to another session
    show.run_due()

    assert starts(show) == []
    assert "not the stage's active session" in show.deliveries[-1].outcome.reason  # type: ignore[union-attr]


def test_a_composition_the_application_started_is_never_restarted_or_counted(
    show: LocalDeployment, events: EventFactory
):
    show.ivs.observe(events.published("host1"))
    client = show.ivs.client()
    own = client.start_composition(
        stageArn=STAGE, destinations=[{"channel": {"channelArn": CHANNEL, "encoderConfigurationArn": ENCODER}}]
    )["composition"]["arn"]
    show.run_due()
    publish(show, events.published("host2", at=later(1)))

    assert len(starts(show)) == 1  # stagepilot still started its own: the app's composition does not count
    show.ivs.fail_compositions(STAGE)
    show.drain()
    reasons = [d.outcome.reason for d in show.deliveries if d.outcome]
    assert any("not a composition stagepilot started" in reason for reason in reasons)
    restarted = [p for p in starts(show) if p["idempotencyToken"].endswith("-2")]
    assert len(restarted) == 1 and own not in {c.arn for c in show.ivs.compositions(STAGE) if c.state == "ACTIVE"}


def test_validation_error_is_audited_and_not_retried(show: LocalDeployment, events: EventFactory):
    show.ivs.missing(CHANNEL)
    publish(show, events.published("host1"))
    show.drain()

    assert starts(show) == []
    [entry] = show.services.audit.list(STAGE)
    assert entry["action"] == "composition-rejected"
    assert entry["result"] == "ValidationException"
    assert CHANNEL in entry["reason"]
    assert show.metrics.counts["CompositionStartFailed"] == 1
    assert [d.receive for d in show.deliveries if d.automation == "composition"] == [1]

    # The operator fixes the policy; the next publisher in the same session tries again.
    show.clock.advance_to(later(60))
    put_policy(
        show,
        {**POLICY, "composition": {**POLICY["composition"], "destinations": POLICY["composition"]["destinations"][1:]}},
    )
    publish(show, events.published("host2", at=later(61)))
    assert len(starts(show)) == 1


def test_server_error_is_retried_then_succeeds(show: LocalDeployment, events: EventFactory):
    show.ivs.fail_next("StartComposition", 3, error="InternalServerException")  # botocore retries twice itself
    publish(show, events.published("host1"))
    show.drain()

    assert len(starts(show)) == 1
    receives = [d.receive for d in show.deliveries if d.automation == "composition" and d.event.get("source")]
    assert receives[:2] == [1, 2]
    assert not any(show.dead_letters.values())


def test_persistent_throttling_ends_in_the_dead_letter_queue(show: LocalDeployment, events: EventFactory):
    show.ivs.fail_next("StartComposition", 100, error="ThrottlingException")
    publish(show, events.published("host1"))
    show.drain()

    assert starts(show) == []
    [(body, error)] = show.dead_letters["composition"]
    assert "Participant Published" in body and "ThrottlingException" in error


def test_paused_stage_and_stage_without_composition_section_start_nothing(make_deployment: Any, events: EventFactory):
    deployment = make_deployment(automations=[CompositionAutomation()])
    put_policy(deployment, {**POLICY, "paused": True})
    publish(deployment, events.published("host1"))
    put_policy(deployment, {"stageArn": "default", "moderation": {}})
    publish(deployment, events.published("host1", stage="arn:aws:ivs:us-east-1:123456789012:stage/Other", at=later(1)))

    assert starts(deployment) == []
    reasons = [d.outcome.reason for d in deployment.deliveries if d.outcome]
    assert reasons == ["stage is paused", "the stage's policy has no composition section"]


def test_recording_failures_are_audited_and_counted_and_states_kept_for_status(
    show: LocalDeployment, events: EventFactory
):
    from stagepilot.adapters.state import RecordingRecords

    show.ivs.set_stage_recording(STAGE, {"storageConfigurationArn": STORAGE})
    publish(show, events.published("host1", user_id="host-1"))
    show.ivs.fail_recordings(STAGE)
    show.run_due()

    recorded = RecordingRecords(show.table).get(STAGE, SESSION, "host1")
    assert recorded is not None and recorded["eventName"] == "Recording End Failure"
    assert recorded["keyPrefix"].startswith(f"MainStage0001/{SESSION}/host1/")
    [entry] = [e for e in show.services.audit.list(STAGE) if e["action"] == "recording-failed"]
    assert (entry["participantId"], entry["result"]) == ("host1", "Recording End Failure")
    assert show.metrics.counts["RecordingFailed"] == 1


def test_a_lost_recording_event_changes_nothing_else(show: LocalDeployment, events: EventFactory):
    show.ivs.set_stage_recording(STAGE, {"storageConfigurationArn": STORAGE})
    show.lose_emitted("Recording Start", stage_arn=STAGE)
    publish(show, events.published("host1", user_id="host-1"))
    assert [e["detail"]["event_name"] for e in show.lost] == ["Recording Start"]
    assert len(starts(show)) == 1


def carried_into_the_next_session(show: LocalDeployment, events: EventFactory) -> str:
    """The host publishes, everyone leaves and is back within the minute in a new session: the same
    composition carries on, and the new session's record adopts it. Returns the new session id."""
    publish(show, events.published("host1", user_id="host-1"))
    show.ivs.leave(STAGE, "host1")
    publish(show, events.published("host1", user_id="host-1", session="st-NextSession01", at=later(40)))
    assert len(starts(show)) == 1 and len([c for c in show.ivs.compositions(STAGE) if c.state == "ACTIVE"]) == 1
    return "st-NextSession01"


def test_a_carried_compositions_end_closes_the_new_sessions_record_too(show: LocalDeployment, events: EventFactory):
    session = carried_into_the_next_session(show, events)
    show.put_event(events.stage("Participant Unpublished", "host1", session=session, at=later(100)))
    show.settle(120)  # IVS stops it a minute later; its Session End names the first session in its tags

    publish(show, events.published("host1", user_id="host-1", session=session, at=later(400)))

    assert len(starts(show)) == 2  # the event path alone: no convergence pass in this deployment
    assert len([c for c in show.ivs.compositions(STAGE) if c.state == "ACTIVE"]) == 1


def test_a_carried_composition_that_fails_is_restarted_for_the_new_session(show: LocalDeployment, events: EventFactory):
    session = carried_into_the_next_session(show, events)
    show.ivs.fail_compositions(STAGE)
    show.settle(60)

    restarts = starts(show)[1:]
    assert [r["tags"]["stagepilot:session"] for r in restarts] == [session]
    assert len([c for c in show.ivs.compositions(STAGE) if c.state == "ACTIVE"]) == 1


# the stage's composition ledger: ListCompositions only when the claim cannot tell ------------------
def listings(deployment: LocalDeployment) -> int:
    return sum(1 for c in deployment.ivs.calls if c.operation == "ListCompositions")


def ended_normally(show: LocalDeployment, events: EventFactory, session: str, at: int) -> None:
    """``session``'s host publishes, its composition starts; everyone leaves and IVS ends it."""
    publish(show, events.published("host1", user_id="host-1", session=session, at=later(at)))
    show.ivs.end_session(STAGE)
    show.settle(120)


def test_a_first_start_on_a_new_stage_and_the_next_sessions_start_ask_ivs_nothing(
    show: LocalDeployment, events: EventFactory
):
    ended_normally(show, events, SESSION, 0)
    assert listings(show) == 0  # no ledger and no record: nothing of stagepilot's can be live on the stage

    before = listings(show)
    publish(show, events.published("host2", user_id="host-2", session="st-NextSession01", at=later(600)))

    assert len(starts(show)) == 2
    assert listings(show) == before  # the first session left the ledger at its Session End


def test_a_lost_session_end_makes_the_next_session_ask_once_and_then_not_again(
    show: LocalDeployment, events: EventFactory
):
    publish(show, events.published("host1", user_id="host-1"))
    show.lose_emitted("Session End", stage_arn=STAGE)
    show.ivs.end_session(STAGE)
    show.settle(300)  # IVS ended the composition; nobody heard: the first session is still in the ledger

    before = listings(show)
    ended_normally(show, events, "st-NextSession01", 600)
    assert listings(show) == before + 1  # the entry left behind makes it ask; IVS shows it stale
    assert len(starts(show)) == 2

    before = listings(show)
    publish(show, events.published("host3", user_id="host-3", session="st-ThirdSession1", at=later(1200)))
    assert listings(show) == before  # the stale entry was dropped, the second session left at its end
    assert len(starts(show)) == 3


def test_a_resumed_claim_asks_ivs_before_starting_again(show: LocalDeployment, events: EventFactory):
    ended_normally(show, events, SESSION, 0)
    show.ivs.fail_next("StartComposition", error="InternalServerException")

    before = listings(show)
    publish(show, events.published("host2", user_id="host-2", session="st-NextSession01", at=later(600)))
    assert listings(show) == before  # a fresh claim on a stage whose compositions all ended
    show.drain()  # the retry resumes its own claim: an earlier try may have started it

    assert listings(show) == before + 1
    assert len([c for c in show.ivs.compositions(STAGE) if c.state == "ACTIVE"]) == 1


def test_a_carried_composition_is_found_through_the_ledger(show: LocalDeployment, events: EventFactory):
    ended_normally(show, events, SESSION, 0)  # the stage has a ledger: only its entries make a start ask
    before = listings(show)
    publish(show, events.published("host1", user_id="host-1", session="st-SecondSessio1", at=later(600)))
    show.ivs.leave(STAGE, "host1")
    publish(show, events.published("host1", user_id="host-1", session="st-ThirdSession1", at=later(640)))

    assert listings(show) == before + 1  # the second session's entry: its composition may carry on
    assert len(starts(show)) == 2
    assert len([c for c in show.ivs.compositions(STAGE) if c.state == "ACTIVE"]) == 1


def test_the_ledger_keeps_a_renewed_entry_and_drops_a_session_whose_record_ends(show: LocalDeployment):
    records = CompositionRecords(show.table, clock=show.clock)
    assert records.enter(STAGE, "st-FirstSession1").kept is False
    seen = records.enter(STAGE, "st-SecondSessio1").others
    assert list(seen) == ["st-FirstSession1"]

    show.clock.advance_to(later(30))
    records.enter(STAGE, "st-FirstSession1")  # a takeover renews the entry: what was seen is not it any more
    assert records.forget(STAGE, seen) is False
    assert list(records.enter(STAGE, "st-ThirdSession1").others) == ["st-FirstSession1", "st-SecondSessio1"]

    claimed, _ = records.claim_first(STAGE, "st-SecondSessio1", owner="e-1")
    assert claimed
    assert records.mark(STAGE, "st-SecondSessio1", attempt=1, state=State.STALE, from_states=(State.CLAIMED,))
    assert not records.mark(STAGE, "st-FirstSession1", attempt=1, state=State.ENDED, from_states=(State.STARTED,))
    assert list(records.enter(STAGE, "st-ThirdSession1").others) == ["st-FirstSession1"]


def test_a_late_duplicated_event_on_a_stage_with_a_ledger_starts_nothing_and_keeps_the_live_entry(
    show: LocalDeployment, events: EventFactory
):
    ended_normally(show, events, SESSION, 0)
    publish(show, events.published("host2", user_id="host-2", session="st-SecondSessio1", at=later(600)))
    late = events.published("host1", user_id="host-1", at=later(400))  # the first session's, delivered hours late
    show.clock.advance_to(later(3 * 3600))
    for _ in range(2):  # and delivered twice
        show._route(late)
        show.run_due()

    assert len(starts(show)) == 2
    assert "not the stage's active session" in show.deliveries[-2].outcome.reason  # type: ignore[union-attr]
    records = CompositionRecords(show.table, clock=show.clock)
    assert list(records.enter(STAGE, "st-ThirdSession1").others) == ["st-SecondSessio1"]
