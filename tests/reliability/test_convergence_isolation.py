"""One stage's trouble never stops the pass for the others (docs/policy.md, issue 22 §2-3 and §5).

Each story is a fleet of live stages whose first publish was lost, so the pass must compose every one of
them; one stage meets a trouble that used to abort the whole pass (and, the rotation never moving past
it, every later pass): a missing permission, a malformed item, a throttled audit write. Every other
stage still converges; the troubled one is reported with the stage and why, and counted.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from botocore.exceptions import ClientError

from stagepilot.adapters.schema import BAN_PARTITION, PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE
from stagepilot.automations.composition import CompositionAutomation
from stagepilot.automations.moderation import ModerationAutomation
from stagepilot.convergence import PassReport, run_pass
from stagepilot.local.deployment import LocalDeployment
from tests.support import CHANNEL, ENCODER, EventFactory, later, put_policy

FLEET = [f"arn:aws:ivs:us-east-1:123456789012:stage/Fleet{n:04d}" for n in range(6)]
TROUBLED = FLEET[0]  # first in the pass's order (ARN order from the cursor)
DESTINATION = "arn:aws:ivs:us-east-1:123456789012:stage/GreenRoom"
COMPOSED = {
    "destinations": [{"name": "live", "channel": {"channelArn": CHANNEL, "encoderConfigurationArn": ENCODER}}]
}  # own_channel() gives each stage its own


def session(n: int) -> str:
    return f"st-Fleet{n:04d}Sess"  # 16 characters, as IVS makes them


def own_channel(policy: dict[str, Any], stage_arn: str) -> dict[str, Any]:
    """The stage's policy: ``policy`` with a channel of the stage's own (a channel takes one stream at a
    time, so a fleet composed side by side needs one channel per stage)."""
    if "composition" not in policy:
        return policy
    channel = stage_arn.replace("stage/", "channel/")
    destinations = [{"name": "live", "channel": {"channelArn": channel, "encoderConfigurationArn": ENCODER}}]
    return {**policy, "composition": {**policy["composition"], "destinations": destinations}}


def fleet(make_deployment: Any, events: EventFactory, policy: dict[str, Any]) -> LocalDeployment:
    deployment: LocalDeployment = make_deployment()  # the tests run the passes
    put_policy(deployment, {"stageArn": "default", **{k: v for k, v in policy.items() if k != "composition"}})
    deployment.ivs.create_stage(DESTINATION)
    for n, arn in enumerate(FLEET):
        put_policy(deployment, {"stageArn": arn, **own_channel(policy, arn)})
        deployment.ivs.create_stage(arn)
        deployment.put_event(
            events.published(f"host{n}", user_id=f"host-{n}", stage=arn, session=session(n)), deliver=False
        )
    deployment.clock.advance_to(later(300))
    return deployment


def composed(deployment: LocalDeployment) -> set[str]:
    return {arn for arn in FLEET if any(c.state in ("STARTING", "ACTIVE") for c in deployment.ivs.compositions(arn))}


class FailingClient:
    """The table's DynamoDB client, with one kind of request refused as AWS would refuse it."""

    def __init__(self, client: Any, method: str, refuse: Callable[[dict[str, Any]], ClientError | None]) -> None:
        self._client, self._method, self._refuse = client, method, refuse
        self.refused = 0

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._client, name)
        if name != self._method:
            return real

        def call(**params: Any) -> Any:
            error = self._refuse(params)
            if error is not None:
                self.refused += 1
                raise error
            return real(**params)

        return call


def error(code: str, operation: str, status: int = 400) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": f"{code} (test)"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        operation,
    )


def troubled_errors(report: PassReport) -> list[str]:
    return [why for arn, why in report.errors if arn == TROUBLED]


def test_a_missing_permission_on_one_stage_does_not_stop_the_pass(make_deployment: Any, events: EventFactory) -> None:
    # Replication on the troubled stage finds its publisher gone (GetParticipant: not found) and releases
    # the claim it took: DeleteItem, which the convergence role lacked (AccessDenied).
    deployment = fleet(
        make_deployment, events, {"composition": COMPOSED, "replication": [{"destinationStageArn": DESTINATION}]}
    )
    client = FailingClient(
        deployment.table.client, "delete_item", lambda params: error("AccessDeniedException", "DeleteItem")
    )
    deployment.table.client = client
    deployment.ivs.fail_next("GetParticipant", 1, error="ResourceNotFoundException")

    report = deployment.reconcile()

    assert client.refused == 1
    assert composed(deployment) == set(FLEET)
    replicated = {arn for arn in FLEET if deployment.ivs.replicas(arn, f"host{FLEET.index(arn)}", active_only=True)}
    assert replicated == set(FLEET) - {TROUBLED}
    [why] = troubled_errors(report)
    assert why.startswith("replication: DeleteItem: AccessDeniedException")
    assert deployment.metrics.counts["ReconcileStageFailed"] == 1
    assert [arn for arn, _ in report.errors] == [TROUBLED]

    deployment.table.client = client._client  # the permission granted: the next pass finishes it
    deployment.clock.advance_to(later(360))
    again = deployment.reconcile()
    assert again.errors == []
    assert deployment.ivs.replicas(TROUBLED, "host0", active_only=True)


def test_a_malformed_ban_item_is_reported_and_skipped(make_deployment: Any, events: EventFactory) -> None:
    deployment = fleet(make_deployment, events, {"composition": COMPOSED, "moderation": {"blockedUserIds": ["x"]}})
    deployment.put_event(
        events.published("troll", user_id="troll-3", stage=TROUBLED, session=session(0), at=later(301)), deliver=False
    )
    deployment.services.bans.add("spammer-7", reason="spam")
    table = deployment.table
    table.client.put_item(  # written behind the CLI's back: a string where DynamoDB's TTL wants a number
        TableName=table.name,
        Item={PARTITION_KEY: {"S": BAN_PARTITION}, SORT_KEY: {"S": "troll-3"}, TTL_ATTRIBUTE: {"S": "tomorrow"}},
    )
    deployment.put_event(
        events.published("spammer", user_id="spammer-7", stage=FLEET[1], session=session(1), at=later(302)),
        deliver=False,
    )
    deployment.clock.advance_to(later(330))

    report = deployment.reconcile()

    assert composed(deployment) == set(FLEET)  # composition still runs on the troubled stage too
    [why] = troubled_errors(report)
    assert "item BAN/troll-3: expiresAt: expected epoch seconds (a number), found str 'tomorrow'" in why
    assert deployment.metrics.counts["MalformedItem"] == 1
    # the other bans still hold: the spammer's lost publish is healed by a disconnect
    disconnected = [c.params for c in deployment.ivs.mutating_calls() if c.operation == "DisconnectParticipant"]
    assert [(d["stageArn"], d["participantId"]) for d in disconnected] == [(FLEET[1], "spammer")]


def test_a_throttled_heal_audit_write_does_not_stop_the_pass(make_deployment: Any, events: EventFactory) -> None:
    deployment = fleet(make_deployment, events, {"composition": COMPOSED})

    def refuse(params: dict[str, Any]) -> ClientError | None:
        item = params.get("Item", {})
        entry = json.loads(item.get("entry", {}).get("S", "{}"))
        healed = entry.get("action") == "healed" and entry.get("stageArn") == TROUBLED
        return error("ProvisionedThroughputExceededException", "PutItem") if healed else None

    client = FailingClient(deployment.table.client, "put_item", refuse)
    deployment.table.client = client

    report = deployment.reconcile()

    assert client.refused == 1
    assert composed(deployment) == set(FLEET)
    [why] = troubled_errors(report)
    assert "ProvisionedThroughputExceededException" in why
    healed = [e for arn in FLEET[1:] for e in deployment.services.audit.list(arn) if e["action"] == "healed"]
    assert len(healed) == len(FLEET) - 1


def test_the_rotation_reaches_every_stage_while_one_fails_every_time(
    make_deployment: Any, events: EventFactory
) -> None:
    """Two stages per pass (the participant-listing budget), one stage failing on every pass: every stage is
    still examined within ceil(6 / 2) = 3 passes, and the failing one does not hold the rotation."""
    deployment = fleet(make_deployment, events, {"composition": COMPOSED})
    client = FailingClient(
        deployment.table.client,
        "get_item",
        lambda params: (
            error("AccessDeniedException", "GetItem")
            if params["Key"][PARTITION_KEY]["S"] == f"STAGE#{TROUBLED}"
            else None
        ),
    )
    deployment.table.client = client

    reports = []
    for minute in range(3):
        deployment.clock.advance_to(later(300 + 60 * (minute + 1)))
        reports.append(
            run_pass(deployment.services, [ModerationAutomation(), CompositionAutomation()], participant_listings=2)
        )

    assert composed(deployment) == set(FLEET) - {TROUBLED}
    assert [sorted({arn for arn, _ in r.outcomes} | {arn for arn, _ in r.errors}) for r in reports] == [
        FLEET[0:2],
        FLEET[2:4],
        FLEET[4:6],
    ]
    assert all(arn == TROUBLED for r in reports for arn, _ in r.errors)
    assert deployment.clock() - later(300) == timedelta(minutes=3)
