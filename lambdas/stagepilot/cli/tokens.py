"""``stagepilot token issue STAGE_ARN USER_ID [--role ROLE] [--attributes JSON]``: ask the door.

The request is the one a backend makes (README, "The door"): a SigV4-signed ``POST`` to the stack's
``TokenUrl`` (service ``lambda``) as the caller, who needs ``TokenIssuerPolicyArn``. The door decides and
audits; nothing here reads bans or signs anything.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from stagepilot.cli.errors import CliError
from stagepilot.cli.policies import checked_arn
from stagepilot.cli.resources import resources
from stagepilot.outputs import OUTPUT_TOKEN_URL

if TYPE_CHECKING:
    from stagepilot.cli.output import Output


def register(commands: Any, common: argparse.ArgumentParser, aws: argparse.ArgumentParser) -> None:
    token = commands.add_parser(
        "token",
        parents=[common],
        help="participant tokens from the door",
        description="Participant tokens from the door (the stack's token function): the policy's tokens section "
        "decides the capabilities, attributes and lifetime; banned users are refused.",
    )
    sub = token.add_subparsers(dest="token_command", metavar="COMMAND", required=True)
    issue = sub.add_parser(
        "issue",
        parents=[common, aws],
        help="ask the door for a token (or its refusal and why)",
        description="Ask the stack's door for a participant token, as a backend does: a SigV4-signed POST to "
        "the TokenUrl output as you (your role needs TokenIssuerPolicyArn). Prints the token, or the refusal "
        "(banned, paused, no-tokens-policy, unknown-role) and why, and exits 1. Audited by the door.",
    )
    issue.add_argument("stage_arn", metavar="STAGE_ARN")
    issue.add_argument("user_id", metavar="USER_ID")
    issue.add_argument("--role", help="a role of the stage's tokens policy (default: its defaultRole)")
    issue.add_argument("--attributes", metavar="JSON", help='extra token attributes: {"key": "value"}')
    issue.set_defaults(handler=cmd_issue)


def cmd_issue(args: argparse.Namespace, out: Output) -> int:
    arn = checked_arn(args.stage_arn)
    if not 1 <= len(args.user_id) <= 128:
        raise CliError("USER_ID must be 1-128 characters", status=2)
    body: dict[str, Any] = {"stageArn": arn, "userId": args.user_id}
    if args.role:
        body["role"] = args.role
    if args.attributes is not None:
        from stagepilot.cli.files import parse_json

        try:
            attributes = parse_json(args.attributes)
        except ValueError as exc:
            raise CliError(f"--attributes: not JSON: {exc}", status=2) from exc
        if not isinstance(attributes, dict) or not all(isinstance(v, str) for v in attributes.values()):
            raise CliError('--attributes: must be a JSON object of strings, like {"team": "blue"}', status=2)
        body["attributes"] = attributes
    res = resources(args)
    status, answer = ask_door(res.output(OUTPUT_TOKEN_URL), body)
    if status == 200:
        if out.as_json:
            out.json(answer)
        else:
            out.line(answer["token"])
            out.line(
                f"participant {answer['participantId']}, {', '.join(answer['capabilities'])}, "
                f"joins until {answer['expirationTime']}"
            )
        return 0
    if status == 403 and "refused" in answer:
        if out.as_json:
            out.json(answer)
        raise CliError(f"refused ({answer['refused']}): {answer.get('reason', '')}")
    if status == 400:
        raise CliError(f"the door refused the request: {answer.get('error', answer)}", status=2)
    raise CliError(f"the door answered {status}: {answer.get('error') or answer.get('Message') or answer}")


def ask_door(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST ``body`` to the door as the caller (SigV4, service ``lambda``): (HTTP status, JSON answer)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.exceptions import BotoCoreError
    from botocore.httpsession import URLLib3Session

    from stagepilot.cli.resources import aws_session

    session = aws_session()  # the caller's credentials and region, as every command uses
    credentials = session.get_credentials()
    if credentials is None:
        raise CliError("no AWS credentials: the door takes SigV4-signed requests only")
    region = session.region_name or url.split(".")[2]  # https://<id>.lambda-url.<region>.on.aws/
    request = AWSRequest(method="POST", url=url, data=json.dumps(body), headers={"Content-Type": "application/json"})
    SigV4Auth(credentials.get_frozen_credentials(), "lambda", region).add_auth(request)
    try:
        response = URLLib3Session(timeout=15).send(request.prepare())
    except BotoCoreError as exc:
        raise CliError(f"cannot reach the door ({url}): {exc}") from exc
    try:
        answer = json.loads(response.content or b"{}")
    except ValueError:
        answer = {"error": response.text[:200]}
    return response.status_code, answer if isinstance(answer, dict) else {"error": str(answer)[:200]}
