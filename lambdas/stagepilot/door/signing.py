"""Key-pair participant tokens (docs/door.md), signed by a KMS key whose public key is imported into IVS.

The token is the ES384 JWT IVS documents for key-pair tokens: header ``{alg: ES384, typ: JWT, kid: <IVS
public-key ARN>}``, claims ``exp, iat, jti, resource, topic, events_url, whip_url, capabilities
{allow_publish, allow_subscribe}, user_id, attributes, version "1.0"``; ``jti`` becomes the participant
id. KMS (``ECC_NIST_P384``, ``ECDSA_SHA_384``) signs the SHA-384 digest of ``header.payload`` and answers a
DER ``ECDSA-Sig-Value``; a JWS carries ``r || s`` (48 bytes each), read from the DER by ``asn1crypto``
(pure Python: the Lambda zip takes no compiled extension).

The stage's ``events_url``/``whip_url`` come from ``GetStage`` and are kept per container
(``StageEndpoints``; IVS says they may be cached for up to 14 days), so issuing makes no IVS call per token.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import string
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from stagepilot.errors import ConfigurationError, RetryLater

ALGORITHM: Final = "ES384"
KMS_SIGNING_ALGORITHM: Final = "ECDSA_SHA_384"
KMS_KEY_SPEC: Final = "ECC_NIST_P384"
P384_BYTES: Final = 48
KMS_RAW_LIMIT: Final = 4096  # KMS Sign: a RAW message of at most 4096 bytes
ENDPOINTS_TTL: Final = timedelta(days=1)  # IVS allows up to 14 days; a day bounds a stale URL's reach
# tokenMode "create": CreateParticipantToken calls per second, under IVS's 50 TPS per account and region (the
# rest is the application's own); the token function runs at most CREATE_MODE_CONCURRENCY containers.
CREATE_TOKENS_PER_SECOND: Final = 40.0
CREATE_MODE_CONCURRENCY: Final = 1
PARTICIPANT_ID_LENGTH: Final = 12  # IVS's own participant ids are 12 letters and digits
_ID_ALPHABET: Final = string.ascii_letters + string.digits


@dataclass(frozen=True)
class IssuedToken:
    """A token made for a grant: what the door answers (``participant_id`` is the token's ``jti``)."""

    token: str
    participant_id: str
    expiration_time: datetime
    capabilities: tuple[str, ...]


class StageReader(Protocol):
    def get_stage(self, stage_arn: str) -> dict[str, Any] | None: ...


class StageGone(ConfigurationError):
    """GetStage does not know the stage: no token can join it."""


class StageEndpoints:
    """Each stage's ``events``/``whip`` endpoints from GetStage, kept ``ENDPOINTS_TTL`` per container."""

    def __init__(self, ivs: StageReader, *, clock: Callable[[], datetime], ttl: timedelta = ENDPOINTS_TTL) -> None:
        self._ivs = ivs
        self._clock = clock
        self._ttl = ttl
        self._kept: dict[str, tuple[datetime, str, str]] = {}
        self._lock = threading.Lock()

    def of(self, stage_arn: str) -> tuple[str, str]:
        """(events_url, whip_url) of the stage; raises ``StageGone`` when IVS does not know it."""
        now = self._clock()
        with self._lock:
            kept = self._kept.get(stage_arn)
        if kept is not None and now - kept[0] < self._ttl:
            return kept[1], kept[2]
        stage = self._ivs.get_stage(stage_arn)
        if stage is None:
            raise StageGone(f"IVS does not know the stage {stage_arn}")
        endpoints = stage.get("endpoints") or {}
        events, whip = str(endpoints.get("events", "")), str(endpoints.get("whip", ""))
        with self._lock:
            self._kept[stage_arn] = (now, events, whip)
        return events, whip


def new_participant_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(PARTICIPANT_ID_LENGTH))


def token_claims(
    *,
    stage_arn: str,
    user_id: str,
    capabilities: tuple[str, ...],
    attributes: Mapping[str, str],
    issued_at: datetime,
    expires_at: datetime,
    participant_id: str,
    events_url: str,
    whip_url: str,
) -> dict[str, Any]:
    """The claims IVS documents for a key-pair participant token."""
    return {
        "exp": int(expires_at.timestamp()),
        "iat": int(issued_at.timestamp()),
        "jti": participant_id,
        "resource": stage_arn,
        "topic": stage_arn.rsplit("/", 1)[-1],
        "events_url": events_url,
        "whip_url": whip_url,
        "capabilities": {"allow_publish": "PUBLISH" in capabilities, "allow_subscribe": "SUBSCRIBE" in capabilities},
        "user_id": user_id,
        "attributes": dict(attributes),
        "version": "1.0",
    }


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _json_part(value: Mapping[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":"), sort_keys=True).encode())


def jws_signature_from_der(der: bytes) -> bytes:
    """KMS's DER ``ECDSA-Sig-Value`` as JWS wants it: ``r || s``, each 48 bytes big-endian (RFC 7518 §3.4)."""
    from asn1crypto.algos import DSASignature  # only the token function needs it: off every other cold start

    signature = DSASignature.load(der)
    r, s = signature["r"].native, signature["s"].native
    return r.to_bytes(P384_BYTES, "big") + s.to_bytes(P384_BYTES, "big")


class KmsSigner:
    """Signs JWTs with a KMS asymmetric key (``ECC_NIST_P384``); ``kid`` is the IVS public-key ARN of that key's
    public key. One KMS ``Sign`` per token."""

    def __init__(self, kms: Any, *, key_id: str, public_key_arn: str) -> None:
        self._kms = kms
        self.key_id = key_id
        self.public_key_arn = public_key_arn

    def sign(self, claims: Mapping[str, Any]) -> str:
        header = {"alg": ALGORITHM, "typ": "JWT", "kid": self.public_key_arn}
        signing_input = f"{_json_part(header)}.{_json_part(claims)}"
        message = signing_input.encode("ascii")
        # KMS takes at most 4096 bytes of RAW message (it hashes them with SHA-384); a longer token (large
        # attributes) is signed by its digest.
        kind = "RAW" if len(message) <= KMS_RAW_LIMIT else "DIGEST"
        if kind == "DIGEST":
            message = hashlib.sha384(message).digest()
        try:
            answer = self._kms.sign(
                KeyId=self.key_id, Message=message, MessageType=kind, SigningAlgorithm=KMS_SIGNING_ALGORITHM
            )
        except Exception as exc:  # botocore's ClientError/BotoCoreError, without importing botocore here
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
            if code in ("AccessDeniedException", "NotFoundException", "DisabledException", "KMSInvalidStateException"):
                raise ConfigurationError(f"KMS Sign: {code}") from exc
            raise RetryLater(f"KMS Sign: {code}") from exc
        return f"{signing_input}.{b64url(jws_signature_from_der(answer['Signature']))}"


class Signer(Protocol):
    def sign(self, claims: Mapping[str, Any]) -> str: ...


class KeyPairTokens:
    """Makes signed tokens: no IVS call per token (the endpoints are kept), one KMS Sign."""

    def __init__(self, signer: Signer, endpoints: StageEndpoints, *, clock: Callable[[], datetime]) -> None:
        self._signer = signer
        self._endpoints = endpoints
        self._clock = clock

    def make(
        self,
        *,
        stage_arn: str,
        user_id: str,
        capabilities: tuple[str, ...],
        attributes: Mapping[str, str],
        minutes: int,
    ) -> IssuedToken:
        events_url, whip_url = self._endpoints.of(stage_arn)
        now = self._clock()
        expires = now + timedelta(minutes=minutes)
        participant_id = new_participant_id()
        claims = token_claims(
            stage_arn=stage_arn,
            user_id=user_id,
            capabilities=capabilities,
            attributes=attributes,
            issued_at=now,
            expires_at=expires,
            participant_id=participant_id,
            events_url=events_url,
            whip_url=whip_url,
        )
        return IssuedToken(self._signer.sign(claims), participant_id, expires.replace(microsecond=0), capabilities)


class TokenCreator(Protocol):
    def create_participant_token(
        self, stage_arn: str, *, user_id: str, capabilities: list[str], attributes: Mapping[str, str], duration: int
    ) -> dict[str, Any]: ...


class CreatedTokens:
    """``tokenMode: "create"``: IVS's CreateParticipantToken makes the token (paced by the IVS adapter under
    IVS's 50 TPS)."""

    def __init__(self, ivs: TokenCreator) -> None:
        self._ivs = ivs

    def make(
        self,
        *,
        stage_arn: str,
        user_id: str,
        capabilities: tuple[str, ...],
        attributes: Mapping[str, str],
        minutes: int,
    ) -> IssuedToken:
        made = self._ivs.create_participant_token(
            stage_arn, user_id=user_id, capabilities=list(capabilities), attributes=attributes, duration=minutes
        )
        return IssuedToken(
            token=str(made["token"]),
            participant_id=str(made["participantId"]),
            expiration_time=made["expirationTime"],
            capabilities=tuple(made.get("capabilities") or capabilities),
        )
