"""The change mark: one item every write of a policy, a pause switch or a ban rewrites, so that a function
container learns with one ``GetItem`` a lifetime whether what it read of them is still current.

A busy container's policy snapshot is a ``Query`` page of each partition (a few past some 750 policies) and
its ban-list check one more; read again only when the mark changed (or every ``FORCED_LIFETIMES``: a write
that does not go through these stores, a console edit, is seen then), they cost one ``GetItem`` a lifetime
(docs/table.md, docs/reliability.md). The mark is read before the snapshot, so a snapshot holds every write
the mark it was read under stands for (``PolicyStore.snapshot`` says what else it guarantees).
The mark lives in the ``PAUSE`` partition, which operators and admins write and the functions never do
(``dynamodb:LeadingKeys``): the functions only read it.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from datetime import datetime

from stagepilot.adapters.dynamo import Table, iso, utc_now
from stagepilot.adapters.schema import CHANGE_MARK_SORT_KEY, PARTITION_KEY, PAUSE_PARTITION, SORT_KEY

logger = logging.getLogger(__name__)

FORCED_LIFETIMES = 10  # a container reads everything again at least this often (a console edit: 5 minutes)


def mark_changed(table: Table, *, clock: Callable[[], datetime] = utc_now) -> None:
    """After a write of a policy, a pause switch or a ban: a new mark. Never raises: the change is stored,
    and a container that misses the mark reads it within ``FORCED_LIFETIMES``."""
    item = {
        PARTITION_KEY: PAUSE_PARTITION,
        SORT_KEY: CHANGE_MARK_SORT_KEY,
        "token": uuid.uuid4().hex,
        "at": iso(clock()),
    }
    try:
        table.put(item)
    except Exception as exc:  # the change itself is stored; only how fast functions see it is at stake
        logger.warning("could not write the change mark", extra={"error": str(exc)})


class ChangeMark:
    """The mark as one container last read it (``read_since``): one ``GetItem``, shared by the policy cache
    and the ban-list watch of the container."""

    def __init__(self, table: Table, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._table = table
        self._clock = clock
        self._lock = threading.Lock()
        self._read: tuple[str, datetime] | None = None

    def read_since(self, moment: datetime | None) -> tuple[str, datetime]:
        """The mark's token ("" when none was ever written) and when it was read: read again unless it
        was read after ``moment`` (what the caller knows dates from ``moment``)."""
        with self._lock:
            if self._read is not None and moment is not None and self._read[1] > moment:
                return self._read
        now = self._clock()
        item = self._table.get(PAUSE_PARTITION, CHANGE_MARK_SORT_KEY, consistent=True)
        read = (str(item.get("token", "")) if item else "", now)
        with self._lock:
            self._read = read
        return read
