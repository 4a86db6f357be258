"""Replayed events (EventBridge archive replays, ``replay-name`` set) are never acted on (docs/architecture-infra.md).

Every live rule's pattern says ``"replay-name": [{"exists": false}]`` (stagepilot.routing); the local
deployment and ``simulate`` route with the same patterns, so a replay reaches no automation there either.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stagepilot.local.deployment import LocalDeployment
from stagepilot.local.simulate import read_scenario, simulate
from stagepilot.policy import parse_policy
from stagepilot.routing import REPLAY_NAME, build_routes
from tests.support import ACCOUNT, OTHER_STAGE, REGION, STAGE, EventFactory, put_policy

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EVERYTHING = {
    "stageArn": STAGE,
    "composition": {"destinations": [{"name": "live", "channel": {"channelArn": STAGE.replace("stage/", "channel/")}}]},
    "replication": [{"destinationStageArn": OTHER_STAGE}],
    "moderation": {"blockedUserIds": ["troll-3"], "flagLimit": {"count": 1, "windowSeconds": 300}},
}


def replayed(event: dict[str, Any]) -> dict[str, Any]:
    return {**event, REPLAY_NAME: "archive-replay-1"}


def test_every_route_refuses_replays() -> None:
    for route in build_routes(account=ACCOUNT, region=REGION):
        assert route.pattern[REPLAY_NAME] == [{"exists": False}], route.name


def test_a_replayed_event_acts_on_nothing(make_deployment: Any, events: EventFactory) -> None:
    deployment: LocalDeployment = make_deployment()
    put_policy(deployment, EVERYTHING)
    show = [
        events.published("p-host", user_id="host-1"),
        events.published("p-troll", user_id="troll-3"),
        events.publish_error("p-troll", user_id="troll-3"),
        events.flagged("p-host", user_id="host-1"),
    ]

    for event in show:
        assert deployment.put_event(replayed(event)) == [], event["detail-type"]
    deployment.drain()
    assert deployment.ivs.mutating_calls() == []
    assert deployment.deliveries == []

    # The same events, live: each reaches its automations, which act.
    for event in show:
        assert deployment.put_event(event)
    deployment.drain()
    assert {c.operation for c in deployment.ivs.mutating_calls()} >= {
        "StartComposition",
        "StartParticipantReplication",
        "DisconnectParticipant",
    }


def test_simulate_ignores_a_replayed_show() -> None:
    policies = [parse_policy(p) for p in json.loads((EXAMPLES / "policies.json").read_text())]
    lines = (EXAMPLES / "show.jsonl").read_text().splitlines()
    replay = [
        json.dumps(replayed(data)) if "simulate" not in (data := json.loads(line)) else line
        for line in lines
        if line.strip()
    ]

    live = simulate(policies, read_scenario("\n".join(lines)), reconcile_seconds=0)
    again = simulate(policies, read_scenario("\n".join(replay)), reconcile_seconds=0)

    assert live.calls, "the example show acts when it is live"
    assert again.calls == []
