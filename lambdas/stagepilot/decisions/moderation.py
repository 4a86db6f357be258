"""Whom moderation disconnects, and why. Pure: plain data in, a verdict out.

Publishers are checked in a fixed order and the first rule that matches is the one reported:

    ban (unexpired; global or the stage's, either scope) → ``blockedUserIds`` → ``blockedAttributes``

Publish errors and flags are counted per participant; a participant is over its limit when ``count``
of its events fall within ``windowSeconds`` of each other (event time, not the Lambda's clock), in some
window that contains the event just counted. Events arrive late and out of order, so the windows are
computed over all the event times remembered, not just the ones before the newest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from stagepilot.decisions.publishers import may_need_attributes
from stagepilot.policy import DEFAULT_REASON, Limit, ModerationPolicy

MAX_REASON_LENGTH: Final = 128  # DisconnectParticipant.reason
# Flags count only where the policy asks for it: a policy that only blocks users never lets a flag kick.
NO_FLAG_LIMIT: Final = "the stage's policy sets no flagLimit: flags are not counted"


class Rule(StrEnum):
    """The rule that fired, as written in the audit trail."""

    GLOBAL_BAN = "global-ban"
    STAGE_BAN = "stage-ban"  # a ban for this stage only (``ban add --stage``)
    BLOCKED_USER_ID = "blocked-user-id"
    BLOCKED_ATTRIBUTE = "blocked-attribute"
    PUBLISH_ERROR_LIMIT = "publish-error-limit"
    FLAG_LIMIT = "flag-limit"
    MANUAL = "manual"  # ``stagepilot disconnect``


@dataclass(frozen=True)
class Verdict:
    """Disconnect: which rule fired, the reason sent to IVS, and the why for the log and the audit."""

    rule: Rule
    reason: str  # ≤ 128 characters: what DisconnectParticipant is given
    why: str


def disconnect_reason(moderation: ModerationPolicy | None, *, ban_reason: str = "") -> str:
    """The reason sent to IVS: the ban's own reason if it has one, else the policy's, ≤ 128 chars."""
    text = ban_reason.strip() or (moderation.reason if moderation is not None else "") or DEFAULT_REASON
    return text[:MAX_REASON_LENGTH]


def needs_attributes(user_id: str | None, *, banned: bool, moderation: ModerationPolicy | None) -> bool:
    """True when only the participant's token attributes can decide (worth a GetParticipant call)."""
    return not banned and may_need_attributes(user_id, moderation)


def should_disconnect_publisher(
    user_id: str | None,
    *,
    banned: bool,
    ban_reason: str = "",
    moderation: ModerationPolicy | None,
    attributes: Mapping[str, str] | None = None,
    stage_ban: bool = False,
    publish_only: bool = False,
) -> Verdict | None:
    """A participant published: the first rule that disconnects it, or None.

    ``banned``: a ban (unexpired) applies to the user here: a global one, or the stage's own
    (``stage_ban``); of either scope, since neither lets the user publish (``publish_only``: the ban lets
    the user watch). ``attributes``: the participant's token attributes, or None when they were not
    fetched (only needed for ``blockedAttributes``).
    """
    if banned:
        where = "this stage's" if stage_ban else "the global"
        scope = " (publish scope: may watch, may not publish)" if publish_only else ""
        return Verdict(
            Rule.STAGE_BAN if stage_ban else Rule.GLOBAL_BAN,
            disconnect_reason(moderation, ban_reason=ban_reason),
            f"user {user_id} is on {where} ban list{scope}",
        )
    if moderation is None:
        return None
    if user_id is not None and user_id in moderation.blocked_user_ids:
        return Verdict(Rule.BLOCKED_USER_ID, disconnect_reason(moderation), f"user {user_id} is in blockedUserIds")
    match = blocked_attribute(attributes or {}, moderation.blocked_attributes)
    if match is not None:
        key, value = match
        return Verdict(
            Rule.BLOCKED_ATTRIBUTE,
            disconnect_reason(moderation),
            f"token attribute {key}={value!r} is in blockedAttributes",
        )
    return None


def should_disconnect_viewer(
    user_id: str | None,
    *,
    join_banned: bool,
    stage_ban: bool = False,
    ban_reason: str = "",
    moderation: ModerationPolicy | None,
) -> Verdict | None:
    """A connected participant that does not publish: only a ``join`` ban removes it (a subscriber sends no
    events, so the convergence pass is what finds it)."""
    if not join_banned:
        return None
    where = "this stage's" if stage_ban else "the global"
    return Verdict(
        Rule.STAGE_BAN if stage_ban else Rule.GLOBAL_BAN,
        disconnect_reason(moderation, ban_reason=ban_reason),
        f"user {user_id} is on {where} ban list (join scope) and is connected",
    )


def blocked_attribute(attributes: Mapping[str, str], blocked: Mapping[str, Iterable[str]]) -> tuple[str, str] | None:
    """The first (key, value) of ``attributes`` whose value is blocked for that key (keys sorted)."""
    for key in sorted(blocked):
        value = attributes.get(key)
        if value is not None and value in set(blocked[key]):
            return key, value
    return None


def events_in_window(times: Iterable[datetime], *, at: datetime, window_seconds: int) -> int:
    """The most events that fit in one window of ``window_seconds`` (span < window) containing ``at``."""
    window = timedelta(seconds=window_seconds)
    ordered = sorted(times)
    best = 0
    for start in ordered:
        if start > at:
            break
        if at - start >= window:
            continue
        best = max(best, sum(1 for t in ordered if start <= t < start + window))
    return best


def should_disconnect_over_limit(
    times: Iterable[datetime],
    *,
    at: datetime,
    limit: Limit,
    rule: Rule,
    moderation: ModerationPolicy,
    what: str,
) -> Verdict | None:
    """``times``: the participant's counted events (this one included, at ``at``). Over the limit?"""
    seen = events_in_window(times, at=at, window_seconds=limit.window_seconds)
    if seen < limit.count:
        return None
    return Verdict(
        rule,
        disconnect_reason(moderation),
        f"{seen} {what} within {limit.window_seconds} s (limit {limit.count})",
    )


def count_reason(seen: int, limit: Limit, what: str) -> str:
    """Why an event did not disconnect: how far the participant is from its limit."""
    return f"{seen} of {limit.count} {what} within {limit.window_seconds} s; under the limit"
