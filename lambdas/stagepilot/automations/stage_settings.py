"""Stage settings: the stage's individual participant recording configuration kept as the policy says.

``stage.participantRecording`` (CONTRACT §1) is what IVS's UpdateStage takes as
``autoParticipantRecordingConfiguration``. It is applied when the policy is put (``stagepilot policy
put``) and, whenever the convergence pass finds the stage's settings (GetStage) differ from it, applied
again and audited as healed with the members that differed. Members the policy leaves out mean IVS's
defaults (``policy.RECORDING_DEFAULTS``), so the whole configuration is always sent: IVS keeps members an
update leaves out, which would let a change made behind stagepilot's back survive.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from stagepilot.pipeline import Outcome, Services

if TYPE_CHECKING:
    from stagepilot.convergence import LiveStage

STAGE_SETTINGS = "stage"


def recording_drift(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    """The members of ``wanted`` whose value differs in ``current`` (lists compared as sets of values)."""
    return sorted(key for key, value in wanted.items() if _normal(current.get(key)) != _normal(value))


def _normal(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _normal(item) for key, item in value.items()}
    if isinstance(value, list):
        return sorted(map(str, value))
    return value


class StageSettingsAutomation:
    name = STAGE_SETTINGS

    def converge(self, stage: LiveStage, services: Services) -> list[Outcome]:
        settings = stage.policy.stage if stage.policy is not None else None
        wanted = settings.wanted_recording() if settings is not None else None
        if wanted is None:
            return []
        current = services.ivs.stage_recording(stage.arn)
        if current is None:
            return []  # the stage was deleted meanwhile
        differing = recording_drift(current, wanted)
        if not differing:
            return []
        details = {"session_id": stage.session_id, "fields": differing}
        found = f"the stage's recording settings differ from the policy in {', '.join(differing)}"
        services.ivs.update_stage_recording(stage.arn, wanted)
        services.metrics.count("StageSettingsApplied")
        return [Outcome(self.name, "recording-settings-applied", f"{found}; applied", acted=True, details=details)]
