"""IVS reads per convergence pass: 1,000 stages, 100 of them live, against the pass's read budget.

Every live stage is under the ``default`` policy (moderation: blocked user ids; so every live stage must
be checked for a blocked publisher) and 20 of them have a composition policy of their own (IVS allows 20
compositions per account). The first pass finds everything missing (the publish events were lost) and
heals it; the second, one period later, finds a converged fleet. IVS reads are counted per operation
from the stand-in, DynamoDB calls per operation on the table's client.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from benchmarks import cli

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
        return _measure()


def _measure() -> dict[str, Any]:
    from stagepilot.local.deployment import LocalDeployment
    from stagepilot.policy import parse_policy
    from tests.support import CHANNEL, ENCODER, EventFactory

    start = datetime(2026, 11, 21, 20, 0, tzinfo=UTC)
    deployment = LocalDeployment(account=ACCOUNT, region=REGION, start=start)
    policies = deployment.services.policies
    policies.put(parse_policy({"stageArn": "default", "moderation": {"blockedUserIds": ["troll-3"]}}))
    events = EventFactory()
    stages = [f"arn:aws:ivs:{REGION}:{ACCOUNT}:stage/Bench{n:06d}" for n in range(STAGES)]
    destination = {"name": "live", "channel": {"channelArn": CHANNEL, "encoderConfigurationArn": ENCODER}}
    for index, arn in enumerate(stages):
        deployment.ivs.create_stage(arn)
        if index < LIVE:
            session = f"st-Bench{index:05d}Ses"
            deployment.put_event(
                events.published(f"host{index}", user_id="host", stage=arn, session=session), deliver=False
            )
        if index < COMPOSED:
            policies.put(parse_policy({"stageArn": arn, "composition": {"destinations": [destination]}}))
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
    return {
        "stages": STAGES,
        "live": LIVE,
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
