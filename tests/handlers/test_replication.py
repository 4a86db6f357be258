"""Replication automation end to end: routing, queues with retries/DLQ, handler code, moto DynamoDB and
the IVS stand-in (which shows a started replica in the destination stage and emits its events)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stagepilot.adapters.replication_state import KnownEvent, ReplicationRecords, ReplicationTarget
from stagepilot.automations.replication import ReplicationAutomation
from stagepilot.decisions.leases import CLAIM_LEASE, HELD_RETRY_MARGIN
from stagepilot.decisions.replication import ClaimState, ReplicationEventKind
from stagepilot.errors import ClaimHeld
from stagepilot.events import parse_body
from stagepilot.local.deployment import LocalDeployment
from stagepilot.pipeline import Outcome
from tests.support import (
    ACCOUNT,
    OTHER_STAGE,
    REGION,
    SESSION,
    STAGE,
    T0,
    EventFactory,
    deliver_concurrently,
    later,
    put_policy,
)

THIRD_STAGE = f"arn:aws:ivs:{REGION}:{ACCOUNT}:stage/Backstage0001"
UNKNOWN_STAGE = f"arn:aws:ivs:{REGION}:{ACCOUNT}:stage/NoSuchStage01"
START = "StartParticipantReplication"


@pytest.fixture
def deployment(make_deployment: Any) -> LocalDeployment:
    built: LocalDeployment = make_deployment(automations=[ReplicationAutomation()])
    built.ivs.create_stage(THIRD_STAGE)
    return built


def policy(stage: str, *rules: dict[str, Any], paused: bool = False) -> dict[str, Any]:
    return {"stageArn": stage, "paused": paused, "replication": list(rules)}


def to(destination: str, **fields: Any) -> dict[str, Any]:
    return {"destinationStageArn": destination, **fields}


def starts(deployment: LocalDeployment) -> list[dict[str, Any]]:
    """Successful StartParticipantReplication calls, with the exact parameters sent."""
    return [call.params for call in deployment.ivs.mutating_calls() if call.operation == START]


def attempts(deployment: LocalDeployment, operation: str = START) -> int:
    """Every call of ``operation`` the stand-in received, failed ones included."""
    return sum(1 for call in deployment.ivs.calls if call.operation == operation)


def outcomes(deployment: LocalDeployment, **detail: str) -> list[Outcome]:
    return [
        d.outcome
        for d in deployment.deliveries
        if d.outcome is not None and all(d.event.get("detail", {}).get(k) == v for k, v in detail.items())
    ]


def publish_and_drain(deployment: LocalDeployment, envelope: dict[str, Any]) -> None:
    deployment.put_event(envelope)
    deployment.drain()


def test_host_matched_by_user_id_is_replicated_to_two_stages_with_the_exact_parameters(
    deployment: LocalDeployment, events: EventFactory
) -> None:
    put_policy(
        deployment,
        policy(
            STAGE,
            to(
                OTHER_STAGE,
                reconnectWindowSeconds=30,
                attributes={"replicated": "true"},
                participants={"userIds": ["host-1"]},
            ),
            to(THIRD_STAGE, participants={"userIds": ["host-1", "host-2"]}),
        ),
    )
    publish_and_drain(deployment, events.published("host", user_id="host-1"))

    assert starts(deployment) == [
        {
            "sourceStageArn": STAGE,
            "destinationStageArn": OTHER_STAGE,
            "participantId": "host",
            "reconnectWindowSeconds": 30,
            "attributes": {"replicated": "true"},
        },
        {
            "sourceStageArn": STAGE,
            "destinationStageArn": THIRD_STAGE,
            "participantId": "host",
            "reconnectWindowSeconds": 0,
        },
    ]
    assert {r.destination_stage_arn for r in deployment.ivs.replicas(STAGE, "host", active_only=True)} == {
        OTHER_STAGE,
        THIRD_STAGE,
    }
    # userIds need no token attributes; the one GetParticipant is the replica check before acting
    assert attempts(deployment, "GetParticipant") == 1
    assert deployment.metrics.counts["ReplicationStarted"] == 2
    [outcome] = [o for o in outcomes(deployment, participant_id="host") if o.action == "replication-started"]
    assert outcome.acted and "started replication to 2 stage(s)" in outcome.reason


def test_host_matched_by_attribute_is_replicated_with_one_participant_lookup(
    deployment: LocalDeployment, events: EventFactory
) -> None:
    put_policy(
        deployment,
        policy(
            STAGE,
            to(OTHER_STAGE, participants={"attributes": {"role": "host"}}),
            to(THIRD_STAGE, reconnectWindowSeconds=60, participants={"attributes": {"role": "host"}}),
        ),
    )
    deployment.ivs.declare_participant(STAGE, "host", user_id="anyone", attributes={"role": "host"})
    publish_and_drain(deployment, events.published("host", user_id="anyone"))

    assert starts(deployment) == [
        {
            "sourceStageArn": STAGE,
            "destinationStageArn": OTHER_STAGE,
            "participantId": "host",
            "reconnectWindowSeconds": 0,
        },
        {
            "sourceStageArn": STAGE,
            "destinationStageArn": THIRD_STAGE,
            "participantId": "host",
            "reconnectWindowSeconds": 60,
        },
    ]
    assert attempts(deployment, "GetParticipant") == 1


def test_publisher_matching_no_entry_is_not_replicated(deployment: LocalDeployment, events: EventFactory) -> None:
    put_policy(
        deployment,
        policy(
            STAGE,
            to(OTHER_STAGE, participants={"userIds": ["host-1"]}),
            to(THIRD_STAGE, participants={"userIds": ["host-1"], "attributes": {"role": "host"}}),
        ),
    )
    deployment.ivs.declare_participant(STAGE, "guest", user_id="guest-7", attributes={"role": "host"})
    publish_and_drain(deployment, events.published("guest", user_id="guest-7"))

    assert starts(deployment) == []
    assert attempts(deployment, "GetParticipant") == 0  # the userIds filter already rules both entries out
    [outcome] = outcomes(deployment, participant_id="guest")
    assert (outcome.action, outcome.reason) == ("skip", "no replication entry matches the publisher")


def test_duplicate_and_redelivered_events_start_once_per_destination(
    deployment: LocalDeployment, events: EventFactory
) -> None:
    put_policy(deployment, policy(STAGE, to(OTHER_STAGE), to(THIRD_STAGE)))
    first = events.published("host", user_id="host-1", event_id="evt-1")
    deployment.put_event(first)
    deployment.put_event(first)  # the same event twice (EventBridge target retry)
    deployment.put_event(events.published("host", user_id="host-1", at=later(5)))  # republished: new event
    deployment.drain()

    assert sorted(p["destinationStageArn"] for p in starts(deployment)) == sorted([OTHER_STAGE, THIRD_STAGE])
    assert not deployment.dead_letters["replication"]


@pytest.mark.parametrize("known_by", ["started-event", "replica-list", "conflict"])
def test_retry_after_a_crash_between_the_start_and_its_record_does_not_start_twice(
    deployment: LocalDeployment, events: EventFactory, monkeypatch: pytest.MonkeyPatch, known_by: str
) -> None:
    put_policy(deployment, policy(STAGE, to(OTHER_STAGE)))
    real_mark = ReplicationRecords.starting  # the finishing write (with its audit entry, in one call)
    crashes = []

    def crash_once(self: ReplicationRecords, *args: Any, **kwargs: Any) -> Any:
        if not crashes:
            crashes.append(1)
            raise RuntimeError("Lambda timed out after IVS accepted the call")
        return real_mark(self, *args, **kwargs)

    monkeypatch.setattr(ReplicationRecords, "starting", crash_once)
    if known_by != "started-event":  # IVS's "Participant Replication Started" arrives after the retry
        monkeypatch.setattr(ReplicationRecords, "record_event", lambda self, *a, **kw: KnownEvent.STALE)
    if known_by == "conflict":  # the retry's ListParticipantReplicas does not show it yet either
        real_replicas = deployment.services.ivs.replicas

        def not_yet(*args: Any, **kwargs: Any) -> Any:  # the listing catches up once IVS has answered 409
            conflicted = any(c.status == 409 for c in deployment.ivs.calls if c.operation == START)
            return real_replicas(*args, **kwargs) if conflicted else []

        monkeypatch.setattr(deployment.services.ivs, "replicas", not_yet)
    publish_and_drain(deployment, events.published("host", user_id="host-1"))

    assert [p["destinationStageArn"] for p in starts(deployment)] == [OTHER_STAGE]
    publish = [
        d
        for d in deployment.deliveries
        if d.event["detail"]["event_name"] == "Participant Published" and d.event.get("resources") == [STAGE]
    ]
    assert [d.receive for d in publish] == [1, 2]
    retried = publish[1].outcome
    assert retried is not None and not retried.acted
    if known_by == "started-event":  # the recorded event says it runs: no call
        assert attempts(deployment) == 1
        assert "already replicated to this destination" in retried.reason
    elif known_by == "replica-list":  # IVS lists it as active: no call
        assert attempts(deployment) == 1
        assert "already replicating to 1" in retried.reason
    else:  # the owner's retry calls again; IVS answers 409 and its listing confirms it runs
        assert attempts(deployment) == 2
        assert "already replicating to 1" in retried.reason
    [record] = ReplicationRecords(deployment.table).list(STAGE)
    assert record.state == "started"
    assert not deployment.dead_letters["replication"]


def run_concurrently(deployment: LocalDeployment, bodies: list[str]) -> list[Outcome | BaseException]:
    return deliver_concurrently(deployment, ReplicationAutomation(), bodies)


@pytest.mark.parametrize("same_event", [True, False], ids=["one-event-20-deliveries", "20-distinct-events"])
def test_twenty_concurrent_deliveries_start_once_per_destination(
    deployment: LocalDeployment, events: EventFactory, same_event: bool
) -> None:
    put_policy(deployment, policy(STAGE, to(OTHER_STAGE), to(THIRD_STAGE)))
    envelope = events.published("host", user_id="host-1", event_id="evt-1")
    deployment.ivs.observe(envelope)  # the host is publishing at IVS
    bodies = [
        json.dumps(envelope if same_event else events.published("host", user_id="host-1", event_id=f"evt-{i}"))
        for i in range(20)
    ]
    results = run_concurrently(deployment, bodies)

    assert len(results) == 20
    # Those that found another delivery's claim live are sent back until its lease can have run out (a held
    # claim is retried, not dropped: test_held_claims.py); nothing else fails.
    assert [r for r in results if isinstance(r, BaseException) and not isinstance(r, ClaimHeld)] == []
    assert sorted(p["destinationStageArn"] for p in starts(deployment)) == sorted([OTHER_STAGE, THIRD_STAGE])
    did = [
        r.outcome if isinstance(r, ClaimHeld) else r for r in results
    ]  # one held on a destination may act on another
    assert sum(1 for r in did if isinstance(r, Outcome) and r.acted) >= 1
    deployment.clock.advance_to(deployment.clock() + CLAIM_LEASE + HELD_RETRY_MARGIN)  # their return: done
    again = run_concurrently(deployment, bodies)
    assert [r for r in again if isinstance(r, BaseException) or r.acted] == []
    assert sorted(p["destinationStageArn"] for p in starts(deployment)) == sorted([OTHER_STAGE, THIRD_STAGE])


def test_replica_is_not_replicated_back_when_both_directions_are_configured(
    deployment: LocalDeployment, events: EventFactory
) -> None:
    put_policy(deployment, policy(STAGE, to(OTHER_STAGE)))
    put_policy(deployment, policy(OTHER_STAGE, to(STAGE)))
    publish_and_drain(deployment, events.published("host", user_id="host-1"))

    assert starts(deployment) == [
        {
            "sourceStageArn": STAGE,
            "destinationStageArn": OTHER_STAGE,
            "participantId": "host",
            "reconnectWindowSeconds": 0,
        }
    ]
    replica_outcomes = [
        d.outcome for d in deployment.deliveries if d.event.get("resources") == [OTHER_STAGE] and d.outcome is not None
    ]
    assert len(replica_outcomes) == 1  # the stand-in's "Participant Published" of the replica was handled
    assert replica_outcomes[0].action == "skip"
    assert "replica" in replica_outcomes[0].reason


@pytest.mark.parametrize("matched_by", ["attributes", "userIds"])
def test_replica_not_marked_in_the_event_is_recognised_through_get_participant(
    deployment: LocalDeployment, events: EventFactory, matched_by: str
) -> None:
    participants = {"attributes": {"role": "host"}} if matched_by == "attributes" else {"userIds": ["host-1"]}
    put_policy(deployment, policy(OTHER_STAGE, to(STAGE, participants=participants)))
    deployment.ivs.declare_participant(STAGE, "host", user_id="host-1", attributes={"role": "host"})
    deployment.put_event(events.published("host", user_id="host-1"), deliver=False)
    # Someone else replicates the host into OTHER_STAGE: IVS's Participant Published there carries only the
    # documented fields (no replica flag, no source stage), so only GetParticipant can tell it is a replica.
    deployment.ivs.client().start_participant_replication(
        sourceStageArn=STAGE, destinationStageArn=OTHER_STAGE, participantId="host"
    )
    deployment.drain()

    assert len(starts(deployment)) == 1  # only the one made above: the replica is not sent back
    [outcome] = [o for o in outcomes(deployment) if "replica" in o.reason]
    assert "GetParticipant" in outcome.reason


def test_replications_started_by_others_count_against_the_five_per_participant(
    deployment: LocalDeployment, events: EventFactory
) -> None:
    others = [f"arn:aws:ivs:{REGION}:{ACCOUNT}:stage/Elsewhere{n:04d}" for n in range(4)]
    client = deployment.ivs.client()
    publish = events.published("host", user_id="host-1")
    deployment.ivs.observe(publish)
    for arn in others:  # someone else already replicates the host to four stages
        deployment.ivs.create_stage(arn)
        client.start_participant_replication(sourceStageArn=STAGE, destinationStageArn=arn, participantId="host")
    put_policy(deployment, policy(STAGE, to(OTHER_STAGE), to(THIRD_STAGE)))
    deployment.put_event(publish, observe=False)
    deployment.drain()

    assert [p["destinationStageArn"] for p in starts(deployment)][len(others) :] == [OTHER_STAGE]
    assert len(deployment.ivs.replicas(STAGE, "host", active_only=True)) == 5
    assert deployment.metrics.counts["ReplicationSkippedLimit"] == 1
    # The first delivery's claims are fresh, so it does not list the host's replicas first: its second start
    # is refused (402, the participant's limit): not a throttle, so not retried (issue 24); the destination
    # is reported over the limit at once — one refused call instead of a listing per publish.
    assert attempts(deployment) == len(others) + 2
    assert THIRD_STAGE not in {r.destination_stage_arn for r in ReplicationRecords(deployment.table).list(STAGE)}
    assert not deployment.dead_letters["replication"]
    [outcome] = [o for o in outcomes(deployment, participant_id="host") if o.details.get("over_limit")]
    assert outcome.details["over_limit"] == [THIRD_STAGE]


def test_publisher_gone_before_the_event_is_handled_is_a_no_op_not_a_retry(
    deployment: LocalDeployment, events: EventFactory
) -> None:
    put_policy(deployment, policy(STAGE, to(OTHER_STAGE), to(THIRD_STAGE)))
    deployment.put_event(events.published("host", user_id="host-1"))
    deployment.ivs.end_session(STAGE)  # everyone left before the queued event was delivered
    deployment.drain()

    assert starts(deployment) == []
    assert attempts(deployment) == 1  # no second destination tried, no retry
    assert not deployment.dead_letters["replication"]
    assert deployment.services.audit.list(STAGE) == []
    [delivery] = deployment.deliveries
    assert delivery.outcome is not None and delivery.outcome.action == "skip"
    assert "stopped publishing before replication" in delivery.outcome.reason
    # the claims were given up: nothing is recorded as started
    assert ReplicationRecords(deployment.table).list(STAGE) == []


def test_not_publishing_answer_is_not_retried(deployment: LocalDeployment, events: EventFactory) -> None:
    put_policy(deployment, policy(STAGE, to(OTHER_STAGE)))
    deployment.put_event(events.published("host", user_id="host-1"))
    # Still connected, but stopped publishing before the queued event was delivered: IVS answers 400.
    deployment.ivs.observe(events.stage("Participant Unpublished", "host", user_id="host-1", at=later(1)))
    deployment.drain()

    assert starts(deployment) == []
    assert attempts(deployment) == 1
    assert not deployment.dead_letters["replication"]
    [delivery] = deployment.deliveries
    assert delivery.error is None and delivery.receive == 1
    assert delivery.outcome is not None and not delivery.outcome.acted
    assert "stopped publishing before replication" in delivery.outcome.reason
    assert "is not publishing" in delivery.outcome.reason  # IVS's answer is shown to the operator
    assert deployment.services.audit.list(STAGE) == []  # a race, not a configuration error
    assert deployment.metrics.counts.get("ReplicationFailed") is None


def test_unknown_destination_stage_is_audited_and_not_retried(
    deployment: LocalDeployment, events: EventFactory
) -> None:
    put_policy(deployment, policy(STAGE, to(UNKNOWN_STAGE), to(OTHER_STAGE)))
    publish_and_drain(deployment, events.published("host", user_id="host-1"))

    assert [p["destinationStageArn"] for p in starts(deployment)] == [OTHER_STAGE]
    assert attempts(deployment) == 2
    assert not deployment.dead_letters["replication"]
    assert deployment.metrics.counts["ReplicationFailed"] == 1
    entries = {entry["action"]: entry for entry in deployment.services.audit.list(STAGE)}
    assert set(entries) == {"replication-rejected", "replication-started"}
    assert entries["replication-started"]["details"] == {"destinationStageArn": OTHER_STAGE}
    assert entries["replication-started"]["participantId"] == "host"
    entry = entries["replication-rejected"]
    assert entry["result"] == "ResourceNotFoundException"
    assert entry["details"]["destinationStageArn"] == UNKNOWN_STAGE
    assert UNKNOWN_STAGE in entry["reason"]

    # the same publisher publishing again in the session does not hammer IVS with the same bad request
    publish_and_drain(deployment, events.published("host", user_id="host-1", at=later(30)))
    assert attempts(deployment) == 2


def test_server_error_is_retried_and_then_succeeds_once(deployment: LocalDeployment, events: EventFactory) -> None:
    put_policy(deployment, policy(STAGE, to(OTHER_STAGE), to(THIRD_STAGE)))
    deployment.ivs.fail_next(START, 1, error="InternalServerException")
    publish_and_drain(deployment, events.published("host", user_id="host-1"))

    assert sorted(p["destinationStageArn"] for p in starts(deployment)) == sorted([OTHER_STAGE, THIRD_STAGE])
    assert attempts(deployment) == 3  # one failure, then each destination once
    publish_deliveries = [
        d
        for d in deployment.deliveries
        if d.event.get("resources") == [STAGE] and d.event["detail"]["event_name"] == "Participant Published"
    ]
    assert [d.receive for d in publish_deliveries] == [1, 2]
    assert publish_deliveries[0].error is not None and "RetryLater" in publish_deliveries[0].error
    assert not deployment.dead_letters["replication"]


def test_paused_stage_is_left_alone(deployment: LocalDeployment, events: EventFactory) -> None:
    put_policy(deployment, policy(STAGE, to(OTHER_STAGE), paused=True))
    publish_and_drain(deployment, events.published("host", user_id="host-1"))

    assert deployment.ivs.calls == []
    [delivery] = deployment.deliveries
    assert delivery.outcome is not None and delivery.outcome.reason == "stage is paused"


def test_unknown_replication_event_names_are_harmless(deployment: LocalDeployment, events: EventFactory) -> None:
    put_policy(deployment, policy(STAGE, to(OTHER_STAGE)))
    routed = deployment.put_event(
        events.stage("Participant Replication Paused", "host", destination_stage_arn=OTHER_STAGE), observe=False
    )
    deployment.drain()

    assert routed == ["replication"]
    [delivery] = deployment.deliveries
    assert delivery.outcome is not None and delivery.outcome.action == "skip"
    assert "unknown replication event" in delivery.outcome.reason
    assert deployment.ivs.calls == []


def test_a_409_is_confirmed_with_ivs_listing_not_assumed(deployment: LocalDeployment, events: EventFactory) -> None:
    put_policy(deployment, policy(STAGE, to(OTHER_STAGE)))
    # IVS answers 409 although nothing replicates the host (what 409 means here is undocumented)
    deployment.ivs.fail_next(START, 1, error="ConflictException")
    publish_and_drain(deployment, events.published("host", user_id="host-1"))

    assert attempts(deployment) == 2  # the 409, then the retry that really starts it
    assert [p["destinationStageArn"] for p in starts(deployment)] == [OTHER_STAGE]
    assert len(deployment.ivs.replicas(STAGE, "host", active_only=True)) == 1
    [record] = ReplicationRecords(deployment.table).list(STAGE)
    assert record.state == "started"


def test_replication_then_moderation_ask_ivs_once_about_a_publisher(make_deployment: Any, events: EventFactory) -> None:
    from stagepilot.automations.moderation import ModerationAutomation

    both = make_deployment(automations=[ReplicationAutomation(), ModerationAutomation()])
    document = policy(STAGE, to(OTHER_STAGE, participants={"userIds": ["host-1"]}))
    document["moderation"] = {"blockedAttributes": {"tier": ["suspended"]}}
    put_policy(both, document)
    both.ivs.declare_participant(STAGE, "host", user_id="host-1", attributes={"tier": "suspended"})
    event = events.published("host", user_id="host-1")
    both.ivs.observe(event)
    both.put_raw("replication", json.dumps(event))  # replication's delivery is handled (it stores IVS's answer)
    both.run_due()
    both.put_raw("moderation", json.dumps(event))  # before moderation's arrives
    both.drain()

    # one GetParticipant for both: the second automation reads the first one's answer from the table
    assert attempts(both, "GetParticipant") == 1
    assert [c.operation for c in both.ivs.mutating_calls()].count("DisconnectParticipant") == 1


def test_replication_and_moderation_side_by_side_ask_ivs_once_and_disconnect_once(
    make_deployment: Any, events: EventFactory
) -> None:
    # As deployed, both functions receive the publish at the same moment: neither finds the other's answer
    # stored yet. GetParticipant is sent in each automation's own frames (budget.py): the one whose frame
    # comes second reads what the first kept while it waited, instead of asking IVS again.
    from stagepilot.automations.moderation import ModerationAutomation

    both = make_deployment(automations=[ReplicationAutomation(), ModerationAutomation()])
    document = policy(STAGE, to(OTHER_STAGE, participants={"userIds": ["host-1"]}))
    document["moderation"] = {"blockedAttributes": {"tier": ["suspended"]}}
    put_policy(both, document)
    both.ivs.declare_participant(STAGE, "host", user_id="host-1", attributes={"tier": "suspended"})
    both.put_event(events.published("host", user_id="host-1"))
    both.drain()

    assert attempts(both, "GetParticipant") == 1
    assert [c.operation for c in both.ivs.mutating_calls()].count("DisconnectParticipant") == 1


def test_a_fresh_replication_does_not_list_replicas_first(deployment: LocalDeployment, events: EventFactory) -> None:
    put_policy(deployment, policy(STAGE, to(OTHER_STAGE)))
    deployment.put_event(events.published("host", user_id="host-1"))
    deployment.drain()
    assert [p["destinationStageArn"] for p in starts(deployment)] == [OTHER_STAGE]
    before_start = [c.operation for c in deployment.ivs.calls][
        : [c.operation for c in deployment.ivs.calls].index(START)
    ]
    assert "ListParticipantReplicas" not in before_start  # the claim was new: nothing to guard against
    # (the ambiguous path — a 409 — is still confirmed by the listing: see the crash-and-retry test's 'conflict')


# Replication events: the destination inferred from the policy, or asked of IVS --------------------------
LIST = "ListParticipantReplicas"


def replicate_host_outside(deployment: LocalDeployment, call: str, destination: str, *, at: float = 0) -> None:
    """``start`` or ``stop`` a replication of the host as the application would, at ``later(at)``: IVS sends
    its event; stagepilot made no claim for it."""
    deployment.run_until(later(at))
    client = deployment.ivs.client()
    operation = client.start_participant_replication if call == "start" else client.stop_participant_replication
    operation(sourceStageArn=STAGE, destinationStageArn=destination, participantId="host")


def replication_event(events: EventFactory, kind: str, participant_id: str, at: Any) -> dict[str, Any]:
    """A replication event as IVS sends it: the participant and its session, no destination."""
    return events.stage(f"Participant Replication {kind}", participant_id, at=at)


def test_replication_events_are_recorded_for_status_without_asking_ivs_about_the_only_destination(
    deployment: LocalDeployment, events: EventFactory
) -> None:
    put_policy(deployment, policy(STAGE, to(OTHER_STAGE)))
    publish_and_drain(deployment, events.published("host", user_id="host-1"))
    records = ReplicationRecords(deployment.table)
    [live] = records.list(STAGE, session_id=SESSION)
    assert (live.participant_id, live.destination_stage_arn, live.state) == ("host", OTHER_STAGE, "started")
    assert live.last_event == "Participant Replication Started"

    replicate_host_outside(deployment, "stop", OTHER_STAGE, at=30)
    deployment.drain()

    [stopped] = records.list(STAGE)
    assert (stopped.state, stopped.last_event) == ("stopped", "Participant Replication Stopped")
    assert not stopped.live
    assert stopped.stopped_at == "2026-11-21T20:00:30.000Z"
    assert (stopped.started_at or "").startswith("2026-11-21T20:00:0")  # the start took its paced seconds
    assert attempts(deployment, LIST) == 0  # neither event, nor the fresh start, listed the replicas
    recorded = [o for o in outcomes(deployment, participant_id="host") if o.action.startswith("record-")]
    assert [o.action for o in recorded] == ["record-replication-started", "record-replication-stopped"]
    assert all(OTHER_STAGE in o.reason for o in recorded)

    # the stop recorded that way lets the next publish start again (asking IVS first: the claim is not new)
    publish_and_drain(deployment, events.published("host", user_id="host-1", at=later(60)))
    assert [p["destinationStageArn"] for p in starts(deployment)] == [OTHER_STAGE, OTHER_STAGE]


def test_late_and_out_of_order_events_about_the_only_destination_change_nothing_and_ask_nothing(
    deployment: LocalDeployment, events: EventFactory
) -> None:
    put_policy(deployment, policy(STAGE, to(OTHER_STAGE)))
    publish_and_drain(deployment, events.published("host", user_id="host-1"))
    deployment.put_event(replication_event(events, "Stopped", "host", later(30)), observe=False)
    deployment.run_due()  # handled before the older event arrives
    deployment.put_event(replication_event(events, "Started", "host", later(10)), observe=False)  # older
    deployment.drain()

    [record] = ReplicationRecords(deployment.table).list(STAGE)
    assert (record.state, record.stopped_at) == ("stopped", "2026-11-21T20:00:30.000Z")
    [late] = [o for o in outcomes(deployment, participant_id="host")][-1:]
    assert (late.action, late.reason) == (
        "skip",
        "Participant Replication Started: nothing newer than what is recorded",
    )
    assert attempts(deployment, LIST) == 0


@pytest.mark.parametrize("case", ["two-destinations", "publisher-not-replicated-by-us", "no-replication-entries"])
def test_events_whose_destination_is_ambiguous_are_recorded_as_ivs_lists_them(
    deployment: LocalDeployment, events: EventFactory, case: str
) -> None:
    if case == "two-destinations":
        put_policy(deployment, policy(STAGE, to(OTHER_STAGE), to(THIRD_STAGE)))
        publish_and_drain(deployment, events.published("host", user_id="host-1"))
        expected = {OTHER_STAGE, THIRD_STAGE}
    else:  # the application replicates the host itself; stagepilot holds no record of it
        rules = [to(OTHER_STAGE, participants={"userIds": ["someone-else"]})] if case.startswith("publisher") else []
        put_policy(deployment, {"stageArn": STAGE, **({"replication": rules} if rules else {})})
        publish_and_drain(deployment, events.published("host", user_id="host-1"))
        replicate_host_outside(deployment, "start", OTHER_STAGE)
        deployment.drain()
        expected = {OTHER_STAGE}

    records = ReplicationRecords(deployment.table).list(STAGE)
    assert {(r.destination_stage_arn, r.state) for r in records} == {(d, "started") for d in expected}
    assert all(r.destination_session_id for r in records)  # IVS's listing names the destination's session
    assert attempts(deployment, LIST) == len(expected)  # one listing per Started event


def test_an_event_for_a_destination_ivs_rejected_is_not_pinned_on_it(
    deployment: LocalDeployment, events: EventFactory
) -> None:
    put_policy(deployment, policy(STAGE, to(UNKNOWN_STAGE)))
    publish_and_drain(deployment, events.published("host", user_id="host-1"))
    # the application replicates the host to another stage itself: the event cannot be about the rejected one
    replicate_host_outside(deployment, "start", OTHER_STAGE)
    deployment.drain()

    records = {r.destination_stage_arn: r.state for r in ReplicationRecords(deployment.table).list(STAGE)}
    assert records == {UNKNOWN_STAGE: "rejected", OTHER_STAGE: "started"}
    assert attempts(deployment, LIST) == 1


def test_without_a_policy_the_automation_asks_ivs_which_replication_an_event_is_about(
    deployment: LocalDeployment, events: EventFactory
) -> None:
    publish_and_drain(deployment, events.published("host", user_id="host-1"))
    replicate_host_outside(deployment, "start", OTHER_STAGE)
    event = parse_body(json.dumps(replication_event(events, "Started", "host", T0)))
    outcome = ReplicationAutomation().handle(event, None, deployment.services)

    assert outcome.action == "record-replication-started"
    assert attempts(deployment, LIST) == 1
    [record] = ReplicationRecords(deployment.table).list(STAGE)
    assert (record.destination_stage_arn, record.state) == (OTHER_STAGE, "started")


def test_an_event_on_a_known_replication_tells_no_record_apart_from_a_newer_one(
    deployment: LocalDeployment,
) -> None:
    records = ReplicationRecords(deployment.table, clock=deployment.clock)
    target = ReplicationTarget(STAGE, SESSION, "host", OTHER_STAGE)

    def record(kind: ReplicationEventKind, seconds: float) -> KnownEvent:
        return records.record_event(
            target, kind=kind, event_name=f"Replication {kind}", at=later(seconds), only_if_known=True
        )

    assert record(ReplicationEventKind.STOPPED, 0) is KnownEvent.UNKNOWN  # nothing stored, nothing written
    assert records.list(STAGE) == []
    records.claim_first(target, owner="evt-1")
    # a claim whose start is under way: the event may be about another replication, and is not applied
    assert record(ReplicationEventKind.STARTED, 0) is KnownEvent.UNKNOWN
    claim = records.get(target)
    assert claim is not None and claim.state is ClaimState.CLAIMED
    assert records.mark_started(target, owner="evt-1", how="started")

    assert record(ReplicationEventKind.STOPPED, -10) is KnownEvent.STALE  # older than the claim: an earlier one
    assert record(ReplicationEventKind.STARTED, 20) is KnownEvent.RECORDED
    assert record(ReplicationEventKind.STOPPED, 10) is KnownEvent.STALE  # older than the last event applied
    assert record(ReplicationEventKind.STOPPED, 20) is KnownEvent.RECORDED  # the same second, after the start
    [stopped] = records.list(STAGE)
    assert (stopped.state, stopped.started_at, stopped.stopped_at) == (
        "stopped",
        "2026-11-21T20:00:20.000Z",
        "2026-11-21T20:00:20.000Z",
    )


def ours(deployment: LocalDeployment) -> list[str]:
    """Destinations of the successful starts, but for the application's own replications to THIRD_STAGE."""
    return [p["destinationStageArn"] for p in starts(deployment) if p["destinationStageArn"] != THIRD_STAGE]


def host_replicated_then(
    deployment: LocalDeployment, events: EventFactory, *outside: tuple[str, str]
) -> ReplicationRecords:
    """The host replicated by stagepilot to the policy's only destination, then the application's own
    replication calls (``replicate_host_outside``), 10 s apart, their events delivered."""
    put_policy(deployment, policy(STAGE, to(OTHER_STAGE)))
    publish_and_drain(deployment, events.published("host", user_id="host-1"))
    for index, (call, destination) in enumerate(outside, start=1):
        replicate_host_outside(deployment, call, destination, at=10 * index)
    deployment.drain()
    return ReplicationRecords(deployment.table)


def test_a_stop_pinned_on_the_wrong_replication_makes_the_next_publish_ask_ivs_and_start_nothing(
    deployment: LocalDeployment, events: EventFactory
) -> None:
    # the application replicates the host to a third stage itself, then stops that: both events are
    # applied to stagepilot's replication (the policy's only destination), which keeps running at IVS
    records = host_replicated_then(deployment, events, ("start", THIRD_STAGE), ("stop", THIRD_STAGE))
    assert [r.state for r in records.list(STAGE)] == ["stopped"]

    publish_and_drain(deployment, events.published("host", user_id="host-1", at=later(60)))

    assert ours(deployment) == [OTHER_STAGE]  # no second start
    assert attempts(deployment, LIST) == 1  # the claim was not new: IVS was asked and lists it ACTIVE
    assert [r.state for r in records.list(STAGE)] == ["started"]


def test_a_start_pinned_on_the_wrong_replication_is_corrected_by_the_convergence_pass(
    deployment: LocalDeployment, events: EventFactory
) -> None:
    # stagepilot's replication stops; the application replicates the host to a third stage itself, and
    # that Started event lands on ours: the record says "started" while IVS runs none to OTHER_STAGE
    records = host_replicated_then(deployment, events, ("stop", OTHER_STAGE), ("start", THIRD_STAGE))
    assert [r.state for r in records.list(STAGE)] == ["started"]
    assert {r.destination_stage_arn for r in deployment.ivs.replicas(STAGE, "host", active_only=True)} == {THIRD_STAGE}
    publish_and_drain(deployment, events.published("host", user_id="host-1", at=later(30)))
    assert ours(deployment) == [OTHER_STAGE]  # the record's word

    deployment.reconcile(only_stage=STAGE)

    assert ours(deployment) == [OTHER_STAGE, OTHER_STAGE]
    assert {r.destination_stage_arn for r in deployment.ivs.replicas(STAGE, "host", active_only=True)} == {
        OTHER_STAGE,
        THIRD_STAGE,
    }


# One rule for replicas; IVS over bodies ----------------------------------------------------------------
def test_a_replica_the_destinations_moderation_removes_is_not_replicated_again_in_that_session(
    make_deployment: Any, events: EventFactory
) -> None:
    from stagepilot.automations.moderation import ModerationAutomation

    both: LocalDeployment = make_deployment(automations=[ReplicationAutomation(), ModerationAutomation()])
    put_policy(both, policy(STAGE, to(OTHER_STAGE)))
    put_policy(both, {"stageArn": OTHER_STAGE, "moderation": {"blockedUserIds": ["guest-9"]}})
    both.put_event(events.published("guest", user_id="guest-9"))
    both.drain()

    # replicated once; the green room's moderation removed the replica (a participant of its stage)
    assert [p["destinationStageArn"] for p in starts(both)] == [OTHER_STAGE]
    assert not any(p.participant_id == "guest" and p.state == "CONNECTED" for p in both.ivs.participants(OTHER_STAGE))
    assert both.ivs.replicas(STAGE, "guest", active_only=True) == []

    both.reconcile()  # the source still publishes and IVS runs no replica: the pass must not send it back
    both.drain()
    both.reconcile()
    # nor does a new publish of the same participant in the same source session
    both.put_event(events.stage("Participant Unpublished", "guest", user_id="guest-9", at=later(30)))
    both.put_event(events.published("guest", user_id="guest-9", at=later(40)))
    both.drain()
    both.reconcile()

    assert len(starts(both)) == 1
    [blocked] = [e for e in both.services.audit.list(STAGE) if e["action"] == "blocked-at-destination"]
    assert blocked["details"]["destinationStageArn"] == OTHER_STAGE
    assert (blocked["sessionId"], blocked["participantId"]) == (SESSION, "guest")
    assert not [o for report in both.passes for _, o in report.outcomes if o.acted]  # nothing healed
    [record] = ReplicationRecords(both.table).list(STAGE)
    assert record.state == "blocked"


def test_a_block_at_the_destination_holds_for_its_source_session_only(
    make_deployment: Any, events: EventFactory
) -> None:
    from stagepilot.automations.moderation import ModerationAutomation

    both: LocalDeployment = make_deployment(automations=[ReplicationAutomation(), ModerationAutomation()])
    put_policy(both, policy(STAGE, to(OTHER_STAGE)))
    put_policy(both, {"stageArn": OTHER_STAGE, "moderation": {"blockedUserIds": ["guest-9"]}})
    both.put_event(events.published("guest", user_id="guest-9"))
    both.drain()
    both.put_event(events.published("guest", user_id="guest-9", session="st-NextSession01", at=later(600)))
    both.drain()

    assert [p["destinationStageArn"] for p in starts(both)] == [OTHER_STAGE, OTHER_STAGE]


def test_a_forged_publish_naming_the_host_does_not_replicate_a_guest_and_is_audited(
    deployment: LocalDeployment, events: EventFactory
) -> None:
    put_policy(deployment, policy(STAGE, to(OTHER_STAGE, participants={"userIds": ["host-1"]})))
    publish_and_drain(deployment, events.published("guest", user_id="guest-9"))
    # a body in the queue (not sent by IVS) that calls the guest the host
    deployment.put_event(events.published("guest", user_id="host-1", at=later(5)), observe=False)
    deployment.drain()

    assert starts(deployment) == []
    assert attempts(deployment, "GetParticipant") == 1  # asked once, before acting: IVS says guest-9
    [entry] = [e for e in deployment.services.audit.list(STAGE) if e["action"] == "body-mismatch"]
    assert (entry["participantId"], entry["userId"]) == ("guest", "guest-9")
    assert "host-1" in entry["reason"]
    assert deployment.metrics.counts["BodyMismatch"] == 1
    assert ReplicationRecords(deployment.table).list(STAGE) == []  # no claim kept for the forged match


def test_a_publish_whose_body_omits_the_user_id_is_replicated_by_what_ivs_says(
    deployment: LocalDeployment, events: EventFactory
) -> None:
    put_policy(deployment, policy(STAGE, to(OTHER_STAGE, participants={"attributes": {"role": "host"}})))
    deployment.ivs.declare_participant(STAGE, "host", user_id="host-1", attributes={"role": "host"})
    publish_and_drain(deployment, events.published("host", user_id="host-1"))

    assert [p["destinationStageArn"] for p in starts(deployment)] == [OTHER_STAGE]
    assert deployment.metrics.counts.get("BodyMismatch") is None
