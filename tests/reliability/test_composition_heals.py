"""Compositions the convergence pass heals when IVS's events were lost (docs/reliability.md, issue 22 items 6 and 8).

``maxRestarts`` bounds restarts whoever makes them: IVS lists a FAILED composition for about five
minutes, and the pass records that failure as the lost ``Session Failure`` would have, so its restart
counts. A composition that ended normally is no failure. And a heal says what was observed: a
composition IVS ended (a failure, its 24 hours, an idle stop) restarted by the pass is ``ivs-ended``,
never ``event-lost``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from stagepilot.adapters.state import CompositionRecords
from stagepilot.decisions.composition import State
from stagepilot.local.deployment import LocalDeployment
from stagepilot.local.simulate import read_scenario, simulate
from stagepilot.policy import parse_policy
from tests.support import CHANNEL, ENCODER, SESSION, STAGE, EventFactory, later, put_policy

PASS = 60  # the deployed period


def policy(max_restarts: int) -> dict[str, Any]:
    return {
        "stageArn": STAGE,
        "composition": {
            "destinations": [{"name": "live", "channel": {"channelArn": CHANNEL, "encoderConfigurationArn": ENCODER}}],
            "maxRestarts": max_restarts,
        },
    }


def show(make_deployment: Any, *, max_restarts: int, reconcile_seconds: int | None = PASS) -> LocalDeployment:
    deployment: LocalDeployment = make_deployment(reconcile_seconds=reconcile_seconds)
    put_policy(deployment, policy(max_restarts))
    return deployment


def starts(deployment: LocalDeployment) -> list[dict[str, Any]]:
    return [c.params for c in deployment.ivs.mutating_calls() if c.operation == "StartComposition"]


def live(deployment: LocalDeployment) -> list[Any]:
    return [c for c in deployment.ivs.compositions(STAGE) if c.state in ("STARTING", "ACTIVE")]


def audit(deployment: LocalDeployment, action: str) -> list[dict[str, Any]]:
    return [e for e in deployment.services.audit.list(STAGE, limit=100) if e.get("action") == action]


def heal_reasons(deployment: LocalDeployment) -> list[str]:
    return [str((e.get("details") or {}).get("healReason")) for e in audit(deployment, "healed")]


def record(deployment: LocalDeployment) -> Any:
    return CompositionRecords(deployment.services.table).get(STAGE, SESSION)


def test_max_restarts_0_holds_when_the_session_failure_is_lost(make_deployment: Any, events: EventFactory) -> None:
    deployment = show(make_deployment, max_restarts=0)
    deployment.put_event(events.published("host"))
    deployment.settle(5)
    deployment.lose_emitted("Session Failure", stage_arn=STAGE)
    deployment.ivs.fail_compositions(STAGE)

    deployment.settle(3 * PASS + 600)  # past IVS's five minutes: the FAILED composition is forgotten

    assert len(starts(deployment)) == 1
    assert live(deployment) == []
    assert (record(deployment).state, record(deployment).restarts) == (State.GAVE_UP, 0)
    [gave_up] = audit(deployment, "composition-gave-up")
    assert gave_up["reason"] == "maxRestarts (0) reached"
    assert deployment.metrics.counts.get("CompositionGaveUp") == 1
    assert audit(deployment, "healed") == []


def test_max_restarts_1_with_two_lost_failures_starts_twice_in_all(make_deployment: Any, events: EventFactory) -> None:
    deployment = show(make_deployment, max_restarts=1)
    deployment.lose_emitted("Session Failure", count=2, stage_arn=STAGE)
    deployment.put_event(events.published("host"))
    deployment.settle(5)
    deployment.ivs.fail_compositions(STAGE)
    deployment.settle(3 * PASS)
    assert len(starts(deployment)) == 2  # the pass restarted it: restart 1 of 1
    assert len(live(deployment)) == 1

    deployment.ivs.fail_compositions(STAGE)
    deployment.settle(3 * PASS + 600)

    assert [s["idempotencyToken"].rsplit("-", 1)[1] for s in starts(deployment)] == ["1", "2"]
    assert live(deployment) == []
    assert (record(deployment).state, record(deployment).restarts) == (State.GAVE_UP, 1)
    assert deployment.metrics.counts.get("CompositionRestarted") == 1
    assert heal_reasons(deployment) == ["ivs-ended"]
    assert deployment.metrics.counts.get("HealedIvsEnded") == 1
    assert "HealedEventLost" not in deployment.metrics.counts  # HealedAlarm's metric: no event was lost


def test_a_lost_failure_is_restarted_after_the_back_off_and_counted(make_deployment: Any, events: EventFactory) -> None:
    deployment = show(make_deployment, max_restarts=3)
    deployment.lose_emitted("Session Failure", stage_arn=STAGE)
    deployment.put_event(events.published("host"))
    deployment.settle(5)
    deployment.ivs.fail_compositions(STAGE)

    deployment.settle(3 * PASS)

    assert len(starts(deployment)) == 2 and len(live(deployment)) == 1
    assert (record(deployment).state, record(deployment).restarts) == (State.STARTED, 1)
    [restarted] = audit(deployment, "composition-restarted")
    assert restarted["eventId"].startswith("reconcile:")
    assert heal_reasons(deployment) == ["ivs-ended"]


def test_a_restart_cut_short_is_finished_by_the_next_pass_counted_once(
    make_deployment: Any, events: EventFactory
) -> None:
    """The pass's restart is throttled after its claim: the next pass finishes it, with the same reason,
    and the restart counts once (maxRestarts 1: no second one)."""
    deployment = show(make_deployment, max_restarts=1)
    deployment.lose_emitted("Session Failure", stage_arn=STAGE)
    deployment.put_event(events.published("host"))
    deployment.settle(5)
    deployment.ivs.fail_next("StartComposition", 1, error="ThrottlingException")
    deployment.ivs.fail_compositions(STAGE)

    deployment.settle(3 * PASS)

    assert len(starts(deployment)) == 2 and len(live(deployment)) == 1
    assert (record(deployment).state, record(deployment).restarts) == (State.STARTED, 1)
    assert heal_reasons(deployment) == ["ivs-ended"]


def test_a_failure_event_in_its_back_off_is_left_to_the_event(make_deployment: Any, events: EventFactory) -> None:
    """The failure event was delivered and waits out its restart back-off: a pass then does not race it."""
    deployment = show(make_deployment, max_restarts=3, reconcile_seconds=None)
    deployment.put_event(events.published("host"))
    deployment.settle(5)
    deployment.ivs.fail_compositions(STAGE)
    deployment.settle(1)  # the Session Failure is handled: FAILED, its restart due 5 s after the failure
    assert record(deployment).state is State.FAILED

    deployment.reconcile()
    deployment.settle(3 * PASS)

    assert len(starts(deployment)) == 2
    [restarted] = audit(deployment, "composition-restarted")
    assert not restarted["eventId"].startswith("reconcile:")
    assert audit(deployment, "healed") == []


def test_an_idle_stop_whose_session_end_is_lost_is_no_failure(make_deployment: Any, events: EventFactory) -> None:
    """Nobody published for a minute: IVS stopped the composition (STOPPED, not FAILED). Restarting it
    when someone publishes again is not a restart, even with maxRestarts 0."""
    deployment = show(make_deployment, max_restarts=0)
    deployment.lose_emitted("Session End", stage_arn=STAGE)
    deployment.put_event(events.published("host"))
    deployment.put_event(events.stage("Participant Unpublished", "host", at=later(10)))
    deployment.settle(75)
    assert live(deployment) == []
    deployment.put_event(events.published("host", at=later(120)))  # back within IVS's five minutes

    deployment.settle(3 * PASS)

    assert len(starts(deployment)) == 2 and len(live(deployment)) == 1
    assert record(deployment).restarts == 0
    assert heal_reasons(deployment) == ["ivs-ended"]
    assert audit(deployment, "composition-gave-up") == []


@pytest.mark.parametrize("session_end", ["lost", "delivered"])
def test_a_24_hour_composition_is_rolled_over_never_a_lost_event(
    make_deployment: Any, events: EventFactory, session_end: str
) -> None:
    """IVS ends a composition at 24 hours while its stage still publishes: its successor is a rollover
    (docs/policy.md), never a lost event nor a restart (``maxRestarts: 0`` allows none), whether its
    Session End arrived (the event path starts it at once: a channel takes one composition at a time) or
    was lost (the pass, from IVS's listing)."""
    deployment = show(make_deployment, max_restarts=0, reconcile_seconds=None)
    if session_end == "lost":
        deployment.lose_emitted("Session End", stage_arn=STAGE)
    deployment.put_event(events.published("host"))
    deployment.put_event(events.published("cohost", at=later(23 * 3600)))  # a fresh connection for the next day
    deployment.settle(3600 + 30)  # from the cohost's publish
    assert len(live(deployment)) == (0 if session_end == "lost" else 1)

    deployment.reconcile()

    assert len(starts(deployment)) == 2 and len(live(deployment)) == 1
    [rollover] = audit(deployment, "rollover")
    assert "24-hour limit" in rollover["reason"]
    assert heal_reasons(deployment) == (["rollover"] if session_end == "lost" else [])
    assert record(deployment).restarts == 0
    assert deployment.metrics.counts.get("CompositionRolledOver") == 1
    assert "HealedEventLost" not in deployment.metrics.counts


@pytest.mark.parametrize("cleaned_up", [False, True])
def test_an_ended_composition_is_confirmed_with_ivs_when_the_listing_is_older(
    make_deployment: Any, events: EventFactory, cleaned_up: bool
) -> None:
    """The record's composition is not in the pass's listing: GetComposition tells how it ended (FAILED:
    counted), or that IVS has forgotten it (then it cannot be told from a normal end: not counted)."""
    deployment = show(make_deployment, max_restarts=0, reconcile_seconds=None)
    deployment.lose_emitted("Session Failure", stage_arn=STAGE)
    deployment.put_event(events.published("host"))
    deployment.settle(5)
    deployment.ivs.fail_compositions(STAGE)
    deployment.settle(400 if cleaned_up else 60)
    services = deployment.function_services("convergence")
    listing = services.ivs.all_compositions

    services.ivs.all_compositions = lambda: []  # type: ignore[method-assign]  # listed before the stage's turn
    try:
        from stagepilot.automations.composition import CompositionAutomation
        from stagepilot.convergence import run_pass

        run_pass(services, [CompositionAutomation()])
    finally:
        services.ivs.all_compositions = listing  # type: ignore[method-assign]

    assert len(starts(deployment)) == (2 if cleaned_up else 1)
    assert record(deployment).state is (State.STARTED if cleaned_up else State.GAVE_UP)


def test_simulate_holds_max_restarts_0_when_the_session_failure_is_lost() -> None:
    """The same story as a ``stagepilot simulate`` scenario (``lose-emitted`` + ``composition-failure``)."""
    publish = EventFactory().published("host")
    lines = [
        {"simulate": "lose-emitted", "eventName": "Session Failure", "count": 1, "stageArn": STAGE},
        publish,
        {"simulate": "composition-failure", "stageArn": STAGE, "time": (later(30)).strftime("%Y-%m-%dT%H:%M:%SZ")},
    ]
    scenario = read_scenario("\n".join(json.dumps(line) for line in lines))
    assert not scenario.errors

    result = simulate([parse_policy(policy(0))], scenario, settle_seconds=600)

    assert [c["operation"] for c in result.calls] == ["StartComposition"]
    assert result.metrics.get("CompositionGaveUp") == 1
