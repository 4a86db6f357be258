"""The door in ``simulate`` (docs/simulate.md ``issue`` / ``join``): the deployed issuer's code, a KMS key in moto
and its public key imported into the IVS stand-in, made on the first ``issue`` of a run."""

from __future__ import annotations

from typing import Any

from stagepilot.door.decision import Refusal, TokenRequest
from stagepilot.door.keys import SigningKeys
from stagepilot.door.signing import IssuedToken
from stagepilot.local.ivs_keys import JoinResult
from stagepilot.policy import TOKEN_DURATION_RANGE


class LocalDoor:
    """Issues tokens as the token function does, and keeps them by the scenario's names (``as``)."""

    def __init__(self, deployment: Any, *, issuer: Any = None) -> None:
        """``issuer``: the door to ask (the sandbox's token function); default one made on the first issue."""
        self._deployment = deployment
        self._issuer: Any = issuer
        self.tokens: dict[str, IssuedToken] = {}

    def _ready(self) -> Any:
        if self._issuer is None:
            import boto3

            from stagepilot.adapters.ivs import IvsStage
            from stagepilot.door.issuer import TokenIssuer
            from stagepilot.door.signing import KeyPairTokens, StageEndpoints

            deployment = self._deployment
            ivs = IvsStage(deployment.ivs.client())
            keys = SigningKeys(
                deployment.services.table,
                ivs=ivs,
                kms=boto3.client("kms", region_name=deployment.ivs.region),
                name="simulate",
                clock=deployment.clock,
            )
            keys.rotate(longest_token_minutes=TOKEN_DURATION_RANGE[1])
            signer = keys.signer()
            assert signer is not None
            self._issuer = TokenIssuer(
                table=deployment.services.table,
                policies=deployment.services.new_policy_cache(),
                maker=KeyPairTokens(signer, StageEndpoints(ivs, clock=deployment.clock), clock=deployment.clock),
                metrics=deployment.metrics,
                clock=deployment.clock,
            )
        return self._issuer

    def issue(self, data: dict[str, Any]) -> dict[str, Any]:
        """The door's decision, as ``simulate --json`` prints it."""
        request = TokenRequest(data["stageArn"], data["userId"], data.get("role"), dict(data.get("attributes", {})))
        decision, token = self._ready().issue(request)
        if token is not None and data.get("as"):
            self.tokens[data["as"]] = token
        refused = isinstance(decision, Refusal)
        return {
            "token": "refused" if refused else "issued",
            "userId": request.user_id,
            "stageArn": request.stage_arn,
            "capabilities": [] if token is None else list(token.capabilities),
            "reason": decision.reason if isinstance(decision, Refusal) else decision.why,
            **({"refused": decision.refused} if isinstance(decision, Refusal) else {}),
            **({"participantId": token.participant_id} if token is not None else {}),
            "time": self._deployment.clock().strftime("%Y-%m-%dT%H:%M:%SZ"),
        }

    def join(self, data: dict[str, Any]) -> JoinResult:
        token = self.tokens.get(data["token"])
        if token is None:
            return JoinResult(refused="no-such-token")
        result: JoinResult = self._deployment.ivs.join(token.token, publish=bool(data.get("publish", False)))
        return result
