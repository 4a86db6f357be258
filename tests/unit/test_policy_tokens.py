"""The policy's ``tokens`` section (docs/policy.md, docs/door.md): the roles the door may grant, checked field
by field."""

from __future__ import annotations

from typing import Any

import pytest

from stagepilot.policy import TokenRole, TokensPolicy, parse_policy, validate_policy

STAGE = "arn:aws:ivs:us-east-1:123456789012:stage/AbCdef1G2hij"

# The tokens example of docs/policy.md, verbatim.
DOCUMENTED_TOKENS: dict[str, Any] = {
    "roles": {
        "host": {"capabilities": ["PUBLISH", "SUBSCRIBE"], "attributes": {"role": "host"}, "durationMinutes": 10},
        "viewer": {"capabilities": ["SUBSCRIBE"], "durationMinutes": 10},
    },
    "defaultRole": "viewer",
}


ONE = {"v": {"capabilities": ["SUBSCRIBE"], "durationMinutes": 1}}


def problems(tokens: object) -> list[str]:
    return [str(p) for p in validate_policy({"stageArn": STAGE, "tokens": tokens})]


def test_the_contract_example_parses_to_roles_and_round_trips() -> None:
    policy = parse_policy({"stageArn": STAGE, "tokens": DOCUMENTED_TOKENS})
    assert policy.tokens == TokensPolicy(
        roles={
            "host": TokenRole(frozenset({"PUBLISH", "SUBSCRIBE"}), 10, {"role": "host"}),
            "viewer": TokenRole(frozenset({"SUBSCRIBE"}), 10),
        },
        default_role="viewer",
    )
    assert parse_policy(policy.to_document()) == policy
    assert policy.to_document()["tokens"] == DOCUMENTED_TOKENS


def test_a_policy_without_tokens_has_none() -> None:
    assert parse_policy({"stageArn": STAGE}).tokens is None


@pytest.mark.parametrize(
    ("tokens", "expected"),
    [
        (5, "tokens: must be an object, got integer"),
        ({}, "tokens.roles: required field missing (an object of roles by name)"),
        ({"roles": {}}, "tokens.roles: must name at least one role"),
        ({"roles": []}, "tokens.roles: must be an object, got array"),
        (
            {"roles": {"v": {"capabilities": ["SUBSCRIBE"], "durationMinutes": 1}}, "ttl": 3},
            "tokens.ttl: unknown field",
        ),
        ({"roles": {"a b": {}}}, 'tokens.roles: role name "a b"'),
        ({"roles": {"v": {"durationMinutes": 5}}}, "tokens.roles.v.capabilities: required field missing"),
        (
            {"roles": {"v": {"capabilities": [], "durationMinutes": 5}}},
            "tokens.roles.v.capabilities: must not be empty",
        ),
        (
            {"roles": {"v": {"capabilities": ["WATCH"], "durationMinutes": 5}}},
            'tokens.roles.v.capabilities[0]: must be PUBLISH or SUBSCRIBE, got "WATCH"',
        ),
        (
            {"roles": {"v": {"capabilities": ["PUBLISH", "PUBLISH"], "durationMinutes": 5}}},
            "tokens.roles.v.capabilities: must not repeat a capability",
        ),
        (
            {"roles": {"v": {"capabilities": "SUBSCRIBE", "durationMinutes": 5}}},
            "tokens.roles.v.capabilities: must be an array",
        ),
        ({"roles": {"v": {"capabilities": ["SUBSCRIBE"]}}}, "tokens.roles.v.durationMinutes: required field missing"),
        (
            {"roles": {"v": {"capabilities": ["SUBSCRIBE"], "durationMinutes": 0}}},
            "tokens.roles.v.durationMinutes: must be between 1 and 20160, got 0",
        ),
        (
            {"roles": {"v": {"capabilities": ["SUBSCRIBE"], "durationMinutes": 20161}}},
            "tokens.roles.v.durationMinutes: must be between 1 and 20160, got 20161",
        ),
        (
            {"roles": {"v": {"capabilities": ["SUBSCRIBE"], "durationMinutes": True}}},
            "tokens.roles.v.durationMinutes: must be an integer, got boolean",
        ),
        (
            {"roles": {"v": {"capabilities": ["SUBSCRIBE"], "durationMinutes": 5, "attributes": {"tier": 1}}}},
            "tokens.roles.v.attributes.tier: must be a string, got integer",
        ),
        (
            {"roles": {"v": {"capabilities": ["SUBSCRIBE"], "durationMinutes": 5, "attributes": ["x"]}}},
            "tokens.roles.v.attributes: must be an object, got array",
        ),
        (
            {"roles": {"v": {"capabilities": ["SUBSCRIBE"], "durationMinutes": 5, "attributes": {"k": "x" * 1100}}}},
            "tokens.roles.v.attributes: must be at most 1024 bytes in all, got 1101",
        ),
        (
            {"roles": {"v": {"capabilities": ["SUBSCRIBE"], "durationMinutes": 5, "scope": "x"}}},
            "tokens.roles.v.scope: unknown field",
        ),
        (
            {"roles": {"v": {"capabilities": ["SUBSCRIBE"], "durationMinutes": 5}}, "defaultRole": "host"},
            'tokens.defaultRole: must name a role in tokens.roles (v), got "host"',
        ),
        (
            {"roles": {"v": {"capabilities": ["SUBSCRIBE"], "durationMinutes": 5}}, "defaultRole": 1},
            "tokens.defaultRole: must be a string, got integer",
        ),
    ],
)
def test_each_problem_names_its_field(tokens: object, expected: str) -> None:
    found = problems(tokens)
    assert any(p.startswith(expected) for p in found), found


def test_every_problem_of_a_bad_role_is_reported_at_once() -> None:
    found = problems({"roles": {"v": {"capabilities": ["X"], "durationMinutes": 0}}, "defaultRole": "nope"})
    assert len(found) == 3, found
