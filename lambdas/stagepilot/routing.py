"""The routing table: which EventBridge events feed which automation.

Written once, as plain data. The CDK stack turns each route into an EventBridge rule that sends to the
automation's queue; ``stagepilot simulate`` matches events against the same patterns. Nothing here
imports CDK or boto3.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

COMPOSITION: Final = "composition"
REPLICATION: Final = "replication"
MODERATION: Final = "moderation"
AUTOMATIONS: Final = (COMPOSITION, REPLICATION, MODERATION)

IVS_SOURCE: Final = "aws.ivs"
STAGE_UPDATE: Final = "IVS Stage Update"
COMPOSITION_STATE_CHANGE: Final = "IVS Composition State Change"
PARTICIPANT_RECORDING_STATE_CHANGE: Final = "IVS Participant Recording State Change"
PARTICIPANT_FLAGGED: Final = "Participant Flagged"
DEFAULT_MODERATION_SOURCES: Final = ("stagepilot.moderation",)
# The event bus a route's rule listens on: IVS sends to the account's default bus; flags are put on the
# stack's own bus, whose policy lets only the moderation principals put events (docs/events.md).
DEFAULT_BUS: Final = "default"
FLAG_BUS: Final = "flags"

PARTICIPANT_PUBLISHED: Final = "Participant Published"
PARTICIPANT_PUBLISH_ERROR: Final = "Participant Publish Error"
# Session Start needs no action (the start was recorded when StartComposition returned), so it is not routed.
COMPOSITION_EVENT_NAMES: Final = ("Session End", "Session Failure", "Destination Failure")
# The English names of the replication events are not documented (see docs/events.md); IVS's own
# ListParticipantEvents calls them REPLICATION_STARTED / REPLICATION_STOPPED. Match any Stage Update
# whose name mentions replication, and let the handler treat names it does not know as harmless.
REPLICATION_EVENT_NAME_WILDCARD: Final = "*Replication*"
# EventBridge marks an event it replays from an archive with the replay's name (``replay-name``); every
# live rule leaves those alone: a replay of the default bus must not run the automations again
# (docs/architecture-infra.md).
REPLAY_NAME: Final = "replay-name"
NOT_REPLAYED: Final = {REPLAY_NAME: [{"exists": False}]}


@dataclass(frozen=True)
class Route:
    """One EventBridge rule: events matching ``pattern`` go to ``automation``'s queue."""

    automation: str
    name: str  # short, unique per stack; used in construct ids and rule descriptions
    description: str
    pattern: dict[str, Any]
    bus: str = DEFAULT_BUS  # DEFAULT_BUS or FLAG_BUS


def build_routes(
    *, account: str, region: str, moderation_sources: Sequence[str] = DEFAULT_MODERATION_SOURCES
) -> list[Route]:
    """All routes of a stack deployed in ``account``/``region``.

    ``account`` and ``region`` may be CDK tokens; they are only placed into the patterns. Every pattern
    refuses replayed events (``NOT_REPLAYED``).
    """
    if not moderation_sources:
        raise ValueError("moderation_sources must name at least one event source")
    if any(source == IVS_SOURCE or source.startswith("aws.") for source in moderation_sources):
        raise ValueError("moderation_sources must be your own sources; 'aws.*' is reserved for AWS services")
    pinned = {"account": [account], "region": [region], **NOT_REPLAYED}

    def stage_update(event_names: list[Any]) -> dict[str, Any]:
        return {
            "source": [IVS_SOURCE],
            "detail-type": [STAGE_UPDATE],
            **pinned,
            "detail": {"event_name": event_names},
        }

    return [
        Route(
            automation=COMPOSITION,
            name="CompositionPublished",
            description="First publisher of a stage session: start its composition",
            pattern=stage_update([PARTICIPANT_PUBLISHED]),
        ),
        Route(
            automation=COMPOSITION,
            name="CompositionStateChange",
            description="Composition lifecycle: heal failed compositions, record ends",
            pattern={
                "source": [IVS_SOURCE],
                "detail-type": [COMPOSITION_STATE_CHANGE],
                **pinned,
                "detail": {"event_name": list(COMPOSITION_EVENT_NAMES)},
            },
        ),
        Route(
            # Recording trouble is output trouble, like a composition's destinations: the composition
            # function audits and counts it (no IVS call, no permission added), docs/architecture-infra.md.
            automation=COMPOSITION,
            name="CompositionRecordingStateChange",
            description="Individual participant recording: failures audited and alarmed, state kept for status",
            pattern={"source": [IVS_SOURCE], "detail-type": [PARTICIPANT_RECORDING_STATE_CHANGE], **pinned},
        ),
        Route(
            automation=REPLICATION,
            name="ReplicationStageUpdate",
            description="Publishers to replicate, and the replication events IVS sends",
            pattern=stage_update([PARTICIPANT_PUBLISHED, {"wildcard": REPLICATION_EVENT_NAME_WILDCARD}]),
        ),
        Route(
            automation=MODERATION,
            name="ModerationStageUpdate",
            description="Publishers to check against bans and blocks; publish-error storms",
            pattern=stage_update([PARTICIPANT_PUBLISHED, PARTICIPANT_PUBLISH_ERROR]),
        ),
        Route(
            automation=MODERATION,
            name="ModerationFlagged",
            description="Participant Flagged events from the allowed moderation sources, on the flag bus",
            pattern={
                "source": list(moderation_sources),
                "detail-type": [PARTICIPANT_FLAGGED],
                **pinned,
            },
            bus=FLAG_BUS,
        ),
    ]


def routes_for(automation: str, routes: Sequence[Route]) -> list[Route]:
    return [route for route in routes if route.automation == automation]
