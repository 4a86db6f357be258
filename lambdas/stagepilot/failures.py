"""What a failure means, decided once, by its type (``stagepilot.errors``), never by its message.

Two callers meet failures: the event path (``pipeline.handle_record``: one SQS record) and the convergence
pass (``convergence.run_pass``: one stage and automation, or a fleet check). Each asks ``handling`` and
differs only in how it carries the meaning out:

    error type           event path                                  convergence pass
    MalformedEvent       park in the DLQ at once (MalformedEvent)    unexpected (as any other error)
    ClaimHeld            retry once the holder's lease can have      not raised: the pass leaves a held
                         run out (EventClaimHeld; an info line:      claim to its owner and its next pass
                         not a failure, not a throttle)              (as RetryLater if it ever were)
    RetryLater           retry after its delay or a back-off         the next pass tries again, reported
                         (EventRetried; IvsThrottled if throttled)   (ReconcileStageFailed)
    PolicyInvalid        retry: the policy may be fixed meanwhile    reported, the stage skipped (PolicyInvalid)
                         (PolicyInvalid, EventRetried)
    ConfigurationError   unexpected: retried, with its traceback     reported like RetryLater
    MalformedItem        unexpected: retried, with its traceback     reported, no traceback (ReconcileStageFailed,
                                                                     MalformedItem)
    Deferred             unexpected (only the pass defers)           the stage is the next pass's first
    anything else        retried, with its traceback (EventFailed)   reported with its traceback
                                                                     (ReconcileStageFailed); the pass goes on

Retried on the event path means the record is reported failed with a back-off, so the queue delivers it
again; after its last receive it is in the DLQ, where an alarm fires (``pipeline.py``). An IVS rejection
an automation can name (``IvsRejected``: a policy IVS refuses) is audited where it happens and never
reaches here; one that does is a failure like any ``ConfigurationError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from botocore.exceptions import ClientError

from stagepilot.errors import ClaimHeld, ConfigurationError, Deferred, MalformedEvent, MalformedItem, RetryLater
from stagepilot.policy import PolicyInvalid


class Path(StrEnum):
    """Who met the failure."""

    EVENT = "event"  # a queue-fed function handling one record
    PASS = "pass"  # the convergence pass on one stage (or a fleet check)


class Meaning(StrEnum):
    """What happens to the work that failed."""

    RETRY = "retry"  # tried again later: the queue redelivers the event; the next pass looks again
    PARK = "park"  # the event itself is wrong: in the dead-letter queue at once, no retry can help
    DEFER = "defer"  # the pass's time or read budget ran out: the stage is examined first by the next pass


class Log(StrEnum):
    """How the failure is logged."""

    QUIET = "quiet"  # reported and counted only
    INFO = "info"  # expected and not a failure (a held claim): one info line saying why it is retried
    WARNING = "warning"  # expected (IVS or DynamoDB unavailable): one warning line
    ERROR = "error"  # an operator should look (a malformed event or stored item): an error line
    TRACEBACK = "traceback"  # unknown, perhaps a bug: an error line with its traceback


@dataclass(frozen=True)
class Handling:
    """What a failure means on one path: what happens to the work, what is counted, how it is logged."""

    meaning: Meaning
    metrics: tuple[str, ...]
    log: Log
    counts_throttles: bool = False  # also counted ``IvsThrottled`` when IVS said "slow down" (RetryLater.throttled)


_EVENT_UNEXPECTED: Final = Handling(Meaning.RETRY, ("EventFailed",), Log.TRACEBACK)
_PASS_UNEXPECTED: Final = Handling(Meaning.RETRY, ("ReconcileStageFailed",), Log.TRACEBACK)
_PASS_TRANSIENT: Final = Handling(Meaning.RETRY, ("ReconcileStageFailed",), Log.WARNING)

# By path, the error types in the order they are looked up (a subclass before its base); ``Exception``
# last: whatever else is raised.
HANDLING: Final[Mapping[Path, Mapping[type[Exception], Handling]]] = {
    Path.EVENT: {
        MalformedEvent: Handling(Meaning.PARK, ("MalformedEvent",), Log.ERROR),
        ClaimHeld: Handling(Meaning.RETRY, ("EventClaimHeld",), Log.INFO),
        RetryLater: Handling(Meaning.RETRY, ("EventRetried",), Log.WARNING, counts_throttles=True),
        PolicyInvalid: Handling(Meaning.RETRY, ("PolicyInvalid", "EventRetried"), Log.WARNING),
        ConfigurationError: _EVENT_UNEXPECTED,
        MalformedItem: _EVENT_UNEXPECTED,
        Deferred: _EVENT_UNEXPECTED,
        Exception: _EVENT_UNEXPECTED,
    },
    Path.PASS: {
        Deferred: Handling(Meaning.DEFER, (), Log.QUIET),
        RetryLater: _PASS_TRANSIENT,
        ConfigurationError: _PASS_TRANSIENT,
        PolicyInvalid: Handling(Meaning.RETRY, ("PolicyInvalid",), Log.QUIET),
        MalformedItem: Handling(Meaning.RETRY, ("ReconcileStageFailed", "MalformedItem"), Log.ERROR),
        MalformedEvent: _PASS_UNEXPECTED,
        Exception: _PASS_UNEXPECTED,
    },
}


def handling(exc: Exception, path: Path) -> Handling:
    """What ``exc`` means on ``path``: the entry of its nearest type (its class, then its bases)."""
    table = HANDLING[path]
    for kind in type(exc).__mro__:
        found = table.get(kind)
        if found is not None:
            return found
    return table[Exception]


def metrics(exc: Exception, path: Path) -> tuple[str, ...]:
    """The metrics ``exc`` is counted under on ``path``."""
    found = handling(exc, path)
    throttled = found.counts_throttles and isinstance(exc, RetryLater) and exc.throttled
    return (*found.metrics, "IvsThrottled") if throttled else found.metrics


def describe(exc: Exception) -> str:
    """The failure in one line for a report or a log: stagepilot's own errors by their message, an AWS
    error by its operation and code, anything else by its type too."""
    if isinstance(exc, PolicyInvalid):
        return f"the stored policy for this stage is invalid: {exc}"
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{exc.operation_name}: {error.get('Code', '')}: {error.get('Message', '')}"
    if isinstance(exc, RetryLater | ConfigurationError | MalformedItem | MalformedEvent | Deferred):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
