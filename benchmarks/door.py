"""The door's cost per token against the floor (one KMS Sign + one DynamoDB read).

1. **Calls per token**, counted on real boto3 clients answered by moto (DynamoDB, KMS) and the IVS stand-in:
   what one issue sends to AWS, cold (first token of a stage) and warm.
2. **The door's own time per token**: the same issue with clients that answer at once (a prepared KMS
   signature, DynamoDB answers from memory), so what is measured is stagepilot's work only (decision,
   JSON, base64url, DER to r||s, items to DynamoDB's shape; not botocore's own request building). p50/p99 over N
   issues in one container, and tokens per second per container (one thread).
3. **Cold start**: importing the token function and building its issuer, in a fresh interpreter, against
   the floor of ``import boto3`` + the three clients it needs.

Deployed latency is then the own time plus the AWS calls' latencies; the floor is one Sign and one read.
Run: ``python -m benchmarks.door`` (about a minute).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

from benchmarks import cli

N = 2000
STAGE = "arn:aws:ivs:us-east-1:123456789012:stage/Door0001"
TOKENS = {"roles": {"viewer": {"capabilities": ["SUBSCRIBE"], "durationMinutes": 10}}, "defaultRole": "viewer"}


def calls_per_token() -> dict[str, Any]:
    """The calls of the first token of a stage and of the next, and the DynamoDB request units each is charged
    from the sizes of the items it reads and writes (benchmarks/request_units.py)."""
    import boto3
    from moto import mock_aws

    from benchmarks.request_units import RequestUnitMeter
    from stagepilot.adapters.ivs import IvsStage
    from stagepilot.adapters.table import PolicyStore, Table
    from stagepilot.door.decision import TokenRequest
    from stagepilot.door.issuer import TokenIssuer
    from stagepilot.door.keys import SigningKeys
    from stagepilot.door.signing import KeyPairTokens, StageEndpoints
    from stagepilot.local.deployment import RecordingMetrics, create_table
    from stagepilot.local.ivs import IvsStandIn
    from stagepilot.pipeline import EffectivePolicies
    from stagepilot.policy import parse_policy

    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        ivs = IvsStandIn()
        ivs.create_stage(STAGE)
        dynamodb, kms = boto3.client("dynamodb", region_name="us-east-1"), boto3.client("kms", region_name="us-east-1")
        create_table(dynamodb, "door")
        table = Table(dynamodb, "door")
        PolicyStore(table).put(parse_policy({"stageArn": "default", "tokens": TOKENS}))
        adapter = IvsStage(ivs.client())
        keys = SigningKeys(table, ivs=adapter, kms=kms, name="bench")
        keys.rotate(longest_token_minutes=10)
        signer = keys.signer()
        assert signer is not None
        sent: list[str] = []
        for client in (dynamodb, kms):
            client.meta.events.register("before-call.*.*", lambda model, **_: sent.append(model.name))
        meter = RequestUnitMeter(boto3.client("dynamodb", region_name="us-east-1"))
        meter.attach(dynamodb)
        ivs_before = len(ivs.calls)
        clock = lambda: datetime.now(UTC)  # noqa: E731
        issuer = TokenIssuer(
            table=table,
            policies=EffectivePolicies(PolicyStore(table), ttl_seconds=30, clock=clock),
            maker=KeyPairTokens(signer, StageEndpoints(adapter, clock=clock), clock=clock),
            metrics=RecordingMetrics(),
            clock=clock,
        )
        issuer.issue(TokenRequest(STAGE, "user-0"))
        cold = sent + [f"ivs:{c.operation}" for c in ivs.calls[ivs_before:]]
        cold_units = meter.to_json()
        meter.reset()
        sent.clear()
        ivs_before = len(ivs.calls)
        issuer.issue(TokenRequest(STAGE, "user-1"))
        warm = sent + [f"ivs:{c.operation}" for c in ivs.calls[ivs_before:]]
        warm_units = meter.to_json()
    return {"cold": cold, "warm": warm, "request_units": {"cold": cold_units, "warm": warm_units}}


class _Instant:
    """A boto3-shaped client that answers at once: DynamoDB from memory, KMS with a prepared signature."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self._answers = answers

    def __getattr__(self, name: str) -> Any:
        answer = self._answers[name]
        return lambda **_: answer


def own_time() -> dict[str, float]:
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    from stagepilot.adapters.dynamo import to_item
    from stagepilot.adapters.table import PolicyStore, Table
    from stagepilot.door.decision import TokenRequest
    from stagepilot.door.issuer import TokenIssuer
    from stagepilot.door.signing import KeyPairTokens, KmsSigner, StageEndpoints
    from stagepilot.local.deployment import RecordingMetrics
    from stagepilot.pipeline import EffectivePolicies

    policy_item = {
        "pk": "POLICY",
        "sk": "default",
        "version": 1,
        "updatedAt": "2026-12-07T00:00:00.000Z",
        "document": json.dumps({"stageArn": "default", "tokens": TOKENS}),
    }
    dynamodb = _Instant(
        {
            "batch_get_item": {"Responses": {"door": [to_item(policy_item)]}},
            "batch_write_item": {"UnprocessedItems": {}},
            "transact_write_items": {},  # an issue's audit entry with its counters (adapters/dynamo.py put_all)
        }
    )
    der = encode_dss_signature(2**383 + 12345, 2**382 + 6789)
    kms = _Instant({"sign": {"Signature": der}})

    class Stages:
        def get_stage(self, arn: str) -> dict[str, Any]:
            return {"endpoints": {"events": "wss://global.events.live-video.net", "whip": "https://x.whip"}}

    clock = lambda: datetime.now(UTC)  # noqa: E731
    table = Table(dynamodb, "door")
    signer = KmsSigner(kms, key_id="k", public_key_arn="arn:aws:ivs:us-east-1:123456789012:public-key/K")
    issuer = TokenIssuer(
        table=table,
        policies=EffectivePolicies(PolicyStore(table), ttl_seconds=30, clock=clock),
        maker=KeyPairTokens(signer, StageEndpoints(Stages(), clock=clock), clock=clock),
        metrics=RecordingMetrics(),
        clock=clock,
    )
    for index in range(200):  # warm up
        issuer.issue(TokenRequest(STAGE, f"warm-{index}"))
    times = []
    started = time.perf_counter()
    for index in range(N):
        t = time.perf_counter()
        decision, token = issuer.issue(TokenRequest(STAGE, f"user-{index}"))
        times.append(time.perf_counter() - t)
        assert token is not None, decision
    total = time.perf_counter() - started
    times.sort()
    return {
        "p50_ms": round(statistics.median(times) * 1000, 3),
        "p99_ms": round(times[int(0.99 * len(times))] * 1000, 3),
        "tokens_per_second": round(N / total),
    }


COLD = """
import time
t = time.perf_counter()
import boto3
boto3.client("dynamodb"); boto3.client("kms"); boto3.client("ivs-realtime")
floor = time.perf_counter() - t
print(floor)
"""
HANDLER = """
import time
t = time.perf_counter()
from stagepilot.handlers import token
door = token.door()
print(time.perf_counter() - t)
"""


def cold_start(runs: int = 7) -> dict[str, float]:
    env = {
        **os.environ,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "STAGEPILOT_TABLE": "door",
        "POWERTOOLS_METRICS_NAMESPACE": "StagePilot",
    }
    floor, handler = [], []
    for _ in range(runs):
        for script, into in ((COLD, floor), (HANDLER, handler)):
            out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
            into.append(float(out.stdout.strip().splitlines()[-1]))
    return {"floor_ms": round(statistics.median(floor) * 1000), "handler_ms": round(statistics.median(handler) * 1000)}


def run_all() -> dict[str, Any]:
    return {"calls": calls_per_token(), "own": own_time(), "cold_start": cold_start()}


def main(argv: list[str] | None = None) -> int:
    cli.parser("benchmarks.door", __doc__, more="Takes about a minute.").parse_args(argv)
    print(json.dumps(run_all(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
