"""``python -m benchmarks`` (``make bench``): every benchmark against its floor, in one run.

Prints one table and writes everything measured to ``benchmarks/results.json``; docs/performance.md
quotes that file. Run it on an otherwise idle machine: the cold-start figures are wall-clock.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import (
    burst,
    cold_start,
    convergence,
    cost,
    first_record,
    latency,
    package,
    request_units,
    simulate_throughput,
    trades,
    work_per_event,
)

RESULTS = Path(__file__).resolve().parent / "results.json"


def _row(name: str, value: str, floor: str, ratio: float | None, target: str, met: bool | None) -> str:
    shown = f"{ratio:.2f}×" if ratio is not None else "—"
    verdict = "—" if met is None else ("met" if met else "NOT met")
    return f"| {name} | {value} | {floor} | {shown} | {target} | {verdict} |"


def _load(measured: dict[str, Any]) -> str:
    """Wall-clock figures measured on a loaded machine are not figures: say so beside them."""
    load = measured["load"]
    return f"; under load ({load['max']:.1f} on {load['cores']} cores)" if measured.get("under_load") else ""


def burst_rows(b: dict[str, Any]) -> list[str]:
    """One burst run against issue 24's targets: the composition's drain and each automation's against
    their floors (stages at the rate stagepilot's functions may use) with no stage composed twice or lost
    and the pass within its timeout, and the throttled calls of any operation (the application's included)
    against 0, each with its own verdict."""
    label = f"burst, {b['stages']} stages, {b['label']}"
    throttles = b["throttled_calls"] + b["application_throttled_calls"]
    detail = f"{b['drain_seconds']:.1f} s; {b['duplicates']} duplicated, {b['dead_letters']} lost"
    if b.get("with_pass"):
        detail += f"; longest pass {b['pass_longest_seconds']:.1f} of {b['pass_timeout_seconds']} s"
    if b.get("shared_store"):
        detail += burst.store_cost(b)
    if b.get("one_reader"):
        detail += burst.one_reader_cost(b["one_reader_cost"])
    if b.get("pass_reads_records"):
        detail += burst.pass_records_cost(b)
    clean = b["duplicates"] == 0 and b["dead_letters"] == 0 and b["stages_with_one_composition"] == b["stages"]
    rows = [
        _row(
            f"{label}: composed",
            detail,
            f"{b['floor_seconds']:.1f} s",
            b["ratio"],
            f"≤ {b['target_ratio']}×, 0 duplicated, 0 lost",
            b["ratio"] <= b["target_ratio"] and clean and b.get("pass_met", True),
        )
    ]
    for name, a in b["automations"].items():
        rows.append(
            _row(
                f"{label}: {name} drained ({a['operation']})",
                f"{a['drained_seconds']:.1f} s",
                f"{a['floor_seconds']:.1f} s",
                a["ratio"],
                f"≤ {b['target_ratio']}×",
                a["ratio"] <= b["target_ratio"],
            )
        )
    blame = b["throttles_in_a_second_where"]
    rows.append(
        _row(
            f"{label}: throttled calls, any operation",
            f"{throttles} ({b['throttled_calls']} ours, {b['application_throttled_calls']} the application's; "
            f"in a second where the application was over its part {blame['application_over_its_part']}, "
            f"stagepilot over its bound {blame['stagepilot_over_its_bound']}; stagepilot's busiest second "
            f"{b['stagepilot_busiest_second_max']} of its {b['floor_rate']})",
            "0",
            None,
            "0",
            throttles == 0,
        )
    )
    return rows


def trades_cost(work: dict[str, Any], passes: dict[str, Any]) -> dict[str, Any]:
    """What the store adds a month with each trade's run of the 100-stage show (``work_per_event``'s
    ``trades``) and the pass paced by it (``convergence``'s ``shared_store``)."""
    return {
        name: trades.store_units_per_month(t["store_calls"]["per_event"], passes) for name, t in work["trades"].items()
    }


def trade_rows(work: dict[str, Any], units_per_month: dict[str, Any]) -> list[str]:
    """The trades' runs of the 100-stage show (not built; docs/performance.md section 3) against issue 24's
    calls per event and IVS calls per action, beside the built run's, and what the store adds a month."""
    built = work["show100"]
    rows = []
    for name, t in work["trades"].items():
        store = t["store_calls"]
        detail = (
            f"{t['calls_per_event']:.2f}/event (built {built['calls_per_event']:.2f}), IVS "
            f"{t['ivs_calls_per_action']:.2f}/action (built {built['ivs_calls_per_action']:.2f}); the store's "
            f"UpdateItem {store['per_event']:.2f}/event, {store['per_ivs_call']:.2f} per IVS call "
            f"({store['refused']} of {store['writes']} refused)"
        )
        if "one_reader_cost" in t:
            detail += burst.one_reader_cost(t["one_reader_cost"])
        rows.append(
            _row(
                f"AWS calls: {t['scenario']}",
                detail,
                f"{t['floor_calls']} calls",
                t["ratio"],
                f"≤ {t['target_calls_per_event']}/event, ≤ {t['target_ivs_calls_per_action']} IVS/action",
                t["calls_met"],
            )
        )
        units = ", ".join(
            f"{stages} stages {u['write_units'] / 1e6:.2f} M (${u['dollars']:.2f}; the pass "
            f"{u['pass_writes_per_pass']['live']} a pass while stages are live)"
            for stages, u in units_per_month[name].items()
        )
        rows.append(
            _row(
                f"the store's DynamoDB write units a month: {t['scenario']}",
                units,
                "—",
                None,
                "—",
                None,
            )
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Every benchmark against its floor, in one run (`make bench`): prints one table and writes "
        "benchmarks/results.json, which docs/performance.md quotes. Takes about 20 minutes; run it on an "
        "otherwise idle machine (the cold-start figures are wall-clock). Each benchmark alone: "
        "python -m benchmarks.NAME --help.",
    )
    parser.parse_args(argv)
    logging.disable(logging.WARNING)  # the handlers' "will be retried" lines are expected here
    started = time.perf_counter()
    results: dict[str, Any] = {
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "cold_start": cold_start.run(runs=15),
        "cold_start_first_record": first_record.run(runs=15),
        "work_per_event": work_per_event.run(),
        "latency": latency.run(),
        # virtual time, 2 runs at a time in processes of their own: after the wall-clock ones, never beside them
        "burst": burst.run_all(),
        "package": package.run(),
        "convergence": convergence.run(),
        "simulate": simulate_throughput.run(),
    }
    results["request_units"] = request_units.run()  # virtual work: after the wall-clock benchmarks
    results["trades_cost"] = trades_cost(results["work_per_event"], results["convergence"]["shared_store"])
    results["cost"] = cost.run(
        results["work_per_event"]["show100"], results["latency"]["new_stages"], results["request_units"]
    )
    results["seconds"] = time.perf_counter() - started
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")

    cold = results["cold_start"]
    rows = ["| measure | value | floor | ratio | target | |", "|---|---|---|---|---|---|"]
    first = results["cold_start_first_record"]
    for name, h in first["handlers"].items():  # issue 24: ≤ 1.2× the fair floor, every handler
        rows.append(
            _row(
                f"cold start, first record that acts: {name}",
                f"{h['median_ms']:.0f} ms, CPU {h['cpu_ms']:.0f} ms ({h['cpu_ratio']:.2f}× the floor's); "
                f"{h['ratio_loader_floor']:.2f}× the stricter floor ({h['loader_floor_ms']:.0f} ms, the clients "
                f"made as the functions make them); the pacer's quiet window, {h['pacer_wait_ms']:.0f} ms, left out"
                f"{_load(first)}",
                f"{h['floor_ms']:.0f} ms (import, 2 clients, {h['floor_calls']} calls)",
                h["ratio"],
                f"≤ {first['target_ratio']}×",
                None if first.get("under_load") else h["ratio"] <= first["target_ratio"],  # wall time: idle only
            )
        )
    for name, h in cold["handlers"].items():
        rows.append(
            _row(
                f"cold start, import + init: {name}",
                f"{h['median_ms']:.0f} ms, CPU {h['cpu_ms']:.0f} ms ({h['cpu_ratio']:.2f}×){_load(cold)}",
                f"{h['floor_ms']:.0f} ms (import, {len(h['clients'])} clients)",
                h["ratio"],
                "—",
                None,
            )
        )
    work = results["work_per_event"]
    for w in (work[name] for name in ("demo", "show100", "show100_again")):
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
    rows.extend(trade_rows(work, results["trades_cost"]))
    lat = results["latency"]
    anchor = lat["anchor"]
    for kind, label in (
        ("new_stages", "new stage"),
        ("composed_before", "stage composed before"),
        ("new_stages_without_quiet_window", "new stage, without the pacer's quiet window (what it costs)"),
    ):
        for name in latency.ACTIONS:
            one = lat[kind][name]
            rows.append(
                _row(
                    f"latency, event on the bus → {latency.ACTIONS[name]}: {name}, {label}",
                    f"p50 {one['p50_seconds']:.2f} s, p99 {one['p99_seconds']:.2f} s ({one['actions']} actions)",
                    f"p50 {anchor['p50']:.2f} s, p99 {anchor['p99']:.2f} s (EventBridge → SQS → Lambda → IVS)",
                    one["p50_ratio"],
                    "against the anchor",
                    None,
                )
            )
    for stages in cost.FLEETS:
        c = results["cost"][str(stages)]
        rows.append(
            _row(
                f"cost a month, {stages} stages live {cost.LIVE_HOURS_PER_DAY} h/day",
                f"${c['total']:.2f}: Lambda {c['lambda']:.2f} (the pass {c['pass_share_of_lambda']:.0%}), "
                f"DynamoDB {c['dynamodb']:.2f} ({c['read_units_millions']:.1f} M read, "
                f"{c['write_units_millions']:.1f} M write units charged from measured item sizes; the pass log "
                f"{c['pass_log']:.2f}), SQS {c['sqs']:.2f}, CloudWatch {c['cloudwatch']:.2f}, KMS {c['kms']:.2f}",
                "—",
                None,
                "a table (docs/performance.md)",
                None,
            )
        )
    for b in [*results["burst"]["runs"], *results["burst"]["alternatives"]]:
        rows.extend(burst_rows(b))
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
