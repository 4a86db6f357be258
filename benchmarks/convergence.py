"""IVS reads per convergence pass: 1,000 stages, 100 of them live, against the pass's read budget.

Every live stage is under the ``default`` policy (moderation: blocked user ids; so every live stage must
be checked for a blocked publisher) and 20 of them have a composition policy of their own (IVS allows 20
compositions per account). The first pass finds everything missing (the publish events were lost) and
heals it; the second, one period later, finds a converged fleet. IVS reads are counted per operation
from the stand-in, DynamoDB calls per operation on the table's client.

``shared_store``: the converged pass again with every pacer the shared store (a trade docs/performance.md
section 3 weighs, not built: benchmarks/trades.py), at each fleet size with every stage live and with none:
the store's writes per pass, which ``trades.store_units_per_month`` prices.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from benchmarks import cli, trades

STAGES = 1000
LIVE = 100
COMPOSED = 20
ACCOUNT, REGION = "123456789012", "us-east-1"
# The pass's share of each operation's 5 TPS (docs/performance.md): 1 call/s, 60 per one-minute pass.
BUDGET_PER_OPERATION = 60
PERIOD = timedelta(minutes=1)  # the schedule's default period (reconcileMinutes)


def _budget(operation: str) -> int:
    from stagepilot.convergence import PARTICIPANT_LISTINGS_PER_PASS

    return PARTICIPANT_LISTINGS_PER_PASS if operation == "ListParticipants" else BUDGET_PER_OPERATION


def run() -> dict[str, Any]:
    from moto import mock_aws

    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION=REGION)
    with mock_aws():
        measured = _measure()
    measured["shared_store"] = store_passes()
    return measured


def store_passes(fleets: tuple[int, ...] = trades.FLEETS) -> dict[str, dict[str, Any]]:
    """The converged pass paced by the shared store: at each fleet size, every stage live and none live."""
    from moto import mock_aws

    passes: dict[str, dict[str, Any]] = {}
    for stages in fleets:
        for live, name in ((stages, "live"), (0, "idle")):
            with mock_aws():
                passes.setdefault(str(stages), {})[name] = _measure(stages=stages, live=live, shared_store=True)[
                    "converged_pass"
                ]
    return passes


def _measure(*, stages: int = STAGES, live: int = LIVE, shared_store: bool = False) -> dict[str, Any]:
    from stagepilot.local.deployment import LocalDeployment
    from stagepilot.policy import parse_policy
    from tests.support import CHANNEL, ENCODER, EventFactory

    start = datetime(2026, 11, 21, 20, 0, tzinfo=UTC)
    built: list[LocalDeployment] = []  # the deployment, for the stores its containers' pacers are
    with trades.shared_store((lambda: built[0].table.client) if shared_store else None) as stores:
        deployment = LocalDeployment(account=ACCOUNT, region=REGION, start=start)
    built.append(deployment)
    policies = deployment.services.policies
    policies.put(parse_policy({"stageArn": "default", "moderation": {"blockedUserIds": ["troll-3"]}}))
    events = EventFactory()
    arns = [f"arn:aws:ivs:{REGION}:{ACCOUNT}:stage/Bench{n:06d}" for n in range(stages)]
    for index, arn in enumerate(arns):
        deployment.ivs.create_stage(arn)
        if index < live:
            session = f"st-Bench{index:05d}Ses"
            deployment.put_event(
                events.published(f"host{index}", user_id="host", stage=arn, session=session), deliver=False
            )
        if index < COMPOSED:
            # each stage its own channel: a channel takes one stream at a time (docs/simulate.md)
            channel = {"channelArn": f"{CHANNEL}{index:06d}", "encoderConfigurationArn": ENCODER}
            policies.put(
                parse_policy({"stageArn": arn, "composition": {"destinations": [{"name": "live", "channel": channel}]}})
            )
    deployment.clock.advance_to(start + timedelta(seconds=1))

    table_calls: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        table_calls[model.name] += 1

    deployment.table.client.meta.events.register("before-call.dynamodb", count)
    passes = []
    for number in range(2):
        if number:
            deployment.clock.advance_to(deployment.clock() + PERIOD)
        before = len(deployment.ivs.calls)
        table_calls.clear()
        store_before = trades.store_calls(stores)
        report = deployment.reconcile()
        reads = Counter(
            c.operation
            for c in deployment.ivs.calls[before:]
            if not c.operation.startswith(("Start", "Stop", "Disconnect"))
        )
        writes = Counter(
            c.operation
            for c in deployment.ivs.calls[before:]
            if c.operation.startswith(("Start", "Stop", "Disconnect"))
        )
        passes.append(
            {
                "healed": len(report.healed),
                "reads": dict(reads),
                "reads_total": sum(reads.values()),
                "writes": dict(writes),
                "table_calls": dict(table_calls),
                "over_budget": {op: n for op, n in reads.items() if n > _budget(op)},
            }
        )
        if shared_store:
            store = trades.store_calls(stores)
            passes[-1]["store_calls"] = {key: store[key] - store_before[key] for key in store}
    return {
        "stages": stages,
        "live": live,
        "composed": COMPOSED,
        "budget_per_operation": BUDGET_PER_OPERATION,
        "healing_pass": passes[0],
        "converged_pass": passes[1],
    }


def main(argv: list[str] | None = None) -> int:
    cli.parser("benchmarks.convergence", __doc__).parse_args(argv)
    print(json.dumps(run(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
