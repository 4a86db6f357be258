"""Release the claims of an event that will not be delivered again (its record's last receive failed).

Every claim item (a composition start, a replication, a disconnect) lives in its stage's partition and
names its ``owner`` (the event id) and ``claimedAt``. A record whose last receive fails goes to the
dead-letter queue; releasing its claims lets the next event or the convergence pass take them over at once
instead of after the lease (``decisions/leases.py``). Releasing does not delete: it moves ``claimedAt``
back past the lease, so the taker keeps the same attempt and idempotency token and IVS still sees one
request. A claim finished, taken over or renewed meanwhile is left alone (the write is conditional on
the owner, the unfinished state and the ``claimedAt`` that was read).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from stagepilot.adapters.schema import SORT_KEY
from stagepilot.adapters.table import Table, iso, parse_iso, stage_partition, utc_now
from stagepilot.decisions.leases import CLAIM_LEASE, lease_runs

UNFINISHED = "claimed"  # the unfinished state of every claim kind (composition, replication, disconnect)


def release_claims(table: Table, stage_arn: str, owner: str, *, clock: Callable[[], datetime] = utc_now) -> list[str]:
    """Expire every unfinished claim ``owner`` holds on ``stage_arn``; returns the sort keys released."""
    now = clock()
    expired = iso(now - 2 * CLAIM_LEASE)
    released = []
    for item in table.query(stage_partition(stage_arn)):
        if item.get("owner") != owner or item.get("state") != UNFINISHED or not _holds(item, now):
            continue
        done = table.update(
            stage_partition(stage_arn),
            item[SORT_KEY],
            "SET #claimedAt = :expired, #releasedAt = :now",
            condition="#owner = :owner AND #state = :claimed AND #claimedAt = :was",
            names={"#claimedAt": "claimedAt", "#releasedAt": "releasedAt", "#owner": "owner", "#state": "state"},
            values={
                ":expired": expired,
                ":now": iso(now),
                ":owner": owner,
                ":claimed": UNFINISHED,
                ":was": item["claimedAt"],
            },
        )
        if done is not None:
            released.append(str(item[SORT_KEY]))
    return released


def _holds(item: dict[str, object], now: datetime) -> bool:
    """The claim's lease is still running (one already over, or released before, needs nothing)."""
    return lease_runs(parse_iso(item.get("claimedAt")), now)
