"""When to start, skip or restart a stage session's composition. Pure: plain data in, a decision out.

The per-session record (``SessionCompositions``) is what the table remembers about a stage session's
compositions. Its ``state`` moves:

    (none) ─claim→ claimed ─start→ started ─Session End→ ended ─publish again→ claimed (attempt+1)
                      │                 ├─Session Failure→ failed ─restart→ claimed (attempt+1)
                      │                 ├─a final limit→ guarded (nothing leaves it: final for the session)
                      │                 └─noPublisherSeconds→ ended (as IVS's own idle stop)
                      ├─IVS rejects→ rejected                   └─out of restarts→ gave-up
                      └─the day's composition hours spent (compositionHoursPerDay: block)→ budget
                                                  ─the next UTC day, someone publishing→ claimed (attempt+1)

``guarded``: the pass stopped the composition at a final limit of the policy's ``limits``
(``maxSessionMinutes``, ``hostGone``; decisions/limits.py): no event, retry or pass starts one again in
the session. ``budget``: the fleet's composition budget refused the start (decisions/composition_hours.py);
nothing asks again that UTC day, and the next day's first publish or pass starts it.

The convergence pass moves a record the same way when the event never came: a composition IVS lists
FAILED (it keeps ended compositions about five minutes) is recorded ``failed`` by the pass, so its
restart counts toward ``maxRestarts`` like the event's would (``failure_unrecorded``, ``decide_start``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from stagepilot.decisions.heals import HealReason
from stagepilot.decisions.leases import CLAIM_LEASE, ClaimVerdict, HeldClaim, claim_verdict, lease_runs

RESTART_BACKOFF_BASE = timedelta(seconds=5)
RESTART_BACKOFF_MAX = timedelta(minutes=2)

# A composition lives 24 hours at most (IVS quota, not adjustable) and starts within one function timeout of
# the claim that enters it in the stage's ledger: an entry older than this cannot be a live composition.
MAX_COMPOSITION_AGE = timedelta(hours=24)
LEDGER_HORIZON = MAX_COMPOSITION_AGE + CLAIM_LEASE
# The planned rollover (docs/policy.md): an S3-only composition's successor starts at most this long before
# its predecessor reaches the limit, so the two overlap at most 2 minutes; the pass (every minute) finds
# it within the window. An end this close to 24 hours is the limit's (event times are to the second).
ROLLOVER_LEAD = timedelta(minutes=2)
LIMIT_TOLERANCE = timedelta(minutes=1)

MANAGED_TAG = "stagepilot:managed"
SESSION_TAG = "stagepilot:session"
ATTEMPT_TAG = "stagepilot:attempt"
_TOKEN_UNSAFE = re.compile(r"[^a-zA-Z0-9-_]")


class State(StrEnum):
    CLAIMED = "claimed"
    STARTED = "started"
    ENDED = "ended"
    FAILED = "failed"
    REJECTED = "rejected"
    GAVE_UP = "gave-up"
    STALE = "stale"
    GUARDED = "guarded"
    BUDGET = "budget"


# A session whose record reaches one of these states has no composition live: it leaves the stage's ledger.
NOTHING_LIVE = frozenset({State.ENDED, State.STALE, State.REJECTED, State.GAVE_UP, State.BUDGET})


@dataclass(frozen=True)
class SessionCompositions:
    """What stagepilot knows about its compositions in one stage session."""

    attempt: int  # compositions stagepilot started (or is starting) in this session, restarts included
    state: State
    owner: str  # the event id that claimed the current attempt
    claimed_at: datetime
    restarts: int = 0
    composition_arn: str | None = None
    failed_at: datetime | None = None
    failed_by: str | None = None  # who recorded the failure: the failure event's id, or the pass's owner
    ended_at: datetime | None = None  # event time of the normal end of the current attempt
    policy_hash: str | None = None  # set when IVS rejected the request: a changed policy may try again
    started_at: datetime | None = None  # when the current attempt's composition started (IVS's startTime)
    first_started_at: datetime | None = None  # when the session's first composition started (maxSessionMinutes)
    stopped_by: str | None = None  # the limit that stopped the composition (decisions/limits.Bound), if one did
    refused_day: str | None = None  # the UTC day (yyyy-mm-dd) the fleet's composition budget refused a start


@dataclass(frozen=True)
class Decision:
    """Whether to start (or restart) a composition now, and why."""

    act: bool
    reason: str
    attempt: int = 0
    needs_publishers: bool = False  # act only if someone is still publishing
    # act, but not before this much time has passed; with act False: decide again then (``decide_on_end``)
    delay: timedelta | None = None
    restart: bool = False  # the start restarts a failed composition: it counts toward maxRestarts
    give_up: bool = False  # out of restarts: the session's record says so (gave-up), audited once
    # The pass's heals: what the record and IVS show, in the vocabulary of docs/reliability.md. None: they cannot tell
    # (an event that would have started it did not: lost, late, or skipped while paused); then the
    # pass says ``event-lost`` unless it knows the event is late, the stage resumed or its policy changed.
    heal_reason: HealReason | None = None
    # the start is the successor of a composition that reached IVS's 24-hour limit (audited ``rollover``;
    # never a restart, never a lost event)
    rollover: bool = False
    # the caller's own earlier try holds the claim of ``attempt`` (``ClaimVerdict.RESUME``): it finishes it
    # without claiming again, and asks IVS first whether that try started the composition
    resume: bool = False
    # another owner's live claim (``ClaimVerdict.HELD``) stopped it: an event is tried again once its lease
    # can have run out (``pipeline.handle_record``); the pass leaves it to its owner and its next pass
    held: HeldClaim | None = None


def ended_at_limit(started_at: datetime | None, ended_at: datetime | None) -> bool:
    """IVS ended the composition at its 24-hour limit (not idle, not a stop, not a failure)."""
    if started_at is None or ended_at is None:
        return False
    return ended_at - started_at >= MAX_COMPOSITION_AGE - LIMIT_TOLERANCE


def decide_on_end(
    record: SessionCompositions | None,
    *,
    ended_arn: str,
    started_at: datetime | None,
    ended_at: datetime,
    owner: str,
    now: datetime,
) -> Decision:
    """IVS ended one of stagepilot's compositions normally (``Session End``, recorded): roll over now? Only
    a composition that reached its 24-hour limit and is still the session's own: a channel takes one
    composition at a time, so its successor starts as soon as IVS has ended it (an S3-only one started
    before the limit already, ``decide_rollover_ahead``; this catches the one that did not). Its
    successor needs someone still publishing; an idle stop or a stop is not followed by anything.

    The record still names the ended composition until its successor is recorded, whatever state it is in:
    ``ended`` (this event, or a copy of it, recorded the end: roll over), ``claimed`` (someone — a copy of
    this event, a publisher reconnecting, the pass — claimed the successor: the one claim rule, so a copy
    never starts a second one, and a dead owner's claim is taken over with its attempt), ``started`` (the
    end not recorded on it yet: decided again once it is, ``delay``), or one the successor does not follow
    (failed, guarded, gave up, rejected, refused by the budget, a stale session): skipped, saying which."""
    if record is None:
        return Decision(False, "no composition of this session is tracked")
    if record.composition_arn != ended_arn:
        return Decision(False, "not the session's current composition (its successor runs already)")
    if not ended_at_limit(started_at, ended_at):
        return Decision(False, "composition ended normally; recorded, nothing to restart")
    if record.state is State.ENDED:
        return Decision(
            True,
            "rollover: IVS ended the composition at its 24-hour limit and the stage still publishes; its "
            "successor starts now",
            attempt=record.attempt + 1,
            needs_publishers=True,
            heal_reason=HealReason.ROLLOVER,
            rollover=True,
        )
    if record.state is State.CLAIMED:
        return _finish_successor_claim(record, owner=owner, now=now)
    if record.state is State.STARTED:
        return Decision(
            False,
            "IVS ended the composition at its 24-hour limit and the session's record still says it runs: "
            "its end is recorded first, then the successor decided",
            delay=END_UNRECORDED_RETRY,
        )
    return Decision(False, _no_successor(record))


# The Session End found the record still saying "started" (its write of the end did not land on it: another
# write came between): it comes back this soon and records it.
END_UNRECORDED_RETRY = timedelta(seconds=5)


def _finish_successor_claim(record: SessionCompositions, *, owner: str, now: datetime) -> Decision:
    """The successor of a composition IVS ended at its 24-hour limit is claimed: the one claim verdict."""
    return _claim_decision(
        record,
        owner=owner,
        now=now,
        resumed="rollover: this event's earlier delivery claimed the successor of the 24-hour composition; "
        "finishing it",
        taken_over="rollover: the claim on the successor of the 24-hour composition expired; taking over",
        held="another event or the pass is starting the successor of the 24-hour composition",
        needs_publishers=True,
        heal_reason=HealReason.ROLLOVER,
        rollover=True,
    )


def _claim_decision(
    record: SessionCompositions,
    *,
    owner: str,
    now: datetime,
    resumed: str,
    taken_over: str,
    held: str,
    needs_publishers: bool = False,
    heal_reason: HealReason | None = None,
    rollover: bool = False,
) -> Decision:
    """A claim taken and not finished, by the one claim verdict (decisions/leases.py): its owner's redelivery
    resumes it, another caller takes it over once its lease ran out (the same attempt and idempotency token),
    else it is held (the event comes back once the lease can have run out)."""
    verdict = _verdict(record, owner, now)
    if verdict is ClaimVerdict.HELD:
        return Decision(False, held, held=_held(record))
    resume = verdict is ClaimVerdict.RESUME
    return Decision(
        True,
        resumed if resume else taken_over,
        record.attempt,
        needs_publishers=needs_publishers,
        heal_reason=heal_reason,
        rollover=rollover,
        resume=resume,
    )


def _no_successor(record: SessionCompositions) -> str:
    """Why a composition IVS ended at its 24-hour limit gets no successor from its Session End: the record
    says what came after it (``decide_on_end``)."""
    if record.state is State.GUARDED:
        return _guarded(record)
    if record.state is State.FAILED:
        return "the session's composition is recorded failed: its failure's restart follows it (maxRestarts)"
    if record.state is State.GAVE_UP:
        return f"gave up after {record.restarts} restarts in this session"
    if record.state is State.REJECTED:
        return "IVS rejected the start of its successor (audited composition-rejected); a changed policy starts one"
    if record.state is State.BUDGET:
        return _budget_spent(record)
    return "this session is no longer the stage's active session (a start found another one)"


def rollover_due(started_at: datetime | None, now: datetime) -> bool:
    """The composition is within ``ROLLOVER_LEAD`` of IVS's 24-hour limit."""
    return started_at is not None and now >= started_at + MAX_COMPOSITION_AGE - ROLLOVER_LEAD


def decide_rollover_ahead(
    record: SessionCompositions | None, *, live_arn: str, started_at: datetime | None, owner: str, now: datetime
) -> Decision:
    """The convergence pass found the session's S3-only composition live and near its 24-hour limit: start
    its successor now, so the recording has no gap (the two overlap at most ``ROLLOVER_LEAD``)."""
    if record is None or record.composition_arn != live_arn or not rollover_due(started_at, now):
        return Decision(False, "no composition near its 24-hour limit")
    assert started_at is not None
    limit = (started_at + MAX_COMPOSITION_AGE).isoformat()
    if record.state is State.CLAIMED and _verdict(record, owner, now) is ClaimVerdict.RESUME:
        return Decision(
            True,
            f"an earlier pass claimed the rollover; finishing it before the 24-hour limit ({limit})",
            record.attempt,
            needs_publishers=True,
            heal_reason=HealReason.ROLLOVER,
            rollover=True,
            resume=True,
        )
    if record.state is not State.STARTED:
        return Decision(False, f"the session's composition is {record.state.value}")
    return Decision(
        True,
        f"rollover: the composition reaches IVS's 24-hour limit at {limit}; its S3-only successor starts before it",
        record.attempt + 1,
        needs_publishers=True,
        heal_reason=HealReason.ROLLOVER,
        rollover=True,
    )


def decide_on_failure(
    record: SessionCompositions | None,
    *,
    failed_attempt: int,
    max_restarts: int,
    failed_at: datetime,
    now: datetime,
    owner: str = "",
    failed_arn: str | None = None,
) -> Decision:
    """One of stagepilot's compositions failed: restart it?

    ``failed_attempt``: the attempt of ``record`` that holds the failed composition ``failed_arn`` (its tags'
    attempt; for a composition carried into a later session, the attempt of that session's record). A claim
    records no composition, so the record names the failed composition until its restart is recorded: a
    record that still names it and says ``claimed`` is someone's claim on its restart (a copy of this event,
    this event's earlier receive, the pass), as is a claim of the attempt after the failed one. Either is
    decided by the one claim rule with the claim's attempt: held (back once the lease can have run out),
    taken over (the same attempt and idempotency token: IVS answers the same composition) or resumed; never
    marked failed and restarted again."""
    if record is None:
        return Decision(False, "no composition of this session is tracked")
    names_failed = failed_arn is not None and record.composition_arn == failed_arn
    if record.state is State.CLAIMED and (
        record.attempt == failed_attempt + 1 or (names_failed and record.attempt == failed_attempt)
    ):
        # The restart was claimed and not finished (cut short by a throttle, a 500, a timeout, or still in
        # flight): the failure event's redelivery finishes it; anyone else waits for the claim's lease to run out.
        return _claim_decision(
            record,
            owner=owner,
            now=now,
            resumed="this event's earlier delivery claimed the restart; finishing it",
            taken_over="the restart's claim expired; taking over",
            held="another event or the pass is restarting the composition",
            needs_publishers=True,
        )
    if record.attempt > failed_attempt:
        return Decision(
            False,
            f"attempt {failed_attempt} is not the current one: the session's record has moved on to attempt "
            f"{record.attempt} (its restart, or a later start)",
        )
    if record.attempt != failed_attempt:
        return Decision(False, f"attempt {failed_attempt} is not the current one ({record.attempt})")
    if record.state is State.GUARDED:
        return Decision(False, _guarded(record))
    if record.state is State.ENDED and names_failed and record.ended_at == failed_at:
        # Ended at this failure's own time: a copy of it found the composition carried into a later session
        # (the failure ends the older sessions' records and restarts it for the newest, ``holding``), whose
        # record has moved on since (its restart recorded).
        return Decision(
            False,
            "this failure is recorded already: the composition had been carried into a later session, whose "
            "record restarts it (this session's record ended with it)",
        )
    if record.state in (State.ENDED, State.GAVE_UP, State.STALE, State.REJECTED, State.BUDGET):
        return Decision(False, f"the session's composition is {record.state.value}")
    spent = _restarts_spent(record, max_restarts)
    if spent is not None:
        return Decision(False, spent)
    due = _restart_due(record, failed_at)
    delay = due - now if due > now else None
    return Decision(
        True,
        _nth_restart(record, max_restarts),
        attempt=record.attempt + 1,
        needs_publishers=True,
        delay=delay,
    )


class Seen(StrEnum):
    """What IVS shows of the composition a session's record holds (``GetComposition`` / ``ListCompositions``).

    IVS keeps listing a STOPPED or FAILED composition for about five minutes after it ends, then forgets
    it: within those minutes the pass can tell a failure from a normal end without the event."""

    LIVE = "live"  # STARTING or ACTIVE
    STOPPING = "stopping"
    STOPPED = "stopped"  # ended normally: nobody published for a minute, everyone left, its 24 hours, a stop
    FAILED = "failed"
    GONE = "gone"  # IVS no longer knows it: ended more than about five minutes ago, how is not known

    @classmethod
    def of(cls, state: str | None) -> Seen:
        """``state`` as IVS answers it (CompositionState); None: IVS does not know the composition."""
        if state is None:
            return cls.GONE
        return {"STARTING": cls.LIVE, "ACTIVE": cls.LIVE, "STOPPING": cls.STOPPING, "FAILED": cls.FAILED}.get(
            state, cls.STOPPED
        )


_ENDED_HOW = {
    Seen.STOPPED: "IVS stopped it (nobody published for a minute, everyone left, its 24 hours, or a stop)",
    Seen.GONE: "IVS ended it more than about five minutes ago",
}


def failure_unrecorded(record: SessionCompositions | None, seen: Seen | None) -> bool:
    """IVS shows the record's composition FAILED and the record still says it runs: its ``Session Failure``
    was lost (or is still on its way). The pass records the failure as the event would have, so the
    restart that follows counts toward ``maxRestarts`` whoever makes it."""
    return record is not None and record.state is State.STARTED and seen is Seen.FAILED


@dataclass(frozen=True)
class Published:
    """The event path's trigger: a ``Participant Published`` of the session, its participant publishing at
    ``at`` (the event's time). Whether anyone still publishes is IVS's answer, asked before a start that
    needs it (``Decision.needs_publishers``)."""

    at: datetime


@dataclass(frozen=True)
class Converging:
    """The convergence pass's trigger: IVS lists no stagepilot composition live on the stage.

    ``publishing``: someone publishes now (IVS's listing); ``publishing_since``: since when the earliest of
    them has published without a stop; ``seen``: what IVS shows of the record's composition (None: not asked,
    ``asks_ivs``); ``at_limit``: that composition ended at IVS's 24-hour limit."""

    publishing: bool = True
    publishing_since: datetime | None = None
    seen: Seen | None = None
    at_limit: bool = False


def decide_start(
    record: SessionCompositions | None,
    trigger: Published | Converging,
    *,
    owner: str,
    now: datetime,
    policy_hash: str,
    max_restarts: int,
) -> Decision:
    """Start the session's composition now? The one decision of both callers that may start one where none
    runs: a ``Participant Published`` event (``Published``) and the convergence pass finding none live at
    IVS (``Converging``). ``owner``: the caller (the event's delivery, ``Envelope.owner``, or the pass's
    owner), which holds the claim it takes.

    The rules are written once, state by state; the callers differ only in what they know. The event knows
    one publish and its time: a record saying a composition runs or failed is believed (its failure event
    restarts it), a publish from before the recorded end is a late event, and a start after an end asks
    IVS first whether anyone still publishes. The pass knows what IVS shows now: it starts after an end no
    event reported, restarts a failure nobody restarted (``maxRestarts`` and the back-off as the failure
    event's: ``decide_on_failure``), and names why in ``heal_reason`` (docs/reliability.md): ``ivs-ended``
    whenever IVS ended the composition, whoever missed the end, ``rollover`` when that end was its 24-hour
    limit with someone publishing since before it, ``taken-over``, ``policy-changed``, ``budget``; None when
    only a missing event explains it (the pass decides between event-lost and event-late, resumed,
    policy-changed)."""
    healing = trigger if isinstance(trigger, Converging) else None
    if record is not None and record.state is State.GUARDED:
        return Decision(False, _guarded(record))
    if record is not None and record.state is State.BUDGET and _refused_today(record, now):
        return Decision(False, _budget_spent(record))
    if record is not None and record.state is State.FAILED:
        if healing is None:
            return Decision(False, "the failed composition is being restarted by its failure event")
        return _heal_failed(record, owner=owner, now=now, max_restarts=max_restarts, publishing=healing.publishing)
    if healing is not None and not healing.publishing:
        return Decision(False, "nobody is publishing in the session")
    if record is None:
        if healing is not None:
            return Decision(True, "a publisher and no composition: the Participant Published event never arrived", 1)
        return Decision(True, "first publisher of the session", attempt=1)
    if record.state is State.CLAIMED:
        return _finish_claim(record, healing, owner=owner, now=now)
    if record.state is State.STARTED:
        if healing is None:
            return Decision(False, f"composition already started for this session ({record.composition_arn})")
        return _heal_started(record, healing)
    if record.state is State.ENDED:
        return _start_after_end(record, trigger)
    if record.state is State.REJECTED:
        if record.policy_hash != policy_hash:
            return Decision(
                True,
                "IVS rejected the previous request; the policy has changed since",
                attempt=record.attempt + 1,
                heal_reason=HealReason.POLICY_CHANGED if healing is not None else None,
            )
        return Decision(False, "IVS rejected this policy's composition in this session; fix the policy")
    if record.state is State.GAVE_UP:
        return Decision(False, f"gave up after {record.restarts} restarts in this session")
    if record.state is State.BUDGET:  # refused on an earlier UTC day
        refused_on = f"the composition budget refused a start on {record.refused_day} (UTC)"
        if healing is not None:
            return Decision(
                True,
                f"{refused_on}; a new day and someone publishes",
                record.attempt + 1,
                heal_reason=HealReason.BUDGET,
            )
        return Decision(True, f"{refused_on}; a new day", attempt=record.attempt + 1, needs_publishers=True)
    # stale: a start found the session no longer the stage's active one; the pass sees it publishing
    if healing is None:
        return Decision(False, "this session is no longer the stage's active session")
    return Decision(
        True,
        "publishing in a session a start found inactive: the Participant Published event was lost",
        record.attempt + 1,
    )


def _finish_claim(record: SessionCompositions, healing: Converging | None, *, owner: str, now: datetime) -> Decision:
    """A start claimed and not finished: the one claim verdict (decisions/leases.py) for both callers."""
    verdict = _verdict(record, owner, now)
    if verdict is ClaimVerdict.RESUME:
        if healing is None:
            return Decision(
                True, "this event's earlier delivery claimed the start; finishing it", record.attempt, resume=True
            )
        # Its reason is the first try's: after a composition IVS ended (what it shows of the one before the
        # claim), else a start no event made.
        after_ivs = healing.seen in (Seen.STOPPED, Seen.FAILED, Seen.GONE)
        return Decision(
            True,
            "an earlier pass claimed the start; finishing it",
            record.attempt,
            heal_reason=HealReason.IVS_ENDED if after_ivs else None,
            resume=True,
        )
    if verdict is ClaimVerdict.TAKE_OVER:
        if healing is None:
            return Decision(True, "the claim of another event expired; taking over", record.attempt)
        return Decision(
            True,
            "a start was claimed by an event that died (its lease ran out); taking over",
            record.attempt,
            heal_reason=HealReason.TAKEN_OVER,
        )
    return Decision(False, "another event is starting this session's composition", held=_held(record))


def _heal_started(record: SessionCompositions, healing: Converging) -> Decision:
    """The record says the composition runs and IVS lists none live: what IVS shows of it decides."""
    if healing.seen is Seen.LIVE:
        return Decision(False, "IVS shows the session's composition live (the listing was older)")
    if healing.seen is Seen.STOPPING:
        return Decision(False, "IVS is stopping the session's composition; the next pass looks again")
    if healing.seen is Seen.FAILED:
        return Decision(False, "IVS shows the composition failed: the failure is recorded first")
    if healing.at_limit:
        return Decision(
            True,
            "rollover: IVS ended the composition at its 24-hour limit (its Session End never arrived) and "
            "the stage still publishes",
            record.attempt + 1,
            heal_reason=HealReason.ROLLOVER,
            rollover=True,
        )
    how = _ENDED_HOW.get(healing.seen, "IVS ended it") if healing.seen is not None else "IVS ended it"
    return Decision(
        True,
        f"a publisher and no live composition: {how} and its Session End never arrived",
        record.attempt + 1,
        heal_reason=HealReason.IVS_ENDED,
    )


def _start_after_end(record: SessionCompositions, trigger: Published | Converging) -> Decision:
    """The session's composition ended normally (its Session End recorded): a publish after the end starts
    the next attempt. The event's publish from before the end is a late event; the pass's publisher who
    published across the end had the composition ended under them (its 24 hours: a rollover, or a stop)."""
    ended_at = record.ended_at
    if isinstance(trigger, Published):
        if ended_at is not None and trigger.at <= ended_at:
            return Decision(False, "this publish happened before the session's composition ended (a late event)")
        return Decision(
            True,
            "the session's composition ended normally and someone is publishing again",
            attempt=record.attempt + 1,
            needs_publishers=True,
        )
    since = trigger.publishing_since
    if ended_at is not None and since is not None and since <= ended_at:
        if ended_at_limit(record.started_at, ended_at):
            return Decision(
                True,
                "rollover: IVS ended the composition at its 24-hour limit and the stage still publishes",
                record.attempt + 1,
                heal_reason=HealReason.ROLLOVER,
                rollover=True,
            )
        return Decision(
            True,
            "someone was publishing when IVS ended the composition (its 24 hours, or a stop) and still is",
            record.attempt + 1,
            heal_reason=HealReason.IVS_ENDED,
        )
    return Decision(
        True,
        "publishing again since the composition ended and no composition: the Participant Published event was lost",
        record.attempt + 1,
    )


def _verdict(record: SessionCompositions, caller: str, now: datetime) -> ClaimVerdict:
    """What ``caller`` may do with the record's unfinished claim (the one rule, decisions/leases.py)."""
    return claim_verdict(owner=record.owner, claimed_at=record.claimed_at, caller=caller, now=now)


def _held(record: SessionCompositions) -> HeldClaim:
    return HeldClaim(record.owner, record.claimed_at)


def asks_ivs(record: SessionCompositions | None, *, owner: str, now: datetime) -> bool:
    """What IVS shows of the record's composition decides the pass's heal: the record says it runs, or
    the pass's own claim (cut short: ``ClaimVerdict.RESUME``) restarts after it."""
    if record is None or record.composition_arn is None:
        return False
    if record.state is State.STARTED:
        return True
    return record.state is State.CLAIMED and _verdict(record, owner, now) is ClaimVerdict.RESUME


def _guarded(record: SessionCompositions) -> str:
    return f"stopped at limits.{record.stopped_by or 'a limit'}: final for this session (nothing composes again)"


def _refused_today(record: SessionCompositions, now: datetime) -> bool:
    """The budget refused this session's start today (UTC); a record that does not say when may try again
    (a start asks the budget first)."""
    return record.refused_day is not None and record.refused_day >= now.astimezone(UTC).date().isoformat()


def _budget_spent(record: SessionCompositions) -> str:
    return (
        f"the day's composition hours are spent (compositionHoursPerDay, block; refused on {record.refused_day}): "
        "nothing starts until the next UTC day"
    )


def _heal_failed(
    record: SessionCompositions, *, owner: str, now: datetime, max_restarts: int, publishing: bool
) -> Decision:
    """A failed composition not restarted yet: the same bound and back-off as the failure event's restart
    (``decide_on_failure``), and the event keeps its turn: a failure an event recorded is restarted by
    that event once its back-off is over; the pass steps in only when a lease later nothing has."""
    spent = _restarts_spent(record, max_restarts)
    if spent is not None:
        return Decision(False, spent, give_up=True)
    if not publishing:
        return Decision(False, "the composition failed and nobody is publishing in the session")
    due = _restart_due(record, record.failed_at or record.claimed_at)
    # Whoever recorded the failure holds its restart from the end of its back-off, as a claim's lease.
    verdict = claim_verdict(owner=record.failed_by or "", claimed_at=due, caller=owner, now=now)
    if verdict is ClaimVerdict.HELD:
        return Decision(False, "the failure event is restarting the composition (its back-off and lease)")
    if verdict is ClaimVerdict.RESUME and now < due:
        return Decision(False, f"restart back-off: due at {due.isoformat()}")
    return Decision(
        True,
        f"IVS failed the composition and it was not restarted: {_nth_restart(record, max_restarts)}",
        record.attempt + 1,
        restart=True,
        heal_reason=HealReason.IVS_ENDED,
    )


# The restart of a failed composition, the same whoever makes it (the failure event, or the pass for a
# failure nobody restarted): one bound, one back-off, one count.
def _restarts_spent(record: SessionCompositions, max_restarts: int) -> str | None:
    """Why no restart is left (``maxRestarts``), or None."""
    return f"maxRestarts ({max_restarts}) reached" if record.restarts >= max_restarts else None


def _restart_due(record: SessionCompositions, failed_at: datetime) -> datetime:
    """When the next restart of a composition that failed at ``failed_at`` may start (``restart_backoff``)."""
    return failed_at + restart_backoff(record.restarts)


def _nth_restart(record: SessionCompositions, max_restarts: int) -> str:
    return f"restart {record.restarts + 1} of {max_restarts}"


def why_list_compositions(
    *,
    resumed: bool,
    ledger_kept: bool,
    others: Mapping[str, datetime],
    now: datetime,
    session_recorded: bool = True,
) -> str | None:
    """Why IVS must list the stage's compositions before this attempt starts one, or None when the
    claim and the stage's ledger answer alone.

    A first claim of a session is not enough: a composition may outlive its session (everyone left and
    someone came back within the minute: it carries on into the next session). The stage's ledger
    (adapters/state.py) has an entry for every session that claimed a start and has not been seen to
    end; with no other entry, no stagepilot composition can be live on the stage, and
    ``ListCompositions`` would only confirm it. A stage with no ledger had no start for 7 days (the
    ledger outlives each composition it lists by days) or never: nothing stagepilot started can be live
    there, and the claim (one winner) and the start's idempotency token (the same composition back on a
    retry) guard the start itself. Only a composition a version from before the ledger (2026-12-01)
    started is not seen when it carries into a new session across the upgrade: traded, written down in
    docs/reliability.md. A session record without a ledger is such a version's own session: IVS is asked.
    Asked when: the claim is resumed (an earlier try of this attempt may have started it), the session has
    a record but the stage no ledger, or another session's entry is recent enough to hold a live
    composition."""
    if resumed:
        return "the claim is resumed: an earlier try may have started the composition"
    if not ledger_kept and session_recorded:
        return "the stage has no composition ledger yet"
    live = sorted(session for session, at in others.items() if now - at < LEDGER_HORIZON)
    if live:
        return f"session {live[0]} may still hold a live composition"
    return None


def forgettable(others: Mapping[str, datetime], *, now: datetime) -> list[str]:
    """The other sessions' ledger entries that IVS's listing (nothing stagepilot started is live) shows
    stale: past the claim lease, so no start of theirs is in flight."""
    return sorted(session for session, at in others.items() if not lease_runs(at, now))


def restart_backoff(restarts_done: int) -> timedelta:
    """5 s, 10 s, 20 s, … capped at 2 minutes, before restart number ``restarts_done + 1``."""
    return min(RESTART_BACKOFF_BASE * int(2**restarts_done), RESTART_BACKOFF_MAX)


def idempotency_token(stage_arn: str, session_id: str, attempt: int) -> str:
    """Deterministic StartComposition token: the same (stage, session, attempt) always gets the same one.

    IVS accepts ``[a-zA-Z0-9-_]``, 1–64 characters; long ids are hashed to fit.
    """
    stage_id = stage_arn.rsplit("/", 1)[-1]
    token = _TOKEN_UNSAFE.sub("-", f"sp-{stage_id}-{session_id}-{attempt}")
    if len(token) <= 64:
        return token
    digest = hashlib.sha256(f"{stage_arn}/{session_id}".encode()).hexdigest()[:40]
    return f"sp-{digest}-{attempt}"


def managed_tags(session_id: str, attempt: int) -> dict[str, str]:
    """Tags that mark a composition as stagepilot's, and which session and attempt it belongs to."""
    return {MANAGED_TAG: "true", SESSION_TAG: session_id, ATTEMPT_TAG: str(attempt)}


def managed_attempt(tags: dict[str, str] | None) -> tuple[str, int] | None:
    """(session id, attempt) when the tags mark a stagepilot composition, else None."""
    if not tags or tags.get(MANAGED_TAG) != "true":
        return None
    try:
        return tags[SESSION_TAG], int(tags[ATTEMPT_TAG])
    except (KeyError, ValueError):
        return None
