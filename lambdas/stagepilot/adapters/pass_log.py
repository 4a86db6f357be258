"""What the last convergence passes examined: so ``ban list`` can say how far the sweep of a new ban got.

A ban holds at once where stagepilot can find the user (the door's token records, ``ban add``); the
user's participants whose tokens the application made itself are found by the convergence pass, which
judges every connected participant of every live stage it examines against the bans it read at its start
(``automations/moderation.py``, ``converge``). The pass examines the live stages in ARN order, each pass
going on where the last one stopped (``convergence.PassCursor``), about a hundred stages a pass
(docs/performance.md, section 5a). So a ban made at T has been swept through every live stage once the
passes that *started* after T have, together, examined as many stages as are live: that is what one item
keeps, the last ``KEPT_PASSES`` passes (when each started, how many stages it could examine, how many it
finished).

The same item keeps the last full pass's listing of the live stages (``StageListing``: each stage with an
active session, its session and name, as ListStages answered when the pass started): the fleet view
(``stagepilot status``) shows the fleet from it instead of listing IVS again, ten ``ListStages`` pages at
1,000 stages (docs/cli.md, "The fleet view"). It is written with the pass's record, in the same ``PutItem``:
no DynamoDB call more per pass.

One item in the convergence pass's own partition (``STAGE#~convergence``, where the functions may write);
written by the pass only (one container: reserved concurrency 1), read by the CLI.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from stagepilot.adapters.schema import PARTITION_KEY, SORT_KEY, STAGE_PREFIX
from stagepilot.adapters.table import Table, iso, parse_iso

logger = logging.getLogger(__name__)

KEY: Final = (f"{STAGE_PREFIX}~convergence", "PASSES")  # beside the pass's cursor: no stage ARN starts with "~"
KEPT_PASSES: Final = 240  # four hours of one-minute passes; an item of about 20 KB
# The listing's share of the item (DynamoDB's limit: 400 KB an item): about 40 bytes a live stage without its
# name, so names are left out past about 3,000 live stages and the listing itself past about 7,000 (the fleet
# view then lists IVS itself).
LISTING_MAX_BYTES: Final = 300_000


@dataclass(frozen=True)
class ListedStage:
    """A live stage as the pass's ListStages answered: its ARN, active session and name."""

    arn: str
    session_id: str
    name: str


@dataclass(frozen=True)
class StageListing:
    """The live stages of the last full pass's listing, when it was made (when the pass started), and how many
    stages, live or idle, it listed (``ListStages`` pages: one per 100)."""

    listed_at: datetime
    stages: tuple[ListedStage, ...]
    stages_listed: int


@dataclass(frozen=True)
class PassRecord:
    """One full pass: when it started, the live stages it could examine (not paused, covered), how many
    of those it finished (every automation ran on them)."""

    started_at: datetime
    examinable: int
    reached: int


@dataclass(frozen=True)
class SweepProgress:
    """How far the passes that started after ``since`` got through the live stages."""

    since: datetime
    passes: int  # passes started since
    reached: int  # stages they finished, together (a stage reached twice counts twice: see ``done``)
    examinable: int | None  # live stages the last pass could examine (None: no pass recorded at all)
    per_pass: int | None  # stages the last pass finished (to estimate the passes left)
    finished_at: datetime | None  # when the pass that completed the sweep started

    @property
    def done(self) -> bool:
        return self.finished_at is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "since": iso(self.since),
            "passes": self.passes,
            "stagesChecked": min(self.reached, self.examinable or 0) if self.examinable is not None else 0,
            "liveStages": self.examinable,
            "done": self.done,
            "finishedAt": iso(self.finished_at) if self.finished_at is not None else None,
            "passesLeft": self.passes_left,
        }

    @property
    def passes_left(self) -> int | None:
        if self.done:
            return 0
        if self.examinable is None or not self.per_pass:
            return None
        left = max(self.examinable - self.reached, 0)
        return max(1, -(-left // self.per_pass))


class PassLog:
    """The convergence pass writes one ``PassRecord`` a full pass; ``progress`` reads them back."""

    def __init__(self, table: Table) -> None:
        self._table = table

    def record(
        self, entry: PassRecord, listed: Sequence[ListedStage] | None = None, *, stages_listed: int | None = None
    ) -> None:
        """Keep ``entry`` with the last ``KEPT_PASSES``, and ``listed`` (the live stages the pass listed at
        its start, of ``stages_listed`` stages live or idle) as the last listing. Never raises: a pass that
        cannot write its record costs ``ban list`` one pass of progress and the fleet view a listing of its
        own, nothing else."""
        try:
            item = self._table.get(*KEY)
            kept = list(item.get("passes", [])) if item else []
            kept.append({"at": iso(entry.started_at), "examinable": entry.examinable, "reached": entry.reached})
            fresh: dict[str, Any] = {PARTITION_KEY: KEY[0], SORT_KEY: KEY[1], "passes": kept[-KEPT_PASSES:]}
            listing = _encode_listing(listed) if listed is not None else None
            if listing is not None and listed is not None:
                every = len(listed) if stages_listed is None else stages_listed
                fresh.update(listedAt=iso(entry.started_at), listing=listing, stagesListed=every)
            self._table.put(fresh)
        except Exception as exc:
            logger.warning("could not record the pass for ban sweeps", extra={"error": str(exc)})

    def listing(self) -> StageListing | None:
        """The last full pass's listing of the live stages; None when no pass kept one."""
        item = self._table.get(*KEY)
        at = parse_iso(item.get("listedAt")) if item else None
        if item is None or at is None or not isinstance(item.get("listing"), str):
            return None
        try:
            document = json.loads(item["listing"])
            prefix = str(document["prefix"])
            stages = tuple(
                ListedStage(prefix + str(row[0]), str(row[1]), str(row[2]) if len(row) > 2 else "")
                for row in document["stages"]
            )
            every = int(item.get("stagesListed", len(stages)))
        except (ValueError, KeyError, TypeError, IndexError):
            return None  # not a listing this code wrote: the fleet view lists IVS itself
        return StageListing(listed_at=at, stages=stages, stages_listed=every)

    def passes(self) -> list[PassRecord]:
        item = self._table.get(*KEY)
        found = []
        for raw in item.get("passes", []) if item else []:
            at = parse_iso(raw.get("at"))
            if at is not None:
                found.append(PassRecord(at, int(raw.get("examinable", 0)), int(raw.get("reached", 0))))
        return found

    def progress(self, since: datetime, passes: list[PassRecord] | None = None) -> SweepProgress:
        """How far the passes started after ``since`` got (``passes``: already read). A pass that started
        at the same instant may have read the bans before the ban was written: it does not count."""
        every = self.passes() if passes is None else passes
        after = [p for p in every if p.started_at > since]
        reached, finished = 0, None
        for p in after:
            reached += p.reached
            if finished is None and reached >= p.examinable:
                finished = p.started_at
        last = every[-1] if every else None
        return SweepProgress(
            since=since,
            passes=len(after),
            reached=reached,
            examinable=last.examinable if last is not None else None,
            per_pass=last.reached if last is not None else None,
            finished_at=finished,
        )


def _encode_listing(listed: Sequence[ListedStage]) -> str | None:
    """One string attribute (one attribute value: cheap to read back), the ARNs' common prefix written once;
    names are dropped, then the listing, past ``LISTING_MAX_BYTES``."""
    arns = [stage.arn for stage in listed]
    head = arns[0].rsplit("/", 1)[0] + "/" if arns else ""
    prefix = head if all(arn.startswith(head) for arn in arns) else ""
    for named in (True, False):
        rows = [[s.arn[len(prefix) :], s.session_id, *([s.name] if named and s.name else [])] for s in listed]
        text = json.dumps({"prefix": prefix, "stages": rows}, separators=(",", ":"))
        if len(text.encode()) <= LISTING_MAX_BYTES:
            return text
    logger.warning("too many live stages to keep the pass's listing", extra={"live": len(listed)})
    return None
