"""The trades docs/performance.md section 3 weighs, as benchmark variants (none of them is built): what
``benchmarks/burst.py`` drains a burst with and ``benchmarks/work_per_event.py`` counts the calls of.

- **One shared store paces every function** (``shared_store``): every container's pacer is a
  ``SharedStore``, a sliding log of the last ``budget.FUNCTIONS_PER_SECOND`` send times of each operation
  kept in the table, for every stagepilot function together. Before each IVS call the container asks it with
  one conditional ``UpdateItem`` (one more for each refusal, whose ``ALL_OLD`` says when to try): those
  DynamoDB calls go through the table's own client, so they take its latency and a counter on it counts them.
- **One reader of each publisher** (``one_reader``): moderation does not ask IVS about a publisher
  replication reads too; it waits for replication's publisher record (adapters/publishers.py).
- **The pass reads the publisher records** (``pass_view``): the convergence pass takes a publisher's
  token from the event path's record when there is one, and asks IVS only when there is none.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from unittest import mock

from botocore.exceptions import ClientError

from benchmarks import cost
from stagepilot import budget, convergence
from stagepilot.adapters.ivs import IvsStage, Pacer, Participant
from stagepilot.adapters.publishers import PublisherTokens
from stagepilot.adapters.schema import PARTITION_KEY, SORT_KEY
from stagepilot.convergence import Deadline, ParticipantCache, PassIvs
from stagepilot.local.deployment import TABLE_NAME, LocalDeployment
from stagepilot.pipeline import Services

PASS_TRIGGER = "reconcile"  # the stand-in's ``trigger`` of the pass's calls (LocalDeployment's, burst's)

# The shared store's item per operation: a partition of its own (built, the functions' IAM would have to
# let them write it: they write only under STAGE# today, docs/table.md).
PACE_PARTITION = "PACE"
_MICROSECOND = Decimal("0.000001")


class SharedStore(Pacer):
    """What a shared store would allow (docs/performance.md section 3, "Why no shared store"): one sliding
    log per operation for every stagepilot function together, ``budget.FUNCTIONS_PER_SECOND`` send times in
    any ``budget.WINDOW_SECONDS``, kept in the table's item ``(PACE, operation)`` as ``s0 <= s1 <= s2``.

    ``wait`` asks the table before each IVS call: one ``UpdateItem`` that appends the send time (the oldest
    drops out) on condition that the oldest is a window before it and none is after it. A refused write
    returns the log (``ALL_OLD``), so the caller knows the earliest time the log allows and writes that time
    (a reservation: it then sleeps until it); another caller's write in between refuses it again. Every
    container holds one of these over the same item, so the log sees every slot; an invocation needs no
    quiet window, and a throttle slows no container (one container's slowing would slow them all)."""

    def __init__(
        self,
        client: Callable[[], Any],
        *,
        table_name: str = TABLE_NAME,
        calls: int = budget.FUNCTIONS_PER_SECOND,
        window: float = budget.WINDOW_SECONDS,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """``client``: the table's DynamoDB client, asked at each call (a deployment's, built after this)."""
        super().__init__(budget.CONSERVATIVE_RATE, shares={}, window=window, clock=clock, sleep=sleep)
        self._client = client
        self._table_name = table_name
        self._slots = [f"s{i}" for i in range(calls)]
        oldest, newest = self._slots[0], self._slots[-1]
        # the log moves up one (each slot takes the next one's time; a missing one is 0), the newest is ``start``
        moves = [f"{a} = if_not_exists({b}, :zero)" for a, b in itertools.pairwise(self._slots)]
        self._update = "SET " + ", ".join([*moves, f"{newest} = :start"])
        self._condition = f"attribute_not_exists({newest}) OR ({oldest} <= :cutoff AND {newest} <= :start)"
        self._log_window = Decimal(str(window))
        self.writes = 0  # UpdateItem calls made (each a DynamoDB call)
        self.refused = 0  # of them, refused (the log was full at the time asked)

    def rate(self, key: str) -> float:
        return len(self._slots) / float(self._log_window)

    def share(self, key: str) -> tuple[int, ...] | None:
        return (len(self._slots),)

    def invocation_started(self) -> None:
        return

    def throttled(self, key: str) -> None:
        return  # the log is the bound: a throttle (the application's burst) slows no one down

    def wait(self, key: str = "") -> float:
        """Wait until the table's log lets ``key`` be sent; returns the seconds waited."""
        began = self._clock()
        start = _seconds(began)
        while (log := self._append(key, start)) is not None:
            start = self._earliest(log, _seconds(self._clock()))
        waited = float(start) - self._clock()
        if waited > 0:
            self._sleep(waited)
        return max(0.0, float(start) - began)

    def _append(self, key: str, start: Decimal) -> dict[str, Any] | None:
        """Append ``start`` to ``key``'s log: None, or the log as it was when the write was refused."""
        self.writes += 1
        try:
            self._client().update_item(
                TableName=self._table_name,
                Key={PARTITION_KEY: {"S": PACE_PARTITION}, SORT_KEY: {"S": key or "-"}},
                UpdateExpression=self._update,
                ConditionExpression=self._condition,
                ExpressionAttributeValues={
                    ":zero": {"N": "0"},
                    ":start": {"N": str(start)},
                    ":cutoff": {"N": str(start - self._log_window)},
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            self.refused += 1
            log: dict[str, Any] = exc.response.get("Item", {})
            return log
        return None

    def _earliest(self, log: dict[str, Any], now: Decimal) -> Decimal:
        """The earliest send time ``log`` allows from ``now``: after its newest, a window after its oldest."""
        oldest, newest = (Decimal(log[s]["N"]) if s in log else Decimal(0) for s in (self._slots[0], self._slots[-1]))
        return max(now, newest, oldest + self._log_window)


def _seconds(value: float) -> Decimal:
    return Decimal(str(value)).quantize(_MICROSECOND)


@contextmanager
def shared_store(client: Callable[[], Any] | None) -> Iterator[list[SharedStore]]:
    """Every pacer ``Pacer.for_caller`` builds meanwhile (each container's, as the functions build theirs)
    is a ``SharedStore`` over the same table log, on the clock and sleep it is given; the stores it built
    are listed. ``client`` None: the pacers as deployed."""
    built: list[SharedStore] = []
    if client is None:
        yield built
        return

    def for_caller(
        caller: str | None, *, clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep
    ) -> Pacer:
        store = SharedStore(client, clock=clock, sleep=sleep)
        built.append(store)
        return store

    with mock.patch.object(Pacer, "for_caller", for_caller):
        yield built


def store_calls(stores: list[SharedStore]) -> dict[str, int]:
    """What the stores asked the table: their ``UpdateItem`` calls, and of them the refused ones."""
    return {"writes": sum(s.writes for s in stores), "refused": sum(s.refused for s in stores)}


# The one-reader trade (``run(one_reader=True)``, not built): moderation does not ask IVS about a publisher
# replication reads too; it waits for the publisher record replication keeps (adapters/publishers.py),
# reading it again every ``ONE_READER_POLL_SECONDS``, and asks IVS itself only after ``ONE_READER_WAIT_SECONDS``.
ONE_READER_POLL_SECONDS = 0.5
ONE_READER_WAIT_SECONDS = 30.0


@dataclass
class OneReader:
    """What moderation's wait for replication's publisher record cost (``run(one_reader=True)``)."""

    served: int = 0  # publishers moderation took from the record, not from IVS
    fell_back: int = 0  # waited ONE_READER_WAIT_SECONDS, then asked IVS
    table_reads: int = 0  # consistent reads of the record (each a DynamoDB call)
    waited_seconds: list[float] = field(default_factory=list)

    def report(self) -> dict[str, Any]:
        waits = sorted(self.waited_seconds)
        return {
            "served_from_the_record": self.served,
            "fell_back_to_ivs": self.fell_back,
            "table_reads": self.table_reads,
            "wait_p50_seconds": waits[len(waits) // 2] if waits else 0.0,
            "wait_max_seconds": waits[-1] if waits else 0.0,
        }


@contextmanager
def one_reader(deployment: LocalDeployment, enabled: bool, cost: OneReader) -> Iterator[None]:
    """Moderation's shared ``GetParticipant`` (the one asked with ``kept``: replication reads the same
    publisher and keeps its answer) waits for replication's record instead of reading IVS too."""
    if not enabled:
        yield
        return
    scheduler = deployment.scheduler
    original = IvsStage.participant

    def participant(
        self: IvsStage,
        stage_arn: str,
        session_id: str,
        participant_id: str,
        *,
        kept: Callable[[], Participant | None] | None = None,
    ) -> Participant:
        if kept is not None and deployment.ivs.trigger != PASS_TRIGGER:
            began = scheduler.now
            while True:
                cost.table_reads += 1
                found = kept()
                if found is not None:
                    cost.served += 1
                    cost.waited_seconds.append(scheduler.now - began)
                    return found
                if scheduler.now - began >= ONE_READER_WAIT_SECONDS:
                    cost.fell_back += 1
                    break
                scheduler.sleep(ONE_READER_POLL_SECONDS)
        return original(self, stage_arn, session_id, participant_id, kept=kept)

    with mock.patch.object(IvsStage, "participant", participant):
        yield


# The pass-reads-records trade (``run(pass_reads_records=True)``, not built): the convergence pass takes a
# publisher's token (user id, attributes, replica or not) from the publisher record the event path keeps
# (adapters/publishers.py) when one exists for that participant and session, and asks IVS (GetParticipant)
# only when none does. Built today, the pass reads that record only for a listed publisher with a user id
# (automations/moderation.py, ``judge_publisher``); the burst's publishers have none.
@dataclass
class PassRecords:
    """What the pass's reads of the publisher records cost (``run(pass_reads_records=True)``)."""

    table_reads: int = 0  # consistent reads of a publisher record by the pass (each a DynamoDB call)
    served: int = 0  # publishers the pass took from a record, not from IVS
    asked_ivs: int = 0  # no record: the pass's own view asked IVS (GetParticipant)
    kept_connected: int = 0  # the pass's cache held the participant's answer, CONNECTED: no read at all

    def report(self, passes: int) -> dict[str, Any]:
        return {
            "table_reads": self.table_reads,
            "served_from_the_record": self.served,
            "asked_ivs": self.asked_ivs,
            "kept_connected": self.kept_connected,
            "table_reads_per_pass": self.table_reads / max(1, passes),
        }


class RecordFirstPassIvs(PassIvs):
    """The pass's IVS view (``convergence.PassIvs``, its deadline and participant cache as they are) that
    first looks for the event path's publisher record: a record is IVS's earlier answer about the token,
    which cannot change within a session. Its answer is not kept in the cache (it carries no ``state``)."""

    def __init__(
        self,
        inner: IvsStage,
        deadline: Deadline,
        participants: ParticipantCache | None = None,
        *,
        tokens: PublisherTokens,
        cost: PassRecords,
    ) -> None:
        super().__init__(inner, deadline, participants)
        self._tokens = tokens
        self._cost = cost

    def participant(
        self,
        stage_arn: str,
        session_id: str,
        participant_id: str,
        *,
        kept: Callable[[], Participant | None] | None = None,
    ) -> Participant:
        cached = self._participants.get((stage_arn, session_id, participant_id))
        if cached is not None and cached.state == "CONNECTED":
            self._cost.kept_connected += 1
        else:
            self._cost.table_reads += 1
            found = self._tokens.get(stage_arn, session_id, participant_id)
            if found is not None:
                self._cost.served += 1
                return found
            self._cost.asked_ivs += 1
        return super().participant(stage_arn, session_id, participant_id, kept=kept)


@contextmanager
def pass_view(services: Services, records: PassRecords | None) -> Iterator[None]:
    """The pass's IVS view: ``PassIvs`` as built, or the one that reads the publisher records first."""
    if records is None:
        yield
        return
    tokens = PublisherTokens(services.table, clock=services.clock)

    def view(inner: IvsStage, deadline: Deadline, participants: ParticipantCache | None = None) -> PassIvs:
        return RecordFirstPassIvs(inner, deadline, participants, tokens=tokens, cost=records)

    with mock.patch.object(convergence, "PassIvs", view):
        yield


# What the store adds to the bill (docs/performance.md section 11's prices and fleet, benchmarks/cost.py): one
# write request unit per UpdateItem (an item under 1 KB; a refused conditional write is charged as one too).
# Measured: the event path's writes per event (work_per_event's 100-stage show, times cost.py's events a month)
# and the convergence pass's writes per pass (convergence.store_passes: the converged pass at each fleet size,
# every stage live, and none live), times cost.py's live and idle passes a month.
STORE_WRITE_UNITS_PER_CALL = 1
FLEETS = cost.FLEETS


def store_units_per_month(writes_per_event: float, passes: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The store's write request units a month, and their price, for each of cost.py's fleets: the event
    path's ``writes_per_event`` and ``passes`` (per fleet size, the store's calls of a pass with every stage
    live, "live", and with none, "idle")."""
    live_hours = cost.LIVE_HOURS_PER_DAY * cost.DAYS
    passes_live = live_hours * 3600 / cost.PASS_PERIOD_SECONDS
    passes_idle = (24 - cost.LIVE_HOURS_PER_DAY) * cost.DAYS * 3600 / cost.PASS_PERIOD_SECONDS
    fleets: dict[str, Any] = {}
    for stages in FLEETS:
        events = stages * cost.EVENTS_PER_STAGE_HOUR * live_hours
        event_path = events * writes_per_event * STORE_WRITE_UNITS_PER_CALL
        per_pass = {name: passes[str(stages)][name]["store_calls"]["writes"] for name in ("live", "idle")}
        pass_units = (passes_live * per_pass["live"] + passes_idle * per_pass["idle"]) * STORE_WRITE_UNITS_PER_CALL
        units = event_path + pass_units
        fleets[str(stages)] = {
            "events": events,
            "event_path_write_units": event_path,
            "pass_writes_per_pass": per_pass,
            "pass_write_units": pass_units,
            "write_units": units,
            "dollars": units / 1e6 * cost.DDB_WRU_PER_MILLION,
        }
    return fleets
