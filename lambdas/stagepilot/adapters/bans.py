"""Bans: who may not join (or not publish on) a stage, or every stage."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from stagepilot.adapters.changes import FORCED_LIFETIMES, ChangeMark, mark_changed
from stagepilot.adapters.dynamo import ConditionalPut, Table, epoch, iso, utc_now
from stagepilot.adapters.schema import (
    BAN_PARTITION,
    PARTITION_KEY,
    SORT_KEY,
    TTL_ATTRIBUTE,
)
from stagepilot.errors import ConflictError, MalformedItem, NotFound

logger = logging.getLogger(__name__)


JOIN: Final = "join"  # the user may not be on the stage at all
PUBLISH: Final = "publish"  # the user may watch but not publish
BAN_SCOPES: Final = (JOIN, PUBLISH)


@dataclass(frozen=True)
class Ban:
    """A ban of one user id, global (``stage_arn`` None) or for one stage, until ``expires_at`` (None: until
    lifted). ``scope``: ``join`` (not on the stage at all) or ``publish`` (may watch, may not publish)."""

    user_id: str
    reason: str
    created_at: str
    expires_at: datetime | None
    stage_arn: str | None = None
    scope: str = JOIN
    created_by: str = ""  # who banned (the CLI: the caller's STS ARN); empty for bans from before it was kept

    def active(self, now: datetime) -> bool:
        return self.expires_at is None or self.expires_at > now

    def until(self) -> str:
        """``until 2026-12-01 12:00:00Z`` or ``permanently``."""
        return f"until {self.expires_at:%Y-%m-%d %H:%M:%SZ}" if self.expires_at else "permanently"

    def where(self) -> str:
        """Where the ban holds, for a message: ``""`` (a global join ban: plainly banned), ``on <stage ARN>``,
        ``from publishing everywhere``, ``from publishing on <stage ARN>``."""
        place = f"on {self.stage_arn}" if self.stage_arn else ""
        if self.scope == JOIN:
            return place
        return f"from publishing {place or 'everywhere'}"

    def banned(self) -> str:
        """``<user id>`` followed by where, for a message."""
        return " ".join(part for part in (self.user_id, self.where()) if part)


def ban_key(user_id: str, stage_arn: str | None = None) -> tuple[str, str]:
    """The ban's item key: the user id for a global ban, ``<user id>#<stage ARN>`` for a stage's. The item
    also carries ``userId`` (and ``stageArn``), which are what a reader trusts: a user id that itself ends in
    ``#<stage ARN>`` shares a key with that stage ban, and then the two cannot both be stored (``ban add``
    without ``--replace`` refuses the second), never mistaken for each other."""
    return BAN_PARTITION, user_id if stage_arn is None else f"{user_id}#{stage_arn}"


def ban_keys(user_id: str, stage_arn: str) -> list[tuple[str, str]]:
    """The keys of every ban that can apply to the user on the stage: the global one and the stage's."""
    return [ban_key(user_id), ban_key(user_id, stage_arn)]


def strongest(bans: Iterable[Ban | None]) -> Ban | None:
    """The ban that decides: a ``join`` ban over a ``publish`` one, a global ban over a stage's."""
    found = [ban for ban in bans if ban is not None]
    return min(found, key=lambda ban: (ban.scope != JOIN, ban.stage_arn is not None), default=None)


class BanStore:
    """The ban list (global and per stage). Expired bans are ignored at once (TTL deletion can lag by up
    to 48 h)."""

    def __init__(self, table: Table, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._table = table
        self._clock = clock

    def add(
        self,
        user_id: str,
        *,
        reason: str = "",
        ttl: timedelta | None = None,
        replace: bool = True,
        stage_arn: str | None = None,
        scope: str = JOIN,
        by: str = "",
        audit: Callable[[Ban, Ban | None], ConditionalPut] | None = None,
    ) -> tuple[Ban, Ban | None]:
        """Ban ``user_id`` (everywhere, or on ``stage_arn``); returns the ban and the one it replaced.
        ``replace=False`` (``ban add`` without ``--replace``) keeps a ban in force and raises
        ``ConflictError``: a second ``ban add --ttl 1h`` must not shorten a permanent ban. Seeding
        (simulate's ban file) replaces. The item carries who (``by``) and when (``createdAt``);
        ``audit``: the change's audit entry (given the ban and the one it replaces), written in the same
        transaction as the ban."""
        if scope not in BAN_SCOPES:
            raise ValueError(f"a ban's scope is join or publish, not {scope!r}")
        now = self._clock()
        ban = Ban(
            user_id=user_id,
            reason=reason,
            created_at=iso(now),
            expires_at=now + ttl if ttl else None,
            stage_arn=stage_arn,
            scope=scope,
            created_by=by,
        )
        pk, sk = ban_key(user_id, stage_arn)
        item: dict[str, Any] = {
            PARTITION_KEY: pk,
            SORT_KEY: sk,
            "userId": user_id,
            "reason": reason,
            "createdAt": ban.created_at,
            "scope": scope,
            **({"createdBy": by} if by else {}),
        }
        if stage_arn is not None:
            item["stageArn"] = stage_arn
        if ban.expires_at:
            item[TTL_ATTRIBUTE] = epoch(ban.expires_at)
        if replace:
            previous = self.get(user_id, stage_arn=stage_arn)
            if audit is None:
                self._table.put(item)
            elif not self._table.put_all([ConditionalPut(item), audit(ban, previous)]):
                raise ConflictError(f"the ban on {user_id} changed while it was being replaced; run it again")
            mark_changed(self._table, clock=self._clock)
            return ban, previous
        # Written only if no ban is in force: none stored, or the stored one has expired (TTL lags).
        write = ConditionalPut(
            item,
            "attribute_not_exists(#pk) OR (attribute_exists(#exp) AND #exp <= :now)",
            {"#pk": PARTITION_KEY, "#exp": TTL_ATTRIBUTE},
            {":now": epoch(now)},
        )
        if audit is not None:
            written = self._table.put_all([write, audit(ban, None)])
        else:
            written = self._table.put(write.item, condition=write.condition, names=write.names, values=write.values)
        if not written:
            current = self.get(user_id, stage_arn=stage_arn)
            until = " ".join(filter(None, [current.where(), current.until()])) if current else "(the ban just changed)"
            raise ConflictError(f"{user_id} is already banned {until}; pass --replace to replace that ban")
        mark_changed(self._table, clock=self._clock)
        return ban, None

    def remove(
        self, user_id: str, *, stage_arn: str | None = None, audit: Callable[[Ban], ConditionalPut] | None = None
    ) -> Ban:
        """Lift the ban (the global one, or the stage's); returns it. ``audit``: the change's audit entry
        (given the ban lifted), written in the same transaction as the removal."""
        pk, sk = ban_key(user_id, stage_arn)
        current = self._table.get(pk, sk, consistent=True)
        exists: dict[str, Any] = {"condition": "attribute_exists(#pk)", "names": {"#pk": PARTITION_KEY}}
        if (
            current is None
            or _ban(current).stage_arn != stage_arn
            or not (
                self._table.delete_and_put(pk, sk, audit(_ban(current)), **exists)
                if audit is not None
                else self._table.delete(pk, sk, **exists)
            )
        ):
            where = f" on {stage_arn}" if stage_arn else ""
            raise NotFound(f"{user_id} is not banned{where}")
        mark_changed(self._table, clock=self._clock)
        return _ban(current)

    def get(self, user_id: str, *, stage_arn: str | None = None) -> Ban | None:
        """The ban in force stored for the user everywhere (or, with ``stage_arn``, that stage's own)."""
        return self._matching(self._table.get(*ban_key(user_id, stage_arn)), user_id, stage_arn)

    def for_stage(self, user_id: str, stage_arn: str) -> Ban | None:
        """The ban that applies to the user on the stage (global or the stage's), one request."""
        return self.for_stage_with(user_id, stage_arn, [])[0]

    def for_stage_with(
        self, user_id: str, stage_arn: str, keys: list[tuple[str, str]]
    ) -> tuple[Ban | None, dict[tuple[str, str], dict[str, Any]]]:
        """The ban that applies to the user on the stage, and the items at ``keys``, in one request."""
        found = self._table.get_many(list(dict.fromkeys([*ban_keys(user_id, stage_arn), *keys])))
        return self.applying(found, user_id, stage_arn), found

    def applying(self, found: Mapping[tuple[str, str], Mapping[str, Any]], user_id: str, stage_arn: str) -> Ban | None:
        """From items read at (at least) ``ban_keys(user_id, stage_arn)``: the ban that applies."""
        return strongest(
            self._matching(found.get(ban_key(user_id, where)), user_id, where) for where in (None, stage_arn)
        )

    def get_with(self, user_id: str, stage_arn: str, key: tuple[str, str]) -> tuple[Ban | None, dict[str, Any] | None]:
        """The ban that applies to the user on the stage and the item at ``key``, in one request."""
        ban, found = self.for_stage_with(user_id, stage_arn, [key])
        return ban, found.get(key)

    def active(self, item: Mapping[str, Any] | None) -> Ban | None:
        ban = _ban(item) if item else None
        return ban if ban and ban.active(self._clock()) else None

    def _matching(self, item: Mapping[str, Any] | None, user_id: str, stage_arn: str | None) -> Ban | None:
        ban = self.active(item)
        return ban if ban is not None and ban.user_id == user_id and ban.stage_arn == stage_arn else None

    def list(self) -> list[Ban]:
        """Every ban in force, global and per stage. A malformed ban item is logged (its key and field) and
        left out: one bad item does not hide the others (``get`` on that user raises ``MalformedItem``)."""
        return list(self.listing())

    def listing(self) -> BanList:
        """Every ban in force, as ``list``, with the malformed items kept aside by the user and stage they
        name: judged from it, that user is an error on that stage (``BanList.applying``), as ``get`` is."""
        now = self._clock()
        bans = []
        unreadable: dict[tuple[str, str | None], MalformedItem] = {}
        for item in self._table.query(BAN_PARTITION):
            try:
                ban = _ban(item)
            except MalformedItem as exc:
                logger.error(
                    "malformed ban item skipped", extra={"key": exc.key, "field": exc.field, "error": str(exc)}
                )
                unreadable[_named(item)] = exc
                continue
            if ban.active(now):
                bans.append(ban)
        return BanList(bans, unreadable)


class BanList(tuple[Ban, ...]):
    """The bans in force as one read of the list found them (the convergence pass reads it once a pass),
    with the items it could not read, by (user id, stage ARN or None)."""

    unreadable: Mapping[tuple[str, str | None], MalformedItem]

    def __new__(
        cls, bans: Iterable[Ban] = (), unreadable: Mapping[tuple[str, str | None], MalformedItem] | None = None
    ) -> BanList:
        found = super().__new__(cls, bans)
        found.unreadable = dict(unreadable or {})
        return found

    def applying(self, user_id: str | None, stage_arn: str) -> Ban | None:
        """The ban that applies to the user on the stage; raises the item's ``MalformedItem`` when one of
        the user's ban items there could not be read (the user's verdict cannot be known)."""
        if not user_id:
            return None
        for where in (None, stage_arn):
            if (user_id, where) in self.unreadable:
                raise self.unreadable[(user_id, where)]
        return strongest(b for b in self if b.user_id == user_id and b.stage_arn in (None, stage_arn))


class BanListWatch:
    """Whether the ban list is empty, as one container last read it: at most ``ttl_seconds`` ago (the
    policy cache's lifetime). While it is, a publisher needs no ban read. One ``Query`` (``Limit`` 1)
    answers it; a stored item (an expired ban that TTL has not deleted yet included) means "read the bans".
    With the container's change mark (``adapters/changes.py``, one ``GetItem`` a lifetime shared with the
    policy cache) the answer is carried on while the mark is unchanged, up to ``FORCED_LIFETIMES``. A ban
    added to an empty list reaches the publishers this container judges within one lifetime
    (docs/reliability.md, "Fewer calls per event")."""

    def __init__(
        self,
        table: Table,
        *,
        ttl_seconds: float,
        clock: Callable[[], datetime] = utc_now,
        mark: ChangeMark | None = None,
    ) -> None:
        self._table = table
        self._ttl = ttl_seconds
        self._clock = clock
        self._mark = mark
        self._read: tuple[datetime, bool] | None = None  # (when, empty)
        self._token: str | None = None  # the change mark it was read under
        self._carried = 0

    def empty(self) -> bool:
        now = self._clock()
        if self._read is not None and (now - self._read[0]).total_seconds() < self._ttl:
            return self._read[1]
        token = None
        if self._mark is not None and self._read is not None:  # something to carry over (not on the first read)
            token, read_at = self._mark.read_since(self._read[0])
            if token == self._token and self._carried + 1 < FORCED_LIFETIMES:
                self._read, self._carried = (read_at, self._read[1]), self._carried + 1
                return self._read[1]
        # Read strongly consistent: the mark was read just before, and an unchanged mark carries this answer
        # for up to FORCED_LIFETIMES; an eventually consistent read could miss a ban added just before the
        # mark was read, and the mark would then carry "empty" for minutes (1 read unit instead of 0.5).
        self._read = (now, not self._table.holds_any(BAN_PARTITION, consistent=True))
        self._token, self._carried = token, 0
        return self._read[1]


def _named(item: Mapping[str, Any]) -> tuple[str, str | None]:
    """The user and stage (None: global) a ban item names, from its attributes, else from its key."""
    stage_arn = item.get("stageArn") if isinstance(item.get("stageArn"), str) else None
    key = str(item.get(SORT_KEY, ""))
    if stage_arn is not None and key.endswith(f"#{stage_arn}"):
        key = key[: -len(stage_arn) - 1]
    return str(item.get("userId", key)), stage_arn


def _ban(item: Mapping[str, Any]) -> Ban:
    expires = item.get(TTL_ATTRIBUTE)
    stage_arn = item.get("stageArn")
    if expires is not None and (isinstance(expires, bool) or not isinstance(expires, int | float | Decimal)):
        raise MalformedItem(
            f"{BAN_PARTITION}/{item.get(SORT_KEY)}",
            TTL_ATTRIBUTE,
            f"expected epoch seconds (a number), found {type(expires).__name__} {str(expires)[:40]!r}",
        )
    return Ban(
        user_id=str(item.get("userId", item[SORT_KEY])),  # bans stored before stage bans carry no userId
        reason=str(item.get("reason", "")),
        created_at=str(item.get("createdAt", "")),
        created_by=str(item.get("createdBy", "")),
        expires_at=datetime.fromtimestamp(int(expires), UTC) if expires is not None else None,
        stage_arn=str(stage_arn) if stage_arn else None,
        scope=PUBLISH if item.get("scope") == PUBLISH else JOIN,
    )
