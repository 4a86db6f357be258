"""``stagepilot disconnect``: kick a participant now, audited."""

from __future__ import annotations

import argparse
import hashlib
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from stagepilot.cli.errors import BadInput, CliError
from stagepilot.cli.policies import checked_arn
from stagepilot.cli.resources import Resources, resources

if TYPE_CHECKING:
    from stagepilot.cli.output import Output
    from stagepilot.pipeline import Outcome


MANUAL_REASON = "Removed by an operator"
PARTICIPANT_ID = re.compile(r"[a-zA-Z0-9_-]{1,64}")  # IVS's participantId pattern


def register(commands: Any, common: argparse.ArgumentParser, aws: argparse.ArgumentParser) -> None:
    disconnect = commands.add_parser(
        "disconnect",
        parents=[common, aws],
        help="kick a participant now (audited)",
        description="Disconnect a participant from the stage's active session (DisconnectParticipant), stop "
        "the replicas stagepilot made of it, and record it in the audit trail (rule 'manual'). The user can "
        "still get a new token: ban them (stagepilot ban add) and check the ban list where tokens are issued. "
        "If IVS cannot do it now (throttled, unavailable), it says so and exits 1; run it again to finish.",
    )
    disconnect.add_argument("stage_arn", metavar="STAGE_ARN")
    disconnect.add_argument("participant_id", metavar="PARTICIPANT_ID")
    disconnect.add_argument(
        "--reason", default=MANUAL_REASON, help=f"sent to DisconnectParticipant, ≤128 characters ({MANUAL_REASON!r})"
    )
    disconnect.set_defaults(handler=cmd_disconnect)


def cmd_disconnect(args: argparse.Namespace, out: Output) -> int:
    from stagepilot.decisions.moderation import MAX_REASON_LENGTH
    from stagepilot.errors import RetryLater

    arn = checked_arn(args.stage_arn)
    if not PARTICIPANT_ID.fullmatch(args.participant_id):
        raise BadInput(f"not a participant id: {args.participant_id!r} (IVS ids are 1-64 letters, digits, '-' or '_')")
    if not args.reason or len(args.reason) > MAX_REASON_LENGTH:
        raise BadInput(f"--reason must be 1-{MAX_REASON_LENGTH} characters (DisconnectParticipant's limit)")
    res = resources(args)
    try:
        session_id, user_id, outcome = _kick(res, arn, args.participant_id, args.reason)
    except RetryLater as exc:
        raise CliError(f"{args.participant_id} is not disconnected yet ({exc}); run the command again") from exc
    result = outcome.details.get("result", outcome.action)
    if out.as_json:
        out.json(
            {
                "stageArn": arn,
                "sessionId": session_id,
                "participantId": args.participant_id,
                "userId": user_id,
                "action": outcome.action,
                "result": result,
                "reason": outcome.reason,
                "replicasStopped": list(outcome.details.get("replicas_stopped", [])),
            }
        )
    elif outcome.action == "disconnect" and result == "disconnected":
        out.line(f"disconnected {args.participant_id} from {arn} (session {session_id}); recorded in the audit trail")
        for destination in outcome.details.get("replicas_stopped", []):
            out.line(f"  stopped its replica in {destination}")
    elif outcome.action == "disconnect":
        out.line(f"{args.participant_id} was not connected in session {session_id} (nothing to do); recorded")
    else:
        out.line(f"{args.participant_id}: {outcome.reason}")
    return 1 if outcome.action == "rejected" else 0


def manual_owner(operator: str, stage_arn: str, participant_id: str) -> str:
    """The claim owner of a manual kick: the same for the same operator, stage and participant, so a re-run
    after a failure resumes that kick instead of finding "another event" holding the claim."""
    digest = hashlib.sha256(f"{operator}\n{stage_arn}\n{participant_id}".encode()).hexdigest()[:24]
    return f"manual:{digest}"


def _kick(res: Resources, arn: str, participant_id: str, reason: str) -> tuple[str, str | None, Outcome]:
    from stagepilot.adapters.ivs import IvsRejected
    from stagepilot.automations.moderation import disconnect_participant
    from stagepilot.cli.changes import caller_arn
    from stagepilot.cli.services import cli_services
    from stagepilot.decisions.moderation import Rule

    services = cli_services(res)
    session_id = active_session(res, arn)
    try:
        user_id = services.ivs.participant(arn, session_id, participant_id).user_id
    except IvsRejected as exc:
        if not exc.not_found:
            raise
        raise CliError(
            f"{participant_id} is not connected to {arn}: IVS does not know it in session {session_id} "
            "(find the id with: stagepilot status STAGE_ARN); nothing done"
        ) from exc
    operator = caller_arn()
    owner = manual_owner(operator, arn, participant_id)
    try:
        outcome = disconnect_participant(
            services,
            stage_arn=arn,
            session_id=session_id,
            participant_id=participant_id,
            user_id=user_id,
            rule=Rule.MANUAL,
            reason=reason,
            dry_run=False,
            event_id=owner,
            time=datetime.now(UTC),
            why=f"manual disconnect by {operator}",
        )
    except Exception:
        # Nobody retries a CLI command on its own: let the next kick (this operator's re-run, another
        # operator, or the automation) claim at once instead of after the claim's lease runs out.
        services.disconnect_claims.release(arn, session_id, participant_id, owner=owner, dry_run=False)
        raise
    return session_id, user_id, outcome


def active_session(res: Resources, arn: str) -> str:
    stage = res.ivs.stage(arn)
    if stage is None:
        raise CliError(f"stage {arn} not found")
    if not stage.active_session_id:
        raise CliError(f"stage {arn} has no active session: nobody is connected")
    return stage.active_session_id
