"""Stage settings: the stage's individual participant recording configuration kept as the policy says.

``stage.participantRecording`` (docs/policy.md) is what IVS's UpdateStage takes as
``autoParticipantRecordingConfiguration``. Members the policy leaves out mean IVS's defaults
(``policy.RECORDING_DEFAULTS``), so the whole configuration is always sent: IVS keeps members an update
leaves out, which would let a change made behind stagepilot's back survive.

IVS documents that these settings "cannot be updated while recording is active" (UpdateStage), and does
not say which error it answers then. So stagepilot never decides from the error: it asks IVS who is
being recorded (``ListParticipants`` ``filterByRecordingState``) before it applies the settings, and
again after a refusal. While someone is recorded the drift is **pending**: recorded in the table
(``adapters/settings_records.py``), shown by ``status``, ``reconcile`` and ``policy put``, and applied by
the first pass that finds nobody recorded, on a live stage between recordings as on an idle stage. A
refusal with nobody recorded is IVS refusing the settings themselves (a storage configuration that does
not exist): recorded as **refused**, reported, and not tried again until the policy changes.

Which stages a pass asks IVS about (``select_stages``), within ``SETTINGS_CHECKS_PER_PASS`` stages:
first those whose wanted settings changed since their record (a policy put, a new default) or that have
no record yet, then those with pending drift, then ``ROTATION_CHECKS_PER_PASS`` (or whatever is left)
of the others, least recently checked first, so a change made behind stagepilot's back (the console) is
found within ceil(stages / checks) passes. A pass therefore costs one ``Query`` of the records and at
most ``SETTINGS_CHECKS_PER_PASS`` stages' reads, never a ``GetStage`` per stage (docs/performance.md §5).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from stagepilot.adapters.ivs import IvsConflict, IvsRejected, StageInfo
from stagepilot.adapters.settings_records import (
    IN_SYNC,
    PENDING,
    REFUSED,
    SettingsRecord,
    SettingsRecords,
    wanted_hash,
)
from stagepilot.convergence import PENDING as PENDING_OUTCOME
from stagepilot.failures import Meaning, Path, describe, handling
from stagepilot.pipeline import Outcome, Services, stage_gate
from stagepilot.policy import PolicyInvalid

if TYPE_CHECKING:
    from stagepilot.convergence import ReadBudget

logger = logging.getLogger(__name__)

STAGE_SETTINGS: Final = "stage"
APPLIED: Final = "recording-settings-applied"
REJECTED: Final = "rejected"
SETTINGS_CHECKS_PER_PASS: Final = 10
ROTATION_CHECKS_PER_PASS: Final = 2
ROTATION_MIN_AGE_SECONDS: Final = (
    900  # the rotation looks at a stage again 15 minutes after its last check at the soonest
)
# recordingReconnectWindowSeconds' maximum [model]: a participant who left is recorded at most this long
MAX_RECONNECT_WINDOW_SECONDS: Final = 300
# Why a stage is checked this pass (also the heal's reason: what was observed)
CHANGED: Final = "policy-changed"  # no record for these wanted settings: a policy put, a new default
STILL_PENDING: Final = "pending"
ROTATION: Final = "rotation"


def recording_drift(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    """The members of ``wanted`` whose value differs in ``current`` (lists compared as sets of values)."""
    return sorted(key for key, value in wanted.items() if _normal(current.get(key)) != _normal(value))


def _normal(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _normal(item) for key, item in value.items()}
    if isinstance(value, list):
        return sorted(map(str, value))
    return value


@dataclass(frozen=True)
class Wanted:
    """A stage whose effective policy sets its recording settings."""

    stage: StageInfo
    configuration: Mapping[str, Any]
    hash: str
    policy_version: int


@dataclass(frozen=True)
class Check:
    wanted: Wanted
    record: SettingsRecord | None
    why: str  # CHANGED, STILL_PENDING or ROTATION


@dataclass
class SettingsReport:
    """What one pass did with the stages' recording settings."""

    outcomes: list[tuple[str, Outcome]]
    errors: list[tuple[str, str]]
    deferred: list[str]


def select_stages(
    wanted: Sequence[Wanted],
    records: Mapping[str, SettingsRecord],
    *,
    now: datetime,
    checks: int = SETTINGS_CHECKS_PER_PASS,
    rotation: int = ROTATION_CHECKS_PER_PASS,
) -> list[Check]:
    """The stages whose settings this pass asks IVS about, in order (see the module docstring)."""
    every = [classify(w, records.get(w.stage.arn)) for w in wanted]
    urgent = [c for c in every if c.why == CHANGED] + [c for c in every if c.why == STILL_PENDING]
    due = now.timestamp() - ROTATION_MIN_AGE_SECONDS
    others = sorted(
        (c for c in every if c.why == ROTATION and _checked(c.record) <= due), key=lambda c: _checked(c.record)
    )
    urgent = urgent[: max(checks - min(rotation, len(others)), 0)]
    return urgent + others[: checks - len(urgent)]


def classify(wanted: Wanted, record: SettingsRecord | None, *, retry_refused: bool = False) -> Check:
    """Why the stage would be checked: its wanted settings are new to its record, its drift is pending, or
    only the rotation's turn."""
    if record is None or record.wanted_hash != wanted.hash or (retry_refused and record.state == REFUSED):
        return Check(wanted, record, CHANGED)
    return Check(wanted, record, STILL_PENDING if record.pending else ROTATION)


class StageSettingsAutomation:
    """Run once per pass over every stage (live or idle), not per live stage: see ``converge_fleet``."""

    name = STAGE_SETTINGS

    def converge_fleet(
        self,
        stages: Sequence[StageInfo],
        services: Services,
        *,
        budget: ReadBudget,
        only_stage: str | None = None,
    ) -> SettingsReport:
        """Keep the recording settings of ``stages`` as their policies say, within this pass's checks.
        ``only_stage``: that stage is checked whatever its record says (an operator asked)."""
        report = SettingsReport([], [], [])
        records = services.settings_records
        wanted = self._wanted(stages, services, report)
        if only_stage is not None:  # an operator asked: even settings IVS refused before are tried again
            chosen = [
                classify(w, records.get(w.stage.arn), retry_refused=True) for w in wanted if w.stage.arn == only_stage
            ]
        else:
            kept = records.all()
            for gone in sorted(set(kept) - {w.stage.arn for w in wanted}):
                # no settings wanted any more (the section removed, the stage paused or deleted): a pending
                # record would go on saying they are
                records.forget(gone)
            chosen = select_stages(wanted, kept, now=services.clock())
        for check in chosen:
            arn = check.wanted.stage.arn
            try:
                outcome = self._check(check, services, records, budget)
            except IvsRejected as exc:
                if exc.not_found:
                    continue  # deleted since the listing
                report.errors.append((arn, f"{self.name}: {describe(exc)}"))
                continue
            except Exception as exc:  # one stage's trouble never stops the pass for the others
                if handling(exc, Path.PASS).meaning is Meaning.DEFER:
                    report.deferred.append(arn)
                    continue
                report.errors.append((arn, f"{self.name}: {describe(exc)}"))
                logger.warning("stage settings left to the next pass", extra={"stage_arn": arn, "error": str(exc)})
                continue
            if outcome is not None:
                report.outcomes.append((arn, outcome))
        return report

    def _wanted(self, stages: Sequence[StageInfo], services: Services, report: SettingsReport) -> list[Wanted]:
        """The stages whose effective policy sets ``stage.participantRecording`` (paused ones left alone),
        from one snapshot of the policies and pause switches (a Query each per 1 MB), or, for one stage
        (an operator's ``reconcile STAGE_ARN``), from the policy cache."""
        snapshot = services.policies.full_snapshot() if len(stages) > 1 else None
        if snapshot is not None and not any(_has_recording(p) for p in snapshot.policies.values()):
            return []
        found = []
        for stage in stages:
            try:
                lookup = snapshot.lookup(stage.arn) if snapshot is not None else None
                gate = stage_gate(services, stage.arn, needs_policy=True, found=lookup)
            except PolicyInvalid:
                continue  # reported by the pass for live stages, and by `policy list`
            settings = gate.policy.stage if gate.closed is None and gate.policy is not None else None  # paused: none
            configuration = settings.wanted_recording() if settings is not None else None
            if configuration is None or gate.effective is None:
                continue
            found.append(Wanted(stage, configuration, wanted_hash(configuration), gate.effective.version))
        return found

    def _check(self, check: Check, services: Services, records: SettingsRecords, budget: ReadBudget) -> Outcome | None:
        wanted, record = check.wanted, check.record
        arn, session_id = wanted.stage.arn, wanted.stage.active_session_id

        def keep(state: str, **kwargs: Any) -> SettingsRecord:
            return records.write(
                arn, state, wanted_hash=wanted.hash, previous=record, policy_version=wanted.policy_version, **kwargs
            )

        looked = None  # the session whose recorded participants were listed just now
        if check.why == STILL_PENDING and record is not None and session_id is not None:
            budget.take()
            recorded = services.ivs.recorded_participants(arn, session_id)
            if recorded:  # still recorded: no GetStage, no UpdateStage
                kept = keep(PENDING, fields=record.fields, reason=_pending_reason(recorded), recorded=recorded)
                return self._pending(kept, session_id)
            looked = session_id
        stage = services.ivs.get_stage(arn)
        if stage is None:
            records.forget(arn)
            return None
        session_id = stage.get("activeSessionId") or None
        current = dict(stage.get("autoParticipantRecordingConfiguration") or {})
        differing = recording_drift(current, wanted.configuration)
        if not differing:
            keep(IN_SYNC)
            return None
        if (
            record is not None
            and record.state == REFUSED
            and check.why == ROTATION
            and differing == list(record.fields)
        ):
            keep(REFUSED, fields=differing, reason=record.reason)  # the same refusal: not tried again
            return None
        if session_id is not None and session_id != looked:
            budget.take()
            recorded = services.ivs.recorded_participants(arn, session_id)
            if recorded:
                kept = keep(PENDING, fields=differing, reason=_pending_reason(recorded), recorded=recorded)
                return self._pending(kept, session_id)
        try:
            services.ivs.update_stage_recording(arn, wanted.configuration)
        except (IvsRejected, IvsConflict) as exc:
            if isinstance(exc, IvsRejected) and exc.not_found:
                raise
            # IVS's answer while recording is undocumented: ask who is recorded instead of reading the
            # error, in every session whose participants may still be recorded (the active one, and those
            # that ended within the longest reconnect window), in any state a recording holds the stage.
            ended_after = services.clock() - timedelta(seconds=MAX_RECONNECT_WINDOW_SECONDS + 60)
            recorded = []
            for recent in services.ivs.recent_session_ids(arn, ended_after=ended_after):
                budget.take()
                recorded += services.ivs.recording_participants(arn, recent)
            if recorded:
                kept = keep(PENDING, fields=differing, reason=_pending_reason(recorded), recorded=recorded)
                return self._pending(kept, session_id)
            kept = keep(REFUSED, fields=differing, reason=f"IVS refused them: {exc}")
            services.metrics.count("StageSettingsRefused")
            return Outcome(
                self.name,
                REJECTED,
                f"the stage's recording settings differ from the policy in {', '.join(differing)}; "
                f"IVS refused them with nobody recorded ({exc}): fix the policy (not tried again until it changes)",
                details={"session_id": session_id, "fields": differing, "since": _iso(kept.since)},
            )
        keep(IN_SYNC)
        services.metrics.count("StageSettingsApplied")
        found = f"the stage's recording settings differ from the policy in {', '.join(differing)}"
        return Outcome(
            self.name,
            APPLIED,
            found,  # "healed" or "would" says what was done (a dry run applies nothing)
            acted=True,
            details={"session_id": session_id, "fields": differing, "healReason": CHANGED, "checked": check.why},
        )

    def _pending(self, record: SettingsRecord, session_id: str | None) -> Outcome:
        return Outcome(
            self.name,
            PENDING_OUTCOME,
            f"the stage's recording settings differ from the policy in {', '.join(record.fields)}; "
            f"pending since {_iso(record.since)}: {record.reason}",
            details={
                "session_id": session_id,
                "fields": list(record.fields),
                "since": _iso(record.since),
                "recorded": list(record.recorded),
            },
        )


def _checked(record: SettingsRecord | None) -> float:
    return record.checked_at.timestamp() if record is not None and record.checked_at is not None else 0.0


def _pending_reason(recorded: Sequence[str]) -> str:
    return (
        f"IVS is recording {len(recorded)} participant(s) ({', '.join(sorted(recorded)[:3])}"
        f"{', ...' if len(recorded) > 3 else ''}) and takes no new settings while recording is active; "
        "applied by the first convergence pass that finds nobody recorded"
    )


def _has_recording(item: Mapping[str, Any]) -> bool:
    """Whether a stored policy item may set recording settings (cheap: no parsing)."""
    document = item.get("document")
    return "participantRecording" in (document if isinstance(document, str) else str(document))


def _iso(value: datetime | None) -> str | None:
    from stagepilot.adapters.table import iso

    return iso(value) if value is not None else None
