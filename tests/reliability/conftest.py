"""The handler tests' fixtures (``make_deployment``, ``events``), for the reliability stories that drive a
whole ``LocalDeployment``; the AWS environment is every suite's (tests/conftest.py)."""

from tests.handlers.conftest import events, make_deployment

__all__ = ["events", "make_deployment"]
