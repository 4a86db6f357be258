"""The fleet's composition hours per UTC day (decisions/composition_hours.py), kept in one item per day:
``STAGE#~composition-hours`` / ``DAY#<yyyy-mm-dd>`` (docs/table.md). No stage ARN starts with ``~``.

- ``endedSeconds``: the part within the day of every composition stagepilot started that ended, each
  counted once: the count is one transaction with a marker on the composition's session record
  (``hoursCounted#<composition id>``), so the ``Session End`` event, its duplicates and the pass (which
  sees an ended composition listed for about five minutes) count it once between them.
- ``live#<composition id>``: a composition the pass last listed live, with its start, stage and session;
  written by the pass (one update per pass), taken out when its end is counted.
- ``listedAt``, ``limit``, ``mode``: when the pass last listed, and the setting it kept the day with.
- ``spentAt``: when the pass first found the day's hours spent (set once: the alarm's one count).

Reading the figure is one ``GetItem``; a start never scans anything.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final

from stagepilot.adapters.dynamo import STATE_RETENTION, ConditionalUpdate, Table, epoch, iso, parse_iso, utc_now
from stagepilot.adapters.schema import PARTITION_KEY, STAGE_PREFIX, TTL_ATTRIBUTE
from stagepilot.adapters.state import composition_key
from stagepilot.decisions.composition_hours import (
    CompositionHoursPerDay,
    DayFigure,
    days_between,
    seconds_in_day,
)

PARTITION: Final = f"{STAGE_PREFIX}~composition-hours"
LIVE: Final = "live#"
COUNTED: Final = "hoursCounted#"  # on the session record: this composition's end is counted
RETENTION: Final = STATE_RETENTION + timedelta(days=1)


def day_key(day: date) -> tuple[str, str]:
    return PARTITION, f"DAY#{day.isoformat()}"


def composition_id(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Listed:
    """A live composition as the pass lists it: what the day's item keeps of it."""

    started_at: datetime
    stage_arn: str
    session_id: str

    def encoded(self) -> str:
        return f"{iso(self.started_at)} {self.stage_arn} {self.session_id}"

    @classmethod
    def decoded(cls, value: object) -> Listed | None:
        parts = str(value).split(" ")
        started = parse_iso(parts[0]) if len(parts) == 3 else None
        return cls(started, parts[1], parts[2]) if started is not None else None


class CompositionHours:
    def __init__(self, table: Table, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._table = table
        self._clock = clock

    def figure(self, day: date) -> DayFigure:
        """The day's figure (one ``GetItem``; an empty day when nothing is kept yet)."""
        return _figure(day, self._table.get(*day_key(day)) or {})

    def count_ended(
        self, *, stage_arn: str, session_id: str, composition_arn: str, started_at: datetime, ended_at: datetime
    ) -> bool:
        """Add an ended composition's seconds to each day it ran in, once (False: counted already, or its
        session record is gone)."""
        ident = composition_id(composition_arn)
        changes = [
            ConditionalUpdate(
                *composition_key(stage_arn, session_id),
                "SET #counted = :at",
                "attribute_exists(#pk) AND attribute_not_exists(#counted)",
                {"#counted": COUNTED + ident, "#pk": PARTITION_KEY},
                {":at": iso(ended_at)},
            )
        ]
        for day in days_between(started_at, ended_at):
            changes.append(
                ConditionalUpdate(
                    *day_key(day),
                    "ADD #ended :seconds REMOVE #live SET #ttl = if_not_exists(#ttl, :ttl)",
                    None,
                    {"#ended": "endedSeconds", "#live": LIVE + ident, "#ttl": TTL_ATTRIBUTE},
                    {
                        ":seconds": round(seconds_in_day(started_at, ended_at, day)),
                        ":ttl": epoch(datetime.combine(day, datetime.min.time(), ended_at.tzinfo) + RETENTION),
                    },
                )
            )
        return self._table.apply_all(changes)

    def record_live(
        self, day: date, live: Mapping[str, Listed], *, now: datetime, budget: CompositionHoursPerDay
    ) -> tuple[dict[str, Listed], datetime | None]:
        """The pass's listing of what runs now, kept in the day's item (one update); answers the live
        compositions the item held before (the listing may no longer show them) and when they were listed."""
        names: dict[str, str] = {"#listedAt": "listedAt", "#limit": "limit", "#mode": "mode", "#ttl": TTL_ATTRIBUTE}
        values: dict[str, Any] = {
            ":now": iso(now),
            ":limit": str(budget.limit),
            ":mode": budget.mode,
            ":ttl": epoch(now + RETENTION),
        }
        sets = ["#listedAt = :now", "#limit = :limit", "#mode = :mode", "#ttl = :ttl"]
        for index, (ident, listed) in enumerate(sorted(live.items())):
            names[f"#l{index}"] = LIVE + ident
            values[f":l{index}"] = listed.encoded()
            sets.append(f"#l{index} = :l{index}")
        old = self._table.swap(*day_key(day), "SET " + ", ".join(sets), names=names, values=values) or {}
        return _live(old), parse_iso(old.get("listedAt"))

    def forget_live(self, day: date, ident: str) -> None:
        """Take a composition out of the day's live ones (its end was counted already)."""
        self._table.apply(ConditionalUpdate(*day_key(day), "REMOVE #live", None, {"#live": LIVE + ident}))

    def mark_spent(self, day: date, now: datetime) -> bool:
        """Note that the day's hours are spent; True only for the first (the alarm counts it once)."""
        return self._table.apply(
            ConditionalUpdate(
                *day_key(day),
                "SET #spent = :now",
                "attribute_not_exists(#spent)",
                {"#spent": "spentAt"},
                {":now": iso(now)},
            )
        )


def _live(item: Mapping[str, Any]) -> dict[str, Listed]:
    found = {}
    for name, value in item.items():
        listed = Listed.decoded(value) if name.startswith(LIVE) else None
        if listed is not None:
            found[name.removeprefix(LIVE)] = listed
    return found


def _figure(day: date, item: Mapping[str, Any]) -> DayFigure:
    limit = None
    try:
        if item.get("limit") is not None:
            limit = CompositionHoursPerDay(float(item["limit"]), str(item.get("mode", "alert")))
    except (TypeError, ValueError):
        limit = None
    return DayFigure(
        day=day,
        ended_seconds=float(item.get("endedSeconds", 0)),
        live={ident: listed.started_at for ident, listed in _live(item).items()},
        listed_at=parse_iso(item.get("listedAt")),
        spent_at=parse_iso(item.get("spentAt")),
        limit=limit,
    )
