"""The deployed entry point itself: ``stagepilot.handlers.composition.lambda_handler`` with Powertools,
an SQS batch, per-record failures (ReportBatchItemFailures) and malformed events parked in the DLQ."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from stagepilot.adapters.table import PolicyStore, Table
from stagepilot.handlers import wiring
from stagepilot.local.deployment import create_table
from stagepilot.local.ivs import IvsStandIn
from stagepilot.policy import parse_policy
from tests.support import ACCOUNT, CHANNEL, ENCODER, REGION, STAGE, EventFactory

TABLE = "stagepilot-test"
OTHER = "arn:aws:ivs:us-east-1:123456789012:stage/Other"


@dataclass
class LambdaContext:
    function_name: str = "StagePilot-Composition"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:StagePilot-Composition"
    aws_request_id: str = "req-1"
    remaining_ms: float = 60_000

    def get_remaining_time_in_millis(self) -> int:
        return int(self.remaining_ms)


@pytest.fixture
def lambda_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    with mock_aws():
        monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
        boto3.setup_default_session()
        ivs = IvsStandIn(account=ACCOUNT, region=REGION)
        ivs.create_stage(STAGE)
        ivs.attach_session(boto3.DEFAULT_SESSION)
        create_table(boto3.client("dynamodb"), TABLE)
        sqs = boto3.client("sqs")
        queue = sqs.create_queue(QueueName="composition")["QueueUrl"]
        dlq = sqs.create_queue(QueueName="composition-dlq")["QueueUrl"]
        monkeypatch.setenv("STAGEPILOT_TABLE", TABLE)
        monkeypatch.setenv("STAGEPILOT_DLQ_URL", dlq)
        monkeypatch.setenv("STAGEPILOT_ACCOUNT", ACCOUNT)
        monkeypatch.setenv("STAGEPILOT_REGION", REGION)
        monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "composition")
        monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "StagePilot")
        wiring.services_for.cache_clear()
        wiring._sqs_client.cache_clear()
        PolicyStore(Table(boto3.client("dynamodb"), TABLE)).put(
            parse_policy(
                {
                    "stageArn": "default",
                    "composition": {
                        "destinations": [
                            {"name": "live", "channel": {"channelArn": CHANNEL, "encoderConfigurationArn": ENCODER}}
                        ]
                    },
                }
            )
        )
        package_logger = logging.getLogger("stagepilot")
        handlers, level = list(package_logger.handlers), package_logger.level
        yield {"ivs": ivs, "sqs": sqs, "queue": queue, "dlq": dlq}
        wiring.services_for.cache_clear()
        wiring._sqs_client.cache_clear()
        # Powertools copied the function's handler onto the package's logger: later tests must not inherit it.
        package_logger.handlers[:], package_logger.level = handlers, level


def sqs_event(queue_url: str, sqs: Any, bodies: list[str]) -> dict[str, Any]:
    for body in bodies:
        sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"])["Messages"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m["Attributes"],
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": arn,
                "awsRegion": REGION,
            }
            for m in messages
        ]
    }


def test_batch_reports_only_the_failed_record_and_parks_the_malformed_one(
    lambda_env: dict[str, Any], capsys: pytest.CaptureFixture[str]
):
    from stagepilot.handlers.composition import lambda_handler

    events = EventFactory()
    lambda_env["ivs"].create_stage(OTHER)
    lambda_env["ivs"].fail_next("GetStage", 1)  # the functions' client leaves retries to the queue
    good = events.published("host1", event_id="good-event", at=datetime.now(UTC))
    other_stage = events.published("p2", stage=OTHER, event_id="retry-me", at=datetime.now(UTC))
    lambda_env["ivs"].observe(good)
    lambda_env["ivs"].observe(other_stage)
    batch = sqs_event(lambda_env["queue"], lambda_env["sqs"], [json.dumps(other_stage), "{broken", json.dumps(good)])

    # The failing record comes first in the batch; the good one must still be handled.
    response = lambda_handler(batch, LambdaContext())

    failed = {item["itemIdentifier"] for item in response["batchItemFailures"]}
    by_body = {r["body"]: r["messageId"] for r in batch["Records"]}
    assert failed == {by_body[json.dumps(other_stage)]}
    parked = lambda_env["sqs"].receive_message(QueueUrl=lambda_env["dlq"], MessageAttributeNames=["All"])["Messages"]
    assert [m["Body"] for m in parked] == ["{broken"]
    assert parked[0]["MessageAttributes"]["stagepilot-error"]["StringValue"].startswith("malformed event: ")
    logs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    metrics = [entry for entry in logs if "_aws" in entry]
    assert metrics and metrics[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "StagePilot"
    assert {"MalformedEvent", "EventRetried"} <= {
        m["Name"] for m in metrics[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"]
    }
    decisions = [entry for entry in logs if entry.get("action") == "composition-started"]
    assert decisions and decisions[0]["correlation_id"] == "good-event"


def test_the_scheduled_pass_heals_a_lost_publish_and_reports_it(
    lambda_env: dict[str, Any], capsys: pytest.CaptureFixture[str]
):
    from stagepilot.handlers.reconcile import lambda_handler

    lambda_env["ivs"].observe(EventFactory().published("host1", event_id="never-delivered"))

    summary = lambda_handler({"source": "aws.events", "detail-type": "Scheduled Event"}, LambdaContext())

    assert summary == {
        "stagesListed": 1,
        "live": 1,
        "examined": 1,
        "healed": 1,
        "deferred": 0,
        "outOfTime": False,
        "errors": 0,
    }
    [start] = [c for c in lambda_env["ivs"].mutating_calls() if c.operation == "StartComposition"]
    assert start.params["stageArn"] == STAGE
    logs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    metrics = [m["Name"] for e in logs if "_aws" in e for m in e["_aws"]["CloudWatchMetrics"][0]["Metrics"]]
    # the publish happened a moment ago at the stand-in: its event may still come, so not (yet) "lost"
    assert {"Healed", "HealedComposition", "HealedEventLate"} <= set(metrics)
    assert "HealedEventLost" not in metrics

    again = lambda_handler({}, LambdaContext())
    assert again["healed"] == 0  # converged: nothing done twice


def test_a_pass_that_finds_nothing_to_do_publishes_no_metric(
    lambda_env: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """The schedule runs a pass every minute, all day: a metric it published each time would be a custom
    metric billed every hour of the month (docs/performance.md, cost). Only what a pass finds is counted."""
    from stagepilot.handlers.reconcile import lambda_handler

    summary = lambda_handler({"source": "aws.events", "detail-type": "Scheduled Event"}, LambdaContext())

    assert summary["healed"] == 0 and summary["errors"] == 0 and summary["outOfTime"] is False
    logs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [entry for entry in logs if "_aws" in entry] == []


def test_the_scheduled_pass_starts_no_stage_without_the_time_to_finish_it(lambda_env: dict[str, Any]):
    from stagepilot.handlers.reconcile import lambda_handler

    lambda_env["ivs"].observe(EventFactory().published("host1", event_id="never-delivered"))

    summary = lambda_handler({}, LambdaContext(remaining_ms=5_000))  # the listing took all but 5 s

    assert summary["outOfTime"] is True and summary["deferred"] == 1 and summary["healed"] == 0
    assert _started(lambda_env["ivs"]) == []
    assert lambda_handler({}, LambdaContext())["healed"] == 1  # the next pass, with time, does it


def test_the_scheduled_pass_survives_an_ivs_outage(lambda_env: dict[str, Any]):
    from stagepilot.handlers.reconcile import lambda_handler

    lambda_env["ivs"].fail_next("ListStages", 1)  # the functions' client does not retry it
    summary = lambda_handler({}, LambdaContext())
    assert summary["errors"] == 1 and summary["healed"] == 0


def _started(ivs: IvsStandIn) -> list[str]:
    return [c.params["stageArn"] for c in ivs.mutating_calls() if c.operation == "StartComposition"]


def _parked(env: dict[str, Any]) -> list[tuple[str, str]]:
    messages = env["sqs"].receive_message(QueueUrl=env["dlq"], MessageAttributeNames=["All"], MaxNumberOfMessages=10)
    return [
        (m["Body"], m["MessageAttributes"]["stagepilot-error"]["StringValue"]) for m in messages.get("Messages", [])
    ]


def test_a_poison_record_is_parked_on_its_own_and_the_batch_goes_on(lambda_env: dict[str, Any]) -> None:
    from stagepilot.handlers.composition import lambda_handler

    # Nested deeper than Python's recursion limit: json.loads raises RecursionError, not ValueError.
    poison = "[" * 60_000 + "]" * 60_000
    good = EventFactory().published("host1", event_id="good-event", at=datetime.now(UTC))
    lambda_env["ivs"].observe(good)
    batch = sqs_event(lambda_env["queue"], lambda_env["sqs"], [poison, json.dumps(good)])

    response = lambda_handler(batch, LambdaContext())

    assert response == {"batchItemFailures": []}
    [(body, reason)] = _parked(lambda_env)
    assert body == poison and reason.startswith("malformed event: message body is not JSON")
    assert _started(lambda_env["ivs"]) == [STAGE]


def test_a_record_that_cannot_even_be_parked_fails_only_itself(
    lambda_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from stagepilot.handlers.composition import lambda_handler

    monkeypatch.setenv("STAGEPILOT_DLQ_URL", lambda_env["dlq"] + "-gone")  # SendMessage fails
    good = EventFactory().published("host1", event_id="good-event", at=datetime.now(UTC))
    lambda_env["ivs"].observe(good)
    batch = sqs_event(lambda_env["queue"], lambda_env["sqs"], ["[" * 60_000, json.dumps(good)])
    poison_id = batch["Records"][0]["messageId"]

    response = lambda_handler(batch, LambdaContext())

    assert response == {"batchItemFailures": [{"itemIdentifier": poison_id}]}
    assert _started(lambda_env["ivs"]) == [STAGE]


def test_a_forged_body_sent_to_the_queue_is_parked_without_acting(lambda_env: dict[str, Any]) -> None:
    from stagepilot.handlers.composition import lambda_handler

    # Same shape as IVS's event, sent to the queue directly by someone in another account.
    forged = {**EventFactory().published("host1", at=datetime.now(UTC)), "account": "210987654321"}
    lambda_env["ivs"].observe({**forged, "account": ACCOUNT})
    batch = sqs_event(lambda_env["queue"], lambda_env["sqs"], [json.dumps(forged)])

    response = lambda_handler(batch, LambdaContext())

    assert response == {"batchItemFailures": []}
    [(_body, reason)] = _parked(lambda_env)
    assert reason == "malformed event: account: '210987654321' is not this stack's account"
    assert _started(lambda_env["ivs"]) == []


@pytest.mark.parametrize("entry", ["composition", "replication", "moderation", "reconcile"])
@pytest.mark.story
def test_an_entry_module_loads_with_no_collection_and_freezes_what_it_loaded(entry: str) -> None:
    """A full collection over botocore's loaded models costs ~25 ms of a cold start (handlers/heap.py):
    none runs while the entry module imports, the collector is on again afterwards, and what the import
    loaded is frozen, so later collections skip it."""
    script = (
        "import gc\n"
        "started = []\n"
        "gc.callbacks.append(lambda phase, info: started.append(info['generation']) if phase == 'start' else None)\n"
        f"import stagepilot.handlers.{entry}\n"
        "assert started == [], started\n"
        "assert gc.isenabled()\n"
        "assert gc.get_freeze_count() > 50_000, gc.get_freeze_count()\n"
    )
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr[-2000:]


# What each automation's function must not import: another automation's decisions and records, the CLI and
# the stand-ins. Each frozen dataclass imported costs about a millisecond of every cold start
# (docs/performance.md, section 1), and what a function never uses has no business in its import.
_OTHER_AUTOMATIONS = {
    "composition": {
        "decisions.moderation",
        "decisions.replication",
        "decisions.publishers",
        "adapters.publishers",
        "adapters.replication_state",
        "adapters.counters",
    },
    "replication": {"decisions.composition", "decisions.moderation", "adapters.state", "adapters.counters"},
    "moderation": {"decisions.composition", "decisions.replication", "adapters.state", "adapters.replication_state"},
}


@pytest.mark.parametrize("entry", sorted(_OTHER_AUTOMATIONS))
@pytest.mark.story
def test_an_automation_function_imports_none_of_the_others_modules(entry: str) -> None:
    script = (
        "import sys\n"
        f"import stagepilot.handlers.{entry}\n"
        "print('\\n'.join(sorted(m for m in sys.modules if m.startswith('stagepilot.'))))\n"
    )
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = {name.removeprefix("stagepilot.") for name in done.stdout.split()}
    foreign = {name for name in loaded if name.split(".")[0] in {"cli", "local"} or name == "convergence"}
    assert loaded & _OTHER_AUTOMATIONS[entry] | foreign == set()


def test_the_functions_clients_are_made_without_botocores_scan_of_every_service(
    lambda_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """adapters/clients.py: about 23 ms of every cold start (docs/performance.md §1)."""
    from aws_lambda_powertools import Logger, Metrics
    from botocore.loaders import Loader

    from stagepilot.adapters.clients import ServiceLoader

    scans: list[str] = []
    full_scan = Loader.list_available_services
    monkeypatch.setattr(Loader, "list_available_services", lambda self, t: scans.append(t) or full_scan(self, t))
    _, redelivery = wiring.services_for(Logger(), Metrics())
    redelivery._sqs  # noqa: B018  (made on first use)
    assert isinstance(boto3.DEFAULT_SESSION._session.get_component("data_loader"), ServiceLoader)
    assert scans == []
