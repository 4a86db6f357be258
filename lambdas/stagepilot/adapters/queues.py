"""Whether an automation's queue holds events, from SQS: what tells the convergence pass a late event from
a lost one when it explains a heal (decisions/heals.py, docs/reliability.md "A heal says why").

One ``GetQueueAttributes`` per queue, asked only when a heal needs explaining and kept for ``MAX_AGE``
seconds, so a pass makes at most one per automation. Visible, in-flight and delayed messages all count:
each is an event that is still to be handled (or is being handled now).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

ENV_QUEUE_URLS: Final = "STAGEPILOT_QUEUE_URLS"  # JSON object: automation -> its queue's URL (the pass only)
ATTRIBUTES: Final = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)
MAX_AGE: Final = 30.0  # seconds: within one pass


class QueueDepths:
    """``events_queued(automation)`` for ``Services``: True when the automation's queue holds any message,
    None when its queue is not known. Raises what the SQS client raises (the pass then falls back on the
    age of what happened)."""

    def __init__(
        self,
        urls: Mapping[str, str],
        client: Callable[[], Any],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._urls = dict(urls)
        self._client = client  # built on first use: most passes heal nothing and never ask
        self._clock = clock
        self._known: dict[str, tuple[float, bool]] = {}

    def __call__(self, automation: str) -> bool | None:
        url = self._urls.get(automation)
        if url is None:
            return None
        now = self._clock()
        cached = self._known.get(automation)
        if cached is not None and now - cached[0] < MAX_AGE:
            return cached[1]
        answer = self._client().get_queue_attributes(QueueUrl=url, AttributeNames=list(ATTRIBUTES))
        attributes = answer.get("Attributes") or {}
        queued = any(int(attributes.get(name, "0") or 0) > 0 for name in ATTRIBUTES)
        self._known[automation] = (now, queued)
        return queued


def queue_urls_from_env(env: Mapping[str, str]) -> dict[str, str]:
    """The automations' queue URLs the stack gives the convergence function; {} when absent or unreadable."""
    try:
        value = json.loads(env.get(ENV_QUEUE_URLS) or "{}")
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items() if isinstance(v, str) and v}
