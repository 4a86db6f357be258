"""The stage policy: the per-stage configuration document (docs/policy.md), its validation and its model.

A policy is hand-written JSON. ``validate_policy`` never raises: it returns every problem it finds,
each naming the field (``composition.destinations[1].channel.channelArn: not a channel ARN ...``).
``parse_policy`` turns a valid document into frozen dataclasses the automations read.

One concept per module, every name importable from ``stagepilot.policy`` as before:

- ``model``: the dataclasses and the limits a policy is held to;
- ``problems``: ``Problem`` and ``PolicyInvalid``, and how messages name fields and values;
- ``shapes``: botocore's ``ivs-realtime`` request shapes and the walk that checks a value against one;
- ``validate``: ``validate_policy``, section by section;
- ``parse``: ``parse_policy``;
- ``cycles``: ``replication_cycles``, across policies.
"""

from stagepilot.policy.cycles import replication_cycles
from stagepilot.policy.model import (
    DEFAULT_MAX_RESTARTS,
    DEFAULT_REASON,
    DEFAULT_STAGE,
    END_SHOW,
    HOST_GONE_GRACE_RANGE,
    LIMIT_COUNT_RANGE,
    LIMIT_WINDOW_RANGE,
    MAX_POLICY_TAGS,
    MAX_RECONNECT_WINDOW_SECONDS,
    MAX_REPLICATION_ATTRIBUTES_BYTES,
    MAX_REPLICATIONS,
    MAX_RESTARTS_LIMIT,
    MAX_SESSION_MINUTES_RANGE,
    MAX_TOKEN_ATTRIBUTES_BYTES,
    MAX_USER_ID_LENGTH,
    NO_PUBLISHER_SECONDS_RANGE,
    RECORDING_DEFAULTS,
    RESERVED_TAG_PREFIXES,
    STAGEPILOT_TAG_COUNT,
    STOP_COMPOSITION,
    TOKEN_CAPABILITIES,
    TOKEN_DURATION_RANGE,
    CompositionPolicy,
    HostGone,
    Limit,
    LimitsPolicy,
    ModerationPolicy,
    ParticipantFilter,
    ReplicationRule,
    StagePolicy,
    StageSettings,
    TokenRole,
    TokensPolicy,
)
from stagepilot.policy.parse import parse_policy
from stagepilot.policy.problems import PolicyInvalid, Problem
from stagepilot.policy.shapes import use_service_model
from stagepilot.policy.validate import validate_policy

__all__ = [
    "DEFAULT_MAX_RESTARTS",
    "DEFAULT_REASON",
    "DEFAULT_STAGE",
    "END_SHOW",
    "HOST_GONE_GRACE_RANGE",
    "LIMIT_COUNT_RANGE",
    "LIMIT_WINDOW_RANGE",
    "MAX_POLICY_TAGS",
    "MAX_RECONNECT_WINDOW_SECONDS",
    "MAX_REPLICATIONS",
    "MAX_REPLICATION_ATTRIBUTES_BYTES",
    "MAX_RESTARTS_LIMIT",
    "MAX_SESSION_MINUTES_RANGE",
    "MAX_TOKEN_ATTRIBUTES_BYTES",
    "MAX_USER_ID_LENGTH",
    "NO_PUBLISHER_SECONDS_RANGE",
    "RECORDING_DEFAULTS",
    "RESERVED_TAG_PREFIXES",
    "STAGEPILOT_TAG_COUNT",
    "STOP_COMPOSITION",
    "TOKEN_CAPABILITIES",
    "TOKEN_DURATION_RANGE",
    "CompositionPolicy",
    "HostGone",
    "Limit",
    "LimitsPolicy",
    "ModerationPolicy",
    "ParticipantFilter",
    "PolicyInvalid",
    "Problem",
    "ReplicationRule",
    "StagePolicy",
    "StageSettings",
    "TokenRole",
    "TokensPolicy",
    "parse_policy",
    "replication_cycles",
    "use_service_model",
    "validate_policy",
]
