"""CLI fixtures: moto in server mode over real HTTP, reached through AWS_ENDPOINT_URL the way an
operator's shell reaches AWS, with the StagePilot stack's outputs in moto's CloudFormation."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
import requests
from moto.server import ThreadedMotoServer

from stagepilot.adapters.ivs import IvsStage
from stagepilot.adapters.table import Table
from stagepilot.cli.main import main
from stagepilot.config import Settings
from stagepilot.local.deployment import MAX_RECEIVES, RecordingMetrics, create_table
from stagepilot.local.functions import FunctionEndpoint, convergence_function
from stagepilot.local.ivs import IvsStandIn
from stagepilot.local.ivs_server import IvsEndpoint, LoopbackEndpoint
from stagepilot.local.sandbox import Sandbox
from stagepilot.outputs import (
    OUTPUT_ALARM_TOPIC_ARN,
    OUTPUT_CONVERGENCE_FUNCTION_NAME,
    OUTPUT_FLAG_BUS_NAME,
    OUTPUT_REDRIVE_ROLE_ARN,
    OUTPUT_TABLE_NAME,
    output_dlq_url,
    output_queue_url,
)
from stagepilot.pipeline import Services
from stagepilot.routing import AUTOMATIONS
from tests.support import ACCOUNT, REGION

TABLE = "StagePilot-Table"
# For plumbing tests of ``simulate`` (what it reads, prints and leaves alone, not what the automation does): no
# convergence pass (docs/simulate.md, ``--reconcile-seconds 0``). The example show's 55 passes change nothing
# it prints and cost most of its run.
NO_PASSES = ("--reconcile-seconds", "0")
FLAG_BUS = "StagePilot-FlagBus"
CONVERGENCE_FUNCTION = "StagePilot-ConvergenceFunction"


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def stack_builders(moto_endpoint: str) -> dict[str, Any]:
    """The clients ``aws`` builds the stack with, made once per worker (six clients for every CLI test cost
    about a third of its setup); they hold no state of moto's, which ``aws`` resets."""
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    services = ("dynamodb", "sqs", "events", "iam", "sns", "cloudformation")
    return {service: session.client(service, endpoint_url=moto_endpoint) for service in services}


@pytest.fixture
def aws(moto_endpoint: str, stack_builders: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh moto account with the table and a StagePilot stack whose outputs name it."""
    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=10)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # each test reads the environment afresh
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)  # in every suite's AWS environment (tests/conftest.py)
    create_table(stack_builders["dynamodb"], TABLE)
    outputs = {OUTPUT_TABLE_NAME: {"Value": TABLE}}
    sqs = stack_builders["sqs"]
    for automation in AUTOMATIONS:  # each automation's queue and DLQ, as the stack wires them
        dlq_url = sqs.create_queue(QueueName=f"StagePilot-{automation}-dlq")["QueueUrl"]
        dlq_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:StagePilot-{automation}-dlq"  # SQS's ARN of that queue
        redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVES})
        queue_url = sqs.create_queue(
            QueueName=f"StagePilot-{automation}", Attributes={"RedrivePolicy": redrive, "VisibilityTimeout": "360"}
        )["QueueUrl"]
        outputs[output_queue_url(automation)] = {"Value": queue_url}
        outputs[output_dlq_url(automation)] = {"Value": dlq_url}
    stack_builders["events"].create_event_bus(Name=FLAG_BUS)
    outputs[OUTPUT_FLAG_BUS_NAME] = {"Value": FLAG_BUS}
    trust = {"Statement": [{"Effect": "Allow", "Principal": {"AWS": ACCOUNT}, "Action": "sts:AssumeRole"}]}
    role = stack_builders["iam"].create_role(RoleName="StagePilot-Redrive", AssumeRolePolicyDocument=json.dumps(trust))
    outputs[OUTPUT_REDRIVE_ROLE_ARN] = {"Value": role["Role"]["Arn"]}
    outputs[OUTPUT_ALARM_TOPIC_ARN] = {
        "Value": stack_builders["sns"].create_topic(Name="StagePilot-AlarmTopic")["TopicArn"]
    }
    outputs[OUTPUT_CONVERGENCE_FUNCTION_NAME] = {"Value": CONVERGENCE_FUNCTION}  # served by the `ivs` fixture
    template = {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}, "Outputs": outputs}
    stack_builders["cloudformation"].create_stack(StackName="StagePilot", TemplateBody=json.dumps(template))
    return moto_endpoint


@pytest.fixture
def sandbox(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[Sandbox]:
    """``stagepilot sandbox`` in this process, and this shell's environment pointed at it, as it prints.
    Indirect parameters are ``Sandbox`` keyword arguments."""
    import os

    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    with Sandbox(**getattr(request, "param", {})) as running:
        for name, value in running.environment.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
        yield running


@pytest.fixture
def ivs(aws: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[IvsStandIn]:
    """The IVS stand-in served over HTTP on loopback; the CLI reaches it through AWS_ENDPOINT_URL_IVS_REALTIME.
    With it, the stack's convergence function (Lambda's Invoke on loopback, AWS_ENDPOINT_URL_LAMBDA): what
    `reconcile`, `policy put` and `resume` invoke, running the function's code on the same table and IVS."""
    stand_in = IvsStandIn(account=ACCOUNT, region=REGION)
    function = convergence_function(handler_services(stand_in))
    endpoints = IvsEndpoint(stand_in), FunctionEndpoint({CONVERGENCE_FUNCTION: function})
    url, functions = (endpoint.__enter__() for endpoint in endpoints)
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL_IVS_REALTIME", url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", functions)
        monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
        yield stand_in
    finally:
        LoopbackEndpoint.stop_together(*endpoints)  # both in one poll interval


@dataclass
class Result:
    status: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def run(*argv: str) -> Result:
    stdout, stderr = io.StringIO(), io.StringIO()
    try:
        status = main(list(argv), stdout=stdout, stderr=stderr)
    except SystemExit as exc:  # argparse: bad usage
        status = int(exc.code or 0)
    return Result(status, stdout.getvalue(), stderr.getvalue())


def handler_services(stand_in: IvsStandIn) -> Services:
    """The automations' services as a deployed function builds them, on the same moto server and IVS stand-in
    the CLI reaches: what the handlers would do on the state the CLI sees."""
    return Services(
        settings=Settings(table_name=TABLE),
        table=Table(boto3.client("dynamodb"), TABLE),
        ivs=IvsStage(stand_in.client()),
        metrics=RecordingMetrics(),
    )
