"""The burst benchmark's trades (benchmarks/burst.py), on a burst small enough for the tests: each does what
docs/performance.md section 3 says it measures."""

from __future__ import annotations

import pytest

from benchmarks import burst


def test_a_burst_with_one_reader_reads_each_publisher_once() -> None:
    """The one-reader trade (docs/performance.md section 3): moderation takes every publisher from
    replication's record instead of its own GetParticipant, and nothing is throttled with an application
    that keeps to its part."""
    one = burst.run(8, shared_store=True, one_reader=True, application="bounded")
    assert one["one_reader_cost"]["served_from_the_record"] == 8
    assert one["one_reader_cost"]["fell_back_to_ivs"] == 0
    assert one["calls_per_operation"]["GetParticipant"] == 8  # replication's, one a publisher (no pass ran)
    assert one["passes"] == 0
    assert one["throttled_calls"] + one["application_throttled_calls"] == 0
    assert one["stages_with_one_composition"] == 8


def test_the_pass_reading_the_records_asks_ivs_only_for_publishers_without_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pass-reads-records trade (docs/performance.md section 3): the convergence pass, run beside the
    burst every 2 s here, takes a publisher's token from the event path's publisher record when there is
    one, through the pass's own view of IVS; it asks GetParticipant only for publishers with none yet."""
    monkeypatch.setattr(burst, "PASS_PERIOD", 2.0)
    trade = {"shared_store": True, "one_reader": True, "application": "bounded"}
    built = burst.run(8, **trade)
    one = burst.run(8, **trade, pass_reads_records=True)
    assert built["passes"] > 0 and one["passes"] > 0
    cost = one["pass_records_cost"]
    assert cost["served_from_the_record"] > 0
    asked = one["pass_calls_per_operation"].get("GetParticipant", 0)
    assert asked < built["pass_calls_per_operation"]["GetParticipant"]
    assert asked <= cost["asked_ivs"]
    assert cost["table_reads"] == cost["served_from_the_record"] + cost["asked_ivs"]
    assert one["stages_with_one_composition"] == 8
    assert one["throttled_calls"] + one["application_throttled_calls"] == 0
