"""Finding the deployed stack's resources for the CLI: the stack's outputs, or explicit flags.

Clients come from boto3's default session, so the usual AWS environment applies (``AWS_PROFILE``,
``AWS_REGION``, ``AWS_ENDPOINT_URL_*``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Final

import boto3
from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError

from stagepilot.adapters.ivs import CLIENT_CONFIG, IvsStage, Pacer
from stagepilot.adapters.table import Table
from stagepilot.config import DEFAULT_IVS_CALLS_PER_SECOND
from stagepilot.routing import AUTOMATIONS

DEFAULT_STACK: Final = "StagePilot"
# Output names of the StagePilot stack (infra/names.py defines them; tests/infra checks they agree).
OUTPUT_TABLE: Final = "TableName"
OUTPUT_TOPIC: Final = "AlarmTopicArn"
OUTPUT_FLAG_BUS: Final = "FlagBusName"
OUTPUT_REDRIVE_ROLE: Final = "RedriveRoleArn"


def queue_output(automation: str) -> str:
    return f"{automation.capitalize()}QueueUrl"


def dlq_output(automation: str) -> str:
    return f"{automation.capitalize()}DlqUrl"


class CliError(Exception):
    """A failure to report as one line on stderr; ``status`` is the exit status (1 failure, 2 bad input)."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Resources:
    stack: str = DEFAULT_STACK
    table_name: str | None = None

    @cached_property
    def outputs(self) -> dict[str, str]:
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
        return Table(client("dynamodb"), self.table_name or self.output(OUTPUT_TABLE))

    @cached_property
    def ivs(self) -> IvsStage:
        return IvsStage(client("ivs-realtime", config=CLIENT_CONFIG), pacer=Pacer(DEFAULT_IVS_CALLS_PER_SECOND))

    def queues(self) -> dict[str, tuple[str, str]]:
        """Per automation: (queue URL, DLQ URL)."""
        return {a: (self.output(queue_output(a)), self.output(dlq_output(a))) for a in AUTOMATIONS}


def read_json_file(path: Path) -> Any:
    """A JSON file the user named; unreadable or not JSON is bad input (exit 2), said in one line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}", status=2) from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{path}: not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", status=2) from exc


def client(service: str, **kwargs: Any) -> Any:
    try:
        return boto3.client(service, **kwargs)
    except NoRegionError as exc:
        raise CliError("no AWS region configured: set AWS_REGION or use a profile with a region") from exc


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
