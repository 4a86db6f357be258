"""How many passes the convergence pass needs to examine every live stage, with time passing as deployed.

``python -m benchmarks.pass_coverage [100 300 1000]``: a fleet of N live stages under the ``default``
policy (moderation with ``blockedAttributes``, so every publisher's token attributes matter), each with
two publishers whose publish events were lost; one publisher in 50 has a blocked attribute and must be
disconnected by the pass. Passes run one period (60 s) apart on a virtual clock, each with the Lambda's
60-second deadline (``run_pass(remaining_ms=...)``). Time passes per call, advanced by this benchmark
itself (IVS 100 ms, DynamoDB 10 ms: the middle of docs/simulate.md's ranges) and by the IVS adapter's own
pacing at the convergence pass's slice of each operation (``stagepilot.budget``), slept on the same
virtual clock. It reports, per fleet size, the passes until every live stage was examined, each pass's
virtual duration against the timeout, and the IVS calls per pass; then (``no-deadline``) the same first
pass without a deadline: how long it runs (the read budget of 120 participant listings still applies).
Scenario ``user-ids``: the same fleet whose default policy blocks by user id only (no GetParticipant).
"""

from __future__ import annotations

import argparse
import math
import os
from datetime import UTC, datetime, timedelta
from typing import Any

from benchmarks import cli

ACCOUNT, REGION = "123456789012", "us-east-1"
PERIOD = timedelta(seconds=60)  # reconcileMinutes = 1
TIMEOUT_MS = 60_000  # the convergence function's timeout (infra/pipeline.py FUNCTION_TIMEOUT)
IVS_LATENCY = timedelta(milliseconds=100)
DYNAMODB_LATENCY = timedelta(milliseconds=10)
BLOCKED_EVERY = 50  # one publisher in this many has tier=suspended
MAX_PASSES = 60


class _Timed:
    """A boto3 client whose every call takes ``latency`` of virtual time."""

    def __init__(self, client: Any, clock: Any, latency: timedelta, counter: dict[str, int]) -> None:
        self._client, self._clock, self._latency, self._counter = client, clock, latency, counter

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._client, name)
        if not callable(real) or name.startswith("_") or name in ("meta", "exceptions", "can_paginate"):
            return real

        def call(*args: Any, **kwargs: Any) -> Any:
            self._clock.advance_to(self._clock() + self._latency)
            self._counter[name] = self._counter.get(name, 0) + 1
            return real(*args, **kwargs)

        return call


SCENARIOS = ("attributes", "user-ids", "no-deadline")


def run(sizes: tuple[int, ...] = (100, 300, 1000), scenarios: tuple[str, ...] = SCENARIOS) -> dict[str, Any]:
    from moto import mock_aws

    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION=REGION)
    results = {}
    for scenario in scenarios:
        for size in sizes:
            with mock_aws():
                results[f"{scenario}/{size}"] = _measure(
                    size, attributes=scenario != "user-ids", deadline=scenario != "no-deadline"
                )
    return results


def _measure(size: int, *, attributes: bool, deadline: bool = True) -> dict[str, Any]:
    """``attributes``: the default policy blocks by token attribute (every publisher's GetParticipant,
    once per session); else by user id only (no GetParticipant). ``deadline=False``: one pass without a
    deadline, as the pass ran before (how long it takes)."""
    import logging

    from stagepilot import budget
    from stagepilot.adapters.ivs import IvsStage, Pacer
    from stagepilot.adapters.table import Table
    from stagepilot.automations import convergence_order
    from stagepilot.convergence import ParticipantCache, run_pass
    from stagepilot.local.deployment import LocalDeployment
    from stagepilot.pipeline import Services
    from stagepilot.policy import parse_policy
    from tests.support import EventFactory

    logging.disable(logging.WARNING)
    start = datetime(2026, 11, 21, 20, 0, tzinfo=UTC)
    deployment = LocalDeployment(account=ACCOUNT, region=REGION, start=start)
    deployment.services.policies.put(
        parse_policy(
            {
                "stageArn": "default",
                "moderation": {"blockedUserIds": ["troll-3"], "blockedAttributes": {"tier": ["suspended"]}}
                if attributes
                else {
                    "blockedUserIds": [
                        "troll-3",
                        *(f"user-{i}-{s}" for i in range(size) for s in (0, 1) if (2 * i + s) % BLOCKED_EVERY == 0),
                    ]
                },
            }
        )
    )
    events = EventFactory()
    stages = [f"arn:aws:ivs:{REGION}:{ACCOUNT}:stage/Cover{n:06d}" for n in range(size)]
    blocked = 0
    for index, arn in enumerate(stages):
        deployment.ivs.create_stage(arn)
        session = f"st-Cover{index:05d}Ses"  # 16 characters, as IVS makes them
        for seat in range(2):
            participant = f"p{index}x{seat}"
            suspended = (2 * index + seat) % BLOCKED_EVERY == 0
            blocked += suspended
            deployment.ivs.declare_participant(
                arn,
                participant,
                user_id=f"user-{index}-{seat}",
                attributes={"tier": "suspended" if suspended else "gold"},
            )
            deployment.put_event(
                events.published(participant, user_id=f"user-{index}-{seat}", stage=arn, session=session),
                deliver=False,
            )
    clock = deployment.clock
    clock.advance_to(start + PERIOD)

    counter: dict[str, int] = {}
    seconds = lambda: clock().timestamp()  # noqa: E731 - the pacer's clock, on the virtual one

    def sleep(wait: float) -> None:
        clock.advance_to(clock() + timedelta(seconds=wait))

    pacer = Pacer(
        budget.CONSERVATIVE_RATE, shares=budget.container_shares(budget.CONVERGENCE), clock=seconds, sleep=sleep
    )
    services = Services(
        settings=deployment.settings,
        table=Table(_Timed(deployment.table.client, clock, DYNAMODB_LATENCY, counter), deployment.table.name),
        ivs=IvsStage(_Timed(deployment.ivs.client(), clock, IVS_LATENCY, counter), pacer=pacer),
        metrics=deployment.metrics,
        clock=clock,
    )
    cache = ParticipantCache()
    automations = list(convergence_order())
    examined: set[str] = set()
    passes = []
    due = clock()
    for number in range(1, MAX_PASSES + 1):
        clock.advance_to(due)
        began = clock()
        counter.clear()

        def remaining_ms(began: datetime = began) -> float:
            return TIMEOUT_MS - (clock() - began).total_seconds() * 1000

        report = run_pass(services, automations, remaining_ms=remaining_ms if deadline else None, participants=cache)
        took = (clock() - began).total_seconds()
        reached = set(stages) - set(report.deferred) if report.examined else set()  # every stage is examinable
        examined |= reached
        passes.append(
            {
                "pass": number,
                "seconds": round(took, 1),
                "reached": len(reached),
                "deferred": len(report.deferred),
                "healed": len(report.healed),
                "errors": len(report.errors),
                "ivs_calls": {k: v for k, v in sorted(counter.items()) if not k.endswith("_item") and k != "query"},
            }
        )
        if len(examined) == size or not deadline:
            break
        due = began + PERIOD if clock() < began + PERIOD else began + PERIOD * math.ceil((clock() - began) / PERIOD)
    disconnects = [c for c in deployment.ivs.mutating_calls() if c.operation == "DisconnectParticipant"]
    return {
        "live_stages": size,
        "passes_to_examine_every_stage": len(passes) if len(examined) == size else None,
        "longest_pass_seconds": max(p["seconds"] for p in passes),
        "timeout_seconds": TIMEOUT_MS / 1000,
        "blocked_publishers": blocked,
        "disconnected": len(disconnects),
        "passes": passes,
    }


def scenario_or_size(text: str) -> str | int:
    """One of ``SCENARIOS``, or a fleet size."""
    if text in SCENARIOS:
        return text
    try:
        return cli.count(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a scenario ({', '.join(SCENARIOS)}) nor a positive number of stages"
        ) from None


def main(argv: list[str] | None = None) -> int:
    parser = cli.parser("benchmarks.pass_coverage", __doc__)
    parser.add_argument(
        "choices",
        nargs="*",
        type=scenario_or_size,
        metavar="SCENARIO|SIZE",
        help=f"scenarios ({', '.join(SCENARIOS)}: default all) and live stages (default 100 300 1000), in any order",
    )
    choices = parser.parse_args(argv).choices
    scenarios = tuple(c for c in choices if isinstance(c, str)) or SCENARIOS
    sizes = tuple(c for c in choices if isinstance(c, int)) or (100, 300, 1000)
    for key, result in run(sizes, scenarios).items():
        print(
            f"{key} live stages: every stage examined within {result['passes_to_examine_every_stage']} passes; "
            f"longest pass {result['longest_pass_seconds']} s of {result['timeout_seconds']:.0f} s; "
            f"{result['disconnected']}/{result['blocked_publishers']} blocked publishers disconnected"
        )
        for p in result["passes"]:
            print(
                f"  pass {p['pass']}: {p['seconds']} s, reached {p['reached']}, deferred {p['deferred']}, "
                f"healed {p['healed']}, errors {p['errors']}, IVS {p['ivs_calls']}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
