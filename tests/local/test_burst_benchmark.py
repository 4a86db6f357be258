"""The burst benchmark's trades (benchmarks/burst.py), on a burst small enough for the tests: each does what
docs/performance.md section 3 says it measures."""

from __future__ import annotations

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
