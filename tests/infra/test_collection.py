"""Collecting the CDK tests starts no CDK: every xdist worker collects every test, and only the one that runs
the ``cdk`` group should pay for jsii's node kernel and the CDK assembly (tests/infra/conftest.py)."""

from __future__ import annotations

from tests.infra.conftest import cdk_at_collection


def test_collecting_the_tests_imports_no_cdk() -> None:
    assert cdk_at_collection == []
