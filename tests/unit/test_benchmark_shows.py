"""The benchmarks' shows give each stage a channel of its own: IVS takes one stream a channel at a time
(docs/simulate.md), so stages sharing the example policy's channel fail each other's channel destinations,
and the 100-stage show counted 99 `Destination Failure` deliveries and their reads (3.75 AWS calls an event
against 3.45, seen in make bench on 2026-12-07)."""

from __future__ import annotations

import json

from benchmarks import latency
from benchmarks.work_per_event import EXAMPLES, hundred_stage_show
from stagepilot.policy import StagePolicy


def channels(policies: list[StagePolicy]) -> list[str]:
    return [
        destination["channel"]["channelArn"]
        for policy in policies
        for destination in policy.to_document()["composition"]["destinations"]
        if "channel" in destination
    ]


def test_every_stage_of_the_shows_composes_to_a_channel_of_its_own() -> None:
    for policies in (hundred_stage_show()[0], latency.policies(100)):
        used = channels(policies)
        assert len(used) == len(policies) == len(set(used)) == 100


def test_the_100_stage_shows_policies_keep_the_examples_size() -> None:
    """benchmarks/request_units.py charges these items by size: the channel's name keeps the template's length."""
    template = json.loads((EXAMPLES / "policies.json").read_text())[0]
    example = next(d["channel"]["channelArn"] for d in template["composition"]["destinations"] if "channel" in d)
    assert {len(arn) for arn in channels(hundred_stage_show()[0])} == {len(example)}
