"""The door's signing keys in IVS: the KMS key's public key, imported with ImportPublicKey (at most 3 per
account and region). Operator-side (``stagepilot keys``) and set-up code: never on the per-token path."""

from __future__ import annotations

import base64
import textwrap
from typing import Any, Final

KEY_NAME_PREFIX: Final = "stagepilot"
MANAGED_TAG: Final = "stagepilot:door"  # tags every public key stagepilot imported (lockout deletes only those)


def public_key_pem(kms: Any, key_id: str) -> str:
    """The KMS key's public key (DER SubjectPublicKeyInfo from GetPublicKey) as the PEM IVS takes."""
    der = kms.get_public_key(KeyId=key_id)["PublicKey"]
    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode("ascii"), 64))
    return f"-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n"


def import_signing_key(ivs: Any, kms: Any, key_id: str, *, name: str) -> str:
    """Import the KMS key's public key into IVS (``ivs``: the IVS adapter); returns the public-key ARN."""
    key: dict[str, Any] = ivs.import_public_key(public_key_pem(kms, key_id), name=name, tags={MANAGED_TAG: key_id})
    return str(key["arn"])
