"""Why the convergence pass healed a stage: what it observed, in the vocabulary of docs/reliability.md. Pure.

Every heal (an action the convergence pass took because the event path had not) carries one reason:

- ``event-lost``: nothing else explains it; the event that would have done it never arrived. The only
  reason counted toward ``HealedAlarm`` (events are being lost).
- ``event-late``: its event may still be on its way: the automation's queue holds events now (it may be
  one of them, queued behind a burst or waiting for a retry), or, when the pass could not read the queue,
  the thing happened within ``EVENT_LATE_SECONDS``; the pass did it first (the claims make sure the event
  then finds it done).
- ``ivs-ended``: IVS ended what was there (a failed composition, the 24-hour limit, the idle stop).
- ``resumed``: the stage was resumed (``stagepilot resume``) after the thing happened: its event came
  while the stage was paused and was skipped, as it should be.
- ``policy-changed``: the policy changed after the thing happened: its event was handled under the
  previous policy, which did not ask for this.
- ``taken-over``: a claim whose owner died (its lease ran out) was taken over and finished.
- ``rollover``: a composition reaching IVS's 24-hour limit while its stage still publishes got its
  successor (planned: before the limit with only an S3 destination, as soon as IVS ended it with a
  channel). Never a lost event, never a restart.
- ``budget``: a start the fleet's composition budget refused (``compositionHoursPerDay``, ``block``),
  made on the next UTC day with the stage still publishing.

How a converge function says which: it sets ``Outcome.heal_reason`` (``pipeline.Outcome``) when it
knows (a claim taken over, IVS ending a composition); when it does not, the pass explains the heal from
what it observed of the stage (``explain_heal``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final


class HealReason(StrEnum):
    EVENT_LOST = "event-lost"
    EVENT_LATE = "event-late"
    IVS_ENDED = "ivs-ended"
    RESUMED = "resumed"
    POLICY_CHANGED = "policy-changed"
    TAKEN_OVER = "taken-over"
    ROLLOVER = "rollover"
    BUDGET = "budget"


# The reasons that mean "events are being lost": HealedAlarm counts these only.
ALARMED: Final = frozenset({HealReason.EVENT_LOST})
HEALED_METRIC: Final = "Healed"
# An IVS event reaches stagepilot within seconds (EventBridge → SQS → the function); within this long of
# what it reports, it may still be on its way (queued behind a burst, or redelivered after a throttle):
# one function timeout for the delivery and its first retry's back-off (pipeline.RETRY_BASE_SECONDS).
EVENT_LATE_SECONDS: Final = 90
# With the queue read, an empty queue leaves only EventBridge's own way to SQS (well under a second, bar
# its retries of a failed delivery): an event older than this and not queued is lost.
EVENT_TRANSIT_SECONDS: Final = 10
# When the pass does not know when the thing happened (a composition, a setting), a resume this recent
# explains the heal: the pass examines every live stage within a few periods (docs/performance.md).
RESUMED_HORIZON: Final = timedelta(minutes=10)


def metric_name(reason: HealReason | str) -> str:
    """``HealedEventLost``, ``HealedTakenOver``...: the count of heals for ``reason``."""
    return HEALED_METRIC + "".join(part.capitalize() for part in str(reason).split("-"))


@dataclass(frozen=True)
class Observed:
    """What the pass knows of a stage when it explains a heal. Times are None when unknown."""

    now: datetime
    happened_at: datetime | None = None  # when the thing the missing event reports happened (a publish)
    policy_changed_at: datetime | None = None  # when the stage's effective policy was last written
    resumed_at: datetime | None = None  # when the stage was last resumed (``stagepilot resume``)
    # the automation's queue holds events now (visible, in flight or delayed); None: not known (not read)
    events_queued: bool | None = None


def explain_heal(observed: Observed, *, known: HealReason | str | None = None) -> HealReason:
    """The reason of one heal. ``known``: what the converge function found itself (it wins). Otherwise,
    in order: resumed or policy changed after the thing happened (its event was rightly not acted on),
    the thing so recent that its event may still come, and only then ``event-lost``."""
    if known is not None:
        return HealReason(known)
    happened, resumed = observed.happened_at, observed.resumed_at
    if resumed is not None and (
        happened < resumed if happened is not None else observed.now - resumed <= RESUMED_HORIZON
    ):
        return HealReason.RESUMED
    if observed.policy_changed_at is not None and happened is not None and happened < observed.policy_changed_at:
        return HealReason.POLICY_CHANGED
    if observed.events_queued:
        return HealReason.EVENT_LATE
    window = EVENT_LATE_SECONDS if observed.events_queued is None else EVENT_TRANSIT_SECONDS
    if happened is not None and observed.now - happened < timedelta(seconds=window):
        return HealReason.EVENT_LATE
    return HealReason.EVENT_LOST
