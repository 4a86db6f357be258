"""The stage policy document (docs/policy.md): what is accepted, what is rejected and where."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from botocore.loaders import Loader
from botocore.model import ServiceModel
from botocore.validate import ParamValidator

from stagepilot.policy import (
    DEFAULT_STAGE,
    CompositionPolicy,
    Limit,
    ModerationPolicy,
    ParticipantFilter,
    PolicyInvalid,
    Problem,
    ReplicationRule,
    StagePolicy,
    parse_policy,
    replication_cycles,
    validate_policy,
)

STAGE = "arn:aws:ivs:us-east-1:123456789012:stage/AbCdef1G2hij"
OTHER_STAGE = "arn:aws:ivs:us-east-1:123456789012:stage/ZyXw9876Vuts"
CHANNEL = "arn:aws:ivs:us-east-1:123456789012:channel/AbCd1234"
ENCODER = "arn:aws:ivs:us-east-1:123456789012:encoder-configuration/AbCd1234"
STORAGE = "arn:aws:ivs:us-east-1:123456789012:storage-configuration/AbCd1234"

# The example of README.md (Policies), verbatim.
README_EXAMPLE: dict[str, Any] = {
    "stageArn": STAGE,
    "paused": False,
    "composition": {
        "layout": {"grid": {"featuredParticipantAttribute": "featured"}},
        "destinations": [
            {"name": "live", "channel": {"channelArn": CHANNEL, "encoderConfigurationArn": ENCODER}},
        ],
        "tags": {"team": "shows"},
        "maxRestarts": 3,
    },
    "replication": [
        {
            "destinationStageArn": OTHER_STAGE,
            "reconnectWindowSeconds": 30,
            "attributes": {"replicated": "true"},
            "participants": {"userIds": ["host-1"], "attributes": {"role": "host"}},
        }
    ],
    "moderation": {
        "dryRun": False,
        "reason": "Removed by moderation",
        "blockedUserIds": ["spammer-7"],
        "blockedAttributes": {"tier": ["suspended"]},
        "publishErrorLimit": {"count": 5, "windowSeconds": 60},
        "flagLimit": {"count": 1, "windowSeconds": 300},
    },
}

S3_DESTINATION = {
    "name": "archive",
    "s3": {"storageConfigurationArn": STORAGE, "encoderConfigurationArns": [ENCODER]},
}


def example() -> dict[str, Any]:
    return copy.deepcopy(README_EXAMPLE)


def set_at(document: dict, path: tuple, value: Any) -> dict:
    target = document
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return document


def with_value(path: tuple, value: Any) -> dict:
    return set_at(example(), path, value)


def paths(document: object) -> list[str]:
    return [problem.path for problem in validate_policy(document)]


def ivs_model() -> ServiceModel:
    return ServiceModel(Loader().load_service_model("ivs-realtime", "service-2"), "ivs-realtime")


# --------------------------------------------------------------------------------------------------
# Accepted


def test_contract_example_parses_into_the_model():
    policy = parse_policy(example())

    assert policy.stage_arn == STAGE
    assert not policy.paused
    assert not policy.is_default
    assert policy.composition == CompositionPolicy(
        layout={"grid": {"featuredParticipantAttribute": "featured"}},
        destinations=({"name": "live", "channel": {"channelArn": CHANNEL, "encoderConfigurationArn": ENCODER}},),
        tags={"team": "shows"},
        max_restarts=3,
    )
    assert policy.replication == (
        ReplicationRule(
            destination_stage_arn=OTHER_STAGE,
            reconnect_window_seconds=30,
            attributes={"replicated": "true"},
            participants=ParticipantFilter(user_ids=frozenset({"host-1"}), attributes={"role": "host"}),
        ),
    )
    assert policy.moderation == ModerationPolicy(
        dry_run=False,
        reason="Removed by moderation",
        blocked_user_ids=frozenset({"spammer-7"}),
        blocked_attributes={"tier": frozenset({"suspended"})},
        publish_error_limit=Limit(count=5, window_seconds=60),
        flag_limit=Limit(count=1, window_seconds=300),
    )
    assert parse_policy(policy.to_document()) == policy


def test_minimal_policy_has_every_automation_off():
    policy = parse_policy({"stageArn": STAGE})

    assert policy == StagePolicy(stage_arn=STAGE, paused=False, composition=None, replication=(), moderation=None)
    assert parse_policy(policy.to_document()) == policy


def test_defaults_of_each_section():
    policy = parse_policy(
        {
            "stageArn": DEFAULT_STAGE,
            "composition": {"destinations": [S3_DESTINATION]},
            "replication": [{"destinationStageArn": OTHER_STAGE}],
            "moderation": {},
        }
    )

    assert policy.is_default
    assert policy.composition is not None
    assert policy.composition.layout is None
    assert policy.composition.tags == {}
    assert policy.composition.max_restarts == 3
    rule = policy.replication[0]
    assert (rule.reconnect_window_seconds, rule.attributes, rule.participants) == (0, {}, None)
    assert policy.moderation == ModerationPolicy(
        dry_run=False,
        reason="Removed by moderation",
        blocked_user_ids=frozenset(),
        blocked_attributes={},
        publish_error_limit=None,
        flag_limit=None,  # no implicit default: flags never count unless the policy says how
    )
    assert "flagLimit" not in policy.moderation.to_document()
    assert not policy.moderation.needs_attributes
    assert parse_policy(policy.to_document()) == policy


def test_channel_and_s3_together_and_pip_layout_are_accepted():
    document = example()
    document["composition"]["destinations"].append(S3_DESTINATION)
    document["composition"]["layout"] = {"pip": {"pipPosition": "TOP_LEFT", "pipWidth": 320, "gridGap": 0}}

    assert validate_policy(document) == []


@pytest.mark.parametrize("reason", ["", "x" * 128])
def test_reason_may_be_empty_or_128_characters(reason):
    assert validate_policy(with_value(("moderation", "reason"), reason)) == []


def test_paused_default_policy_is_valid():
    assert parse_policy({"stageArn": "default", "paused": True}).paused


# --------------------------------------------------------------------------------------------------
# Rejected, each at its exact path


def test_root_must_be_an_object():
    assert [str(p) for p in validate_policy([])] == [": a policy must be an object, got array"]


def test_stage_arn_is_required():
    assert paths({}) == ["stageArn"]


def test_malformed_stage_arn_message():
    assert [str(p) for p in validate_policy({"stageArn": "arn:aws:ivs:us-east-1:123:channel/x"})] == [
        "stageArn: not a stage ARN (expected arn:aws:ivs:<region>:<account>:stage/<id>)"
    ]


def test_wrong_type_names_the_expected_type():
    assert [str(p) for p in validate_policy({"stageArn": STAGE, "paused": "no"})] == [
        "paused: must be a boolean, got string"
    ]


def test_unknown_field_message():
    (problem,) = validate_policy(with_value(("moderation", "blockedUserIdz"), []))
    assert str(problem).startswith("moderation.blockedUserIdz: unknown field")


UNKNOWN_KEY_AT = [
    ((), "root"),
    (("composition",), "composition.root"),
    (("composition", "layout"), "composition.layout.root"),
    (("composition", "layout", "grid"), "composition.layout.grid.root"),
    (("composition", "destinations", 0), "composition.destinations[0].root"),
    (("composition", "destinations", 0, "channel"), "composition.destinations[0].channel.root"),
    (("replication", 0), "replication[0].root"),
    (("replication", 0, "participants"), "replication[0].participants.root"),
    (("moderation",), "moderation.root"),
    (("moderation", "flagLimit"), "moderation.flagLimit.root"),
    (("moderation", "publishErrorLimit"), "moderation.publishErrorLimit.root"),
]


@pytest.mark.parametrize(("where", "expected"), UNKNOWN_KEY_AT, ids=[e for _, e in UNKNOWN_KEY_AT])
def test_unknown_key_is_rejected_at_every_level(where, expected):
    document = example()
    target: Any = document
    for step in where:
        target = target[step]
    target["root"] = 1

    assert paths(document) == [expected]
    assert "unknown field" in validate_policy(document)[0].message


def test_unknown_key_in_s3_destination():
    document = example()
    document["composition"]["destinations"] = [copy.deepcopy(S3_DESTINATION)]
    document["composition"]["destinations"][0]["s3"]["bucket"] = "x"
    assert paths(document) == ["composition.destinations[0].s3.bucket"]


REJECTED = [
    # (path in the document, bad value, expected problem path, words in the message)
    (("paused",), 0, "paused", "must be a boolean, got integer"),
    (("stageArn",), 7, "stageArn", "must be a string, got integer"),
    (("stageArn",), "Default", "stageArn", "not a stage ARN"),
    (("stageArn",), STAGE + "/x", "stageArn", "not a stage ARN"),
    (("composition",), [], "composition", "must be an object, got array"),
    (("composition", "maxRestarts"), 11, "composition.maxRestarts", "between 0 and 10, got 11"),
    (("composition", "maxRestarts"), -1, "composition.maxRestarts", "between 0 and 10"),
    (("composition", "maxRestarts"), True, "composition.maxRestarts", "must be an integer, got boolean"),
    (("composition", "maxRestarts"), 3.0, "composition.maxRestarts", "must be an integer, got number"),
    (("composition", "maxRestarts"), "3", "composition.maxRestarts", "must be an integer, got string"),
    (("composition", "layout"), "grid", "composition.layout", "must be an object, got string"),
    (
        ("composition", "layout", "grid", "gridGap"),
        True,
        "composition.layout.grid.gridGap",
        "integer, got boolean",
    ),
    (
        ("composition", "layout", "grid", "gridGap"),
        2.5,
        "composition.layout.grid.gridGap",
        "integer, got number",
    ),
    (("composition", "layout", "grid", "gridGap"), -1, "composition.layout.grid.gridGap", "at least 0"),
    (
        ("composition", "layout", "grid", "videoFillMode"),
        "FIT",
        "composition.layout.grid.videoFillMode",
        "one of",
    ),
    (
        ("composition", "layout", "grid", "featuredParticipantAttribute"),
        "no spaces",
        "composition.layout.grid.featuredParticipantAttribute",
        "does not match the pattern [a-zA-Z0-9-_]*",
    ),
    (("composition", "destinations"), [], "composition.destinations", "at least 1 item"),
    (("composition", "destinations"), {}, "composition.destinations", "must be an array, got object"),
    (
        ("composition", "destinations", 0, "channel", "channelArn"),
        STAGE,
        "composition.destinations[0].channel.channelArn",
        "not a channel ARN (expected arn:aws:ivs:<region>:<account>:channel/<id>)",
    ),
    (
        ("composition", "destinations", 0, "channel", "encoderConfigurationArn"),
        CHANNEL,
        "composition.destinations[0].channel.encoderConfigurationArn",
        "not an encoder-configuration ARN",
    ),
    (
        ("composition", "destinations", 0, "channel", "channelArn"),
        None,
        "composition.destinations[0].channel.channelArn",
        "must be a string, got null",
    ),
    (
        ("composition", "destinations", 0, "channel", "channelArn"),
        CHANNEL.replace("AbCd1234", "x" * 120),
        "composition.destinations[0].channel.channelArn",
        "at most 128 characters",
    ),
    (
        ("composition", "destinations", 0, "name"),
        "has space",
        "composition.destinations[0].name",
        "does not match the pattern",
    ),
    (("composition", "tags"), {"team": 1}, "composition.tags.team", "must be a string, got integer"),
    (("composition", "tags"), {"aws:team": "x"}, "composition.tags.aws:team", "reserved"),
    (("composition", "tags"), {"AWS:team": "x"}, "composition.tags.AWS:team", "reserved"),
    (("composition", "tags"), {"stagepilot:managed": "x"}, "composition.tags.stagepilot:managed", "reserved"),
    (("composition", "tags"), {f"k{i}": "v" for i in range(51)}, "composition.tags", "at most 50 entries"),
    (("composition", "tags"), {"t": "v" * 257}, "composition.tags.t", "at most 256 characters"),
    (("replication",), {}, "replication", "must be an array, got object"),
    (("replication", 0), "x", "replication[0]", "must be an object, got string"),
    (
        ("replication", 0, "destinationStageArn"),
        STAGE,
        "replication[0].destinationStageArn",
        "cannot replicate to itself",
    ),
    (
        ("replication", 0, "destinationStageArn"),
        "default",
        "replication[0].destinationStageArn",
        "not a stage ARN",
    ),
    (
        ("replication", 0, "destinationStageArn"),
        CHANNEL,
        "replication[0].destinationStageArn",
        "not a stage ARN",
    ),
    (
        ("replication", 0, "reconnectWindowSeconds"),
        301,
        "replication[0].reconnectWindowSeconds",
        "at most 300",
    ),
    (("replication", 0, "reconnectWindowSeconds"), -1, "replication[0].reconnectWindowSeconds", "at least 0"),
    (
        ("replication", 0, "reconnectWindowSeconds"),
        30.0,
        "replication[0].reconnectWindowSeconds",
        "got number",
    ),
    (
        ("replication", 0, "reconnectWindowSeconds"),
        False,
        "replication[0].reconnectWindowSeconds",
        "got boolean",
    ),
    (
        ("replication", 0, "attributes"),
        {"a": 1},
        "replication[0].attributes.a",
        "must be a string, got integer",
    ),
    (("replication", 0, "attributes"), ["a"], "replication[0].attributes", "must be an object, got array"),
    (("replication", 0, "attributes"), {"k": "v" * 1024}, "replication[0].attributes", "at most 1 KB"),
    (("replication", 0, "participants"), {}, "replication[0].participants", "userIds and/or attributes"),
    (("replication", 0, "participants"), [], "replication[0].participants", "must be an object, got array"),
    (
        ("replication", 0, "participants", "userIds"),
        [],
        "replication[0].participants.userIds",
        "must not be empty",
    ),
    (
        ("replication", 0, "participants", "userIds"),
        "host",
        "replication[0].participants.userIds",
        "got string",
    ),
    (
        ("replication", 0, "participants", "userIds"),
        [""],
        "replication[0].participants.userIds[0]",
        "not be empty",
    ),
    (
        ("replication", 0, "participants", "userIds"),
        ["u" * 129],
        "replication[0].participants.userIds[0]",
        "128",
    ),
    (
        ("replication", 0, "participants", "attributes"),
        {"r": 1},
        "replication[0].participants.attributes.r",
        "string",
    ),
    (
        ("replication", 0, "participants", "attributes"),
        {},
        "replication[0].participants.attributes",
        "not be empty",
    ),
    (("moderation",), "on", "moderation", "must be an object, got string"),
    (("moderation", "dryRun"), "false", "moderation.dryRun", "must be a boolean, got string"),
    (("moderation", "reason"), "r" * 129, "moderation.reason", "at most 128 characters, got 129"),
    (("moderation", "reason"), 5, "moderation.reason", "must be a string, got integer"),
    (("moderation", "blockedUserIds"), "spammer-7", "moderation.blockedUserIds", "must be an array"),
    (("moderation", "blockedUserIds"), [7], "moderation.blockedUserIds[0]", "must be a string, got integer"),
    (("moderation", "blockedUserIds"), [""], "moderation.blockedUserIds[0]", "must not be empty"),
    (("moderation", "blockedAttributes"), [], "moderation.blockedAttributes", "must be an object"),
    (
        ("moderation", "blockedAttributes"),
        {"tier": []},
        "moderation.blockedAttributes.tier",
        "must not be empty",
    ),
    (
        ("moderation", "blockedAttributes"),
        {"tier": "x"},
        "moderation.blockedAttributes.tier",
        "must be an array",
    ),
    (
        ("moderation", "blockedAttributes"),
        {"tier": [1]},
        "moderation.blockedAttributes.tier[0]",
        "got integer",
    ),
    (("moderation", "flagLimit"), 3, "moderation.flagLimit", "must be an object, got integer"),
    (("moderation", "flagLimit"), {"count": 1}, "moderation.flagLimit.windowSeconds", "required"),
    (("moderation", "flagLimit", "count"), 0, "moderation.flagLimit.count", "between 1 and 1000, got 0"),
    (("moderation", "flagLimit", "count"), 1001, "moderation.flagLimit.count", "between 1 and 1000"),
    (("moderation", "flagLimit", "count"), True, "moderation.flagLimit.count", "integer, got boolean"),
    (
        ("moderation", "flagLimit", "windowSeconds"),
        86401,
        "moderation.flagLimit.windowSeconds",
        "1 and 86400",
    ),
    (("moderation", "flagLimit", "windowSeconds"), 60.0, "moderation.flagLimit.windowSeconds", "got number"),
    (
        ("moderation", "publishErrorLimit"),
        {"windowSeconds": 1},
        "moderation.publishErrorLimit.count",
        "required",
    ),
    (("moderation", "publishErrorLimit", "count"), None, "moderation.publishErrorLimit.count", "got null"),
]


@pytest.mark.parametrize(
    ("where", "value", "expected_path", "words"), REJECTED, ids=[f"{r[2]}={r[1]!r:.20}" for r in REJECTED]
)
def test_rejected_with_the_exact_path(where, value, expected_path, words):
    problems = validate_policy(with_value(where, value))

    assert [p.path for p in problems] == [expected_path], problems
    assert words in problems[0].message
    with pytest.raises(PolicyInvalid) as raised:
        parse_policy(with_value(where, value))
    assert raised.value.problems == problems


def test_missing_destinations():
    assert [str(p) for p in validate_policy({"stageArn": STAGE, "composition": {}})] == [
        "composition.destinations: required field missing"
    ]


def test_three_destinations():
    document = example()
    channel = document["composition"]["destinations"][0]
    document["composition"]["destinations"] = [channel, {**S3_DESTINATION}, {"s3": S3_DESTINATION["s3"]}]

    problems = validate_policy(document)

    assert Problem("composition.destinations", "must have at most 2 item(s), got 3") in problems


def test_two_channels():
    document = example()
    second = copy.deepcopy(document["composition"]["destinations"][0])
    second["name"] = "backup"
    document["composition"]["destinations"].append(second)

    assert paths(document) == ["composition.destinations[1].channel"]
    assert "at most one channel" in validate_policy(document)[0].message


def test_two_s3_destinations():
    document = example()
    second = copy.deepcopy(S3_DESTINATION)
    second["name"] = "other"
    document["composition"]["destinations"] = [S3_DESTINATION, second]
    assert paths(document) == ["composition.destinations[1].s3"]


@pytest.mark.parametrize(
    ("destination", "found"),
    [({"name": "x"}, "neither"), ({"channel": {"channelArn": CHANNEL}, "s3": S3_DESTINATION["s3"]}, "both")],
)
def test_destination_needs_exactly_one_kind(destination, found):
    document = with_value(("composition", "destinations"), [destination])
    assert [str(p) for p in validate_policy(document)] == [
        f"composition.destinations[0]: a destination must have exactly one of channel, s3 (found {found})"
    ]


def test_duplicate_destination_names():
    document = example()
    document["composition"]["destinations"].append({**S3_DESTINATION, "name": "live"})
    assert paths(document) == ["composition.destinations[1].name"]


def test_malformed_s3_arns():
    document = with_value(
        ("composition", "destinations"),
        [{"s3": {"storageConfigurationArn": CHANNEL, "encoderConfigurationArns": [STORAGE, ENCODER]}}],
    )
    problems = {str(p) for p in validate_policy(document)}

    assert problems == {
        "composition.destinations[0].s3.storageConfigurationArn: not a storage-configuration ARN "
        "(expected arn:aws:ivs:<region>:<account>:storage-configuration/<id>)",
        "composition.destinations[0].s3.encoderConfigurationArns: must have at most 1 item(s), got 2",
        "composition.destinations[0].s3.encoderConfigurationArns[0]: not an encoder-configuration ARN "
        "(expected arn:aws:ivs:<region>:<account>:encoder-configuration/<id>)",
    }


def test_missing_channel_arn():
    document = with_value(("composition", "destinations", 0, "channel"), {"encoderConfigurationArn": ENCODER})
    assert paths(document) == ["composition.destinations[0].channel.channelArn"]


def test_six_replication_entries():
    entries = [{"destinationStageArn": f"arn:aws:ivs:us-east-1:123456789012:stage/Dest{i}"} for i in range(6)]
    problems = validate_policy(with_value(("replication",), entries))

    assert [p.path for p in problems] == ["replication"]
    assert "at most 5" in problems[0].message
    assert "5 concurrent replications per participant" in problems[0].message


def test_duplicate_replication_destinations():
    entries = [
        {"destinationStageArn": OTHER_STAGE},
        {"destinationStageArn": OTHER_STAGE, "reconnectWindowSeconds": 5},
    ]
    assert [str(p) for p in validate_policy(with_value(("replication",), entries))] == [
        "replication[1].destinationStageArn: duplicate destination (already replication[0])"
    ]


def test_replication_destination_is_required():
    assert paths(with_value(("replication",), [{"reconnectWindowSeconds": 3}])) == [
        "replication[0].destinationStageArn"
    ]


def test_replication_attributes_of_exactly_1_kb_pass():
    attributes = {"k": "v" * 1023}
    assert validate_policy(with_value(("replication", 0, "attributes"), attributes)) == []


def test_every_problem_is_reported_not_just_the_first():
    document = example()
    document["paused"] = "yes"
    document["composition"]["maxRestarts"] = 99
    document["composition"]["destinations"][0]["channel"]["channelArn"] = "bad"
    document["replication"][0]["destinationStageArn"] = STAGE
    document["moderation"]["reason"] = "r" * 200
    document["moderation"]["flagLimit"]["count"] = 0
    document["extra"] = True

    problems = validate_policy(document)

    assert sorted(p.path for p in problems) == sorted(
        [
            "paused",
            "composition.maxRestarts",
            "composition.destinations[0].channel.channelArn",
            "replication[0].destinationStageArn",
            "moderation.reason",
            "moderation.flagLimit.count",
            "extra",
        ]
    )
    with pytest.raises(PolicyInvalid) as raised:
        parse_policy(document)
    assert str(raised.value).splitlines() == [str(p) for p in problems]
    assert isinstance(raised.value, ValueError)


@pytest.mark.parametrize("document", [None, "policy", 3, 1.5, True, [STAGE], {"stageArn": None}, {1: 2}])
def test_never_raises_on_odd_input(document):
    assert validate_policy(document)


# --------------------------------------------------------------------------------------------------
# Requests built for IVS


def test_composition_start_request_is_exact_and_valid_for_botocore():
    policy = parse_policy(example())
    assert policy.composition is not None

    request = policy.composition.start_request(
        stage_arn=STAGE, idempotency_token="AbCdef1G2hij-st-1", extra_tags={"stagepilot:managed": "true"}
    )

    assert request == {
        "stageArn": STAGE,
        "idempotencyToken": "AbCdef1G2hij-st-1",
        "destinations": [{"name": "live", "channel": {"channelArn": CHANNEL, "encoderConfigurationArn": ENCODER}}],
        "layout": {"grid": {"featuredParticipantAttribute": "featured"}},
        "tags": {"team": "shows", "stagepilot:managed": "true"},
    }
    shape = ivs_model().operation_model("StartComposition").input_shape
    assert not ParamValidator().validate(request, shape).has_errors()


def test_composition_start_request_leaves_layout_out_when_unset_and_does_not_share_state():
    composition = parse_policy({"stageArn": STAGE, "composition": {"destinations": [S3_DESTINATION]}}).composition
    assert composition is not None

    request = composition.start_request(stage_arn=STAGE, idempotency_token="t", extra_tags={})
    request["destinations"][0]["s3"]["encoderConfigurationArns"].append("mutated")

    assert "layout" not in request
    assert request["tags"] == {}
    assert composition.destinations[0]["s3"]["encoderConfigurationArns"] == [ENCODER]


def test_replication_start_request_is_exact_and_valid_for_botocore():
    rule = parse_policy(example()).replication[0]

    request = rule.start_request(source_stage_arn=STAGE, participant_id="xYz1c2d3e4f")

    assert request == {
        "sourceStageArn": STAGE,
        "destinationStageArn": OTHER_STAGE,
        "participantId": "xYz1c2d3e4f",
        "reconnectWindowSeconds": 30,
        "attributes": {"replicated": "true"},
    }
    shape = ivs_model().operation_model("StartParticipantReplication").input_shape
    assert not ParamValidator().validate(request, shape).has_errors()


def test_replication_start_request_without_attributes():
    rule = ReplicationRule(destination_stage_arn=OTHER_STAGE)
    assert rule.start_request(source_stage_arn=STAGE, participant_id="p") == {
        "sourceStageArn": STAGE,
        "destinationStageArn": OTHER_STAGE,
        "participantId": "p",
        "reconnectWindowSeconds": 0,
    }


# --------------------------------------------------------------------------------------------------
# Participant filters


@pytest.mark.parametrize(
    ("participants", "user_id", "attributes", "expected"),
    [
        ({"userIds": ["host-1"]}, "host-1", None, True),
        ({"userIds": ["host-1"]}, "guest", {"role": "host"}, False),
        ({"userIds": ["host-1"]}, None, None, False),
        ({"attributes": {"role": "host"}}, None, {"role": "host", "x": "y"}, True),
        ({"attributes": {"role": "host"}}, "host-1", {"role": "guest"}, False),
        ({"attributes": {"role": "host"}}, "host-1", None, False),
        ({"attributes": {"role": "host", "lang": "en"}}, None, {"role": "host"}, False),
        ({"userIds": ["host-1"], "attributes": {"role": "host"}}, "host-1", {"role": "host"}, True),
        ({"userIds": ["host-1"], "attributes": {"role": "host"}}, "host-1", {"role": "guest"}, False),
        ({"userIds": ["host-1"], "attributes": {"role": "host"}}, "host-2", {"role": "host"}, False),
    ],
)
def test_participant_filter(participants, user_id, attributes, expected):
    rule = parse_policy(with_value(("replication", 0, "participants"), participants)).replication[0]

    assert rule.matches(user_id=user_id, attributes=attributes) is expected
    assert rule.participants is not None
    assert rule.participants.needs_attributes is ("attributes" in participants)


def test_rule_without_participants_matches_every_publisher():
    rule = ReplicationRule(destination_stage_arn=OTHER_STAGE)
    assert rule.matches(user_id=None, attributes=None)


def test_moderation_needs_attributes_only_with_blocked_attributes():
    moderation = parse_policy(example()).moderation
    assert moderation is not None and moderation.needs_attributes


# --------------------------------------------------------------------------------------------------
# Replication cycles


def stage(name: str) -> str:
    return f"arn:aws:ivs:us-east-1:123456789012:stage/{name}"


def policy(name: str, *targets: str, paused: bool = False) -> StagePolicy:
    arn = name if name == DEFAULT_STAGE else stage(name)
    return StagePolicy(
        stage_arn=arn,
        paused=paused,
        replication=tuple(ReplicationRule(destination_stage_arn=stage(t)) for t in targets),
    )


def test_cycle_of_two():
    assert replication_cycles([policy("A", "B"), policy("B", "A")]) == [[stage("A"), stage("B")]]


def test_cycle_of_three_reported_once_from_its_smallest_stage():
    assert replication_cycles([policy("B", "C"), policy("C", "A"), policy("A", "B")]) == [
        [stage("A"), stage("B"), stage("C")]
    ]


def test_no_cycle():
    assert replication_cycles([policy("A", "B", "C"), policy("B", "C"), policy("C")]) == []


def test_default_policy_is_not_a_stage_and_its_self_replication_is_ignored():
    assert replication_cycles([policy(DEFAULT_STAGE, "B"), policy("A", "B")]) == []


def test_stage_without_policy_follows_the_default():
    assert replication_cycles([policy(DEFAULT_STAGE, "A"), policy("A", "B")]) == [[stage("A"), stage("B")]]


def test_paused_stage_replicates_nothing():
    assert replication_cycles([policy("A", "B"), policy("B", "A", paused=True)]) == []


def test_two_cycles_sharing_a_stage():
    assert replication_cycles([policy("A", "B", "C"), policy("B", "A"), policy("C", "A")]) == [
        [stage("A"), stage("B")],
        [stage("A"), stage("C")],
    ]


def test_demo_policies_parse_without_cycles():
    import json
    from pathlib import Path

    documents = json.loads((Path(__file__).parents[2] / "examples" / "policies.json").read_text())
    policies = [parse_policy(document) for document in documents]

    assert [p.is_default for p in policies] == [False, True]
    assert replication_cycles(policies) == []


def test_policy_tags_leave_room_for_the_tags_stagepilot_adds():
    from stagepilot.decisions.composition import managed_tags
    from stagepilot.policy import MAX_POLICY_TAGS, STAGEPILOT_TAG_COUNT

    assert len(managed_tags("st-ShowSession01", 1)) == STAGEPILOT_TAG_COUNT
    base = {
        "stageArn": "default",
        "composition": {
            "destinations": [
                {
                    "name": "live",
                    "channel": {
                        "channelArn": "arn:aws:ivs:us-east-1:123456789012:channel/AbCd1234",
                        "encoderConfigurationArn": "arn:aws:ivs:us-east-1:123456789012:encoder-configuration/AbCd1234",
                    },
                }
            ]
        },
    }
    fits = {**base, "composition": {**base["composition"], "tags": {f"k{i}": "v" for i in range(MAX_POLICY_TAGS)}}}
    assert validate_policy(fits) == []
    over = {**base, "composition": {**base["composition"], "tags": {f"k{i}": "v" for i in range(MAX_POLICY_TAGS + 1)}}}
    assert [p.path for p in validate_policy(over)] == ["composition.tags"]


def test_numbers_too_long_to_print_are_reported_not_raised():
    """Python refuses str() of an int over 4300 digits; the Lambda re-validates stored policies."""
    problems = [
        str(p)
        for p in validate_policy(
            {
                "stageArn": STAGE,
                "moderation": {"reason": "x", "publishErrorLimit": {"count": 10**5000, "windowSeconds": 60}},
            }
        )
    ]
    assert problems == [
        "moderation.publishErrorLimit.count: must be between 1 and 1000, got a number of about 5001 digits"
    ]


def test_lone_surrogates_are_refused_where_they_are():
    document = {"stageArn": STAGE, "moderation": {"reason": "bye \ud800", "blockedAttributes": {"\udfff": ["x"]}}}
    assert sorted(str(p) for p in validate_policy(document)) == [
        "moderation.blockedAttributes: a key must be valid Unicode text (it holds a lone surrogate)",
        "moderation.reason: must be valid Unicode text (it holds a lone surrogate)",
    ]
