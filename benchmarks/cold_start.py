"""Cold start per handler against the floor, each in a fresh interpreter (subprocess).

Floor: ``import boto3`` and create the two clients every handler needs (dynamodb, ivs-realtime).
Handler: import the entry-point module and initialize it the way the first invocation does
(``wiring.services_for(logger, metrics)``: settings, clients, stores, pacer). No call leaves the process.
Runs are interleaved (floor, composition, replication, moderation, floor, ...) so drift hits all alike.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from collections import defaultdict
from typing import Any

HANDLERS = ("composition", "replication", "moderation")

FLOOR = """
import time
t = time.perf_counter()
import boto3
boto3.client("dynamodb")
boto3.client("ivs-realtime")
print(time.perf_counter() - t)
"""

HANDLER = """
import time
t = time.perf_counter()
import importlib
module = importlib.import_module("stagepilot.handlers.{name}")
from stagepilot.handlers import wiring
wiring.services_for(module.logger, module.metrics)
print(time.perf_counter() - t)
"""


def environment() -> dict[str, str]:
    # PYTHONDONTWRITEBYTECODE (set on some machines) would make every run compile boto3 from source: the
    # Lambda runtime's boto3 is compiled, so the floor and the handler run with .pyc caches here.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "POWERTOOLS_", "STAGEPILOT_")) and k != "PYTHONDONTWRITEBYTECODE"
    }
    env.update(
        STAGEPILOT_TABLE="stagepilot-bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",  # dummy: nothing is sent
        POWERTOOLS_SERVICE_NAME="stagepilot",
        POWERTOOLS_METRICS_NAMESPACE="StagePilot",
    )
    return env


def _run(code: str, *args: str) -> tuple[float, str]:
    done = subprocess.run(
        [sys.executable, *args, "-c", code], capture_output=True, text=True, env=environment(), check=True
    )
    return float(done.stdout.strip().splitlines()[-1]), done.stderr


def import_profile(name: str = "composition", top: int = 12) -> list[dict[str, Any]]:
    """``python -X importtime`` of the handler after the floor: the modules it adds, biggest first."""
    code = (
        "import boto3, sys\nboto3.client('dynamodb')\nboto3.client('ivs-realtime')\n"
        "print('--floor done--', file=sys.stderr, flush=True)\n" + HANDLER.format(name=name)
    )
    samples: dict[str, list[int]] = defaultdict(list)
    for _ in range(5):
        _, stderr = _run(code, "-X", "importtime")
        for line in stderr.split("--floor done--", 1)[-1].splitlines():
            if not line.startswith("import time:") or "|" not in line or "self [us]" in line:
                continue
            _self, cumulative, module = line.split("|")
            depth = (len(module) - len(module.lstrip())) // 2
            # Only the package's own entry point and the third-party packages it pulls in directly.
            if depth <= 2:
                samples[module.strip()].append(int(cumulative))
    rows = [{"module": m, "ms": statistics.median(v) / 1000} for m, v in samples.items()]
    rows = [r for r in rows if not r["module"].startswith(("boto3", "botocore"))]
    rows.sort(key=lambda r: -r["ms"])
    return rows[:top]


def run(runs: int = 15) -> dict[str, Any]:
    times: dict[str, list[float]] = defaultdict(list)
    _run(FLOOR)  # warm the .pyc caches once; every measured run starts a new interpreter
    for name in HANDLERS:
        _run(HANDLER.format(name=name))
    for _ in range(runs):
        times["floor"].append(_run(FLOOR)[0])
        for name in HANDLERS:
            times[name].append(_run(HANDLER.format(name=name))[0])
    floor = statistics.median(times["floor"])
    results: dict[str, Any] = {"runs": runs, "floor_ms": floor * 1000, "handlers": {}, "target_ratio": 1.3}
    for name in HANDLERS:
        median = statistics.median(times[name])
        results["handlers"][name] = {"median_ms": median * 1000, "ratio": median / floor}
    results["max_ratio"] = max(h["ratio"] for h in results["handlers"].values())
    results["met"] = results["max_ratio"] <= 1.3
    results["import_profile_above_floor"] = import_profile()
    return results


if __name__ == "__main__":
    import json

    print(json.dumps(run(runs=int(sys.argv[1]) if len(sys.argv) > 1 else 15), indent=2))
