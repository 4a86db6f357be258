"""The door's signing keys: a KMS key pair per key, its public key imported into IVS (at most 3 per account
and region). Operator-side (``stagepilot keys``) and set-up code, never on the per-token path.

Which key signs is one table item (``DOOR`` / ``SIGNING-KEY``): the active key and the previous one.

- ``rotate``: a new KMS key (``ECC_NIST_P384``), its public key imported, made active; the previous key
  stays imported so every token it signed still joins until it expires (no refused join). The key before
  that is deleted from IVS first, which is safe only once every token it signed has expired: the active
  key has signed for longer than the longest token lifetime the policies allow; else rotate refuses and
  says when it may run. Stagepilot keeps at most 2 keys imported, leaving IVS's third to the operator.
- ``lockout``: every public key stagepilot imported is deleted from IVS (IVS: DeletePublicKey
  "invalidates future participant tokens generated using the key pair's private key"), so every token not
  yet used is refused at join; then a fresh key is made active, so the door keeps issuing. The old KMS
  keys are scheduled for deletion: their tokens can never be revived by re-importing them.
"""

from __future__ import annotations

import base64
import contextlib
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from stagepilot.adapters.schema import PARTITION_KEY, SORT_KEY
from stagepilot.adapters.table import Table, iso, parse_iso, utc_now
from stagepilot.door.signing import KMS_KEY_SPEC, KmsSigner
from stagepilot.errors import ConflictError

KEY_PARTITION: Final = "DOOR"
KEY_SORT: Final = "SIGNING-KEY"
MANAGED_TAG: Final = "stagepilot:door"  # on every public key (and KMS key) stagepilot made for the door
KMS_DELETION_DAYS: Final = 7  # KMS's shortest waiting period


def public_key_pem(kms: Any, key_id: str) -> str:
    """The KMS key's public key (DER SubjectPublicKeyInfo from GetPublicKey) as the PEM IVS takes."""
    der = kms.get_public_key(KeyId=key_id)["PublicKey"]
    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode("ascii"), 64))
    return f"-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n"


def import_signing_key(ivs: Any, kms: Any, key_id: str, *, name: str) -> str:
    """Import the KMS key's public key into IVS (``ivs``: the IVS adapter); returns the public-key ARN."""
    key: dict[str, Any] = ivs.import_public_key(public_key_pem(kms, key_id), name=name, tags={MANAGED_TAG: key_id})
    return str(key["arn"])


@dataclass(frozen=True)
class SigningKey:
    kms_key_id: str
    public_key_arn: str
    since: datetime  # when it became the active key


@dataclass(frozen=True)
class KeyState:
    active: SigningKey | None
    previous: SigningKey | None


class SigningKeys:
    """The door's keys: the table's record of which signs, IVS's imported public keys, KMS's key pairs."""

    def __init__(self, table: Table, *, ivs: Any, kms: Any, name: str, clock: Callable[[], datetime] = utc_now) -> None:
        self._table = table
        self._ivs = ivs
        self._kms = kms
        self._name = name  # names the keys (the stack's name): stagepilot-<name>-<n>
        self._clock = clock

    def state(self) -> KeyState:
        item = self._table.get(KEY_PARTITION, KEY_SORT, consistent=True) or {}
        return KeyState(_key(item.get("active")), _key(item.get("previous")))

    def signer(self) -> KmsSigner | None:
        """The active key's signer; None before the first rotate."""
        active = self.state().active
        return (
            None
            if active is None
            else KmsSigner(self._kms, key_id=active.kms_key_id, public_key_arn=active.public_key_arn)
        )

    def imported(self) -> list[dict[str, Any]]:
        """Every public key imported in IVS, with ``managed``/``role`` for stagepilot's."""
        state = self.state()
        roles = {k.public_key_arn: role for role, k in (("active", state.active), ("previous", state.previous)) if k}
        keys = []
        for key in self._ivs.public_keys():
            tags = key.get("tags") or {}
            keys.append({**key, "managed": MANAGED_TAG in tags, "role": roles.get(key["arn"], "")})
        return keys

    def rotate(self, *, longest_token_minutes: int) -> KeyState:
        """Make a new key active; the active one becomes previous; the one before is deleted (its tokens have
        all expired). Raises ``ConflictError`` when that deletion is not yet safe."""
        state = self.state()
        now = self._clock()
        if state.previous is not None:
            assert state.active is not None
            safe_from = state.active.since + timedelta(minutes=longest_token_minutes)
            if now < safe_from:
                raise ConflictError(
                    f"the previous key may still sign tokens that join until {iso(safe_from)} (the longest "
                    f"token lifetime, {longest_token_minutes} min, after the last rotate): rotate again after "
                    "that, or use keys lockout to invalidate every unused token now"
                )
            self._retire(state.previous)
        fresh = self._new_key(now)
        after = KeyState(active=fresh, previous=state.active)
        self._write(after)
        return after

    def lockout(self) -> KeyState:
        """Delete every public key stagepilot imported (every unused token dies), then make a fresh key active."""
        state = self.state()
        for key in self._ivs.public_keys():
            if MANAGED_TAG in (key.get("tags") or {}):
                self._ivs.delete_public_key(key["arn"])
        for old in (state.active, state.previous):
            if old is not None:
                self._schedule_deletion(old.kms_key_id)
        after = KeyState(active=self._new_key(self._clock()), previous=None)
        self._write(after)
        return after

    def _new_key(self, now: datetime) -> SigningKey:
        created = self._kms.create_key(
            KeySpec=KMS_KEY_SPEC,
            KeyUsage="SIGN_VERIFY",
            Description=f"stagepilot door ({self._name}): signs participant tokens",
            Tags=[{"TagKey": MANAGED_TAG, "TagValue": self._name}],
        )
        key_id = str(created["KeyMetadata"]["KeyId"])
        name = f"stagepilot-{self._name}-{now:%Y%m%d%H%M%S}"[:128]
        return SigningKey(key_id, import_signing_key(self._ivs, self._kms, key_id, name=name), now)

    def _retire(self, key: SigningKey) -> None:
        if self._ivs.public_key(key.public_key_arn) is not None:
            self._ivs.delete_public_key(key.public_key_arn)
        self._schedule_deletion(key.kms_key_id)

    def _schedule_deletion(self, key_id: str) -> None:
        with contextlib.suppress(self._kms.exceptions.KMSInvalidStateException):  # already pending deletion
            self._kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=KMS_DELETION_DAYS)

    def _write(self, state: KeyState) -> None:
        self._table.put(
            {
                PARTITION_KEY: KEY_PARTITION,
                SORT_KEY: KEY_SORT,
                "active": _item(state.active),
                "previous": _item(state.previous),
            }
        )


def _item(key: SigningKey | None) -> dict[str, str] | None:
    if key is None:
        return None
    return {"kmsKeyId": key.kms_key_id, "publicKeyArn": key.public_key_arn, "since": iso(key.since)}


def _key(value: object) -> SigningKey | None:
    if not isinstance(value, dict):
        return None
    since = parse_iso(value.get("since"))
    if since is None:
        return None
    return SigningKey(str(value["kmsKeyId"]), str(value["publicKeyArn"]), since)
