"""The token function's container: its settings, clients and issuer, built once (first request).

The signing key in use is the table's active key (``door/keys.py``), read again every policy-cache
lifetime, so a ``keys rotate`` reaches every container long before the key before it is deleted (rotate
waits at least one token lifetime, a minute or more).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from stagepilot import budget
from stagepilot.adapters.audit import MetricSink
from stagepilot.adapters.ivs import FUNCTION_CLIENT_CONFIG, IvsStage, Pacer
from stagepilot.adapters.table import PolicyStore, Table
from stagepilot.config import Settings
from stagepilot.door.issuer import TokenIssuer
from stagepilot.door.keys import KEY_PARTITION, KEY_SORT
from stagepilot.door.signing import (
    CREATE_MODE_CONCURRENCY,
    CREATE_TOKENS_PER_SECOND,
    CreatedTokens,
    KeyPairTokens,
    KmsSigner,
    StageEndpoints,
)
from stagepilot.errors import ConfigurationError
from stagepilot.pipeline import EffectivePolicies

ENV_TOKEN_MODE: Final = "STAGEPILOT_TOKEN_MODE"  # "signed" (default) or "create"
TOKEN_MODES: Final = ("signed", "create")
# The door's IVS calls outside tokenMode create: GetStage once per stage per container and day, at most
# budget.DOOR_GET_STAGE_PER_WINDOW in any window per container (budget.DOOR). Any other: this rate.
GET_STAGE_RATE: Final = 1.0


class ActiveKeySigner:
    """Signs with the table's active key, read again every ``ttl_seconds``."""

    def __init__(
        self, table: Table, kms: Any, *, ttl_seconds: float, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._table = table
        self._kms = kms
        self._ttl = ttl_seconds
        self._monotonic = monotonic
        self._signer: KmsSigner | None = None
        self._read_at = float("-inf")
        self._lock = threading.Lock()

    def current(self) -> KmsSigner:
        with self._lock:
            if self._signer is None or self._monotonic() - self._read_at >= self._ttl:
                item = self._table.get(KEY_PARTITION, KEY_SORT) or {}
                active = item.get("active")
                if not isinstance(active, Mapping):
                    raise ConfigurationError("the door has no signing key yet: run stagepilot keys rotate")
                self._signer = KmsSigner(
                    self._kms, key_id=str(active["kmsKeyId"]), public_key_arn=str(active["publicKeyArn"])
                )
                self._read_at = self._monotonic()
            return self._signer

    def sign(self, claims: Mapping[str, Any]) -> str:
        return self.current().sign(claims)


@dataclass
class Door:
    issuer: TokenIssuer
    settings: Settings


def build_door(
    metrics: MetricSink, *, environ: Mapping[str, str] | None = None, client: Callable[..., Any] | None = None
) -> Door:
    """The container's issuer: boto3 clients (imported here, not at module load), the active key, the cache.
    ``client(service, **kwargs)`` makes the clients (default ``adapters.clients.client``, boto3's without its
    scan of every service; the sandbox gives its own)."""
    if client is None:
        from stagepilot.adapters import clients

        client = clients.client
    env = os.environ if environ is None else environ
    settings = Settings.from_env(env)
    mode = env.get(ENV_TOKEN_MODE, "signed") or "signed"
    if mode not in TOKEN_MODES:
        raise ConfigurationError(f"{ENV_TOKEN_MODE} must be signed or create, got {mode!r}")
    table = Table(client("dynamodb"), settings.table_name)

    def clock() -> datetime:
        return datetime.now(UTC)

    rates = {"CreateParticipantToken": CREATE_TOKENS_PER_SECOND / CREATE_MODE_CONCURRENCY}
    ivs = IvsStage(
        client("ivs-realtime", config=FUNCTION_CLIENT_CONFIG),
        pacer=Pacer(GET_STAGE_RATE, rates=rates, shares={"GetStage": (budget.DOOR_GET_STAGE_PER_WINDOW,)}),
    )
    maker: Any
    if mode == "create":
        maker = CreatedTokens(ivs)
    else:
        signer = ActiveKeySigner(table, client("kms"), ttl_seconds=settings.policy_cache_seconds)
        maker = KeyPairTokens(signer, StageEndpoints(ivs, clock=clock), clock=clock)
    policies = EffectivePolicies(PolicyStore(table), ttl_seconds=settings.policy_cache_seconds, clock=clock)
    return Door(TokenIssuer(table=table, policies=policies, maker=maker, metrics=metrics, clock=clock), settings)
