"""Cold start of every function's import and initialization against its floor, each in a fresh
interpreter (subprocess) laid out as Lambda's (the synth's zip, boto3 beside it, ``-I -B``: as in
``benchmarks/first_record.py``, which measures the three automations' first record that acts).

Floor (issue 24): ``import boto3`` with the collector paused and then frozen (the trick the entry modules
use, ``handlers/heap.py``) and the clients the function creates: dynamodb and ivs-realtime; the door's
token function adds kms.
Function: import the entry module and initialize it the way the first invocation does (the automations:
``wiring.services_for(logger, metrics)``: settings, clients, stores, pacer; the convergence function:
``wiring.pass_services``; the token function: ``door()``, its issuer). No call leaves the process.
Runs are interleaved (floor, composition, replication, ..., floor, ...) so drift hits all alike; wall and
CPU time are both reported, and the load average beside them.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks import cli

HANDLERS = ("composition", "replication", "moderation")
FUNCTIONS = (*HANDLERS, "reconcile", "token")
CLIENTS = {name: ("dynamodb", "ivs-realtime") for name in (*HANDLERS, "reconcile")} | {
    "token": ("dynamodb", "ivs-realtime", "kms")
}

LAYOUT = """
import sys
sys.path[:] = [{task!r}, {runtime!r}] + [p for p in sys.path if "packages" not in p]
"""

FLOOR = """
import gc, time
t, c = time.perf_counter(), time.process_time()
gc.disable()
import boto3
gc.freeze()
gc.enable()
{clients}
print(time.perf_counter() - t, time.process_time() - c)
"""

INIT = {
    **{name: "wiring.services_for(module.logger, module.metrics)" for name in HANDLERS},
    "reconcile": "wiring.pass_services(module.logger, module.metrics)",
    "token": "module.door()",
}

HANDLER = """
import time
t, c = time.perf_counter(), time.process_time()
import importlib
module = importlib.import_module("stagepilot.handlers.{name}")
from stagepilot.handlers import wiring
{init}
print(time.perf_counter() - t, time.process_time() - c)
"""


def floor_code(name: str) -> str:
    return FLOOR.format(clients="\n".join(f"boto3.client({c!r})" for c in CLIENTS[name]))


def handler_code(name: str) -> str:
    return HANDLER.format(name=name, init=INIT[name])


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


def _run(code: str, *args: str) -> tuple[tuple[float, float], str]:
    """(wall seconds, CPU seconds), and what the interpreter wrote to stderr."""
    done = subprocess.run(
        [sys.executable, *args, "-c", code], capture_output=True, text=True, env=environment(), check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"measured run failed:\n{done.stderr[-2000:]}")
    wall, cpu = done.stdout.strip().splitlines()[-1].split()
    return (float(wall), float(cpu)), done.stderr


def import_profile(name: str = "composition", top: int = 12) -> list[dict[str, Any]]:
    """``python -X importtime`` of the handler after the floor: the modules it adds, biggest first."""
    code = (
        "import gc, sys\ngc.disable()\nimport boto3\nboto3.client('dynamodb')\nboto3.client('ivs-realtime')\n"
        "print('--floor done--', file=sys.stderr, flush=True)\n" + handler_code(name)
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
    from benchmarks.first_record import lambda_layout

    times: dict[str, list[tuple[float, float]]] = defaultdict(list)
    loads = []
    with tempfile.TemporaryDirectory() as folder:
        layout = lambda_layout(Path(folder), without_bytecode=False)
        prefix = LAYOUT.format(task=str(layout["task"]), runtime=str(layout["runtime"]))
        codes = {}
        for name in FUNCTIONS:
            codes[f"floor:{name}"] = prefix + floor_code(name)
            codes[name] = prefix + handler_code(name)
        for code in codes.values():  # one run each first: file system caches, as on a warm host
            _run(code, "-I", "-B")
        for _ in range(runs):
            loads.append(os.getloadavg()[0])
            for key, code in codes.items():
                times[key].append(_run(code, "-I", "-B")[0])
    results: dict[str, Any] = {
        "runs": runs,
        "load": {"median": statistics.median(loads), "max": max(loads), "cores": os.cpu_count()},
        "handlers": {},
    }
    for name in FUNCTIONS:
        floor = [statistics.median(t[i] for t in times[f"floor:{name}"]) for i in (0, 1)]
        median = [statistics.median(t[i] for t in times[name]) for i in (0, 1)]
        results["handlers"][name] = {
            "floor_ms": floor[0] * 1000,
            "median_ms": median[0] * 1000,
            "ratio": median[0] / floor[0],
            "floor_cpu_ms": floor[1] * 1000,
            "cpu_ms": median[1] * 1000,
            "cpu_ratio": median[1] / floor[1],
            "clients": list(CLIENTS[name]),
        }
    # the automations' floor (both clients), as before
    results["floor_ms"] = results["handlers"]["composition"]["floor_ms"]
    results["max_ratio"] = max(results["handlers"][name]["ratio"] for name in HANDLERS)
    results["under_load"] = results["load"]["max"] > (os.cpu_count() or 1)
    results["import_profile_above_floor"] = import_profile()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = cli.parser("benchmarks.cold_start", __doc__)
    cli.count_argument(parser, "RUNS", default=15, what="fresh interpreters per function and floor")
    runs = parser.parse_args(argv).runs
    print(json.dumps(run(runs=runs), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
