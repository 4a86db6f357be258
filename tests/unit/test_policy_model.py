"""Policies validate against the IVS client's own model when the Lambda has one (no second model load)."""

from __future__ import annotations

import boto3
import pytest

from stagepilot.policy import shapes, use_service_model, validate_policy

STAGE = "arn:aws:ivs:us-east-1:123456789012:stage/AbCdef1G2hij"


@pytest.fixture
def restore_model():
    yield
    shapes._LOADED_MODEL.clear()
    shapes._service_model.cache_clear()
    shapes._input_shape.cache_clear()


def test_the_clients_model_is_used_and_validates_the_same(restore_model: None) -> None:
    bad = {"stageArn": STAGE, "composition": {"destinations": [], "layout": {"grid": {"gridGap": -1}}}}
    loaded_separately = [str(p) for p in validate_policy(bad)]
    client = boto3.client("ivs-realtime", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")

    use_service_model(client.meta.service_model)

    assert shapes._service_model() is client.meta.service_model
    assert [str(p) for p in validate_policy(bad)] == loaded_separately


def test_only_the_ivs_realtime_model_is_taken(restore_model: None) -> None:
    client = boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with pytest.raises(ValueError, match="not the ivs-realtime model"):
        use_service_model(client.meta.service_model)
