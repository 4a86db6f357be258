"""Settings the stack hands to each function through its environment.

The names here are the only place the stack (infra/) and the functions agree on; both import them.
Reading happens in ``Settings.from_env()``, called once per container by the handler factory.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from stagepilot import budget
from stagepilot.decisions.composition_hours import CompositionHoursPerDay, parse_composition_hours
from stagepilot.routing import DEFAULT_MODERATION_SOURCES

ENV_TABLE: Final = "STAGEPILOT_TABLE"
ENV_STAGE_PREFIXES: Final = "STAGEPILOT_STAGE_ARN_PREFIXES"  # JSON list; empty/absent = all stages
ENV_DLQ_URL: Final = "STAGEPILOT_DLQ_URL"  # malformed events are parked here directly (never retried)
ENV_POLICY_CACHE_SECONDS: Final = "STAGEPILOT_POLICY_CACHE_SECONDS"
# Which of stagepilot.budget.CALLERS this function is: each container paces every IVS operation at that
# caller's share of the operation's quota (budget.container_shares). Absent: budget.CONSERVATIVE_CALLS.
ENV_IVS_CALLER: Final = "STAGEPILOT_IVS_CALLER"
# Where events may come from (stagepilot.origin): the stack's own account and region, and the sources a
# Participant Flagged event may have. Absent account/region: not checked (local runs).
ENV_ACCOUNT: Final = "STAGEPILOT_ACCOUNT"
ENV_REGION: Final = "STAGEPILOT_REGION"  # else AWS_REGION, which Lambda sets
ENV_MODERATION_SOURCES: Final = "STAGEPILOT_MODERATION_SOURCES"  # JSON list
ENV_MAX_EVENT_AGE_SECONDS: Final = "STAGEPILOT_MAX_EVENT_AGE_SECONDS"  # older events are parked as malformed
# The stack context compositionHoursPerDay, as JSON (decisions/composition_hours.py); absent = no budget.
ENV_COMPOSITION_HOURS: Final = "STAGEPILOT_COMPOSITION_HOURS_PER_DAY"

DEFAULT_POLICY_CACHE_SECONDS: Final = 30.0
METRICS_NAMESPACE: Final = "StagePilot"
# EventBridge retries delivery for 1 day, the DLQ keeps a message 14 days from its first enqueue, and a
# redriven message can wait in the queue 4 more days (infra/pipeline.py passes its own sum).
DEFAULT_MAX_EVENT_AGE_SECONDS: Final = float((1 + 14 + 4) * 86400)


class SettingsError(ValueError):
    """The function's environment is wrong: a deployment defect, not an event problem."""


@dataclass(frozen=True)
class Settings:
    """A function's settings, from its environment (``from_env``)."""

    table_name: str
    stage_arn_prefixes: tuple[str, ...] = ()
    dlq_url: str | None = None
    policy_cache_seconds: float = DEFAULT_POLICY_CACHE_SECONDS
    ivs_caller: str | None = None
    account: str | None = None
    region: str | None = None
    moderation_sources: tuple[str, ...] = DEFAULT_MODERATION_SOURCES
    max_event_age_seconds: float = DEFAULT_MAX_EVENT_AGE_SECONDS
    composition_hours: CompositionHoursPerDay | None = None  # the fleet's budget (docs/policy.md)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        table = env.get(ENV_TABLE, "").strip()
        if not table:
            raise SettingsError(f"{ENV_TABLE} is not set")
        return cls(
            table_name=table,
            stage_arn_prefixes=_string_list(env, ENV_STAGE_PREFIXES),
            dlq_url=env.get(ENV_DLQ_URL) or None,
            policy_cache_seconds=_positive_float(env, ENV_POLICY_CACHE_SECONDS, DEFAULT_POLICY_CACHE_SECONDS),
            ivs_caller=_ivs_caller(env),
            account=env.get(ENV_ACCOUNT) or None,
            region=env.get(ENV_REGION) or env.get("AWS_REGION") or None,
            moderation_sources=_string_list(env, ENV_MODERATION_SOURCES) or DEFAULT_MODERATION_SOURCES,
            max_event_age_seconds=_positive_float(env, ENV_MAX_EVENT_AGE_SECONDS, DEFAULT_MAX_EVENT_AGE_SECONDS),
            composition_hours=_composition_hours(env),
        )

    def covers(self, stage_arn: str) -> bool:
        """True when the automation is allowed to act on this stage."""
        return not self.stage_arn_prefixes or stage_arn.startswith(self.stage_arn_prefixes)


def _ivs_caller(env: Mapping[str, str]) -> str | None:
    caller = env.get(ENV_IVS_CALLER, "").strip()
    if caller and caller not in budget.CALLERS:
        raise SettingsError(f"{ENV_IVS_CALLER} must be one of {', '.join(budget.CALLERS)}, got {caller!r}")
    return caller or None


def _composition_hours(env: Mapping[str, str]) -> CompositionHoursPerDay | None:
    try:
        return parse_composition_hours(env.get(ENV_COMPOSITION_HOURS, ""), ENV_COMPOSITION_HOURS)
    except ValueError as exc:
        raise SettingsError(str(exc)) from exc


def _string_list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    raw = env.get(name, "")
    if not raw.strip():
        return ()
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"{name} is not JSON: {exc}") from exc
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise SettingsError(f"{name} must be a JSON list of non-empty strings")
    return tuple(value)


def _positive_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from exc
    if value <= 0:
        raise SettingsError(f"{name} must be > 0, got {raw!r}")
    return value
