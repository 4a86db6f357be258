"""How long a claim in the table holds when its owner stops renewing it.

A claim says "this event is doing this action"; it is a lease, not a lock. Its owner may die (a Lambda
timeout, a record that ran out of receives during an IVS outage): then, once the lease has run out,
whoever comes next — a later event, the owner's own redelivery, the convergence pass — takes it over
with the same attempt and idempotency token, so the action happens once however many try it.
``claim_verdict`` is that rule, the one every decision about a claim asks.

The lease is twice the functions' timeout (``infra/pipeline.py``: 60 s): a live owner is always within
one invocation of finishing or failing, and a dead one blocks nothing for more than two minutes.

A caller that finds another owner's live claim (``HELD``) does not act, and is not done either: the owner
may still die. An event goes back to its queue until the lease can have run out (``HeldClaim.retry_in``;
``pipeline.handle_record``), and then finds the action done, or takes the claim over; the convergence pass
leaves the claim to its owner and to its next pass (docs/reliability.md, "A held claim is retried").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

FUNCTION_TIMEOUT_SECONDS: Final = 60
CLAIM_LEASE: Final = timedelta(seconds=2 * FUNCTION_TIMEOUT_SECONDS)
# The queues' redrive policy (``infra/pipeline.py``): after this many receives a record goes to its DLQ.
# The last receive releases the claims its event holds (``adapters/leases.py``), so nothing waits out a
# lease for an owner that will never come back.
MAX_RECEIVES: Final = 5
# An event that found a live claim comes back this long after the lease can have run out: the verdict turns
# TAKE_OVER only past the lease (strictly), and the claim's time is another container's clock.
HELD_RETRY_MARGIN: Final = timedelta(seconds=5)


class ClaimVerdict(StrEnum):
    """What a caller may do with an unfinished claim it finds."""

    RESUME = "resume"  # the caller's own earlier try holds it (a redelivery, the pass's own claim): finish it
    TAKE_OVER = "take-over"  # another owner's lease ran out: that owner died; take it with the same attempt
    HELD = "held"  # another owner holds it and its lease runs: leave it alone


def claim_verdict(*, owner: str, claimed_at: datetime, caller: str, now: datetime) -> ClaimVerdict:
    """The one claim-lease rule, for every kind of claim (composition start and restart, replication,
    disconnect) and every caller (an event, its redelivery, the convergence pass)."""
    if owner == caller:
        return ClaimVerdict.RESUME
    if now - claimed_at > CLAIM_LEASE:
        return ClaimVerdict.TAKE_OVER
    return ClaimVerdict.HELD


@dataclass(frozen=True)
class HeldClaim:
    """A claim another owner holds while its lease runs (``ClaimVerdict.HELD``): what a caller that needs it
    waits for. ``owner`` as stored (empty when a conditional write lost to a caller not named)."""

    owner: str
    claimed_at: datetime

    @property
    def lease_ends(self) -> datetime:
        return self.claimed_at + CLAIM_LEASE

    def retry_in(self, now: datetime) -> int:
        """Whole seconds (SQS's visibility is in seconds) until the caller may try again and take the claim
        over if it is still unfinished: the lease's remaining time plus ``HELD_RETRY_MARGIN``, at most one
        lease and the margin (a claim time in the future is another clock's)."""
        remaining = min(max((self.lease_ends - now).total_seconds(), 0.0), CLAIM_LEASE.total_seconds())
        return math.ceil(remaining + HELD_RETRY_MARGIN.total_seconds())


def lease_runs(claimed_at: datetime | None, now: datetime) -> bool:
    """A claim taken at ``claimed_at`` still holds at ``now`` (its owner may be acting)."""
    return claimed_at is not None and now - claimed_at <= CLAIM_LEASE
