"""The project's own exceptions. Each says, by its type, what the pipeline does with it (decided once, for
the event path and the convergence pass, in ``stagepilot.failures``).

- ``RetryLater``: a transient failure (IVS 5xx, throttling, quota, a DynamoDB throttle). The record is
  reported as failed, so the queue delivers it again after a back-off; after the queue's last receive it
  is in the dead-letter queue and an alarm fires.
- ``ClaimHeld`` (a ``RetryLater``): another owner holds the claim the event needs and its lease runs. Not a
  failure: the event is tried again once that lease can have run out (decisions/leases.py), counted apart
  (``EventClaimHeld``) and logged at info level with the reason.
- ``MalformedEvent``: the event itself is wrong. Retrying cannot help: it is parked in the DLQ at once.
- ``ConfigurationError``: IVS rejected what the policy asked for (a channel that does not exist, a
  destination stage that is gone). Not retried: audited, counted, visible with the CLI.
- ``Deferred``: the convergence pass's time or read budget is spent; the stage is the next pass's first.
- Anything else is a bug or an unknown failure: it is retried like ``RetryLater`` and ends in the DLQ.
"""

from __future__ import annotations


class StagePilotError(Exception):
    """Base class of the errors stagepilot raises on purpose."""


class RetryLater(StagePilotError):
    """Transient: try this event again later, after ``delay_seconds`` if given."""

    def __init__(self, message: str, *, delay_seconds: float | None = None, throttled: bool = False) -> None:
        super().__init__(message)
        self.delay_seconds = delay_seconds
        self.throttled = throttled  # IVS said "slow down" (429 / throttling): counted apart on the dashboard


class ClaimHeld(RetryLater):
    """Another owner holds the claim this event needs while its lease runs (``ClaimVerdict.HELD``): tried
    again after ``delay_seconds``, when the lease can have run out; not a failure, not a throttle."""

    def __init__(self, message: str, *, owner: str, delay_seconds: float, outcome: object = None) -> None:
        super().__init__(message, delay_seconds=delay_seconds)
        self.owner = owner
        self.outcome = outcome  # what the event did meanwhile (``pipeline.Outcome``: another destination, say)


class MalformedEvent(StagePilotError):
    """The event cannot be understood; ``field`` names the offending part (e.g. ``detail.session_id``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


class ConfigurationError(StagePilotError):
    """IVS rejected the request the policy implies; retrying the same request cannot succeed."""


class NotFound(StagePilotError):
    """A thing the caller named does not exist (a policy, a stage, a participant)."""


class ConflictError(StagePilotError):
    """A concurrent writer changed the item first (optimistic concurrency)."""


class Deferred(StagePilotError):
    """The convergence pass's read budget or time is spent: this stage is examined first by the next pass."""


class MalformedItem(StagePilotError):
    """A stored item that does not have the shape stagepilot writes (edited behind its back): ``key`` names
    the item (``BAN/troll-3``), ``field`` the attribute. Reported and skipped, never fatal to a pass."""

    def __init__(self, key: str, field: str, message: str) -> None:
        super().__init__(f"item {key}: {field}: {message}")
        self.key = key
        self.field = field
