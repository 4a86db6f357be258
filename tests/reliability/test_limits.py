"""What a stage may cost (docs/policy.md, "What a stage may cost"; issue 28): the policy's ``limits`` stop a
session's composition, on the virtual clock with the convergence pass every minute, as deployed.

A ``maxSessionMinutes`` or ``hostGone`` stop is final for the session: no event, retry or pass composes
again in it. A ``noPublisherSeconds`` stop is like IVS's own idle stop: a later publish composes again.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from stagepilot.adapters.state import CompositionRecords
from stagepilot.decisions.composition import State
from stagepilot.local.deployment import LocalDeployment
from stagepilot.local.simulate import read_scenario, simulate
from stagepilot.policy import parse_policy
from tests.support import ENCODER, OTHER_STAGE, SESSION, STAGE, STORAGE, T0, EventFactory, later, put_policy

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PASS = timedelta(seconds=60)
PASS_CALLS = timedelta(seconds=5)  # a pass's paced calls before it reaches one stage's stop
S3 = {"name": "archive", "s3": {"storageConfigurationArn": STORAGE, "encoderConfigurationArns": [ENCODER]}}


def show(
    make_deployment: Any, limits: dict[str, Any], *, windows: list[tuple[float, float]] | None = None
) -> LocalDeployment:
    """The pass every minute, as deployed; with ``windows`` (hours), every minute within them and every
    hour outside (``make test``: a pass costs most of a second of CPU on moto; ``make soak`` runs them all)."""
    deployment: LocalDeployment = make_deployment(reconcile_seconds=None)

    def scheduled_pass() -> None:
        hours = (deployment.clock() - T0) / timedelta(hours=1)
        on_the_hour = (deployment.clock() - T0) % timedelta(hours=1) == timedelta(0)
        if windows is None or on_the_hour or any(start <= hours < end for start, end in windows):
            deployment.scheduled_pass()  # beside the world, as the schedule invokes it

    deployment.every(PASS, scheduled_pass, first=T0 + PASS)
    put_policy(deployment, {"stageArn": STAGE, "composition": {"destinations": [S3]}, "limits": limits})
    return deployment


def calls(deployment: LocalDeployment, operation: str) -> list[Any]:
    return [c for c in deployment.ivs.mutating_calls() if c.operation == operation]


def guarded(deployment: LocalDeployment) -> list[dict[str, Any]]:
    return [e for e in deployment.services.audit.list(STAGE, limit=500) if e.get("action") == "guarded"]


def composed(deployment: LocalDeployment) -> timedelta:
    """Composition time stagepilot's compositions of the stage cost, ended or running."""
    total = timedelta(0)
    for c in deployment.ivs.compositions(STAGE, include_deleted=True):
        total += (c.end_time or deployment.clock()) - c.start_time
    return total


def at(deployment: LocalDeployment, moment: datetime) -> None:
    deployment.run_until(moment)


FAST = pytest.param([(3.9, 4.1), (5.0, 5.2)], id="passes-around-the-stop-and-the-events-else-hourly")
WHOLE = pytest.param(None, id="every-pass", marks=pytest.mark.slow)


@pytest.mark.parametrize("windows", [FAST, WHOLE])
@pytest.mark.story
def test_a_forgotten_publisher_for_30_hours_costs_max_session_minutes_and_nothing_starts_again(
    make_deployment: Any, events: EventFactory, windows: list[tuple[float, float]] | None
) -> None:
    deployment = show(make_deployment, {"maxSessionMinutes": 240}, windows=windows)
    deployment.put_event(events.published("encoder"))
    # within the session, after the stop: another publisher, a redelivered publish, a failure event of the
    # stopped composition; the pass runs every minute throughout
    at(deployment, later(5 * 3600))
    deployment.put_event(events.published("guest", at=later(5 * 3600)))
    deployment.put_event(events.published("encoder", event_id="redelivered"))
    [first] = deployment.ivs.compositions(STAGE, include_deleted=True)
    deployment.put_event(events.composition("Session Failure", first.arn, at=later(5 * 3600)))
    at(deployment, later(30 * 3600))

    assert len(calls(deployment, "StartComposition")) == 1  # 0 later starts: events, retries, passes
    [stop] = calls(deployment, "StopComposition")
    assert stop.params == {"arn": first.arn}
    # at most one pass late, and the pass's own calls before its stop (they take time, as deployed)
    assert timedelta(minutes=240) <= composed(deployment) <= timedelta(minutes=240) + PASS + PASS_CALLS
    [entry] = guarded(deployment)
    assert entry["details"]["limit"] == "maxSessionMinutes"
    assert entry["details"]["maxSessionMinutes"] == 240
    assert entry["details"]["compositionArn"] == first.arn
    record = CompositionRecords(deployment.services.table).get(STAGE, SESSION)
    assert record is not None and record.state is State.GUARDED
    assert deployment.metrics.counts.get("CompositionGuarded") == 1
    assert deployment.metrics.counts.get("GuardedMaxSessionMinutes") == 1
    assert "HealedEventLost" not in deployment.metrics.counts


def test_no_publisher_seconds_stops_an_idle_composition_and_a_later_publish_composes_again(
    make_deployment: Any, events: EventFactory
) -> None:
    deployment = show(make_deployment, {"noPublisherSeconds": 20})
    deployment.put_event(events.published("host"))
    at(deployment, later(100))
    deployment.put_event(events.stage("Participant Unpublished", "host", at=later(100)))  # stays connected
    at(deployment, later(150))
    # the pass at 120 s: nobody has published for 20 s; stopped before IVS's own minute (160 s)
    [stop] = calls(deployment, "StopComposition")
    assert later(120) <= stop.time < later(125)
    [entry] = guarded(deployment)
    assert entry["details"]["limit"] == "noPublisherSeconds" and entry["details"]["idleSeconds"] == 20
    at(deployment, later(300))
    deployment.put_event(events.published("host", at=later(300)))
    at(deployment, later(400))

    starts = calls(deployment, "StartComposition")
    assert len(starts) == 2 and starts[1].trigger == "event"  # composes again, as after IVS's idle stop
    assert [c.state for c in deployment.ivs.compositions(STAGE)][-1] == "ACTIVE"
    assert len(guarded(deployment)) == 1


def test_host_gone_ends_the_show_within_grace_and_one_pass(make_deployment: Any, events: EventFactory) -> None:
    limits = {"hostGone": {"userIds": ["host-1"], "graceSeconds": 120, "action": "end-show"}}
    deployment = show(make_deployment, limits)
    deployment.put_event(events.published("host", user_id="host-1"))
    deployment.put_event(events.published("guest", user_id="guest-1", at=later(5)))
    deployment.ivs.connect(STAGE, "viewer", user_id="viewer-1")
    at(deployment, later(200))
    deployment.ivs.leave(STAGE, "host")  # the host is gone; the guest still publishes
    at(deployment, later(200 + 120) + PASS)

    [stop] = calls(deployment, "StopComposition")
    assert later(320) <= stop.time <= later(320) + PASS  # within grace + one pass
    kicked = {c.params["participantId"] for c in calls(deployment, "DisconnectParticipant")}
    assert kicked == {"guest", "viewer"}
    assert all(c.time >= stop.time for c in calls(deployment, "DisconnectParticipant"))
    entries = guarded(deployment)
    assert [e["details"]["limit"] for e in entries] == ["hostGone", "hostGone"]
    at(deployment, later(3600))
    assert len(calls(deployment, "StartComposition")) == 1


def test_host_gone_stop_composition_is_final_even_when_the_host_comes_back(
    make_deployment: Any, events: EventFactory
) -> None:
    limits = {"hostGone": {"userIds": ["host-1"], "graceSeconds": 60, "action": "stop-composition"}}
    deployment = show(make_deployment, limits)
    deployment.put_event(events.published("host", user_id="host-1"))
    deployment.put_event(events.published("guest", user_id="guest-1", at=later(5)))
    at(deployment, later(100))
    deployment.put_event(events.stage("Participant Unpublished", "host", user_id="host-1", at=later(100)))
    at(deployment, later(400))
    deployment.put_event(events.published("host", user_id="host-1", at=later(400)))  # back, too late
    at(deployment, later(1800))

    [stop] = calls(deployment, "StopComposition")
    assert later(160) <= stop.time <= later(160) + PASS
    assert len(calls(deployment, "StartComposition")) == 1
    assert calls(deployment, "DisconnectParticipant") == []  # stop-composition disconnects nobody


def test_limits_far_off_stop_nothing(make_deployment: Any, events: EventFactory) -> None:
    limits = {
        "maxSessionMinutes": 60,
        "noPublisherSeconds": 30,
        "hostGone": {"userIds": ["host-1"], "graceSeconds": 300, "action": "end-show"},
    }
    deployment = show(make_deployment, limits)
    deployment.put_event(events.published("host", user_id="host-1"))
    at(deployment, later(50 * 60))

    assert calls(deployment, "StopComposition") == [] and guarded(deployment) == []


@pytest.mark.parametrize("scenario", ["show.jsonl", "chaos.jsonl"])
@pytest.mark.story
def test_the_examples_limits_stop_nothing_in_the_example_shows(scenario: str) -> None:
    """The demo policy bounds the show (4 hours; 5 minutes without a host): neither the show nor its chaos
    (lost, late and failed events, an outage, a host leaving) comes near a limit."""
    policies = [parse_policy(p) for p in json.loads((EXAMPLES / "policies.json").read_text())]
    assert policies[0].limits is not None and policies[0].limits.host_gone is not None
    bans = json.loads((EXAMPLES / "bans.json").read_text())
    result = simulate(policies, read_scenario((EXAMPLES / scenario).read_text()), bans=bans)

    assert result.calls and "StopComposition" not in [c["operation"] for c in result.calls]


def test_a_composition_stagepilot_did_not_start_is_counted_and_left_running(
    make_deployment: Any, events: EventFactory
) -> None:
    deployment = show(make_deployment, {"maxSessionMinutes": 1, "noPublisherSeconds": 10})
    deployment.put_event(events.published("host"))
    at(deployment, later(5))
    theirs = deployment.ivs.client().start_composition(stageArn=STAGE, destinations=[S3], tags={"team": "shows"})
    at(deployment, later(600))

    [stop] = calls(deployment, "StopComposition")  # stagepilot's own, at its limit
    assert stop.params["arn"] != theirs["composition"]["arn"]
    [their] = [c for c in deployment.ivs.compositions(STAGE) if c.arn == theirs["composition"]["arn"]]
    assert their.state == "ACTIVE"  # never stopped, whatever the stage's limits
    assert deployment.metrics.counts.get("UnmanagedCompositions", 0) >= 9  # counted by every pass


def test_end_show_stops_the_replicas_before_it_disconnects_anyone(make_deployment: Any, events: EventFactory) -> None:
    deployment: LocalDeployment = make_deployment(reconcile_seconds=None)
    deployment.every(PASS, deployment.reconcile, first=T0 + PASS)
    put_policy(
        deployment,
        {
            "stageArn": STAGE,
            "composition": {"destinations": [S3]},
            "replication": [{"destinationStageArn": OTHER_STAGE, "reconnectWindowSeconds": 300}],
            "limits": {"hostGone": {"userIds": ["host-1"], "graceSeconds": 60, "action": "end-show"}},
        },
    )
    deployment.put_event(events.published("host", user_id="host-1"))
    deployment.put_event(events.published("guest", user_id="guest-1", at=later(5)))
    at(deployment, later(30))
    assert len(calls(deployment, "StartParticipantReplication")) == 2  # both publishers, into the green room
    deployment.put_event(events.stage("Participant Unpublished", "host", user_id="host-1", at=later(30)))
    at(deployment, later(30 + 60) + PASS)

    made = [c.operation for c in deployment.ivs.mutating_calls()]
    stops = [i for i, op in enumerate(made) if op == "StopParticipantReplication"]
    kicks = [i for i, op in enumerate(made) if op == "DisconnectParticipant"]
    assert stops and kicks and max(stops) < min(kicks)  # the guest's replica first: it would outlive the show
    assert made.index("StopComposition") < min(stops)
    assert {c.params["participantId"] for c in calls(deployment, "DisconnectParticipant")} == {"host", "guest"}


# Limits act within seconds of their deadline (docs/policy.md): the pass waits for a deadline that falls
# within its own minute and looks at the stage again then; a deadline it cannot wait for is the next pass's.
SECONDS = timedelta(seconds=3)  # the re-look's own calls (GetComposition, the publishers, the stop)


def scheduled(make_deployment: Any, limits: dict[str, Any]) -> LocalDeployment:
    """The pass every minute on the deployment's own schedule, as deployed: it runs beside the world (an
    event the test puts while a pass waits for a deadline happens at its time)."""
    deployment: LocalDeployment = make_deployment(reconcile_seconds=PASS.total_seconds())
    put_policy(deployment, {"stageArn": STAGE, "composition": {"destinations": [S3]}, "limits": limits})
    return deployment


def host_stops_at_70(deployment: LocalDeployment, events: EventFactory) -> None:
    """The host and a guest publish; the host stops at 70 s (a 90-s grace falls due at 160 s, between the
    passes at 120 s and 180 s)."""
    deployment.put_event(events.published("host", user_id="host-1"))
    deployment.put_event(events.published("guest", user_id="guest-1", at=later(5)))
    deployment.put_event(events.stage("Participant Unpublished", "host", user_id="host-1", at=later(70)))


def test_max_session_minutes_acts_within_seconds_of_its_deadline(make_deployment: Any, events: EventFactory) -> None:
    deployment = scheduled(make_deployment, {"maxSessionMinutes": 3})
    deployment.put_event(events.published("encoder", at=later(25)))  # its deadline falls between two passes
    at(deployment, later(400))

    [composition] = deployment.ivs.compositions(STAGE, include_deleted=True)
    deadline = composition.start_time + timedelta(minutes=3)  # about 205 s: the passes run at 180 and 240
    [stop] = calls(deployment, "StopComposition")
    assert deadline <= stop.time <= deadline + SECONDS
    [entry] = guarded(deployment)
    assert entry["details"]["composedMinutes"] == 3


def test_host_gone_acts_within_seconds_of_its_grace(make_deployment: Any, events: EventFactory) -> None:
    limits = {"hostGone": {"userIds": ["host-1"], "graceSeconds": 90, "action": "stop-composition"}}
    deployment = scheduled(make_deployment, limits)
    host_stops_at_70(deployment, events)
    at(deployment, later(400))

    [stop] = calls(deployment, "StopComposition")
    assert later(160) <= stop.time <= later(160) + SECONDS  # the pass at 120 s waited for 160 s, not the one at 180 s
    assert len(guarded(deployment)) == 1  # the passes after it find it stopped: nothing more


def test_a_deadline_that_no_longer_holds_does_nothing(make_deployment: Any, events: EventFactory) -> None:
    """The pass at 120 s waits for the host's grace (160 s); the host is back at 150 s: it looks, and stops
    nothing, then or later."""
    limits = {"hostGone": {"userIds": ["host-1"], "graceSeconds": 90, "action": "end-show"}}
    deployment = scheduled(make_deployment, limits)
    host_stops_at_70(deployment, events)
    deployment.put_event(events.published("host", user_id="host-1", at=later(150)))
    at(deployment, later(600))

    assert calls(deployment, "StopComposition") == [] and calls(deployment, "DisconnectParticipant") == []
    assert guarded(deployment) == []


def test_a_deadline_the_pass_could_not_act_on_is_the_next_passs(make_deployment: Any, events: EventFactory) -> None:
    """The pass at 120 s waits for 160 s and cannot look (IVS fails its GetComposition): the pass at 180 s
    stops it, once."""
    limits = {"hostGone": {"userIds": ["host-1"], "graceSeconds": 90, "action": "stop-composition"}}
    deployment = scheduled(make_deployment, limits)
    host_stops_at_70(deployment, events)
    at(deployment, later(150))
    deployment.ivs.fail_next("GetComposition")
    at(deployment, later(400))

    [stop] = calls(deployment, "StopComposition")
    assert later(180) <= stop.time <= later(180) + PASS_CALLS
    assert len(guarded(deployment)) == 1


def test_a_limit_shorter_than_a_pass_acts_within_seconds_of_its_deadline(
    make_deployment: Any, events: EventFactory
) -> None:
    """noPublisherSeconds 20, the last publisher stops at 70 s, after the pass at 60 s: that pass, waiting,
    looks at the stage every 10 s, sees the clock start and stops it at 90 s (not the pass at 120 s)."""
    deployment = scheduled(make_deployment, {"noPublisherSeconds": 20})
    deployment.put_event(events.published("host"))
    deployment.put_event(events.stage("Participant Unpublished", "host", at=later(70)))  # stays connected
    at(deployment, later(300))

    [stop] = calls(deployment, "StopComposition")
    assert later(90) <= stop.time <= later(90) + SECONDS
    [entry] = guarded(deployment)
    assert entry["details"]["limit"] == "noPublisherSeconds"
