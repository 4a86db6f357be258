"""``stagepilot status [STAGE_ARN] [--watch [SECONDS]]``: what is live now, and what stagepilot makes of it.

Without an ARN, the fleet (cli/fleet.py): every stage with an active session, one row each, from the
convergence pass's listing of a large fleet or from ListStages (``--fresh``). With an ARN,
one stage in detail: every participant and what the policy says about each, compositions and their
destinations, replicas, stagepilot's records, dead-letter queues, alarms and the last actions. Times are
ISO-8601 UTC. The views read IVS, the table, SQS and CloudWatch; they change nothing.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from stagepilot.cli.errors import CliError
from stagepilot.cli.output import screen_controls
from stagepilot.cli.policies import checked_arn
from stagepilot.cli.resources import Resources, client, resources
from stagepilot.outputs import OUTPUT_ALARM_TOPIC_ARN

if TYPE_CHECKING:
    from stagepilot.adapters.ivs import Participant
    from stagepilot.adapters.table import PolicyLookup
    from stagepilot.cli.output import Output
    from stagepilot.policy import StagePolicy

DEFAULT_WATCH_SECONDS = 5.0
# A policy's sections, in the order docs/policy.md gives them (``paused`` is shown apart).
POLICY_SECTIONS = ("composition", "replication", "moderation", "stage", "limits", "tokens")
CLEAR_SCREEN = "\x1b[H\x1b[2J"


def register(commands: Any, common: argparse.ArgumentParser, aws: argparse.ArgumentParser) -> None:
    status = commands.add_parser(
        "status",
        parents=[common, aws],
        help="live view: every live stage, or one stage in detail",
        description="Without STAGE_ARN: every stage with an active session (its composition and destinations, "
        "policy: own/default, paused, dry-run, problems, last action), the live stages as the convergence pass "
        "listed them for a fleet of more than 300 stages (its age shown) or from IVS now. With STAGE_ARN: every "
        "participant and what the policy says about each (would be kicked, replicated where), compositions and "
        "their destinations, stagepilot's records (the recording settings: pending while IVS records someone, "
        "and since when), dead-letter queue depths, alarm states and the last actions. Changes nothing.",
    )
    status.add_argument("stage_arn", metavar="STAGE_ARN", nargs="?")
    status.add_argument("--actions", type=_positive, default=10, metavar="N", help="recent actions shown (10)")
    status.add_argument(
        "--problems",
        action="store_true",
        help="the fleet: only the stages with a problem (an invalid policy, a failed composition or destination, "
        "a composition given up, recording settings refused, a failure as last action); the summary line counts all",
    )
    status.add_argument(
        "--fresh",
        action="store_true",
        help="the fleet: list the live stages from IVS now (ListStages: about 4 s at 1,000 live stages) instead of "
        "taking the convergence pass's listing (one read, at most about 2 minutes old; the frame says how old)",
    )
    status.add_argument(
        "--watch",
        nargs="?",
        const=DEFAULT_WATCH_SECONDS,
        type=_seconds,
        metavar="SECONDS",
        help=f"redraw every SECONDS ({DEFAULT_WATCH_SECONDS:g}) until Ctrl-C; with --output json, one document a line",
    )
    status.set_defaults(handler=cmd_status)


def _positive(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 1000:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 1000, got {text!r}")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 1 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"must be a number of seconds from 1 to 3600, got {text!r}")
    return value


def cmd_status(args: argparse.Namespace, out: Output) -> int:
    arn = checked_arn(args.stage_arn) if args.stage_arn else None
    res = resources(args)
    build: Callable[[], dict[str, Any]]
    render: Callable[[dict[str, Any], Output], None]
    if arn:
        for given, flag in ((args.problems, "--problems"), (args.fresh, "--fresh")):
            if given:
                raise CliError(f"{flag} is for the fleet view (status without STAGE_ARN)", status=2)
        build, render = (lambda: stage_report(res, arn, actions=args.actions)), print_stage
    else:
        from stagepilot.cli.fleet import fleet_report, print_fleet

        build, render = (lambda: fleet_report(res, problems_only=args.problems, fresh=args.fresh)), print_fleet
    if args.watch is None:
        report = build()
        out.json(report) if out.as_json else render(report, out)
        return 0
    return watch(out, build, render, every=args.watch)


def watch(
    out: Output,
    build: Callable[[], dict[str, Any]],
    render: Callable[[dict[str, Any], Output], None],
    *,
    every: float,
    sleep: Callable[[float], None] | None = None,
    clock: Callable[[], float] | None = None,
) -> int:
    """Redraw until Ctrl-C, a frame every ``every`` seconds from the start of the one before (however long
    its reads took: a frame that took longer than the period is followed at once). The screen is cleared on
    a terminal; elsewhere frames follow each other. Each frame says when it was read. A refresh that fails
    (the network, a throttle, a credential that expired) is one line in the frame and the command goes on;
    a first read that fails is the command's error, as without ``--watch``."""
    from stagepilot.cli.errors import describe_failure

    terminal = screen_controls(out.stdout)  # not on TERM=dumb or with NO_COLOR
    tick = clock or time.monotonic
    frames = 0
    last_good: str | None = None
    try:
        due = tick()
        while True:
            try:
                report: dict[str, Any] | None = build()
                failure = None
            except Exception as exc:  # one failed refresh; the next frame tries again
                if not frames:
                    raise  # the first read: nothing to show yet, and bad input stays bad (one error line)
                report, failure = None, describe_failure(exc)[0]
            if out.as_json:
                out.json_line(report if report is not None else {"time": _now(), "error": failure})
            else:
                if terminal:
                    out.stdout.write(CLEAR_SCREEN)
                elif frames:
                    out.line("")
                if report is not None:
                    last_good = report["time"]
                    out.line(f"# read {report['time']}  every {every:g} s, Ctrl-C to stop")
                    render(report, out)
                else:
                    since = f" (last read {last_good})" if last_good else ""
                    out.line(f"# refresh failed at {_now()}{since}: {failure}; trying again in {every:g} s")
            frames += 1
            due = max(due + every, tick())
            (sleep or time.sleep)(max(0.0, due - tick()))
    except KeyboardInterrupt:
        return 0


# the fleet (cli/fleet.py) and what both views show ------------------------------------------------
def policy_summary(found: PolicyLookup) -> dict[str, Any]:
    """The effective policy: whose it is, paused (by the pause switch or the policy), dry run, valid."""
    from stagepilot.policy import validate_policy

    chosen = found.own or found.default
    document: dict[str, Any] = chosen.document if chosen else {}
    moderation = document["moderation"] if isinstance(document.get("moderation"), dict) else {}
    by_policy = document.get("paused") is True
    return {
        "source": "stage" if found.own else "default" if found.default else "none",
        "version": chosen.version if chosen else None,
        "paused": found.paused_by is not None or by_policy,
        "pausedBy": "pause" if found.paused_by is not None else "policy" if by_policy else None,
        "dryRun": bool(moderation.get("dryRun", False)),
        "valid": not validate_policy(document) if chosen else None,
        "sections": [k for k in POLICY_SECTIONS if document.get(k)],
    }


def recording_settings_text(settings: dict[str, Any]) -> str:
    """One line about the stage's recording settings record (adapters/settings_records.py)."""
    fields = ", ".join(settings.get("fields") or [])
    if settings["state"] == "pending":
        return f"recording settings: PENDING since {settings.get('since')} ({fields}): {settings.get('reason')}"
    if settings["state"] == "refused":
        return f"recording settings: REFUSED since {settings.get('since')} ({fields}): {settings.get('reason')}"
    return f"recording settings: as the policy says (checked {settings.get('checkedAt')})"


def policy_text(policy: dict[str, Any]) -> str:
    if policy["source"] == "none":
        return "none, PAUSED" if policy["paused"] else "none"
    text = f"{'own' if policy['source'] == 'stage' else 'default'} v{policy['version']}"
    flags = [
        flag
        for flag, on in (("PAUSED", policy["paused"]), ("DRY-RUN", policy["dryRun"]), ("INVALID", not policy["valid"]))
        if on
    ]
    return text + (f" {' '.join(flags)}" if flags else "")


# one stage -----------------------------------------------------------------------------------------
def stage_report(res: Resources, arn: str, *, actions: int) -> dict[str, Any]:
    from stagepilot.adapters.counters import DisconnectClaims
    from stagepilot.adapters.replication_state import ReplicationRecords
    from stagepilot.adapters.state import CompositionRecords
    from stagepilot.adapters.table import AuditLog, BanStore, PolicyStore, iso, strongest
    from stagepilot.decisions.composition import managed_attempt
    from stagepilot.policy import parse_policy, validate_policy

    stage = res.ivs.stage(arn)
    if stage is None:
        raise CliError(f"stage {arn} not found")
    session_id = stage.active_session_id
    report: dict[str, Any] = {"time": _now(), "stageArn": arn, "name": stage.name, "activeSessionId": session_id}

    from stagepilot.adapters.settings_records import SettingsRecords

    found = PolicyStore(res.table).lookup(arn)
    report["policy"] = policy_summary(found)
    kept = SettingsRecords(res.table).get(arn)
    report["recordingSettings"] = kept.to_json() if kept is not None else None
    chosen = found.own or found.default
    policy = parse_policy(chosen.document) if chosen and not validate_policy(chosen.document) else None

    participants: list[dict[str, Any]] = []
    if session_id:
        session = res.ivs.stage_session(arn, session_id)
        report["sessionStartTime"] = iso(session.start_time) if session and session.start_time else None
        applying: dict[str, list[Any]] = {}  # the bans that hold on this stage: global, and its own
        for b in BanStore(res.table).list():
            if b.stage_arn in (None, arn):
                applying.setdefault(b.user_id, []).append(b)
        bans = {user: strongest(found) for user, found in applying.items()}
        kicked = DisconnectClaims(res.table).disconnected(arn, session_id)
        for p in res.ivs.participants(arn, session_id):
            replicas = []
            # IVS's ``published`` means "ever published in the session": its events say whether it still does
            # (ListParticipantEvents, as the pass asks: convergence.LiveStage.publishing_now).
            now, since = (
                res.ivs.publish_state(arn, session_id, p.participant_id)
                if p.published and p.state == "CONNECTED"
                else (False, None)
            )
            if now and not p.is_replica:
                replicas = [
                    {"destinationStageArn": r.destination_stage_arn, "state": r.state}
                    for r in res.ivs.replicas(arn, p.participant_id)
                ]
            participants.append(
                {
                    "participantId": p.participant_id,
                    "userId": p.user_id,
                    "state": p.state,
                    "published": p.published,
                    "publishingNow": now,
                    "publishingSince": iso(since) if since is not None else None,
                    "kicked": p.state != "CONNECTED" and p.participant_id in kicked,
                    "replica": p.is_replica,
                    "sourceStageArn": p.source_stage_arn,
                    "replicas": replicas,
                    "recording": _recording(res, arn, session_id, p),
                    "policySays": _policy_says(
                        res, arn, session_id, p, policy, bans, replicas, paused=report["policy"]["paused"]
                    ),
                }
            )
    report["participants"] = participants
    report["publishers"] = [p for p in participants if p["publishingNow"]]  # on air now

    compositions = []
    for c in res.ivs.compositions(arn):
        managed = managed_attempt(dict(c.tags))
        compositions.append(
            {
                "arn": c.arn,
                "state": c.state,
                "destinationStates": list(c.destination_states),
                "managedByStagepilot": managed is not None,
                "sessionId": managed[0] if managed else None,
                "attempt": managed[1] if managed else None,
            }
        )
    report["compositions"] = compositions

    record = CompositionRecords(res.table).get(arn, session_id) if session_id else None
    report["compositionRecord"] = (
        {
            "state": record.state.value,
            "attempt": record.attempt,
            "restarts": record.restarts,
            "compositionArn": record.composition_arn,
        }
        if record
        else None
    )
    report["replicationRecords"] = [
        {
            "participantId": r.participant_id,
            "destinationStageArn": r.destination_stage_arn,
            "state": r.state,
            "live": r.live,
            "rejection": r.rejection,
        }
        for r in (ReplicationRecords(res.table).list(arn, session_id=session_id) if session_id else [])
    ]
    report["deadLetterQueues"] = dead_letter_depths(res)
    report["alarms"] = alarm_states(res) if report["deadLetterQueues"] is not None else None
    report["recentActions"] = AuditLog(res.table).list(arn, limit=actions)
    return report


def _policy_says(
    res: Resources,
    arn: str,
    session_id: str,
    p: Participant,
    policy: StagePolicy | None,
    bans: dict[str, Any],
    replicas: list[dict[str, Any]],
    *,
    paused: bool,
) -> list[str]:
    """What the effective policy (and the ban list) means for this participant, in words."""
    from stagepilot.adapters.ivs import IvsRejected
    from stagepilot.decisions.moderation import needs_attributes as moderation_needs_attributes
    from stagepilot.decisions.moderation import should_disconnect_publisher
    from stagepilot.decisions.publishers import candidate_rules, match_publisher, rules_need_attributes

    if p.state != "CONNECTED":
        return []
    if paused:
        return ["stage paused: no automation acts"]
    ban = bans.get(p.user_id) if p.user_id else None
    moderation = policy.moderation if policy else None
    rules = candidate_rules(policy.replication, stage_arn=arn) if policy and p.published and not p.is_replica else ()
    attributes = None
    wants = moderation_needs_attributes(p.user_id, banned=ban is not None, moderation=moderation)
    if wants or rules_need_attributes(rules, user_id=p.user_id):
        try:
            attributes = res.ivs.participant(arn, session_id, p.participant_id).attributes
        except IvsRejected as exc:
            if not exc.not_found:
                raise
    says = []
    verdict = should_disconnect_publisher(
        p.user_id,
        banned=ban is not None,
        ban_reason=ban.reason if ban is not None else "",
        moderation=moderation,
        attributes=attributes,
        stage_ban=ban is not None and ban.stage_arn is not None,
        publish_only=ban is not None and ban.scope == "publish",
    )
    if verdict is not None and not p.published and ban is not None and ban.scope == "join":
        says.append(f"to be kicked ({verdict.rule.value}, join ban): connected while banned")
    elif verdict is not None:
        if moderation is not None and moderation.dry_run and verdict.rule.value not in ("global-ban", "stage-ban"):
            says.append(f"dry run: would be kicked ({verdict.rule.value})")
        elif p.published:
            says.append(f"to be kicked ({verdict.rule.value}): still connected")
        else:
            says.append(f"kicked if it publishes ({verdict.rule.value})")
    live = {r["destinationStageArn"]: r["state"] for r in replicas}
    for rule in match_publisher(rules, stage_arn=arn, user_id=p.user_id, attributes=attributes).matching:
        state = live.get(rule.destination_stage_arn)
        says.append(f"replicated to {rule.destination_stage_arn}: {state or 'NOT REPLICATING'}")
    return says


def _recording(res: Resources, arn: str, session_id: str, p: Any) -> dict[str, Any]:
    """The participant's recording: IVS's state (ListParticipants) and, from the recording events the
    composition function keeps, the S3 location and the last event (a failure says so)."""
    from stagepilot.adapters.state import RecordingRecords

    kept = RecordingRecords(res.table).get(arn, session_id, p.participant_id) or {}
    return {
        "state": p.recording_state,
        "lastEvent": kept.get("eventName"),
        "bucket": kept.get("bucket") or None,
        "keyPrefix": kept.get("keyPrefix") or None,
    }


def dead_letter_depths(res: Resources) -> dict[str, int] | None:
    """Messages waiting per automation's dead-letter queue; None when the stack's outputs cannot be read."""
    from botocore.exceptions import ClientError

    try:
        queues = res.queues()
        sqs = client("sqs")
        return {
            automation: int(
                sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["ApproximateNumberOfMessages"])[
                    "Attributes"
                ]["ApproximateNumberOfMessages"]
            )
            for automation, (_, dlq_url) in queues.items()
        }
    except (CliError, ClientError):
        return None


def alarm_states(res: Resources) -> list[dict[str, str]] | None:
    """The stack's own CloudWatch alarms and their states: exactly those that notify the stack's alarm topic
    (its output AlarmTopicArn). A name prefix is not enough: ``StagePilot-`` also starts every alarm of a
    ``StagePilot-staging`` stack in the same account and region."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        topic = res.output(OUTPUT_ALARM_TOPIC_ARN)
        pages = (
            client("cloudwatch")
            .get_paginator("describe_alarms")
            .paginate(AlarmNamePrefix=f"{res.stack}-", ActionPrefix=topic, AlarmTypes=["MetricAlarm"])
        )
        return [
            {"name": a["AlarmName"], "state": a["StateValue"]}
            for page in pages
            for a in page.get("MetricAlarms", [])
            if topic in a.get("AlarmActions", [])
        ]
    except (CliError, ClientError, BotoCoreError):
        return None


def print_stage(report: dict[str, Any], out: Output) -> None:
    from stagepilot.cli.audit import audit_line

    policy = report["policy"]
    out.line(f"stage    {report['stageArn']}" + (f"  ({report['name']})" if report["name"] else ""))
    policy_line = f"policy   {policy_text(policy)}"
    if policy["source"] != "none":
        policy_line += f", sections: {', '.join(policy['sections']) or '-'}"
    out.line(policy_line)
    if report.get("recordingSettings"):
        out.line(recording_settings_text(report["recordingSettings"]))
    session_id = report["activeSessionId"]
    if not session_id:
        out.line("session  none active (nobody connected)")
    else:
        started = report.get("sessionStartTime")
        out.line(f"session  {session_id}" + (f" (started {started})" if started else ""))
    connected = [p for p in report["participants"] if p["state"] == "CONNECTED"]
    earlier = [p for p in connected if p["published"] and not p["publishingNow"]]
    kicked = [p for p in report["participants"] if p["kicked"]]
    out.line(
        f"participants ({len(connected)} connected, {len(report['publishers'])} publishing now"
        + (f", {len(earlier)} published earlier" if earlier else "")
        + (f", {len(kicked)} kicked" if kicked else "")
        + ")"
    )
    for p in report["participants"]:
        who = p["participantId"] + (f" user={p['userId']}" if p["userId"] else "")
        role = participant_role(p)
        if p["replica"]:
            stopped = p["published"] and not p["publishingNow"]
            role = f"replica from {p['sourceStageArn']}" + (", stopped" if stopped else "")
        state = "KICKED" if p["kicked"] else p["state"]
        out.line(f"  {who}  {state}  {role}")
        recording = p.get("recording") or {}
        if recording.get("state") not in (None, "DISABLED"):
            where = f"  s3://{recording['bucket']}/{recording['keyPrefix']}" if recording.get("keyPrefix") else ""
            out.line(f"    recording: {recording['state']}{where}")
        for said in p["policySays"]:
            out.line(f"    policy: {said}")
    out.line(f"compositions ({len(report['compositions'])})")
    for c in report["compositions"]:
        owner = f"stagepilot, session {c['sessionId']} attempt {c['attempt']}" if c["managedByStagepilot"] else "other"
        destinations = f"  destinations {', '.join(c['destinationStates'])}" if c["destinationStates"] else ""
        out.line(f"  {c['arn']}  {c['state']}  ({owner}){destinations}")
    record = report["compositionRecord"]
    if record:
        out.line(
            f"stagepilot composition record: {record['state']}, attempt {record['attempt']}, "
            f"restarts {record['restarts']}" + (f", {record['compositionArn']}" if record["compositionArn"] else "")
        )
    elif session_id:
        out.line("stagepilot composition record: none for this session")
    live = [r for r in report["replicationRecords"] if r["live"]]
    if report["replicationRecords"]:
        out.line(f"replications recorded ({len(live)} live)")
        for r in report["replicationRecords"]:
            extra = f" ({r['rejection']})" if r["rejection"] else ""
            out.line(f"  {r['participantId']} -> {r['destinationStageArn']}  {r['state']}{extra}")
    depths = report["deadLetterQueues"]
    if depths is None:
        out.line("dead-letter queues: unknown (no stack outputs; use --stack)")
    else:
        out.line("dead-letter queues: " + ", ".join(f"{name} {count}" for name, count in depths.items()))
    alarms = report["alarms"]
    if alarms is not None:
        firing = [a["name"] for a in alarms if a["state"] == "ALARM"]
        out.line(f"alarms: {len(alarms)}, in ALARM: {', '.join(firing) if firing else 'none'}")
    out.line(f"recent actions ({len(report['recentActions'])})")
    for entry in report["recentActions"]:
        out.line("  " + audit_line(entry, with_stage=False))


def participant_role(p: dict[str, Any]) -> str:
    """What a participant does, from IVS's answers: publishing now (its last publish has no stop), published
    earlier in the session only, or never (a viewer); a participant stagepilot disconnected is kicked."""
    if p["kicked"]:
        return "disconnected by stagepilot" + (" (had published)" if p["published"] else "")
    if p["publishingNow"]:
        return "publisher" + (f" since {p['publishingSince']}" if p.get("publishingSince") else "")
    if p["published"]:
        return "published earlier, not publishing now" if p["state"] == "CONNECTED" else "had published"
    return "viewer"


def _now() -> str:
    from stagepilot.adapters.table import iso

    return iso(datetime.now(UTC))
