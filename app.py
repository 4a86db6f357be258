#!/usr/bin/env python3
"""CDK app: the StagePilot stack, checked by cdk-nag (AwsSolutions) on every synth.

Context (cdk.json, or ``cdk synth -c key=value``):
  alarmEmail         optional; subscribes this address to the alarm topic
  moderationSources  event sources whose "Participant Flagged" events are acted on (JSON list)
  stageArnPrefixes   stage-ARN prefixes the automation is limited to (JSON list; empty = every stage)
  moderationPrincipals  IAM role ARNs that may put flags on the flag bus (JSON list; empty = nobody)
  redrivePrincipals  IAM role ARNs that may assume the redrive role for `dlq redrive` (JSON list; empty = nobody)
  compositionHoursPerDay  {"limit": hours, "mode": "alert" | "block"}: the fleet's composition hours per UTC
                     day (unset = none; docs/policy.md, "The fleet's composition budget")
  stackName          the stack's name (default StagePilot): staging and production side by side;
                     the CLI takes the same name with --stack or STAGEPILOT_STACK
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from infra import names
from infra.convergence import DEFAULT_RECONCILE_MINUTES
from infra.stack import StagePilotSettings, StagePilotStack
from stagepilot import routing
from stagepilot.decisions.composition_hours import parse_composition_hours

CDK_JSON = Path(__file__).resolve().parent / "cdk.json"


def _string_list(value: Any, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """A context list; ``cdk -c key=[...]`` hands it over as a JSON string."""
    if value is None or value == "":
        return default
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"context {key} must be a JSON list of strings, got {value!r}") from exc
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise ValueError(f"context {key} must be a list of non-empty strings, got {value!r}")
    return tuple(value)


def settings_from_context(node: Any) -> StagePilotSettings:
    email = node.try_get_context(names.CONTEXT_ALARM_EMAIL)
    if email is not None and not isinstance(email, str):
        raise ValueError(f"context {names.CONTEXT_ALARM_EMAIL} must be a string, got {email!r}")
    return StagePilotSettings(
        alarm_email=(email or "").strip() or None,
        moderation_sources=_string_list(
            node.try_get_context(names.CONTEXT_MODERATION_SOURCES),
            names.CONTEXT_MODERATION_SOURCES,
            routing.DEFAULT_MODERATION_SOURCES,
        ),
        stage_arn_prefixes=_string_list(
            node.try_get_context(names.CONTEXT_STAGE_ARN_PREFIXES), names.CONTEXT_STAGE_ARN_PREFIXES, ()
        ),
        reconcile_minutes=_minutes(node.try_get_context(names.CONTEXT_RECONCILE_MINUTES)),
        moderation_principals=_string_list(
            node.try_get_context(names.CONTEXT_MODERATION_PRINCIPALS), names.CONTEXT_MODERATION_PRINCIPALS, ()
        ),
        redrive_principals=_string_list(
            node.try_get_context(names.CONTEXT_REDRIVE_PRINCIPALS), names.CONTEXT_REDRIVE_PRINCIPALS, ()
        ),
        token_mode=_token_mode(node.try_get_context(names.CONTEXT_TOKEN_MODE)),
        audit_trail=_flag(node.try_get_context(names.CONTEXT_AUDIT_TRAIL), names.CONTEXT_AUDIT_TRAIL),
        composition_hours=parse_composition_hours(
            node.try_get_context(names.CONTEXT_COMPOSITION_HOURS), f"context {names.CONTEXT_COMPOSITION_HOURS}"
        ),
    )


def _flag(value: Any, key: str) -> bool:
    """A true/false context value (``cdk -c key=true`` hands it over as a string)."""
    if value is None or value is False or value in ("false", ""):
        return False
    if value is True or value == "true":
        return True
    raise ValueError(f"context {key} must be true or false, got {value!r}")


def _token_mode(value: Any) -> str:
    """context tokenMode: "signed" (default) or "create"."""
    if value is None or value == "":
        return "signed"
    if value not in ("signed", "create"):
        raise ValueError(f'context {names.CONTEXT_TOKEN_MODE} must be "signed" or "create", got {value!r}')
    return str(value)


def _minutes(value: Any) -> int:
    """context reconcileMinutes: a whole number of minutes, 1-60 (``cdk -c`` hands it over as a string)."""
    if value is None or value == "":
        return DEFAULT_RECONCILE_MINUTES
    try:
        minutes = int(value) if not isinstance(value, bool) else -1
    except (TypeError, ValueError):
        minutes = -1
    if str(minutes) != str(value).strip() or not 1 <= minutes <= 60:
        raise ValueError(
            f"context {names.CONTEXT_RECONCILE_MINUTES} must be a whole number of minutes, 1-60, got {value!r}"
        )
    return minutes


def stack_name_from_context(node: Any) -> str:
    name = node.try_get_context(names.CONTEXT_STACK_NAME)
    if name is None or name == "":
        return names.STACK_NAME
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{0,127}", name):
        raise ValueError(
            f"context {names.CONTEXT_STACK_NAME} must be a CloudFormation stack name "
            f"(a letter, then letters, digits or '-', at most 128), got {name!r}"
        )
    return name


def build_app(context: Mapping[str, Any] | None = None, *, outdir: str | None = None) -> cdk.App:
    """The app with its stack and the cdk-nag gate.

    cdk.json's context (feature flags, defaults) is the base, so ``python app.py`` and tests synthesize
    what ``cdk synth`` does; the CLI's context and ``context`` override it.
    """
    base = json.loads(CDK_JSON.read_text()).get("context", {})
    app = cdk.App(context={**base, **(context or {})}, outdir=outdir)
    StagePilotStack(
        app,
        stack_name_from_context(app.node),
        settings=settings_from_context(app.node),
        description="stagepilot: automation for Amazon IVS real-time stages",
    )
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=True))
    return app


if __name__ == "__main__":
    build_app().synth()
