"""Where the CLI acts: the region and account of the stack it works on, and ARNs of elsewhere refused.

IVS answers a stage ARN of another region or account with "not found" at best, and at worst the CLI
stores something for a stage the deployment never sees (a pause switch, a policy): such an ARN is refused
with one line (exit 2) that says where it points and where the command acts (docs/cli.md, "Finding the
deployment"). The region is known without any call (the profile, ``--region``, ``AWS_REGION``); the
account is the caller's, from STS (the call every change makes anyway, to say who made it).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Final

from stagepilot.cli.errors import BadInput

_ARN: Final = re.compile(r"arn:aws[a-z-]*:([a-z0-9-]+):([a-z0-9-]*):([0-9]*):(.+)")


def home_region() -> str | None:
    """The region this command's clients use; None when none is configured (the first client says so)."""
    from botocore.exceptions import BotoCoreError

    from stagepilot.cli.resources import aws_session

    try:
        region = aws_session().region_name
    except BotoCoreError:  # a missing profile: the first client reports it, in its own words
        return None
    return str(region) if region else None


def account_of(principal_arn: str) -> str:
    """The account of an ARN (``arn:aws:sts::123456789012:assumed-role/ops/alice``: ``123456789012``)."""
    parts = principal_arn.split(":")
    return parts[4] if len(parts) > 4 else ""


def check_region(arn: str, *, what: str = "stage") -> None:
    """Refuse an ARN of another region than the one this command acts in (before any call)."""
    found = _ARN.fullmatch(arn)
    home = home_region()
    if found is None or not found.group(2) or home is None or found.group(2) == home:
        return
    raise BadInput(
        f"{what} {_shown(arn)} is in {found.group(2)}; this command acts in {home}, the stack's region "
        f"(--region {found.group(2)} for a stack deployed there)"
    )


def check_account(arn: str, *, caller: str, what: str = "stage") -> None:
    """Refuse an ARN of another account than the caller's (``caller``: the caller's ARN, from STS)."""
    found = _ARN.fullmatch(arn)
    account = account_of(caller)
    if found is None or not found.group(3) or not account or found.group(3) == account:
        return
    raise BadInput(
        f"{what} {_shown(arn)} belongs to account {found.group(3)}; you act in account {account} "
        "(use that account's credentials, --profile)"
    )


def check_home(document: Any, *, caller: str | None = None, where: str = "") -> None:
    """Refuse a document (a policy) that names an IVS ARN of another region, or of another account than
    ``caller``'s: the first one found, with the field that holds it."""
    for path, arn in _ivs_arns(document, where):
        check_region(arn, what=path)
        if caller is not None:
            check_account(arn, caller=caller, what=path)


def _ivs_arns(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        found = _ARN.fullmatch(value)
        if found is not None and found.group(1) == "ivs":
            yield path or "ARN", value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _ivs_arns(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _ivs_arns(item, f"{path}[{index}]")


def _shown(value: str, limit: int = 80) -> str:
    return value if len(value) <= limit else value[:limit] + "..."
