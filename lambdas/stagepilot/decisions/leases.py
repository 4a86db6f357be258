"""How long a claim in the table holds when its owner stops renewing it.

A claim says "this event is doing this action"; it is a lease, not a lock. Its owner may die (a Lambda
timeout, a record that ran out of receives during an IVS outage): then, once the lease has run out,
whoever comes next — a later event, the owner's own redelivery, the convergence pass — takes it over
with the same attempt and idempotency token, so the action happens once however many try it.

The lease is twice the functions' timeout (``infra/pipeline.py``: 60 s): a live owner is always within
one invocation of finishing or failing, and a dead one blocks nothing for more than two minutes.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

FUNCTION_TIMEOUT_SECONDS: Final = 60
CLAIM_LEASE: Final = timedelta(seconds=2 * FUNCTION_TIMEOUT_SECONDS)
# The queues' redrive policy (``infra/pipeline.py``): after this many receives a record goes to its DLQ.
# The last receive releases the claims its event holds (``adapters/leases.py``), so nothing waits out a
# lease for an owner that will never come back.
MAX_RECEIVES: Final = 5
