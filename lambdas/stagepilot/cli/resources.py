"""Finding the deployed stack's resources for the CLI: the stack's outputs, or explicit flags.

Clients come from boto3's default session, so the usual AWS environment applies (``AWS_PROFILE``,
``AWS_REGION``, ``AWS_ENDPOINT_URL_*``).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Final

import boto3
from botocore.exceptions import ClientError, NoRegionError

from stagepilot.adapters.ivs import CLIENT_CONFIG, IvsStage, Pacer
from stagepilot.adapters.table import Table
from stagepilot.cli.errors import CliError
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


def resources(args: argparse.Namespace) -> Resources:
    """The resources named by a command's ``--stack``/``--table``."""
    return Resources(stack=args.stack, table_name=args.table)


def client(service: str, **kwargs: Any) -> Any:
    try:
        return boto3.client(service, **kwargs)
    except NoRegionError as exc:
        raise CliError("no AWS region configured: set AWS_REGION or use a profile with a region") from exc
