"""The stand-in's participant tokens and public keys: what IVS does with a token when a client joins.

- ``ImportPublicKey`` / ``GetPublicKey`` / ``ListPublicKeys`` / ``DeletePublicKey``: at most 3 keys per
  account and region [quotas]; a fourth import is ``ServiceQuotaExceededException``. IVS verifies key-pair
  tokens with ES384, so a key that is not an EC P-384 public key is refused (``ValidationException``).
  Importing the same key material twice is a ``ConflictException`` (UNDOCUMENTED: the harder answer).
- ``CreateParticipantToken``: 50 calls per second (over that: ``ThrottlingException``); the token is opaque.
- ``join(token, publish)``: a client joins with a token, as IVS checks it: a key-pair token's signature by
  an imported public key named by its ``kid`` (a deleted key's tokens are refused: "invalidates future
  participant tokens"), ``exp`` at join only (a participant already connected stays), ``resource`` the
  stage, ``jti`` the participant id, which DisconnectParticipant may have revoked. A publish with a token
  lacking PUBLISH is refused: IVS logs a ``PUBLISH_ERROR`` with ``errorCode`` ``INSUFFICIENT_CAPABILITIES``
  and sends ``Participant Publish Error`` (UNDOCUMENTED whether it does; the stand-in does: the harder case).
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from stagepilot.local.ivs_model import IvsApiError, api_time

if TYPE_CHECKING:
    from stagepilot.local.ivs_model import Stage

MAX_PUBLIC_KEYS: Final = 3  # "Public keys": 3 per account and region [quotas]
CREATE_TOKEN_RATE: Final = 50.0  # CreateParticipantToken: 50 TPS [quotas]
DEFAULT_TOKEN_MINUTES: Final = 720  # CreateParticipantToken.duration default (botocore model)


@dataclass
class PublicKey:
    arn: str
    name: str
    material: str
    fingerprint: str
    tags: dict[str, str] = field(default_factory=dict)

    def view(self) -> dict[str, Any]:
        return {
            "arn": self.arn,
            "name": self.name,
            "publicKeyMaterial": self.material,
            "fingerprint": self.fingerprint,
            "tags": dict(self.tags),
        }


@dataclass(frozen=True)
class TokenGrant:
    """What a token lets its holder do, once IVS has read it."""

    stage_arn: str
    participant_id: str
    user_id: str
    attributes: dict[str, str]
    capabilities: frozenset[str]
    expires_at: datetime


@dataclass(frozen=True)
class JoinResult:
    """What happened when a client joined: ``refused`` says why IVS refused the token (None: joined)."""

    refused: str | None
    participant_id: str | None = None
    stage_arn: str | None = None
    session_id: str | None = None
    published: bool = False
    publish_error: str | None = None  # INSUFFICIENT_CAPABILITIES when the token does not allow PUBLISH


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class KeyPairTokensWorld:
    """Mixed into the stand-in (``IvsStandIn``): public keys, created tokens and the check at join."""

    account: str
    region: str

    def _init_keys(self) -> None:
        self._public_keys: dict[str, PublicKey] = {}
        self._created_tokens: dict[str, TokenGrant] = {}
        self._key_seq = 0

    def key_operations(self) -> dict[str, Any]:
        return {
            "ImportPublicKey": self._op_import_public_key,
            "GetPublicKey": self._op_get_public_key,
            "ListPublicKeys": self._op_list_public_keys,
            "DeletePublicKey": self._op_delete_public_key,
            "CreateParticipantToken": self._op_create_participant_token,
        }

    # ------------------------------------------------------------------------------------ public keys

    def _op_import_public_key(self, params: dict[str, Any], now: datetime) -> dict[str, Any]:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        material = str(params["publicKeyMaterial"])
        try:
            key = serialization.load_pem_public_key(material.encode())
        except ValueError as exc:
            raise IvsApiError("ValidationException", "publicKeyMaterial: not a PEM public key") from exc
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp384r1":
            raise IvsApiError("ValidationException", "publicKeyMaterial: must be an ECDSA P-384 public key (ES384)")
        der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        fingerprint = hashlib.sha256(der).hexdigest()
        if any(k.fingerprint == fingerprint for k in self._public_keys.values()):
            raise IvsApiError("ConflictException", "a public key with this material is already imported")
        if len(self._public_keys) >= MAX_PUBLIC_KEYS:
            raise IvsApiError(
                "ServiceQuotaExceededException", f"at most {MAX_PUBLIC_KEYS} public keys per account and region"
            )
        self._key_seq += 1
        arn = f"arn:aws:ivs:{self.region}:{self.account}:public-key/Key{self._key_seq:08d}"
        self._public_keys[arn] = PublicKey(
            arn, str(params.get("name", "")), material, fingerprint, dict(params.get("tags", {}))
        )
        return {"publicKey": self._public_keys[arn].view()}

    def _op_get_public_key(self, params: dict[str, Any], now: datetime) -> dict[str, Any]:
        key = self._public_keys.get(params["arn"])
        if key is None:
            raise IvsApiError("ResourceNotFoundException", f"public key {params['arn']} not found")
        return {"publicKey": key.view()}

    def _op_list_public_keys(self, params: dict[str, Any], now: datetime) -> dict[str, Any]:
        return {
            "publicKeys": [{"arn": k.arn, "name": k.name, "tags": dict(k.tags)} for k in self._public_keys.values()]
        }

    def _op_delete_public_key(self, params: dict[str, Any], now: datetime) -> dict[str, Any]:
        if self._public_keys.pop(params["arn"], None) is None:
            raise IvsApiError("ResourceNotFoundException", f"public key {params['arn']} not found")
        return {}

    # ------------------------------------------------------------------------------------ tokens

    def _op_create_participant_token(self, params: dict[str, Any], now: datetime) -> dict[str, Any]:
        stage_arn = params["stageArn"]
        self._require_stage(stage_arn)  # type: ignore[attr-defined]
        participant_id = self._random_id(12)  # type: ignore[attr-defined]
        minutes = int(params.get("duration", DEFAULT_TOKEN_MINUTES))
        capabilities = list(params.get("capabilities") or ["PUBLISH", "SUBSCRIBE"])
        grant = TokenGrant(
            stage_arn=stage_arn,
            participant_id=participant_id,
            user_id=str(params.get("userId", "")),
            attributes=dict(params.get("attributes", {})),
            capabilities=frozenset(capabilities),
            expires_at=now + timedelta(minutes=minutes),
        )
        token = f"ivs-created-{participant_id}-{self._random_id(24)}"  # type: ignore[attr-defined]
        self._created_tokens[token] = grant
        return {
            "participantToken": {
                "participantId": participant_id,
                "token": token,
                "userId": grant.user_id,
                "attributes": grant.attributes,
                "duration": minutes,
                "capabilities": capabilities,
                "expirationTime": api_time(grant.expires_at),
            }
        }

    def read_token(self, token: str, now: datetime) -> TokenGrant | str:
        """The grant in ``token`` as IVS reads it at join, or why it is refused."""
        created = self._created_tokens.get(token)
        if created is not None:
            return created if now < created.expires_at else "expired"
        parts = token.split(".")
        if len(parts) != 3:
            return "malformed"
        try:
            header = json.loads(_b64decode(parts[0]))
            claims = json.loads(_b64decode(parts[1]))
            signature = _b64decode(parts[2])
        except ValueError:
            return "malformed"
        if not isinstance(header, dict) or not isinstance(claims, dict) or header.get("alg") != "ES384":
            return "malformed"
        key = self._public_keys.get(str(header.get("kid")))
        if key is None:
            return "unknown-key"  # never imported, or deleted (DeletePublicKey invalidates its tokens)
        if not _verifies(key.material, f"{parts[0]}.{parts[1]}".encode(), signature):
            return "bad-signature"
        try:
            expires = datetime.fromtimestamp(int(claims["exp"]), UTC)
            capabilities = claims.get("capabilities") or {}
            grant = TokenGrant(
                stage_arn=str(claims["resource"]),
                participant_id=str(claims["jti"]),
                user_id=str(claims.get("user_id", "")),
                attributes={str(k): str(v) for k, v in (claims.get("attributes") or {}).items()},
                capabilities=frozenset(
                    name
                    for name, flag in (("PUBLISH", "allow_publish"), ("SUBSCRIBE", "allow_subscribe"))
                    if capabilities.get(flag) is True
                ),
                expires_at=expires,
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return "malformed"
        if grant.stage_arn.rsplit("/", 1)[-1] != claims.get("topic"):
            return "malformed"
        return grant if now < grant.expires_at else "expired"

    def join_token(
        self, token: str, *, publish: bool, now: datetime
    ) -> tuple[JoinResult, Stage | None, TokenGrant | None]:
        """Check a token at join; the caller (holding the lock) connects the participant."""
        grant = self.read_token(token, now)
        if isinstance(grant, str):
            return JoinResult(refused=grant), None, None
        stage = self._ensure_stage(grant.stage_arn, now)  # type: ignore[attr-defined]
        if stage is None:
            return JoinResult(refused="no-such-stage", stage_arn=grant.stage_arn), None, None
        if grant.participant_id in stage.revoked:
            return (
                JoinResult(refused="revoked", participant_id=grant.participant_id, stage_arn=grant.stage_arn),
                None,
                None,
            )
        return JoinResult(refused=None, participant_id=grant.participant_id, stage_arn=grant.stage_arn), stage, grant


def _verifies(pem: str, message: bytes, signature: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    if len(signature) != 96:
        return False
    key = serialization.load_pem_public_key(pem.encode())
    assert isinstance(key, ec.EllipticCurvePublicKey)
    der = encode_dss_signature(int.from_bytes(signature[:48], "big"), int.from_bytes(signature[48:], "big"))
    try:
        key.verify(der, message, ec.ECDSA(hashes.SHA384()))
    except InvalidSignature:
        return False
    return True
