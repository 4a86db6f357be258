"""How the CLI fails: ``CliError`` for what a command decides is a failure, and one line for anything else.

Every failure reaches the operator as one line on stderr with the contract's exit status (CONTRACT §3):
1 for a failure (AWS refused, unreachable, not found, conflict), 2 for bad input.
"""

from __future__ import annotations

from typing import Final

from botocore.exceptions import ClientError, NoCredentialsError

EXIT_FAILURE: Final = 1
EXIT_BAD_INPUT: Final = 2


class CliError(Exception):
    """A failure to report as one line on stderr; ``status`` is the exit status (1 failure, 2 bad input)."""

    def __init__(self, message: str, status: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.status = status


class BadInput(CliError):
    """Input the operator gave (a file, an argument) that cannot be used: exit 2."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_BAD_INPUT)


def describe_aws_error(exc: BaseException) -> str | None:
    """One line for the AWS failures an operator meets, or None for anything else."""
    if isinstance(exc, NoCredentialsError):
        return "no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code", "Error")
        if code == "ResourceNotFoundException" and exc.operation_name in {"GetItem", "Query", "PutItem"}:
            return f"table not found: {error.get('Message', '')} (check --table or --stack)"
        message = error.get("Message") or exc.response.get("exceptionMessage") or ""
        return f"{exc.operation_name}: {code}: {message}".rstrip(": ")
    return None
