"""benchmarks/cost.py's DynamoDB line comes from the request units measured from item sizes
(benchmarks/request_units.py), not from a guessed number of units per call: the convergence pass's log, an item
of 13-60 KB read and rewritten whole by every pass, was counted as one write unit (docs/performance.md,
section 11)."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks import cost
from benchmarks.item_sizes import item_size, write_units

KB = 1024
PASSES_A_MONTH = 24 * cost.DAYS * 3600 / cost.PASS_PERIOD_SECONDS

WORK = {"events": 800, "deliveries": 1600, "by_operation": {}}
LATENCY: dict[str, Any] = {
    **{name: {"deliveries": 10, "delivery_mean_seconds": 0.5} for name in ("composition", "replication", "moderation")},
    "metric_names": ["EventActed"],
}


def measured(*, show_writes: float = 0.0, pass_writes: float = 0.0, log_writes: float = 0.0) -> dict[str, Any]:
    """request_units.run()'s figures: a show of 800 events, and a pass (the same idle and live) at 100 stages."""
    one_pass = {
        "per_pass": {
            "read_units": 0.0,
            "write_units": pass_writes,
            "change_mark_read_units": 0.0,
            "snapshot_read_units": 0.0,
            "snapshot_queries": 0.0,
            "policy_lookup_read_units": 0.0,
            "other_read_units": 0.0,
        },
        "stages_reached_per_pass": 0.0,
        "passes": 3,
        "by_kind": {"pass log": {"write_units": 3 * log_writes}},
    }
    show = {
        "events": 800,
        "read_units": 0.0,
        "write_units": show_writes,
        "other_read_units": 0.0,
        "change_mark_reads": 100,
        "change_mark_read_units": 100.0,
        "snapshot_queries": 0,
        "snapshot_read_units": 0.0,
        "policy_lookup_read_units": 0.0,
        "policy_item_bytes": 1384.0,
        "default_policy_bytes": 231,
        "pause_partition_bytes": 80,
        "by_kind": {"audit entry": {"items": 400, "mean_bytes": 372.0}},
    }
    return {"show100": show, "passes": {"100": {"idle": one_pass, "live": one_pass}}}


def pass_log_item(size: int) -> dict[str, Any]:
    """The pass log's item (adapters/pass_log.py), ``size`` bytes of it."""
    item: dict[str, Any] = {"pk": {"S": "STAGE#~convergence"}, "sk": {"S": "PASSES"}, "passes": {"L": []}}
    item["listing"] = {"S": "x" * (size - item_size(item) - len("listing"))}
    assert item_size(item) == size
    return item


def test_a_pass_that_rewrites_a_60_kb_item_is_charged_60_write_units_a_pass() -> None:
    units = write_units(item_size(pass_log_item(60 * KB)))
    month = cost.monthly(100, WORK, LATENCY, measured(pass_writes=units, log_writes=units))

    charged = month["dynamodb_units_millions"]
    assert charged["pass_write_units"] * 1e6 == pytest.approx(60 * PASSES_A_MONTH)  # not 2 a pass (cursor and log)
    assert charged["pass_log_write_units"] * 1e6 == pytest.approx(60 * PASSES_A_MONTH)
    assert month["write_units_millions"] * 1e6 == pytest.approx(60 * PASSES_A_MONTH)  # the show wrote nothing
    assert month["pass_log"] == pytest.approx(60 * PASSES_A_MONTH / 1e6 * cost.DDB_WRU_PER_MILLION)


def test_the_event_path_is_charged_the_units_measured_per_event() -> None:
    month = cost.monthly(100, WORK, LATENCY, measured(show_writes=3100.0))

    assert month["dynamodb_units_millions"]["event_path_write_units"] * 1e6 == pytest.approx(
        month["events"] * 3100 / 800
    )


def test_the_audit_trail_is_stored_twice_at_its_measured_size() -> None:
    month = cost.monthly(100, WORK, LATENCY, measured())

    entries = month["events"] * 400 / 800
    stored = entries * 2 * (372 + 100) * (cost.AUDIT_RETENTION_DAYS / cost.DAYS) / 1e9
    assert month["audit_stored_gb"] == pytest.approx(stored)  # the table's copy and the audit index's


def test_policies_past_the_snapshots_pages_are_read_per_stage() -> None:
    """At 1,384 bytes a policy, 1,000 stages take two of a snapshot's pages (1 MB each) and 2,272 its three
    (PolicyStore.SNAPSHOT_PAGES: 4 with the pause switches' page); past that a busy container reads each stage
    it meets on its own, every lifetime (pipeline.EffectivePolicies). Before, past one page (757 policies)."""
    show = measured()["show100"]
    assert cost.snapshot_pages(1000, show) == 3
    assert cost.snapshot_fits(2272, show)
    assert not cost.snapshot_fits(2273, show)

    fits = cost.policy_cache_read_units(1000, show, lifetimes=10, stages_a_lifetime=60)
    per_stage = cost.policy_cache_read_units(2273, show, lifetimes=10, stages_a_lifetime=60)
    # fits: the mark every lifetime, a whole snapshot every 10, strongly consistent: 1,384,231 bytes of policies
    # (338 units of 4 KB) and the pause switches (1)
    assert fits == pytest.approx(10 * (1 + (338 + 1) / 10))
    # per stage: 60 BatchGetItem of 4 keys each (policy, default, two pause switches: 2 units) every lifetime,
    # and the policies' three pages (3 MB: 768 units) read and given up every 10
    assert per_stage == pytest.approx(10 * ((1 + 768) / 10 + 60 * 2))
