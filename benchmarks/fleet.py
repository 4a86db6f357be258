"""Fleet commands in the sandbox at 30, 300 and 1,000 live stages (docs/performance.md §9).

``stagepilot sandbox`` (moto server, the IVS stand-in over HTTP, the functions) with N live stages: each has
a session with one publisher, the ``default`` policy (moderation) applies to all. IVS takes time as deployed:
every request to the stand-in waits 50-150 ms (docs/simulate.md) before IVS sees it; DynamoDB is moto
over loopback (about 1-3 ms a call, below DynamoDB's 5-15 ms). Each command runs as an operator runs it, a
``stagepilot`` process of its own, timed from start to exit:

- ``status`` (the fleet) and ``ban add USER --reason ...`` (a global ban: the door's token records, the rest
  of the sweep handed to the convergence pass), each at most 5 s at 1,000 live stages. ``status`` runs after
  a scheduled convergence pass, as on a running stack (passes every minute), so it takes the pass's listing
  of the live stages; ``status --fresh`` lists IVS itself (ten ListStages pages at 1,000);
- ``stagepilot --version``: what every command pays before reading anything (the interpreter, boto3, the
  CLI's imports), the best of three;
- ``reconcile --all --dry-run`` (the convergence function's pass on a what-if copy of the world), against
  the reads it needs: the IVS calls it made, counted on the stand-in, at the latency above.

Each ``stagepilot`` process runs as an installed package does, from byte-compiled modules (pip compiles them
at install): the benchmark gives them a cache of their own (``PYTHONPYCACHEPREFIX``) and a first run of each
command to fill it, whatever ``PYTHONDONTWRITEBYTECODE`` says in the shell it is run from.

Run: ``python -m benchmarks.fleet [--fleet | --reconcile] [SIZES]`` (the dry run at 1,000 live stages takes
about 20 minutes: it reads every live stage at the pass's pace).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from benchmarks import cli

SIZES = (30, 300, 1000)
LIMIT_SECONDS = 5.0
REPEATS = 3  # each fleet command this many times a size: the median is the figure (a loaded machine varies)
ACCOUNT_REGION = "us-east-1:123456789012"
DEFAULT = {"stageArn": "default", "moderation": {"blockedUserIds": ["troll-3"]}}
CLI = [sys.executable, "-c", "import sys; from stagepilot.cli.main import main; sys.exit(main())"]


def stage_arn(index: int) -> str:
    return f"arn:aws:ivs:{ACCOUNT_REGION}:stage/Fleet{index:07d}"


def go_live(sandbox: Any, count: int, start: int = 0) -> None:
    """``count`` more stages, each with a session and one publisher (IVS's state; no event delivered)."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for index in range(start, start + count):
        arn = stage_arn(index)
        sandbox.ivs.create_stage(arn)
        for name in ("Participant Joined", "Participant Published"):
            sandbox.ivs.observe(
                {
                    "version": "0",
                    "id": f"fleet-{index}-{name}",
                    "detail-type": "IVS Stage Update",
                    "source": "aws.ivs",
                    "account": "123456789012",
                    "time": now,
                    "region": "us-east-1",
                    "resources": [arn],
                    "detail": {
                        "session_id": f"st-Fleet{index:08d}",
                        "event_name": name,
                        "event_time": now,
                        "user_id": f"user-{index}",
                        "participant_id": f"p{index:07d}",
                    },
                }
            )


def timed(environment: dict[str, str], *argv: str) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run([*CLI, *argv], capture_output=True, text=True, env=environment, timeout=3600)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"stagepilot {' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()[-300:]}")
    return elapsed, done.stdout


def ivs_reads(sandbox: Any, since: int) -> dict[str, int]:
    return dict(Counter(call.operation for call in sandbox.ivs.calls[since:]))


def run(sizes: tuple[int, ...] = SIZES, *, fleet: bool = True, reconcile: bool = True) -> dict[str, Any]:
    """``fleet``: ``status`` and ``ban add`` at each size; ``reconcile``: ``reconcile --all --dry-run``."""
    import logging

    from stagepilot.local.sandbox import Sandbox
    from stagepilot.policy import parse_policy

    logging.disable(logging.WARNING)
    rng = random.Random(7)
    results: dict[str, Any] = {"ivs_latency_ms": [50, 150], "sizes": {}}
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    environment.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed CLI runs from compiled modules
    with (
        tempfile.TemporaryDirectory(prefix="fleet-pycache-") as pycache,
        Sandbox(reconcile_seconds=24 * 3600) as sandbox,  # no scheduled pass: the benchmark runs it (below)
    ):
        sandbox.ivs.call_delay = lambda: time.sleep(rng.uniform(0.050, 0.150))
        environment.update(sandbox.environment, AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
        environment["PYTHONPYCACHEPREFIX"] = pycache
        sandbox.store([parse_policy(DEFAULT)], [])
        # compiles every module the commands import (the CLI's, boto3's, botocore's) once, as pip does at install
        for warm_up in (("status",), ("ban", "list"), ("--version",)):
            timed(environment, *warm_up)
        # what every command pays before it reads anything: the interpreter, boto3 and the CLI's imports
        results["startup_seconds"] = min(timed(environment, "--version")[0] for _ in range(3))
        results["load_average"] = [round(x, 1) for x in os.getloadavg()]
        live = 0
        for size in sizes:
            go_live(sandbox, size - live, start=live)
            live = size
            row: dict[str, Any] = results["sizes"].setdefault(str(size), {})
            if fleet:
                # a scheduled pass, as on a running stack: it lists the live stages and keeps its listing
                started = time.perf_counter()
                sandbox.converge_once()
                row["pass_seconds"] = round(time.perf_counter() - started, 1)
                row["load_average"] = [round(x, 1) for x in os.getloadavg()]
                for name, argv in (
                    ("status", ("status",)),
                    ("status_fresh", ("status", "--fresh")),
                    ("ban_add", ("ban", "add", "raider-{size}-{n}", "--reason", "bench")),  # a new user each run
                ):
                    mark = len(sandbox.ivs.calls)
                    runs = [timed(environment, *(a.format(size=size, n=n) for a in argv)) for n in range(REPEATS)]
                    times = sorted(seconds for seconds, _ in runs)
                    row[f"{name}_seconds"] = times[len(times) // 2]  # the median of REPEATS runs
                    row[f"{name}_runs_seconds"] = [round(seconds, 2) for seconds, _ in runs]
                    row[f"{name}_ivs_calls"] = {op: n // REPEATS for op, n in ivs_reads(sandbox, mark).items()}
                    row[f"{name}_summary"] = runs[-1][1].splitlines()[0]
                row["met"] = row["status_seconds"] <= LIMIT_SECONDS and row["ban_add_seconds"] <= LIMIT_SECONDS
            if reconcile:
                mark = len(sandbox.ivs.calls)
                row["reconcile_dry_run_seconds"], shown = timed(environment, "reconcile", "--all", "--dry-run")
                calls = ivs_reads(sandbox, mark)
                row["reconcile_dry_run_ivs_calls"] = calls
                row["reconcile_dry_run_first_line"] = shown.splitlines()[0] if shown else ""
                # its reads one after another at the stand-in's mean latency (0.1 s each)
                row["reconcile_dry_run_reads_at_latency_seconds"] = round(sum(calls.values()) * 0.100, 1)
            print(json.dumps({str(size): row}), flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = cli.parser("benchmarks.fleet", __doc__, more="The dry run at 1,000 live stages takes about 20 minutes.")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--fleet", action="store_true", help="only status and ban add (no reconcile --dry-run)")
    only.add_argument("--reconcile", action="store_true", help="only reconcile --all --dry-run")
    cli.counts_argument(parser, "SIZE", default=SIZES, what="live stages, in growing order")
    arguments = parser.parse_args(argv)
    sizes = tuple(arguments.size)
    print(json.dumps(run(sizes, fleet=not arguments.reconcile, reconcile=not arguments.fleet), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
