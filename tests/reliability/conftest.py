"""The handler tests' fixtures (``make_deployment``, ``events``, a clean AWS environment), for the
reliability stories that drive a whole ``LocalDeployment``."""

from tests.handlers.conftest import aws_environment, events, make_deployment

__all__ = ["aws_environment", "events", "make_deployment"]
