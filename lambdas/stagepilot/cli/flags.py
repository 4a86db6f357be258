"""``stagepilot flag``: put a ``Participant Flagged`` event on the stack's flag bus (docs/events.md).

The flag is put as the caller: the bus takes it only from the IAM roles named in the stack's
``moderationPrincipals`` context, and moderation counts it only on stages whose policy sets
``flagLimit``.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from stagepilot.cli.errors import CliError
from stagepilot.cli.policies import checked_arn
from stagepilot.cli.resources import client, resources
from stagepilot.events import MAX_TEXT_LENGTH, PARTICIPANT_ID
from stagepilot.outputs import OUTPUT_FLAG_BUS_NAME
from stagepilot.routing import DEFAULT_MODERATION_SOURCES, PARTICIPANT_FLAGGED

if TYPE_CHECKING:
    from stagepilot.cli.output import Output


def register(commands: Any, common: argparse.ArgumentParser, aws: argparse.ArgumentParser) -> None:
    flag = commands.add_parser(
        "flag",
        parents=[common, aws],
        help="flag a participant (a Participant Flagged event on the flag bus)",
        description="Put a Participant Flagged event for a participant of the stage's active session on the "
        "stack's flag bus (stack output FlagBusName), as you. The bus takes events only from the IAM roles in "
        "the stack's moderationPrincipals context. Your IAM ARN is the flag's reporter: moderation counts distinct "
        "reporters, only on stages whose policy sets moderation.flagLimit, and disconnects at that many within its "
        "window.",
    )
    flag.add_argument("stage_arn", metavar="STAGE_ARN")
    flag.add_argument("participant_id", metavar="PARTICIPANT_ID")
    flag.add_argument("--reason", help=f"free text kept with the flag (at most {MAX_TEXT_LENGTH} characters)")
    flag.add_argument(
        "--source",
        default=DEFAULT_MODERATION_SOURCES[0],
        help=f"the event source: one of the stack's moderationSources (default {DEFAULT_MODERATION_SOURCES[0]})",
    )
    flag.set_defaults(handler=cmd_flag)


def cmd_flag(args: argparse.Namespace, out: Output) -> int:
    from stagepilot.adapters.ivs import IvsRejected
    from stagepilot.cli.changes import caller_arn, record_change
    from stagepilot.cli.disconnect import active_session

    arn = checked_arn(args.stage_arn)
    if not PARTICIPANT_ID.fullmatch(args.participant_id) or len(args.participant_id) > 64:
        raise CliError(f"not a participant id: {args.participant_id!r}", status=2)
    if args.reason is not None and not 0 < len(args.reason) <= MAX_TEXT_LENGTH:
        raise CliError(f"--reason must be 1-{MAX_TEXT_LENGTH} characters", status=2)
    res = resources(args)
    bus = res.output(OUTPUT_FLAG_BUS_NAME)
    session_id = active_session(res, arn)
    detail: dict[str, Any] = {"stage_arn": arn, "session_id": session_id, "participant_id": args.participant_id}
    try:
        user_id = res.ivs.participant(arn, session_id, args.participant_id).user_id
    except IvsRejected as exc:
        if not exc.not_found:
            raise
        raise CliError(f"participant {args.participant_id} is not in the active session of {arn}") from exc
    if user_id:
        detail["user_id"] = user_id
    if args.reason:
        detail["reason"] = args.reason
    # the caller is the reporter: flags count distinct reporters (docs/events.md), so an operator who flags
    # the same participant twice counts once, like any other reporter
    detail["reporter"] = caller_arn()
    entry = {
        "Source": args.source,
        "DetailType": PARTICIPANT_FLAGGED,
        "Detail": json.dumps(detail),
        "EventBusName": bus,
    }
    from botocore.exceptions import ClientError

    try:
        response = client("events").put_events(Entries=[entry])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "AccessDeniedException":
            raise CliError(
                f"the flag bus {bus} refused you: only the IAM roles in the stack's moderationPrincipals context "
                "may put flags (docs/architecture-infra.md, 'Who can make stagepilot act')"
            ) from exc
        raise
    [result] = response.get("Entries", [{}])
    if response.get("FailedEntryCount") or "EventId" not in result:
        raise CliError(
            f"the flag bus {bus} did not take the flag: {result.get('ErrorCode')}: {result.get('ErrorMessage')}"
        )
    record_change(
        res.table,
        stage_arn=arn,
        action="flag",
        by=detail["reporter"],
        reason=f"flagged {args.participant_id} on the flag bus {bus} (event {result['EventId']})"
        + (f": {args.reason}" if args.reason else ""),
        user_id=user_id or None,
        participant_id=args.participant_id,
        session_id=session_id,
        details={"flagEventId": result["EventId"]},
    )
    if out.as_json:
        out.json({"eventId": result["EventId"], "eventBusName": bus, "detail": detail})
    else:
        out.line(
            f"flagged {args.participant_id} on {arn} (session {session_id}, event {result['EventId']}); "
            "moderation counts it if the stage's policy sets flagLimit"
        )
    return 0
