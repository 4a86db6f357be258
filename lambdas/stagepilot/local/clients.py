"""The boto3 clients the local stack makes for itself (the IVS stand-in's, the local table's), all from one
boto3 session per process.

A session costs about 16 ms of CPU to make (botocore registers its built-in event handlers, checking each one's
signature) and a client made from it about 7 ms; every ``LocalDeployment`` used to make two sessions (one for
the stand-in's client, the default one for its table's), which was most of what a handler test's setup cost.
A session holds nothing a client's requests depend on beyond its credentials, which here are dummies: the
requests never leave the process (moto, the stand-in). Each client has its own copy of the session's event
hooks, so what one client registers (the stand-in, a latency, a test's counter) stays on that client.
botocore's sessions are not thread-safe: clients are made under one lock.

The clients do not sign their requests: nothing that answers them reads a signature (moto does not check one
unless told to, the stand-in never), and SigV4 cost about a sixth of each call's CPU. botocore still
validates, serializes and parses every request as it does against AWS.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore import UNSIGNED
from botocore.client import BaseClient
from botocore.config import Config

_lock = threading.Lock()
_session: boto3.session.Session | None = None
UNSIGNED_REQUESTS = Config(signature_version=UNSIGNED)


def local_client(service: str, *, region: str, config: Config | None = None) -> Any:
    """A real boto3 client of ``service`` in ``region`` with dummy credentials (answered in-process)."""
    global _session
    with _lock:
        if _session is None:
            _session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing")
        merged = UNSIGNED_REQUESTS.merge(config) if config is not None else UNSIGNED_REQUESTS
        client: BaseClient = _session.client(service, region_name=region, config=merged)
        return client
