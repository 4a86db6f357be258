"""What stagepilot costs a month for 100 and 1,000 stages (issue 24, item 7): measured work × AWS prices.

Measured (passed in from the other benchmarks of the same run, ``make bench``): AWS calls per event by
operation and deliveries per event (``work_per_event``, the 100-stage show), each delivery's duration as
deployed and the custom metrics the functions publish (``latency``, on the virtual clock with the deployed
call latencies and pacers). Assumed, and said: how long stages are live and how many events a live stage
makes, the request units of each DynamoDB call, the log bytes, Lambda's idle SQS polls, and the pass's
duration (docs/performance.md §5a measured it near its deadline whenever stages are live).

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
# DynamoDB request units per call (items under 1 KB; reads eventually consistent, adapters/dynamo.py's
# default: half a unit per 4 KB): a BatchGetItem reads about 3 items (the stage's policy, the default, a pause
# switch or a publisher), a transaction writes 2 items at twice the rate. A policy snapshot (2 Query per
# container per 30-s lifetime while busy) reads every policy: about 1 KB each.
RRU_PER_CALL = {"GetItem": 0.5, "BatchGetItem": 1.5}
WRU_PER_CALL = {"PutItem": 1, "UpdateItem": 1, "DeleteItem": 1, "TransactWriteItems": 4, "BatchWriteItem": 2}
POLICY_KB = 1.0
SNAPSHOT_LIFETIME_SECONDS = 30  # config.DEFAULT_POLICY_CACHE_SECONDS
EVENT_CONTAINERS = 6  # 2 per automation (budget.CONCURRENCY), all busy while stages are live
PASS_TABLE_CALLS_PER_STAGE = 1.03  # a converged pass: 103 calls for 100 live stages (§5): ban reads
AUDIT_KB_PER_ACTION = 1.0
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


def monthly(stages: int, work: dict[str, Any], latency: dict[str, Any]) -> dict[str, float]:
    """Dollars per month by service for ``stages`` stages, from the measured ``work`` (work_per_event's
    100-stage show) and ``latency`` (its new-stages run)."""
    live_hours = LIVE_HOURS_PER_DAY * DAYS
    events = stages * EVENTS_PER_STAGE_HOUR * live_hours
    per_event = {op: n / work["events"] for op, n in work["by_operation"].items()}
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

    # DynamoDB: the event path's calls by operation, the snapshots, the pass, the audit kept 90 days.
    rru = wru = 0.0
    for op, n in per_event.items():
        service, name = op.split(":", 1)
        if service != "dynamodb" or name == "Query":  # snapshots: below, per container lifetime
            continue
        rru += events * n * RRU_PER_CALL.get(name, 0)
        wru += events * n * WRU_PER_CALL.get(name, 0)
    snapshot_units = 2 * max(0.5, stages * POLICY_KB / 4 / 2)
    rru += EVENT_CONTAINERS * live_hours * 3600 / SNAPSHOT_LIFETIME_SECONDS * snapshot_units
    examined_per_live_pass = min(stages, 50)
    rru += passes_live * (snapshot_units + examined_per_live_pass * PASS_TABLE_CALLS_PER_STAGE)
    rru += passes_idle * snapshot_units
    wru += (passes_live + passes_idle) * 2  # the pass's cursor and its log
    actions = events * sum(n for op, n in per_event.items() if op.split(":")[1] in _ACTIONS)
    stored_gb = actions * AUDIT_KB_PER_ACTION * (AUDIT_RETENTION_DAYS / DAYS) / 1e6
    dynamodb_cost = rru / 1e6 * DDB_RRU_PER_MILLION + wru / 1e6 * DDB_WRU_PER_MILLION + stored_gb * DDB_GB_MONTH

    idle_polls = EVENT_QUEUES * IDLE_POLLERS_PER_QUEUE * (DAYS * 24 * 3600 / 20)
    sqs_cost = (deliveries * SQS_REQUESTS_PER_DELIVERY + idle_polls) / 1e6 * SQS_PER_MILLION

    # CloudWatch: a custom metric costs the hours it was published in; EventActed/EventSkipped come from all
    # three functions (a metric per function), the others from one. Every one is published only when
    # something happens, so only in live hours.
    names = latency["metric_names"]
    metrics = len(names) + 2 * sum(1 for n in names if n in ("EventActed", "EventSkipped"))
    metric_cost = metrics * CW_METRIC_MONTH * LIVE_HOURS_PER_DAY / 24
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
        read_units_millions=rru / 1e6,
        write_units_millions=wru / 1e6,
    )
    return costs


_ACTIONS = ("StartComposition", "StartParticipantReplication", "DisconnectParticipant")


def run(work: dict[str, Any], latency: dict[str, Any]) -> dict[str, Any]:
    """``work``: work_per_event's ``show100``; ``latency``: latency.run()'s ``new_stages``."""
    return {
        "assumptions": {
            "days": DAYS,
            "live_hours_per_day": LIVE_HOURS_PER_DAY,
            "events_per_stage_hour": EVENTS_PER_STAGE_HOUR,
            "pass_live_seconds": PASS_LIVE_SECONDS,
        },
        **{str(stages): monthly(stages, work, latency) for stages in FLEETS},
    }


def main(argv: list[str] | None = None) -> int:
    cli.parser(
        "benchmarks.cost", __doc__, more="Prints the table from the figures in benchmarks/results.json (make bench)."
    ).parse_args(argv)
    results = json.loads((Path(__file__).resolve().parent / "results.json").read_text())
    if "latency" not in results or "work_per_event" not in results:
        sys.exit("benchmarks/results.json has no latency or work_per_event figures yet: run make bench first")
    print(json.dumps(run(results["work_per_event"]["show100"], results["latency"]["new_stages"]), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
