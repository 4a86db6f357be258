"""``stagepilot sandbox`` / ``stagepilot sandbox play FILE``: StagePilot on loopback, no AWS account."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib import error, request

from stagepilot.cli.errors import BadInput, CliError
from stagepilot.cli.files import read_text_file
from stagepilot.cli.simulate import read_bans

if TYPE_CHECKING:
    from stagepilot.cli.output import Output

URL_VARIABLE = "STAGEPILOT_SANDBOX_URL"


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    sandbox = commands.add_parser(
        "sandbox",
        parents=[common],
        help="run StagePilot on loopback (moto + the IVS stand-in) to try the operator commands",
        description="Start moto server (DynamoDB, SQS, CloudFormation, CloudWatch, STS), the IVS stand-in and "
        "the three automations on 127.0.0.1, with a StagePilot stack whose outputs the CLI reads; print the "
        "environment to export in another shell, and run until Ctrl-C. Needs the development dependencies "
        "(moto).",
    )
    sandbox.add_argument("--env-file", type=Path, metavar="FILE", help="also write the export lines to FILE")
    sandbox.add_argument(
        "--policies", type=Path, metavar="FILE", help="store these policies first (one, or a JSON array, as simulate)"
    )
    sandbox.add_argument("--bans", type=Path, metavar="FILE", help='ban these first: [{"userId": ..., "reason": ...}]')
    sandbox.set_defaults(handler=cmd_run)
    sub = sandbox.add_subparsers(dest="sandbox_command", metavar="COMMAND")
    play = sub.add_parser(
        "play",
        parents=[common],
        help="play a scenario into the running sandbox",
        description="Send a scenario (simulate's JSON Lines: EventBridge events and participant directives) to "
        f"the sandbox named by ${URL_VARIABLE}. Event times are shifted so the first one is now. Waits until "
        "the automations have handled everything (or --settle seconds).",
    )
    play.add_argument("file", type=Path, metavar="FILE")
    play.add_argument(
        "--settle", type=float, default=30.0, metavar="SECONDS", help="wait at most this long for the automations (30)"
    )
    play.set_defaults(handler=cmd_play)


def cmd_run(args: argparse.Namespace, out: Output, *, ready: threading.Event | None = None) -> int:
    try:
        from stagepilot.local.sandbox import Sandbox
    except ImportError as exc:
        raise CliError(
            f"the sandbox needs the development dependencies ({exc.name}): pip install -r requirements.txt"
        ) from exc

    policies = _policies(args.policies) if args.policies else []
    bans = read_bans(args.bans) if args.bans else []
    with Sandbox() as sandbox:
        sandbox.store(policies, bans)
        environment = sandbox.environment
        lines = [f"export {name}={shlex.quote(value)}" for name, value in environment.items()]
        if args.env_file:
            args.env_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
        if out.as_json:
            out.json(environment)
        else:
            out.notice(f"# stagepilot sandbox: AWS at {sandbox.moto_url}, IVS at {sandbox.ivs_url}; Ctrl-C to stop")
            for line in lines:
                out.line(line)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            out.notice("# sandbox stopped")
    return 0


def _policies(path: Path) -> list[Any]:
    from stagepilot.cli.policies import load_policy_file, problems_in
    from stagepilot.policy import parse_policy

    documents = load_policy_file(path)
    problems = problems_in(documents)
    if problems:
        raise BadInput(f"{path}: invalid policies ({problems[0]}); nothing started")
    return [parse_policy(d) for d in documents]


def cmd_play(args: argparse.Namespace, out: Output) -> int:
    url = os.environ.get(URL_VARIABLE)
    if not url:
        raise CliError(
            f"no sandbox: run `stagepilot sandbox` in another shell and export what it prints (${URL_VARIABLE})"
        )
    text = read_text_file(args.file)
    call = request.Request(f"{url.rstrip('/')}/play?settle={args.settle}", data=text.encode(), method="POST")
    try:
        with request.urlopen(call, timeout=args.settle + 30) as response:
            played = json.loads(response.read())
    except error.HTTPError as exc:
        raise CliError(f"the sandbox could not play {args.file}: {json.loads(exc.read()).get('error', exc)}") from exc
    except (error.URLError, OSError) as exc:
        raise CliError(f"cannot reach the sandbox at {url} (is `stagepilot sandbox` running?)") from exc
    for skipped in played["skipped"]:
        out.notice(f"{args.file}: {skipped} (skipped)")
    if out.as_json:
        out.json(played)
    else:
        out.line(
            f"played {played['events']} events ({played['routed']} deliveries to automations), "
            f"{played['participants']} participants declared"
            + ("" if played["settled"] else f"; still handling after {args.settle:g} s")
        )
    return 0
