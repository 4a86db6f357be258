"""Scoped bans (docs/policy.md, docs/cli.md): global or for one stage, ``join`` or ``publish``; the event path and the
convergence pass honour them."""

from __future__ import annotations

from typing import Any

from stagepilot.adapters.table import JOIN, PUBLISH, BanStore, ban_key
from stagepilot.automations.moderation import ModerationAutomation
from stagepilot.local.deployment import LocalDeployment
from tests.support import OTHER_STAGE, STAGE, EventFactory, put_policy


def build(make_deployment: Any) -> LocalDeployment:
    deployment: LocalDeployment = make_deployment(automations=[ModerationAutomation()])
    put_policy(deployment, {"stageArn": STAGE, "moderation": {"blockedUserIds": ["spammer-7"]}})
    return deployment


def send(deployment: LocalDeployment, event: dict[str, Any]) -> None:
    deployment.put_event(event)
    deployment.run_due()


def disconnected(deployment: LocalDeployment) -> list[tuple[str, str]]:
    return [
        (c.params["stageArn"], c.params["participantId"])
        for c in deployment.ivs.mutating_calls()
        if c.operation == "DisconnectParticipant"
    ]


def rules(deployment: LocalDeployment, stage: str = STAGE) -> list[tuple[str, str]]:
    return [
        (e["participantId"], e["rule"])
        for e in deployment.services.audit.list(stage)
        if e["automation"] == "moderation" and e["action"] == "disconnect"
    ]


def test_a_stage_ban_disconnects_a_publisher_on_that_stage_only(make_deployment: Any, events: EventFactory) -> None:
    deployment = build(make_deployment)
    deployment.services.bans.add("troll-1", stage_arn=STAGE, reason="raid")

    send(deployment, events.published("p1", user_id="troll-1"))
    send(deployment, events.published("p2", user_id="troll-1", stage=OTHER_STAGE, session="st-OtherSession01"))

    assert disconnected(deployment) == [(STAGE, "p1")]
    assert rules(deployment) == [("p1", "stage-ban")]


def test_a_publish_ban_disconnects_a_publisher(make_deployment: Any, events: EventFactory) -> None:
    deployment = build(make_deployment)
    deployment.services.bans.add("troll-1", scope=PUBLISH)

    send(deployment, events.published("p1", user_id="troll-1"))

    assert disconnected(deployment) == [(STAGE, "p1")]
    assert rules(deployment) == [("p1", "global-ban")]


def test_the_pass_disconnects_a_join_banned_viewer_and_leaves_a_publish_banned_one(
    make_deployment: Any, events: EventFactory
) -> None:
    deployment = build(make_deployment)
    send(deployment, events.published("host", user_id="host-1"))  # the stage is live
    deployment.ivs.connect(STAGE, "v1", user_id="troll-1")  # subscribers: IVS sends no event for a join
    deployment.ivs.connect(STAGE, "v2", user_id="watcher-2")
    deployment.services.bans.add("troll-1", stage_arn=STAGE)  # subscribers send no events: only the pass sees them
    deployment.services.bans.add("watcher-2", scope=PUBLISH)

    deployment.reconcile()

    assert disconnected(deployment) == [(STAGE, "v1")]
    assert rules(deployment) == [("v1", "stage-ban")]


def test_a_join_ban_on_another_stage_leaves_a_viewer_alone(make_deployment: Any, events: EventFactory) -> None:
    deployment = build(make_deployment)
    send(deployment, events.published("host", user_id="host-1"))
    deployment.ivs.connect(STAGE, "v1", user_id="troll-1")
    deployment.services.bans.add("troll-1", stage_arn=OTHER_STAGE)

    deployment.reconcile()

    assert disconnected(deployment) == []


def test_global_and_stage_bans_are_kept_apart_and_the_strongest_applies(make_deployment: Any) -> None:
    bans: BanStore = build(make_deployment).services.bans
    bans.add("u", scope=PUBLISH, reason="no publishing")
    bans.add("u", stage_arn=STAGE, reason="not here")

    assert bans.for_stage("u", STAGE) is not None and bans.for_stage("u", STAGE).scope == JOIN  # type: ignore[union-attr]
    assert bans.for_stage("u", OTHER_STAGE).scope == PUBLISH  # type: ignore[union-attr]
    assert sorted((b.stage_arn or "", b.scope) for b in bans.list()) == [("", PUBLISH), (STAGE, JOIN)]

    bans.remove("u", stage_arn=STAGE)
    assert bans.for_stage("u", STAGE).scope == PUBLISH  # type: ignore[union-attr]
    bans.remove("u")
    assert bans.for_stage("u", STAGE) is None


def test_a_user_id_that_looks_like_a_stage_ban_key_is_never_mistaken_for_one(make_deployment: Any) -> None:
    bans: BanStore = build(make_deployment).services.bans
    tricky = f"u#{STAGE}"
    assert ban_key(tricky) == ban_key("u", STAGE)
    bans.add("u", stage_arn=STAGE)

    assert bans.get(tricky) is None  # the item is the stage ban of "u", not a global ban of the tricky id
    assert bans.for_stage(tricky, OTHER_STAGE) is None
    assert bans.for_stage("u", STAGE) is not None
