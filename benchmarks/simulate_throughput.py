"""``stagepilot simulate`` throughput: events per second at 1k, 5k and 20k events, and how it scales.

The scenario grows with the number of stages (each: a host and two guests publish and unpublish, a flag),
so the stand-in's world grows with the events, as a long simulated show's does. Target: linear, i.e. 20k
events take at most 4.5× the time of 5k (docs/performance.md).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from benchmarks import cli

ACCOUNT, REGION = "123456789012", "us-east-1"
EVENTS_PER_STAGE = 8


def scenario(events: int) -> tuple[list[Any], Any]:
    """The policies and the parsed scenario of ``events`` events."""
    from stagepilot.local.simulate import read_scenario
    from stagepilot.policy import parse_policy

    stages = max(1, events // EVENTS_PER_STAGE)
    start = datetime(2026, 11, 21, 20, 0, tzinfo=UTC)
    lines = []
    for n in range(stages):
        arn = f"arn:aws:ivs:{REGION}:{ACCOUNT}:stage/Sim{n:06d}"
        session = f"st-Sim{n:06d}Sess"
        at = start + timedelta(seconds=n)
        people = [(f"host{n}", "host"), (f"guestA{n}", "guest-a"), (f"guestB{n}", "guest-b")]
        for k, (pid, user) in enumerate(people):
            lines.append(_event(arn, session, "Participant Published", pid, user, at + timedelta(seconds=k)))
        lines.append(_flag(arn, session, f"guestA{n}", at + timedelta(seconds=10)))
        for k, (pid, user) in enumerate(people):
            lines.append(_event(arn, session, "Participant Unpublished", pid, user, at + timedelta(seconds=600 + k)))
        lines.append(
            _event(arn, session, "Participant Publish Error", f"guestB{n}", "guest-b", at + timedelta(seconds=601))
        )
    policies = [
        parse_policy(
            {
                "stageArn": "default",
                "moderation": {"blockedUserIds": ["troll"], "flagLimit": {"count": 2, "windowSeconds": 60}},
            }
        )
    ]
    return policies, read_scenario("\n".join(json.dumps(line) for line in lines[:events]))


def _event(arn: str, session: str, name: str, pid: str, user: str, at: datetime) -> dict[str, Any]:
    return {
        "version": "0",
        "id": f"{arn[-9:]}-{pid}-{name[12:16]}-{at:%H%M%S}",
        "detail-type": "IVS Stage Update",
        "source": "aws.ivs",
        "account": ACCOUNT,
        "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [arn],
        "detail": {"session_id": session, "event_name": name, "user_id": user, "participant_id": pid},
    }


def _flag(arn: str, session: str, pid: str, at: datetime) -> dict[str, Any]:
    return {
        "version": "0",
        "id": f"{arn[-9:]}-{pid}-flag",
        "detail-type": "Participant Flagged",
        "source": "stagepilot.moderation",
        "account": ACCOUNT,
        "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [],
        "detail": {"stage_arn": arn, "session_id": session, "participant_id": pid},
    }


def run(sizes: tuple[int, ...] = (1000, 5000, 20000)) -> dict[str, Any]:
    import logging

    from stagepilot.local.simulate import simulate

    logging.disable(logging.WARNING)
    results: dict[str, Any] = {}
    for size in sizes:
        policies, parsed = scenario(size)
        started = time.perf_counter()
        simulate(policies, parsed, reconcile_seconds=0, settle_seconds=60)
        seconds = time.perf_counter() - started
        results[str(size)] = {"events": len(parsed.lines), "seconds": seconds, "events_per_second": size / seconds}
    if "5000" in results and "20000" in results:
        results["ratio_20k_to_5k"] = results["20000"]["seconds"] / results["5000"]["seconds"]
    return results


def main(argv: list[str] | None = None) -> int:
    parser = cli.parser("benchmarks.simulate_throughput", __doc__)
    cli.counts_argument(parser, "EVENTS", default=(1000, 5000, 20000), what="events in a run, one run each")
    sizes = tuple(parser.parse_args(argv).events)
    print(json.dumps(run(sizes), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
