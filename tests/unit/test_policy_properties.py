"""Properties of policy validation: untrusted input never crashes it, and it agrees with parsing."""

from __future__ import annotations

import copy
import string
from collections.abc import Iterator
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stagepilot.policy import PolicyInvalid, parse_policy, validate_policy

PROFILE = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ids = st.text(alphabet=string.ascii_letters + string.digits + "-", min_size=1, max_size=12)
safe_keys = st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=1, max_size=10)
short_text = st.text(max_size=12)


# Every ARN of a valid policy is in its stage's account and region (docs/policy.md); the generated policies
# use one place, and test_an_arn_of_another_place_is_refused_naming_its_field moves one elsewhere.
PLACE = ("eu-west-1", "210987654321")


def arn(kind: str) -> st.SearchStrategy[str]:
    return st.builds(lambda resource: f"arn:aws:ivs:{PLACE[0]}:{PLACE[1]}:{kind}/{resource}", ids)


def optional(**members: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=members)


attribute_key = st.text(alphabet=string.ascii_letters + string.digits + "-_", max_size=12)
grid = optional(
    featuredParticipantAttribute=attribute_key,
    participantOrderAttribute=attribute_key,
    omitStoppedVideo=st.booleans(),
    videoAspectRatio=st.sampled_from(["AUTO", "VIDEO", "SQUARE", "PORTRAIT"]),
    videoFillMode=st.sampled_from(["FILL", "COVER", "CONTAIN"]),
    gridGap=st.integers(0, 100),
)
pip = optional(
    featuredParticipantAttribute=attribute_key,
    pipParticipantAttribute=attribute_key,
    pipBehavior=st.sampled_from(["STATIC", "DYNAMIC"]),
    pipPosition=st.sampled_from(["TOP_LEFT", "TOP_RIGHT", "BOTTOM_LEFT", "BOTTOM_RIGHT"]),
    pipOffset=st.integers(0, 100),
    pipWidth=st.integers(1, 1920),
    pipHeight=st.integers(1, 1080),
)
layout = st.one_of(st.fixed_dictionaries({"grid": grid}), st.fixed_dictionaries({"pip": pip}))
channel = st.fixed_dictionaries(
    {
        "channel": st.fixed_dictionaries(
            {"channelArn": arn("channel")}, optional={"encoderConfigurationArn": arn("encoder-configuration")}
        )
    }
)
s3 = st.fixed_dictionaries(
    {
        "s3": st.fixed_dictionaries(
            {
                "storageConfigurationArn": arn("storage-configuration"),
                "encoderConfigurationArns": st.lists(arn("encoder-configuration"), min_size=1, max_size=1),
            },
            optional={
                "recordingConfiguration": optional(
                    format=st.just("HLS"),
                    hlsConfiguration=optional(targetSegmentDurationSeconds=st.integers(2, 10)),
                ),
                "thumbnailConfigurations": st.lists(
                    optional(
                        targetIntervalSeconds=st.integers(1, 86400),
                        storage=st.lists(st.sampled_from(["SEQUENTIAL", "LATEST"]), unique=True),
                    ),
                    max_size=1,
                ),
            },
        )
    }
)


@st.composite
def destinations(draw: st.DrawFn) -> list[dict[str, Any]]:
    kinds = draw(st.sampled_from([[channel], [s3], [channel, s3], [s3, channel]]))
    chosen = [draw(kind) for kind in kinds]
    names = draw(st.lists(attribute_key.filter(bool), min_size=len(chosen), max_size=len(chosen), unique=True))
    for destination, name, named in zip(
        chosen, names, draw(st.lists(st.booleans(), min_size=2, max_size=2)), strict=False
    ):
        if named:
            destination["name"] = name
    return chosen


tags = st.dictionaries(
    safe_keys.filter(lambda key: not key.lower().startswith(("aws:", "stagepilot:"))), short_text, max_size=5
)
composition = st.fixed_dictionaries(
    {"destinations": destinations()},
    optional={"layout": layout, "tags": tags, "maxRestarts": st.integers(0, 10)},
)
user_ids = st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=3)
string_map = st.dictionaries(safe_keys, short_text, min_size=1, max_size=3)
participants = st.one_of(
    st.fixed_dictionaries({"userIds": user_ids}),
    st.fixed_dictionaries({"attributes": string_map}),
    st.fixed_dictionaries({"userIds": user_ids, "attributes": string_map}),
)
limit = st.fixed_dictionaries({"count": st.integers(1, 1000), "windowSeconds": st.integers(1, 86400)})
moderation = optional(
    dryRun=st.booleans(),
    reason=st.text(max_size=128),
    blockedUserIds=st.lists(st.text(min_size=1, max_size=20), max_size=3),
    blockedAttributes=st.dictionaries(
        safe_keys, st.lists(st.text(min_size=1, max_size=10), min_size=1, max_size=3), max_size=3
    ),
    publishErrorLimit=limit,
    flagLimit=limit,
)

limits = optional(
    maxSessionMinutes=st.integers(1, 1440),
    noPublisherSeconds=st.integers(10, 3600),
    hostGone=st.builds(
        lambda hosts, grace, action: {**hosts, "graceSeconds": grace, "action": action},
        participants,
        st.integers(0, 3600),
        st.sampled_from(["stop-composition", "end-show"]),
    ),
)


@st.composite
def valid_policies(draw: st.DrawFn) -> dict[str, Any]:
    own = draw(st.one_of(st.just("default"), arn("stage")))
    document: dict[str, Any] = {"stageArn": own}
    if draw(st.booleans()):
        document["paused"] = draw(st.booleans())
    if draw(st.booleans()):
        document["composition"] = draw(composition)
    if draw(st.booleans()):
        targets = draw(st.lists(arn("stage").filter(lambda a: a != own), max_size=5, unique=True))
        rules = []
        for target in targets:
            rule = draw(
                optional(
                    reconnectWindowSeconds=st.integers(0, 300),
                    attributes=st.dictionaries(safe_keys, short_text, max_size=3),
                    participants=participants,
                )
            )
            rules.append({"destinationStageArn": target, **rule})
        document["replication"] = rules
    if draw(st.booleans()):
        document["moderation"] = draw(moderation)
    if draw(st.booleans()):
        document["stage"] = {"participantRecording": draw(recording)}
    if draw(st.booleans()):
        document["limits"] = draw(limits)
    return document


recording = st.fixed_dictionaries(
    {"storageConfigurationArn": st.one_of(st.just(""), arn("storage-configuration"))},
    optional=dict(
        mediaTypes=st.lists(st.sampled_from(["AUDIO_VIDEO", "AUDIO_ONLY", "NONE"]), max_size=1),
        thumbnailConfiguration=optional(
            targetIntervalSeconds=st.integers(1, 86400),
            storage=st.lists(st.sampled_from(["SEQUENTIAL", "LATEST"]), unique=True),
            recordingMode=st.sampled_from(["INTERVAL", "DISABLED"]),
        ),
        recordingReconnectWindowSeconds=st.integers(0, 300),
        hlsConfiguration=optional(targetSegmentDurationSeconds=st.integers(2, 10)),
        recordParticipantReplicas=st.booleans(),
    ),
)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
policy_like = optional(
    stageArn=st.one_of(arn("stage"), st.just("default"), json_values),
    paused=json_values,
    composition=st.one_of(
        composition,
        json_values,
        st.dictionaries(st.sampled_from(["layout", "destinations", "tags", "maxRestarts", "x"]), json_values),
    ),
    replication=st.one_of(
        json_values,
        st.lists(
            st.dictionaries(
                st.sampled_from(["destinationStageArn", "attributes", "participants", "reconnectWindowSeconds"]),
                json_values,
            )
        ),
    ),
    moderation=st.one_of(
        moderation,
        json_values,
        st.dictionaries(st.sampled_from(["reason", "flagLimit", "blockedAttributes", "blockedUserIds"]), json_values),
    ),
)


def check_consistent(document: object) -> None:
    problems = validate_policy(document)
    assert all(problem.path is not None and problem.message for problem in problems)
    try:
        policy = parse_policy(document)
    except PolicyInvalid as invalid:
        assert problems and invalid.problems == problems
    else:
        assert problems == []
        assert parse_policy(policy.to_document()) == policy


@PROFILE
@given(st.one_of(json_values, policy_like))
def test_any_json_validates_without_crashing_and_agrees_with_parsing(document):
    check_consistent(document)


@PROFILE
@given(valid_policies())
def test_generated_valid_policies_validate_clean_and_round_trip(document):
    assert validate_policy(document) == []
    policy = parse_policy(document)
    assert parse_policy(policy.to_document()) == policy
    assert validate_policy(policy.to_document()) == []


@PROFILE
@given(valid_policies(), st.sampled_from([("us-east-1", PLACE[1]), (PLACE[0], "999999999999")]), st.data())
def test_an_arn_of_another_place_is_refused_naming_its_field(document, elsewhere, data):
    if document["stageArn"] == "default":
        return  # 'default' has no place of its own
    paths = [(path, value) for path, value, _ in locations(document) if isinstance(value, str)]
    arns = [(path, value) for path, value in paths if value.startswith("arn:") and path != "stageArn"]
    if not arns:
        return
    path, value = data.draw(st.sampled_from(arns))
    moved = value.replace(f"arn:aws:ivs:{PLACE[0]}:{PLACE[1]}:", f"arn:aws:ivs:{elsewhere[0]}:{elsewhere[1]}:")
    problems = validate_policy(_replace(document, path, moved))
    assert [p.path for p in problems] == [path]
    assert "account and region" in problems[0].message


def _replace(document: Any, path: str, value: str) -> Any:
    """A copy of ``document`` with the string at ``path`` (as ``locations`` names it) replaced."""
    import copy

    copied = copy.deepcopy(document)
    for location, _, _ in locations(copied):
        if location == path:
            target, key = _parent(copied, path)
            target[key] = value
    return copied


def _parent(document: Any, path: str) -> tuple[Any, Any]:
    import re

    steps = [int(m[1]) if m[1] else m[2] for m in re.finditer(r"\[(\d+)\]|([^.\[\]]+)", path)]
    node = document
    for step in steps[:-1]:
        node = node[step]
    return node, steps[-1]


# Objects whose keys are data (tags, attributes), not fields: an extra key there is not a mistake.
MAP_FIELDS = {"tags", "attributes", "blockedAttributes"}


def locations(value: Any, path: str = "", key: str | None = None) -> Iterator[tuple[str, Any, bool]]:
    """(path, value, is a section with fixed fields) for every place in a document."""
    yield path, value, isinstance(value, dict) and key not in MAP_FIELDS
    if isinstance(value, dict):
        for child_key, child in value.items():
            yield from locations(child, f"{path}.{child_key}" if path else child_key, child_key)
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from locations(child, f"{path}[{index}]", key)


def replace_at(document: Any, path: str, new: Any) -> Any:
    if path == "":
        return new
    tokens = path.replace("[", ".[").split(".")
    target = document
    steps: list[Any] = [int(token[1:-1]) if token.startswith("[") else token for token in tokens if token]
    for step in steps[:-1]:
        target = target[step]
    target[steps[-1]] = new
    return document


def wrong_type_for(value: Any) -> Any:
    if isinstance(value, bool):
        return "yes"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return 12345
    if isinstance(value, list):
        return "list"
    return ["object"]


@PROFILE
@given(valid_policies(), st.data())
def test_an_unknown_key_is_caught_where_it_was_added(document, data):
    sections = [path for path, _, is_section in locations(document) if is_section]
    where = data.draw(st.sampled_from(sections))
    mutated = copy.deepcopy(document)
    target = mutated if where == "" else _get(mutated, where)
    target["zzUnknown"] = 1

    expected = f"{where}.zzUnknown" if where else "zzUnknown"
    assert expected in [problem.path for problem in validate_policy(mutated)]


@PROFILE
@given(valid_policies(), st.data())
def test_a_wrong_type_is_caught_where_it_was_put(document, data):
    places = [(path, value) for path, value, _ in locations(document) if path]
    where, value = data.draw(st.sampled_from(places))
    mutated = replace_at(copy.deepcopy(document), where, wrong_type_for(value))

    problems = validate_policy(mutated)
    assert where in [problem.path for problem in problems], problems


def _get(document: Any, path: str) -> Any:
    tokens = path.replace("[", ".[").split(".")
    target = document
    for token in tokens:
        if token:
            target = target[int(token[1:-1])] if token.startswith("[") else target[token]
    return target
