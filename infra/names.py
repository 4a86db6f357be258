"""Construct ids and stack output names, in one place.

The output names are a user-facing surface: the ``stagepilot`` CLI finds the deployed resources by them
(docs/cli.md, "Finding the deployment"). Extend, don't rename.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

STACK_NAME: Final = "StagePilot"

# Stack-level construct ids.
TABLE: Final = "Table"
ALARM_KEY: Final = "AlarmTopicKey"
ALARM_TOPIC: Final = "AlarmTopic"
FLAG_BUS: Final = "FlagBus"
REDRIVE_ROLE: Final = "RedriveRole"
VIEWER_POLICY: Final = "ViewerPolicy"
OPERATOR_POLICY: Final = "OperatorPolicy"
ADMIN_POLICY: Final = "AdminPolicy"
BAN_READER_POLICY: Final = "BanReaderPolicy"
OPERATOR_ACCESS: Final = "OperatorAccess"
OPERATIONS: Final = "Operations"  # the dashboard construct
DASHBOARD: Final = "Dashboard"

# Construct ids inside one AutomationPipeline.
QUEUE: Final = "Queue"
DLQ: Final = "DeadLetterQueue"
ROLE: Final = "Role"
EXECUTION_POLICY: Final = "ExecutionPolicy"
LOG_GROUP: Final = "LogGroup"
FUNCTION: Final = "Function"
DLQ_DEPTH_ALARM: Final = "DlqDepthAlarm"
QUEUE_AGE_ALARM: Final = "QueueAgeAlarm"
ERRORS_ALARM: Final = "ErrorsAlarm"
MALFORMED_EVENT_ALARM: Final = "MalformedEventAlarm"
POLICY_INVALID_ALARM: Final = "PolicyInvalidAlarm"
DLQ_AGE_ALARM: Final = "DlqAgeAlarm"

# The convergence pass (infra/convergence.py).
CONVERGENCE: Final = "Convergence"
SCHEDULE: Final = "Schedule"
HEALED_ALARM: Final = "HealedAlarm"
RECONCILE_FAILED_ALARM: Final = "ReconcileFailedAlarm"
RECORDING_FAILED_ALARM: Final = "RecordingFailedAlarm"
DESTINATION_FAILED_ALARM: Final = "DestinationFailedAlarm"
COMPOSITION_BUDGET_ALARM: Final = "CompositionBudgetAlarm"

# The door (infra/door.py).
DOOR: Final = "Door"
DOOR_SIGNING_POLICY: Final = "SigningPolicy"
TOKEN_ISSUER_POLICY: Final = "TokenIssuerPolicy"

# Context keys read by the app (cdk.json / `cdk -c key=value`).
CONTEXT_ALARM_EMAIL: Final = "alarmEmail"
CONTEXT_MODERATION_SOURCES: Final = "moderationSources"
CONTEXT_STAGE_ARN_PREFIXES: Final = "stageArnPrefixes"
CONTEXT_RECONCILE_MINUTES: Final = "reconcileMinutes"
CONTEXT_MODERATION_PRINCIPALS: Final = "moderationPrincipals"
CONTEXT_REDRIVE_PRINCIPALS: Final = "redrivePrincipals"  # IAM roles that may assume the redrive role
CONTEXT_TOKEN_MODE: Final = "tokenMode"  # "signed" (default) or "create"
CONTEXT_AUDIT_TRAIL: Final = "auditTrail"  # true: a CloudTrail trail of the table's data events
# {"limit": hours, "mode": "alert" | "block"}: the fleet's composition hours per UTC day (docs/policy.md)
CONTEXT_COMPOSITION_HOURS: Final = "compositionHoursPerDay"
AUDIT_TRAIL: Final = "AuditTrail"
AUDIT_TRAIL_BUCKET: Final = "AuditTrailBucket"
CONTEXT_STACK_NAME: Final = "stackName"  # default STACK_NAME: several deployments in one account and region

# Stack outputs: stagepilot/outputs.py (the CLI, the sandbox and the tests read them too).

# Custom metrics the handlers emit (namespace config.METRICS_NAMESPACE, dimension service=<automation>).
METRIC_MALFORMED_EVENT: Final = "MalformedEvent"
METRIC_POLICY_INVALID: Final = "PolicyInvalid"
METRIC_HEALED: Final = "Healed"  # by the convergence pass (dimension service=convergence), every reason
# the heals explained by nothing but a lost event (stagepilot.decisions.heals): what HealedAlarm counts
METRIC_HEALED_EVENT_LOST: Final = "HealedEventLost"
METRIC_RECONCILE_FAILED: Final = "ReconcileFailed"
METRIC_RECORDING_FAILED: Final = "RecordingFailed"  # by the composition function (service=composition)
# a composition's destination failed (channel already live, bucket refused): by the composition function and
# the convergence pass, once per composition and destination
METRIC_DESTINATION_FAILED: Final = "DestinationFailed"
# the day's composition hours are spent (compositionHoursPerDay): by the convergence pass, once per UTC day
METRIC_COMPOSITION_BUDGET_SPENT: Final = "CompositionBudgetSpent"
METRIC_EVENT_ACTED: Final = "EventActed"
METRIC_EVENT_SKIPPED: Final = "EventSkipped"
METRIC_EVENT_FAILED: Final = "EventFailed"
METRIC_EVENT_RETRIED: Final = "EventRetried"
# an event sent back to its queue until another owner's live claim can have run out (not a failure)
METRIC_EVENT_CLAIM_HELD: Final = "EventClaimHeld"
METRIC_IVS_THROTTLED: Final = "IvsThrottled"


def ivs_policy_id(statement_name: str) -> str:
    return f"{statement_name}Policy"


def rule_id(route_name: str) -> str:
    return f"{route_name}Rule"


# Account-scoped names (unique per account and region, not per stack): alarm and dashboard names, rule
# names, event-bus policy statement ids (aws-cdk#29627), exports. Each starts with the stack's name, so
# StagePilot and StagePilot-staging deploy side by side. Limits: rule names 64, statement ids 64 with
# CDK's "cdk-" prefix, dashboard names 255 ([A-Za-z0-9_-]), alarm names 255.
RULE_NAME_MAX: Final = 64
QUEUE_NAME_MAX: Final = 80
STATEMENT_ID_MAX: Final = 60
DASHBOARD_NAME_MAX: Final = 255
ALARM_NAME_MAX: Final = 255
_NAME_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")


def account_scoped(stack_name: str, *parts: str, max_length: int) -> str:
    """``StagePilot`` + (``Composition``, ``DlqDepthAlarm``) -> ``StagePilot-Composition-DlqDepthAlarm``.

    A name longer than ``max_length`` keeps its start and ends with a hash of the whole name, so two
    stacks whose names differ only past the cut still get different names."""
    for part in (stack_name, *parts):
        if not _NAME_PART.fullmatch(part):
            raise ValueError(f"{part!r} cannot be part of an account-scoped name (letters, digits, '-', '_')")
    name = "-".join((stack_name, *parts))
    if len(name) <= max_length:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    return f"{name[: max_length - len(digest) - 1]}-{digest}"
