"""The fleet view of ``stagepilot status`` (no STAGE_ARN): every live stage, from what stagepilot already
knows, in seconds at 1,000 live stages (docs/cli.md, "The fleet view").

What one frame reads, whatever the fleet's size:

    table the convergence pass's last listing of the live stages and their sessions (one GetItem,
          adapters/pass_log.py), when it is younger than ``LISTING_FRESH``; else, or with ``--fresh``,
    IVS   ListStages pages (100 stages a page, at the operator's share, budget.OPERATOR_SHARES: ten pages,
          about 4 s, at 1,000 live stages)
    IVS   ListCompositions, unfiltered (one listing: IVS allows 20 compositions an account)
                                                       → each stage's compositions and destinations
    table every policy and pause switch (one Query each), every recording-settings record (one Query),
          the composition record of each live session (BatchGetItem, 100 keys a call), the audit trail
          of the last hour (its time index, newest first, at most ``AUDIT_WINDOW_ENTRIES``)
    SQS, CloudWatch: each dead-letter queue's depth, the stack's alarms
    IVS   at most ``PUBLISHER_CHECKS`` stages whose policy composes and that have no composition: is
          anyone publishing there (ListParticipants of those who published, then ListParticipantEvents)?

No IVS read for every stage: who is on air on one stage is ``status STAGE_ARN``'s question; at the CLI's
1 call/s of ListParticipants a per-stage listing would cost 1,000 s at 1,000 stages (issue 26). The
answers the fleet view gives without it (a stage's composition and destinations, its policy, whether
stagepilot gave up or IVS refused, the recording settings) are IVS's or the table's own; the one answer
that needs IVS's participants (a stage that should be composed while someone publishes and is not) is
asked only of the stages where it can change the answer.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from stagepilot.adapters.ivs import CompositionSummary, StageInfo
    from stagepilot.adapters.table import Table
    from stagepilot.cli.output import Output
    from stagepilot.cli.resources import Resources

AUDIT_WINDOW: Final = timedelta(hours=1)  # "last action": the newest entry of the last hour, per stage
AUDIT_WINDOW_ENTRIES: Final = 5_000  # at most this many entries read (a few 1 MB pages of the time index)
# Audit actions that say something went wrong on the stage (the automations' own vocabulary).
TROUBLE_ACTIONS: Final = frozenset(
    {
        "composition-rejected",
        "composition-gave-up",
        "destination-failed",
        "recording-failed",
        "replication-rejected",
        "disconnect-rejected",
    }
)
# A composition record in one of these states: stagepilot stopped trying for the session.
GAVE_UP_STATES: Final = frozenset({"gave-up", "rejected"})
# ...and in these, no composition is missing: a start is under way (claimed), or a limit stopped it for the
# session (guarded, docs/policy.md "What a stage may cost").
NOT_MISSING_STATES: Final = GAVE_UP_STATES | {"claimed", "guarded"}
# The convergence pass's listing stands for the live stages while younger than this: passes start every
# minute (the stack's default period) and record their listing when they end (at most their 60-s timeout
# later), so a running stack's newest listing is at most 2 minutes old; 30 s of slack beside.
LISTING_FRESH: Final = timedelta(seconds=150)
# ...and only where listing IVS now would make the operator wait: the CLI sends 3 ListStages pages (300
# stages) in any 1.2 s (budget.OPERATOR_SHARES), so a fleet of at most that many is listed now, exactly.
LIST_NOW_STAGES: Final = 300
# Stages checked for a publisher a frame (each check: one ListParticipants, one ListParticipantEvents or two,
# at the CLI's 1 call of each in any 1.2 s): about 1.3 s of a frame at most.
PUBLISHER_CHECKS: Final = 2
PUBLISH_STATE_READS: Final = 2
READERS: Final = 6  # the frame's table reads side by side (the composition records: one thread per 100 sessions)


def fleet_report(
    res: Resources,
    *,
    problems_only: bool = False,
    fresh: bool = False,
    clock: Callable[[], datetime] | None = None,
) -> dict[str, Any]:
    """Every live stage's row, a summary of the fleet, and when it was read (``time``: when the reads
    began; ``readSeconds``: how long they took; ``listing``: where the live stages come from and how old
    that listing is). ``fresh``: list IVS now rather than take the convergence pass's listing."""
    from stagepilot.adapters.settings_records import SettingsRecords
    from stagepilot.adapters.state import BATCH_GET_KEYS
    from stagepilot.adapters.table import AuditLog, PolicyStore, iso
    from stagepilot.cli.status import alarm_states, dead_letter_depths, policy_summary

    now = (clock or _utc_now)()
    began = time.monotonic()
    live, listing = live_stages(res, now=now, fresh=fresh)
    # The reads below do not depend on each other: side by side, each on a client made here (a boto3 session
    # is not to be shared across threads for making clients; a client is), the queues and alarms meanwhile.
    ivs, table = res.ivs, res.table
    sessions = [(s.arn, str(s.active_session_id)) for s in live]
    pool = ThreadPoolExecutor(max_workers=READERS, thread_name_prefix="fleet-read")
    try:
        compositions_read = pool.submit(ivs.all_compositions if live else list)
        snapshot_read = pool.submit(PolicyStore(table).full_snapshot)
        settings_read = pool.submit(SettingsRecords(table).all if live else dict)
        trail = AuditLog(table).newest_first(None, since=now - AUDIT_WINDOW) if live else iter(())
        audit_read = pool.submit(_last_actions, trail)
        record_reads = [
            pool.submit(_composition_records, table, sessions[start : start + BATCH_GET_KEYS])
            for start in range(0, len(sessions), BATCH_GET_KEYS)
        ]
        hours_read = pool.submit(composition_hours_today, res, now)
        depths = dead_letter_depths(res)
        alarms = alarm_states(res) if depths is not None else None
        compositions, snapshot, settings = compositions_read.result(), snapshot_read.result(), settings_read.result()
        last, hours = audit_read.result(), hours_read.result()
        records = {arn: record for read in record_reads for arn, record in read.result().items()}
    finally:  # a failed read or Ctrl-C: the reads not started yet are dropped, not made
        pool.shutdown(cancel_futures=True)
    by_stage: dict[str, list[CompositionSummary]] = {}
    for c in compositions:
        by_stage.setdefault(c.stage_arn, []).append(c)
    summaries: dict[tuple[Any, ...], dict[str, Any]] = {}  # one validation per policy, not one per stage
    rows = []
    for stage in sorted(live, key=lambda s: s.arn):
        session_id = str(stage.active_session_id)
        found = snapshot.lookup(stage.arn)
        own, default = ((p.stage_arn, p.version) if p else None for p in (found.own, found.default))
        key = (own, default, found.paused_by)
        if key not in summaries:
            summaries[key] = policy_summary(found)
        row: dict[str, Any] = {
            "stageArn": stage.arn,
            "name": stage.name,
            "sessionId": session_id,
            "composition": composition_summary(by_stage.get(stage.arn, []), session_id),
            "compositionRecord": records.get(stage.arn),
            "policy": dict(summaries[key]),
            "recordingSettings": settings[stage.arn].to_json() if stage.arn in settings else None,
            "lastAction": last.get(stage.arn),
        }
        rows.append(row)
    # the day's composition budget spent in block mode: every start is refused until the next UTC day (the
    # summary says so), so no stage misses a composition it could have
    blocked = bool(hours and hours["mode"] == "block" and hours["spentAt"])
    unchecked = check_publishers(res, rows) if not blocked else 0
    for row in rows:
        row["problems"] = stage_problems(row)
    summary = fleet_summary(rows, depths, alarms)
    # compositions stagepilot did not start (no stagepilot:managed tag): reported, never stopped (docs/policy.md)
    summary["unmanagedCompositions"] = sum(1 for c in compositions if c.active and not _managed(c))
    summary["compositionHours"] = hours
    summary["notCheckedForPublishers"] = unchecked
    return {
        "time": iso(now),
        "readSeconds": round(time.monotonic() - began, 3),
        "listing": listing,
        "liveStages": len(rows),
        "summary": summary,
        "auditWindowStart": iso(now - AUDIT_WINDOW),
        "problemsOnly": problems_only,
        "stages": [row for row in rows if row["problems"]] if problems_only else rows,
    }


def live_stages(res: Resources, *, now: datetime, fresh: bool) -> tuple[list[StageInfo], dict[str, Any]]:
    """The live stages, from the convergence pass's listing while it is younger than ``LISTING_FRESH`` and of
    more stages than ``LIST_NOW_STAGES`` (one GetItem), else from IVS now (ListStages pages); and where they
    came from, for the frame to say."""
    from stagepilot.adapters.ivs import StageInfo
    from stagepilot.adapters.pass_log import PassLog
    from stagepilot.adapters.table import iso

    kept = None if fresh else PassLog(res.table).listing()
    age = (now - kept.listed_at).total_seconds() if kept is not None else None
    if kept is None or age is None:
        why = "--fresh" if fresh else "no listing of the convergence pass"
    elif kept.stages_listed <= LIST_NOW_STAGES:
        why = f"{kept.stages_listed} stage(s) at the last pass: listed at once"
    elif not 0 <= age <= LISTING_FRESH.total_seconds():
        why = f"the convergence pass's last listing is from {iso(kept.listed_at)}"
    else:
        stages = [StageInfo(arn=s.arn, name=s.name, active_session_id=s.session_id) for s in kept.stages]
        return stages, {"by": "convergence-pass", "listedAt": iso(kept.listed_at), "ageSeconds": round(age, 1)}
    return res.ivs.live_stages(), {"by": "ListStages", "listedAt": iso(now), "ageSeconds": 0.0, "why": why}


def composes(row: Mapping[str, Any]) -> bool:
    """The stage's policy composes and nothing holds it back (valid, not paused)."""
    policy = row["policy"]
    return policy["valid"] is True and not policy["paused"] and "composition" in policy["sections"]


def missing_composition(row: Mapping[str, Any]) -> bool:
    """The policy composes, IVS lists no composition of stagepilot's starting or running for the session (a
    FAILED one is a problem of its own), and the session's record does not say why (a start under way, a
    limit, stagepilot gave up): whether that is a problem depends on whether anyone publishes."""
    record = row.get("compositionRecord") or {}
    return (
        composes(row)
        and row["composition"]["state"] not in ("ACTIVE", "STARTING", "FAILED")
        and record.get("state") not in NOT_MISSING_STATES
    )


def check_publishers(res: Resources, rows: list[dict[str, Any]]) -> int:
    """Ask IVS who publishes on the first ``PUBLISHER_CHECKS`` stages that miss a composition, at most
    ``PUBLISH_STATE_READS`` participants' events in all (``row["publishing"]``: the participant on air, or None
    when nobody is); returns how many such stages were left unchecked this frame (no ``publishing`` key)."""
    candidates = [row for row in rows if missing_composition(row)]
    reads = PUBLISH_STATE_READS
    unchecked = max(0, len(candidates) - PUBLISHER_CHECKS)
    for row in candidates[:PUBLISHER_CHECKS]:
        published = [
            p for p in res.ivs.published_participants(row["stageArn"], row["sessionId"]) if p.state == "CONNECTED"
        ]
        on_air, asked = None, 0
        for p in published[:reads]:
            asked += 1
            if res.ivs.publish_state(row["stageArn"], row["sessionId"], p.participant_id)[0]:
                on_air = p.participant_id
                break
        reads -= asked
        if on_air is None and asked < len(published):
            unchecked += 1  # out of reads before every participant who published was asked: not known
        else:
            row["publishing"] = on_air
    return unchecked


def composition_summary(compositions: list[CompositionSummary], session_id: str) -> dict[str, Any]:
    """The state of stagepilot's composition for this session (else of any live one), with its destinations."""
    from stagepilot.decisions.composition import managed_attempt

    def owned(c: CompositionSummary) -> bool:
        managed = managed_attempt(dict(c.tags))
        return managed is not None and managed[0] == session_id

    mine = [c for c in compositions if owned(c)]
    chosen = next((c for c in mine if c.active), mine[-1] if mine else None)
    others = [c for c in compositions if c.active and not _managed(c)]
    if chosen is None:
        return {"state": "none", "managedByStagepilot": False, "destinations": "", "others": len(others)}
    active = sum(1 for state in chosen.destination_states if state == "ACTIVE")
    destinations = f"{active}/{len(chosen.destination_states)} destinations active" if chosen.destination_states else ""
    return {
        "state": chosen.state,
        "managedByStagepilot": True,
        "arn": chosen.arn,
        "destinations": destinations,
        "destinationStates": list(chosen.destination_states),
        "others": len(others),
    }


def composition_hours_today(res: Resources, now: datetime) -> dict[str, Any] | None:
    """Today's (UTC) composition hours and the ``compositionHoursPerDay`` limit, as the convergence pass
    keeps them (one read; docs/policy.md); None when the stack sets no budget (or no pass kept today yet)."""
    from stagepilot.adapters.composition_hours import CompositionHours
    from stagepilot.decisions.composition_hours import utc_day

    figure = CompositionHours(res.table).figure(utc_day(now))
    if figure.limit is None:
        return None
    return {
        "day": figure.day.isoformat(),
        "hours": round(figure.hours(now), 2),
        "limit": figure.limit.limit,
        "mode": figure.limit.mode,
        "spentAt": figure.spent_at.isoformat() if figure.spent_at is not None else None,
    }


def _managed(composition: CompositionSummary) -> bool:
    from stagepilot.decisions.composition import managed_attempt

    return managed_attempt(dict(composition.tags)) is not None


def stage_problems(row: Mapping[str, Any]) -> list[str]:
    """What needs an operator on this stage, in words (``--problems`` shows only stages with some)."""
    problems = []
    policy = row["policy"]
    if policy["source"] != "none" and policy["valid"] is False:
        problems.append("the stored policy is invalid: nothing acts on it (policy validate, policy put)")
    composition = row["composition"]
    if composition["state"] == "FAILED":
        problems.append("stagepilot's composition FAILED")
    failed = [s for s in composition.get("destinationStates", []) if s == "FAILED"]
    if failed and composition["state"] != "FAILED":
        problems.append(f"composition: {len(failed)} destination(s) FAILED ({composition['destinations']})")
    record = row.get("compositionRecord") or {}
    if record.get("state") in GAVE_UP_STATES:
        problems.append(
            f"composition {record['state']} for this session (restarts {record.get('restarts', 0)}): "
            "stagepilot starts none until the next session"
        )
    if row.get("publishing"):
        problems.append(
            f"{row['publishing']} publishes and no composition runs, though the policy composes "
            "(the convergence pass starts one; stagepilot reconcile STAGE_ARN to now)"
        )
    settings = row.get("recordingSettings") or {}
    if settings.get("state") == "refused":
        problems.append(f"recording settings REFUSED since {settings.get('since')}: {settings.get('reason')}")
    last = row.get("lastAction") or {}
    if last.get("action") in TROUBLE_ACTIONS:
        problems.append(f"last action {last.get('time')} {last.get('automation')}/{last.get('action')}")
    return problems


def fleet_summary(
    rows: list[dict[str, Any]], depths: Mapping[str, int] | None, alarms: list[dict[str, str]] | None
) -> dict[str, Any]:
    return {
        "live": len(rows),
        "paused": sum(1 for r in rows if r["policy"]["paused"]),
        "dryRun": sum(1 for r in rows if r["policy"]["dryRun"] and not r["policy"]["paused"]),
        "noPolicy": sum(1 for r in rows if r["policy"]["source"] == "none"),
        "invalidPolicy": sum(1 for r in rows if r["policy"]["valid"] is False),
        "withProblems": sum(1 for r in rows if r["problems"]),
        "composed": sum(1 for r in rows if r["composition"]["state"] in ("ACTIVE", "STARTING")),
        "deadLetters": sum(depths.values()) if depths is not None else None,
        "deadLetterQueues": dict(depths) if depths is not None else None,
        "alarmsInAlarm": [a["name"] for a in alarms if a["state"] == "ALARM"] if alarms is not None else None,
        "alarms": len(alarms) if alarms is not None else None,
    }


def summary_text(report: Mapping[str, Any]) -> str:
    s = report["summary"]
    parts = [f"{s['paused']} paused", f"{s['dryRun']} dry-run", f"{s['withProblems']} with problems"]
    if s["invalidPolicy"]:
        parts.append(f"{s['invalidPolicy']} invalid policy")
    if s.get("unmanagedCompositions"):
        parts.append(f"{s['unmanagedCompositions']} composition(s) stagepilot did not start")
    hours = s.get("compositionHours")
    if hours:
        spent = ", spent" if hours["spentAt"] else ""
        parts.append(f"composition hours today {hours['hours']:g} of {hours['limit']:g} ({hours['mode']}{spent})")
    if s.get("notCheckedForPublishers"):
        parts.append(
            f"{s['notCheckedForPublishers']} uncomposed stage(s) whose policy composes not checked for a publisher "
            "(status STAGE_ARN)"
        )
    if s["deadLetters"] is None:
        parts.append("dead letters unknown (no stack outputs; use --stack)")
    else:
        parts.append(f"dead letters {s['deadLetters']}")
    if s["alarms"] is not None:
        firing = s["alarmsInAlarm"]
        parts.append(f"alarms in ALARM {len(firing)}" + (f" ({', '.join(firing)})" if firing else ""))
    read = f"  (read {report['time']}, {report['readSeconds']:.1f} s; {listing_text(report['listing'])})"
    return f"{report['liveStages']} live stage(s): " + ", ".join(parts) + read


def listing_text(listing: Mapping[str, Any]) -> str:
    """Where the frame's live stages come from, and how old that is."""
    if listing["by"] == "convergence-pass":
        return f"live stages as the convergence pass listed them {listing['ageSeconds']:.0f} s before"
    return "live stages listed now"


def print_fleet(report: dict[str, Any], out: Output) -> None:
    from stagepilot.cli.status import policy_text, recording_settings_text

    out.line(summary_text(report))
    s = report["summary"]
    if s["deadLetterQueues"]:
        waiting = {name: n for name, n in s["deadLetterQueues"].items() if n}
        if waiting:
            out.line("dead-letter queues: " + ", ".join(f"{name} {n}" for name, n in waiting.items()) + " (dlq list)")
    if report["problemsOnly"] and not report["stages"]:
        out.line("no stage with a problem")
    for row in report["stages"]:
        composition = row["composition"]
        last = row["lastAction"]
        out.line(f"{row['stageArn']}" + (f" ({row['name']})" if row["name"] else "") + f"  session {row['sessionId']}")
        others = f" +{composition['others']} not stagepilot's" if composition.get("others") else ""
        nobody = " (nobody publishing)" if "publishing" in row and row["publishing"] is None else ""
        out.line(
            f"  composition {composition['state']}{nobody}"
            + (f" ({composition['destinations']})" if composition["destinations"] else "")
            + others
            + f"  policy {policy_text(row['policy'])}"
        )
        settings = row.get("recordingSettings") or {}
        if settings.get("state") == "pending":
            out.line(f"  {recording_settings_text(settings)}")
        for problem in row["problems"]:
            out.line(f"  PROBLEM: {problem}")
        out.line(
            "  last action "
            + (f"{last.get('time')} {last.get('automation')}/{last.get('action')}" if last else "none in the last hour")
        )


def _composition_records(table: Table, sessions: list[tuple[str, str]]) -> dict[str, dict[str, Any]]:
    """The composition record of each live session, by stage (BatchGetItem, 100 keys a call)."""
    from stagepilot.adapters.state import CompositionRecords

    return {
        arn: {
            "state": record.state.value,
            "attempt": record.attempt,
            "restarts": record.restarts,
            "compositionArn": record.composition_arn,
        }
        for (arn, _), record in CompositionRecords(table).get_many(sessions).items()
    }


def _last_actions(entries: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The newest entry of each stage among ``entries`` (newest first), at most ``AUDIT_WINDOW_ENTRIES``."""
    last: dict[str, dict[str, Any]] = {}
    for entry in itertools.islice(entries, AUDIT_WINDOW_ENTRIES):
        arn = entry.get("stageArn")
        if isinstance(arn, str) and arn not in last:
            last[arn] = entry
    return last


def _utc_now() -> datetime:
    return datetime.now(UTC)
