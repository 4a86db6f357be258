"""What stagepilot knows of each stage's recording settings: in step with the policy, pending, or refused.

One item per stage whose policy sets ``stage.participantRecording``, all under one partition
(``SETTINGS_PARTITION``), so the convergence pass reads every stage's record with one ``Query`` and
chooses which stages to ask IVS about (``automations/stage_settings.py``), instead of a ``GetStage`` per
stage per pass. ``stagepilot status``, ``reconcile`` and ``policy put`` show a pending record.

- ``in-sync``: the stage's settings were found equal to (or set to) the policy's ``wantedHash``.
- ``pending``: they differ, and IVS cannot take them now because participants are being recorded
  ("cannot be updated while recording is active", UpdateStage); the pass applies them once nobody is.
- ``refused``: IVS refused them with nobody recorded (a storage configuration that does not exist...):
  not tried again until the policy changes (or the slow rotation looks again).

Written by the convergence pass (and the CLI commands that run it); never read on the event path.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from stagepilot.adapters.schema import PARTITION_KEY, SORT_KEY, STAGE_PREFIX
from stagepilot.adapters.table import Table, iso, parse_iso, utc_now

# Under STAGE_PREFIX, where the functions may write (dynamodb:LeadingKeys); never a stage ARN ("arn:...").
SETTINGS_PARTITION: Final = f"{STAGE_PREFIX}SETTINGS"
IN_SYNC: Final = "in-sync"
PENDING: Final = "pending"
REFUSED: Final = "refused"


def wanted_hash(wanted: Mapping[str, Any]) -> str:
    """A short fingerprint of the configuration a policy wants (changes when the policy's section does)."""
    text = json.dumps(wanted, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SettingsRecord:
    """One stage's recording-settings record."""

    stage_arn: str
    state: str  # IN_SYNC, PENDING or REFUSED
    wanted_hash: str
    checked_at: datetime | None
    since: datetime | None = None  # pending/refused: since when
    fields: tuple[str, ...] = ()  # the members that differ (pending/refused)
    reason: str = ""  # why pending or refused, in words
    recorded: tuple[str, ...] = field(default=())  # pending: the participants IVS was recording
    policy_version: int | None = None

    @property
    def pending(self) -> bool:
        return self.state == PENDING

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "fields": list(self.fields),
            "since": iso(self.since) if self.since else None,
            "checkedAt": iso(self.checked_at) if self.checked_at else None,
            "reason": self.reason,
            "recordedParticipants": list(self.recorded),
            "policyVersion": self.policy_version,
        }


class SettingsRecords:
    def __init__(self, table: Table, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._table = table
        self._clock = clock

    def all(self) -> dict[str, SettingsRecord]:
        """Every stage's record (one Query per 1 MB: some thousands of stages)."""
        return {item[SORT_KEY]: _record(item) for item in self._table.query(SETTINGS_PARTITION)}

    def get(self, stage_arn: str) -> SettingsRecord | None:
        item = self._table.get(SETTINGS_PARTITION, stage_arn, consistent=True)
        return _record(item) if item else None

    def write(
        self,
        stage_arn: str,
        state: str,
        *,
        wanted_hash: str,
        previous: SettingsRecord | None,
        fields: Sequence[str] = (),
        reason: str = "",
        recorded: Sequence[str] = (),
        policy_version: int | None = None,
    ) -> SettingsRecord:
        """Record what the pass found now. ``since`` is kept while the state and the wanted settings stay."""
        now = self._clock()
        same = previous is not None and previous.state == state and previous.wanted_hash == wanted_hash
        since = (previous.since if same and previous is not None else now) if state != IN_SYNC else None
        record = SettingsRecord(
            stage_arn=stage_arn,
            state=state,
            wanted_hash=wanted_hash,
            checked_at=now,
            since=since,
            fields=tuple(fields),
            reason=reason,
            recorded=tuple(recorded),
            policy_version=policy_version,
        )
        item: dict[str, Any] = {
            PARTITION_KEY: SETTINGS_PARTITION,
            SORT_KEY: stage_arn,
            "state": state,
            "wantedHash": wanted_hash,
            "checkedAt": iso(now),
            "fields": list(fields),
            "reason": reason,
            "recorded": list(recorded),
        }
        if since is not None:
            item["since"] = iso(since)
        if policy_version is not None:
            item["policyVersion"] = policy_version
        self._table.put(item)
        return record

    def forget(self, stage_arn: str) -> None:
        """The stage has no recording policy any more (or no longer exists): nothing to keep."""
        self._table.delete(SETTINGS_PARTITION, stage_arn)


def _record(item: Mapping[str, Any]) -> SettingsRecord:
    version = item.get("policyVersion")
    return SettingsRecord(
        stage_arn=str(item[SORT_KEY]),
        state=str(item.get("state", "")),
        wanted_hash=str(item.get("wantedHash", "")),
        checked_at=parse_iso(item.get("checkedAt")),
        since=parse_iso(item.get("since")),
        fields=tuple(str(f) for f in item.get("fields") or ()),
        reason=str(item.get("reason", "")),
        recorded=tuple(str(p) for p in item.get("recorded") or ()),
        policy_version=int(version) if version is not None else None,
    )
