"""``--debug`` never prints credentials or tokens (docs/cli.md).

botocore's debug log shows each request's headers (``Authorization`` with its signature,
``X-Amz-Security-Token``), each response body (an STS ``AssumeRole`` answer holds a secret key and a
session token; an IVS ``CreateParticipantToken`` answer a participant token) and presigned query strings.
Everything ``--debug`` writes — log lines and the traceback of a failure — goes through ``redact``:

- values the CLI itself obtained or was given (``remember``: the redrive role's credentials, the
  environment's secret key and session token) are replaced wherever they appear, in any encoding botocore
  prints them;
- fields that hold a secret by name (``SecretAccessKey``, ``SessionToken``, ``Token``, ``token``,
  ``Authorization``, ``X-Amz-Security-Token``, ``X-Amz-Signature``, ``X-Amz-Credential``...) are replaced
  whatever their value, as JSON, XML, Python reprs and query strings;
- anything shaped like a JWT (a participant token) is replaced.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from typing import Final

MASK: Final = "<redacted>"
MIN_REMEMBERED = 8  # shorter values are not secrets worth hiding (and would mask ordinary words)

_SECRET_FIELDS: Final = (
    "SecretAccessKey",
    "SessionToken",
    "Token",
    "token",
    "aws_secret_access_key",
    "aws_session_token",
    "secret_key",
    "X-Amz-Security-Token",
    "x-amz-security-token",
    "Authorization",
    "authorization",
    "X-Amz-Signature",
    "X-Amz-Credential",
    "Password",
    "password",
    "privateKey",
)
_FIELDS = "|".join(re.escape(field) for field in _SECRET_FIELDS)
_PATTERNS: Final = (
    # XML: <SecretAccessKey>...</SecretAccessKey>
    re.compile(rf"(<(?P<name>{_FIELDS})>)[^<]*(</(?P=name)>)"),
    # JSON and Python reprs: "SessionToken": "...", 'Authorization': b'...'
    re.compile(rf"""((?P<q>["'])(?:{_FIELDS})(?P=q)\s*:\s*b?)(["'])(?:\\.|(?!\3).)*\3"""),
    # query strings and headers printed as key=value
    re.compile(rf"(\b(?:{_FIELDS})=)[^&\s'\",]+"),
    # AWS SigV4 Authorization values printed on their own
    re.compile(r"(AWS4-HMAC-SHA256 )[^'\"\n]+"),
)
_JWT: Final = re.compile(r"\beyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]{4,}")

_lock = threading.Lock()
_remembered: set[str] = set()


def remember(*secrets: str | None) -> None:
    """Values to hide wherever they appear (credentials the CLI obtained, tokens it was given)."""
    with _lock:
        _remembered.update(s for s in secrets if isinstance(s, str) and len(s) >= MIN_REMEMBERED)


def remember_environment() -> None:
    remember(os.environ.get("AWS_SECRET_ACCESS_KEY"), os.environ.get("AWS_SESSION_TOKEN"))


def redact(text: str) -> str:
    with _lock:
        known = sorted(_remembered, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(_masked, text)
    return _JWT.sub(MASK, text)


def _masked(match: re.Match[str]) -> str:
    groups = match.groups()
    if match.re is _PATTERNS[0]:
        return f"{groups[0]}{MASK}{groups[2]}"
    if match.re is _PATTERNS[1]:
        quote = groups[2]
        return f"{groups[0]}{quote}{MASK}{quote}"
    return f"{groups[0]}{MASK}"


class RedactingFilter(logging.Filter):
    """On the ``--debug`` handler: each record is formatted once, redacted, and passed on as plain text."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not format: show its template only
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_info:
            formatter = logging.Formatter()
            record.exc_text = redact(formatter.formatException(record.exc_info))
            record.exc_info = None
        return True
