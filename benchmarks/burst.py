"""A burst under the IVS quota, as deployed: N stages whose first publisher arrives within one second,
every IVS operation rate-limited by the stand-in at 5 calls per sliding second, on a virtual clock.

A discrete-event simulation of the deployment on ``LocalDeployment``'s scheduler (local/scheduler.py):
each function's execution environment is built as ``LocalDeployment`` builds its containers (its pacer
is ``Pacer.for_caller``, the one the functions build, on the virtual wall clock: frames included), and one
heap ordered by virtual time decides who runs next, so the stand-in's rate window sees every call in the
order of its virtual time. What is as deployed, and where it is read from:

- **SQS batches** (``BATCH_SIZE``, no batching window: ``infra/pipeline.py``, pinned by
  ``tests/infra/test_pipelines.py``). Each automation's event source runs at most
  ``budget.CONCURRENCY`` invocations at once (MaximumConcurrency = reserved concurrency); each takes up to
  ``BATCH_SIZE`` visible messages and runs them through the handlers' own batch loop
  (``wiring.handle_batch``: the invocation's deadline, each record on its own, ``batchItemFailures``). A
  failed record comes back when its back-off says (``ChangeMessageVisibility``), the others are deleted;
  an invocation past its timeout is stopped wherever it is and its whole batch comes back after the
  queue's visibility timeout; a record failed ``MAX_RECEIVES`` times is dead.
- **Cold starts.** Each environment's first invocation first pays ``COLD_START_SECONDS`` of virtual time
  (import and init, docs/performance.md section 1), and so does the convergence function's.
- **Latency.** Every AWS call takes ``LocalDeployment``'s seeded latency (IVS 50-150 ms, DynamoDB 5-15 ms:
  docs/simulate.md); the IVS client as the functions configure it (botocore does not retry); a throttled
  call is sent again in-process after its jittered wait while the invocation has time (``set_deadline``).
- **The convergence pass beside it**: its function (reserved concurrency 1) runs a pass every minute of
  virtual time with the pass's pacer and its deadline, over the very stages the burst is composing.
- **The application** spends its reserve (``budget.APPLICATION_RESERVE``, 1 call/s) of every rate-limited
  operation on average, at Poisson arrivals (seeded): some seconds it sends 2, 3 or more (``application=
  "poisson"``, the sensitivity figure). ``application="bounded"``: the same arrivals through a client-side
  limiter that holds a call back (never drops it) until it puts at most the application's part
  (``APPLICATION_PART``: IVS's 5 less stagepilot's 3) of its calls of an operation into any one second.
- **The deploy case** (``extra_environments=1``): one more environment per function than it may run at
  once. Reserved concurrency caps concurrent executions, not environments, so the extra one exists (a
  deploy's new version beside the old) but never runs beside the others; each invocation goes to the
  environment idle longest, so every invocation may land where the previous calls of its slot were not
  seen (docs/simulate.md says why that choice).

**Floor** = stages ÷ ``budget.FUNCTIONS_PER_SECOND`` (3/s): the calls of ``StartComposition`` stagepilot's
functions may send in any second, all of them; each automation's floor is its own operation's needed calls
at that rate. ``share_floor_seconds`` (stages ÷ the composition containers' own shares) and
``quota_floor_seconds`` (stages ÷ 5/s) are reported beside it.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import multiprocessing
import random
import subprocess
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from unittest import mock

from aws_lambda_powertools import Logger

from benchmarks import cli, trades
from benchmarks.trades import PASS_TRIGGER, OneReader, PassRecords
from benchmarks.work_per_event import ACCOUNT, REGION, T0, stage_arn, stage_event
from stagepilot import budget
from stagepilot.adapters.ivs import Pacer
from stagepilot.automations import convergence_order
from stagepilot.automations.composition import CompositionAutomation
from stagepilot.automations.moderation import ModerationAutomation
from stagepilot.automations.replication import ReplicationAutomation
from stagepilot.config import Settings
from stagepilot.convergence import ParticipantCache, run_pass
from stagepilot.decisions.heals import HealReason, metric_name
from stagepilot.decisions.leases import FUNCTION_TIMEOUT_SECONDS
from stagepilot.handlers.wiring import handle_batch, set_deadline
from stagepilot.local import ivs_world
from stagepilot.local.deployment import MAX_RECEIVES, TABLE_NAME, LocalDeployment
from stagepilot.local.lean_moto import lean_dynamodb
from stagepilot.local.scheduler import AS_DEPLOYED, Cancelled, VirtualTime
from stagepilot.pipeline import Automation, Services
from stagepilot.policy import parse_policy

SIZES = (200, 1000)
TARGET_RATIO = 1.25  # issue 24: each burst within 1.25x of its floor
BATCH_SIZE = 10  # infra/pipeline.py BATCH_SIZE; no MaximumBatchingWindowInSeconds (0: a batch of what is there)
VISIBILITY_TIMEOUT_SECONDS = 6 * FUNCTION_TIMEOUT_SECONDS  # infra/pipeline.py VISIBILITY_TIMEOUT
# Import and init of each handler, measured from the source tree (docs/performance.md section 1, 2026-12-01:
# 506 / 507 / 534 ms). The convergence function's is not measured: moderation's, the slowest, stands in.
# Lambda's own environment creation comes on top and is not counted.
COLD_START_SECONDS: Mapping[str, float] = {
    budget.COMPOSITION: 0.506,
    budget.REPLICATION: 0.507,
    budget.MODERATION: 0.534,
    budget.CONVERGENCE: 0.534,
}
PASS_PERIOD = 60.0  # the deployed schedule: rate(1 minute)
SETTLE_SECONDS = 3 * PASS_PERIOD  # after the queues drained: the passes that may still compose a stage
POLL_SECONDS = 0.2  # how often an idle poller looks at its queue again
APPLICATION = "application"  # the stand-in's ``trigger`` of the application's own calls
STORAGE = f"arn:aws:ivs:{REGION}:{ACCOUNT}:storage-configuration/BurstStorage01"
ENCODER = f"arn:aws:ivs:{REGION}:{ACCOUNT}:encoder-configuration/BurstEncoder01"
RESULTS = Path(__file__).resolve().parent / "results.json"
# Each automation's own operation: what its floor counts (one call per stage is needed).
OWN_OPERATION: Mapping[str, str] = {
    budget.COMPOSITION: "StartComposition",
    budget.REPLICATION: "StartParticipantReplication",
    budget.MODERATION: "GetParticipant",  # the publisher's attributes: what a blocked-attribute rule needs
}


@dataclass(order=True)
class Message:
    visible_at: float
    seq: int
    body: str = field(compare=False)
    message_id: str = field(compare=False)
    receives: int = field(compare=False, default=0)
    received_at: float = field(compare=False, default=0.0)


@dataclass
class Queue:
    messages: list[Message] = field(default_factory=list)
    in_flight: int = 0
    handled: int = 0
    failed_receives: int = 0
    dead: int = 0
    batches: int = 0
    largest_batch: int = 0
    invocations_timed_out: int = 0
    last_done: float = 0.0  # when its last record was handled


class _Visibility:
    """What the batch asks SQS: a failed record's visibility shortened to its back-off (``SqsRedelivery``)."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self.visible_at: dict[str, float] = {}

    def park(self, record: Any, reason: str) -> None:
        raise RuntimeError(f"a burst event was parked as malformed: {reason}")

    def retry_after(self, record: Mapping[str, Any], seconds: float) -> None:
        self.visible_at[str(record["messageId"])] = self._now() + seconds


@dataclass
class _Context:
    """Lambda's context as the handlers read it: the invocation's remaining time, on the virtual clock."""

    now: Callable[[], float]
    deadline: float

    def get_remaining_time_in_millis(self) -> float:
        return (self.deadline - self.now()) * 1000


class _Function:
    """One function: its execution environments (``LocalDeployment.container``), at most ``concurrency``
    running at once; a cold environment pays its cold start on its first invocation."""

    def __init__(self, deployment: LocalDeployment, name: str, environments: int) -> None:
        self.deployment = deployment
        self.name = name
        self.environments = [deployment.container(name, i) for i in range(environments)]
        self._last_end = dict.fromkeys(range(environments), -1.0)
        self._warm: set[int] = set()
        self._services: dict[int, Services] = {}
        self.cold_starts = 0

    def invoke(self, body: Callable[[Services], None]) -> None:
        """Run ``body`` in the idle environment that has been idle longest (a cold one pays its start)."""
        scheduler = self.deployment.scheduler
        idle = [i for i, env in enumerate(self.environments) if not env.busy]
        index = min(idle, key=lambda i: (self._last_end[i], i))
        environment = self.environments[index]
        environment.busy = True
        try:
            if index not in self._warm:
                self.cold_starts += 1
                scheduler.sleep(COLD_START_SECONDS[self.name])
                self._warm.add(index)
                self._services[index] = self.deployment.function_services(self.name, environment)
            body(self._services[index])
        except Cancelled:  # stopped at its timeout: Lambda starts the environment afresh next time
            self._warm.discard(index)
            self._services.pop(index, None)
            raise
        finally:
            environment.busy = False
            self._last_end[index] = scheduler.now


def _poller(
    function: _Function,
    automation: Automation,
    queue: Queue,
    logger: Logger,
    working: list[int],
) -> Callable[[], None]:
    """One of the event source's concurrent invocations: receive a batch, invoke the function with it, and
    act on its answer, until the queue is drained; an invocation past its timeout is stopped (its batch
    comes back after the visibility timeout) and the poller goes on."""
    scheduler = function.deployment.scheduler
    current: dict[str, Any] = {}

    def receive() -> list[Message]:
        batch: list[Message] = []
        while queue.messages and queue.messages[0].visible_at <= scheduler.now and len(batch) < BATCH_SIZE:
            message = heapq.heappop(queue.messages)
            message.receives += 1
            message.received_at = scheduler.now
            batch.append(message)
        return batch

    def settle(batch: list[Message], failed: set[str], visibility: _Visibility) -> None:
        for message in batch:
            if message.message_id not in failed:
                queue.handled += 1
                queue.last_done = scheduler.now
                continue
            queue.failed_receives += 1
            if message.receives >= MAX_RECEIVES:
                queue.dead += 1
                continue
            message.visible_at = visibility.visible_at.get(
                message.message_id, message.received_at + VISIBILITY_TIMEOUT_SECONDS
            )
            heapq.heappush(queue.messages, message)

    def timeout(batch: list[Message], visibility: _Visibility, handle: Any) -> Callable[[], None]:
        def stop() -> None:
            if current.get("batch") is not batch:
                return  # the invocation ended in time
            queue.invocations_timed_out += 1
            current.pop("batch")
            queue.in_flight -= len(batch)
            settle(batch, {m.message_id for m in batch}, visibility)
            scheduler.cancel(handle)
            working[0] += 1
            current["handle"] = scheduler.spawn(run_loop)

        return stop

    def run_loop() -> None:
        try:
            loop()
        finally:
            working[0] -= 1

    def invoke(batch: list[Message]) -> None:
        queue.in_flight += len(batch)
        queue.batches += 1
        queue.largest_batch = max(queue.largest_batch, len(batch))
        visibility = _Visibility(lambda: scheduler.now)
        event = {
            "Records": [
                {
                    "messageId": m.message_id,
                    "body": m.body,
                    "receiptHandle": m.message_id,
                    "attributes": {"ApproximateReceiveCount": str(m.receives)},
                    "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:stagepilot-{automation.name}",
                }
                for m in batch
            ]
        }
        answer: dict[str, Any] = {}

        def body(services: Services) -> None:
            context = _Context(lambda: scheduler.now, scheduler.now + FUNCTION_TIMEOUT_SECONDS)
            scheduler.spawn(timeout(batch, visibility, current["handle"]), at=context.deadline)
            answer.update(
                handle_batch(
                    event, context, automation=automation, services=services, redelivery=visibility, logger=logger
                )
            )

        current["batch"] = batch
        function.invoke(body)
        current.pop("batch", None)
        queue.in_flight -= len(batch)
        settle(batch, {f["itemIdentifier"] for f in answer["batchItemFailures"]}, visibility)

    def loop() -> None:
        while queue.messages or queue.in_flight:
            batch = receive()
            if batch:
                invoke(batch)
                continue
            wait = queue.messages[0].visible_at - scheduler.now if queue.messages else POLL_SECONDS
            scheduler.sleep(max(0.0, min(wait, POLL_SECONDS)))

    working[0] += 1
    return lambda: current.update(handle=scheduler.spawn(run_loop))


@dataclass
class Passes:
    """What the convergence pass did beside the burst."""

    durations: list[float] = field(default_factory=list)
    healed: dict[str, int] = field(default_factory=dict)  # heal reason -> heals (from the Healed<Reason> metrics)
    out_of_time: int = 0  # passes that stopped starting stages near their deadline (the rest: next pass)


def _convergence(
    function: _Function,
    done: Callable[[], bool],
    passes: Passes,
    queues: dict[str, Queue],
    records: PassRecords | None = None,
) -> Callable[[], None]:
    """The convergence function: a pass every ``PASS_PERIOD`` while the burst runs, in its environment (a
    participant cache each, kept across passes); a scheduled pass that comes due while one still runs is
    not started (reserved concurrency 1)."""
    scheduler = function.deployment.scheduler
    automations = [a for a in convergence_order() if a.name != "stage"]  # no settings in these policies
    caches: dict[int, ParticipantCache] = {}

    def one_pass(services: Services) -> None:
        # what SQS would answer the pass (adapters/queues.py): the automation's queue holds events
        services.events_queued = lambda name: (
            bool(queues[name].messages or queues[name].in_flight) if name in queues else None
        )
        context = _Context(lambda: scheduler.now, scheduler.now + FUNCTION_TIMEOUT_SECONDS)
        set_deadline(services, context)
        participants = caches.setdefault(id(services), ParticipantCache())
        function.deployment.ivs.trigger = PASS_TRIGGER
        try:
            with trades.pass_view(services, records):
                report = run_pass(
                    services, automations, remaining_ms=context.get_remaining_time_in_millis, participants=participants
                )
        finally:
            function.deployment.ivs.trigger = None
        passes.out_of_time += report.out_of_time

    def schedule() -> None:
        due = PASS_PERIOD
        while not done():
            scheduler.sleep(due - scheduler.now)
            if done():
                return
            began = scheduler.now
            function.invoke(one_pass)
            passes.durations.append(scheduler.now - began)
            while due <= scheduler.now:  # a tick that came while this pass ran was refused
                due += PASS_PERIOD

    return schedule


APPLICATIONS = ("poisson", "bounded")  # ``run(application=...)``: how the customer's application calls
# The bounded application's own part of each operation: what the budget leaves it in any one second.
APPLICATION_PART = budget.QUOTA_PER_OPERATION - budget.FUNCTIONS_PER_SECOND
# Its limiter's slack past the one-second window: the stand-in's clock keeps microseconds.
APPLICATION_SLACK_SECONDS = 0.001


def _arrivals(operations: list[str], rng: random.Random) -> Iterator[tuple[float, str]]:
    """The application's calls as they arise: each operation's at Poisson arrivals of
    ``APPLICATION_RESERVE`` calls/s, in time order (the same draws, in the same order, for both models)."""
    arrivals = [(rng.expovariate(budget.APPLICATION_RESERVE), op) for op in operations]
    heapq.heapify(arrivals)
    while True:
        at, operation = heapq.heappop(arrivals)
        yield at, operation
        heapq.heappush(arrivals, (at + rng.expovariate(budget.APPLICATION_RESERVE), operation))


def bounded_sends(arrivals: Iterator[tuple[float, str]], part: int = APPLICATION_PART) -> Iterator[tuple[float, str]]:
    """What a client-side rate limiter makes of ``arrivals``: each call sent in order of its operation's
    arrivals, held back (never dropped) until sending it puts at most ``part`` of these calls of its
    operation into any one second (IVS's sliding window, ``(t - 1, t]``); in time order."""
    sent: dict[str, deque[float]] = {}
    pending: list[tuple[float, int, str]] = []
    seq = itertools.count()
    upcoming = next(arrivals)
    while True:
        # a call is never sent before it arises: every arrival up to the earliest pending send is placed first
        while not pending or upcoming[0] <= pending[0][0]:
            at, operation = upcoming
            recent = sent.setdefault(operation, deque(maxlen=part))
            send_at = max(at, recent[0] + 1.0 + APPLICATION_SLACK_SECONDS) if len(recent) == part else at
            recent.append(send_at)
            heapq.heappush(pending, (send_at, next(seq), operation))
            upcoming = next(arrivals)
        send_at, _, operation = heapq.heappop(pending)
        yield send_at, operation


def _application(
    deployment: LocalDeployment, operations: list[str], done: Callable[[], bool], rng: random.Random, model: str
) -> Callable[[], None]:
    """The customer's application: ``APPLICATION_RESERVE`` calls/s of each operation on average, each
    operation's calls at Poisson arrivals (answered or refused, they count in IVS's window as IVS counts).
    ``model`` "poisson": each call sent as it arises (some seconds 2, 3 or more of one operation);
    "bounded": the same arrivals through a client-side limiter that keeps to the application's part
    (``APPLICATION_PART`` in any second of an operation, ``bounded_sends``)."""
    scheduler = deployment.scheduler
    arn = stage_arn("Application")
    if model not in APPLICATIONS:
        raise ValueError(f"unknown application model {model!r}; expected one of {', '.join(APPLICATIONS)}")

    def run() -> None:
        sends = _arrivals(operations, rng)
        if model == "bounded":
            sends = bounded_sends(sends)
        while not done():
            at, operation = next(sends)
            scheduler.sleep(at - scheduler.now)
            deployment.ivs.trigger = APPLICATION
            deployment.ivs.handle_http(f"/{operation}", json.dumps({"arn": arn, "stageArn": arn}))
            deployment.ivs.trigger = None

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


_DEPLOYED_PACER = Pacer.for_caller  # kept before any run replaces it with the shared store


def run(
    stages: int = SIZES[0],
    *,
    alongside: bool = True,
    seed: int = 1,
    extra_environments: int = 0,
    shared_store: bool = False,
    label: str = "as deployed",
    with_pass: bool = True,
    application: str = "poisson",
    one_reader: bool = False,
    pass_reads_records: bool = False,
) -> dict[str, Any]:
    """One burst of ``stages`` first publishes; ``alongside``: replication and moderation run too;
    ``with_pass``: the convergence pass runs beside it; ``extra_environments``: environments per function
    beyond its reserved concurrency (1: the deploy case); ``shared_store``: every function paced by one shared
    log in the table instead (the trade docs/performance.md weighs, ``trades.SharedStore``: its DynamoDB calls
    are made, and counted in ``store_calls``); ``application``:
    "poisson" (its calls sent as they arise) or "bounded" (held back to its part, ``bounded_sends``);
    ``one_reader``: moderation waits for replication's publisher record instead of its own ``GetParticipant``
    (a trade, not built: ``trades.one_reader``); ``pass_reads_records``: the pass takes a publisher's token from
    the event path's publisher record when there is one (a trade, not built: ``trades.RecordFirstPassIvs``)."""
    if application not in APPLICATIONS:
        raise ValueError(f"unknown application model {application!r}; expected one of {', '.join(APPLICATIONS)}")
    import botocore.endpoint
    from moto import mock_aws

    commit = _commit()  # what is measured: the tree as the run starts
    rng = random.Random(seed)
    logging.getLogger("stagepilot").setLevel(logging.ERROR)  # "will be retried" lines say nothing here
    logger = Logger(service="burst", level="ERROR")
    automations: list[Automation] = [CompositionAutomation()]
    if alongside:
        automations += [ReplicationAutomation(), ModerationAutomation()]
    # The default account quota is 20 live compositions (adjustable); a burst operator has raised it.
    with (
        mock_aws(),
        mock.patch.object(ivs_world, "MAX_COMPOSITIONS_PER_ACCOUNT", 10 * stages),
        lean_dynamodb(),  # else each transaction copies the whole table, and moto keeps every copy
    ):
        deployment = LocalDeployment(
            account=ACCOUNT,
            region=REGION,
            start=T0,
            automations=automations,
            settings=Settings(table_name=TABLE_NAME, policy_cache_seconds=30.0),
            latency=AS_DEPLOYED,
            seed=int(rng.random() * 2**31),
        )
        scheduler = deployment.scheduler
        VirtualTime.scheduler = scheduler
        reader = OneReader()
        records = PassRecords() if pass_reads_records else None
        with (
            mock.patch.object(botocore.endpoint, "time", VirtualTime()),
            deployment,
            trades.shared_store((lambda: deployment.table.client) if shared_store else None) as stores,
            trades.one_reader(deployment, one_reader, reader),
        ):
            one = _burst(
                deployment, automations, stages, rng, extra_environments, with_pass, logger, label, application, records
            )
    one["shared_store"] = shared_store
    one["one_reader"] = one_reader
    one["pass_reads_records"] = pass_reads_records
    if shared_store:
        one["store_calls"] = trades.store_calls(stores)
    if records is not None:
        one["pass_records_cost"] = records.report(one["passes"])
    if one_reader:
        one["one_reader_cost"] = reader.report()
    one["commit"] = commit
    return one


def _commit() -> str | None:
    """The commit the run measured (with "+" when the code it runs had changes: the functions, the stand-ins,
    the benchmarks), or None outside a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "lambdas", "benchmarks", ":!benchmarks/results.json"],
            cwd=here.parent,
            capture_output=True,
        )
    except OSError:
        return None
    if head.returncode:
        return None
    return head.stdout.strip() + ("+" if dirty.stdout.strip() else "")


def _burst(
    deployment: LocalDeployment,
    automations: list[Automation],
    stages: int,
    rng: random.Random,
    extra_environments: int,
    with_pass: bool,
    logger: Logger,
    label: str,
    application: str,
    records: PassRecords | None = None,
) -> dict[str, Any]:
    scheduler = deployment.scheduler
    callers = [a.name for a in automations] + ([budget.CONVERGENCE] if with_pass else [])
    called = sorted({op for name in callers for op in budget.operations_of(name)})
    for operation in called:
        deployment.ivs.set_rate_limit(operation, budget.QUOTA_PER_OPERATION)
    alongside = len(automations) > 1
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
    working = [0]  # pollers still receiving
    functions: dict[str, _Function] = {}
    starts = []
    for automation in automations:
        name = automation.name
        functions[name] = _Function(deployment, name, budget.CONCURRENCY[name] + extra_environments)
        for _ in range(budget.CONCURRENCY[name]):
            starts.append(_poller(functions[name], automation, queues[name], logger, working))
    for start in starts:
        start()

    composed: set[str] = set()
    burst_stages = set(arns)
    read = [0]  # the stand-in's calls already looked at

    def burst_done() -> bool:
        """Every queue drained and every stage composed: a stage whose event found the pass's claim (and
        skipped) is composed by a later pass, so the burst lasts until then, ``SETTLE_SECONDS`` at most.
        Asked before each of the application's calls: it reads only the calls since it last looked (a
        stage is composed once a StartComposition for it succeeded), never a copy of every composition."""
        if working[0]:
            return False
        calls = deployment.ivs.calls
        for call in calls[read[0] :]:
            arn = call.params.get("stageArn")
            if call.operation == "StartComposition" and call.status == 200 and arn in burst_stages:
                composed.add(str(arn))
        read[0] = len(calls)
        drained = max(q.last_done for q in queues.values())
        return len(composed) == stages or scheduler.now > drained + SETTLE_SECONDS

    passes = Passes()
    if with_pass:
        functions[budget.CONVERGENCE] = _Function(
            deployment, budget.CONVERGENCE, budget.CONCURRENCY[budget.CONVERGENCE] + extra_environments
        )
        scheduler.spawn(_convergence(functions[budget.CONVERGENCE], burst_done, passes, queues, records))
    scheduler.spawn(_application(deployment, called, burst_done, random.Random(rng.random()), application))
    started, cpu = time.perf_counter(), time.process_time()
    scheduler.run()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    # what the composition's containers' own shares allow (the deployed pacer's average rate, both containers)
    share_rate = budget.CONCURRENCY[budget.COMPOSITION] * _DEPLOYED_PACER(budget.COMPOSITION).rate("StartComposition")
    report = _report(deployment, arns, queues, called, share_rate=share_rate, wall=wall)
    report.update(_pass_report(passes, deployment, with_pass=with_pass))
    report["cold_starts"] = {name: f.cold_starts for name, f in functions.items()}
    report["environments_per_function"] = {name: len(f.environments) for name, f in functions.items()}
    report["cpu_seconds"] = cpu  # the process's, every actor's thread: what an idle core would take, about
    report["extra_environments"] = extra_environments
    report["application"] = application
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


def _busiest_second(times: list[float]) -> int:
    """The most of ``times`` (seconds, sorted) within any one second, as IVS's sliding window counts."""
    most, first = 0, 0
    for last, t in enumerate(times):
        while times[first] <= t - 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most


def _report(
    deployment: LocalDeployment,
    arns: list[str],
    queues: dict[str, Queue],
    operations: list[str],
    *,
    share_rate: float,
    wall: float,
) -> dict[str, Any]:
    stages = len(arns)
    calls = deployment.ivs.calls

    def seconds(call: Any) -> float:
        return float((call.time - T0).total_seconds())

    ours = [c for c in calls if c.trigger != APPLICATION]  # every stagepilot function's, the pass's included
    app = [c for c in calls if c.trigger == APPLICATION]
    per_stage: dict[str, int] = {}
    for composition in deployment.ivs.compositions(include_deleted=True):
        per_stage[composition.stage_arn] = per_stage.get(composition.stage_arn, 0) + 1
    composed_at: dict[str, float] = {}  # each stage's composition start, whoever started it
    for c in ours:
        if c.operation == "StartComposition" and c.status == 200:
            composed_at.setdefault(str(c.params.get("stageArn")), seconds(c))
    drain = max(composed_at.values()) if len(composed_at) == stages else float("inf")
    floor = stages / budget.FUNCTIONS_PER_SECOND
    by_op = {op: sum(1 for c in ours if c.operation == op) for op in operations}
    by_pass = Counter(c.operation for c in ours if c.trigger == PASS_TRIGGER)
    throttled = {op: sum(1 for c in ours if c.operation == op and c.status == 429) for op in operations}
    app_throttled = {op: sum(1 for c in app if c.operation == op and c.status == 429) for op in operations}
    # What reached IVS in its busiest second, per operation: stagepilot's (bound: FUNCTIONS_PER_SECOND)
    # and the application's (its reserve is 1; Poisson arrivals send more in some seconds).
    ours_busiest = {op: _busiest_second(sorted(seconds(c) for c in ours if c.operation == op)) for op in operations}
    app_busiest = {op: _busiest_second(sorted(seconds(c) for c in app if c.operation == op)) for op in operations}
    # Each throttle's second: how many calls the application had sent into it (more than the budget leaves
    # it, QUOTA - FUNCTIONS_PER_SECOND = 2, means the application's own burst took stagepilot's part).
    # Each throttle's second at IVS (the calls it admitted, and the throttled one): the application's own
    # calls above what the budget leaves it (QUOTA - FUNCTIONS_PER_SECOND = 2), or stagepilot's above its bound.
    admitted = [c for c in calls if c.status != 429]
    blame = {"application_over_its_part": 0, "stagepilot_over_its_bound": 0}
    application_part = budget.QUOTA_PER_OPERATION - budget.FUNCTIONS_PER_SECOND
    for c in calls:
        if c.status != 429:
            continue
        t = seconds(c)
        window = [a for a in admitted if a.operation == c.operation and t - 1.0 < seconds(a) <= t] + [c]
        if sum(1 for a in window if a.trigger == APPLICATION) > application_part:
            blame["application_over_its_part"] += 1
        if sum(1 for a in window if a.trigger != APPLICATION) > budget.FUNCTIONS_PER_SECOND:
            blame["stagepilot_over_its_bound"] += 1
    automations_report = {}
    for name, queue in queues.items():
        own = OWN_OPERATION[name]
        own_floor = stages / budget.FUNCTIONS_PER_SECOND
        automations_report[name] = {
            "operation": own,
            "drained_seconds": queue.last_done,
            "floor_seconds": own_floor,
            "ratio": queue.last_done / own_floor,
            "handled": queue.handled,
            "batches": queue.batches,
            "largest_batch": queue.largest_batch,
            "records_retried": queue.failed_receives,
            "invocations_timed_out": queue.invocations_timed_out,
            "dead_letters": queue.dead,
        }
    once = sum(1 for arn in arns if per_stage.get(arn) == 1)
    dead = sum(q.dead for q in queues.values())
    ratio = drain / floor
    all_ratio = max(a["ratio"] for a in automations_report.values())
    throttles = sum(throttled.values()) + sum(app_throttled.values())
    return {
        "stages": stages,
        "floor_rate": budget.FUNCTIONS_PER_SECOND,
        "composition_share_rate": share_rate,
        "compositions": sum(per_stage.values()),
        "stages_with_one_composition": once,
        "stages_without": sum(1 for arn in arns if arn not in per_stage),
        "duplicates": sum(n - 1 for n in per_stage.values() if n > 1),
        "dead_letters": dead,
        "records_retried": sum(q.failed_receives for q in queues.values()),
        "automations": automations_report,
        "calls_per_operation": by_op,
        "pass_calls_per_operation": dict(sorted(by_pass.items())),  # the pass's own, in calls_per_operation
        "throttled_per_operation": {op: n for op, n in throttled.items() if n},
        "throttled_calls": sum(throttled.values()),
        "application_throttled_per_operation": {op: n for op, n in app_throttled.items() if n},
        "application_throttled_calls": sum(app_throttled.values()),
        "throttles_in_a_second_where": blame,
        "stagepilot_busiest_second": ours_busiest,
        "stagepilot_busiest_second_max": max(ours_busiest.values(), default=0),
        "application_busiest_second": app_busiest,
        "application_calls": len(app),
        "drain_seconds": drain,
        "floor_seconds": floor,
        "share_floor_seconds": stages / share_rate,
        "quota_floor_seconds": stages / budget.QUOTA_PER_OPERATION,
        "ratio": ratio,
        "all_ratio": all_ratio,
        "target_ratio": TARGET_RATIO,
        "met": ratio <= TARGET_RATIO and all_ratio <= TARGET_RATIO and once == stages and dead == 0 and not throttles,
        "wall_seconds": wall,
    }


DEPLOY_CASE = "deploy case: one extra environment per function"
BOUNDED = "an application that keeps to its part"
POISSON = "the Poisson application (over its part in some seconds)"
SHARED_STORE = "the trade: one shared store paces every function"
ONE_READER = "the trades: the shared store, and one reader of each publisher"
PASS_RECORDS = "the trades: the shared store, one reader, and the pass reads the publisher records"
WORKERS = 2  # burst runs at once (``run_all``): the reference machine has 2 cores


def plan(sizes: tuple[int, ...] = SIZES) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The runs ``run_all`` makes, as ``run``'s arguments: at each size, the Poisson application (the
    sensitivity figure: it alone sends more than IVS's 5 in some seconds) and the application that keeps to
    its part, each as deployed and in the deploy case; then the alternatives (the trades
    docs/performance.md section 3 weighs), with the application that keeps to its part (only it lets a
    trade meet 0 throttled calls): at each size the shared store, the shared store with one reader of
    each publisher (moderation waits for replication's publisher record: ``trades.one_reader``), and both with the
    pass taking publishers from the records (``trades.RecordFirstPassIvs``)."""
    runs: list[dict[str, Any]] = []
    for size in sizes:
        runs.append({"stages": size, "label": f"as deployed, {POISSON}"})
        runs.append({"stages": size, "extra_environments": 1, "label": f"{DEPLOY_CASE}, {POISSON}"})
        runs.append({"stages": size, "application": "bounded", "label": f"as deployed, {BOUNDED}"})
        runs.append(
            {"stages": size, "application": "bounded", "extra_environments": 1, "label": f"{DEPLOY_CASE}, {BOUNDED}"}
        )
    alternatives: list[dict[str, Any]] = []
    for size in sizes:
        trade = {"stages": size, "application": "bounded", "shared_store": True}
        alternatives.append({**trade, "label": f"{SHARED_STORE}, {BOUNDED}"})
        alternatives.append({**trade, "one_reader": True, "label": f"{ONE_READER}, {BOUNDED}"})
        alternatives.append(
            {**trade, "one_reader": True, "pass_reads_records": True, "label": f"{PASS_RECORDS}, {BOUNDED}"}
        )
    return runs, alternatives


def run_all(sizes: tuple[int, ...] = SIZES, *, workers: int = WORKERS) -> dict[str, Any]:
    """Every run of ``plan``, ``workers`` at a time in processes of their own (each is virtual time: what it
    measures does not depend on what runs beside it; its ``wall_seconds`` does), the largest first; the
    answers in ``plan``'s order. Run it after the wall-clock benchmarks, never beside them."""
    runs, alternatives = plan(sizes)
    every = [*runs, *alternatives]
    if workers <= 1:
        done = [run(**kwargs) for kwargs in every]
    else:
        order = sorted(range(len(every)), key=lambda i: -every[i]["stages"])  # the longest first
        context = multiprocessing.get_context("spawn")  # no fork of a process that may hold threads
        with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_quiet) as pool:
            futures = {i: pool.submit(run, **every[i]) for i in order}
            done = [futures[i].result() for i in range(len(every))]
    return {"runs": done[: len(runs)], "alternatives": done[len(runs) :], "workers": max(1, workers)}


def _quiet() -> None:
    logging.disable(logging.WARNING)  # the handlers' "will be retried" lines are expected here


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.burst [SIZE ...]``: written into ``benchmarks/results.json`` (key ``burst``)
    when run at the default sizes."""
    parser = cli.parser(
        "benchmarks.burst",
        __doc__,
        more="At the default sizes the figures are written into benchmarks/results.json (key burst).",
    )
    cli.counts_argument(parser, "SIZE", default=SIZES, what="stages in a burst, one set of runs each")
    sizes = tuple(parser.parse_args(argv).size)
    burst = run_all(sizes)
    if sizes == SIZES:
        results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        results["burst"] = burst
        RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    for one in [*burst["runs"], *burst["alternatives"]]:
        print(summary(one))
    return 0


def summary(one: dict[str, Any]) -> str:
    throttled = one["throttled_per_operation"] or 0
    app = one["application_throttled_per_operation"] or 0
    automations = ", ".join(
        f"{name} {a['drained_seconds']:.1f} s ({a['ratio']:.2f}x)" for name, a in one["automations"].items()
    )
    return (
        f"{one['label']}, {one['stages']} stages: composed in {one['drain_seconds']:.1f} s "
        f"(floor {one['floor_seconds']:.1f} s at {one['floor_rate']}/s: {one['ratio']:.2f}x, target "
        f"{one['target_ratio']}x; the composition's own share's floor {one['share_floor_seconds']:.1f} s); "
        f"drained: {automations}; {one['stages_with_one_composition']}/{one['stages']} once, "
        f"{one['duplicates']} duplicated, {one['dead_letters']} lost; throttled ours {throttled}, "
        f"application {app} (in a second where the application was over its part: "
        f"{one['throttles_in_a_second_where']['application_over_its_part']}, stagepilot over its bound: "
        f"{one['throttles_in_a_second_where']['stagepilot_over_its_bound']}); stagepilot's busiest second "
        f"{one['stagepilot_busiest_second_max']} "
        f"(bound {budget.FUNCTIONS_PER_SECOND}); cold starts {one['cold_starts']}"
        + (
            f"; pass beside it: {one['passes']} passes, longest {one['pass_longest_seconds']:.1f} s of "
            f"{one['pass_timeout_seconds']} s, heals {one['healed_by_reason'] or 0}"
            if one.get("with_pass")
            else ""
        )
        + (store_cost(one) if one.get("shared_store") else "")
        + (one_reader_cost(one["one_reader_cost"]) if one.get("one_reader") else "")
        + (pass_records_cost(one) if one.get("pass_reads_records") else "")
        + f"; wall {one['wall_seconds']:.0f} s"
        + (f", CPU {one['cpu_seconds']:.0f} s" if "cpu_seconds" in one else "")
    )


def store_cost(one: Mapping[str, Any]) -> str:
    """What the shared store's log in the table cost: its writes, the refused ones, per IVS call of ours."""
    store = one["store_calls"]
    ours = sum(one["calls_per_operation"].values())
    return (
        f"; the store: {store['writes']} UpdateItem ({store['refused']} refused), "
        f"{store['writes'] / max(1, ours):.2f} per IVS call"
    )


def one_reader_cost(cost: Mapping[str, Any]) -> str:
    """What moderation's wait for replication's publisher record cost, in words."""
    return (
        f"; one reader: moderation took {cost['served_from_the_record']} publishers from replication's record "
        f"({cost['table_reads']} table reads, waiting p50 {cost['wait_p50_seconds']:.2f} s, most "
        f"{cost['wait_max_seconds']:.2f} s), asked IVS itself {cost['fell_back_to_ivs']} times"
    )


def pass_records_cost(one: Mapping[str, Any]) -> str:
    """What the pass's reads of the publisher records cost, and the GetParticipant calls it still sent."""
    cost = one["pass_records_cost"]
    return (
        f"; the pass read the records: {cost['served_from_the_record']} publishers from a record, "
        f"{cost['table_reads']} table reads ({cost['table_reads_per_pass']:.1f} a pass), "
        f"{one['pass_calls_per_operation'].get('GetParticipant', 0)} GetParticipant of its own"
    )


if __name__ == "__main__":
    raise SystemExit(main())
