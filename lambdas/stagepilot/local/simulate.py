"""``stagepilot simulate`` (CONTRACT §4): run a scenario through the real routing and handler code on
moto DynamoDB and the IVS stand-in, with no AWS account.

The scenario is JSON Lines: EventBridge envelopes in delivery order, plus directive lines told apart by
a ``"simulate"`` key (``participant`` declares a token; ``composition-failure`` fails a stage's
compositions the way IVS would). Malformed lines are reported with their line number and skipped.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from stagepilot.events import STAGE_ARN
from stagepilot.policy import StagePolicy

ENVELOPE_KEYS = ("version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail")
DEFAULT_ACCOUNT = "123456789012"
DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True)
class Line:
    number: int
    kind: str  # "event" | "participant" | "composition-failure"
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
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc.msg} at column {exc.colno}") from exc
    if not isinstance(data, dict):
        raise ValueError("must be a JSON object")
    directive = data.get("simulate")
    if directive is None:
        missing = [key for key in ENVELOPE_KEYS if key not in data]
        if missing:
            raise ValueError(f"not an EventBridge event: missing {', '.join(missing)}")
        if not isinstance(data["time"], str) or _time(data["time"]) is None:
            raise ValueError("time: must be an ISO-8601 time like 2026-11-21T20:00:00Z")
        return Line(number, "event", data)
    if directive == "participant":
        _require_stage(data)
        for key in ("participantId",):
            if not isinstance(data.get(key), str) or not data[key]:
                raise ValueError(f"{key}: required (a participant id)")
        if not isinstance(data.get("userId", ""), str):
            raise ValueError("userId: must be a string")
        attributes = data.get("attributes", {})
        if not isinstance(attributes, dict) or not all(isinstance(v, str) for v in attributes.values()):
            raise ValueError("attributes: must be an object of strings")
        return Line(number, "participant", data)
    if directive == "composition-failure":
        _require_stage(data)
        if not isinstance(data.get("time"), str) or _time(data["time"]) is None:
            raise ValueError("time: required, an ISO-8601 time like 2026-11-21T20:05:00Z")
        return Line(number, "composition-failure", data)
    raise ValueError(f"simulate: unknown directive {directive!r} (expected 'participant' or 'composition-failure')")


def _require_stage(data: dict[str, Any]) -> None:
    if not isinstance(data.get("stageArn"), str) or not STAGE_ARN.fullmatch(data["stageArn"]):
        raise ValueError("stageArn: required, a stage ARN")


def _time(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass
class SimulationResult:
    calls: list[dict[str, Any]]  # successful mutating IVS calls, in order: {"operation", "params", "time"}
    dead_letters: dict[str, list[tuple[str, str]]]
    metrics: dict[str, float]


Listener = Callable[[str, Any], None]  # ("event" | "delivery" | "directive", payload)


def simulate(
    policies: Iterable[StagePolicy],
    scenario: Scenario,
    *,
    bans: Iterable[dict[str, str]] = (),
    listener: Listener | None = None,
) -> SimulationResult:
    """Run the scenario. Needs no AWS account: everything runs inside ``moto.mock_aws``."""
    from moto import mock_aws

    policies = list(policies)
    account, region = _account_and_region(policies, scenario)
    start = next((_time(line.data["time"]) for line in scenario.lines if "time" in line.data), None)
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    os.environ.update(AWS_ACCESS_KEY_ID="simulate", AWS_SECRET_ACCESS_KEY="simulate", AWS_DEFAULT_REGION=region)
    try:
        with mock_aws():
            return _run(policies, scenario, list(bans), account, region, start or datetime.now(UTC), listener)
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
) -> SimulationResult:
    from stagepilot.local.deployment import LocalDeployment

    deployment = LocalDeployment(account=account, region=region, start=start)
    notify = listener or (lambda kind, payload: None)
    deployment.on_delivery = lambda delivery: notify("delivery", delivery)
    for policy in policies:
        deployment.services.policies.put(policy)
        for arn in [policy.stage_arn, *(rule.destination_stage_arn for rule in policy.replication)]:
            if arn != "default":
                deployment.ivs.create_stage(arn)
    for ban in bans:
        deployment.services.bans.add(ban["userId"], reason=ban.get("reason", ""))
    for line in scenario.lines:
        if line.kind == "event":
            when = _time(line.data["time"])
            if when:  # what falls due before this event happens before it
                deployment.run_until(when)
            notify("event", line.data)
            deployment.put_event(line.data)
        elif line.kind == "participant":
            notify("directive", line.data)
            deployment.ivs.declare_participant(
                line.data["stageArn"],
                line.data["participantId"],
                user_id=line.data.get("userId", ""),
                attributes=line.data.get("attributes") or {},
            )
        else:
            when = _time(line.data["time"])
            if when:
                deployment.run_until(when)
            deployment.run_due()
            notify("directive", line.data)
            deployment.ivs.fail_compositions(line.data["stageArn"])
        deployment.run_due()
    deployment.drain()
    calls = [
        {"operation": c.operation, "params": c.params, "time": c.time.strftime("%Y-%m-%dT%H:%M:%SZ")}
        for c in deployment.ivs.mutating_calls()
    ]
    return SimulationResult(calls=calls, dead_letters=deployment.dead_letters, metrics=dict(deployment.metrics.counts))


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
