"""The kill switch: a pause switch per stage (or ``default``), and when it was last lifted."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from stagepilot.adapters.changes import mark_changed
from stagepilot.adapters.dynamo import (
    STATE_RETENTION,
    ConditionalPut,
    Table,
    epoch,
    iso,
    parse_iso,
    stage_partition,
    utc_now,
)
from stagepilot.adapters.schema import (
    CHANGE_MARK_SORT_KEY,
    PARTITION_KEY,
    PAUSE_PARTITION,
    SORT_KEY,
    TTL_ATTRIBUTE,
)
from stagepilot.policy import DEFAULT_STAGE

RESUMED_KEY: Final = "RESUMED"  # sort key, in the stage's partition: when its pause switch was last lifted


@dataclass(frozen=True)
class PauseSwitch:
    """A ``PAUSE`` item: who paused the stage (or ``default``) and when."""

    stage_arn: str  # or "default": every stage without a policy of its own
    paused_at: str
    paused_by: str


class PauseSwitches:
    """``stagepilot pause``: one item per paused stage, apart from the policies, so operators may stop
    and restart the automation (IAM writes on ``PAUSE`` items) without being able to write a policy.
    A switch pauses the stage whatever its policy says; a policy's own ``paused: true`` pauses it too."""

    def __init__(self, table: Table, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._table = table
        self._clock = clock

    def pause(self, stage_arn: str, *, by: str, audit: ConditionalPut | None = None) -> bool:
        """True when this call paused it; False when it was paused already. ``audit``: the change's audit
        entry, written in the same transaction as the switch (both or neither)."""
        item = {PARTITION_KEY: PAUSE_PARTITION, SORT_KEY: stage_arn, "pausedAt": iso(self._clock()), "pausedBy": by}
        switch = ConditionalPut(item, "attribute_not_exists(#pk)", {"#pk": PARTITION_KEY})
        if audit is not None:
            paused = self._table.put_all([switch, audit])
        else:
            paused = self._table.put(item, condition=switch.condition, names=switch.names)
        if paused:
            mark_changed(self._table, clock=self._clock)
        return paused

    def resume(self, stage_arn: str, *, audit: ConditionalPut | None = None) -> bool:
        """True when this call lifted the switch; False when there was none. A lifted switch leaves a
        ``RESUMED`` mark in the stage's partition (when, kept ``STATE_RETENTION``): the convergence pass
        audits what it then does as ``resumed``, not as lost events (decisions/heals.py). The switch's
        removal, the mark and ``audit`` (the change's audit entry) are one transaction."""
        now = self._clock()
        mark = {
            PARTITION_KEY: stage_partition(stage_arn),
            SORT_KEY: RESUMED_KEY,
            "resumedAt": iso(now),
            TTL_ATTRIBUTE: epoch(now + STATE_RETENTION),
        }
        puts = [ConditionalPut(mark), *([audit] if audit is not None else [])]
        resumed = self._table.delete_and_put(
            PAUSE_PARTITION, stage_arn, *puts, condition="attribute_exists(#pk)", names={"#pk": PARTITION_KEY}
        )
        if resumed:
            mark_changed(self._table, clock=self._clock)
        return resumed

    def resumed_at(self, stage_arn: str) -> datetime | None:
        """When the stage's own switch (or ``default``'s, which it may follow) was last lifted; None: never
        (within ``STATE_RETENTION``)."""
        found = self._table.get_many(
            [(stage_partition(arn), RESUMED_KEY) for arn in dict.fromkeys((stage_arn, DEFAULT_STAGE))]
        )
        times = [parse_iso(item.get("resumedAt")) for item in found.values()]
        return max((t for t in times if t is not None), default=None)

    def list(self) -> dict[str, PauseSwitch]:
        return {
            item[SORT_KEY]: PauseSwitch(
                stage_arn=item[SORT_KEY],
                paused_at=str(item.get("pausedAt", "")),
                paused_by=str(item.get("pausedBy", "")),
            )
            for item in self._table.query(PAUSE_PARTITION)
            if item[SORT_KEY] != CHANGE_MARK_SORT_KEY
        }
