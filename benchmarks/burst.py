"""A burst under the IVS quota, time-ordered: N stages whose first publisher arrives within one second,
every IVS operation rate-limited by the stand-in at 5 calls per sliding second, on a virtual clock.

A discrete-event simulation of the deployment on the one discrete-event scheduler (local/scheduler.py):
each function container is an actor (a thread that runs only when the scheduler hands it the virtual
clock), and one global heap ordered by virtual time decides who runs next, so the stand-in's rate window
sees every call in the order of its virtual time.

- **Containers.** ``budget.CONCURRENCY`` containers per automation (composition, and with
  ``alongside=True`` replication and moderation, which fetch the same publisher with ``GetParticipant``),
  each with its own services and its own pacer at the deployed shares (``wiring.budget_pacer``): the
  pacer's clock is the virtual clock and its sleep yields to the scheduler. A free container takes its
  queue's next visible message; a failed record comes back after the back-off the handler asked for,
  and after ``MAX_RECEIVES`` it is dead.
- **Latency.** Every AWS call takes a seeded random latency (IVS 50-150 ms, DynamoDB 5-15 ms, as
  ``LocalDeployment``: docs/simulate.md) before the service sees it: the stand-in meters the call at its
  arrival. The IVS client is configured as the functions' (``FUNCTION_CLIENT_CONFIG``: botocore does not
  retry); DynamoDB's retries back off on the virtual clock.
- **The convergence pass beside it** (``with_pass``, as deployed): its own container (reserved concurrency
  1) runs a pass every minute of virtual time with the pass's pacer and its deadline (Lambda's remaining
  time, on the virtual clock), over the very stages the burst is composing: what it lists at its start is
  stale by the time it reaches a stage. Reported: each pass's duration against the 60-s timeout, the heals
  by reason (a burst with every event delivered must make no ``event-lost`` heal) and duplicates.
- **The application.** The customer's application spends its whole reserve
  (``budget.APPLICATION_RESERVE``, 1 call/s) of every rate-limited operation throughout, so a throttled
  stagepilot call is one the reserve did not cover.

**Floor** = stages ÷ the ``StartComposition`` rate the composition automation may use (its containers'
shares summed: ``budget.container_rates``), the fastest a burst can drain without taking the application's
reserve or the convergence pass's slice. ``quota_floor_seconds`` (stages ÷ 5/s, all of the quota) is
reported beside it.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import boto3

from benchmarks.lean_moto import lean_dynamodb
from benchmarks.work_per_event import ACCOUNT, REGION, T0, stage_arn, stage_event
from stagepilot import budget
from stagepilot.adapters.ivs import FUNCTION_CLIENT_CONFIG, IvsStage, Pacer
from stagepilot.adapters.table import Table
from stagepilot.automations import convergence_order
from stagepilot.automations.composition import CompositionAutomation
from stagepilot.automations.moderation import ModerationAutomation
from stagepilot.automations.replication import ReplicationAutomation
from stagepilot.config import Settings
from stagepilot.convergence import ParticipantCache, run_pass
from stagepilot.decisions.heals import HealReason, metric_name
from stagepilot.decisions.leases import FUNCTION_TIMEOUT_SECONDS
from stagepilot.local import ivs_world
from stagepilot.local.deployment import MAX_RECEIVES, TABLE_NAME, LocalDeployment, RecordingMetrics
from stagepilot.local.scheduler import AS_DEPLOYED, Scheduler, VirtualTime, call_latency
from stagepilot.pipeline import Automation, Services, handle_record
from stagepilot.policy import parse_policy

SIZES = (200, 1000)
PASS_PERIOD = 60.0  # the deployed schedule: rate(1 minute)
PASS_TRIGGER = "reconcile"  # the stand-in's ``trigger`` of the pass's calls
QUOTA_PER_SECOND = budget.QUOTA_PER_OPERATION
LATENCY = AS_DEPLOYED  # IVS 50-150 ms, DynamoDB 5-15 ms (docs/simulate.md)
POLL_SECONDS = 0.2  # how often an idle container looks at its queue again
APPLICATION = "application"  # the stand-in's ``trigger`` of the application's own calls
STORAGE = f"arn:aws:ivs:{REGION}:{ACCOUNT}:storage-configuration/BurstStorage01"
ENCODER = f"arn:aws:ivs:{REGION}:{ACCOUNT}:encoder-configuration/BurstEncoder01"
RESULTS = Path(__file__).resolve().parent / "results.json"


@dataclass(order=True)
class Message:
    visible_at: float
    seq: int
    body: str = field(compare=False)
    message_id: str = field(compare=False)
    receives: int = field(compare=False, default=0)


@dataclass
class Queue:
    messages: list[Message] = field(default_factory=list)
    in_flight: int = 0
    handled: int = 0
    failed_receives: int = 0
    dead: int = 0


class _Redelivery:
    def __init__(self) -> None:
        self.delay: float | None = None

    def park(self, record: Any, reason: str) -> None:
        raise RuntimeError(f"a burst event was parked as malformed: {reason}")

    def retry_after(self, record: Any, seconds: float) -> None:
        self.delay = seconds


def _container(
    deployment: LocalDeployment,
    scheduler: Scheduler,
    automation: Automation,
    queue: Queue,
    pacer: Pacer,
    rng: random.Random,
) -> Callable[[], None]:
    """One function container of ``automation``: its clients, services and pacer, and its receive loop."""
    services = _container_services(deployment, scheduler, pacer, rng)

    def receive_loop() -> None:
        while queue.messages or queue.in_flight:
            if not queue.messages or queue.messages[0].visible_at > scheduler.now:
                wait = queue.messages[0].visible_at - scheduler.now if queue.messages else POLL_SECONDS
                scheduler.sleep(min(wait, POLL_SECONDS))
                continue
            message = heapq.heappop(queue.messages)
            message.receives += 1
            queue.in_flight += 1
            record = {
                "messageId": message.message_id,
                "body": message.body,
                "receiptHandle": message.message_id,
                "attributes": {"ApproximateReceiveCount": str(message.receives)},
            }
            redelivery = _Redelivery()
            try:
                handle_record(record, automation, services, redelivery)
                queue.handled += 1
            except Exception:
                queue.failed_receives += 1
                if message.receives >= MAX_RECEIVES:
                    queue.dead += 1
                else:
                    delay = redelivery.delay if redelivery.delay is not None else 30.0
                    message.visible_at = scheduler.now + delay
                    heapq.heappush(queue.messages, message)
            finally:
                queue.in_flight -= 1

    return receive_loop


@dataclass
class Passes:
    """What the convergence pass did beside the burst."""

    durations: list[float] = field(default_factory=list)
    healed: dict[str, int] = field(default_factory=dict)  # heal reason -> heals (from the Healed<Reason> metrics)
    out_of_time: int = 0  # passes that stopped starting stages near their deadline (the rest: next pass)


def _convergence(
    deployment: LocalDeployment,
    scheduler: Scheduler,
    rng: random.Random,
    done: Callable[[], bool],
    passes: Passes,
    queues: dict[str, Queue],
) -> Callable[[], None]:
    """The convergence function's one container: a pass every ``PASS_PERIOD`` while the burst runs; a
    scheduled pass that comes due while one still runs is not started (reserved concurrency 1)."""
    pacer = Pacer(
        budget.CONSERVATIVE_RATE,
        rates=budget.container_rates(budget.CONVERGENCE),
        clock=lambda: scheduler.now,
        sleep=scheduler.sleep,
    )
    services = _container_services(deployment, scheduler, pacer, rng)
    # what SQS would answer the pass (adapters/queues.py): the automation's queue holds events
    services.events_queued = lambda name: (
        bool(queues[name].messages or queues[name].in_flight) if name in queues else None
    )
    automations = [a for a in convergence_order() if a.name != "stage"]  # no settings in these policies
    participants = ParticipantCache()

    def schedule() -> None:
        due = PASS_PERIOD
        while not done():
            scheduler.sleep(due - scheduler.now)
            began = scheduler.now

            def remaining_ms(began: float = began) -> float:
                return (FUNCTION_TIMEOUT_SECONDS - (scheduler.now - began)) * 1000

            deployment.ivs.trigger = PASS_TRIGGER
            report = run_pass(services, automations, remaining_ms=remaining_ms, participants=participants)
            deployment.ivs.trigger = None
            passes.durations.append(scheduler.now - began)
            passes.out_of_time += report.out_of_time
            while due <= scheduler.now:  # a tick that came while this pass ran was refused
                due += PASS_PERIOD

    return schedule


def _container_services(
    deployment: LocalDeployment, scheduler: Scheduler, pacer: Pacer, rng: random.Random
) -> Services:
    """One container's clients and services: IVS as the functions configure it (the stand-in makes every
    attempt wait the deployment's latency), and its own DynamoDB client on moto's table, each call waiting
    its latency on the virtual clock."""
    table_client = boto3.client("dynamodb", region_name=REGION)
    table_client.meta.events.register("before-send", call_latency(scheduler, LATENCY.dynamodb, rng))
    return Services(
        settings=deployment.settings,
        table=Table(table_client, TABLE_NAME),
        ivs=IvsStage(deployment.ivs.client(config=FUNCTION_CLIENT_CONFIG), pacer=pacer),
        metrics=deployment.metrics,
        clock=deployment.clock,
    )


def _until_done(body: Callable[[], None], working: list[int]) -> Callable[[], None]:
    def run() -> None:
        try:
            body()
        finally:
            working[0] -= 1

    return run


def _application(
    deployment: LocalDeployment, scheduler: Scheduler, operations: list[str], done: Callable[[], bool]
) -> Callable[[], None]:
    """The customer's application: exactly ``APPLICATION_RESERVE`` calls/s of each operation, each a second
    apart, at a random phase per operation (answered or refused, they count in IVS's window)."""
    interval = 1.0 / budget.APPLICATION_RESERVE
    arn = stage_arn("Application")

    def run() -> None:
        phase = {op: i / len(operations) * interval for i, op in enumerate(operations)}
        scheduler.sleep(min(phase.values()))
        next_call = dict(phase)
        while not done():
            operation = min(next_call, key=next_call.__getitem__)
            scheduler.sleep(next_call[operation] - scheduler.now)
            deployment.ivs.trigger = APPLICATION
            deployment.ivs.handle_http(f"/{operation}", json.dumps({"arn": arn, "stageArn": arn}))
            deployment.ivs.trigger = None
            next_call[operation] += interval

    return run


def _policy(arn: str, destination: str | None) -> dict[str, Any]:
    policy: dict[str, Any] = {
        "stageArn": arn,
        "composition": {
            "layout": {"grid": {}},
            "destinations": [{"s3": {"storageConfigurationArn": STORAGE, "encoderConfigurationArns": [ENCODER]}}],
        },
    }
    if destination is not None:
        policy["replication"] = [{"destinationStageArn": destination}]
        policy["moderation"] = {"blockedAttributes": {"tier": ["suspended"]}}  # GetParticipant per publish
    return policy


def run(
    stages: int = SIZES[0],
    *,
    alongside: bool = True,
    seed: int = 1,
    shares: Callable[[str], dict[str, float]] = budget.container_rates,
    label: str = "as deployed",
    with_pass: bool = True,
) -> dict[str, Any]:
    """One burst of ``stages`` first publishes; ``alongside``: replication and moderation run too;
    ``with_pass``: the convergence pass runs beside it, as deployed.
    ``shares``: each container's calls/s per operation (the deployed split unless measuring another)."""
    import botocore.endpoint
    from moto import mock_aws

    rng = random.Random(seed)
    logging.getLogger("stagepilot").setLevel(logging.ERROR)  # "will be retried" lines say nothing here
    automations: list[Automation] = [CompositionAutomation()]
    if alongside:
        automations += [ReplicationAutomation(), ModerationAutomation()]
    # The default account quota is 20 live compositions (adjustable); a burst operator has raised it.
    with (
        mock_aws(),
        mock.patch.object(ivs_world, "MAX_COMPOSITIONS_PER_ACCOUNT", 10 * stages),
        mock.patch.object(botocore.endpoint, "time", VirtualTime()),
        lean_dynamodb(),  # else each transaction copies the whole table, and moto keeps every copy
    ):
        deployment = LocalDeployment(
            account=ACCOUNT,
            region=REGION,
            start=T0,
            automations=[CompositionAutomation()],
            settings=Settings(table_name=TABLE_NAME, policy_cache_seconds=30.0),
            latency=None,  # this benchmark runs its own containers, with the latency below
        )
        deployment.metrics = RecordingMetrics()
        scheduler = Scheduler(deployment.clock)
        VirtualTime.scheduler = scheduler
        deployment.ivs.call_delay = call_latency(scheduler, LATENCY.ivs, random.Random(rng.random()))
        callers = [a.name for a in automations] + ([budget.CONVERGENCE] if with_pass else [])
        called = sorted({op for name in callers for op in budget.operations_of(name)})
        for operation in called:
            deployment.ivs.set_rate_limit(operation, QUOTA_PER_SECOND)
        arns = [stage_arn(f"Burst{i:04d}") for i in range(stages)]
        for i, arn in enumerate(arns):
            deployment.ivs.create_stage(arn)
            destination = stage_arn(f"Dest{i:04d}") if alongside else None
            if destination is not None:
                deployment.ivs.create_stage(destination)
            deployment.services.policies.put(parse_policy(_policy(arn, destination)))
        queues = {a.name: Queue() for a in automations}
        seq = itertools.count()
        for i, arn in enumerate(arns):
            at = rng.uniform(0.0, 1.0)
            event = stage_event(f"b-{i}", arn, f"st-Burst{i:08d}", "Participant Published", f"pUb{i:04d}x", "", T0)
            deployment.clock.now = T0 + timedelta(seconds=at)
            deployment.ivs.observe(event)  # the stage's session starts with this publisher
            for queue in queues.values():
                heapq.heappush(queue.messages, Message(at, next(seq), json.dumps(event), f"m-{i}"))
        deployment.clock.now = T0
        deployment.ivs.calls.clear()
        working = [0]  # containers still receiving
        for automation in automations:
            for _ in range(budget.CONCURRENCY[automation.name]):
                # The deployed shares (wiring.budget_pacer), on the scheduler's clock.
                pacer = Pacer(
                    budget.CONSERVATIVE_RATE,
                    rates=shares(automation.name),
                    clock=lambda: scheduler.now,
                    sleep=scheduler.sleep,
                )
                body = _container(
                    deployment, scheduler, automation, queues[automation.name], pacer, random.Random(rng.random())
                )
                working[0] += 1
                scheduler.spawn(_until_done(body, working), at=rng.uniform(0.0, 0.05))
        consumers = working[0]

        def burst_done() -> bool:
            return working[0] == 0

        passes = Passes()
        if with_pass:
            pass_rng = random.Random(rng.random())
            scheduler.spawn(_convergence(deployment, scheduler, pass_rng, burst_done, passes, queues))
        scheduler.spawn(_application(deployment, scheduler, called, burst_done))
        started = time.perf_counter()
        scheduler.run()
        wall = time.perf_counter() - started
        report = _report(deployment, arns, queues, called, shares=shares, consumers=consumers, wall=wall)
        report.update(_pass_report(passes, deployment, with_pass=with_pass))
        report["met"] = report["met"] and report["pass_met"]
        return {"label": label, "alongside": alongside, **report}


def _pass_report(passes: Passes, deployment: LocalDeployment, *, with_pass: bool) -> dict[str, Any]:
    """The pass beside the burst: never past its timeout, never a lost-event heal when no event was lost."""
    for reason in HealReason:  # each heal is counted under its reason (the audit entry's healReason)
        if deployment.metrics.counts.get(metric_name(reason)):
            passes.healed[reason.value] = int(deployment.metrics.counts[metric_name(reason)])
    event_lost = passes.healed.get(HealReason.EVENT_LOST.value, 0)
    longest = max(passes.durations, default=0.0)
    return {
        "with_pass": with_pass,
        "passes": len(passes.durations),
        "pass_longest_seconds": longest,
        "pass_timeout_seconds": FUNCTION_TIMEOUT_SECONDS,
        "passes_out_of_time": passes.out_of_time,
        "healed_by_reason": dict(sorted(passes.healed.items())),
        "healed_event_lost": event_lost,
        "pass_met": (not with_pass) or (longest <= FUNCTION_TIMEOUT_SECONDS and event_lost == 0),
    }


def _report(
    deployment: LocalDeployment,
    arns: list[str],
    queues: dict[str, Queue],
    operations: list[str],
    *,
    shares: Callable[[str], dict[str, float]],
    consumers: int,
    wall: float,
) -> dict[str, Any]:
    stages = len(arns)
    everything_ours = [c for c in deployment.ivs.calls if c.trigger != APPLICATION]  # the pass's calls included
    ours = [c for c in everything_ours if c.trigger != PASS_TRIGGER]  # the event path's: what drains the burst
    ok = [c for c in ours if c.operation == "StartComposition" and c.status == 200]
    per_stage: dict[str, int] = {}
    for composition in deployment.ivs.compositions(include_deleted=True):
        per_stage[composition.stage_arn] = per_stage.get(composition.stage_arn, 0) + 1
    drain = max((c.time - T0).total_seconds() for c in ok) if ok else float("inf")
    # The floor is always the deployed share: an alternative split is measured against the same budget.
    rate = budget.container_rates(budget.COMPOSITION)["StartComposition"] * budget.CONCURRENCY[budget.COMPOSITION]
    floor = stages / rate
    by_op = {op: sum(1 for c in ours if c.operation == op) for op in operations}
    throttled = {op: sum(1 for c in everything_ours if c.operation == op and c.status == 429) for op in operations}
    app_throttled = sum(1 for c in deployment.ivs.calls if c.trigger == APPLICATION and c.status == 429)
    # Every automation's floor: an operation's calls at the rate all its callers' containers may use.
    may_use = {op: sum(budget.container_rates(n).get(op, 0.0) * budget.CONCURRENCY[n] for n in queues) for op in by_op}
    all_floor = max((by_op[op] / may_use[op] for op in by_op if by_op[op] and may_use[op]), default=0.0)
    all_drained = max((c.time - T0).total_seconds() for c in ours) if ours else 0.0
    once = sum(1 for arn in arns if per_stage.get(arn) == 1)
    dead = sum(q.dead for q in queues.values())
    ratio = drain / floor
    result = {
        "stages": stages,
        "consumers": consumers,
        "composition_start_rate": rate,
        "pacer_per_container": {name: shares(name) for name in queues},
        "compositions": sum(per_stage.values()),
        "stages_with_one_composition": once,
        "stages_without": sum(1 for arn in arns if arn not in per_stage),
        "duplicates": sum(n - 1 for n in per_stage.values() if n > 1),
        "dead_letters": dead,
        "records_retried": sum(q.failed_receives for q in queues.values()),
        "handled": {name: q.handled for name, q in queues.items()},
        "calls_per_operation": by_op,
        "throttled_per_operation": throttled,
        "throttled_calls": sum(throttled.values()),
        "application_throttled_calls": app_throttled,
        "drain_seconds": drain,
        "all_drained_seconds": all_drained,
        "all_floor_seconds": all_floor,
        "all_ratio": all_drained / all_floor if all_floor else None,
        "floor_seconds": floor,
        "quota_floor_seconds": stages / QUOTA_PER_SECOND,
        "ratio": ratio,
        "target_ratio": 1.10,
        "met": ratio <= 1.10 and once == stages and dead == 0 and not sum(throttled.values()) and not app_throttled,
        "wall_seconds": wall,
    }
    return result


def previous_split(caller: str) -> dict[str, float]:
    """The split before the shared budget: 2.0 calls/s of every operation in every container."""
    return dict.fromkeys(budget.operations_of(caller), 2.0)


def run_all(sizes: tuple[int, ...] = SIZES) -> dict[str, Any]:
    """The deployed split at each size with all three automations, and the previous split beside it.
    The 1,000-stage run takes about 4 minutes and under 250 MB on the reference machine (every container is a
    thread on one virtual clock); ``make bench`` runs both."""
    return {
        "runs": [run(size) for size in sizes],
        "alternatives": [
            run(SIZES[0], shares=previous_split, label="previous: 2.0/s of every operation"),
            run(SIZES[0], with_pass=False, label="as deployed, without the convergence pass"),
        ],
    }


def main(argv: list[str]) -> int:
    """``python -m benchmarks.burst``: written into ``benchmarks/results.json`` (key ``burst``)."""
    burst = run_all()
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["burst"] = burst
    results.pop("burst_alternatives", None)
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    for one in [*burst["runs"], *burst["alternatives"]]:
        print(summary(one))
    return 0


def summary(one: dict[str, Any]) -> str:
    throttled = {op: n for op, n in one["throttled_per_operation"].items() if n}
    return (
        f"{one['label']}, {one['stages']} stages: composed in {one['drain_seconds']:.1f} s "
        f"(floor {one['floor_seconds']:.1f} s, {one['ratio']:.2f}x), all automations in "
        f"{one['all_drained_seconds']:.1f} s ({one['all_ratio']:.2f}x their floor); "
        f"{one['stages_with_one_composition']}/{one['stages']} once, {one['duplicates']} duplicated, "
        f"{one['dead_letters']} lost; throttled {throttled or 0}, application {one['application_throttled_calls']}"
        + (
            f"; pass beside it: {one['passes']} passes, longest {one['pass_longest_seconds']:.1f} s of "
            f"{one['pass_timeout_seconds']} s, heals {one['healed_by_reason'] or 0}"
            if one.get("with_pass")
            else ""
        )
    )


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
