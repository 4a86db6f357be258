"""The door's HTTP face (docs/door.md): one Function URL request in, one answer out. The token function
(handlers/token.py) answers with it, and so does the sandbox's door on loopback (local/sandbox.py).

``POST`` JSON ``{"stageArn", "userId", "role"?, "attributes"?}`` →
``200 {"token", "participantId", "expirationTime", "capabilities"}``,
``403 {"refused": "banned" | "paused" | "no-tokens-policy" | "unknown-role", "reason"}``,
``400 {"error", "field"}`` naming the bad field; ``405`` for another method; ``503`` when DynamoDB, KMS or
IVS is unavailable now (the caller asks again), ``500`` for a deployment defect (logged).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from stagepilot.door.decision import BadTokenRequest, Refusal, parse_request
from stagepilot.door.wiring import Door
from stagepilot.errors import ConfigurationError, RetryLater
from stagepilot.policy import PolicyInvalid


def answer_request(door: Door, event: dict[str, Any], logger: Any) -> dict[str, Any]:
    """The Function URL's answer (``statusCode``, ``headers``, ``body``) to ``event``, its request."""
    method = event.get("requestContext", {}).get("http", {}).get("method", "POST")
    if method != "POST":
        return _answer(405, {"error": "POST a JSON token request"})
    try:
        request = parse_request(_body(event))
    except BadTokenRequest as exc:
        return _answer(400, {"error": str(exc), "field": exc.field})
    try:
        decision, token = door.issuer.issue(request)
    except RetryLater as exc:
        logger.warning("token not issued now", extra={"error": str(exc)})
        return _answer(503, {"error": "unavailable now; ask again"})
    except (ConfigurationError, PolicyInvalid) as exc:
        logger.exception("token not issued: deployment or policy defect", extra={"error": str(exc)})
        return _answer(500, {"error": "the door cannot issue tokens for this stage (see the function's log)"})
    if isinstance(decision, Refusal) or token is None:
        assert isinstance(decision, Refusal)
        return _answer(403, {"refused": decision.refused, "reason": decision.reason})
    return _answer(
        200,
        {
            "token": token.token,
            "participantId": token.participant_id,
            "expirationTime": token.expiration_time.isoformat().replace("+00:00", "Z"),
            "capabilities": list(token.capabilities),
        },
    )


def _body(event: dict[str, Any]) -> object:
    raw = event.get("body") or ""
    try:
        text = base64.b64decode(raw).decode() if event.get("isBase64Encoded") else str(raw)
        return json.loads(text)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise BadTokenRequest("body", "must be a JSON object") from exc


def _answer(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}
