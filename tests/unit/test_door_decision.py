"""The door's decision (docs/door.md) and its request parsing: plain data, no AWS."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from stagepilot.door.decision import BadTokenRequest, Grant, Refusal, TokenRequest, decide_token, parse_request
from stagepilot.door.signing import jws_signature_from_der, token_claims
from stagepilot.policy import parse_policy

STAGE = "arn:aws:ivs:us-east-1:123456789012:stage/AbCdef1G2hij"
POLICY = parse_policy(
    {
        "stageArn": STAGE,
        "tokens": {
            "roles": {
                "host": {
                    "capabilities": ["SUBSCRIBE", "PUBLISH"],
                    "attributes": {"role": "host"},
                    "durationMinutes": 5,
                },
                "speaker": {"capabilities": ["PUBLISH"], "durationMinutes": 5},
                "viewer": {"capabilities": ["SUBSCRIBE"], "durationMinutes": 15},
            },
            "defaultRole": "viewer",
        },
    }
)


def decide(  # type: ignore[no-untyped-def]
    role_name: str | None = None, *, ban: str | None = None, policy=POLICY, attributes: dict[str, str] | None = None
):
    return decide_token(TokenRequest(STAGE, "u-1", role_name, attributes or {}), policy=policy, ban_scope=ban)


def test_the_default_role_grants_its_capabilities_and_lifetime() -> None:
    grant = decide()
    assert isinstance(grant, Grant)
    assert (grant.role, grant.capabilities, grant.duration_minutes) == ("viewer", ("SUBSCRIBE",), 15)


def test_capabilities_are_in_ivs_order_and_the_roles_attributes_win() -> None:
    grant = decide("host", attributes={"role": "admin", "team": "blue"})
    assert isinstance(grant, Grant)
    assert grant.capabilities == ("PUBLISH", "SUBSCRIBE")
    assert grant.attributes == {"role": "host", "team": "blue"}


@pytest.mark.parametrize(
    ("kwargs", "refused"),
    [
        ({"ban": "join"}, "banned"),
        ({"role_name": "admin"}, "unknown-role"),
        ({"policy": None}, "no-tokens-policy"),
        ({"policy": parse_policy({"stageArn": STAGE})}, "no-tokens-policy"),
        ({"policy": parse_policy({"stageArn": STAGE, "paused": True})}, "paused"),
        ({"role_name": "speaker", "ban": "publish"}, "banned"),  # a role that only publishes, under a publish ban
    ],
)
def test_each_refusal(kwargs: dict, refused: str) -> None:  # type: ignore[type-arg]
    decision = decide(**kwargs)
    assert isinstance(decision, Refusal) and decision.refused == refused, decision


def test_paused_wins_over_a_ban_and_a_ban_over_a_missing_policy() -> None:
    paused = parse_policy({"stageArn": STAGE, "paused": True})
    assert decide(ban="join", policy=paused).refused == "paused"  # type: ignore[union-attr]
    assert decide(ban="join", policy=None).refused == "banned"  # type: ignore[union-attr]


def test_a_publish_ban_drops_publish_and_says_so() -> None:
    grant = decide("host", ban="publish")
    assert isinstance(grant, Grant) and grant.capabilities == ("SUBSCRIBE",)
    assert "PUBLISH dropped" in grant.why


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "body"),
        ({"userId": "u"}, "stageArn"),
        ({"stageArn": "arn:aws:ivs:us-east-1:1:channel/x", "userId": "u"}, "stageArn"),
        ({"stageArn": STAGE}, "userId"),
        ({"stageArn": STAGE, "userId": ""}, "userId"),
        ({"stageArn": STAGE, "userId": "u" * 129}, "userId"),
        ({"stageArn": STAGE, "userId": "u", "role": 3}, "role"),
        ({"stageArn": STAGE, "userId": "u", "attributes": {"a": 1}}, "attributes.a"),
        ({"stageArn": STAGE, "userId": "u", "attributes": {"a": "x" * 1100}}, "attributes"),
        ({"stageArn": STAGE, "userId": "u", "capabilities": ["PUBLISH"]}, "capabilities"),
    ],
)
def test_a_bad_request_names_its_field(body: object, field: str) -> None:
    with pytest.raises(BadTokenRequest) as caught:
        parse_request(body)
    assert caught.value.field == field


def test_a_short_r_or_s_is_padded_to_48_bytes() -> None:
    der = encode_dss_signature(5, 2**380 + 7)
    raw = jws_signature_from_der(der)
    assert len(raw) == 96
    assert int.from_bytes(raw[:48], "big") == 5 and int.from_bytes(raw[48:], "big") == 2**380 + 7


def test_the_claims_are_the_ones_ivs_documents_for_key_pair_tokens() -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime(2026, 12, 7, tzinfo=UTC)
    claims = token_claims(
        stage_arn=STAGE,
        user_id="u-1",
        capabilities=("SUBSCRIBE",),
        attributes={"a": "b"},
        issued_at=now,
        expires_at=now + timedelta(minutes=5),
        participant_id="AbCdEf123456",
        events_url="wss://e",
        whip_url="https://w",
    )
    assert claims == {
        "exp": int(now.timestamp()) + 300,
        "iat": int(now.timestamp()),
        "jti": "AbCdEf123456",
        "resource": STAGE,
        "topic": "AbCdef1G2hij",
        "events_url": "wss://e",
        "whip_url": "https://w",
        "capabilities": {"allow_publish": False, "allow_subscribe": True},
        "user_id": "u-1",
        "attributes": {"a": "b"},
        "version": "1.0",
    }
