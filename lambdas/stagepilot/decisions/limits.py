"""When a stage session's composition has cost what its policy's ``limits`` allow (docs/policy.md, "What a
stage may cost"). Pure: what the convergence pass observed in, a guard stop (or none) out.

A ``maxSessionMinutes`` or ``hostGone`` stop is final for the session: the session's record moves to
``guarded`` (decisions/composition.py), which no start decision leaves. A ``noPublisherSeconds`` stop is
IVS's own idle stop made sooner: the record moves to ``ended``, and a later publish composes again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from stagepilot.policy import LimitsPolicy

GUARDED: Final = "guarded"  # what a limit's stop is audited as (and the pass's Outcome action)


class Bound(StrEnum):
    """Which limit stopped a composition (the audit's ``limit``, the policy's field)."""

    MAX_SESSION = "maxSessionMinutes"
    HOST_GONE = "hostGone"
    NO_PUBLISHER = "noPublisherSeconds"


FINAL = frozenset({Bound.MAX_SESSION, Bound.HOST_GONE})


@dataclass(frozen=True)
class Seen:
    """What the pass observed of a session whose composition (stagepilot's) is live.

    ``composing_since``: when stagepilot first started a composition in the session; ``composition_started``:
    when the live one started; ``publishing``: someone publishes now (None: not read, no limit needs it);
    ``nobody_since``: when the last publish stopped; ``host_publishing`` / ``host_last_seen``: a host publishes
    now / when a host's last publish stopped (None: no host ever published in the session)."""

    now: datetime
    composing_since: datetime
    composition_started: datetime
    publishing: bool | None = None
    nobody_since: datetime | None = None
    host_publishing: bool | None = None
    host_last_seen: datetime | None = None


@dataclass(frozen=True)
class Guard:
    """Stop the composition: which limit, why, with the figures the audit keeps."""

    bound: Bound
    reason: str
    figures: dict[str, str | int] = field(default_factory=dict)
    end_show: bool = False  # hostGone's end-show: everyone is disconnected too (replicas stopped first)

    @property
    def final(self) -> bool:
        """Nothing composes again in the session (not a restart, an event or the pass)."""
        return self.bound in FINAL


def needs_publishers(limits: LimitsPolicy) -> bool:
    """The limits need to know who publishes (and since when): the pass reads the session's publishers."""
    return limits.no_publisher_seconds is not None or limits.host_gone is not None


def guard_due(limits: LimitsPolicy, seen: Seen) -> Guard | None:
    """The first limit the session's composition has reached, or None. ``maxSessionMinutes`` first, then
    ``hostGone`` (both final), then ``noPublisherSeconds``."""
    if limits.max_session_minutes is not None:
        allowed = timedelta(minutes=limits.max_session_minutes)
        composed = seen.now - seen.composing_since
        if composed >= allowed:
            return Guard(
                Bound.MAX_SESSION,
                f"limits.maxSessionMinutes: {int(composed.total_seconds() // 60)} minutes since the session's first "
                f"composition started, {limits.max_session_minutes} allowed; nothing composes again in this session",
                {
                    "maxSessionMinutes": limits.max_session_minutes,
                    "composingSince": seen.composing_since.isoformat(),
                    "composedMinutes": int(composed.total_seconds() // 60),
                },
            )
    host_gone = limits.host_gone
    if host_gone is not None and seen.host_publishing is False:
        since = seen.host_last_seen or seen.composing_since
        gone = seen.now - since
        if gone >= timedelta(seconds=host_gone.grace_seconds):
            what = "the show ends (everyone is disconnected)" if host_gone.ends_show else "the composition stops"
            never = " (no host published in the session)" if seen.host_last_seen is None else ""
            return Guard(
                Bound.HOST_GONE,
                f"limits.hostGone: no host has published for {int(gone.total_seconds())} s{never}, "
                f"grace {host_gone.grace_seconds} s; {what}, final for this session",
                {
                    "graceSeconds": host_gone.grace_seconds,
                    "hostGoneSince": since.isoformat(),
                    "goneSeconds": int(gone.total_seconds()),
                    "action": host_gone.action,
                },
                end_show=host_gone.ends_show,
            )
    if limits.no_publisher_seconds is not None and seen.publishing is False:
        since = max(seen.nobody_since or seen.composition_started, seen.composition_started)
        idle = seen.now - since
        if idle >= timedelta(seconds=limits.no_publisher_seconds):
            return Guard(
                Bound.NO_PUBLISHER,
                f"limits.noPublisherSeconds: nobody has published for {int(idle.total_seconds())} s, "
                f"{limits.no_publisher_seconds} allowed; a later publish composes again",
                {
                    "noPublisherSeconds": limits.no_publisher_seconds,
                    "nobodySince": since.isoformat(),
                    "idleSeconds": int(idle.total_seconds()),
                },
            )
    return None


def next_deadline(limits: LimitsPolicy, seen: Seen) -> datetime | None:
    """When the first limit falls due if nothing changes (nobody publishes again, the host stays away),
    or None (no limit is running down). What the convergence pass waits for when it falls before the next
    pass (convergence.py, ``act_at_deadlines``): it looks again then and acts only if ``guard_due`` says so."""
    due = []
    if limits.max_session_minutes is not None:
        due.append(seen.composing_since + timedelta(minutes=limits.max_session_minutes))
    if limits.host_gone is not None and seen.host_publishing is False:
        due.append((seen.host_last_seen or seen.composing_since) + timedelta(seconds=limits.host_gone.grace_seconds))
    if limits.no_publisher_seconds is not None and seen.publishing is False:
        since = max(seen.nobody_since or seen.composition_started, seen.composition_started)
        due.append(since + timedelta(seconds=limits.no_publisher_seconds))
    return min(due, default=None)


SHORT_CLOCK_SECONDS: Final = 60  # a pass period, deployed: a shorter limit may start and end between two passes


def short_clock(limits: LimitsPolicy) -> bool:
    """A ``noPublisherSeconds`` or ``hostGone`` grace shorter than a pass period: its clock (a last publisher
    or host leaving) can start after a pass and run out before the next, so the pass watches the stage while
    it waits (convergence.py, ``act_at_deadlines``)."""
    short = limits.no_publisher_seconds is not None and limits.no_publisher_seconds < SHORT_CLOCK_SECONDS
    return short or (limits.host_gone is not None and limits.host_gone.grace_seconds < SHORT_CLOCK_SECONDS)
