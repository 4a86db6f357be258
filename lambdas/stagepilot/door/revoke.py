"""``ban add``'s fast path: disconnect the user's participants the door issued tokens for, found from the
token records (docs/door.md), with no ListStages and no ListParticipants: one DisconnectParticipant per
token that may still be connected (ListStageSessions names the stage's live session). Participants whose tokens
stagepilot did not issue are left to the convergence pass (it disconnects join-banned participants it
finds connected) or to ``ban add --sweep``."""

from __future__ import annotations

from stagepilot.adapters.table import PUBLISH, Ban
from stagepilot.automations.moderation import disconnect_participant
from stagepilot.decisions.moderation import Rule, disconnect_reason
from stagepilot.errors import RetryLater
from stagepilot.pipeline import Outcome, Services, StageGate, stage_gate
from stagepilot.policy import PolicyInvalid
from stagepilot.routing import MODERATION


def disconnect_issued(services: Services, ban: Ban) -> list[Outcome]:
    """Disconnect the participants of every token issued to the banned user that may still be connected
    (on the ban's stage only, for a stage ban; under a publish ban, only tokens that could publish). Paused
    stages are left alone; a stage whose moderation is in ``dryRun`` records would-disconnects."""
    outcomes: list[Outcome] = []
    now = services.clock()
    for record in services.tokens.of_user(ban.user_id, stage_arn=ban.stage_arn):
        details = {"stage_arn": record.stage_arn, "participant_id": record.participant_id}
        if ban.scope == PUBLISH and not record.may_publish:
            continue  # a SUBSCRIBE-only token: the user may still watch
        try:
            gate = stage_gate(services, record.stage_arn, needs_policy=False)  # the one stage gate (pipeline.py)
        except PolicyInvalid:
            gate = StageGate(None)  # a ban holds whatever the stage's stored policy says
        if gate.closed is not None:
            outcomes.append(Outcome(MODERATION, "skip", gate.closed, details=details))
            continue
        moderation = gate.policy.moderation if gate.policy is not None else None
        try:
            outcome = disconnect_participant(
                services,
                stage_arn=record.stage_arn,
                session_id=None,
                participant_id=record.participant_id,
                user_id=ban.user_id,
                rule=Rule.STAGE_BAN if ban.stage_arn else Rule.GLOBAL_BAN,
                reason=disconnect_reason(moderation, ban_reason=ban.reason),
                dry_run=moderation.dry_run if moderation is not None else False,
                event_id=f"ban-records:{ban.user_id}",
                time=now,
                why=f"user {ban.user_id} was banned (token issued {record.issued_at:%Y-%m-%d %H:%M:%SZ})",
            )
        except RetryLater as exc:
            outcome = Outcome(MODERATION, "failed", f"not disconnected yet ({exc}); run the command again to finish")
        outcomes.append(
            Outcome(outcome.automation, outcome.action, outcome.reason, outcome.acted, {**outcome.details, **details})
        )
    return outcomes
