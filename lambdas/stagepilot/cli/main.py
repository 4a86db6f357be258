"""``stagepilot``: manage policies and bans, operate the automation, and run it locally.

Conventions (CONTRACT §3): every command has ``--help`` and ``--json``; exit status 0 on success, 1 on
failure, 2 on bad usage or invalid input; errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from stagepilot.cli.errors import CliError, describe_aws_error
from stagepilot.cli.output import Output
from stagepilot.cli.resources import DEFAULT_STACK

Handler = Callable[[argparse.Namespace, Output], int]


def build_parser() -> argparse.ArgumentParser:
    from stagepilot.cli import bans, dlq, flags, operations, policies, reconcile, simulate

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="machine-readable output")
    aws = argparse.ArgumentParser(add_help=False)
    aws.add_argument("--stack", default=DEFAULT_STACK, help=f"the deployed stack to act on (default {DEFAULT_STACK})")
    aws.add_argument("--table", help="the DynamoDB table, instead of finding it from the stack's outputs")

    parser = argparse.ArgumentParser(
        prog="stagepilot",
        description="Automation for Amazon IVS real-time stages: compositions, replication and moderation "
        "driven by per-stage policies. AWS commands honour the usual AWS environment "
        "(AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL_*).",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    policies.register(commands, common, aws)
    bans.register(commands, common, aws)
    operations.register(commands, common, aws)
    dlq.register(commands, common, aws)
    reconcile.register(commands, common, aws)
    flags.register(commands, common, aws)
    simulate.register(commands, common)
    return parser


def main(argv: Sequence[str] | None = None, *, stdout: Any = None, stderr: Any = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    out = Output(getattr(args, "json", False), stdout, stderr)
    handler: Handler = args.handler
    try:
        return handler(args, out)
    except CliError as exc:
        print(f"error: {exc}", file=out.stderr)
        return exc.status
    except KeyboardInterrupt:
        print("error: interrupted", file=out.stderr)
        return 1
    except Exception as exc:
        message = describe_aws_error(exc)
        if message is None:
            raise
        print(f"error: {message}", file=out.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
