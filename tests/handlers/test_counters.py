"""Moderation's windowed counters (adapters/counters.py) on moto DynamoDB: what each add costs in calls,
what it counts, and how it reads the items an earlier version wrote (the ``events`` map)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from stagepilot.adapters.counters import (
    EVENTS_ATTRIBUTE,
    LATE_EVENT_TOLERANCE,
    MAX_ENTRIES,
    PRUNE_BATCH,
    Counted,
    Kind,
    WindowCounters,
    counted_events,
    counter_key,
)
from stagepilot.adapters.schema import PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE
from stagepilot.adapters.table import STATE_RETENTION, Table, epoch
from tests.handlers.conftest import Calls
from tests.support import SESSION, STAGE, T0, later

WINDOW = 60
KEY = counter_key(STAGE, SESSION, "p1", Kind.FLAG)


def counters(table: Table, now: datetime = T0) -> WindowCounters:
    return WindowCounters(table, clock=lambda: now)


def add(table: Table, event_id: str, at: datetime, *, now: datetime = T0, window: int = WINDOW) -> Counted:
    return counters(table, now).add(STAGE, SESSION, "p1", Kind.FLAG, event_id=event_id, time=at, window_seconds=window)


def stored(table: Table) -> dict[str, Any]:
    item = table.get(*KEY, consistent=True)
    assert item is not None
    return item


def put_old_shape(table: Table, events: dict[str, datetime]) -> None:
    """The item as the previous version wrote it: every event an entry of one ``events`` map."""
    table.put(
        {
            PARTITION_KEY: KEY[0],
            SORT_KEY: KEY[1],
            EVENTS_ATTRIBUTE: {event_id: int(at.timestamp() * 1000) for event_id, at in events.items()},
            TTL_ATTRIBUTE: epoch(T0 + STATE_RETENTION),
        }
    )


# one call per add --------------------------------------------------------------------------------------
def test_a_participants_first_event_is_one_update(table: Table, calls: Calls) -> None:
    counted = add(table, "e-1", later(1))

    assert counted == Counted(times=(later(1),), duplicate=False)
    assert calls.made == {"UpdateItem": 1}


def test_each_later_event_is_one_update_and_sees_every_earlier_one(table: Table, calls: Calls) -> None:
    for second in (1, 2, 3):
        add(table, f"e-{second}", later(second))
    calls.reset()

    counted = add(table, "e-4", later(4))

    assert counted == Counted(times=(later(1), later(2), later(3), later(4)), duplicate=False)
    assert calls.made == {"UpdateItem": 1}


def test_a_redelivery_counts_once_in_one_call_and_no_read(table: Table, calls: Calls) -> None:
    add(table, "e-1", later(1))
    add(table, "e-2", later(2))
    calls.reset()

    again = add(table, "e-1", later(1))

    assert again == Counted(times=(later(1), later(2)), duplicate=True)
    assert calls.made == {"UpdateItem": 1}
    assert counted_events(stored(table)) == {"e-1": later(1), "e-2": later(2)}


def test_a_redelivery_with_another_time_keeps_the_first_time(table: Table) -> None:
    add(table, "e-1", later(1))

    again = add(table, "e-1", later(30))

    assert again == Counted(times=(later(1),), duplicate=True)


def test_event_ids_any_text_are_kept_apart(table: Table) -> None:
    ids = ["a.b", "a", "#x", ":v", "events", "e#e#1", "ü–∂ 1"]
    for second, event_id in enumerate(ids, start=1):
        assert add(table, event_id, later(second)).duplicate is False

    assert counted_events(stored(table)) == {event_id: later(s) for s, event_id in enumerate(ids, start=1)}
    assert add(table, "a.b", later(1)).duplicate is True


def test_every_add_moves_the_expiry_on_by_the_state_retention(table: Table) -> None:
    add(table, "e-1", later(1), now=T0)
    assert stored(table)[TTL_ATTRIBUTE] == epoch(T0 + STATE_RETENTION)

    add(table, "e-2", later(2), now=T0 + timedelta(hours=1))
    assert stored(table)[TTL_ATTRIBUTE] == epoch(T0 + timedelta(hours=1) + STATE_RETENTION)


# concurrent deliveries ---------------------------------------------------------------------------------
def test_two_first_events_interleaved_each_see_what_was_written_before_theirs(table: Table, calls: Calls) -> None:
    seen: list[Counted] = []
    # Another container's first event lands between this one's start and its write.
    calls.before_next("UpdateItem", lambda: seen.append(add(table, "other", later(2))))

    mine = add(table, "mine", later(1))

    assert seen == [Counted(times=(later(2),), duplicate=False)]
    assert mine == Counted(times=(later(1), later(2)), duplicate=False)
    assert calls.made == {"UpdateItem": 2}  # one each: neither had to retry


def test_a_redelivery_racing_its_first_delivery_counts_once(table: Table, calls: Calls) -> None:
    seen: list[Counted] = []
    calls.before_next("UpdateItem", lambda: seen.append(add(table, "e-1", later(1))))

    again = add(table, "e-1", later(1))

    assert seen == [Counted(times=(later(1),), duplicate=False)]
    assert again == Counted(times=(later(1),), duplicate=True)
    assert calls.made == {"UpdateItem": 2}


# items the previous version wrote (an ``events`` map) ----------------------------------------------------
def test_an_add_on_an_old_item_sees_its_map_in_one_call(table: Table, calls: Calls) -> None:
    put_old_shape(table, {"old-1": later(1), "old-2": later(2)})
    calls.reset()

    counted = add(table, "new-3", later(3))

    assert counted == Counted(times=(later(1), later(2), later(3)), duplicate=False)
    assert calls.made == {"UpdateItem": 1}


def test_a_redelivery_of_an_event_in_an_old_map_is_not_counted_again(table: Table, calls: Calls) -> None:
    put_old_shape(table, {"old-1": later(1), "old-2": later(2)})
    calls.reset()

    again = add(table, "old-1", later(1))

    assert again == Counted(times=(later(1), later(2)), duplicate=True)
    assert calls.made == {"UpdateItem": 1}
    assert counted_events(stored(table)) == {"old-1": later(1), "old-2": later(2)}
    assert add(table, "new-3", later(3)).times == (later(1), later(2), later(3))


def test_an_old_writer_adding_to_its_map_after_a_new_one_loses_nothing(table: Table) -> None:
    """During a deployment the previous version may still run: its map and the new attributes coexist."""
    add(table, "new-1", later(1))
    table.update(
        *KEY,
        "SET #events = :first",
        condition="attribute_not_exists(#events)",
        names={"#events": EVENTS_ATTRIBUTE},
        values={":first": {"old-2": int(later(2).timestamp() * 1000)}},
    )

    counted = add(table, "new-3", later(3))

    assert counted.times == (later(1), later(2), later(3))
    assert add(table, "old-2", later(2)).duplicate is True


def test_an_item_holding_one_event_in_both_shapes_counts_it_once() -> None:
    millis = int(later(1).timestamp() * 1000)
    item = {EVENTS_ATTRIBUTE: {"e-1": millis}, "e#e-1": millis, "e#e-2": millis + 1000}

    assert counted_events(item) == {"e-1": later(1), "e-2": later(2)}


# pruning -----------------------------------------------------------------------------------------------
def test_entries_older_than_window_and_tolerance_are_pruned_in_both_shapes(table: Table, calls: Calls) -> None:
    put_old_shape(table, {"old-1": later(1), "old-2": later(2)})
    add(table, "new-3", later(3))
    newest = later(3) + timedelta(seconds=WINDOW) + LATE_EVENT_TOLERANCE  # later(3) is just within reach
    calls.reset()

    counted = add(table, "new-4", newest)

    assert counted.times == (later(1), later(2), later(3), newest)  # what the add saw, before pruning
    assert calls.made == {"UpdateItem": 2}  # the add, and one removal of the stale entries
    item = stored(table)
    assert counted_events(item) == {"new-3": later(3), "new-4": newest}
    assert item[EVENTS_ATTRIBUTE] == {}  # emptied, not removed: an old writer may still add to it


def test_nothing_is_pruned_within_the_tolerance_and_no_call_is_spent_on_it(table: Table, calls: Calls) -> None:
    add(table, "e-1", later(1))
    calls.reset()

    edge = later(1) + timedelta(seconds=WINDOW) + LATE_EVENT_TOLERANCE
    counted = add(table, "e-2", edge)

    assert counted.times == (later(1), edge)
    assert calls.made == {"UpdateItem": 1}
    assert set(counted_events(stored(table))) == {"e-1", "e-2"}


def test_a_late_event_older_than_the_horizon_is_counted_then_pruned(table: Table) -> None:
    add(table, "recent", later(10 * 3600))

    late = add(table, "late", later(1))

    assert late.times == (later(1), later(10 * 3600))
    assert set(counted_events(stored(table))) == {"recent"}


def test_pruning_removes_at_most_fifty_entries_per_add(table: Table) -> None:
    for index in range(60):
        add(table, f"e-{index}", later(index))

    add(table, "new", later(60) + timedelta(seconds=WINDOW) + LATE_EVENT_TOLERANCE + timedelta(seconds=1))
    assert len(counted_events(stored(table))) == 11  # 10 stale left, and the new one

    add(table, "newer", later(61) + timedelta(seconds=WINDOW) + LATE_EVENT_TOLERANCE + timedelta(seconds=1))
    assert set(counted_events(stored(table))) == {"new", "newer"}


# flags by reporter (docs/events.md) ----------------------------------------------------------------------
def add_by(table: Table, event_id: str, at: datetime, reporter: str) -> Counted:
    return counters(table).add(
        STAGE, SESSION, "p1", Kind.FLAG, event_id=event_id, time=at, window_seconds=WINDOW, reporter=reporter
    )


def test_a_reporters_flags_are_one_entry_at_its_latest_flag_whatever_their_ids(table: Table, calls: Calls) -> None:
    assert add_by(table, "e-1", later(1), "viewer-77") == Counted(times=(later(1),), duplicate=False)
    assert add_by(table, "e-2", later(5), "viewer-77") == Counted(times=(later(5),), duplicate=False)
    late = add_by(table, "e-3", later(2), "viewer-77")  # an older report, arriving late: nothing changes
    assert late == Counted(times=(later(5),), duplicate=True)
    assert add_by(table, "e-2", later(5), "viewer-77").duplicate  # a redelivery
    assert calls.made == {"UpdateItem": 4}  # one call each, no read

    other = add_by(table, "e-4", later(6), "viewer-78")
    assert other.times == (later(5), later(6))
    assert set(counted_events(stored(table))) == {"r#viewer-77", "r#viewer-78"}


def test_a_stale_reporter_entry_is_pruned_like_an_event(table: Table) -> None:
    add_by(table, "e-1", later(1), "viewer-77")
    add(table, "e-2", later(2) + timedelta(seconds=WINDOW) + LATE_EVENT_TOLERANCE + timedelta(seconds=1))
    assert set(counted_events(stored(table))) == {"e-2"}


# bounded items (issue 23) -----------------------------------------------------------------------------
CAP = 40  # the logic at a small cap (moto rewrites the whole item per call); the real cap's size below


def add_capped(table: Table, event_id: str, at: datetime, *, cap: int = CAP) -> Counted:
    counter = WindowCounters(table, clock=lambda: T0, max_entries=cap)
    return counter.add(STAGE, SESSION, "p1", Kind.FLAG, event_id=event_id, time=at, window_seconds=3600)


def test_the_cap_keeps_an_item_clear_of_400_kb_and_above_the_largest_limit() -> None:
    from stagepilot.events import MAX_ID_LENGTH, MAX_REPORTER_LENGTH
    from stagepilot.policy import LIMIT_COUNT_RANGE

    longest_name = len("e#") + max(MAX_ID_LENGTH * 2, MAX_REPORTER_LENGTH)  # an event id or a reporter
    assert MAX_ENTRIES * (longest_name + 21) < 340_000  # a number takes at most 21 bytes; 400 KB is the limit
    assert LIMIT_COUNT_RANGE[1] <= MAX_ENTRIES - PRUNE_BATCH  # a limit of 1,000 still sees its newest events


def test_a_storm_of_events_for_one_participant_is_bounded_by_the_cap(table: Table, calls: Calls) -> None:
    events = 3 * CAP
    for index in range(events):  # every event within one window: nothing is stale, only the cap prunes
        counted = add_capped(table, f"e-{index:04d}", later(index))
        assert len(counted.times) <= CAP and not counted.duplicate
        assert counted.times[-1] == later(index)  # the newest are kept
    made = dict(calls.made)

    item = stored(table)
    kept = counted_events(item)
    assert len(kept) <= CAP and item["entryCount"] == len(kept)
    assert sorted(kept) == sorted(f"e-{index:04d}" for index in range(events - len(kept), events))
    # a full item costs one refused add and one that also makes room (a quarter of the cap), not a read
    assert made == {"UpdateItem": events + (events - CAP) // (CAP // 4)}


def test_a_redelivery_to_a_full_item_is_still_one_call_and_counts_once(table: Table, calls: Calls) -> None:
    for index in range(CAP):
        add_capped(table, f"e-{index}", later(index))
    calls.reset()

    again = add_capped(table, "e-5", later(5))

    assert again.duplicate and len(again.times) == CAP
    assert calls.made == {"UpdateItem": 1}


def test_a_reporters_later_flag_to_a_full_item_keeps_its_one_entry(table: Table) -> None:
    for index in range(CAP - 1):
        add_capped(table, f"e-{index}", later(index))
    counters_ = WindowCounters(table, clock=lambda: T0, max_entries=CAP)
    flag = {"window_seconds": 3600, "reporter": "viewer-77"}
    counters_.add(STAGE, SESSION, "p1", Kind.FLAG, event_id="f-1", time=later(100), **flag)  # type: ignore[arg-type]
    assert len(counted_events(stored(table))) == CAP

    counters_.add(STAGE, SESSION, "p1", Kind.FLAG, event_id="f-2", time=later(200), **flag)  # type: ignore[arg-type]

    kept = counted_events(stored(table))
    assert kept["r#viewer-77"] == later(200) and len(kept) < CAP


def test_an_item_an_earlier_version_grew_past_the_cap_is_cut_back(table: Table) -> None:
    put_old_shape(table, {f"old-{i}": later(i) for i in range(CAP + 5)})  # no entry count kept

    add_capped(table, "new", later(200))

    item = stored(table)
    assert len(counted_events(item)) == CAP  # the 6 oldest removed
    assert item["entryCount"] == CAP and "new" in counted_events(item)
