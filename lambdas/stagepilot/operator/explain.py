"""What each automation would do with one event now, and why, without acting (``stagepilot explain``).

Nothing here decides or orchestrates: for each automation the stack's rules route the event to, the
handler's own steps run — ``parse_event`` and ``check_origin``, then ``pipeline.handle_event`` with the
automation — on what-if services (``operator/whatif.py``) that read the real table and IVS and record
the writes and IVS calls the run would make instead of making them. The ``Outcome`` (or the failure the
queue would see) and the recorded calls become an ``Explanation``. What ``explain`` cannot know is what
the port cannot: an event that gets there first, and IVS rejecting a request it would make.

``Explanation.action`` is the ``Outcome.action`` the handler would return (``composition-started``,
``replication-started``, ``disconnect``, ``would-disconnect``, ``skip``, ...), plus ``retry`` (the event
would be retried later), ``park`` (malformed: parked in the dead-letter queue) and ``not-routed``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from stagepilot.errors import MalformedEvent
from stagepilot.events import Event, parse_event
from stagepilot.failures import Log, Meaning, Path, describe, handling
from stagepilot.operator.whatif import IvsCall, WhatIf, WhatIfUnsupported, what_if
from stagepilot.origin import check_origin
from stagepilot.pipeline import Automation, Outcome, Services, claim_held, handle_event
from stagepilot.policy import PolicyInvalid
from stagepilot.routing import AUTOMATIONS, Route


@dataclass(frozen=True)
class Explanation:
    """One automation's verdict on the event."""

    automation: str
    routed: bool
    action: str  # the handler's Outcome.action, or "retry" / "park" / "not-routed"
    acts: bool  # it would call IVS (start, restart, replicate, disconnect)
    reason: str
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        if not self.routed:
            return f"not sent to {self.automation}: {self.reason}"
        if self.action == "skip":
            return f"would not: {self.reason}"
        return f"would {self.reason}"

    def to_json(self) -> dict[str, Any]:
        return {
            "automation": self.automation,
            "routed": self.routed,
            "action": self.action,
            "acts": self.acts,
            "summary": self.summary,
            "reason": self.reason,
            "details": dict(self.details),
        }


def routed_automations(document: Mapping[str, Any], routes: Sequence[Route]) -> set[str]:
    """The automations whose EventBridge rules match the event (moto's matcher, as ``simulate`` uses)."""
    from moto.events.models import EventPattern

    message: Any = dict(document)
    return {route.automation for route in routes if EventPattern.load(json.dumps(route.pattern)).matches_event(message)}


def explain_event(document: Mapping[str, Any], services: Services, *, routes: Sequence[Route]) -> list[Explanation]:
    """What each automation would do with ``document`` (an EventBridge envelope) now, in AUTOMATIONS order."""
    from stagepilot.automations import event_automations

    routed = routed_automations(document, routes)
    try:
        parsed = parse_event(dict(document))
        check_origin(parsed, services.settings, now=services.clock())
        event: Event | None = parsed
        malformed = ""
    except MalformedEvent as exc:
        event, malformed = None, str(exc)
    automations = {a.name: a for a in event_automations()}
    out = []
    for name in AUTOMATIONS:
        if name not in routed:
            out.append(Explanation(name, False, "not-routed", False, "no rule of this automation matches the event"))
        elif event is None:
            out.append(Explanation(name, True, "park", False, f"park it in the dead-letter queue: {malformed}"))
        else:
            with what_if(services) as whatif:
                out.append(explain_one(event, automations[name], whatif))
    return out


def explain_one(event: Event, automation: Automation, whatif: WhatIf) -> Explanation:
    """Run ``event`` through ``automation`` as its handler would, on ``whatif``'s services."""
    name = automation.name
    try:
        outcome = handle_event(event, automation, whatif.services)
    except WhatIfUnsupported:
        raise
    except Exception as exc:  # what the handler would do with it (stagepilot.failures)
        found = handling(exc, Path.EVENT)
        if found.meaning is Meaning.PARK:
            return Explanation(name, True, "park", False, f"park it in the dead-letter queue: {exc}", _recorded(whatif))
        why = f"fail and be retried: {exc}" if found.log is Log.TRACEBACK else f"retry later: {describe(exc)}"
        return Explanation(name, True, "retry", False, why, _recorded(whatif))
    details = {"policySource": _policy_source(event, whatif.services), **outcome.details, **_recorded(whatif)}
    if outcome.held is not None:  # the handler sends it back until the holder's lease can have run out
        held = claim_held(outcome, outcome.held, whatif.services.clock())
        return Explanation(name, True, "retry", bool(whatif.calls), f"retry later: {describe(held)}", details)
    return Explanation(name, True, outcome.action, bool(whatif.calls), _reason(outcome, whatif.calls), details)


def _reason(outcome: Outcome, calls: Sequence[IvsCall]) -> str:
    """The outcome in words that follow "would" (Explanation.summary): the calls, then the handler's why."""
    if outcome.action == "skip":
        return outcome.reason
    if calls:
        return f"{'; '.join(_described(call) for call in calls)} — {outcome.reason}"
    return f"record, calling nothing on IVS: {outcome.reason}"


def _described(call: IvsCall) -> str:
    params = call.params
    if call.operation == "StartComposition":
        names = [str(d.get("name", "?")) for d in params.get("destinations", ())]
        return f"start a composition (destinations {', '.join(names)})"
    if call.operation == "StartParticipantReplication":
        return f"replicate {params.get('participantId')} to {params.get('destinationStageArn')}"
    if call.operation == "StopParticipantReplication":
        return f"stop replicating {params.get('participantId')} to {params.get('destinationStageArn')}"
    if call.operation == "DisconnectParticipant":
        return f"disconnect {params.get('participantId')} (reason sent: {params.get('reason')!r})"
    if call.operation == "UpdateStage":
        return "apply the stage's recording settings"
    return f"call {call.operation}"


def _recorded(whatif: WhatIf) -> dict[str, Any]:
    return {
        "wouldCall": [call.to_json() for call in whatif.calls],
        "wouldWrite": [write.to_json() for write in whatif.writes],
    }


def _policy_source(event: Event, services: Services) -> str:
    """Which policy applied: the stage's own, ``default``, or none (read from the run's policy cache)."""
    try:
        effective = services.effective_policies.get(event.stage_arn)
    except PolicyInvalid:
        return "invalid"
    return effective.source if effective else "none"
