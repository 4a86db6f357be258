"""Automations: carry out a decision for one event through the adapters (IVS, table)."""

from typing import Any


def event_automations() -> list[Any]:
    """The three automations the stack deploys, one per queue (``stagepilot explain`` runs each)."""
    from stagepilot.automations.composition import CompositionAutomation
    from stagepilot.automations.moderation import ModerationAutomation
    from stagepilot.automations.replication import ReplicationAutomation

    return [CompositionAutomation(), ReplicationAutomation(), ModerationAutomation()]


def convergence_order() -> tuple[Any, ...]:
    """What the convergence pass runs on each live stage, in order: moderation first (nobody banned is
    composed or replicated), then composition, replication and the stage's own settings."""
    from stagepilot.automations.composition import CompositionAutomation
    from stagepilot.automations.moderation import ModerationAutomation
    from stagepilot.automations.replication import ReplicationAutomation
    from stagepilot.automations.stage_settings import StageSettingsAutomation

    return (ModerationAutomation(), CompositionAutomation(), ReplicationAutomation(), StageSettingsAutomation())
