"""``python -m benchmarks`` (``make bench``): every benchmark against its floor, in one run.

Prints one table and writes everything measured to ``benchmarks/results.json``; docs/performance.md
quotes that file. Run it on an otherwise idle machine: the cold-start figures are wall-clock.
"""

from __future__ import annotations

import json
import logging
import platform
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import burst, cold_start, convergence, first_record, package, simulate_throughput, work_per_event

RESULTS = Path(__file__).resolve().parent / "results.json"


def _row(name: str, value: str, floor: str, ratio: float | None, target: str, met: bool | None) -> str:
    shown = f"{ratio:.2f}×" if ratio is not None else "—"
    verdict = "—" if met is None else ("met" if met else "NOT met")
    return f"| {name} | {value} | {floor} | {shown} | {target} | {verdict} |"


def main() -> int:
    logging.disable(logging.WARNING)  # the handlers' "will be retried" lines are expected here
    started = time.perf_counter()
    results: dict[str, Any] = {
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "cold_start": cold_start.run(runs=15),
        "cold_start_first_record": first_record.run(runs=11),
        "work_per_event": work_per_event.run(),
        "burst": burst.run_all(),  # 200 and 1,000 stages: about 5 minutes (benchmarks/lean_moto.py)
        "package": package.run(),
        "convergence": convergence.run(),
        "simulate": simulate_throughput.run(),
    }
    results["seconds"] = time.perf_counter() - started
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")

    cold = results["cold_start"]
    rows = ["| measure | value | floor | ratio | target | |", "|---|---|---|---|---|---|"]
    for name, h in cold["handlers"].items():
        rows.append(
            _row(
                f"cold start: {name}",
                f"{h['median_ms']:.0f} ms",
                f"{cold['floor_ms']:.0f} ms",
                h["ratio"],
                "≤ 1.3×",
                h["ratio"] <= 1.3,
            )
        )
    first = results["cold_start_first_record"]
    for name, h in first["handlers"].items():
        rows.append(
            _row(
                f"cold start, first record that acts: {name}",
                f"{h['median_ms']:.0f} ms ({h['without_bytecode_ms']:.0f} ms without the zip's bytecode)",
                f"{h['floor_ms']:.0f} ms",
                h["ratio"],
                "≤ 1.2×",
                h["ratio"] <= 1.2,
            )
        )
    for w in results["work_per_event"].values():
        rows.append(
            _row(
                f"AWS calls: {w['scenario']}",
                f"{w['calls_per_event']:.2f}/event, IVS {w['ivs_calls_per_action']:.2f}/action",
                f"{w['floor_calls']} calls",
                w["ratio"],
                f"≤ {w['target_calls_per_event']}/event, ≤ {w['target_ivs_calls_per_action']} IVS/action",
                w["calls_met"],
            )
        )
        rows.append(
            _row(
                f"handler CPU/delivery: {w['scenario']}",
                f"{w['cpu_ms_per_delivery_own']:.2f} ms own + {w['cpu_ms_per_delivery_in_aws_calls']:.2f} ms in calls",
                "—",
                None,
                "—",
                None,
            )
        )
    for b in [*results["burst"]["runs"], *results["burst"]["alternatives"]]:
        label = f"burst drain, {b['stages']} stages: {b['label']}"
        once = f"{b['stages_with_one_composition']}/{b['stages']} once"
        detail = (
            f"{b['drain_seconds']:.1f} s, {once}, {b['duplicates']} duplicated, "
            f"{b['throttled_calls'] + b['application_throttled_calls']} throttled"
        )
        if b.get("with_pass"):  # the pass beside it: within its timeout, no lost-event heal
            detail += (
                f"; pass beside it: longest {b['pass_longest_seconds']:.0f} of {b['pass_timeout_seconds']} s, "
                f"{b['healed_event_lost']} event-lost heals"
            )
        rows.append(_row(label, detail, f"{b['floor_seconds']:.0f} s", b["ratio"], "≤ 1.10×", b["met"]))
    c = results["convergence"]
    for label, key in (("healing", "healing_pass"), ("converged", "converged_pass")):
        one = c[key]
        busiest = max(one["reads"].items(), key=lambda item: item[1] / convergence._budget(item[0]))
        rows.append(
            _row(
                f"convergence pass, {c['stages']} stages ({c['live']} live), {label}",
                f"{one['reads_total']} IVS reads, most {busiest[0]} ×{busiest[1]}; healed {one['healed']}; "
                f"{sum(one['table_calls'].values())} DynamoDB calls",
                f"{convergence._budget(busiest[0])} {busiest[0]}/pass",
                busiest[1] / convergence._budget(busiest[0]),
                "≤ 1.0× of the budget",
                not one["over_budget"],
            )
        )
    sim = results["simulate"]
    for size in ("1000", "5000", "20000"):
        rows.append(
            _row(
                f"simulate {size} events",
                f"{sim[size]['seconds']:.1f} s ({sim[size]['events_per_second']:.0f}/s)",
                "—",
                None,
                "—",
                None,
            )
        )
    rows.append(
        _row(
            "simulate 20k vs 5k", "", "4× (linear)", sim["ratio_20k_to_5k"] / 4, "≤ 4.5×", sim["ratio_20k_to_5k"] <= 4.5
        )
    )
    p = results["package"]
    rows.append(
        _row(
            "code zip",
            f"{p['zip_bytes'] / 1e6:.2f} MB ({p['unzipped_bytes'] / 1e6:.1f} MB unzipped)",
            "—",
            None,
            "—",
            None,
        )
    )
    rows.append(
        _row("synth (bundling into a fresh outdir)", f"{p['synth_wall_seconds']:.1f} s wall", "—", None, "—", None)
    )
    print("\n".join(rows))
    print("\nimport profile above the floor (composition handler, cumulative ms):")
    for entry in cold["import_profile_above_floor"]:
        print(f"  {entry['ms']:7.1f}  {entry['module']}")
    print(f"\nwritten to {RESULTS.relative_to(Path.cwd()) if RESULTS.is_relative_to(Path.cwd()) else RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
