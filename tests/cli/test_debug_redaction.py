"""``--debug`` never prints credentials or tokens (docs/cli.md): a debug run of ``dlq redrive`` (which
assumes the redrive role) is grepped for every secret it used, and finds none."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.sts.models import sts_backends

from stagepilot.cli.redaction import MASK, redact
from tests.cli.conftest import run
from tests.cli.test_dlq_explain_cli import bodies, queue_urls
from tests.support import EventFactory

ENV_SECRET = "sEcReTkEy-from-the-environment-0123456789"
ENV_TOKEN = "FwoGZXIvYXdzEXAMPLEsessionTOKENfromTheEnvironment"
PARTICIPANT_TOKEN = "eyJhbGciOiJFUzM4NCJ9.eyJleHAiOjE3MDAwMDAwMDB9.c2lnbmF0dXJlLXRoYXQtaXMtc2VjcmV0"


@pytest.fixture
def debug_logging() -> Iterator[None]:
    """``--debug`` adds a handler to botocore's, boto3's and stagepilot's loggers: take it away after."""
    loggers = [logging.getLogger(name) for name in ("botocore", "boto3", "stagepilot")]
    before = [(logger.level, list(logger.handlers)) for logger in loggers]
    yield
    for logger, (level, handlers) in zip(loggers, before, strict=True):
        logger.setLevel(level)
        logger.handlers[:] = handlers


def test_a_debug_redrive_prints_none_of_the_secrets_it_used(
    aws: str, monkeypatch: pytest.MonkeyPatch, debug_logging: None
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", ENV_SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", ENV_TOKEN)
    queue_url, dlq_url = queue_urls("composition")
    event = json.dumps(EventFactory().published("p-1"))
    run("dlq", "list")  # (nothing to hide yet; warms the clients)
    import boto3

    boto3.client("sqs").send_message(QueueUrl=dlq_url, MessageBody=event)

    result = run("--debug", "dlq", "redrive", "--automation", "composition")

    assert result.status == 0, result.stderr[-2000:]
    assert bodies(queue_url) == [event]  # it did its work, as the redrive role
    [assumed] = [r for r in sts_backends[DEFAULT_ACCOUNT_ID]["global"].assumed_roles if "redrive" in r.session_name]
    secrets = {
        "the environment's secret key": ENV_SECRET,
        "the environment's session token": ENV_TOKEN,
        "the redrive role's secret key": assumed.secret_access_key,
        "the redrive role's session token": assumed.session_token,
    }
    log = result.stderr
    assert "botocore" in log and "AssumeRole" in log  # a real debug log, with the STS call in it
    assert MASK in log
    assert [what for what, secret in secrets.items() if secret in log] == []


def test_a_debug_traceback_is_redacted_too(aws: str, monkeypatch: pytest.MonkeyPatch, debug_logging: None) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", ENV_SECRET)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens: the command fails
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")

    result = run("--debug", "policy", "list")

    assert result.status == 1
    assert "Traceback" in result.stderr and ENV_SECRET not in result.stderr


@pytest.mark.parametrize(
    "line",
    [
        "<AssumeRoleResult><Credentials><SecretAccessKey>abc/DEF+ghi</SecretAccessKey>"
        "<SessionToken>IQoJb3JpZ2luX2VjEPT//////////wEaCXVz</SessionToken></Credentials></AssumeRoleResult>",
        "{'Authorization': b'AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20261207/us-east-1/sqs/aws4_request, "
        "SignedHeaders=host, Signature=abc/DEF+ghi', 'X-Amz-Security-Token': b'IQoJb3JpZ2luX2VjEPT//////////wEaCXVz'}",
        '{"participantToken": {"token": "' + PARTICIPANT_TOKEN + '", "participantId": "p-1"}}',
        "https://bucket.s3.amazonaws.com/k?X-Amz-Credential=AKIAEXAMPLE%2F2026&X-Amz-Signature=abc/DEF+ghi&x=1",
        '{"Credentials": {"AccessKeyId": "ASIAEXAMPLE", "SecretAccessKey": "abc/DEF+ghi", "SessionToken": "x\\"y"}}',
    ],
)
def test_secrets_are_redacted_in_every_shape_botocore_prints_them(line: str) -> None:
    redacted = redact(line)
    for secret in ("abc/DEF+ghi", "IQoJb3JpZ2luX2VjEPT", PARTICIPANT_TOKEN, 'x\\"y'):
        assert secret not in redacted, redacted
    assert MASK in redacted


def test_what_is_not_secret_is_left_alone() -> None:
    line = '{"NextToken": "page-2", "idempotencyToken": "sp-MainStage0001-st-1-1", "stageArn": "arn:aws:ivs:x"}'
    assert redact(line) == line
