"""``stagepilot simulate`` (docs/simulate.md): run a scenario through the real routing and handler code on
moto DynamoDB and the IVS stand-in, with no AWS account.

The scenario is JSON Lines: EventBridge envelopes in delivery order, plus directive lines told apart by
a ``"simulate"`` key (docs/simulate.md): ``participant`` declares a token; ``composition-failure`` fails a
stage's compositions the way IVS would, ``destination-failure`` one destination of them; ``lost`` /
``late`` / ``lose-emitted`` lose or delay events;
``fault`` / ``outage`` make IVS calls fail; ``leave`` disconnects a participant; ``recording`` starts or
stops IVS's individual recording of a participant; ``encoder`` puts an outside encoder on a channel (or
takes it off); ``issue`` asks the door for a token and ``join`` joins with it (local/door.py). Malformed lines are
reported with their line number and skipped.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from stagepilot.events import STAGE_ARN
from stagepilot.local.door import LocalDoor
from stagepilot.local.scheduler import AS_DEPLOYED, Latency
from stagepilot.policy import StagePolicy

DIRECTIVES = (
    "participant",
    "composition-failure",
    "destination-failure",
    "lost",
    "late",
    "lose-emitted",
    "fault",
    "outage",
    "leave",
    "recording",
    "encoder",
    "issue",
    "join",
    "ban",
)
RECORDING_STATES = ("active", "stopped")
DESTINATION_KINDS = ("channel", "s3")
CHANNEL_ARN = re.compile(r"arn:aws:ivs:[a-z0-9-]+:[0-9]+:channel/[a-zA-Z0-9-]+")  # ChannelArn [model]
DEFAULT_RECONCILE_SECONDS = 60  # the deployed convergence period (cdk.json reconcileMinutes = 1)
DEFAULT_SETTLE_SECONDS = 600
MAX_DELAY_SECONDS = 14 * 24 * 3600  # longer than any queue holds a message

ENVELOPE_KEYS = ("version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail")
DEFAULT_ACCOUNT = "123456789012"
DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True)
class Line:
    number: int
    kind: str  # "event" or one of DIRECTIVES
    data: dict[str, Any]


@dataclass
class Scenario:
    lines: list[Line] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # "line N: why", for stderr


def read_scenario(text: str) -> Scenario:
    scenario = Scenario()
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            scenario.lines.append(_line(number, raw))
        except ValueError as exc:
            scenario.errors.append(f"line {number}: {exc}")
    return scenario


def _line(number: int, raw: str) -> Line:
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as exc:
        why = f"{exc.msg} at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
        raise ValueError(f"not JSON: {why}") from exc
    if not isinstance(data, dict):
        raise ValueError("must be a JSON object")
    directive = data.get("simulate")
    if directive is None:
        _require_envelope(data, "")
        return Line(number, "event", data)
    if directive not in DIRECTIVES:
        raise ValueError(f"simulate: unknown directive {directive!r} (expected one of {', '.join(DIRECTIVES)})")
    _DIRECTIVE_CHECKS[directive](data)
    return Line(number, directive, data)


def _require_envelope(data: Any, where: str) -> None:
    """An EventBridge envelope whose fields have the types EventBridge gives them. What the fields say is
    the automation's to judge (a malformed detail is parked by it, as in production)."""
    if not isinstance(data, dict):
        raise ValueError(f"{where or 'event'}: must be an EventBridge event (a JSON object)")
    missing = [key for key in ENVELOPE_KEYS if key not in data]
    if missing:
        raise ValueError(f"{where}not an EventBridge event: missing {', '.join(missing)}")
    if not isinstance(data["time"], str) or _time(data["time"]) is None:
        raise ValueError(f"{where}time: must be an ISO-8601 time like 2026-11-21T20:00:00Z")
    if not isinstance(data["resources"], list) or not all(isinstance(r, str) for r in data["resources"]):
        raise ValueError(f"{where}resources: must be an array of ARN strings")
    if not isinstance(data["detail"], dict):
        raise ValueError(f"{where}detail: must be a JSON object")
    for key in ("id", "detail-type", "source", "account", "region"):
        if not isinstance(data[key], str):
            raise ValueError(f"{where}{key}: must be a string")


def _check_participant(data: dict[str, Any]) -> None:
    _require_stage(data)
    _require_text(data, "participantId", "a participant id")
    if not isinstance(data.get("userId", ""), str):
        raise ValueError("userId: must be a string")
    attributes = data.get("attributes", {})
    if not isinstance(attributes, dict) or not all(isinstance(v, str) for v in attributes.values()):
        raise ValueError("attributes: must be an object of strings")


def _check_composition_failure(data: dict[str, Any]) -> None:
    _require_stage(data)
    _require_time(data)


def _check_destination_failure(data: dict[str, Any]) -> None:
    _require_stage(data)
    if data.get("destination") not in DESTINATION_KINDS:
        raise ValueError(f"destination: required, one of {', '.join(DESTINATION_KINDS)}")
    _require_time(data)
    if not isinstance(data.get("reason", ""), str):
        raise ValueError("reason: must be a string")


def _check_lost(data: dict[str, Any]) -> None:
    _require_envelope(data.get("event"), "event.")


def _check_late(data: dict[str, Any]) -> None:
    _require_number(data, "seconds", minimum=0, maximum=MAX_DELAY_SECONDS)
    _require_envelope(data.get("event"), "event.")


def _check_lose_emitted(data: dict[str, Any]) -> None:
    _require_text(data, "eventName", "an IVS detail.event_name like 'Session End'")
    count = data.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError("count: must be a whole number >= 1")
    if "stageArn" in data:
        _require_stage(data)


def _check_fault(data: dict[str, Any]) -> None:
    from stagepilot.local.ivs import THROTTLING
    from stagepilot.local.ivs_model import error_statuses, operation_names

    _require_time(data)
    operation = data.get("operation")
    if operation not in operation_names():
        raise ValueError(f"operation: {operation!r} is not an IVS real-time operation (e.g. StartComposition)")
    errors = sorted([*error_statuses(), THROTTLING])
    if data.get("error") not in errors:
        raise ValueError(f"error: must be one of {', '.join(errors)}")
    count = data.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError("count: must be a whole number >= 1")


def _check_outage(data: dict[str, Any]) -> None:
    _require_time(data)
    _require_number(data, "seconds", minimum=0, maximum=MAX_DELAY_SECONDS, exclusive=True)


def _check_leave(data: dict[str, Any]) -> None:
    _require_stage(data)
    _require_text(data, "participantId", "a participant id")
    _require_time(data)


def _check_recording(data: dict[str, Any]) -> None:
    _require_stage(data)
    _require_text(data, "participantId", "a participant id")
    if data.get("state") not in RECORDING_STATES:
        raise ValueError(f"state: required, one of {', '.join(RECORDING_STATES)}")
    _require_time(data)


def _check_encoder(data: dict[str, Any]) -> None:
    if not isinstance(data.get("channelArn"), str) or not CHANNEL_ARN.fullmatch(data["channelArn"]):
        raise ValueError("channelArn: required, a channel ARN")
    if not isinstance(data.get("onAir", True), bool):
        raise ValueError("onAir: must be true or false")
    _require_time(data)


def _check_issue(data: dict[str, Any]) -> None:
    _require_stage(data)
    _require_text(data, "userId", "the user id the token is for")
    if "role" in data:
        _require_text(data, "role", "a role of the stage's tokens policy")
    if "as" in data:
        _require_text(data, "as", "a name the join directive uses")
    attributes = data.get("attributes", {})
    if not isinstance(attributes, dict) or not all(isinstance(v, str) for v in attributes.values()):
        raise ValueError("attributes: must be an object of strings")


def _check_join(data: dict[str, Any]) -> None:
    _require_text(data, "token", "the name an issue directive gave with 'as'")
    if not isinstance(data.get("publish", False), bool):
        raise ValueError("publish: must be true or false")


def _check_ban(data: dict[str, Any]) -> None:
    _require_text(data, "userId", "the user id to ban")
    if "stageArn" in data:
        _require_stage(data)
    if data.get("scope", "join") not in ("join", "publish"):
        raise ValueError("scope: must be join or publish")
    if not isinstance(data.get("remove", False), bool):
        raise ValueError("remove: must be true or false")
    if not isinstance(data.get("reason", ""), str) or len(data.get("reason", "")) > 128:
        raise ValueError("reason: must be a string of at most 128 characters")


_DIRECTIVE_CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "participant": _check_participant,
    "composition-failure": _check_composition_failure,
    "destination-failure": _check_destination_failure,
    "lost": _check_lost,
    "late": _check_late,
    "lose-emitted": _check_lose_emitted,
    "fault": _check_fault,
    "outage": _check_outage,
    "leave": _check_leave,
    "recording": _check_recording,
    "encoder": _check_encoder,
    "issue": _check_issue,
    "join": _check_join,
    "ban": _check_ban,
}


def _require_stage(data: dict[str, Any]) -> None:
    if not isinstance(data.get("stageArn"), str) or not STAGE_ARN.fullmatch(data["stageArn"]):
        raise ValueError("stageArn: required, a stage ARN")


def _require_text(data: dict[str, Any], key: str, what: str) -> None:
    if not isinstance(data.get(key), str) or not data[key]:
        raise ValueError(f"{key}: required ({what})")


def _require_time(data: dict[str, Any]) -> None:
    if not isinstance(data.get("time"), str) or _time(data["time"]) is None:
        raise ValueError("time: required, an ISO-8601 time like 2026-11-21T20:05:00Z")


def _require_number(data: dict[str, Any], key: str, *, minimum: float, maximum: float, exclusive: bool = False) -> None:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key}: required, a number of seconds")
    if value < minimum or (exclusive and value == minimum) or value > maximum:
        low = f"> {minimum}" if exclusive else f">= {minimum}"
        raise ValueError(f"{key}: must be {low} and <= {maximum}")


def _time(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if parsed.year > 9000:  # leaves room for settling and retries without overflowing datetime
        return None
    return parsed


@dataclass
class SimulationResult:
    # successful mutating IVS calls, in order: {"operation", "params", "time", "trigger"}
    calls: list[dict[str, Any]]
    dead_letters: dict[str, list[tuple[str, str]]]
    metrics: dict[str, float]
    lost: int = 0  # events that happened but were never delivered
    decisions: list[dict[str, Any]] = field(default_factory=list)  # the door's, in order (issue directives)


# ("event" | "delivery" | "directive" | "lost" | "pass" | "door" | "join", payload); "lost" carries
# (event, why), "pass" (time, PassReport)
Listener = Callable[[str, Any], None]


def simulate(
    policies: Iterable[StagePolicy],
    scenario: Scenario,
    *,
    bans: Iterable[dict[str, str]] = (),
    listener: Listener | None = None,
    reconcile_seconds: float = DEFAULT_RECONCILE_SECONDS,
    settle_seconds: float = DEFAULT_SETTLE_SECONDS,
    prepare: Callable[[Any], None] | None = None,
    latency: Latency | None = AS_DEPLOYED,
) -> SimulationResult:
    """Run the scenario. Needs no AWS account: everything runs inside ``moto.mock_aws``.

    ``prepare`` is called with the ``LocalDeployment`` before the first line (tests give each function
    its role's permissions with it: tests/iam_emulation.py).

    ``reconcile_seconds``: the convergence pass's period on the virtual clock (0: off). ``settle_seconds``:
    how long the run goes on after the last line, so that retries, back-offs and passes can finish.
    ``latency``: how long each AWS call takes on the virtual clock (None: ``--latency none``, instant).
    """
    from moto import mock_aws

    policies = list(policies)
    account, region = _account_and_region(policies, scenario)
    start = next((t for line in scenario.lines if (t := _line_time(line)) is not None), None)
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    os.environ.update(AWS_ACCESS_KEY_ID="simulate", AWS_SECRET_ACCESS_KEY="simulate", AWS_DEFAULT_REGION=region)
    try:
        with mock_aws():
            return _run(
                policies,
                scenario,
                list(bans),
                account,
                region,
                start or datetime.now(UTC),
                listener,
                reconcile_seconds,
                settle_seconds,
                prepare,
                latency,
            )
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _run(
    policies: list[StagePolicy],
    scenario: Scenario,
    bans: list[dict[str, str]],
    account: str,
    region: str,
    start: datetime,
    listener: Listener | None,
    reconcile_seconds: float,
    settle_seconds: float,
    prepare: Callable[[Any], None] | None = None,
    latency: Latency | None = AS_DEPLOYED,
) -> SimulationResult:
    from stagepilot.local.deployment import LocalDeployment

    deployment = LocalDeployment(
        account=account, region=region, start=start, reconcile_seconds=reconcile_seconds or None, latency=latency
    )
    with deployment:
        return _play_scenario(
            deployment, policies, scenario, bans, listener=listener, settle_seconds=settle_seconds, prepare=prepare
        )


def _play_scenario(
    deployment: Any,
    policies: list[StagePolicy],
    scenario: Scenario,
    bans: list[dict[str, str]],
    *,
    listener: Listener | None,
    settle_seconds: float,
    prepare: Callable[[Any], None] | None,
) -> SimulationResult:
    from stagepilot.local.directives import act

    notify = listener or (lambda kind, payload: None)
    deployment.on_delivery = lambda delivery: notify("delivery", delivery)
    deployment.on_lost = lambda event, why: notify("lost", (event, why))
    deployment.on_pass = lambda report: notify("pass", (deployment.clock(), report))
    if prepare is not None:
        prepare(deployment)
    for policy in policies:
        deployment.services.policies.put(policy)
        for arn in [policy.stage_arn, *(rule.destination_stage_arn for rule in policy.replication)]:
            if arn != "default" and deployment.ivs.is_local_arn(arn):
                deployment.ivs.create_stage(arn)
    for ban in bans:
        deployment.services.bans.add(
            ban["userId"], reason=ban.get("reason", ""), stage_arn=ban.get("stageArn"), scope=ban.get("scope", "join")
        )
    door = LocalDoor(deployment)
    decisions: list[dict[str, Any]] = []
    for line in scenario.lines:
        # What falls due before this line happens before it; deliveries under way go on beside it (each
        # container's calls take their time: a burst of lines is handled side by side, as deployed).
        when = _line_time(line)
        deployment.run_until(when if when is not None else deployment.clock())
        act(deployment, door, line, notify, decisions)
    deployment.settle(settle_seconds)
    calls = [
        {
            "operation": c.operation,
            "params": c.params,
            "time": c.time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "trigger": c.trigger or "event",
        }
        for c in deployment.ivs.mutating_calls()
    ]
    return SimulationResult(
        calls=calls,
        dead_letters=deployment.dead_letters,
        metrics=dict(deployment.metrics.counts),
        lost=len(deployment.lost),
        decisions=decisions,
    )


def _line_time(line: Line) -> datetime | None:
    """When a line takes effect: its ``time`` (an event's, or a lost/late event's own)."""
    raw = line.data["event"].get("time") if line.kind in ("lost", "late") else line.data.get("time")
    return _time(raw) if isinstance(raw, str) else None


def _account_and_region(policies: list[StagePolicy], scenario: Scenario) -> tuple[str, str]:
    """The simulated stack lives where the scenario's events come from (else its policies' stages)."""
    for line in scenario.lines:
        if (
            line.kind == "event"
            and isinstance(line.data.get("account"), str)
            and isinstance(line.data.get("region"), str)
        ):
            return line.data["account"], line.data["region"]
    for policy in policies:
        if policy.stage_arn != "default":
            parts = policy.stage_arn.split(":")
            return parts[4], parts[3]
    return DEFAULT_ACCOUNT, DEFAULT_REGION
