"""The fleet's composition budget (docs/policy.md, "The fleet's composition budget"): the stack context
``compositionHoursPerDay`` counts the composition hours of what stagepilot started in the account and
region per UTC day (adapters/composition_hours.py keeps the day's figure in one item).

- The convergence pass keeps the day (``keep_the_day``): the ended compositions its listing shows are
  counted (once each), what runs now is written to the day's item, and the first pass that finds the
  day's hours spent counts ``CompositionBudgetSpent`` once (``CompositionBudgetAlarm``).
- The composition function counts an end when its ``Session End`` / ``Session Failure`` arrives
  (``count_end``), so the figure does not wait for the pass.
- ``block``: every start (the event path's, a restart, a rollover, the pass's heal) asks ``refused``
  first: one read of the day's item.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Final

from stagepilot.adapters.composition_hours import CompositionHours, Listed, composition_id
from stagepilot.adapters.ivs import CompositionSummary
from stagepilot.decisions.composition import managed_attempt
from stagepilot.decisions.composition_hours import refusal, spent, utc_day
from stagepilot.pipeline import Services

logger = logging.getLogger(__name__)

SPENT_METRIC: Final = "CompositionBudgetSpent"  # once per UTC day: what CompositionBudgetAlarm watches
REFUSED_METRIC: Final = "CompositionBudgetRefused"  # each start refused by ``block``


def refused(services: Services, now: datetime) -> str | None:
    """Why ``block`` refuses a composition start now, or None (no budget, ``alert``, or hours left)."""
    budget = services.settings.composition_hours
    if budget is None or not budget.blocks:
        return None
    return refusal(CompositionHours(services.table).figure(utc_day(now)), budget, now)


def count_end(services: Services, summary: CompositionSummary, ended_at: datetime) -> None:
    """A stagepilot composition ended (its event): its hours go to the day's figure, once."""
    owned = managed_attempt(dict(summary.tags))
    if services.settings.composition_hours is None or owned is None or summary.start_time is None:
        return
    CompositionHours(services.table).count_ended(
        stage_arn=summary.stage_arn,
        session_id=owned[0],
        composition_arn=summary.arn,
        started_at=summary.start_time,
        ended_at=summary.end_time or ended_at,
    )


def keep_the_day(services: Services, compositions: list[CompositionSummary], now: datetime) -> None:
    """The pass's part (module docstring): a few writes per pass, whatever the fleet's size."""
    budget = services.settings.composition_hours
    if budget is None:
        return
    hours = CompositionHours(services.table)
    day = utc_day(now)
    counted: set[str] = set()
    live: dict[str, Listed] = {}
    for composition in compositions:
        owned = managed_attempt(dict(composition.tags))
        if owned is None:
            continue  # not stagepilot's: reported by status, never counted (docs/policy.md)
        ident = composition_id(composition.arn)
        if composition.active:
            live[ident] = Listed(composition.start_time or now, composition.stage_arn, owned[0])
        elif composition.end_time is not None and composition.start_time is not None:
            hours.count_ended(
                stage_arn=composition.stage_arn,
                session_id=owned[0],
                composition_arn=composition.arn,
                started_at=composition.start_time,
                ended_at=composition.end_time,
            )
            counted.add(ident)
    before, listed_before = hours.record_live(day, live, now=now, budget=budget)
    for ident, gone in before.items():
        if ident in live or ident in counted:
            continue
        # Listed live by an earlier pass, in no listing now, its end counted by nobody (its event lost, and
        # IVS no longer lists it): counted up to the last listing that showed it live.
        if not hours.count_ended(
            stage_arn=gone.stage_arn,
            session_id=gone.session_id,
            composition_arn=ident,
            started_at=gone.started_at,
            ended_at=min(listed_before or now, now),
        ):
            hours.forget_live(day, ident)
    figure = hours.figure(day)
    if figure.spent_at is None and spent(figure, budget, now) and hours.mark_spent(day, now):
        services.metrics.count(SPENT_METRIC)
        logger.warning(
            "the day's composition hours are spent",
            extra={
                "day": day.isoformat(),
                "hours": round(figure.hours(now), 2),
                "limit": budget.limit,
                "mode": budget.mode,
            },
        )
