"""``stagepilot simulate --policies FILE --events FILE [--bans FILE] [--json]``."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stagepilot.cli.errors import CliError
from stagepilot.cli.files import parse_json, read_json_file, read_text_file
from stagepilot.cli.policies import load_policy_file, problems_in
from stagepilot.events import STAGE_ARN
from stagepilot.policy import parse_policy

if TYPE_CHECKING:
    from stagepilot.cli.output import Output
    from stagepilot.local.deployment import Delivery


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    command = commands.add_parser(
        "simulate",
        parents=[common],
        help="run the automation locally on a scenario (no AWS account)",
        description="Run events through the same routing rules and handler code the stack deploys, against "
        "embedded stand-ins for DynamoDB and the IVS real-time API. With --json, stdout has one JSON object "
        "per successful mutating IVS call, in the order made.",
    )
    command.add_argument("--policies", type=Path, required=True, metavar="FILE", help="JSON array of stage policies")
    command.add_argument(
        "--events",
        type=Path,
        required=True,
        metavar="FILE",
        help="EventBridge events, one per line (JSON Lines), plus 'simulate' directive lines",
    )
    command.add_argument(
        "--bans",
        type=Path,
        metavar="FILE",
        help='JSON array of {"userId": "...", "reason": "...", "stageArn": "optional", "scope": "join|publish"}',
    )
    command.add_argument(
        "--reconcile-seconds",
        type=_seconds,
        default=60,
        metavar="N",
        help="run the convergence pass every N seconds of virtual time (default 60, as deployed; 0 = off)",
    )
    command.add_argument(
        "--settle",
        type=_seconds,
        default=600,
        metavar="SECONDS",
        help="after the last line, let this much virtual time pass for retries, back-offs and passes (default 600)",
    )
    command.add_argument(
        "--latency",
        choices=("deployed", "none"),
        default="deployed",
        help="how long each AWS call takes on the virtual clock: 'deployed' (IVS 50-150 ms, DynamoDB 5-15 ms; "
        "the default) or 'none' (instant calls; pacing waits still pass)",
    )
    command.set_defaults(handler=cmd_simulate)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= value <= 7 * 24 * 3600:
        raise argparse.ArgumentTypeError(f"{text} must be between 0 and 604800 seconds")
    return value


def cmd_simulate(args: argparse.Namespace, out: Output) -> int:
    from stagepilot.local.scheduler import AS_DEPLOYED
    from stagepilot.local.simulate import read_scenario, simulate

    documents = load_policy_file(args.policies)
    problems = problems_in(documents)
    if problems:
        for line in problems:
            out.notice(f"{args.policies}: {line}")
        raise CliError(f"{args.policies}: invalid policies; nothing simulated", status=2)
    bans = read_bans(args.bans) if args.bans else []
    text, refused = _bounded_lines(read_text_file(args.events))
    scenario = read_scenario(text)
    errors = sorted([*refused, *scenario.errors], key=_line_number)
    for error in errors:
        out.notice(f"{args.events}: {error} (skipped)")

    _quiet_logs()
    timeline = None if out.as_json else Timeline(out)
    with isolated_from_aws():
        result = simulate(
            [parse_policy(d) for d in documents],
            scenario,
            bans=bans,
            listener=timeline.notify if timeline else None,
            reconcile_seconds=args.reconcile_seconds,
            settle_seconds=args.settle,
            latency=AS_DEPLOYED if args.latency == "deployed" else None,
        )
    if out.as_json:  # IVS calls and the door's decisions, in the order of their (virtual) times
        for item in sorted([*result.calls, *result.decisions], key=lambda item: item["time"]):
            out.json_line(item)
    else:
        _summary(out, result)
    return 0


def _bounded_lines(text: str) -> tuple[str, list[str]]:
    """The scenario with the lines the CLI's JSON reader refuses (nesting, huge numbers, lone surrogates)
    blanked out, so that they are reported and skipped like any other malformed line."""
    lines = text.splitlines()
    refused = []
    for index, raw in enumerate(lines):
        if not raw.strip():
            continue
        try:
            parse_json(raw)
        except json.JSONDecodeError:
            continue  # the scenario reader reports it with its own words
        except ValueError as exc:
            refused.append(f"line {index + 1}: {exc}")
            lines[index] = ""
    return "\n".join(lines), refused


def _line_number(error: str) -> int:
    number = error.removeprefix("line ").split(":", 1)[0]
    return int(number) if number.isdigit() else 0


@contextlib.contextmanager
def isolated_from_aws() -> Iterator[None]:
    """Nothing of the operator's AWS setup reaches the simulation: no endpoint (``AWS_ENDPOINT_URL*``,
    ``--endpoint-url``, a profile's ``endpoint_url``), no profile, no real credentials. Restored after."""
    import boto3

    saved_env = dict(os.environ)
    saved_session = boto3.DEFAULT_SESSION
    for name in list(os.environ):
        if name.startswith("AWS_"):
            del os.environ[name]
    os.environ.update(
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_IGNORE_CONFIGURED_ENDPOINT_URLS="true",
        AWS_EC2_METADATA_DISABLED="true",
    )
    boto3.DEFAULT_SESSION = None
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        boto3.DEFAULT_SESSION = saved_session


def read_bans(path: Path) -> list[dict[str, str]]:
    document = read_json_file(path)
    if not isinstance(document, list):
        raise CliError(f'{path}: must be a JSON array of {{"userId", "reason"}} objects', status=2)
    for index, ban in enumerate(document):
        if not isinstance(ban, dict) or not isinstance(ban.get("userId"), str) or not ban["userId"]:
            raise CliError(f"{path}: [{index}].userId: required, a non-empty string", status=2)
        if not isinstance(ban.get("reason", ""), str):
            raise CliError(f"{path}: [{index}].reason: must be a string", status=2)
        unknown = set(ban) - {"userId", "reason", "stageArn", "scope"}
        if unknown:
            raise CliError(f"{path}: [{index}].{sorted(unknown)[0]}: unknown field", status=2)
        stage_arn = ban.get("stageArn")
        if stage_arn is not None and (not isinstance(stage_arn, str) or not STAGE_ARN.fullmatch(stage_arn)):
            raise CliError(
                f"{path}: [{index}].stageArn: not a stage ARN (arn:aws:ivs:<region>:<account>:stage/<id>)", status=2
            )
        if ban.get("scope", "join") not in ("join", "publish"):
            raise CliError(f"{path}: [{index}].scope: must be join or publish", status=2)
    return document


class Timeline:
    """The readable output: each input event, then what each automation did with it and why."""

    def __init__(self, out: Output) -> None:
        self._out = out
        self._inputs: set[str] = set()  # ids of the scenario's own events (others were emitted by IVS)

    def notify(self, kind: str, payload: Any) -> None:
        if kind == "event":
            self._inputs.add(str(payload.get("id")))
            self._out.line(f"{_clock(payload.get('time'))}  ▶ {_describe(payload)}")
        elif kind == "directive":
            self._directive(payload)
        elif kind == "lost":
            event, why = payload
            self._out.line(f"{_clock(event.get('time'))}    {'EventBridge':<12} ✗ {why}: {_describe(event)}")
        elif kind == "delivery":
            self._delivery(payload)
        elif kind == "pass":
            self._pass(*payload)
        elif kind == "door":
            verdict = (
                f"issued {'+'.join(payload['capabilities'])} token {payload.get('participantId')}"
                if payload["token"] == "issued"
                else f"refused ({payload['refused']})"
            )
            self._out.line(f"{_clock(payload['time'])}    {'door':<12} {verdict}: {payload['reason']}")
        elif kind == "join":
            data, joined = payload
            if joined.refused:
                said = f"✗ IVS refuses token {data['token']}: {joined.refused}"
            elif joined.publish_error:
                said = f"✔ joined as {joined.participant_id}; ✗ publish refused: {joined.publish_error}"
            else:
                said = f"✔ joined as {joined.participant_id}" + (" and publishes" if joined.published else "")
            self._out.line(f"{'':8}    {'IVS':<12} {said}")

    def _pass(self, when: Any, report: Any) -> None:
        """Only passes that found something: a converged world makes no noise."""
        for _stage, outcome in report.drift:
            said = {"pending": "⏸ [convergence pass] pending", "rejected": "✗ [convergence pass] refused"}
            self._out.line(
                f"{when:%H:%M:%S}    {outcome.automation:<12} "
                f"{said.get(outcome.action, '✔ [convergence pass] healed')}: {outcome.reason}"
            )
        for stage, error in report.errors:
            self._out.line(f"{when:%H:%M:%S}    {'convergence':<12} ↻ {_short(stage)}: {error}; next pass tries again")

    def _directive(self, payload: Mapping[str, Any]) -> None:
        what = payload.get("simulate")
        when = _clock(payload.get("time"))
        if what == "participant":
            attributes = payload.get("attributes") or {}
            self._out.line(
                f"{'':8}  ▶ token: participant {payload['participantId']} of user "
                f"{payload.get('userId') or '-'} on {_short(payload['stageArn'])}"
                + (f" {json.dumps(attributes)}" if attributes else "")
            )
        elif what == "composition-failure":
            self._out.line(f"{when}  ▶ IVS fails the compositions of {_short(payload['stageArn'])}")
        elif what == "destination-failure":
            self._out.line(
                f"{when}  ▶ IVS fails the {payload['destination']} destination of "
                f"{_short(payload['stageArn'])}'s composition"
            )
        elif what == "lost":
            event = payload["event"]
            self._inputs.add(str(event.get("id")))
            self._out.line(f"{_clock(event.get('time'))}  ▶ {_describe(event)} (happens; never delivered)")
        elif what == "late":
            event = payload["event"]
            self._inputs.add(str(event.get("id")))
            self._out.line(
                f"{_clock(event.get('time'))}  ▶ {_describe(event)} (happens; delivered {payload['seconds']:g} s late)"
            )
        elif what == "lose-emitted":
            where = f" on {_short(payload['stageArn'])}" if payload.get("stageArn") else ""
            self._out.line(
                f"{'':8}  ▶ the next {payload.get('count', 1)} '{payload['eventName']}' event(s) IVS sends{where} "
                "will be lost"
            )
        elif what == "fault":
            self._out.line(
                f"{when}  ▶ IVS fails the next {payload.get('count', 1)} {payload['operation']} call(s) "
                f"with {payload['error']}"
            )
        elif what == "outage":
            self._out.line(f"{when}  ▶ IVS is down for {payload['seconds']:g} s (every call: InternalServerException)")
        elif what == "leave":
            self._out.line(f"{when}  ▶ participant {payload['participantId']} leaves {_short(payload['stageArn'])}")
        elif what == "issue":
            role = f" as {payload['role']}" if payload.get("role") else ""
            self._out.line(
                f"{when}  ▶ the application asks the door for a token for {payload['userId']}{role} on "
                f"{_short(payload['stageArn'])}"
            )
        elif what == "ban":
            where = f" on {_short(payload['stageArn'])}" if payload.get("stageArn") else ""
            scope = " from publishing" if payload.get("scope") == "publish" else ""
            verb = "lifts the ban on" if payload.get("remove") else "bans"
            self._out.line(f"{when}  ▶ an operator {verb} {payload['userId']}{scope}{where}")
        elif what == "join":
            publish = " and publishes" if payload.get("publish") else ""
            self._out.line(f"{when}  ▶ a client joins with token {payload['token']}{publish}")
        elif what == "encoder":
            verb = "starts" if payload.get("onAir", True) else "stops"
            self._out.line(
                f"{when}  ▶ an encoder outside stagepilot {verb} streaming into {_short(payload['channelArn'])}"
                + (" (refused: a composition streams into it)" if payload.get("refused") else "")
            )
        elif what == "recording":
            verb = "starts" if payload["state"] == "active" else "stops"
            self._out.line(
                f"{when}  ▶ IVS {verb} recording participant {payload['participantId']} on "
                f"{_short(payload['stageArn'])}"
            )

    def _delivery(self, delivery: Delivery) -> None:
        when = delivery.time.strftime("%H:%M:%S")
        retry = f" (delivery {delivery.receive})" if delivery.receive > 1 else ""
        emitted = str(delivery.event.get("id")) not in self._inputs
        source = f"[IVS: {_describe(delivery.event)}] " if emitted else ""
        if delivery.outcome is not None:
            mark = "✔" if delivery.outcome.acted else "·"
            self._out.line(f"{when}    {delivery.automation:<12} {mark} {source}{delivery.outcome.reason}{retry}")
        elif delivery.parked:
            self._out.line(
                f"{when}    {delivery.automation:<12} ✗ {source}gave up, event in the DLQ: {delivery.error}{retry}"
            )
        else:
            # a held claim is not a failure: it says whose claim and until when (docs/reliability.md)
            error = (delivery.error or "").removeprefix("RetryLater: ").removeprefix("ClaimHeld: ")
            wait = f"; again in {delivery.retry_in:.0f} s" if delivery.retry_in is not None else ""
            self._out.line(f"{when}    {delivery.automation:<12} ↻ {source}{error}{wait}{retry}")


def _summary(out: Output, result: Any) -> None:
    counts = Counter(call["operation"] for call in result.calls)
    out.line("")
    out.line("IVS calls made: " + (", ".join(f"{op} ×{n}" for op, n in counts.items()) or "none"))
    if result.lost:
        out.line(f"events never delivered: {result.lost}")
    parked = {name: items for name, items in result.dead_letters.items() if items}
    for name, items in parked.items():
        out.line(f"dead-letter queue {name}: {len(items)} event(s)")
        for _body, error in items:
            out.line(f"  {error}")
    if not parked:
        out.line("dead-letter queues: empty")


def _describe(event: Mapping[str, Any]) -> str:
    detail = event.get("detail") or {}
    if not isinstance(detail, dict):
        return str(event.get("detail-type"))
    name = detail.get("event_name") or event.get("detail-type")
    stage = detail.get("stage_arn") or next(iter(event.get("resources") or []), "")
    who = detail.get("participant_id")
    user = detail.get("user_id")
    parts = [str(name), _short(str(stage))]
    if who:
        parts.append(f"participant {who}" + (f" ({user})" if user else ""))
    if event.get("detail-type") == "IVS Composition State Change":
        parts.append(_short(str(next(iter(event.get("resources") or []), ""))))
    return " · ".join(parts)


def _short(arn: str) -> str:
    return arn.rsplit(":", 1)[-1] if arn.startswith("arn:") else arn


def _clock(value: object) -> str:
    return value[11:19] if isinstance(value, str) and len(value) >= 19 else "--:--:--"


def _quiet_logs() -> None:
    """The handlers' structured logs are for CloudWatch; the timeline says the same thing readably."""
    import logging

    stagepilot_logger = logging.getLogger("stagepilot")
    stagepilot_logger.addHandler(logging.NullHandler())
    stagepilot_logger.propagate = False
