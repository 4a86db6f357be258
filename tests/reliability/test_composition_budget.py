"""The fleet's composition budget (docs/policy.md, "The fleet's composition budget"; issue 28): the stack
context ``compositionHoursPerDay`` counts the composition hours of what stagepilot started per UTC day;
``block`` refuses the next start once they are spent (audited ``budget``) until the next UTC day, and
``CompositionBudgetAlarm`` fires once (its metric, ``CompositionBudgetSpent``, is counted once a day)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from stagepilot.adapters.composition_hours import CompositionHours
from stagepilot.config import Settings
from stagepilot.decisions.composition_hours import parse_composition_hours, utc_day
from stagepilot.local.deployment import TABLE_NAME, LocalDeployment
from tests.support import ACCOUNT, ENCODER, OTHER_STAGE, REGION, STAGE, STORAGE, T0, EventFactory, later, put_policy

PASS = timedelta(seconds=60)
S3 = {"name": "archive", "s3": {"storageConfigurationArn": STORAGE, "encoderConfigurationArns": [ENCODER]}}
OTHER_SESSION = "st-OtherSession1"
MIDNIGHT = datetime(2026, 11, 22, tzinfo=T0.tzinfo)  # T0 is 20:00 UTC on the 21st


def budgeted(make_deployment: Any, budget: dict[str, Any], windows: list[tuple[datetime, datetime]]) -> LocalDeployment:
    """The pass every minute within ``windows``, every hour outside (a pass costs most of a second of CPU
    on moto); both stages compose to S3."""
    settings = Settings(
        table_name=TABLE_NAME,
        policy_cache_seconds=30.0,
        account=ACCOUNT,
        region=REGION,
        composition_hours=parse_composition_hours(budget),
    )
    deployment: LocalDeployment = make_deployment(reconcile_seconds=None, settings=settings)

    def scheduled_pass() -> None:
        now = deployment.clock()
        on_the_hour = (now - T0) % timedelta(hours=1) == timedelta(0)
        if on_the_hour or any(start <= now < end for start, end in windows):
            deployment.scheduled_pass()  # beside the world, as the schedule invokes it

    deployment.every(PASS, scheduled_pass, first=T0 + PASS)
    for stage in (STAGE, OTHER_STAGE):
        put_policy(deployment, {"stageArn": stage, "composition": {"destinations": [S3]}})
    return deployment


def starts(deployment: LocalDeployment, stage: str) -> list[Any]:
    return [
        c
        for c in deployment.ivs.mutating_calls()
        if c.operation == "StartComposition" and c.params["stageArn"] == stage
    ]


def audited(deployment: LocalDeployment, stage: str, action: str) -> list[dict[str, Any]]:
    return [e for e in deployment.services.audit.list(stage, limit=500) if e.get("action") == action]


def test_block_refuses_the_next_start_once_the_days_hours_are_spent_and_the_alarm_fires_once(
    make_deployment: Any, events: EventFactory
) -> None:
    spent_at = T0 + timedelta(hours=1)
    deployment = budgeted(
        make_deployment,
        {"limit": 1, "mode": "block"},
        windows=[(spent_at - 3 * PASS, spent_at + 10 * PASS), (MIDNIGHT - 2 * PASS, MIDNIGHT + 5 * PASS)],
    )
    deployment.put_event(events.published("encoder"))  # one stage composes from T0 and runs on
    deployment.run_until(spent_at + 5 * PASS)
    assert deployment.metrics.counts.get("CompositionBudgetSpent") == 1  # the pass after 20:59 found it spent

    other = {"stage": OTHER_STAGE, "session": OTHER_SESSION}
    deployment.put_event(events.published("guest", at=spent_at + 6 * PASS, **other))
    deployment.put_event(events.published("guest-2", at=spent_at + 7 * PASS, **other))  # another: asks nothing
    deployment.run_until(MIDNIGHT - PASS)

    assert starts(deployment, OTHER_STAGE) == []  # refused by the event path and by every pass since
    [refusal] = audited(deployment, OTHER_STAGE, "budget")  # audited once for the session and the day
    assert "compositionHoursPerDay" in refusal["reason"] and refusal["details"]["day"] == "2026-11-21"
    assert deployment.metrics.counts.get("CompositionBudgetSpent") == 1  # the alarm's metric: once, all day
    assert len(starts(deployment, STAGE)) == 1  # block refuses starts; it stops nothing that runs
    figure = CompositionHours(deployment.table).figure(utc_day(T0))
    assert figure.hours(MIDNIGHT) == pytest.approx(4.0, abs=0.02)  # 20:00 to midnight, one composition

    deployment.run_until(MIDNIGHT + 3 * PASS)  # the next UTC day: the pass starts what was refused
    [start] = starts(deployment, OTHER_STAGE)
    assert MIDNIGHT <= start.time <= MIDNIGHT + 2 * PASS and start.trigger == "reconcile"
    [healed] = audited(deployment, OTHER_STAGE, "healed")
    assert healed["details"]["healReason"] == "budget"
    assert "HealedEventLost" not in deployment.metrics.counts


def test_alert_refuses_nothing_and_counts_the_spent_day_once(make_deployment: Any, events: EventFactory) -> None:
    spent_at = T0 + timedelta(minutes=30)
    deployment = budgeted(
        make_deployment, {"limit": 0.5, "mode": "alert"}, windows=[(spent_at - 3 * PASS, spent_at + 10 * PASS)]
    )
    deployment.put_event(events.published("encoder"))
    deployment.run_until(spent_at + 5 * PASS)
    deployment.put_event(events.published("guest", at=spent_at + 6 * PASS, stage=OTHER_STAGE, session=OTHER_SESSION))
    deployment.run_until(spent_at + 10 * PASS)

    assert len(starts(deployment, OTHER_STAGE)) == 1
    assert audited(deployment, OTHER_STAGE, "budget") == []
    assert deployment.metrics.counts.get("CompositionBudgetSpent") == 1


@pytest.mark.parametrize("end", ["delivered-twice", "lost"])
def test_an_ended_composition_is_counted_once_whoever_sees_its_end(
    make_deployment: Any, events: EventFactory, end: str
) -> None:
    """The Session End event, its duplicate and the passes that list the ended composition count it once;
    with its event lost, the passes count it (no stage is live then: everyone left)."""
    deployment = budgeted(make_deployment, {"limit": 100, "mode": "block"}, windows=[(T0, T0 + timedelta(hours=1))])
    deployment.put_event(events.published("host"))
    deployment.run_until(later(600))
    if end == "lost":
        deployment.lose_emitted("Session End", stage_arn=STAGE)
    deployment.ivs.leave(STAGE, "host")  # IVS stops the composition a minute later (Session End)
    deployment.run_until(later(900))
    if end == "delivered-twice":
        [ended] = [e for e in deployment.ivs.events if e["detail"].get("event_name") == "Session End"]
        deployment.put_event(ended)
    deployment.run_until(later(1800))

    [composition] = deployment.ivs.compositions(STAGE, include_deleted=True)
    assert composition.end_time is not None
    ran = (composition.end_time - composition.start_time).total_seconds()
    figure = CompositionHours(deployment.table).figure(utc_day(T0))
    assert figure.live == {}
    assert figure.ended_seconds == pytest.approx(ran, abs=1)
