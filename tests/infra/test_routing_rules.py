"""The synthesized EventBridge rules take exactly the sample events they should (moto's matcher)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from moto.events.models import EventPattern

from tests.infra.conftest import Synthesized

ALL = ["composition", "moderation", "replication"]
# Where the stack is "deployed" for these tests: the account and region of the sample events.
STACK_ACCOUNT = "123456789012"
STACK_REGION = "us-east-1"


def _substitute(value: Any, account: str, region: str) -> Any:
    if value == {"Ref": "AWS::AccountId"}:
        return account
    if value == {"Ref": "AWS::Region"}:
        return region
    if isinstance(value, dict):
        assert not any(key.startswith("Fn::") or key == "Ref" for key in value), value
        return {key: _substitute(item, account, region) for key, item in value.items()}
    if isinstance(value, list):
        return [_substitute(item, account, region) for item in value]
    return value


def _automations_taking(synthesized: Synthesized, event: dict[str, Any]) -> list[str]:
    """One entry per rule that matches, named by the automation whose queue the rule targets."""
    queue_owner = {
        synthesized.logical_id(pipeline.queue): automation
        for automation, pipeline in synthesized.stack.pipelines.items()
    }
    taken = []
    for rule in synthesized.template.find_resources("AWS::Events::Rule").values():
        if "EventPattern" not in rule["Properties"]:
            continue  # the convergence pass's schedule
        pattern = _substitute(rule["Properties"]["EventPattern"], STACK_ACCOUNT, STACK_REGION)
        if EventPattern.load(json.dumps(pattern)).matches_event(event):
            (target,) = rule["Properties"]["Targets"]
            taken.append(queue_owner[target["Arn"]["Fn::GetAtt"][0]])
    return sorted(taken)


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        ("stage-participant-published", ALL),
        ("stage-participant-publish-error", ["moderation"]),
        ("stage-participant-unpublished", []),
        ("composition-session-failure", ["composition"]),
        ("participant-recording-start", ["composition"]),
        ("participant-flagged", ["moderation"]),
    ],
)
def test_each_sample_event_reaches_exactly_its_automations(
    deployed: Synthesized, sample_events: dict[str, dict[str, Any]], sample: str, expected: list[str]
) -> None:
    # A list, not a set: an automation taking an event through two rules would process it twice.
    assert _automations_taking(deployed, sample_events[sample]) == expected


def test_flags_from_a_source_outside_the_allow_list_are_ignored(
    deployed: Synthesized, sample_events: dict[str, dict[str, Any]]
) -> None:
    event = copy.deepcopy(sample_events["participant-flagged"])
    event["source"] = "someone.else"
    assert _automations_taking(deployed, event) == []


def test_events_of_another_account_or_region_are_ignored(
    deployed: Synthesized, sample_events: dict[str, dict[str, Any]]
) -> None:
    for sample in ("stage-participant-published", "participant-flagged", "composition-session-failure"):
        assert sample_events[sample]["account"] == STACK_ACCOUNT
        assert _automations_taking(deployed, sample_events[sample]) != []
        other_account = {**sample_events[sample], "account": "210987654321"}
        assert _automations_taking(deployed, other_account) == [], sample
        other_region = {**sample_events[sample], "region": "eu-west-1"}
        assert _automations_taking(deployed, other_region) == [], sample


def test_moderation_sources_come_from_context(
    customized: Synthesized, sample_events: dict[str, dict[str, Any]]
) -> None:
    event = copy.deepcopy(sample_events["participant-flagged"])
    event["source"] = "acme.trust-and-safety"
    assert _automations_taking(customized, event) == ["moderation"]


def test_every_live_rule_refuses_archive_replays(
    deployed: Synthesized, customized: Synthesized, sample_events: dict[str, dict[str, Any]]
) -> None:
    """A replay of an archive of the default bus (or the flag bus) must not run the automations again."""
    for synthesized in (deployed, customized):
        for logical_id, rule in synthesized.template.find_resources("AWS::Events::Rule").items():
            if "EventPattern" in rule["Properties"]:  # not the convergence pass's schedule
                assert rule["Properties"]["EventPattern"]["replay-name"] == [{"exists": False}], logical_id
    for sample, event in sample_events.items():
        replayed = {**event, "replay-name": "archive-replay-1"}
        assert _automations_taking(deployed, replayed) == [], sample
