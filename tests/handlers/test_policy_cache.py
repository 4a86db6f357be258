"""The functions' policy cache (pipeline.EffectivePolicies) on moto DynamoDB: a busy container takes one
snapshot of every policy and pause switch per lifetime (which answers every stage, one it has nothing for
too), a quiet one reads per stage, and the snapshot answers what a per-stage read would."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from stagepilot.adapters.changes import FORCED_LIFETIMES, ChangeMark
from stagepilot.adapters.table import PauseSwitches, PolicyStore, Table
from stagepilot.errors import RetryLater
from stagepilot.local.deployment import VirtualClock
from stagepilot.pipeline import EffectivePolicies
from stagepilot.policy import parse_policy
from tests.handlers.conftest import Calls
from tests.support import FLEET_ARN, T0, store_fleet

TTL = 30.0
ARN = "arn:aws:ivs:us-east-1:123456789012:stage/Stage{:03d}"


class Clock(VirtualClock):
    def __init__(self) -> None:
        super().__init__(T0)

    def advance(self, seconds: float) -> None:
        self.advance_to(self.now + timedelta(seconds=seconds))


def put(table: Table, stage_arn: str, **document: Any) -> None:
    PolicyStore(table).put(parse_policy({"stageArn": stage_arn, "moderation": {}, **document}))


def cache(table: Table, clock: Clock) -> EffectivePolicies:
    return EffectivePolicies(PolicyStore(table), ttl_seconds=TTL, clock=clock)


def test_a_busy_container_takes_one_snapshot_per_lifetime_for_every_stage(table: Table, calls: Calls) -> None:
    for n in range(40):
        put(table, ARN.format(n), moderation={"blockedUserIds": [f"troll-{n}"]})
    clock = Clock()
    policies = cache(table, clock)
    calls.reset()

    def read_all() -> None:
        for n in range(40):
            effective = policies.get(ARN.format(n))
            assert effective is not None and effective.policy.moderation is not None
            assert effective.policy.moderation.blocked_user_ids == {f"troll-{n}"}

    read_all()
    assert calls.made == {"BatchGetItem": 40}  # the first lifetime: each stage on its own

    clock.advance(TTL)
    calls.reset()
    read_all()
    assert calls.made == {"Query": 2}  # a busy container: the policies and the pause switches, one page each
    clock.advance(TTL - 1)
    read_all()
    assert calls.made == {"Query": 2}

    clock.advance(1)  # one lifetime after the snapshot: a new one
    read_all()
    assert calls.made == {"Query": 4}


def test_a_quiet_container_reads_its_stages_on_their_own(table: Table, calls: Calls) -> None:
    for n in range(3):
        put(table, ARN.format(n))
    clock = Clock()
    policies = cache(table, clock)
    calls.reset()
    for _ in range(5):
        for n in range(EffectivePolicies.SNAPSHOT_FROM_STAGES - 1):
            assert policies.get(ARN.format(n)) is not None
        clock.advance(TTL)
    assert calls.made == {"BatchGetItem": 5 * (EffectivePolicies.SNAPSHOT_FROM_STAGES - 1)}


def busy(policies: EffectivePolicies, clock: Clock, table: Table) -> None:
    """Read enough stages for one lifetime that the next one starts with a snapshot."""
    for n in range(100, 100 + EffectivePolicies.SNAPSHOT_FROM_STAGES):
        put(table, ARN.format(n))
        policies.get(ARN.format(n))
    clock.advance(TTL)


@pytest.mark.parametrize("snapshot", [True, False])
def test_a_change_is_seen_within_one_lifetime(table: Table, snapshot: bool) -> None:
    stage = ARN.format(1)
    put(table, stage, moderation={"dryRun": True})
    clock = Clock()
    policies = cache(table, clock)
    if snapshot:
        busy(policies, clock, table)
    first = policies.get(stage)
    assert first is not None and first.version == 1

    clock.advance(TTL / 2)
    put(table, stage, moderation={"dryRun": False})
    PauseSwitches(table).pause(stage, by="operator")
    clock.advance(TTL / 2 - 1)
    still = policies.get(stage)
    assert still is not None and still.version == 1 and not still.policy.paused  # cached, within the lifetime

    clock.advance(1)
    now = policies.get(stage)
    assert now is not None and now.version == 2 and now.policy.paused


def test_a_stage_the_snapshot_has_nothing_for_gets_its_first_policy_within_one_lifetime(
    table: Table, calls: Calls
) -> None:
    put(table, ARN.format(1))
    clock = Clock()
    policies = cache(table, clock)
    busy(policies, clock, table)
    assert policies.get(ARN.format(1)) is not None
    calls.reset()

    newcomer = ARN.format(2)
    assert policies.get(newcomer) is None  # the snapshot answers for every stage: none, and no read
    put(table, newcomer)  # after the snapshot: its first policy
    calls.reset()
    clock.advance(TTL - 1)
    assert policies.get(newcomer) is None
    assert calls.made == {}

    clock.advance(1)  # one lifetime after the snapshot: the next one has it
    effective = policies.get(newcomer)
    assert effective is not None and effective.source == "stage"
    assert calls.made == {"BatchGetItem": 1}  # two stages read in the last lifetime: read on its own now


def test_too_many_policies_for_the_snapshot_reads_per_stage_then_tries_again_later(
    table: Table, calls: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    stages = [ARN.format(n) for n in range(EffectivePolicies.SNAPSHOT_FROM_STAGES)]
    for stage in stages:
        put(table, stage)
    complete = {"complete": False}
    query_pages = table.query_pages

    def one_page(pk: str, *, pages: int, consistent: bool = False) -> tuple[list[dict[str, Any]], int, bool]:
        items, made, _ = query_pages(pk, pages=1, consistent=consistent)
        return items, made, complete["complete"]  # as when the policies are past the snapshot's pages

    monkeypatch.setattr(table, "query_pages", one_page)
    clock = Clock()
    policies = cache(table, clock)

    def read_all() -> None:
        for stage in stages:
            assert policies.get(stage) is not None

    read_all()
    clock.advance(TTL)
    calls.reset()
    read_all()
    n = len(stages)
    assert calls.made == {"Query": 1, "BatchGetItem": n}  # the policies' pages said "more": per stage

    complete["complete"] = True
    clock.advance(TTL)
    read_all()
    assert calls.made == {"Query": 1, "BatchGetItem": 2 * n}  # per stage, without another page for a while

    clock.advance(TTL * (EffectivePolicies.SNAPSHOT_RETRY_LIFETIMES - 1))
    read_all()
    assert calls.made == {"Query": 3, "BatchGetItem": 2 * n}  # the snapshot again, answering every stage


def test_a_busy_container_at_800_stages_reads_no_stage_on_its_own(table: Table, calls: Calls) -> None:
    """800 policies of the example's size take two Query pages (docs/performance.md, section 11: one page holds
    about 750 in DynamoDB): a busy container's snapshot still answers every stage, so a lifetime that meets
    all 800 makes no BatchGetItem (the old snapshot gave up past one page: 800 reads of their own)."""
    store_fleet(table, 800)
    clock = Clock()
    policies = EffectivePolicies(PolicyStore(table), ttl_seconds=TTL, clock=clock, mark=ChangeMark(table, clock=clock))
    for n in range(EffectivePolicies.SNAPSHOT_FROM_STAGES):  # a busy first lifetime
        assert policies.get(FLEET_ARN.format(n)) is not None
    clock.advance(TTL)
    calls.reset()

    for n in range(800):
        effective = policies.get(FLEET_ARN.format(n))
        assert effective is not None and effective.source == "stage"
    assert calls.made == {"GetItem": 1, "Query": 3}  # the mark, two pages of policies, one of pause switches

    clock.advance(TTL)
    calls.reset()
    for n in range(800):
        assert policies.get(FLEET_ARN.format(n)) is not None
    assert calls.made == {"GetItem": 1}  # nothing changed: carried on


@pytest.mark.parametrize(
    ("own", "default", "paused"),
    [
        (False, False, set()),
        (True, False, set()),
        (False, True, set()),
        (True, True, set()),
        (True, True, {"stage"}),
        (True, True, {"default"}),
        (False, True, {"default"}),
        (False, False, {"stage"}),
        (False, False, {"default"}),
        (True, False, {"stage", "default"}),
    ],
)
def test_the_snapshot_answers_what_a_per_stage_read_would(
    table: Table, own: bool, default: bool, paused: set[str]
) -> None:
    stage, bystander = ARN.format(1), ARN.format(9)
    put(table, bystander)
    if own:
        put(table, stage, moderation={"dryRun": True})
    if default:
        put(table, "default")
    switches = PauseSwitches(table)
    for which in paused:
        switches.pause(stage if which == "stage" else "default", by="operator")
    store = PolicyStore(table)
    snapshot = store.snapshot()
    assert snapshot is not None
    assert snapshot.lookup(stage) == store.lookup(stage)
    assert snapshot.lookup(bystander) == store.lookup(bystander)


@pytest.mark.parametrize("code", ["ProvisionedThroughputExceededException", "InternalServerError"])
def test_a_snapshot_that_fails_is_retried_by_the_next_read(table: Table, calls: Calls, code: str) -> None:
    """DynamoDB throttling or failing the snapshot: that read says "retry later" (the event is redelivered),
    nothing stale or empty is cached, and the next read takes the snapshot."""
    stage = ARN.format(1)
    put(table, stage, moderation={"dryRun": True})
    clock = Clock()
    policies = cache(table, clock)
    busy(policies, clock, table)
    failures = {"left": 1}

    def fail(model: Any, **_: Any) -> None:
        if model.name == "Query" and failures["left"]:
            failures["left"] -= 1
            raise ClientError(
                {"Error": {"Code": code, "Message": "injected"}, "ResponseMetadata": {"HTTPStatusCode": 500}},
                model.name,
            )

    table.client.meta.events.register("before-call.dynamodb.Query", fail)
    calls.reset()
    with pytest.raises(RetryLater):
        policies.get(stage)
    effective = policies.get(stage)
    assert effective is not None and effective.version == 1
    assert failures["left"] == 0
    assert calls.made == {"Query": 2}  # the snapshot's two (the failed one never left the client)


def test_with_the_change_mark_a_busy_container_reads_one_item_a_lifetime_until_something_changes(
    table: Table, calls: Calls
) -> None:
    """The change mark (adapters/changes.py): while no policy, pause switch or ban is written, a busy
    container's snapshot is carried on for one GetItem a lifetime instead of its two Query calls; a write
    through the stores is seen at the next lifetime, one behind their back at the forced read."""
    for n in range(5):
        put(table, ARN.format(n), moderation={"blockedUserIds": [f"troll-{n}"]})
    clock = Clock()
    policies = EffectivePolicies(PolicyStore(table), ttl_seconds=TTL, clock=clock, mark=ChangeMark(table, clock=clock))

    def read_all() -> None:
        for n in range(5):
            assert policies.get(ARN.format(n)) is not None

    read_all()
    clock.advance(TTL)
    calls.reset()
    read_all()
    assert calls.made == {"GetItem": 1, "Query": 2}  # the mark, then the snapshot
    for _ in range(3):
        clock.advance(TTL)
        calls.reset()
        read_all()
        assert calls.made == {"GetItem": 1}  # nothing changed: the snapshot carried on

    PauseSwitches(table).pause(ARN.format(2), by="operator")  # through the store: the mark changes
    calls.reset()
    clock.advance(TTL)
    effective = policies.get(ARN.format(2))
    assert effective is not None and effective.policy.paused
    read_all()
    assert calls.made == {"GetItem": 1, "Query": 2}

    item = table.get("POLICY", ARN.format(3))  # a console edit: the mark stays as it was
    assert item is not None
    table.put({**item, "document": '{"stageArn": "' + ARN.format(3) + '", "paused": true}'})
    lifetimes = 0
    while not policies.get(ARN.format(3)).policy.paused:  # type: ignore[union-attr]
        read_all()  # still busy: the snapshot is carried on
        clock.advance(TTL)
        lifetimes += 1
    assert lifetimes == FORCED_LIFETIMES  # seen at the forced read, FORCED_LIFETIMES after the last snapshot
