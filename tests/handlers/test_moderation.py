"""Moderation automation end to end: routing → queue → handler code → moto DynamoDB + IVS stand-in."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from stagepilot.adapters.counters import Kind, counted_events, counter_key
from stagepilot.adapters.ivs import IvsStage, Pacer
from stagepilot.automations.moderation import ModerationAutomation, disconnect_participant, sweep_banned_user
from stagepilot.decisions.leases import CLAIM_LEASE
from stagepilot.decisions.moderation import Rule
from stagepilot.local.deployment import LocalDeployment
from stagepilot.pipeline import Services
from tests.handlers.conftest import Calls
from tests.support import OTHER_STAGE, SESSION, STAGE, T0, EventFactory, deliver_concurrently, later, put_policy

MODERATION: dict[str, Any] = {
    "reason": "Removed by the show's moderators",
    "blockedUserIds": ["spammer-7"],
    "blockedAttributes": {"tier": ["suspended"]},
    "publishErrorLimit": {"count": 3, "windowSeconds": 60},
    "flagLimit": {"count": 2, "windowSeconds": 300},
}


def policy(stage: str = STAGE, **moderation: Any) -> dict[str, Any]:
    return {"stageArn": stage, "moderation": {**MODERATION, **moderation}}


@pytest.fixture
def show(make_deployment: Any) -> LocalDeployment:
    deployment: LocalDeployment = make_deployment(automations=[ModerationAutomation()])
    put_policy(deployment, policy())
    return deployment


def send(deployment: LocalDeployment, event: dict[str, Any]) -> None:
    deployment.put_event(event)
    deployment.run_due()


def disconnects(deployment: LocalDeployment) -> list[dict[str, Any]]:
    return [c.params for c in deployment.ivs.mutating_calls() if c.operation == "DisconnectParticipant"]


def audit(deployment: LocalDeployment, stage: str = STAGE) -> list[dict[str, Any]]:
    return [e for e in deployment.services.audit.list(stage) if e["automation"] == "moderation"]


def connected(deployment: LocalDeployment, stage: str, participant_id: str) -> bool:
    return any(
        p.participant_id == participant_id and p.state == "CONNECTED" for p in deployment.ivs.participants(stage)
    )


# each rule fires, and only that rule ---------------------------------------------------------------
def trigger(rule: str, deployment: LocalDeployment, events: EventFactory) -> None:
    if rule == "global-ban":
        deployment.services.bans.add("troll-1", reason="harassment")
        send(deployment, events.published("p1", user_id="troll-1"))
    elif rule == "blocked-user-id":
        send(deployment, events.published("p1", user_id="spammer-7"))
    elif rule == "blocked-attribute":
        deployment.ivs.declare_participant(STAGE, "p1", user_id="viewer-3", attributes={"tier": "suspended"})
        send(deployment, events.published("p1", user_id="viewer-3"))
    elif rule == "publish-error-limit":
        send(deployment, events.published("p1", user_id="viewer-3"))
        for second in (1, 2, 3):
            send(deployment, events.publish_error("p1", user_id="viewer-3", at=later(second)))
    elif rule == "flag-limit":
        send(deployment, events.published("p1", user_id="viewer-3"))
        for second in (1, 2):
            send(deployment, events.flagged("p1", user_id="viewer-3", at=later(second)))


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        ("global-ban", "harassment"),
        ("blocked-user-id", MODERATION["reason"]),
        ("blocked-attribute", MODERATION["reason"]),
        ("publish-error-limit", MODERATION["reason"]),
        ("flag-limit", MODERATION["reason"]),
    ],
)
def test_each_rule_disconnects_once_and_is_audited_under_its_name(
    show: LocalDeployment, events: EventFactory, rule: str, reason: str
) -> None:
    trigger(rule, show, events)

    assert disconnects(show) == [{"stageArn": STAGE, "participantId": "p1", "reason": reason}]
    assert not connected(show, STAGE, "p1")
    [entry] = audit(show)
    assert entry["action"] == "disconnect"
    assert entry["rule"] == rule
    assert entry["result"] == "disconnected"
    assert entry["reason"] == reason
    assert (entry["sessionId"], entry["participantId"]) == (SESSION, "p1")
    assert "dryRun" not in entry or entry["dryRun"] is False
    assert show.metrics.counts["ParticipantDisconnected"] == 1


def test_a_publisher_no_rule_matches_is_left_alone_and_attributes_are_read_only_when_needed(
    make_deployment: Any, events: EventFactory
) -> None:
    deployment: LocalDeployment = make_deployment(automations=[ModerationAutomation()])
    put_policy(deployment, {"stageArn": STAGE, "moderation": {"blockedUserIds": ["spammer-7"]}})
    deployment.ivs.declare_participant(STAGE, "p1", user_id="viewer-3", attributes={"tier": "suspended"})

    send(deployment, events.published("p1", user_id="viewer-3"))

    assert disconnects(deployment) == []
    assert audit(deployment) == []
    assert not any(c.operation == "GetParticipant" for c in deployment.ivs.calls)
    assert connected(deployment, STAGE, "p1")


def test_while_the_ban_list_is_empty_a_publisher_costs_no_table_read_and_a_new_ban_is_seen_within_a_lifetime(
    show: LocalDeployment, events: EventFactory
) -> None:
    calls = Calls(show.table.client)
    for n in range(4):
        show.ivs.declare_participant(STAGE, f"p{n}", user_id=f"viewer-{n}", attributes={"tier": "free"})
    send(show, events.published("p0", user_id="viewer-0"))  # the container reads its policy, the ban list once
    calls.reset()

    send(show, events.published("p1", user_id="viewer-1", at=later(5)))
    assert calls.made == {}  # no ban read, and no kept publisher to read: nobody else asks IVS about it
    assert connected(show, STAGE, "p1")

    show.services.bans.add("viewer-2", reason="harassment")  # the first ban: this container knows the list empty
    send(show, events.published("p2", user_id="viewer-2", at=later(10)))
    assert disconnects(show) == []  # within the lifetime of the container's read (docs/reliability.md)

    show.ivs.declare_participant(STAGE, "p4", user_id="viewer-2")
    send(show, events.published("p4", user_id="viewer-2", at=later(31)))  # a lifetime after the read
    assert [d["participantId"] for d in disconnects(show)] == ["p4"]


def test_dry_run_calls_nothing_on_ivs_and_audits_what_it_would_have_done(
    make_deployment: Any, events: EventFactory
) -> None:
    deployment: LocalDeployment = make_deployment(automations=[ModerationAutomation()])
    put_policy(deployment, policy(dryRun=True))
    deployment.services.bans.add("troll-1")
    deployment.ivs.declare_participant(STAGE, "p3", user_id="viewer-3", attributes={"tier": "suspended"})

    send(deployment, events.published("p1", user_id="troll-1"))
    send(deployment, events.published("p2", user_id="spammer-7", at=later(1)))
    send(deployment, events.published("p3", user_id="viewer-3", at=later(2)))
    send(deployment, events.published("p2", user_id="spammer-7", at=later(3)))  # again: audited once

    assert deployment.ivs.mutating_calls() == []
    assert all(connected(deployment, STAGE, p) for p in ("p1", "p2", "p3"))
    entries = audit(deployment)
    assert sorted((e["participantId"], e["rule"]) for e in entries) == [
        ("p1", "global-ban"),
        ("p2", "blocked-user-id"),
        ("p3", "blocked-attribute"),
    ]
    assert {(e["action"], e["dryRun"], e["result"]) for e in entries} == {("would-disconnect", True, "dry-run")}
    assert deployment.metrics.counts["ParticipantWouldDisconnect"] == 3
    assert "ParticipantDisconnected" not in deployment.metrics.counts


# windows on event time -----------------------------------------------------------------------------
def test_publish_errors_a_window_apart_do_not_accumulate(show: LocalDeployment, events: EventFactory) -> None:
    send(show, events.published("p1", user_id="viewer-3"))
    for second in (0, 40, 80, 120, 160):  # never three within 60 s
        send(show, events.publish_error("p1", user_id="viewer-3", at=later(second)))
    assert disconnects(show) == []

    send(show, events.publish_error("p1", user_id="viewer-3", at=later(170)))  # 120, 160, 170
    assert len(disconnects(show)) == 1


def test_flags_outside_the_window_do_not_accumulate_even_when_they_arrive_together(
    show: LocalDeployment, events: EventFactory
) -> None:
    # Both flags are delivered at the same moment, but their own times are 301 s apart.
    send(show, events.published("p1"))
    show.clock.advance_to(later(400))
    send(show, events.flagged("p1", at=later(0)))
    send(show, events.flagged("p1", at=later(301)))
    assert disconnects(show) == []
    assert [e.outcome.reason for e in show.deliveries if e.outcome][-1].startswith("1 of 2 flags")

    send(show, events.flagged("p1", at=later(350)))
    assert len(disconnects(show)) == 1
    [entry] = audit(show)
    assert entry["rule"] == "flag-limit"
    assert "2 flags within 300 s" in entry["details"]["why"]


def test_a_duplicated_event_counts_once(show: LocalDeployment, events: EventFactory) -> None:
    send(show, events.published("p1"))
    first = events.publish_error("p1", at=later(1))
    second = events.publish_error("p1", at=later(2))
    for event in (first, second, first, second, first):
        send(show, event)
    assert disconnects(show) == []

    send(show, events.publish_error("p1", at=later(3)))
    assert len(disconnects(show)) == 1


def test_concurrent_publish_errors_count_exactly(make_deployment: Any, events: EventFactory) -> None:
    deployment: LocalDeployment = make_deployment(automations=[ModerationAutomation()])
    threads_count = 12
    put_policy(deployment, policy(publishErrorLimit={"count": threads_count, "windowSeconds": 60}))
    deployment.ivs.observe(events.published("p1"))
    bodies = [json.dumps(events.publish_error("p1", at=later(i % 5))) for i in range(threads_count)]
    results = deliver_concurrently(deployment, deployment.automations["moderation"], bodies)

    assert [r for r in results if isinstance(r, BaseException)] == []
    item = deployment.table.get(*counter_key(STAGE, SESSION, "p1", Kind.PUBLISH_ERROR), consistent=True)
    assert item is not None and len(counted_events(item)) == threads_count
    # Only the delivery that saw all twelve could reach the limit: exactly one disconnect.
    assert len(disconnects(deployment)) == 1


def test_repeated_triggers_in_one_session_disconnect_once(show: LocalDeployment, events: EventFactory) -> None:
    send(show, events.published("p1", user_id="spammer-7"))
    send(show, events.published("p1", user_id="spammer-7", at=later(5)))  # a late duplicate publish
    for second in (6, 7, 8):
        send(show, events.flagged("p1", at=later(second)))

    assert len(disconnects(show)) == 1
    assert len(audit(show)) == 1
    skipped = [d.outcome.reason for d in show.deliveries if d.outcome and d.outcome.action == "skip"]
    assert any("already disconnected" in reason for reason in skipped)


def test_two_copies_of_one_event_handled_side_by_side_disconnect_once(
    show: LocalDeployment, events: EventFactory
) -> None:
    # EventBridge delivers an event at least once: two copies (one event id, two SQS messages) reach the
    # moderation function's two containers at the same moment. The first copy's claim is held while it
    # acts; the second finds it held (not its own: another delivery) and leaves the disconnect alone.
    send(show, events.published("p0", user_id="host"))
    kick = events.published("p1", user_id="spammer-7", at=later(1), event_id="kick-event")
    show.put_event(kick)
    show.put_event(kick, observe=False)
    show.run_due()

    handled = [d for d in show.deliveries if d.automation == "moderation" and d.event.get("id") == "kick-event"]
    assert len(handled) == 2 and handled[0].time == handled[1].time  # side by side
    assert len(disconnects(show)) == 1
    assert show.metrics.counts["ParticipantDisconnected"] == 1
    assert [e["result"] for e in audit(show)] == ["disconnected"]


# bans ----------------------------------------------------------------------------------------------
def test_a_banned_users_new_participant_in_a_later_session_is_disconnected_again(
    show: LocalDeployment, events: EventFactory
) -> None:
    show.services.bans.add("troll-1", reason="harassment")
    send(show, events.published("p1", user_id="troll-1"))
    send(show, events.published("p2", user_id="troll-1", session="st-LaterSession1", at=later(3600)))

    assert [d["participantId"] for d in disconnects(show)] == ["p1", "p2"]
    assert sorted(e["sessionId"] for e in audit(show)) == sorted([SESSION, "st-LaterSession1"])


def test_ban_expiry_lifts_the_ban(show: LocalDeployment, events: EventFactory) -> None:
    show.services.bans.add("troll-1", ttl=timedelta(hours=1))
    send(show, events.published("p1", user_id="troll-1", at=later(60)))
    assert len(disconnects(show)) == 1

    show.clock.advance_to(T0 + timedelta(hours=1, seconds=1))
    send(show, events.published("p2", user_id="troll-1", session="st-LaterSession1", at=later(3601)))
    assert len(disconnects(show)) == 1
    assert connected(show, STAGE, "p2")


def test_a_banned_user_is_disconnected_on_a_stage_with_no_policy_at_all(
    make_deployment: Any, events: EventFactory
) -> None:
    deployment: LocalDeployment = make_deployment(automations=[ModerationAutomation()])
    deployment.services.bans.add("troll-1")

    send(deployment, events.published("p1", user_id="troll-1", stage=OTHER_STAGE))
    send(deployment, events.published("p2", user_id="viewer-3", stage=OTHER_STAGE))

    assert disconnects(deployment) == [
        {"stageArn": OTHER_STAGE, "participantId": "p1", "reason": "Removed by moderation"}
    ]
    [entry] = audit(deployment, OTHER_STAGE)
    assert entry["rule"] == "global-ban"


def test_a_paused_stage_is_left_alone_even_for_banned_users(make_deployment: Any, events: EventFactory) -> None:
    deployment: LocalDeployment = make_deployment(automations=[ModerationAutomation()])
    put_policy(deployment, {**policy(), "paused": True})
    deployment.services.bans.add("troll-1")

    send(deployment, events.published("p1", user_id="troll-1"))

    assert deployment.ivs.mutating_calls() == []
    assert audit(deployment) == []


def test_the_pause_switch_wins_over_the_policy_even_one_that_no_longer_validates(
    make_deployment: Any, events: EventFactory
) -> None:
    from stagepilot.adapters.table import PauseSwitches

    deployment: LocalDeployment = make_deployment(automations=[ModerationAutomation()])
    deployment.table.put({"pk": "POLICY", "sk": STAGE, "version": 1, "document": json.dumps({"stageArn": 7})})
    deployment.services.bans.add("troll-1")
    PauseSwitches(deployment.table).pause(STAGE, by="arn:aws:iam::123456789012:role/oncall")

    send(deployment, events.published("p1", user_id="troll-1"))

    [delivery] = deployment.deliveries
    assert delivery.outcome is not None and delivery.outcome.reason == "stage is paused"  # not retried
    assert deployment.ivs.mutating_calls() == []
    assert deployment.metrics.counts.get("PolicyInvalid") is None


def test_pausing_default_pauses_the_stages_that_follow_it_but_not_those_with_their_own_policy(
    make_deployment: Any, events: EventFactory
) -> None:
    from stagepilot.adapters.table import PauseSwitches

    deployment: LocalDeployment = make_deployment(automations=[ModerationAutomation()])
    put_policy(deployment, policy(OTHER_STAGE))
    deployment.services.bans.add("troll-1")
    PauseSwitches(deployment.table).pause("default", by="oncall")

    send(deployment, events.published("p1", user_id="troll-1"))  # STAGE: no policy, follows default
    send(deployment, events.published("p2", user_id="troll-1", stage=OTHER_STAGE, session="st-OtherSession1"))

    assert [d["participantId"] for d in disconnects(deployment)] == ["p2"]


# replicas ------------------------------------------------------------------------------------------
def test_replicas_of_a_disconnected_source_are_stopped(show: LocalDeployment, events: EventFactory) -> None:
    send(show, events.published("p1", user_id="viewer-3"))
    # With a reconnect window IVS keeps the replica on air for up to 5 minutes after its source stops
    # (docs/simulate.md): moderation stops it. (With no window IVS ends it at once, see below.)
    show.ivs.client().start_participant_replication(
        sourceStageArn=STAGE, destinationStageArn=OTHER_STAGE, participantId="p1", reconnectWindowSeconds=300
    )
    show.run_due()  # the replica's own Participant Published on the destination: moderated at the source
    assert connected(show, OTHER_STAGE, "p1")

    for second in (1, 2):
        send(show, events.flagged("p1", user_id="viewer-3", at=later(second)))

    moderation_calls = [
        (c.operation, c.params)
        for c in show.ivs.mutating_calls()
        if c.operation in ("DisconnectParticipant", "StopParticipantReplication")
    ]
    assert moderation_calls == [
        ("DisconnectParticipant", {"stageArn": STAGE, "participantId": "p1", "reason": MODERATION["reason"]}),
        (
            "StopParticipantReplication",
            {"sourceStageArn": STAGE, "destinationStageArn": OTHER_STAGE, "participantId": "p1"},
        ),
    ]
    assert show.ivs.replicas(STAGE, "p1", active_only=True) == []
    assert not connected(show, OTHER_STAGE, "p1")
    [entry] = audit(show)
    assert entry["details"]["replicasStopped"] == [OTHER_STAGE]


@pytest.mark.parametrize("replicated", [False, True])
def test_a_publisher_ivs_just_called_no_replication_source_is_disconnected_without_listing_replicas(
    show: LocalDeployment, events: EventFactory, replicated: bool
) -> None:
    show.ivs.declare_participant(STAGE, "p1", user_id="spammer-7")
    if replicated:  # the application replicates it itself: GetParticipant says SOURCE
        show.ivs.observe(events.published("p1", user_id="spammer-7"))
        show.ivs.client().start_participant_replication(
            sourceStageArn=STAGE, destinationStageArn=OTHER_STAGE, participantId="p1", reconnectWindowSeconds=300
        )
    send(show, events.published("p1", user_id="spammer-7"))

    listed = [c for c in show.ivs.calls if c.operation == "ListParticipantReplicas"]
    assert [c["participantId"] for c in disconnects(show)] == ["p1"]
    assert len(listed) == (1 if replicated else 0)
    assert show.ivs.replicas(STAGE, "p1", active_only=True) == []


def test_a_replica_without_a_reconnect_window_ends_with_its_disconnected_source(
    show: LocalDeployment, events: EventFactory
) -> None:
    send(show, events.published("p1", user_id="viewer-3"))
    show.ivs.client().start_participant_replication(
        sourceStageArn=STAGE, destinationStageArn=OTHER_STAGE, participantId="p1"
    )
    show.run_due()
    for second in (1, 2):
        send(show, events.flagged("p1", user_id="viewer-3", at=later(second)))

    # IVS ended the replica itself (reconnectWindowSeconds 0): nothing left for moderation to stop
    assert [c.operation for c in show.ivs.mutating_calls()] == ["StartParticipantReplication", "DisconnectParticipant"]
    assert show.ivs.replicas(STAGE, "p1", active_only=True) == []
    [entry] = audit(show)
    assert "replicasStopped" not in entry["details"]


# the disconnect sweep of `stagepilot ban add` ------------------------------------------------------
def test_ban_sweep_disconnects_the_user_on_every_stage_with_a_policy_and_no_one_else(
    show: LocalDeployment, events: EventFactory
) -> None:
    put_policy(show, policy(OTHER_STAGE))
    send(show, events.published("t-main", user_id="troll-1"))
    send(show, events.published("t-green", user_id="troll-1", stage=OTHER_STAGE, session="st-GreenSession1"))
    send(show, events.published("nice", user_id="viewer-3"))
    assert disconnects(show) == []

    show.services.bans.add("troll-1", reason="spam raid")
    outcomes = sweep_banned_user(show.services, "troll-1", reason="spam raid", stage_arns=[STAGE, OTHER_STAGE])

    assert sorted((d["stageArn"], d["participantId"], d["reason"]) for d in disconnects(show)) == [
        (OTHER_STAGE, "t-green", "spam raid"),
        (STAGE, "t-main", "spam raid"),
    ]
    assert [o.action for o in outcomes] == ["disconnect", "disconnect"]
    assert connected(show, STAGE, "nice")
    lookups = [c.params for c in show.ivs.calls if c.operation == "ListParticipants"]
    assert {p.get("filterByUserId") for p in lookups} == {"troll-1"}
    assert [e["rule"] for e in audit(show) + audit(show, OTHER_STAGE)] == ["global-ban", "global-ban"]

    # The user's publish event arriving afterwards finds the disconnect done.
    send(show, events.published("t-main", user_id="troll-1", at=later(10)))
    assert len(disconnects(show)) == 2


def test_ban_sweep_leaves_paused_stages_and_stages_without_the_user(make_deployment: Any, events: EventFactory) -> None:
    deployment: LocalDeployment = make_deployment(automations=[ModerationAutomation()])
    put_policy(deployment, {**policy(), "paused": True})
    put_policy(deployment, policy(OTHER_STAGE))
    send(deployment, events.published("t-main", user_id="troll-1"))
    send(deployment, events.published("nice", user_id="viewer-3", stage=OTHER_STAGE, session="st-GreenSession1"))

    outcomes = sweep_banned_user(deployment.services, "troll-1", reason="", stage_arns=[STAGE, OTHER_STAGE])

    assert deployment.ivs.mutating_calls() == []
    assert [o.reason for o in outcomes] == ["stage is paused", "troll-1 is not connected"]


# manual kick ---------------------------------------------------------------------------------------
def test_manual_kick_resolves_the_active_session_and_is_audited(show: LocalDeployment, events: EventFactory) -> None:
    send(show, events.published("p1", user_id="viewer-3"))

    outcome = disconnect_participant(
        show.services,
        stage_arn=STAGE,
        session_id=None,
        participant_id="p1",
        user_id=None,
        rule=Rule.MANUAL,
        reason="x" * 300,
        dry_run=False,
        event_id="manual-1",
        time=later(30),
    )

    assert outcome.acted
    assert disconnects(show) == [{"stageArn": STAGE, "participantId": "p1", "reason": "x" * 128}]
    [entry] = audit(show)
    assert (entry["rule"], entry["sessionId"], entry["action"]) == ("manual", SESSION, "disconnect")


@pytest.mark.parametrize("disconnected_before", [True, False], ids=["it disconnected first", "it did not"])
def test_a_disconnect_taken_over_from_an_owner_that_died_is_not_repeated(
    show: LocalDeployment, events: EventFactory, disconnected_before: bool
) -> None:
    send(show, events.published("p1", user_id="viewer-3"))
    # Another delivery claimed p1's disconnect (and perhaps disconnected it), then died before recording it.
    claim, _ = show.services.disconnect_claims.claim(STAGE, SESSION, "p1", owner="dead-delivery", dry_run=False)
    assert claim is not None
    if disconnected_before:
        show.ivs.client().disconnect_participant(stageArn=STAGE, participantId="p1", reason="spam")
    show.clock.advance_to(show.clock() + CLAIM_LEASE + timedelta(seconds=1))

    outcome = disconnect_participant(
        show.services,
        stage_arn=STAGE,
        session_id=SESSION,
        participant_id="p1",
        user_id="viewer-3",
        rule=Rule.MANUAL,
        reason="spam",
        dry_run=False,
        event_id="manual-2",
        time=later(200),
    )

    assert outcome.acted
    assert len(disconnects(show)) == 1  # whoever made it, DisconnectParticipant reached IVS once
    assert not connected(show, STAGE, "p1")
    assert [e["result"] for e in audit(show)] == ["disconnected"]


# routing and failures ------------------------------------------------------------------------------
def test_a_flag_from_a_source_not_in_the_allow_list_never_reaches_moderation(
    show: LocalDeployment, events: EventFactory
) -> None:
    assert show.put_event(events.flagged("p1", source="someone.else")) == []
    assert show.put_event(events.flagged("p2", source="stagepilot.moderation")) == ["moderation"]
    show.run_due()
    assert [d.event["detail"]["participant_id"] for d in show.deliveries] == ["p2"]


def test_a_server_error_on_disconnect_is_retried_then_done(show: LocalDeployment, events: EventFactory) -> None:
    show.ivs.fail_next("DisconnectParticipant")
    send(show, events.published("p1", user_id="spammer-7"))
    assert disconnects(show) == []
    assert show.deliveries[-1].error is not None

    show.drain()

    assert len(disconnects(show)) == 1
    assert not connected(show, STAGE, "p1")
    assert [e["result"] for e in audit(show)] == ["disconnected"]
    assert show.metrics.counts["EventRetried"] == 1
    assert show.dead_letters["moderation"] == []


def test_a_retry_after_a_crash_past_the_disconnect_finishes_the_job(
    show: LocalDeployment, events: EventFactory
) -> None:
    # The first delivery disconnected p1, then failed listing replicas (the Lambda died, in effect).
    send(show, events.published("p0", user_id="host"))  # the session goes on after p1 is kicked
    send(show, events.published("p1", user_id="viewer-3"))
    show.ivs.client().start_participant_replication(
        sourceStageArn=STAGE, destinationStageArn=OTHER_STAGE, participantId="p1", reconnectWindowSeconds=300
    )
    show.run_due()
    show.ivs.fail_next("ListParticipantReplicas")
    # p1's token is exchanged for one of a blocked user (what IVS answers decides, not the event's body)
    show.ivs.declare_participant(STAGE, "p1", user_id="spammer-7")
    send(show, events.published("p1", user_id="spammer-7", at=later(1), event_id="kick-event"))
    assert len(disconnects(show)) == 1
    assert show.ivs.replicas(STAGE, "p1", active_only=True) != []

    show.drain()

    # The retry resumes its claim: IVS shows p1 disconnected (GetParticipant), so DisconnectParticipant is
    # not called again; it stops the replica it had not reached (IVS keeps it on air for its reconnect
    # window); one audit entry, one metric.
    assert [d["participantId"] for d in disconnects(show)] == ["p1"]
    assert show.ivs.replicas(STAGE, "p1", active_only=True) == []
    assert [e["result"] for e in audit(show)] == ["disconnected"]
    assert show.metrics.counts["ParticipantDisconnected"] == 1
    assert show.dead_letters["moderation"] == []


def test_ban_sweep_stays_under_the_disconnect_quota_when_paced(show: LocalDeployment, events: EventFactory) -> None:
    # IVS allows 5 DisconnectParticipant calls per second; the stand-in throttles the excess (429).
    show.ivs.set_rate_limit("DisconnectParticipant", 5)
    for index in range(8):  # one user on eight devices
        send(show, events.published(f"t{index}", user_id="troll-1"))

    def sleep(seconds: float) -> None:
        show.clock.advance_to(show.clock() + timedelta(seconds=seconds))

    paced = Services(
        settings=show.settings,
        table=show.table,
        ivs=IvsStage(show.ivs.client(), pacer=Pacer(5, clock=lambda: show.clock().timestamp(), sleep=sleep)),
        metrics=show.metrics,
        clock=show.clock,
    )
    outcomes = sweep_banned_user(paced, "troll-1", reason="spam raid", stage_arns=[STAGE])

    assert [o.action for o in outcomes] == ["disconnect"] * 8
    assert len(disconnects(show)) == 8
    assert not any(c.status == 429 for c in show.ivs.calls)
    assert show.clock() - T0 >= timedelta(seconds=1.4)  # eight calls at 5 per second


def test_ban_sweep_reports_a_throttled_disconnect_and_a_rerun_finishes_it(
    show: LocalDeployment, events: EventFactory
) -> None:
    put_policy(show, policy(OTHER_STAGE))
    send(show, events.published("t-main", user_id="troll-1"))
    send(show, events.published("t-green", user_id="troll-1", stage=OTHER_STAGE, session="st-GreenSession1"))
    show.ivs.fail_next("DisconnectParticipant", error="ThrottlingException")

    first = sweep_banned_user(show.services, "troll-1", reason="", stage_arns=[STAGE, OTHER_STAGE])
    assert [o.action for o in first] == ["failed", "disconnect"]
    assert [d["participantId"] for d in disconnects(show)] == ["t-green"]

    again = sweep_banned_user(show.services, "troll-1", reason="", stage_arns=[STAGE, OTHER_STAGE])
    assert [o.action for o in again] == ["disconnect", "skip"]
    assert [d["participantId"] for d in disconnects(show)] == ["t-green", "t-main"]


# IVS over bodies -----------------------------------------------------------------------------------
def test_a_forged_publish_with_a_banned_user_id_does_not_kick_the_victim(
    show: LocalDeployment, events: EventFactory
) -> None:
    show.services.bans.add("troll-1", reason="harassment")
    send(show, events.published("victim", user_id="viewer-3"))
    reads = sum(1 for c in show.ivs.calls if c.operation == "GetParticipant")  # blockedAttributes: 1
    # a body in the queue (not sent by IVS) that names the victim's participant with a banned user id
    show.put_event(events.published("victim", user_id="troll-1", at=later(5)), observe=False)
    show.run_due()

    assert disconnects(show) == []
    assert connected(show, STAGE, "victim")
    [entry] = [e for e in audit(show) if e["action"] == "body-mismatch"]
    assert (entry["participantId"], entry["userId"]) == ("victim", "viewer-3")
    assert "troll-1" in entry["reason"]
    assert show.metrics.counts["BodyMismatch"] == 1
    assert sum(1 for c in show.ivs.calls if c.operation == "GetParticipant") == reads + 1  # the confirmation


@pytest.mark.parametrize("rule", ["global-ban", "blocked-user-id"])
def test_a_match_on_the_bodys_user_id_is_confirmed_with_one_participant_read(
    show: LocalDeployment, events: EventFactory, rule: str
) -> None:
    trigger(rule, show, events)

    assert [d["participantId"] for d in disconnects(show)] == ["p1"]
    assert sum(1 for c in show.ivs.calls if c.operation == "GetParticipant") == 1
    assert show.metrics.counts.get("BodyMismatch") is None


def test_a_replica_is_moderated_by_its_destinations_policy_like_any_participant(
    show: LocalDeployment, events: EventFactory
) -> None:
    put_policy(show, policy(OTHER_STAGE, blockedUserIds=["guest-9"]))
    send(show, events.published("guest", user_id="guest-9"))  # not blocked on STAGE
    show.ivs.client().start_participant_replication(
        sourceStageArn=STAGE, destinationStageArn=OTHER_STAGE, participantId="guest", reconnectWindowSeconds=300
    )
    show.run_due()

    assert connected(show, STAGE, "guest")
    assert not connected(show, OTHER_STAGE, "guest")
    assert show.ivs.replicas(STAGE, "guest", active_only=True) == []
    [entry] = audit(show, OTHER_STAGE)
    assert (entry["action"], entry["rule"]) == ("disconnect", "blocked-user-id")
    [blocked] = [e for e in show.services.audit.list(STAGE) if e["action"] == "blocked-at-destination"]
    assert blocked["details"]["destinationStageArn"] == OTHER_STAGE


# flags by reporter (docs/events.md) ------------------------------------------------------------------
def test_one_report_sent_twice_with_a_new_id_counts_once(show: LocalDeployment, events: EventFactory) -> None:
    send(show, events.published("p1", user_id="viewer-3"))
    for second in (1, 2):  # the sender retries with a new event id
        send(show, events.flagged("p1", user_id="viewer-3", at=later(second), reporter="viewer-77"))

    assert disconnects(show) == []
    send(show, events.flagged("p1", user_id="viewer-3", at=later(3), reporter="viewer-78"))
    assert [d["participantId"] for d in disconnects(show)] == ["p1"]


def test_a_reporter_counts_again_in_a_later_window(show: LocalDeployment, events: EventFactory) -> None:
    send(show, events.published("p1", user_id="viewer-3"))
    send(show, events.flagged("p1", user_id="viewer-3", at=later(1), reporter="viewer-77"))
    send(show, events.flagged("p1", user_id="viewer-3", at=later(400), reporter="viewer-78"))
    assert disconnects(show) == []  # 300 s window: the two reports are not in one
    send(show, events.flagged("p1", user_id="viewer-3", at=later(450), reporter="viewer-77"))
    assert [d["participantId"] for d in disconnects(show)] == ["p1"]


@pytest.mark.parametrize(
    ("body_user", "ivs_user", "disconnected", "mismatch"),
    [
        ("troll-1", "troll-1", "global-ban", False),  # the body is right: confirmed, disconnected
        ("troll-1", "viewer-3", None, True),  # the body names a banned user IVS does not see there
        ("viewer-3", "troll-1", "global-ban", True),  # attributes decide here, so IVS was asked: it wins
        ("", "spammer-7", "blocked-user-id", True),  # a body without a user id
        ("spammer-7", "viewer-3", None, True),  # blockedUserIds from the body alone
        ("viewer-3", "viewer-3", None, False),
    ],
)
def test_who_the_participant_is_comes_from_ivs_whatever_the_body_says(
    show: LocalDeployment, events: EventFactory, body_user: str, ivs_user: str, disconnected: str | None, mismatch: bool
) -> None:
    show.services.bans.add("troll-1", reason="harassment")
    show.ivs.declare_participant(STAGE, "p1", user_id=ivs_user)
    show.ivs.observe(events.published("p1", user_id=ivs_user, event_id="at-ivs"))

    send(show, {**events.published("p1", user_id=body_user, at=later(1)), "id": "in-the-queue"})

    assert [e["rule"] for e in audit(show) if e["action"] == "disconnect"] == ([disconnected] if disconnected else [])
    [*mismatches] = [e for e in audit(show) if e["action"] == "body-mismatch"]
    assert len(mismatches) == (1 if mismatch else 0)
    if mismatches:
        assert (mismatches[0]["userId"], mismatches[0]["details"]["bodyUserId"]) == (ivs_user, body_user)


def test_a_body_that_hides_a_banned_user_is_caught_by_the_pass(make_deployment: Any, events: EventFactory) -> None:
    deployment: LocalDeployment = make_deployment(automations=[ModerationAutomation()])
    put_policy(deployment, {"stageArn": STAGE, "moderation": {"blockedUserIds": ["spammer-7"]}})
    deployment.services.bans.add("troll-1", reason="harassment")
    deployment.ivs.declare_participant(STAGE, "p1", user_id="troll-1")
    deployment.ivs.observe(events.published("p1", user_id="troll-1", event_id="at-ivs"))
    # the body says someone harmless: nothing on the event path asks IVS (no rule matches the body)
    send(deployment, {**events.published("p1", user_id="viewer-3", at=later(1)), "id": "in-the-queue"})
    assert disconnects(deployment) == []

    deployment.reconcile()  # the pass reads who is on the stage from IVS's listing

    assert [d["participantId"] for d in disconnects(deployment)] == ["p1"]


def test_a_retried_disconnect_of_a_replica_blocks_it_once(show: LocalDeployment, events: EventFactory) -> None:
    put_policy(show, policy(OTHER_STAGE, blockedUserIds=["guest-9"]))
    send(show, events.published("guest", user_id="guest-9"))
    show.ivs.fail_next("DisconnectParticipant", 1)  # the first delivery blocks, then IVS fails the kick
    show.ivs.client().start_participant_replication(
        sourceStageArn=STAGE, destinationStageArn=OTHER_STAGE, participantId="guest"
    )
    show.drain()

    assert not connected(show, OTHER_STAGE, "guest")
    blocked = [e for e in show.services.audit.list(STAGE) if e["action"] == "blocked-at-destination"]
    assert len(blocked) == 1
    assert show.metrics.counts["ReplicaBlocked"] == 1
    assert [e["action"] for e in audit(show, OTHER_STAGE)] == ["disconnect"]
