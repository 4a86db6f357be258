"""Whether an event may be acted on: it comes from where the stack's rules take events from, and its
time is one the stack's queues could have held. Pure: the event and the function's own settings in.

The EventBridge rules and the queue policies already keep out what does not match (infra/), so in a
correct deployment nothing here fires. It is the second wall: a body sent to a queue by anyone who
got past those (a mis-scoped identity policy, a message planted in a DLQ and redriven) is parked as
malformed, with the reason, instead of being trusted.

- ``source``: ``aws.ivs`` for IVS's events (``events.parse_event`` insists), one of the allowed
  moderation sources for ``Participant Flagged``.
- ``account`` / ``region``: the function's own (the rules are pinned to them), and those of the stage
  the event names (a stage ARN of another account or region than the envelope's is not IVS's event).
- time: not more than ``MAX_CLOCK_SKEW`` ahead of the processing clock, and not older than the
  stack's queues can keep an event (``Settings.max_event_age_seconds``). Within those bounds, the
  counters use the event's own time; TTLs and the audit trail use the processing time.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from stagepilot.config import Settings
from stagepilot.errors import MalformedEvent
from stagepilot.events import Event, ParticipantFlagged
from stagepilot.routing import IVS_SOURCE

MAX_CLOCK_SKEW: Final = timedelta(minutes=5)


def check_origin(event: Event, settings: Settings, *, now: datetime) -> None:
    """Raise ``MalformedEvent`` naming the field when ``event`` must not be acted on."""
    envelope = event.envelope
    if isinstance(event, ParticipantFlagged):
        if envelope.source not in settings.moderation_sources:
            raise MalformedEvent(
                "source", f"{envelope.source!r} is not an allowed moderation source {list(settings.moderation_sources)}"
            )
    elif envelope.source != IVS_SOURCE:
        raise MalformedEvent("source", f"{envelope.source!r} is not {IVS_SOURCE!r}")
    if settings.account is not None and envelope.account != settings.account:
        raise MalformedEvent("account", f"{envelope.account!r} is not this stack's account")
    if settings.region is not None and envelope.region != settings.region:
        raise MalformedEvent("region", f"{envelope.region!r} is not this stack's region {settings.region!r}")
    stage_arn = getattr(event, "stage_arn", None)
    if isinstance(stage_arn, str) and stage_arn.count(":") >= 5:
        _, _, _, region, account, _ = stage_arn.split(":", 5)
        where = "resources[0]" if stage_arn in envelope.resources else "detail.stage_arn"
        if account != envelope.account:
            raise MalformedEvent(where, f"the stage's account {account} is not the event's {envelope.account!r}")
        if region != envelope.region:
            raise MalformedEvent(where, f"the stage's region {region} is not the event's {envelope.region!r}")
    oldest = timedelta(seconds=settings.max_event_age_seconds)
    for where, when in (("time", envelope.time), ("detail.event_time", event.time)):
        if when - now > MAX_CLOCK_SKEW:
            raise MalformedEvent(where, f"{_iso(when)} is more than 5 minutes in the future")
        if now - when > oldest:
            raise MalformedEvent(
                where, f"{_iso(when)} is older than the stack's queues can hold an event ({oldest.days} days)"
            )


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")
