"""How the CLI fails: one line on stderr and the contract's exit status, whatever went wrong.

``CliError`` is a failure a command decided on; ``describe_failure`` turns anything else (botocore,
credentials, profiles, endpoints, the project's own exceptions, a bug) into the same kind of line, with a
hint where the operator can do something about it. Exit status (docs/cli.md): 1 failure, 2 bad input,
130 interrupted (Ctrl-C).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:  # botocore is imported when a failure is described, not with the CLI (its start-up)
    from botocore import exceptions as boto

EXIT_FAILURE: Final = 1
EXIT_BAD_INPUT: Final = 2
EXIT_INTERRUPTED: Final = 130  # Ctrl-C, as the AWS CLI and shells report SIGINT (128 + 2)

_EXPIRED: Final = frozenset({"ExpiredToken", "ExpiredTokenException", "RequestExpired", "TokenRefreshRequired"})
_BAD_CREDENTIALS: Final = frozenset(
    {"UnrecognizedClientException", "InvalidClientTokenId", "SignatureDoesNotMatch", "InvalidSignatureException"}
)
_DENIED: Final = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"})
_THROTTLED: Final = frozenset({"Throttling", "ThrottlingException", "TooManyRequestsException"})
_TABLE_OPERATIONS: Final = frozenset({"GetItem", "Query", "PutItem", "UpdateItem", "DeleteItem", "Scan"})


class CliError(Exception):
    """A failure to report as one line on stderr; ``status`` is the exit status (1 failure, 2 bad input)."""

    def __init__(self, message: str, status: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.status = status


class BadInput(CliError):
    """Input the operator gave (a file, an argument) that cannot be used: exit 2."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_BAD_INPUT)


def describe_failure(exc: BaseException) -> tuple[str, int]:
    """The one line (without ``error:``) and the exit status for any exception a command raised."""
    from botocore import exceptions as boto

    if isinstance(exc, CliError):
        return _one_line(str(exc)), exc.status
    for cause in _chain(exc):
        message = describe_aws_error(cause)
        if message is not None:
            status = EXIT_BAD_INPUT if isinstance(cause, boto.ParamValidationError) else EXIT_FAILURE
            return _one_line(message), status
    from stagepilot.errors import RetryLater, StagePilotError

    if isinstance(exc, RetryLater):
        return _one_line(f"{exc} (AWS is busy or unavailable; try again in a minute)"), EXIT_FAILURE
    if isinstance(exc, StagePilotError):
        return _one_line(str(exc)), EXIT_FAILURE
    if isinstance(exc, ValueError) and _raised_in(exc, "botocore"):
        return _one_line(f"AWS configuration: {exc} (hint: check the AWS_* variables and the profile)"), EXIT_FAILURE
    if isinstance(exc, OSError):
        return _one_line(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")), EXIT_FAILURE
    return (
        _one_line(f"unexpected {type(exc).__name__}: {exc} (run again with --debug for the traceback, and report it)"),
        EXIT_FAILURE,
    )


def describe_aws_error(exc: BaseException) -> str | None:
    """One line, with a hint, for the AWS failures an operator meets; None for anything else."""
    from botocore import exceptions as boto

    if isinstance(exc, boto.ProfileNotFound):
        profile = exc.kwargs.get("profile", "?")
        return (
            f"AWS profile {profile!r} not found in the AWS config files "
            "(hint: `aws configure list-profiles`; fix --profile or AWS_PROFILE)"
        )
    if isinstance(exc, boto.NoCredentialsError):
        return (
            "no AWS credentials found "
            "(hint: set AWS_PROFILE or --profile, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY; `aws sso login`)"
        )
    if isinstance(exc, boto.PartialCredentialsError):
        return f"incomplete AWS credentials: {exc} (hint: check the profile or the AWS_* variables)"
    if isinstance(exc, boto.SSOError | boto.TokenRetrievalError | boto.UnauthorizedSSOTokenError):
        return f"AWS SSO: {exc} (hint: `aws sso login`)"
    if isinstance(exc, boto.NoRegionError):
        return "no AWS region configured (hint: --region, AWS_REGION or AWS_DEFAULT_REGION, or a profile with a region)"
    if isinstance(exc, boto.EndpointConnectionError | boto.ConnectTimeoutError):
        url = exc.kwargs.get("endpoint_url", "the endpoint")
        return (
            f"cannot reach {url} (hint: check the network; a local endpoint set by --endpoint-url or "
            "AWS_ENDPOINT_URL* must be running)"
        )
    if isinstance(exc, boto.ReadTimeoutError | boto.ConnectionClosedError):
        url = exc.kwargs.get("endpoint_url", "the endpoint")
        return f"{url} did not answer in time (hint: try again; check the network or the endpoint)"
    if isinstance(exc, boto.SSLError):
        return f"TLS failed: {exc} (hint: check the endpoint URL and AWS_CA_BUNDLE)"
    if isinstance(exc, boto.ParamValidationError):
        return f"invalid request: {' '.join(str(exc).split())}"
    if isinstance(exc, boto.ClientError):
        return _client_error(exc)
    from stagepilot.cli.answers import NotTheServiceAnswer

    if isinstance(exc, NotTheServiceAnswer):
        return str(exc)
    from botocore.parsers import ResponseParserError

    if isinstance(exc, ResponseParserError):
        return (
            f"the endpoint's answer is not the AWS service's: {' '.join(str(exc).split())[:200]} "
            "(hint: is the endpoint right? --endpoint-url, AWS_ENDPOINT_URL_<SERVICE>; a proxy in the way?)"
        )
    if isinstance(exc, boto.BotoCoreError):
        return f"AWS: {exc}"
    if isinstance(exc, ValueError) and str(exc).startswith("Invalid endpoint"):
        return f"{exc} (hint: --endpoint-url and AWS_ENDPOINT_URL* take a URL like http://127.0.0.1:5000)"
    return None


def _client_error(exc: boto.ClientError) -> str:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", "Error"))
    message = str(error.get("Message") or exc.response.get("exceptionMessage") or "")
    operation = exc.operation_name
    if code == "ResourceNotFoundException" and operation in _TABLE_OPERATIONS:
        return f"table not found: {message} (hint: check --table or --stack)".replace(":  (", " (")
    if code in _EXPIRED:
        return f"{operation}: the AWS credentials have expired (hint: refresh them, e.g. `aws sso login`)"
    if code in _BAD_CREDENTIALS:
        return f"{operation}: AWS does not accept these credentials: {code} (hint: check the profile or keys)"
    if code in _DENIED:
        return f"{operation}: access denied: {message} (hint: the caller's IAM policy must allow it)"
    if code in _THROTTLED:
        return f"{operation}: throttled by AWS (hint: wait a little and run it again)"
    return f"{operation}: {code}: {message}".rstrip(": ")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and what it was raised from (``raise ... from``), outermost first."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)


def _raised_in(exc: BaseException, package: str) -> bool:
    """Whether the innermost frame of ``exc``'s traceback is in ``package``."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and str(tb.tb_frame.f_globals.get("__name__", "")).startswith(package + ".")


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "failed"
