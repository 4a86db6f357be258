"""Whether the door issues a token, and which: plain data in, a grant or a refusal out (no AWS).

    paused → banned (a ``join`` ban, global or the stage's) → no ``tokens`` policy → unknown role → grant

A ``publish`` ban drops ``PUBLISH`` from the grant (a role that could only publish is then refused as
``banned``). Capabilities, attributes and lifetime come from the role; the caller's attributes are
added under the role's and never override them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from stagepilot.events import STAGE_ARN
from stagepilot.policy import MAX_TOKEN_ATTRIBUTES_BYTES, MAX_USER_ID_LENGTH, TOKEN_CAPABILITIES, StagePolicy

BANNED: Final = "banned"
PAUSED: Final = "paused"
NO_TOKENS_POLICY: Final = "no-tokens-policy"
UNKNOWN_ROLE: Final = "unknown-role"
_REQUEST_FIELDS: Final = ("stageArn", "userId", "role", "attributes")


class BadTokenRequest(ValueError):
    """A request the door cannot read (HTTP 400); ``field`` names what is wrong."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name


@dataclass(frozen=True)
class TokenRequest:
    """What the application's backend asks for: a token for ``user_id`` on ``stage_arn``."""

    stage_arn: str
    user_id: str
    role: str | None = None  # None: the policy's defaultRole
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Grant:
    """Issue a token with exactly these capabilities, attributes and lifetime."""

    stage_arn: str
    user_id: str
    role: str
    capabilities: tuple[str, ...]  # in IVS's order: PUBLISH, SUBSCRIBE
    attributes: Mapping[str, str]
    duration_minutes: int
    why: str


@dataclass(frozen=True)
class Refusal:
    """No token: ``refused`` is one of ``BANNED``, ``PAUSED``, ``NO_TOKENS_POLICY``, ``UNKNOWN_ROLE``; ``reason``
    says why in words."""

    stage_arn: str
    user_id: str
    refused: str
    reason: str


def parse_request(body: object) -> TokenRequest:
    """The request in a JSON body ``{"stageArn", "userId", "role"?, "attributes"?}``; raises
    ``BadTokenRequest`` naming the first bad field."""
    if not isinstance(body, dict):
        raise BadTokenRequest("body", "must be a JSON object")
    for key in body:
        if key not in _REQUEST_FIELDS:
            raise BadTokenRequest(str(key), f"unknown field (expected one of: {', '.join(_REQUEST_FIELDS)})")
    stage_arn = body.get("stageArn")
    if not isinstance(stage_arn, str) or not STAGE_ARN.fullmatch(stage_arn):
        raise BadTokenRequest("stageArn", "required, a stage ARN (arn:aws:ivs:<region>:<account>:stage/<id>)")
    user_id = body.get("userId")
    if not isinstance(user_id, str) or not 1 <= len(user_id) <= MAX_USER_ID_LENGTH:
        raise BadTokenRequest("userId", f"required, a string of 1-{MAX_USER_ID_LENGTH} characters")
    role = body.get("role")
    if role is not None and (not isinstance(role, str) or not role):
        raise BadTokenRequest("role", "must be a non-empty string")
    attributes = body.get("attributes", {})
    if not isinstance(attributes, dict):
        raise BadTokenRequest("attributes", "must be an object of strings")
    for key, value in attributes.items():
        if not isinstance(key, str) or not key or not isinstance(value, str):
            raise BadTokenRequest(f"attributes.{key}", "keys and values must be strings (keys not empty)")
    if _size(attributes) > MAX_TOKEN_ATTRIBUTES_BYTES:
        raise BadTokenRequest("attributes", f"at most {MAX_TOKEN_ATTRIBUTES_BYTES} bytes in all (IVS's limit)")
    return TokenRequest(stage_arn=stage_arn, user_id=user_id, role=role, attributes=dict(attributes))


def decide_token(
    request: TokenRequest,
    *,
    policy: StagePolicy | None,
    ban_scope: str | None,
    ban_reason: str = "",
    ban_on_stage: bool = False,
) -> Grant | Refusal:
    """The door's one decision. ``policy``: the stage's effective policy (None: none, not even a default);
    ``ban_scope``: ``join``/``publish`` of the ban that applies to the user on the stage, or None;
    ``ban_on_stage``: that ban is the stage's own (not global)."""

    def refuse(kind: str, reason: str) -> Refusal:
        return Refusal(request.stage_arn, request.user_id, kind, reason)

    where = "this stage" if ban_on_stage else "every stage"
    because = f": {ban_reason}" if ban_reason else ""
    if policy is not None and policy.paused:
        return refuse(PAUSED, "the stage is paused (stagepilot pause): no token is issued for it")
    if ban_scope == "join":
        return refuse(BANNED, f"user {request.user_id} is banned from {where}{because}")
    if policy is None or policy.tokens is None:
        return refuse(NO_TOKENS_POLICY, "the stage's policy (and the default policy) has no tokens section")
    tokens = policy.tokens
    role_name = request.role or tokens.default_role
    if role_name is None:
        return refuse(UNKNOWN_ROLE, "the request names no role and the tokens policy has no defaultRole")
    role = tokens.roles.get(role_name)
    if role is None:
        return refuse(
            UNKNOWN_ROLE, f"role {role_name!r} is not in the stage's tokens policy ({', '.join(tokens.roles)})"
        )
    capabilities = [c for c in TOKEN_CAPABILITIES if c in role.capabilities]
    why = f"role {role_name}"
    if ban_scope == "publish":
        capabilities = [c for c in capabilities if c != "PUBLISH"]
        if not capabilities:
            return refuse(
                BANNED, f"user {request.user_id} may not publish on {where} and role {role_name} only publishes"
            )
        why += f"; PUBLISH dropped: user {request.user_id} may not publish on {where}{because}"
    attributes = {**request.attributes, **role.attributes}  # the role's attributes win
    if _size(attributes) > MAX_TOKEN_ATTRIBUTES_BYTES:
        attributes = dict(role.attributes)
        why += "; the caller's attributes left out (with the role's they exceed IVS's 1 KB)"
    return Grant(
        stage_arn=request.stage_arn,
        user_id=request.user_id,
        role=role_name,
        capabilities=tuple(capabilities),
        attributes=attributes,
        duration_minutes=role.duration_minutes,
        why=why,
    )


def _size(attributes: Mapping[str, str]) -> int:
    return sum(len(k.encode()) + len(v.encode()) for k, v in attributes.items())
