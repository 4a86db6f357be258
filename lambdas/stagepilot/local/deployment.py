"""The stack, in one process: routing rules, per-automation queues with retries and DLQs, the handler
code, moto's DynamoDB and the IVS stand-in, on a virtual clock.

It mirrors what the CDK stack deploys (infra/): every event is matched against the routing table's
patterns with moto's EventBridge matcher, each matching rule delivers it to its automation's queue, and
a delivery that fails is retried after its back-off until ``MAX_RECEIVES``, then kept in that
automation's dead-letter queue. Used by ``stagepilot simulate`` and by the handler tests.

Time passes as deployed (docs/simulate.md): each function runs as containers (``budget.CONCURRENCY``:
two per automation, one for the convergence pass), each an actor on one discrete-event scheduler
(local/scheduler.py). Every AWS call a container makes takes virtual time (IVS 50-150 ms, DynamoDB
5-15 ms: ``latency``), each container paces its IVS calls at its share of the quota (``budget``), and a
container handles one record at a time: a record waits in its queue while both containers of its
automation are busy. The convergence pass runs beside them with its deadline on the virtual clock and is
stopped at its timeout, as Lambda stops it. What the driver (a test, ``simulate``'s script, the CLI on
the sandbox) does itself takes no time.

The world can misbehave on purpose, as IVS and EventBridge document they may: an event that happens at
IVS but is never delivered (``put_event(..., deliver=False)``), delivered late (``delay_seconds``), the
stand-in's own events lost (``lose_emitted``), and IVS faults and outages (``ivs.fail_next``,
``ivs.outage``). Time moves on a virtual clock; what IVS does on its own (a composition stopping a
minute after the last publisher left, a replica ending) happens at its moment on that clock.

Each deployed function is a process of its own, so each keeps its own policy cache: here every automation
and the convergence pass read policies through a cache of their own (one container per function), while
sharing the table, IVS and the metrics. A policy change therefore reaches each function within its own
cache lifetime, and the calls counted here are the reads every function makes, not one shared read.
"""

from __future__ import annotations

import copy
import heapq
import itertools
import json
import random
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from moto.events.models import EventPattern

from stagepilot import budget
from stagepilot.adapters.bans import BanListWatch
from stagepilot.adapters.ivs import IvsStage, Pacer
from stagepilot.adapters.schema import create_table as create_schema_table
from stagepilot.adapters.table import Table
from stagepilot.automations import convergence_order, event_automations
from stagepilot.config import Settings
from stagepilot.convergence import ParticipantCache, PassReport, run_pass
from stagepilot.decisions.leases import (  # the stack's redrive policy (maxReceiveCount) and timeout
    FUNCTION_TIMEOUT_SECONDS,
    MAX_RECEIVES,
)
from stagepilot.local.clients import local_client
from stagepilot.local.ivs import IvsStandIn
from stagepilot.local.scheduler import AS_DEPLOYED, Latency, Scheduler, call_latency
from stagepilot.operator.whatif import what_if
from stagepilot.pipeline import Automation, EffectivePolicies, HandledEvents, Outcome, Services, handle_record
from stagepilot.routing import (
    AUTOMATIONS,
    DEFAULT_MODERATION_SOURCES,
    Route,
    build_routes,
)

TABLE_NAME = "stagepilot-local"


def create_table(client: Any, name: str = TABLE_NAME) -> None:
    """The table exactly as the stack defines it (adapters/schema.py), named ``stagepilot-local`` by default."""
    create_schema_table(client, name)


class VirtualClock:
    """Time that moves only when told to (never backwards)."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance_to(self, moment: datetime) -> None:
        if moment > self.now:
            self.now = moment


class RecordingMetrics:
    def __init__(self) -> None:
        self.counts: dict[str, float] = {}

    def count(self, name: str, value: float = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + value


@dataclass
class Delivery:
    """One event seen by one automation: what it did, or why it failed."""

    time: datetime
    automation: str
    event: Mapping[str, Any]
    receive: int
    outcome: Outcome | None = None
    error: str | None = None
    retry_in: float | None = None  # seconds until the queue delivers it again
    parked: bool = False  # ended in the DLQ


@dataclass
class _EmittedLoss:
    """``lose-emitted``: the next ``count`` events IVS itself emits with this name (on this stage) vanish."""

    event_name: str
    count: int
    stage_arn: str | None = None

    def takes(self, event: Mapping[str, Any]) -> bool:
        detail = event.get("detail") or {}
        if self.count <= 0 or detail.get("event_name") != self.event_name:
            return False
        stage = detail.get("stage_arn") or next(iter(event.get("resources") or []), None)
        if self.stage_arn is not None and stage != self.stage_arn:
            return False
        self.count -= 1
        return True


@dataclass(order=True)
class _Pending:
    due: datetime
    seq: int
    automation: str = field(compare=False)
    body: str = field(compare=False)
    message_id: str = field(compare=False)
    receives: int = field(compare=False, default=0)


@dataclass
class _Container:
    """One container of a function: its own policy cache (``LocalDeployment.function_services``) and IVS
    pacer; it handles one record (or one pass) at a time."""

    function: str
    index: int
    pacer: Pacer
    busy: bool = False

    @property
    def cache_key(self) -> str:
        return self.function if self.index == 0 else f"{self.function}#{self.index}"


@dataclass
class _RunningPass:
    """The convergence function's invocation now running: killed at its timeout, as Lambda kills it."""

    began: datetime
    handle: Any = None
    report: PassReport | None = None
    done: bool = False

    @property
    def deadline(self) -> datetime:
        return self.began + timedelta(seconds=FUNCTION_TIMEOUT_SECONDS)


class _QueueRedelivery:
    def __init__(self) -> None:
        self.parked: list[tuple[Mapping[str, Any], str]] = []
        self.delay: float | None = None

    def park(self, record: Mapping[str, Any], reason: str) -> None:
        self.parked.append((record, reason))

    def retry_after(self, record: Mapping[str, Any], seconds: float) -> None:
        self.delay = seconds


class LocalDeployment:
    """Must be used inside ``moto.mock_aws()``; creates its own table."""

    def __init__(
        self,
        *,
        account: str,
        region: str,
        start: datetime,
        moderation_sources: Iterable[str] = DEFAULT_MODERATION_SOURCES,
        automations: Iterable[Automation] | None = None,
        settings: Settings | None = None,
        reconcile_seconds: float | None = None,
        latency: Latency | None = AS_DEPLOYED,
        seed: int = 0,
    ) -> None:
        """``latency``: how long each AWS call a function makes takes (virtual time; None: instant);
        ``seed``: the latencies' random draws, so a run is repeatable."""
        self.clock = VirtualClock(start)
        self.scheduler = Scheduler(self.clock)
        self.latency = latency
        rng = random.Random(seed)
        self.account, self.region = account, region
        moderation_sources = tuple(moderation_sources)
        self._seq = itertools.count()
        self._queue: list[_Pending] = []
        self.deliveries: list[Delivery] = []
        self.dead_letters: dict[str, list[tuple[str, str]]] = {name: [] for name in AUTOMATIONS}
        self.on_delivery: Callable[[Delivery], None] | None = None
        self.on_lost: Callable[[Mapping[str, Any], str], None] | None = None  # (event, why it was not delivered)
        self.on_pass: Callable[[PassReport], None] | None = None
        # (function, services) -> the services as that function's container holds them under its own IAM
        # role (tests emulate the synthesized template's IAM with it: tests/iam_emulation.py); None: one
        # set of clients that may do anything.
        self.function_roles: Callable[[str, Services], Services] | None = None
        self._emitted_losses: list[_EmittedLoss] = []
        self.lost: list[Mapping[str, Any]] = []  # events that happened but were never delivered
        # periodic work on the virtual clock (the convergence pass): (period, next due, callback)
        self._periodic: list[tuple[timedelta, datetime, Callable[[], object]]] = []
        self.ivs = IvsStandIn(account=account, region=region, clock=self.clock, on_event=self._ivs_emitted)
        dynamodb = local_client("dynamodb", region=region)
        create_table(dynamodb)
        if latency is not None:
            self.ivs.call_delay = call_latency(self.scheduler, latency.ivs, random.Random(rng.random()))
            dynamodb.meta.events.register(
                "before-send", call_latency(self.scheduler, latency.dynamodb, random.Random(rng.random()))
            )
        self.table = Table(dynamodb, TABLE_NAME)
        self.settings = settings or Settings(
            table_name=TABLE_NAME,
            policy_cache_seconds=30.0,
            account=account,
            region=region,
            moderation_sources=moderation_sources,
        )
        self.metrics = RecordingMetrics()
        self.services = Services(
            settings=self.settings,
            table=self.table,
            # a throttled call's in-process wait (when an invocation has a deadline) is virtual time too
            ivs=IvsStage(self.ivs.client(), sleep=self.scheduler.sleep, jitter=random.Random(rng.random()).uniform),
            metrics=self.metrics,
            clock=self.clock,
            events_queued=self._queued,
        )
        self._policy_caches: dict[str, EffectivePolicies] = {}  # per container (module docstring)
        self._ban_watches: dict[str, BanListWatch] = {}  # per container, like the policy caches
        self._handled: dict[str, HandledEvents] = {}  # per container: the events it handled
        chosen = list(automations) if automations is not None else default_automations()
        self.automations = {a.name: a for a in chosen}
        self._containers = {
            name: [self.container(name, i) for i in range(budget.CONCURRENCY.get(name, 1))] for name in self.automations
        }
        self._waiting: dict[str, deque[_Pending]] = {name: deque() for name in self.automations}
        self._convergence = self.container(budget.CONVERGENCE, 0)
        self._running_pass: _RunningPass | None = None
        self.passes: list[PassReport] = []
        self.passes_killed = 0  # passes stopped at the function's timeout (none should be)
        self.passes_skipped = 0  # scheduled passes refused because the previous one still ran
        self._participants = ParticipantCache()  # the convergence function's container, across passes
        if reconcile_seconds:
            self.every(timedelta(seconds=reconcile_seconds), self._scheduled_pass)
        self.routes: list[tuple[Route, EventPattern]] = [
            (route, EventPattern.load(json.dumps(route.pattern)))
            for route in build_routes(account=account, region=region, moderation_sources=list(moderation_sources))
            if route.automation in self.automations
        ]

    # the world -------------------------------------------------------------------------------------
    def put_event(
        self,
        event: Mapping[str, Any],
        *,
        observe: bool = True,
        deliver: bool = True,
        delay_seconds: float = 0,
    ) -> list[str]:
        """An event happens (at IVS, or another system puts it on the bus) at its ``time``.

        ``observe``: the IVS stand-in follows it (a participant published...). ``deliver=False``: it
        happened but EventBridge never delivers it (``lost``); ``delay_seconds``: delivered that much
        later (``late``). Returns the automations it is (or will be) delivered to.
        """
        when = _event_time(event)
        # What falls due before it happens first; deliveries already under way go on beside it.
        self.run_until(when if when is not None else self.clock())
        if observe and event.get("source") == "aws.ivs":
            self.ivs.observe(dict(event))
        if not deliver:
            self._lose(event, "lost: never delivered")
            return []
        return self._route(event, due=self.clock() + timedelta(seconds=delay_seconds))

    def put_raw(self, automation: str, body: str) -> None:
        """Put a raw message body on one automation's queue (malformed-input tests)."""
        self._enqueue(automation, body, self.clock())

    def lose_emitted(self, event_name: str, count: int = 1, *, stage_arn: str | None = None) -> None:
        """The next ``count`` events the IVS stand-in emits named ``event_name`` (on ``stage_arn``) are lost."""
        self._emitted_losses.append(_EmittedLoss(event_name, count, stage_arn))

    def every(self, period: timedelta, callback: Callable[[], object], *, first: datetime | None = None) -> None:
        """Run ``callback`` every ``period`` of virtual time (first at ``first``, default one period from now)."""
        self._periodic.append((period, first or self.clock() + period, callback))

    def reconcile(self, *, only_stage: str | None = None, dry_run: bool = False) -> PassReport:
        """One convergence pass now, as the scheduled function runs it (moderation first: nobody banned
        is composed or replicated). ``dry_run``: the same pass on what-if services (operator/whatif.py):
        its report says what the pass would do; nothing is written, called or kept in ``passes``."""
        converging = self._converging()
        if dry_run:
            with what_if(self.services) as whatif:
                return run_pass(whatif.services, converging, only_stage=only_stage)
        # Invoked now (an operator's converge-now, a test): the function runs one invocation at a time
        # (reserved concurrency 1), so this one starts when the running one has ended. Meanwhile, and
        # while it runs, everything else goes on: deliveries, IVS's own transitions.
        self._run_while(lambda: self._running_pass is not None)
        running = self._start_pass(converging, only_stage)
        self._run_while(lambda: not running.done)
        assert running.report is not None
        return running.report

    def scheduled_pass(self) -> None:
        """A pass as the schedule invokes it (a test's own schedule): it runs beside the world and the
        driver, as ``_scheduled_pass`` does."""
        self._scheduled_pass()

    def _scheduled_pass(self) -> None:
        """The schedule's invocation: refused while the previous pass still runs (reserved concurrency 1;
        docs/simulate.md), never two passes at once."""
        if self._running_pass is not None:
            self.passes_skipped += 1
            return
        self._start_pass(self._converging(), None)

    def _converging(self) -> list[Any]:
        """The deployed pass's automations, in its order, limited to those this deployment runs."""
        deployed = {a.name for a in default_automations()}
        return [a for a in convergence_order() if a.name in self.automations or a.name not in deployed]

    def _start_pass(self, converging: list[Any], only_stage: str | None) -> _RunningPass:
        running = _RunningPass(began=self.clock())
        self._running_pass = running
        services = self.function_services(budget.CONVERGENCE, self._convergence)

        def remaining_ms() -> float:  # the function's deadline, on the virtual clock (Lambda's context)
            return (running.deadline - self.clock()).total_seconds() * 1000

        def invocation() -> None:
            self.ivs.trigger = "reconcile"
            try:
                report = run_pass(
                    services,
                    converging,
                    only_stage=only_stage,
                    remaining_ms=remaining_ms,
                    participants=self._participants,
                    # a scheduled pass (or a test's) waits for the limits due in its minute, on the virtual clock
                    sleep=self.scheduler.sleep if only_stage is None else None,
                )
            finally:
                self.ivs.trigger = None
                self._end_pass(running)
            running.report = report
            self.passes.append(report)
            if self.on_pass:
                self.on_pass(report)

        running.handle = self.scheduler.spawn(invocation)
        return running

    def _end_pass(self, running: _RunningPass) -> None:
        running.done = True
        if self._running_pass is running:
            self._running_pass = None

    def _stop_overdue_pass(self) -> None:
        """Lambda stops the pass at its timeout wherever it is (its report is lost with it)."""
        running = self._running_pass
        if running is None or running.done or self.clock() < running.deadline:
            return
        self.passes_killed += 1
        report = PassReport()
        report.errors.append(("*", f"the pass was stopped at its {FUNCTION_TIMEOUT_SECONDS}-s timeout"))
        running.report = report
        self._end_pass(running)
        self.scheduler.cancel(running.handle)

    def function_services(self, function: str, container: _Container | None = None) -> Services:
        """``services`` as one container of ``function`` holds them: the same table, IVS and metrics (read
        from ``services`` at each call, so a test that swaps one swaps it for every function), the
        container's own IVS pacer, and its own policy cache, kept across its deliveries (container 0's is
        ``function``'s: what a test asks for by name)."""
        services = copy.copy(self.services)
        if container is not None and isinstance(services.ivs, IvsStage):  # a test's own fake stays as it is
            services.ivs = services.ivs.paced(container.pacer)
        if self.function_roles is not None:
            services = copy.copy(self.function_roles(function, services))
        key = container.cache_key if container is not None else function
        if key not in self._policy_caches:
            mark = services.new_change_mark()  # the container's, shared by its policy cache and ban watch
            self._policy_caches[key] = services.new_policy_cache(mark)
            self._ban_watches[key] = services.new_ban_watch(mark)
            self._handled[key] = HandledEvents(ttl_seconds=self.settings.policy_cache_seconds, clock=self.clock)
        services.effective_policies = self._policy_caches[key]
        services.ban_watch = self._ban_watches[key]
        services.handled = self._handled[key]
        return services

    def container(self, function: str, index: int) -> _Container:
        """A new container (execution environment) of ``function``: its pacer at its deployed share
        (``Pacer.for_caller``, as ``handlers/wiring`` builds it) on the virtual wall clock (its frames are
        on it, as deployed), its waits letting the other containers run; its own policy cache on first use."""
        pacer = Pacer.for_caller(function, clock=lambda: self.clock().timestamp(), sleep=self.scheduler.sleep)
        return _Container(function, index, pacer)

    def close(self) -> None:
        """Stop every container still waiting (the run is over): their threads end."""
        self.scheduler.close()
        self._running_pass = None

    def __enter__(self) -> LocalDeployment:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _route(self, event: Mapping[str, Any], *, due: datetime | None = None) -> list[str]:
        message: Any = dict(event)
        targets = [route.automation for route, pattern in self.routes if pattern.matches_event(message)]
        body = json.dumps(event)
        for automation in targets:
            self._enqueue(automation, body, due or self.clock())
        return targets

    def _ivs_emitted(self, event: dict[str, Any]) -> None:
        # IVS's own events (composition lifecycle, replicas) arrive on the bus too, unless lost.
        if any(loss.takes(event) for loss in self._emitted_losses):
            self._lose(event, "lose-emitted: never delivered")
            return
        self._route(event)

    def _lose(self, event: Mapping[str, Any], why: str) -> None:
        self.lost.append(event)
        if self.on_lost:
            self.on_lost(event, why)

    def _enqueue(self, automation: str, body: str, due: datetime) -> None:
        heapq.heappush(self._queue, _Pending(due, next(self._seq), automation, body, str(uuid.uuid4())))

    # the queues ------------------------------------------------------------------------------------
    def run_due(self) -> None:
        """Deliver every message that is due now and let time pass until they are handled and a pass
        under way has ended (each container's calls take their time; whatever else falls due meanwhile
        happens too)."""
        self._dispatch()
        self._run_while(self._busy)

    def run_until(self, moment: datetime) -> None:
        """Let time pass up to ``moment``: deliveries, what IVS does on its own and periodic work happen
        on the way, each at its own time, in time order."""
        while True:
            step = self._next_due()
            if step is None or step > moment:
                break
            self._advance(step)
        self.clock.advance_to(moment)
        self.ivs.advance()

    def settle(self, seconds: float) -> None:
        """Let ``seconds`` of virtual time pass (retries, back-offs, IVS's own transitions, passes)."""
        self.run_until(self.clock() + timedelta(seconds=seconds))
        self.run_due()

    def drain(self, *, limit: timedelta = timedelta(hours=2)) -> None:
        """Let time pass until every queue is empty and every record handled (retries included)."""
        deadline = self.clock() + limit
        while self._queue or self._delivering():
            step = self._next_due()
            if step is None or step > deadline:
                break
            self._advance(step)

    def _delivering(self) -> bool:
        """A record is being handled, or waits for a free container."""
        return any(self._waiting.values()) or any(c.busy for cs in self._containers.values() for c in cs)

    def _queued(self, automation: str) -> bool | None:
        """The automation's queue holds events (due or not yet, waiting or being handled): what the
        convergence function reads from SQS (``adapters/queues.py``)."""
        if automation not in self.automations:
            return None
        return (
            any(p.automation == automation for p in self._queue)
            or bool(self._waiting[automation])
            or any(c.busy for c in self._containers[automation])
        )

    def _busy(self) -> bool:
        return self._delivering() or self._running_pass is not None

    def _run_while(self, going: Callable[[], bool]) -> None:
        while going():
            step = self._next_due()
            if step is None:
                return
            self._advance(step)

    def _advance(self, step: datetime) -> None:
        """Make the next thing happen at ``step``: an actor's turn, or the world's (deliveries due, IVS's
        own transitions, periodic work, a pass's timeout)."""
        actor = self.scheduler.next_at()
        if actor is not None and self.scheduler.moment(actor) <= step:
            self.scheduler.step()
            return
        self.clock.advance_to(step)
        self.ivs.advance()
        self._stop_overdue_pass()
        self._dispatch()
        self._run_periodic()

    def _next_due(self) -> datetime | None:
        candidates = [self._queue[0].due] if self._queue else []
        transition = self.ivs.next_transition()
        if transition is not None:
            candidates.append(max(transition, self.clock()))
        candidates += [due for _, due, _ in self._periodic]
        actor = self.scheduler.next_at()
        if actor is not None:
            candidates.append(max(self.scheduler.moment(actor), self.clock()))
        if self._running_pass is not None and not self._running_pass.done:
            candidates.append(max(self._running_pass.deadline, self.clock()))
        return min(candidates, default=None)

    def _dispatch(self) -> None:
        """Messages due now go to their queue's free containers (a container takes the next one when it
        is done; none waits while a container of its automation is idle)."""
        now = self.clock()
        while self._queue and self._queue[0].due <= now:
            pending = heapq.heappop(self._queue)
            self._waiting[pending.automation].append(pending)
        for name, waiting in self._waiting.items():
            for container in self._containers[name]:
                if not waiting:
                    break
                if not container.busy:
                    self._start(container, waiting.popleft())

    def _start(self, container: _Container, first: _Pending) -> None:
        container.busy = True

        def receive_loop() -> None:
            try:
                pending: _Pending | None = first
                while pending is not None:
                    self._deliver(pending, container)
                    waiting = self._waiting[container.function]
                    pending = waiting.popleft() if waiting else None
            finally:
                container.busy = False

        self.scheduler.spawn(receive_loop)

    def _run_periodic(self) -> None:
        now = self.clock()
        for index, (period, due, callback) in enumerate(list(self._periodic)):
            if due <= now:
                self._periodic[index] = (period, due + period, callback)
                callback()

    def _deliver(self, pending: _Pending, container: _Container) -> None:
        pending.receives += 1
        automation = self.automations[pending.automation]
        record = {
            "messageId": pending.message_id,
            "body": pending.body,
            "receiptHandle": pending.message_id,
            "attributes": {"ApproximateReceiveCount": str(pending.receives)},
            "eventSourceARN": f"arn:aws:sqs:{self.region}:{self.account}:stagepilot-{pending.automation}",
        }
        redelivery = _QueueRedelivery()
        self.ivs.trigger = "event" if pending.receives == 1 else "retry"
        delivery = Delivery(
            time=self.clock(),
            automation=pending.automation,
            event=_loads(pending.body),
            receive=pending.receives,
        )
        try:
            services = self.function_services(pending.automation, container)
            delivery.outcome = handle_record(record, automation, services, redelivery)
        except Exception as exc:  # the record failed: the queue shows it again, or moves it to the DLQ
            delivery.error = f"{type(exc).__name__}: {exc}"
            if pending.receives >= MAX_RECEIVES:
                delivery.parked = True
                self.dead_letters[pending.automation].append((pending.body, delivery.error))
            else:
                delay = redelivery.delay if redelivery.delay is not None else 30.0
                delivery.retry_in = delay
                pending.due = self.clock() + timedelta(seconds=delay)
                pending.seq = next(self._seq)
                heapq.heappush(self._queue, pending)
        self.ivs.trigger = None
        for _record, reason in redelivery.parked:
            delivery.parked = True
            self.dead_letters[pending.automation].append((pending.body, reason))
        self.deliveries.append(delivery)
        if self.on_delivery:
            self.on_delivery(delivery)


def default_automations() -> list[Automation]:
    """The three automations, as the stack deploys them."""
    return list(event_automations())


def _event_time(event: Mapping[str, Any]) -> datetime | None:
    raw = event.get("time")
    if not isinstance(raw, str):
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _loads(body: str) -> Mapping[str, Any]:
    try:
        value = json.loads(body)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
