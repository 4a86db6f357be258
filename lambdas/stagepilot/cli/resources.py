"""Finding the deployed stack's resources for the CLI: the stack's outputs, or explicit flags.

Clients come from boto3's default session, so the usual AWS environment applies (``AWS_PROFILE``,
``AWS_REGION``, ``AWS_ENDPOINT_URL_*``), or from the global ``--profile``/``--region``/``--endpoint-url``.

boto3, botocore and the adapters are imported when a command first needs them, not with this module: every
command imports it (through ``main``), and ``--version``, ``--help``, ``policy validate``, ``simulate`` and
``completion`` never make a client (docs/performance.md, section 9: the CLI's start-up).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Final

from stagepilot.cli.errors import CliError
from stagepilot.outputs import OUTPUT_TABLE_NAME, output_dlq_url, output_queue_url
from stagepilot.routing import AUTOMATIONS

if TYPE_CHECKING:
    from botocore.config import Config

    from stagepilot.adapters.ivs import IvsStage, Pacer
    from stagepilot.adapters.table import Table

DEFAULT_STACK: Final = "StagePilot"
STACK_VARIABLE: Final = "STAGEPILOT_STACK"  # the default for --stack (a deployment with -c stackName=...)
# --cli-connect-timeout / --cli-read-timeout defaults: an endpoint that accepts and never answers ends a command
# in seconds, not in botocore's minutes (60 s a try, retried). 0 waits for ever, as in the AWS CLI.
DEFAULT_CONNECT_TIMEOUT: Final = 5.0
DEFAULT_READ_TIMEOUT: Final = 15.0
MAX_TIMEOUT: Final = 3600.0


@dataclass
class Resources:
    stack: str = DEFAULT_STACK
    table_name: str | None = None

    @cached_property
    def outputs(self) -> dict[str, str]:
        from botocore.exceptions import ClientError

        cloudformation = client("cloudformation")
        try:
            stacks = cloudformation.describe_stacks(StackName=self.stack)["Stacks"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ValidationError":
                raise CliError(
                    f"stack {self.stack} not found in {cloudformation.meta.region_name}: deploy it (make deploy), "
                    "pass --stack NAME, or name the table with --table"
                ) from exc
            raise
        return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}

    def output(self, key: str) -> str:
        value = self.outputs.get(key)
        if not value:
            raise CliError(f"stack {self.stack} has no output {key}; is it a StagePilot stack?")
        return value

    @cached_property
    def table(self) -> Table:
        from stagepilot.adapters.table import Table

        return Table(client("dynamodb"), self.table_name or self.output(OUTPUT_TABLE_NAME))

    @cached_property
    def ivs(self) -> IvsStage:
        from stagepilot.adapters.ivs import CLIENT_CONFIG, IvsStage

        # An operator's command (reconcile and converge-now included) sends at most one call of an operation in
        # any window, beside the functions' split (budget.OPERATOR_PER_SECOND), and 3 of ListStages
        # (budget.OPERATOR_SHARES: the fleet views list every stage in seconds).
        return IvsStage(client("ivs-realtime", config=CLIENT_CONFIG), pacer=operator_pacer())

    def queues(self) -> dict[str, tuple[str, str]]:
        """Per automation: (queue URL, DLQ URL)."""
        return {a: (self.output(output_queue_url(a)), self.output(output_dlq_url(a))) for a in AUTOMATIONS}


def operator_pacer(**clock: Any) -> Pacer:
    """The CLI's pacer: ``budget.OPERATOR_PER_SECOND`` call of every operation in any window, but its
    ``budget.operator_shares`` (ListStages). ``clock``: ``clock=``/``sleep=`` of another clock (the
    benchmarks' virtual one)."""
    from stagepilot import budget
    from stagepilot.adapters.ivs import Pacer

    return Pacer(budget.OPERATOR_PER_SECOND / budget.WINDOW_SECONDS, shares=operator_shares(), **clock)


def operator_shares() -> dict[str, tuple[int, ...]]:
    from stagepilot import budget

    return {operation: (calls,) for operation, calls in budget.operator_shares().items()}


def resources(args: argparse.Namespace) -> Resources:
    """The resources named by a command's ``--stack``/``--table``."""
    return Resources(stack=args.stack, table_name=args.table)


@dataclass(frozen=True)
class AwsOptions:
    """The AWS CLI's global options, for every client this process makes."""

    profile: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    connect_timeout: float | None = None  # None: not given (DEFAULT_CONNECT_TIMEOUT); 0: no timeout
    read_timeout: float | None = None


_options = AwsOptions()
_session: Any = None  # a boto3 Session when --profile/--region were given; else boto3's default session


def use_aws_options(options: AwsOptions) -> None:
    """Called once per command, before any client is made (a missing profile fails here, one line)."""
    global _options, _session
    _options = options
    _session = None
    # AWS_REGION beats AWS_DEFAULT_REGION, as in the AWS CLI v2 (botocore itself reads only the latter).
    region = options.region or os.environ.get("AWS_REGION") or None
    if options.profile or region:
        import boto3.session

        _session = boto3.session.Session(profile_name=options.profile, region_name=region)


def client(service: str, **kwargs: Any) -> Any:
    """A boto3 client. ``--endpoint-url`` acts like ``AWS_ENDPOINT_URL``: a service's own
    ``AWS_ENDPOINT_URL_<SERVICE>`` still wins, so one shell can point IVS and the rest at different places."""
    import boto3
    from botocore.exceptions import NoRegionError

    if _options.endpoint_url and not os.environ.get(endpoint_variable(service)):
        kwargs.setdefault("endpoint_url", _options.endpoint_url)
    kwargs["config"] = client_config(kwargs.get("config"))
    try:
        made = (_session or boto3).client(service, **kwargs)
    except NoRegionError as exc:
        raise CliError(
            "no AWS region configured (hint: --region, AWS_REGION or AWS_DEFAULT_REGION, or a profile with a region)"
        ) from exc
    from stagepilot.cli.answers import check_answers

    check_answers(made)
    return made


def client_config(passed: Config | None) -> Config:
    """The timeouts every CLI client uses: ours by default, the client's own (``passed``) over them, and
    ``--cli-connect-timeout``/``--cli-read-timeout`` over both. Retries: botocore's standard mode, so
    ``AWS_MAX_ATTEMPTS`` and the profile's ``max_attempts`` apply."""
    from botocore.config import Config

    config = Config(
        connect_timeout=DEFAULT_CONNECT_TIMEOUT, read_timeout=DEFAULT_READ_TIMEOUT, retries={"mode": "standard"}
    )
    if passed is not None:
        config = config.merge(passed)
    given: dict[str, Any] = {}
    if _options.connect_timeout is not None:
        given["connect_timeout"] = _options.connect_timeout or None  # 0: blocking, as in the AWS CLI
    if _options.read_timeout is not None:
        given["read_timeout"] = _options.read_timeout or None
    return config.merge(Config(**given)) if given else config


def aws_session() -> Any:
    """The boto3 session this command's clients come from (its credentials sign the door's requests)."""
    import boto3

    if _session is not None:
        return _session
    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    return boto3.DEFAULT_SESSION


def endpoint_variable(service: str) -> str:
    """``ivs-realtime`` -> ``AWS_ENDPOINT_URL_IVS_REALTIME`` (botocore's per-service variable)."""
    return "AWS_ENDPOINT_URL_" + service.upper().replace("-", "_").replace(" ", "_")
