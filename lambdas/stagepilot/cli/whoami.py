"""``stagepilot whoami``: the caller, account, region, stack, table and endpoints the CLI will act on.

Before a command that changes a live show, the operator checks where it would land: which identity
(STS GetCallerIdentity), which region and profile, which stack and the table its outputs name, and the
endpoint each service is reached at (``--endpoint-url`` and ``AWS_ENDPOINT_URL_<SERVICE>`` included).
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any, Final

from stagepilot.cli.resources import client, resources

if TYPE_CHECKING:
    from stagepilot.cli.output import Output

# the services the CLI calls, in the order an operator thinks of them
SERVICES: Final = ("ivs-realtime", "dynamodb", "cloudformation", "sqs", "events", "cloudwatch", "sts")


def register(commands: Any, common: argparse.ArgumentParser, aws: argparse.ArgumentParser) -> None:
    command = commands.add_parser(
        "whoami",
        parents=[common, aws],
        help="the caller, region, stack and endpoints the CLI acts on",
        description="Print who the CLI acts as (STS GetCallerIdentity), in which account and region, with which "
        "profile; the stack and the table its outputs name (or --table); and the endpoint each service is "
        "reached at. Exit 1 when the caller or the stack cannot be found (what was found is printed first).",
    )
    command.set_defaults(handler=cmd_whoami)


def cmd_whoami(args: argparse.Namespace, out: Output) -> int:
    from stagepilot.cli.errors import describe_failure
    from stagepilot.cli.home import account_of, home_region
    from stagepilot.cli.resources import aws_session

    session = aws_session()
    found: dict[str, Any] = {
        "region": home_region(),
        "profile": args.profile or os.environ.get("AWS_PROFILE") or "default",
        "credentials": _credentials_source(session),
        "endpoints": {service: client(service).meta.endpoint_url for service in SERVICES},
    }
    problems: list[str] = []
    try:
        caller = str(client("sts").get_caller_identity()["Arn"])
        found.update(caller=caller, account=account_of(caller))
    except Exception as exc:
        problems.append(f"caller: {describe_failure(exc)[0]}")
    found["stack"] = None if args.table else args.stack
    try:
        found["table"] = resources(args).table.name
    except Exception as exc:
        problems.append(f"stack {args.stack}: {describe_failure(exc)[0]}")
    if out.as_json:
        out.json({**found, **({"problems": problems} if problems else {})})
    else:
        out.line(f"caller     {found.get('caller', '?')}")
        out.line(f"account    {found.get('account', '?')}")
        out.line(f"region     {found['region'] or '?'}")
        out.line(f"profile    {found['profile']}")
        out.line(f"credentials {found['credentials'] or '(none found)'}")
        out.line(f"stack      {found['stack'] or '(none: --table)'}")
        out.line(f"table      {found.get('table', '?')}")
        for service, url in found["endpoints"].items():
            out.line(f"endpoint   {service:<15} {url}")
    if problems:
        out.error("; ".join(problems))  # one line, as every failure
    return 1 if problems else 0


def _credentials_source(session: Any) -> str | None:
    """Where botocore found the credentials (env, shared-credentials-file, sso, assume-role, ...); None: none."""
    try:
        credentials = session.get_credentials()
    except Exception:  # a broken profile: the caller line says why
        return None
    return str(credentials.method) if credentials is not None else None
