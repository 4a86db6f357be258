"""What the tests of a failing record share: an automation that raises, the queue's side of a record
(park, retry), and the few services ``pipeline.handle_record`` and the pass read."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from stagepilot.config import Settings
from stagepilot.pipeline import HandledEvents, Outcome
from tests.support import T0


@dataclass
class Queue:
    parked: list[str] = field(default_factory=list)
    retried: list[float] = field(default_factory=list)

    def park(self, record: Any, reason: str) -> None:
        self.parked.append(reason)

    def retry_after(self, record: Any, seconds: float) -> None:
        self.retried.append(seconds)


class Failing:
    """An automation whose every event and every pass raises ``error``."""

    needs_policy = False

    def __init__(self, error: Exception, name: str = "moderation") -> None:
        self.error = error
        self.name = name

    def handle(self, event: Any, policy: Any, services: Any) -> Outcome:
        raise self.error

    def converge(self, stage: Any, services: Any) -> list[Outcome]:
        raise self.error


def services(counted: list[str] | None = None) -> Any:
    """The services a failing record meets: no policy, metrics counted into ``counted``."""
    return SimpleNamespace(
        settings=Settings(table_name="StagePilot-Table"),
        effective_policies=SimpleNamespace(get=lambda arn: None),
        metrics=SimpleNamespace(count=lambda name, value=1: None if counted is None else counted.append(name)),
        clock=lambda: T0,  # when the sample events happen
        handled=HandledEvents(ttl_seconds=30, clock=lambda: T0),  # what this container handled: nothing yet
    )
