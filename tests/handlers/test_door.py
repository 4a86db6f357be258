"""The door end to end (docs/door.md): issuer → KMS (moto) → token → the IVS stand-in's join."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import boto3
import pytest

from stagepilot.adapters.ivs import IvsStage, Pacer
from stagepilot.automations.moderation import ModerationAutomation
from stagepilot.door.decision import Grant, Refusal, TokenRequest
from stagepilot.door.issuer import TokenIssuer
from stagepilot.door.keys import import_signing_key
from stagepilot.door.signing import (
    CREATE_MODE_CONCURRENCY,
    CREATE_TOKENS_PER_SECOND,
    CreatedTokens,
    IssuedToken,
    KeyPairTokens,
    KmsSigner,
    StageEndpoints,
)
from stagepilot.local.deployment import LocalDeployment
from tests.support import OTHER_STAGE, REGION, STAGE, put_policy

TOKENS = {
    "roles": {
        "host": {"capabilities": ["PUBLISH", "SUBSCRIBE"], "attributes": {"role": "host"}, "durationMinutes": 10},
        "viewer": {"capabilities": ["SUBSCRIBE"], "durationMinutes": 10},
    },
    "defaultRole": "viewer",
}


class Door:
    def __init__(self, deployment: LocalDeployment, *, mode: str = "signed") -> None:
        self.deployment = deployment
        # paced as the token function paces (on the virtual clock): CreateParticipantToken under IVS's 50/s
        pacer = Pacer(
            CREATE_TOKENS_PER_SECOND / CREATE_MODE_CONCURRENCY,
            clock=lambda: deployment.clock().timestamp(),
            sleep=lambda seconds: deployment.clock.advance_to(deployment.clock() + timedelta(seconds=seconds)),
        )
        self.ivs = IvsStage(deployment.ivs.client(), pacer=pacer)
        if mode == "signed":
            kms = boto3.client("kms", region_name=REGION)
            key_id = kms.create_key(KeySpec="ECC_NIST_P384", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
            self.key_arn = import_signing_key(self.ivs, kms, key_id, name="stagepilot-1")
            signer = KmsSigner(kms, key_id=key_id, public_key_arn=self.key_arn)
            maker: Any = KeyPairTokens(signer, StageEndpoints(self.ivs, clock=deployment.clock), clock=deployment.clock)
        else:
            maker = CreatedTokens(self.ivs)
        self.issuer = TokenIssuer(
            table=deployment.services.table,
            policies=deployment.services.new_policy_cache(),
            maker=maker,
            metrics=deployment.metrics,
            clock=deployment.clock,
        )
        self.calls_before = len(deployment.ivs.calls)

    def issue(self, user_id: str, *, stage: str = STAGE, role: str | None = None, **attributes: str) -> Any:
        return self.issuer.issue(TokenRequest(stage, user_id, role, attributes))

    def ivs_calls(self) -> list[str]:
        return [c.operation for c in self.deployment.ivs.calls[self.calls_before :]]


@pytest.fixture
def show(make_deployment: Any) -> LocalDeployment:
    deployment: LocalDeployment = make_deployment(automations=[ModerationAutomation()])
    put_policy(deployment, {"stageArn": "default", "tokens": TOKENS})
    deployment.ivs.create_stage(STAGE)
    deployment.ivs.create_stage(OTHER_STAGE)
    return deployment


def door_audit(deployment: LocalDeployment) -> list[dict[str, Any]]:
    return [e for e in deployment.services.audit.list(STAGE) if e["automation"] == "door"]


def test_a_signed_token_joins_with_the_roles_capabilities_and_attributes(show: LocalDeployment) -> None:
    door = Door(show)
    decision, token = door.issue("host-1", role="host", role_claim="x")
    assert isinstance(decision, Grant) and isinstance(token, IssuedToken)
    assert decision.capabilities == ("PUBLISH", "SUBSCRIBE")

    joined = show.ivs.join(token.token, publish=True)

    assert joined.refused is None and joined.published
    assert joined.participant_id == token.participant_id
    [participant] = [p for p in show.ivs.participants(STAGE) if p.participant_id == token.participant_id]
    assert participant.user_id == "host-1"
    assert participant.attributes == {"role": "host", "role_claim": "x"}


def test_caller_attributes_never_override_the_roles(show: LocalDeployment) -> None:
    decision, _ = Door(show).issuer.issue(TokenRequest(STAGE, "host-1", "host", {"role": "admin", "team": "a"}))
    assert isinstance(decision, Grant)
    assert decision.attributes == {"role": "host", "team": "a"}


def test_a_banned_user_gets_no_token_and_the_refusal_is_audited_and_counted(show: LocalDeployment) -> None:
    show.services.bans.add("troll-1", reason="raid")
    door = Door(show)

    decision, token = door.issue("troll-1")

    assert token is None and isinstance(decision, Refusal) and decision.refused == "banned"
    [entry] = door_audit(show)
    assert (entry["action"], entry["rule"], entry["userId"]) == ("token-refused", "banned", "troll-1")
    assert show.metrics.counts["TokenRefused"] == 1
    assert "TokenIssued" not in show.metrics.counts


@pytest.mark.parametrize(
    ("setup", "refused"),
    [
        (lambda d: put_policy(d, {"stageArn": STAGE}), "no-tokens-policy"),
        (lambda d: put_policy(d, {"stageArn": STAGE, "paused": True, "tokens": TOKENS}), "paused"),
        (lambda d: d.services.bans.add("u", stage_arn=STAGE), "banned"),
    ],
)
def test_each_refusal_is_named(show: LocalDeployment, setup: Any, refused: str) -> None:
    setup(show)
    decision, token = Door(show).issue("u")
    assert token is None and isinstance(decision, Refusal) and decision.refused == refused


def test_an_unknown_role_is_refused(show: LocalDeployment) -> None:
    decision, token = Door(show).issue("u", role="admin")
    assert token is None and isinstance(decision, Refusal) and decision.refused == "unknown-role"


def test_a_publish_ban_yields_a_subscribe_only_token_whose_publish_is_refused_by_ivs(show: LocalDeployment) -> None:
    show.services.bans.add("loud-2", scope="publish")
    door = Door(show)

    decision, token = door.issue("loud-2", role="host")

    assert isinstance(decision, Grant) and decision.capabilities == ("SUBSCRIBE",)
    assert token is not None
    joined = show.ivs.join(token.token, publish=True)
    assert joined.refused is None and not joined.published
    assert joined.publish_error == "INSUFFICIENT_CAPABILITIES"


def test_a_user_banned_after_issue_cannot_join_once_the_lifetime_has_passed(show: LocalDeployment) -> None:
    door = Door(show)
    _, token = door.issue("troll-1")
    assert token is not None
    show.services.bans.add("troll-1")

    show.run_until(show.clock() + timedelta(minutes=10, seconds=1))

    assert show.ivs.join(token.token).refused == "expired"
    decision, again = door.issue("troll-1")
    assert again is None and isinstance(decision, Refusal) and decision.refused == "banned"


def test_a_token_for_one_stage_or_a_forged_one_does_not_join(show: LocalDeployment) -> None:
    door = Door(show)
    _, token = door.issue("u")
    assert token is not None
    header, payload, signature = token.token.split(".")
    tampered = f"{header}.{payload[:-4]}AAAA.{signature}"
    assert show.ivs.join(tampered).refused in ("bad-signature", "malformed")


@pytest.mark.story
def test_a_thousand_issues_for_ten_stages_make_at_most_ten_getstage_calls_and_no_other_ivs_call(
    make_deployment: Any,
) -> None:
    deployment: LocalDeployment = make_deployment(automations=[])
    put_policy(deployment, {"stageArn": "default", "tokens": TOKENS})
    stages = [f"arn:aws:ivs:us-east-1:123456789012:stage/Door{index:04d}" for index in range(10)]
    for stage in stages:
        deployment.ivs.create_stage(stage)
    door = Door(deployment)

    for index in range(1000):
        decision, token = door.issue(f"user-{index}", stage=stages[index % 10])
        assert token is not None, decision

    calls = door.ivs_calls()
    assert calls.count("GetStage") <= 10
    assert set(calls) == {"GetStage"}


def test_create_mode_stays_under_fifty_a_second_with_no_throttle(make_deployment: Any) -> None:
    deployment: LocalDeployment = make_deployment(automations=[])
    put_policy(deployment, {"stageArn": "default", "tokens": TOKENS})
    deployment.ivs.create_stage(STAGE)
    door = Door(deployment, mode="create")

    for index in range(120):
        _, token = door.issue(f"user-{index}")
        assert token is not None
        joined = deployment.ivs.join(token.token)
        assert joined.refused is None

    made = [c for c in deployment.ivs.calls if c.operation == "CreateParticipantToken"]
    assert len(made) == 120 and all(c.status == 200 for c in made)
    span = (made[-1].time - made[0].time).total_seconds()
    assert 119 / span < 50


def test_ban_add_disconnects_a_connected_user_from_the_token_records_without_listing(show: LocalDeployment) -> None:
    from stagepilot.door.revoke import disconnect_issued

    door = Door(show)
    _, on_main = door.issue("troll-1", role="host")
    _, on_green = door.issue("troll-1", stage=OTHER_STAGE)
    _, unused = door.issue("troll-1")
    _, bystander = door.issue("fan-2")
    for token in (on_main, on_green, bystander):
        assert token is not None and show.ivs.join(token.token, publish=token is on_main).refused is None
    ban, _ = show.services.bans.add("troll-1", reason="raid")
    before = len(show.ivs.calls)

    outcomes = disconnect_issued(show.services, ban)

    calls = [c.operation for c in show.ivs.calls[before:]]
    assert "ListStages" not in calls and "ListParticipants" not in calls
    assert on_main is not None and on_green is not None and unused is not None
    gone = {
        (o.details["stage_arn"], o.details["participant_id"])
        for o in outcomes
        if o.details.get("result") == "disconnected"
    }
    assert gone == {(STAGE, on_main.participant_id), (OTHER_STAGE, on_green.participant_id)}
    connected = {
        p.participant_id for s in (STAGE, OTHER_STAGE) for p in show.ivs.participants(s) if p.state == "CONNECTED"
    }
    assert bystander is not None and connected == {bystander.participant_id}
    assert show.ivs.join(on_main.token).refused == "revoked"  # a disconnected token cannot join again


def test_a_publish_ban_added_later_disconnects_only_tokens_that_could_publish(show: LocalDeployment) -> None:
    from stagepilot.door.revoke import disconnect_issued

    door = Door(show)
    _, host = door.issue("loud-2", role="host")
    _, viewer = door.issue("loud-2", stage=OTHER_STAGE)
    assert host is not None and viewer is not None
    show.ivs.join(host.token, publish=True)
    show.ivs.join(viewer.token)
    ban, _ = show.services.bans.add("loud-2", scope="publish")

    outcomes = disconnect_issued(show.services, ban)

    assert [o.details["participant_id"] for o in outcomes if o.acted] == [host.participant_id]
    assert [p.participant_id for p in show.ivs.participants(OTHER_STAGE) if p.state == "CONNECTED"] == [
        viewer.participant_id
    ]


def test_a_refused_publish_of_a_subscribe_only_token_is_not_counted_as_abuse(make_deployment: Any) -> None:
    deployment: LocalDeployment = make_deployment(automations=[ModerationAutomation()])
    put_policy(
        deployment,
        {
            "stageArn": "default",
            "tokens": TOKENS,
            "moderation": {"publishErrorLimit": {"count": 2, "windowSeconds": 60}},
        },
    )
    deployment.services.bans.add("loud-2", scope="publish")
    door = Door(deployment)
    _, token = door.issue("loud-2", role="host")
    assert token is not None and token.capabilities == ("SUBSCRIBE",)

    for _ in range(3):  # IVS emits Participant Publish Error for each refused attempt
        joined = deployment.ivs.join(token.token, publish=True)
        assert joined.publish_error == "INSUFFICIENT_CAPABILITIES"
        deployment.run_until(deployment.clock() + timedelta(seconds=5))

    assert [c for c in deployment.ivs.mutating_calls() if c.operation == "DisconnectParticipant"] == []
    assert "ParticipantDisconnected" not in deployment.metrics.counts
