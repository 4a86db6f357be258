"""The policy's ``limits`` section (docs/policy.md, "What a stage may cost"): checked field by field."""

from __future__ import annotations

from typing import Any

import pytest

from stagepilot.policy import HostGone, LimitsPolicy, ParticipantFilter, parse_policy, validate_policy

STAGE = "arn:aws:ivs:us-east-1:123456789012:stage/AbCdef1G2hij"

# The limits example of docs/policy.md, verbatim.
DOCUMENTED_LIMITS: dict[str, Any] = {
    "maxSessionMinutes": 240,
    "noPublisherSeconds": 120,
    "hostGone": {"userIds": ["host-1"], "graceSeconds": 120, "action": "stop-composition"},
}


def problems(limits: object) -> list[str]:
    return [str(p) for p in validate_policy({"stageArn": STAGE, "limits": limits})]


def test_the_documented_example_parses_and_round_trips() -> None:
    policy = parse_policy({"stageArn": STAGE, "limits": DOCUMENTED_LIMITS})
    assert policy.limits == LimitsPolicy(
        max_session_minutes=240,
        no_publisher_seconds=120,
        host_gone=HostGone(ParticipantFilter(user_ids=frozenset({"host-1"})), 120, "stop-composition"),
    )
    assert parse_policy(policy.to_document()) == policy
    assert policy.to_document()["limits"] == DOCUMENTED_LIMITS


def test_a_policy_without_limits_has_none_and_an_empty_section_bounds_nothing() -> None:
    assert parse_policy({"stageArn": STAGE}).limits is None
    assert parse_policy({"stageArn": STAGE, "limits": {}}).limits == LimitsPolicy()


def test_host_gone_by_attributes_ends_the_show() -> None:
    host_gone = {"attributes": {"role": "host"}, "graceSeconds": 0, "action": "end-show"}
    policy = parse_policy({"stageArn": STAGE, "limits": {"hostGone": host_gone}})
    assert policy.limits is not None and policy.limits.host_gone is not None
    assert policy.limits.host_gone.ends_show
    assert policy.limits.host_gone.hosts.matches(user_id="anyone", attributes={"role": "host"})
    assert not policy.limits.host_gone.hosts.matches(user_id="anyone", attributes={"role": "guest"})


@pytest.mark.parametrize(
    ("limits", "expected"),
    [
        ([], "limits: must be an object, got array"),
        ({"maxMinutes": 5}, "limits.maxMinutes: unknown field (expected one of: maxSessionMinutes,"),
        ({"maxSessionMinutes": 0}, "limits.maxSessionMinutes: must be between 1 and 1440, got 0"),
        ({"maxSessionMinutes": 1441}, "limits.maxSessionMinutes: must be between 1 and 1440, got 1441"),
        ({"maxSessionMinutes": 30.5}, "limits.maxSessionMinutes: must be an integer, got number"),
        ({"maxSessionMinutes": True}, "limits.maxSessionMinutes: must be an integer, got boolean"),
        ({"noPublisherSeconds": 9}, "limits.noPublisherSeconds: must be between 10 and 3600, got 9"),
        ({"noPublisherSeconds": "60"}, "limits.noPublisherSeconds: must be an integer, got string"),
        ({"hostGone": "host-1"}, "limits.hostGone: must be an object, got string"),
        (
            {"hostGone": {"graceSeconds": 60, "action": "end-show"}},
            "limits.hostGone: must give userIds and/or attributes (who the hosts are)",
        ),
        (
            {"hostGone": {"userIds": ["h"], "action": "end-show"}},
            "limits.hostGone.graceSeconds: required field missing",
        ),
        (
            {"hostGone": {"userIds": ["h"], "graceSeconds": 3601, "action": "end-show"}},
            "limits.hostGone.graceSeconds: must be between 0 and 3600, got 3601",
        ),
        (
            {"hostGone": {"userIds": ["h"], "graceSeconds": 60}},
            "limits.hostGone.action: required field missing (stop-composition or end-show)",
        ),
        (
            {"hostGone": {"userIds": ["h"], "graceSeconds": 60, "action": "stop"}},
            'limits.hostGone.action: must be stop-composition or end-show, got "stop"',
        ),
        (
            {"hostGone": {"userIds": ["h"], "graceSeconds": 60, "action": 1}},
            "limits.hostGone.action: must be stop-composition or end-show, got integer",
        ),
        (
            {"hostGone": {"userIds": [], "graceSeconds": 60, "action": "end-show"}},
            "limits.hostGone.userIds: must not be empty",
        ),
        (
            {"hostGone": {"userIds": ["h"], "graceSeconds": 60, "action": "end-show", "kick": True}},
            "limits.hostGone.kick: unknown field (expected one of: userIds, attributes, graceSeconds, action)",
        ),
    ],
)
def test_each_bad_field_is_named(limits: object, expected: str) -> None:
    found = problems(limits)
    assert any(p.startswith(expected) for p in found), found
