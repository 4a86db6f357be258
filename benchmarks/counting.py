"""Counting AWS calls and the CPU they take, on botocore's ``before-call``/``after-call`` events.

Registered on the DynamoDB client of a ``LocalDeployment`` (moto) and on the handlers' IVS client (the
stand-in): every API call the handler code makes is counted once, by service and operation, whatever
its outcome. The CPU spent inside calls (botocore's request building and parsing, plus the in-process
fakes) is kept apart, so the handler's own CPU can be told from the cost of talking to AWS.

That CPU is the calling thread's own (``time.thread_time``), from ``before-call`` to ``after-call``, of the
outermost call only. On ``LocalDeployment``'s scheduler every container is a thread and every call waits
its latency on the virtual clock, so while one call waits the other containers run their own code and
calls: the process's CPU over that call (``process_time``) is theirs, and summing it per call counted the
same CPU once per call in flight (more than the run's whole CPU: a negative "own" CPU). A call made inside
another (an in-process fake that calls a counted client) is in its caller's time already. Calls begun
before ``reset`` are not counted, so the CPU in calls and a total taken from ``reset`` on cover one
interval.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

# How each operation counts against the floor ("read" or "write"), per service.
DYNAMODB_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})
IVS_WRITES = frozenset(
    {
        "StartComposition",
        "StopComposition",
        "StartParticipantReplication",
        "StopParticipantReplication",
        "DisconnectParticipant",
    }
)


class CallCounter:
    """Counts calls per (service, operation); measures the CPU spent inside them."""

    def __init__(self) -> None:
        self.calls: Counter[tuple[str, str]] = Counter()
        # The cached policy reads: a snapshot's Query of the POLICY or PAUSE partition, a stage's own
        # BatchGetItem of its policy, the default and both pause switches, or the change mark's GetItem
        # (adapters/changes.py) that carries a snapshot over to the next lifetime.
        self.policy_loads = 0
        self.call_cpu = 0.0
        self._epoch = 0  # bumped by reset: a call begun before it is not counted
        self._threads = threading.local()  # per thread: (epoch, thread CPU at the start) per open call

    def attach(self, client: Any) -> None:
        events = client.meta.events
        service = client.meta.service_model.service_id.hyphenize()
        events.register(f"before-call.{service}", self._before, unique_id=f"bench-before-{id(self)}")
        events.register(f"after-call.{service}", self._after, unique_id=f"bench-after-{id(self)}")
        events.register(f"after-call-error.{service}", self._after_error, unique_id=f"bench-err-{id(self)}")

    def _before(self, model: Any, params: Any, **_: Any) -> None:
        service = model.service_model.service_id.hyphenize()
        self.calls[(service, model.name)] += 1
        text = repr(params).replace("'", '"')
        if (
            (model.name == "BatchGetItem" and '"POLICY"' in text)
            or (model.name == "Query" and ('{"S": "POLICY"}' in text or '{"S": "PAUSE"}' in text))
            or (model.name == "GetItem" and '{"S": "~changed"}' in text)
        ):
            self.policy_loads += 1
        self._open().append((self._epoch, time.thread_time()))

    def _after(self, **_: Any) -> None:
        open_calls = self._open()
        if not open_calls:
            return
        epoch, started = open_calls.pop()
        if not open_calls and epoch == self._epoch:  # the outermost call, begun since the last reset
            self.call_cpu += time.thread_time() - started

    def _open(self) -> list[tuple[int, float]]:
        """The calls open in this thread, outermost first."""
        calls: list[tuple[int, float]] | None = getattr(self._threads, "calls", None)
        if calls is None:
            calls = self._threads.calls = []
        return calls

    def _after_error(self, **_: Any) -> None:
        self._after()

    def reset(self) -> None:
        self.calls.clear()
        self.policy_loads = 0
        self.call_cpu = 0.0
        self._epoch += 1

    # summaries ---------------------------------------------------------------------------------------
    def by_kind(self) -> dict[str, int]:
        kinds: Counter[str] = Counter()
        for (service, operation), n in self.calls.items():
            if service == "dynamodb":
                kinds["dynamodb_writes" if operation in DYNAMODB_WRITES else "dynamodb_reads"] += n
            else:
                kinds["ivs_writes" if operation in IVS_WRITES else "ivs_reads"] += n
        return dict(sorted(kinds.items()))

    def by_operation(self) -> dict[str, int]:
        return {f"{s}:{o}": n for (s, o), n in sorted(self.calls.items())}

    def service_total(self, service: str) -> int:
        """Calls to one service (``ivs-realtime``, ``dynamodb``)."""
        return sum(n for (s, _), n in self.calls.items() if s == service)

    @property
    def total(self) -> int:
        return sum(self.calls.values())
