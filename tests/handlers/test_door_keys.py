"""The door's keys (docs/door.md): rotate refuses no join, lockout refuses every unused token."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import boto3
import pytest

from stagepilot.adapters.ivs import IvsStage
from stagepilot.door.decision import TokenRequest
from stagepilot.door.issuer import TokenIssuer
from stagepilot.door.keys import MANAGED_TAG, SigningKeys
from stagepilot.door.signing import IssuedToken, KeyPairTokens, StageEndpoints
from stagepilot.errors import ConflictError
from stagepilot.local.deployment import LocalDeployment
from tests.support import REGION, STAGE, put_policy

TOKENS = {"roles": {"viewer": {"capabilities": ["SUBSCRIBE"], "durationMinutes": 10}}, "defaultRole": "viewer"}


@pytest.fixture
def show(make_deployment: Any) -> LocalDeployment:
    deployment: LocalDeployment = make_deployment(automations=[])
    put_policy(deployment, {"stageArn": "default", "tokens": TOKENS})
    return deployment


def keys_of(deployment: LocalDeployment) -> SigningKeys:
    return SigningKeys(
        deployment.services.table,
        ivs=IvsStage(deployment.ivs.client()),
        kms=boto3.client("kms", region_name=REGION),
        name="StagePilot",
        clock=deployment.clock,
    )


def issue(deployment: LocalDeployment, keys: SigningKeys, user_id: str) -> IssuedToken:
    signer = keys.signer()
    assert signer is not None
    ivs = IvsStage(deployment.ivs.client())
    issuer = TokenIssuer(
        table=deployment.services.table,
        policies=deployment.services.new_policy_cache(),
        maker=KeyPairTokens(signer, StageEndpoints(ivs, clock=deployment.clock), clock=deployment.clock),
        metrics=deployment.metrics,
        clock=deployment.clock,
    )
    _, token = issuer.issue(TokenRequest(STAGE, user_id))
    assert token is not None
    return token


def test_rotate_refuses_no_join_and_keeps_at_most_two_keys(show: LocalDeployment) -> None:
    keys = keys_of(show)
    keys.rotate(longest_token_minutes=10)
    before = issue(show, keys, "early")
    keys.rotate(longest_token_minutes=10)
    after = issue(show, keys, "late")

    assert show.ivs.join(before.token).refused is None  # signed by the previous key: still joins
    assert show.ivs.join(after.token).refused is None
    with pytest.raises(ConflictError):  # the previous key's tokens may still join: not yet
        keys.rotate(longest_token_minutes=10)

    show.run_until(show.clock() + timedelta(minutes=10))
    waiting = issue(show, keys, "waiting")  # signed by the active key, unused
    keys.rotate(longest_token_minutes=10)
    assert show.ivs.join(waiting.token).refused is None
    assert len([k for k in keys.imported() if k["managed"]]) == 2


def test_lockout_refuses_every_unused_token_and_the_door_keeps_issuing(show: LocalDeployment) -> None:
    keys = keys_of(show)
    keys.rotate(longest_token_minutes=10)
    old = issue(show, keys, "early")
    keys.rotate(longest_token_minutes=10)
    unused = [issue(show, keys, f"user-{n}") for n in range(3)] + [old]

    keys.lockout()

    assert [show.ivs.join(t.token).refused for t in unused] == ["unknown-key"] * 4
    fresh = issue(show, keys, "after")
    assert show.ivs.join(fresh.token).refused is None
    assert [k["role"] for k in keys.imported()] == ["active"]


def test_keys_imported_by_others_are_left_alone_by_lockout(show: LocalDeployment) -> None:
    from stagepilot.door.keys import public_key_pem

    kms = boto3.client("kms", region_name=REGION)
    theirs = kms.create_key(KeySpec="ECC_NIST_P384", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    IvsStage(show.ivs.client()).import_public_key(public_key_pem(kms, theirs), name="app", tags={})
    keys = keys_of(show)
    keys.rotate(longest_token_minutes=10)

    keys.lockout()

    listed = keys.imported()
    assert sorted((k["name"], k["managed"]) for k in listed)[0] == ("app", False)
    assert len(listed) == 2 and all(MANAGED_TAG in (k.get("tags") or {}) or k["name"] == "app" for k in listed)
