"""``stagepilot sandbox`` / ``stagepilot sandbox play FILE``: StagePilot on loopback, no AWS account."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stagepilot.cli.errors import BadInput, CliError
from stagepilot.cli.files import read_text_file
from stagepilot.cli.simulate import read_bans

if TYPE_CHECKING:
    from stagepilot.cli.output import Output

URL_VARIABLE = "STAGEPILOT_SANDBOX_URL"
ENV_FILE = "sandbox.env"
DEFAULT_PORT = 4510  # local/sandbox.py DEFAULT_PORT (this module does not import moto)


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    sandbox = commands.add_parser(
        "sandbox",
        parents=[common],
        help="run StagePilot on loopback (moto + the IVS stand-in) to try the operator commands",
        description="Start moto server (DynamoDB, SQS, CloudFormation, CloudWatch, KMS, STS), the IVS stand-in, "
        "the three automations, the convergence pass and the door on 127.0.0.1, with a StagePilot stack whose "
        "outputs the CLI reads; write the environment for another shell to sandbox.env (`source sandbox.env` "
        "points the CLI and the AWS CLI at the sandbox and puts stagepilot on PATH), and run until Ctrl-C. "
        "Needs the development dependencies (moto).",
    )
    sandbox.add_argument(
        "--env-file",
        type=Path,
        default=Path(ENV_FILE),
        metavar="FILE",
        help=f"write the export lines to FILE, for `source FILE` in another shell ({ENV_FILE})",
    )
    sandbox.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_PORT,
        metavar="N",
        help=f"moto on N, the IVS stand-in on N+1, the sandbox's control on N+2, the door on N+3, Lambda's Invoke "
        f"on N+4 ({DEFAULT_PORT}; 0: any free ports)",
    )
    sandbox.add_argument(
        "--policies", type=Path, metavar="FILE", help="store these policies first (one, or a JSON array, as simulate)"
    )
    sandbox.add_argument("--bans", type=Path, metavar="FILE", help='ban these first: [{"userId": ..., "reason": ...}]')
    sandbox.add_argument(
        "--composition-hours-per-day",
        type=_composition_hours,
        metavar="JSON",
        help="the stack context compositionHoursPerDay, as `cdk deploy -c compositionHoursPerDay=JSON` takes it "
        "(docs/policy.md): the fleet's composition hours per UTC day, with CompositionBudgetAlarm; e.g. "
        '\'{"limit": 40, "mode": "block"}\' (mode alert or block; default: no budget)',
    )
    sandbox.set_defaults(handler=cmd_run)
    sub = sandbox.add_subparsers(dest="sandbox_command", metavar="COMMAND")
    play = sub.add_parser(
        "play",
        parents=[common],
        help="play a scenario into the running sandbox",
        description="Send a scenario (simulate's JSON Lines: EventBridge events and every simulate directive: "
        "participants, faults, outages, lost and late events, composition and destination failures, issue, "
        f"join, ban ...; docs/simulate.md) to the sandbox named by ${URL_VARIABLE}. Times are shifted so the "
        "last line is now; lines happen in order, each once the automations have handled the previous ones "
        "(at most --settle seconds in all). Prints the door's decisions and the joins.",
    )
    play.add_argument("file", type=Path, metavar="FILE")
    play.add_argument(
        "--settle", type=float, default=30.0, metavar="SECONDS", help="wait at most this long for the automations (30)"
    )
    play.set_defaults(handler=cmd_play)


def cmd_run(args: argparse.Namespace, out: Output) -> int:
    with _stopped_by_ctrl_c():
        return _run(args, out)


@contextlib.contextmanager
def _stopped_by_ctrl_c() -> Iterator[None]:
    """Ctrl-C (SIGINT) stops the sandbox however it was started. A non-interactive shell starts its
    background jobs (``stagepilot sandbox &`` in a script, a test suite run in the background) with SIGINT
    ignored, and Python then leaves it ignored: nothing but SIGKILL would stop the sandbox."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach only the main thread
        return
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


def _run(args: argparse.Namespace, out: Output) -> int:
    try:
        from stagepilot.local.sandbox import Sandbox
    except ImportError as exc:
        raise CliError(
            f"the sandbox needs the development dependencies ({exc.name}): pip install -r requirements.txt"
        ) from exc

    policies = _policies(args.policies) if args.policies else []
    bans = read_bans(args.bans) if args.bans else []
    try:
        sandbox = Sandbox(port=args.port, **sandbox_options(args))
    except OSError as exc:
        raise CliError(
            f"cannot listen on ports {args.port}-{args.port + 4} ({exc.strerror}): is a sandbox already running? "
            "(--port N for others)"
        ) from exc
    with sandbox:
        sandbox.store(policies, bans)
        environment = sandbox.environment
        lines = [f"export {name}={shlex.quote(value)}" for name, value in environment.items()]
        lines.append(_path_line())
        try:
            args.env_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
        except OSError as exc:
            raise CliError(f"cannot write {args.env_file}: {exc.strerror}") from exc
        if out.as_json:
            out.json(environment)
        else:
            out.notice(
                f"# stagepilot sandbox: AWS at {sandbox.moto_url}, IVS at {sandbox.ivs_url}, door at "
                f"{sandbox.door_url}; Ctrl-C to stop"
            )
            out.notice(f"# in another shell: source {shlex.quote(str(args.env_file))}")
            for line in lines:
                out.line(line)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            out.notice("# sandbox stopped")
    return 0


def sandbox_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``Sandbox`` keyword arguments the command's options ask for (the stack's settings)."""
    return {"composition_hours": args.composition_hours_per_day}


def _composition_hours(text: str) -> Any:
    from stagepilot.decisions.composition_hours import parse_composition_hours

    try:
        budget = parse_composition_hours(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if budget is None:
        raise argparse.ArgumentTypeError('compositionHoursPerDay: empty (e.g. \'{"limit": 40, "mode": "block"}\')')
    return budget


def _path_line() -> str:
    """``stagepilot`` on PATH: the directory of this Python's console scripts (the venv's bin)."""
    scripts = Path(sys.executable).parent
    return f'export PATH={shlex.quote(str(scripts))}:"$PATH"'


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if port != 0 and not 1024 <= port <= 65531:
        raise argparse.ArgumentTypeError(f"{port}: must be 0 or 1024-65531 (the sandbox takes it and the next 4)")
    return port


def _policies(path: Path) -> list[Any]:
    from stagepilot.cli.policies import load_policy_file, problems_in
    from stagepilot.policy import parse_policy

    documents = load_policy_file(path)
    problems = problems_in(documents)
    if problems:
        raise BadInput(f"{path}: invalid policies ({problems[0]}); nothing started")
    return [parse_policy(d) for d in documents]


def cmd_play(args: argparse.Namespace, out: Output) -> int:
    from urllib import error, request

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
        return 0
    from stagepilot.cli.simulate import Timeline
    from stagepilot.local.ivs_keys import JoinResult

    timeline = Timeline(out)
    for kind, payload in played["notices"]:
        timeline.notify(kind, (payload[0], JoinResult(**payload[1])) if kind == "join" else payload)
    out.line(
        f"played {played['events']} events ({played['routed']} deliveries to automations), "
        f"{played['directives']} directives"
        + ("" if played["settled"] else f"; still handling after {args.settle:g} s")
    )
    return 0
