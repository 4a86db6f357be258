"""``stagepilot``: the command tree. Each command lives in its own module and registers itself here.

Conventions (docs/cli.md): every command has ``--help``; the AWS CLI's global options (``--output``,
``--query``, ``--profile``, ``--region``, ``--endpoint-url``, ``--debug``) are accepted before or after the
command; exit status 0 on success, 1 on failure, 2 on bad usage or invalid input; every failure is one line
on stderr (``--debug`` adds the traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import re
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from stagepilot.cli.errors import EXIT_INTERRUPTED, BadInput, describe_failure
from stagepilot.cli.output import FORMATS, Output, PlainStream, can_encode
from stagepilot.cli.resources import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_STACK,
    MAX_TIMEOUT,
    STACK_VARIABLE,
    AwsOptions,
    use_aws_options,
)

Handler = Callable[[argparse.Namespace, Output], int]
PROG = "stagepilot"


class Parser(argparse.ArgumentParser):
    """Bad usage is one line on stderr and exit 2, like every other failure (not argparse's usage block)."""

    def error(self, message: str) -> NoReturn:
        raise BadInput(f"{message} (see: {self.prog} --help)")


def global_options(*, on_command: bool) -> argparse.ArgumentParser:
    """The AWS CLI's global options. On the commands their defaults are suppressed, so a value given
    before the command is not reset by the command's parser."""

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if on_command else value

    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("global options")
    group.add_argument(
        "--output",
        choices=FORMATS,
        default=default(None),
        help="json, yaml, table or text: the command's document instead of readable lines",
    )
    group.add_argument(
        "--json", dest="output", action="store_const", const="json", default=default(None), help="--output json"
    )
    group.add_argument(
        "--query", metavar="JMESPATH", default=default(None), help="pick from the document (implies --output json)"
    )
    group.add_argument("--profile", default=default(None), help="AWS profile (instead of AWS_PROFILE)")
    group.add_argument("--region", default=default(None), help="AWS region (instead of AWS_REGION)")
    group.add_argument(
        "--endpoint-url",
        metavar="URL",
        default=default(None),
        help="send AWS calls there (like AWS_ENDPOINT_URL; AWS_ENDPOINT_URL_<SERVICE> still wins)",
    )
    group.add_argument(
        "--debug", action="store_true", default=default(False), help="log AWS calls; show the traceback of a failure"
    )
    group.add_argument(
        "--cli-connect-timeout",
        type=_timeout,
        metavar="SECONDS",
        default=default(None),
        help=f"give up connecting to AWS after SECONDS (default {DEFAULT_CONNECT_TIMEOUT:g}; 0: wait for ever)",
    )
    group.add_argument(
        "--cli-read-timeout",
        type=_timeout,
        metavar="SECONDS",
        default=default(None),
        help=f"give up waiting for an AWS answer after SECONDS (default {DEFAULT_READ_TIMEOUT:g}; 0: wait for ever)",
    )
    group.add_argument(
        "--no-cli-pager",
        action="store_true",
        default=default(False),
        help="accepted for the AWS CLI's habit: stagepilot never pipes its output to a pager",
    )
    return parser


def _timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= MAX_TIMEOUT:
        raise argparse.ArgumentTypeError(f"must be a number of seconds from 0 to {MAX_TIMEOUT:g}, got {text!r}")
    return value


def stack_options() -> argparse.ArgumentParser:
    default_stack = os.environ.get(STACK_VARIABLE) or DEFAULT_STACK
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument(
        "--stack",
        type=_stack_name,
        default=default_stack,
        help=f"the deployed stack to act on (default ${STACK_VARIABLE} or {DEFAULT_STACK}; now {default_stack})",
    )
    parser.add_argument(
        "--table", type=_table_name, help="the DynamoDB table, instead of finding it from the stack's outputs"
    )
    return parser


_STACK_NAME = re.compile(
    r"[a-zA-Z][-a-zA-Z0-9]{0,127}|arn:aws[-a-z]*:cloudformation:[a-z0-9-]+:[0-9]{12}:stack/[^\s]{1,300}"
)
_TABLE_NAME = re.compile(
    r"[a-zA-Z0-9_.-]{3,255}|arn:aws[-a-z]*:dynamodb:[a-z0-9-]+:[0-9]{12}:table/[a-zA-Z0-9_.-]{3,255}"
)


def _stack_name(text: str) -> str:
    """A CloudFormation stack name (or ARN). An empty one is refused: CloudFormation would answer with every
    stack of the account, and the first would be taken for StagePilot."""
    if not _STACK_NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"not a stack name: {text!r} (a letter, then letters, digits or '-', at most 128; or the stack's ARN)"
        )
    return text


def _table_name(text: str) -> str:
    if not _TABLE_NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(f"not a DynamoDB table name: {text!r} (3-255 letters, digits, '_', '-', '.')")
    return text


def build_parser() -> argparse.ArgumentParser:
    from stagepilot.cli import (
        audit,
        bans,
        completion,
        disconnect,
        dlq,
        explain,
        flags,
        keys,
        pause,
        policies,
        reconcile,
        sandbox,
        simulate,
        status,
        tokens,
        whoami,
    )
    from stagepilot.cli.examples import add_examples

    common = global_options(on_command=True)
    aws = stack_options()
    parser = Parser(
        prog=PROG,
        parents=[global_options(on_command=False)],
        description="Automation for Amazon IVS real-time stages: compositions, replication and moderation "
        "driven by per-stage policies. AWS commands honour the usual AWS environment "
        "(AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL_*) and the AWS CLI's global options.",
    )
    parser.add_argument("--version", action=VersionAction)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=Parser)
    policies.register(commands, common, aws)
    bans.register(commands, common, aws)
    disconnect.register(commands, common, aws)
    audit.register(commands, common, aws)
    pause.register(commands, common, aws)
    explain.register(commands, common, aws)
    status.register(commands, common, aws)
    dlq.register(commands, common, aws)
    reconcile.register(commands, common, aws)
    flags.register(commands, common, aws)
    tokens.register(commands, common, aws)
    keys.register(commands, common, aws)
    simulate.register(commands, common)
    sandbox.register(commands, common)
    whoami.register(commands, common, aws)
    completion.register(commands, common)
    _complete_paths(parser)
    add_examples(parser)
    return parser


def _parser() -> argparse.ArgumentParser:
    """``build_parser()``'s, made once a process for each ``--stack`` default (the one thing it reads from the
    environment): a command needs it once, and a process that runs ``main`` many times (the CLI's tests, in
    process) reads the same grammar each time; making it costs ~12 ms of CPU."""
    return _parser_for(os.environ.get(STACK_VARIABLE) or DEFAULT_STACK)


@functools.lru_cache(maxsize=4)
def _parser_for(default_stack: str) -> argparse.ArgumentParser:
    return build_parser()


# What shtab (``make completion``) completes a FILE argument with; set as data so the CLI never imports it.
FILE_COMPLETION = {"bash": "_shtab_compgen_files", "zsh": "_files", "tcsh": "f"}


def _complete_paths(parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:
        if action.type is Path:
            action.complete = FILE_COMPLETION  # type: ignore[attr-defined]
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _complete_paths(sub)


class VersionAction(argparse.Action):
    """``--version``: argparse's, with the text made when asked for (it reads the installed package's metadata
    and botocore's version: about 60 ms every other command would pay at start-up)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="show the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *_: Any, **__: Any) -> None:
        sys.stdout.write(version_text() + "\n")  # on stdout, as argparse's own version action
        parser.exit()


def version_text() -> str:
    import platform
    from importlib import metadata

    import botocore

    try:
        mine = metadata.version("stagepilot")
    except metadata.PackageNotFoundError:
        mine = "unknown"
    return f"{PROG}/{mine} Python/{platform.python_version()} botocore/{botocore.__version__}"


def main(argv: Sequence[str] | None = None, *, stdout: Any = None, stderr: Any = None) -> int:
    """Run one command; every failure is one line on ``stderr`` and an exit status (never a traceback)."""
    stdout = _writable(stdout or sys.stdout)
    stderr = _writable(stderr or sys.stderr)
    arguments = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in arguments
    out = Output(stdout=stdout, stderr=stderr)
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):  # argparse's --help too
            args = _parser().parse_args(arguments)
            out = Output(stdout=stdout, stderr=stderr, output_format=args.output, query=_query(args.query))
            if args.debug:
                _log_debug(stderr)
            else:
                _quiet_logs()
            use_aws_options(
                AwsOptions(
                    profile=args.profile,
                    region=args.region,
                    endpoint_url=args.endpoint_url,
                    connect_timeout=args.cli_connect_timeout,
                    read_timeout=args.cli_read_timeout,
                )
            )
            handler: Handler = args.handler
            return handler(args, out)
    except BrokenPipeError:
        _silence(stdout)  # the reader went away (`| head`): nothing to say, and nothing more to write
        return 1
    except KeyboardInterrupt:
        _report(out, "interrupted", debug=False)
        return EXIT_INTERRUPTED
    except Exception as exc:
        message, status = describe_failure(exc)
        _report(out, message, debug=debug)
        return status


def _query(text: str | None) -> Any:
    if text is None:
        return None
    import jmespath
    from jmespath.exceptions import JMESPathError

    try:
        return jmespath.compile(text)
    except JMESPathError as exc:
        raise BadInput(f"--query: not a JMESPath expression: {' '.join(str(exc).split())}") from exc


def _report(out: Output, message: str, *, debug: bool) -> None:
    try:
        if debug:
            from stagepilot.cli.redaction import redact

            out.stderr.write(redact(traceback.format_exc()))
        out.error(message)
    except (BrokenPipeError, OSError):
        pass  # stderr is gone too: the exit status says it


def _writable(stream: Any) -> Any:
    """A terminal or file that cannot encode the output's symbols gets ASCII stand-ins instead of a crash."""
    return stream if can_encode(stream) else PlainStream(stream)


def _silence(stream: Any) -> None:
    """Point the broken stdout at /dev/null, so that Python's final flush at exit does not complain."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        real = sys.stdout
        if stream is real or getattr(stream, "_stream", None) is real:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, real.fileno() if real is not None else 1)


def _quiet_logs() -> None:
    """The automations' log lines are for CloudWatch; the operator is told in the command's own words. A
    handler that drops them keeps Python's last-resort handler from printing their warnings on stderr."""
    logger = logging.getLogger("stagepilot")
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())


def _log_debug(stream: Any) -> None:
    """botocore's, boto3's and stagepilot's debug logs on ``stream``, with credentials and tokens redacted
    (stagepilot.cli.redaction)."""
    from stagepilot.cli.redaction import RedactingFilter, remember_environment

    remember_environment()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    for name in ("botocore", "boto3", "stagepilot"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
