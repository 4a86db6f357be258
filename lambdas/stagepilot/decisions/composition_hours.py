"""The fleet's composition budget (docs/policy.md, "The fleet's composition budget"): the stack context
``compositionHoursPerDay`` bounds the composition hours of the compositions stagepilot started in the
account and region per UTC day. Pure: the setting, the day's figure, whether it is spent.

The day's figure is kept in one item per UTC day (adapters/composition_hours.py): the seconds of the
compositions that ended (each counted once, the part of it that fell within the day) and the compositions
the convergence pass last listed live, with their start. Its hours at a moment are those ended seconds
plus each live composition's time within the day up to that moment.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final

ALERT: Final = "alert"
BLOCK: Final = "block"
MODES: Final = (ALERT, BLOCK)
# 20 compositions per account (IVS's default quota, adjustable) for 24 hours is 480 a day: a limit beyond
# a hundred times that is a typo, not a budget.
MAX_LIMIT_HOURS: Final = 48_000
# A live entry counts up to this long after the pass that listed it (passes come every minute): one that
# no pass has listed for longer (the passes failing, its end unseen) is not counted on and on.
LISTING_TRUSTED: Final = timedelta(minutes=10)
BUDGET: Final = "budget"  # what a refused start is audited as (and the record's state: decisions/composition.py)
CONTEXT_KEY: Final = "compositionHoursPerDay"


@dataclass(frozen=True)
class CompositionHoursPerDay:
    """``{"limit": N, "mode": "alert" | "block"}``: ``alert`` raises CompositionBudgetAlarm once the day's
    hours are spent; ``block`` also refuses new starts (audited ``budget``) until the next UTC day."""

    limit: float
    mode: str = ALERT

    @property
    def blocks(self) -> bool:
        return self.mode == BLOCK

    @property
    def limit_seconds(self) -> float:
        return self.limit * 3600

    def to_json(self) -> str:
        return json.dumps({"limit": self.limit, "mode": self.mode})


def parse_composition_hours(value: Any, key: str = CONTEXT_KEY) -> CompositionHoursPerDay | None:
    """The setting from the stack context (a mapping, or its JSON text as ``cdk -c`` hands it over) or a
    function's environment; None when unset. Raises ``ValueError`` with one line naming the field."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f'{key} must be JSON like {{"limit": 100, "mode": "alert"}}, got {value!r}') from exc
    if not isinstance(value, Mapping):
        raise ValueError(f'{key} must be an object like {{"limit": 100, "mode": "alert"}}, got {value!r}')
    unknown = sorted(set(value) - {"limit", "mode"})
    if unknown:
        raise ValueError(f"{key}.{unknown[0]}: unknown field (expected limit and mode)")
    limit = value.get("limit")
    if isinstance(limit, bool) or not isinstance(limit, int | float) or not 0 < limit <= MAX_LIMIT_HOURS:
        raise ValueError(
            f"{key}.limit: must be a number of hours, more than 0 and at most {MAX_LIMIT_HOURS}, got {limit!r}"
        )
    mode = value.get("mode", ALERT)
    if mode not in MODES:
        raise ValueError(f'{key}.mode: must be "alert" or "block", got {mode!r}')
    return CompositionHoursPerDay(limit=float(limit), mode=str(mode))


def utc_day(at: datetime) -> date:
    return at.astimezone(UTC).date()


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def days_between(start: datetime, end: datetime) -> list[date]:
    """The UTC days ``[start, end]`` touches (a composition lives 24 hours at most: two days at most)."""
    days, day = [], utc_day(start)
    while day <= utc_day(end):
        days.append(day)
        day += timedelta(days=1)
    return days


def seconds_in_day(start: datetime, end: datetime, day: date) -> float:
    """How much of ``[start, end]`` falls within the UTC ``day``."""
    begin, finish = max(start, day_start(day)), min(end, day_start(day) + timedelta(days=1))
    return max((finish - begin).total_seconds(), 0.0)


@dataclass(frozen=True)
class DayFigure:
    """One UTC day's composition seconds as the day's item holds them."""

    day: date
    ended_seconds: float = 0.0
    live: Mapping[str, datetime] = field(default_factory=dict)  # composition id → its start (the pass's listing)
    listed_at: datetime | None = None  # when the pass last listed what runs
    spent_at: datetime | None = None  # when the pass first found the day's hours spent (the alarm's count)
    limit: CompositionHoursPerDay | None = None  # the setting the pass kept the day with (what status shows)

    def seconds(self, now: datetime) -> float:
        """Ended seconds plus the live compositions' time within the day up to ``now`` (at most
        ``LISTING_TRUSTED`` past the listing that showed them live)."""
        until = min(now, self.listed_at + LISTING_TRUSTED) if self.listed_at is not None else now
        return self.ended_seconds + sum(seconds_in_day(start, until, self.day) for start in self.live.values())

    def hours(self, now: datetime) -> float:
        return self.seconds(now) / 3600


def spent(figure: DayFigure, budget: CompositionHoursPerDay, now: datetime) -> bool:
    """The day's hours are spent: found so by a pass, or its figure reaches the limit now."""
    if figure.day != utc_day(now):
        return False
    return figure.spent_at is not None or figure.seconds(now) >= budget.limit_seconds


def refusal(figure: DayFigure, budget: CompositionHoursPerDay, now: datetime) -> str | None:
    """Why ``block`` refuses a start now (the audit's reason), or None: it may start."""
    if not budget.blocks or not spent(figure, budget, now):
        return None
    return (
        f"compositionHoursPerDay: {figure.hours(now):.2f} of {budget.limit:g} composition hours spent on "
        f"{figure.day.isoformat()} (UTC); mode block refuses new compositions until the next UTC day"
    )
