"""What stagepilot costs a month for 100 and 1,000 stages (issue 24, item 7): measured work × AWS prices.

Measured (passed in from the other benchmarks of the same run, ``make bench``): AWS calls per event by
operation and deliveries per event (``work_per_event``, the 100-stage show), each delivery's duration as
deployed and the custom metrics the functions publish (``latency``, on the virtual clock with the deployed
call latencies and pacers), and the DynamoDB request units every call is charged from the sizes of the items
it reads and writes (``request_units``: the same show, and converged passes at each fleet size with the pass
log at its full length). Assumed, and said: how long stages are live and how many events a live stage
makes, the log bytes, Lambda's idle SQS polls, and the pass's duration (docs/performance.md §5a measured it
near its deadline whenever stages are live).

Prices: us-east-1, on-demand, without the free tier (each cited at its constant). Everything is per month
of ``DAYS`` days. ``python -m benchmarks.cost`` prints the table from ``benchmarks/results.json``.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from benchmarks import cli
from benchmarks.item_sizes import STORAGE_OVERHEAD_BYTES, read_units
from stagepilot.adapters.changes import FORCED_LIFETIMES
from stagepilot.adapters.policies import PolicyStore
from stagepilot.config import DEFAULT_POLICY_CACHE_SECONDS
from stagepilot.pipeline import EffectivePolicies

# --- assumptions ------------------------------------------------------------------------------------
DAYS = 30
LIVE_HOURS_PER_DAY = 8  # every stage live 8 hours a day (issue 24's figure); the pass runs all 24
EVENTS_PER_STAGE_HOUR = 20  # IVS events of one live stage: a handful of publishers coming and going, the
# composition's and recordings' state changes (the 100-stage show has 8 per stage in 40 minutes)
FLEETS = (100, 1000)
FUNCTION_MEMORY_GB = 0.5  # infra/pipeline.py FUNCTION_MEMORY_MB, every function
PASS_PERIOD_SECONDS = 60  # the schedule's rate(1 minute)
# The pass while stages are live: it runs until its deadline whenever more stages are live than one pass
# examines (about 50 at the bound's ListParticipants pace, docs/performance.md §3; §5a: 50.9-56.0 s).
PASS_LIVE_SECONDS = 55.0
# The pass with no stage live: ListStages pages (100 stages each) at one call a 1.2-s window, plus its
# DynamoDB reads and the invocation itself.
PASS_IDLE_BASE_SECONDS = 0.5
PASS_IDLE_SECONDS_PER_PAGE = 1.2
# DynamoDB: the request units measured per event on the 100-stage show, and per pass at each fleet size
# (benchmarks/request_units.py). Apart from those, each busy container reads the policies once per lifetime
# of its cache: the change mark (one consistent GetItem, measured) every lifetime, and a snapshot of every
# policy and pause switch (a Query page of each partition, two of policies past about 750 policies; their size
# measured per policy, scaled to the fleet; strongly consistent) when the mark changed or every
# FORCED_LIFETIMES lifetimes (adapters/changes.py; policy changes are not counted), or, when the policies do
# not fit the snapshot's PolicyStore.SNAPSHOT_PAGES, each stage on its own (``policy_cache_read_units``).
SNAPSHOT_LIFETIME_SECONDS = DEFAULT_POLICY_CACHE_SECONDS
QUERY_PAGE_BYTES = 1024 * 1024  # "A Query operation can retrieve a maximum of 1 MB of data" (before a filter)
EVENT_CONTAINERS = 6  # 2 per automation (budget.CONCURRENCY), all busy while stages are live
AUDIT_RETENTION_DAYS = 90  # adapters/audit.py AUDIT_RETENTION
# Logs: a delivery's decision line (~0.8 KB of Powertools JSON), its share of the metrics blob (~0.5 KB) and
# Lambda's START/END/REPORT lines (~0.35 KB); a pass logs a line per stage it examines.
LOG_KB_PER_DELIVERY = 1.65
LOG_KB_PER_PASS_STAGE = 0.8
# Lambda's SQS pollers long-poll an empty queue all the time; AWS does not say how many pollers an idle
# event source keeps: assumed 5, each one 20-s receive after another, per queue.
IDLE_POLLERS_PER_QUEUE = 5
EVENT_QUEUES = 3
SQS_REQUESTS_PER_DELIVERY = 3  # EventBridge's SendMessage, the poller's receive and its delete
ALARM_METRICS = 27  # 24 alarms in the template, three of them metric math over 2 metrics each
KMS_KEYS = 2  # the alarm topic's key, the door's signing key (the CLI creates it; docs/door.md)

# --- prices, us-east-1 --------------------------------------------------------------------------------
# https://aws.amazon.com/lambda/pricing/ (Arm: $0.0000133334 per GB-s for the first 7.5 billion; $0.20 per 1M)
LAMBDA_GB_SECOND = 0.0000133334
LAMBDA_PER_MILLION = 0.20
# https://aws.amazon.com/dynamodb/pricing/on-demand/ (since November 2024: $0.625 per million write request
# units, $0.125 per million read request units; storage $0.25 per GB-month, point-in-time recovery $0.20)
DDB_WRU_PER_MILLION = 0.625
DDB_RRU_PER_MILLION = 0.125
DDB_GB_MONTH = 0.25 + 0.20
# https://aws.amazon.com/sqs/pricing/ (standard queues: $0.40 per million requests)
SQS_PER_MILLION = 0.40
# https://aws.amazon.com/eventbridge/pricing/ (events from AWS services and scheduled rules on the default
# bus: no charge; custom events $1.00 per million: only flags, not counted here)
# https://aws.amazon.com/cloudwatch/pricing/ (custom metrics $0.30 per metric-month, "prorated by the hour";
# alarms $0.10 per standard-resolution alarm metric; logs $0.50 per GB ingested; a dashboard $3.00)
CW_METRIC_MONTH = 0.30
CW_ALARM_METRIC = 0.10
CW_LOG_GB = 0.50
CW_DASHBOARD = 3.00
# https://aws.amazon.com/kms/pricing/ ($1.00 per key-month; the door's Sign requests are per token issued,
# not counted here)
KMS_KEY_MONTH = 1.00


def monthly(stages: int, work: dict[str, Any], latency: dict[str, Any], units: dict[str, Any]) -> dict[str, Any]:
    """Dollars per month by service for ``stages`` stages, from the measured ``work`` (work_per_event's
    100-stage show), ``latency`` (its new-stages run) and ``units`` (request_units.run(): the DynamoDB request
    units of the same show and of the pass at this fleet size)."""
    live_hours = LIVE_HOURS_PER_DAY * DAYS
    events = stages * EVENTS_PER_STAGE_HOUR * live_hours
    deliveries_per_event = work["deliveries"] / work["events"]
    deliveries = events * deliveries_per_event

    # Lambda: the event path (each delivery's measured duration), the pass every minute.
    automations = ("composition", "replication", "moderation")
    measured = sum(latency[a]["deliveries"] for a in automations)
    mean_delivery = sum(latency[a]["deliveries"] * latency[a]["delivery_mean_seconds"] for a in automations) / measured
    pages = math.ceil(stages / 100)
    idle_pass = PASS_IDLE_BASE_SECONDS + PASS_IDLE_SECONDS_PER_PAGE * pages
    passes_live = live_hours * 3600 / PASS_PERIOD_SECONDS
    passes_idle = (24 - LIVE_HOURS_PER_DAY) * DAYS * 3600 / PASS_PERIOD_SECONDS
    event_seconds = deliveries * mean_delivery
    pass_seconds = passes_live * PASS_LIVE_SECONDS + passes_idle * idle_pass
    lambda_cost = (event_seconds + pass_seconds) * FUNCTION_MEMORY_GB * LAMBDA_GB_SECOND + (
        deliveries + passes_live + passes_idle
    ) / 1e6 * LAMBDA_PER_MILLION

    dynamodb = dynamodb_units(
        stages, units, events=events, deliveries=deliveries, passes_live=passes_live, passes_idle=passes_idle
    )
    dynamodb_cost = (
        dynamodb["read_units"] / 1e6 * DDB_RRU_PER_MILLION
        + dynamodb["write_units"] / 1e6 * DDB_WRU_PER_MILLION
        + dynamodb["audit_stored_gb"] * DDB_GB_MONTH
    )
    pass_log_cost = dynamodb["pass_log_write_units"] / 1e6 * DDB_WRU_PER_MILLION

    idle_polls = EVENT_QUEUES * IDLE_POLLERS_PER_QUEUE * (DAYS * 24 * 3600 / 20)
    sqs_cost = (deliveries * SQS_REQUESTS_PER_DELIVERY + idle_polls) / 1e6 * SQS_PER_MILLION

    # CloudWatch: a custom metric costs the hours it was published in; EventActed/EventSkipped come from all
    # three functions (a metric per function), the others from one. Every one is published only when
    # something happens, so only in live hours.
    names = latency["metric_names"]
    metrics = len(names) + 2 * sum(1 for n in names if n in ("EventActed", "EventSkipped"))
    metric_cost = metrics * CW_METRIC_MONTH * LIVE_HOURS_PER_DAY / 24
    examined_per_live_pass = min(stages, 50)
    log_gb = (deliveries * LOG_KB_PER_DELIVERY + passes_live * examined_per_live_pass * LOG_KB_PER_PASS_STAGE) / 1e6
    cloudwatch_cost = metric_cost + ALARM_METRICS * CW_ALARM_METRIC + log_gb * CW_LOG_GB + CW_DASHBOARD

    costs = {
        "lambda": lambda_cost,
        "dynamodb": dynamodb_cost,
        "sqs": sqs_cost,
        "eventbridge": 0.0,
        "cloudwatch": cloudwatch_cost,
        "kms": KMS_KEYS * KMS_KEY_MONTH,
    }
    costs["total"] = sum(costs.values())
    costs.update(
        events=events,
        deliveries=deliveries,
        lambda_event_gb_seconds=event_seconds * FUNCTION_MEMORY_GB,
        lambda_pass_gb_seconds=pass_seconds * FUNCTION_MEMORY_GB,
        pass_share_of_lambda=pass_seconds / (event_seconds + pass_seconds),
        mean_delivery_seconds=mean_delivery,
        custom_metrics=metrics,
        log_gb=log_gb,
        read_units_millions=dynamodb["read_units"] / 1e6,
        write_units_millions=dynamodb["write_units"] / 1e6,
        dynamodb_units_millions={part: value / 1e6 for part, value in dynamodb.items() if part.endswith("_units")},
        audit_stored_gb=dynamodb["audit_stored_gb"],
        pass_log=pass_log_cost,
        pass_log_share_of_dynamodb=pass_log_cost / dynamodb_cost,
        pass_log_share_of_total=pass_log_cost / costs["total"],
    )
    return costs


def dynamodb_units(
    stages: int,
    units: dict[str, Any],
    *,
    events: float,
    deliveries: float,
    passes_live: float,
    passes_idle: float,
) -> dict[str, float]:
    """The month's DynamoDB read and write request units for ``stages`` stages, by part, and the audit trail's
    storage, from the measured ``units`` (request_units.run()): the show's units per event, its policy-cache
    reads left out (counted per container lifetime at this fleet's size), and the pass's per pass on a fleet
    of this size, idle and live (its policy reads likewise at this fleet's size)."""
    show = units["show100"]
    live_hours = LIVE_HOURS_PER_DAY * DAYS
    lifetimes = EVENT_CONTAINERS * live_hours * 3600 / SNAPSHOT_LIFETIME_SECONDS
    # the stages a busy container reads in one lifetime: its deliveries name stages at random
    per_lifetime = deliveries / lifetimes
    stages_a_lifetime = stages * (1 - math.exp(-per_lifetime / stages))
    cache_reads = policy_cache_read_units(stages, show, lifetimes=lifetimes, stages_a_lifetime=stages_a_lifetime)
    event_reads = events * show["other_read_units"] / show["events"]
    event_writes = events * show["write_units"] / show["events"]
    # the pass: measured on a fleet of this size under the default policy only; the policies it reads are the
    # fleet's: all of them once a pass (the recording settings' check: every page), and its own policy cache
    measured = units["passes"][str(stages)]
    pass_reads = pass_writes = pass_log_writes = 0.0
    for state, passes in (("live", passes_live), ("idle", passes_idle)):
        one = measured[state]["per_pass"]
        examined = measured[state]["stages_reached_per_pass"]
        policy_reads = one["change_mark_read_units"] + one["snapshot_read_units"] + one["policy_lookup_read_units"]
        own_lifetimes = PASS_PERIOD_SECONDS / SNAPSHOT_LIFETIME_SECONDS
        cache = (
            policy_cache_read_units(stages, show, lifetimes=own_lifetimes, stages_a_lifetime=examined / own_lifetimes)
            if examined >= EffectivePolicies.SNAPSHOT_FROM_STAGES
            else 0.0
        )
        pass_reads += passes * (one["read_units"] - policy_reads + full_snapshot_read_units(stages, show) + cache)
        pass_writes += passes * one["write_units"]
        log = measured[state]["by_kind"].get("pass log", {"write_units": 0.0})
        pass_log_writes += passes * log["write_units"] / measured[state]["passes"]
    # the audit trail, kept AUDIT_RETENTION_DAYS: each entry (its measured size, and the storage overhead) twice,
    # in the table and in the audit index (projection ALL)
    audit = show["by_kind"].get("audit entry", {"items": 0, "mean_bytes": 0.0})
    entries = events * audit["items"] / show["events"]
    audit_gb = entries * 2 * (audit["mean_bytes"] + STORAGE_OVERHEAD_BYTES) * (AUDIT_RETENTION_DAYS / DAYS) / 1e9
    return {
        "read_units": event_reads + cache_reads + pass_reads,
        "write_units": event_writes + pass_writes,
        "event_path_read_units": event_reads,
        "event_path_write_units": event_writes,
        "policy_cache_read_units": cache_reads,
        "pass_read_units": pass_reads,
        "pass_write_units": pass_writes,
        "pass_log_write_units": pass_log_writes,
        "audit_stored_gb": audit_gb,
        "policies_fit_the_snapshot": float(snapshot_fits(stages, show)),
    }


def policies_bytes(stages: int, show: dict[str, Any]) -> int:
    """Every policy of a fleet of ``stages`` stages, each the size of the show's (the default too)."""
    return round(stages * show["policy_item_bytes"] + show["default_policy_bytes"])


def snapshot_pages(stages: int, show: dict[str, Any]) -> int:
    """The Query pages of a container's snapshot: the policies' and the pause switches' (1 MB each at most)."""
    return max(1, math.ceil(policies_bytes(stages, show) / QUERY_PAGE_BYTES)) + max(
        1, math.ceil(show["pause_partition_bytes"] / QUERY_PAGE_BYTES)
    )


def snapshot_fits(stages: int, show: dict[str, Any]) -> bool:
    """Whether a container's snapshot can read every policy: within ``PolicyStore.SNAPSHOT_PAGES`` pages of both
    partitions together (adapters/policies.py)."""
    return snapshot_pages(stages, show) <= PolicyStore.SNAPSHOT_PAGES


def snapshot_read_units(stages: int, show: dict[str, Any]) -> float:
    """A container's snapshot: every policy and every pause switch, each page strongly consistent."""
    return read_units(policies_bytes(stages, show), consistent=True) + read_units(
        show["pause_partition_bytes"], consistent=True
    )


def full_snapshot_read_units(stages: int, show: dict[str, Any]) -> float:
    """Every policy and every pause switch, however many pages (eventually consistent Query calls)."""
    return read_units(policies_bytes(stages, show)) + read_units(show["pause_partition_bytes"])


def policy_cache_read_units(stages: int, show: dict[str, Any], *, lifetimes: float, stages_a_lifetime: float) -> float:
    """What a busy container's policy cache reads over ``lifetimes`` lifetimes (pipeline.EffectivePolicies).
    When the policies fit the snapshot's pages (``PolicyStore.SNAPSHOT_PAGES``, both partitions together): the
    change mark every lifetime, a snapshot (strongly consistent) every ``FORCED_LIFETIMES`` (the mark
    unchanged). When they do not: the policies' pages read and given up every ``SNAPSHOT_RETRY_LIFETIMES``
    (with the mark), and meanwhile each stage on its own every lifetime (one ``BatchGetItem``: its policy, the
    default, its pause switch and the default's)."""
    mark = show["change_mark_read_units"] / show["change_mark_reads"] if show["change_mark_reads"] else 1.0
    if snapshot_fits(stages, show):
        return lifetimes * (mark + snapshot_read_units(stages, show) / FORCED_LIFETIMES)
    lookup = read_units(round(show["policy_item_bytes"])) + read_units(show["default_policy_bytes"]) + 2 * read_units(0)
    retry = EffectivePolicies.SNAPSHOT_RETRY_LIFETIMES
    given_up = read_units((PolicyStore.SNAPSHOT_PAGES - 1) * QUERY_PAGE_BYTES, consistent=True)  # the policies' pages
    return lifetimes * ((mark + given_up) / retry + stages_a_lifetime * lookup)


def run(work: dict[str, Any], latency: dict[str, Any], units: dict[str, Any]) -> dict[str, Any]:
    """``work``: work_per_event's ``show100``; ``latency``: latency.run()'s ``new_stages``; ``units``:
    request_units.run()."""
    return {
        "assumptions": {
            "days": DAYS,
            "live_hours_per_day": LIVE_HOURS_PER_DAY,
            "events_per_stage_hour": EVENTS_PER_STAGE_HOUR,
            "pass_live_seconds": PASS_LIVE_SECONDS,
        },
        **{str(stages): monthly(stages, work, latency, units) for stages in FLEETS},
    }


def main(argv: list[str] | None = None) -> int:
    cli.parser(
        "benchmarks.cost", __doc__, more="Prints the table from the figures in benchmarks/results.json (make bench)."
    ).parse_args(argv)
    results = json.loads((Path(__file__).resolve().parent / "results.json").read_text())
    missing = [key for key in ("latency", "work_per_event", "request_units") if key not in results]
    if missing:
        sys.exit(f"benchmarks/results.json has no {' or '.join(missing)} figures yet: run make bench first")
    work, latency = results["work_per_event"]["show100"], results["latency"]["new_stages"]
    print(json.dumps(run(work, latency, results["request_units"]), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
