"""Who may spend how much of each IVS operation's 5 calls a second: the one map of who calls what.

IVS real-time allows 5 calls per second **per operation, per account and region**, reads as much as writes,
and the quota cannot be raised. Every stagepilot function that may call an operation at the same time takes
from that one quota, and so does the customer's own application. This module is the only place that says
which functions call which operation and how the quota is split; the stack (``infra/``) imports it for the
functions' concurrency and environment, and each function paces its calls with its share of it
(``container_rates``, used by ``handlers/wiring.py``).

The split (docs/performance.md, section 3; measured by ``benchmarks/burst.py``):

- ``APPLICATION_RESERVE`` (1 call/s of every operation) is never used by stagepilot: it is the application's.
- The convergence pass (one container) has a slice of each operation it calls (``CONVERGENCE_SLICE``).
- The operator's ``stagepilot`` command has a slice of ``ListStages`` (``OPERATOR_SLICES``): its fleet
  views list every stage and answer within seconds; every other operation it paces at the application's
  reserve (``operator_rates``).
- What is left of an operation is split between the automations that call it, in proportion to the
  ``weight`` each has on it (how often it needs it on its main path), and within one automation equally
  between its ``MAX_CONCURRENCY`` containers.

The split is static: it costs no AWS call and needs no store, so it cannot fail. Its price is quota left
idle when only some of an operation's callers are busy. Why it was chosen over time slots leased from the
table or a token bucket in the table, with the burst measured: docs/performance.md, section 3.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

QUOTA_PER_OPERATION: Final = 5.0  # calls/s, per operation, account and region; not adjustable
APPLICATION_RESERVE: Final = 1.0  # calls/s of every operation left to the customer's own application
MAX_CONCURRENCY: Final = 2  # each automation's SQS event source MaximumConcurrency (infra/pipeline.py)

COMPOSITION: Final = "composition"
REPLICATION: Final = "replication"
MODERATION: Final = "moderation"
CONVERGENCE: Final = "convergence"  # the convergence pass: reserved concurrency 1 (infra/convergence.py)
CALLERS: Final = (COMPOSITION, REPLICATION, MODERATION, CONVERGENCE)
CONCURRENCY: Final[Mapping[str, int]] = {
    COMPOSITION: MAX_CONCURRENCY,
    REPLICATION: MAX_CONCURRENCY,
    MODERATION: MAX_CONCURRENCY,
    CONVERGENCE: 1,
}

# Operation -> the automations that call it on the event path, each with its weight on it (1 = on the
# path of its every action; less = a guard for rare cases). The convergence pass calls every operation
# listed in CONVERGENCE_OPERATIONS (it heals through all the automations).
EVENT_PATH_CALLS: Final[Mapping[str, Mapping[str, float]]] = {
    # moderation: only a flag without a session id; composition: before every start (its burst path)
    "GetStage": {COMPOSITION: 1.0, MODERATION: 0.05},
    "ListParticipants": {COMPOSITION: 1.0, MODERATION: 1.0},  # composition: a restart; moderation: a ban
    "ListCompositions": {COMPOSITION: 1.0},
    "GetComposition": {COMPOSITION: 1.0},
    "StartComposition": {COMPOSITION: 1.0},
    "GetParticipant": {REPLICATION: 1.0, MODERATION: 1.0},
    "ListParticipantEvents": {REPLICATION: 1.0},
    "ListParticipantReplicas": {REPLICATION: 1.0, MODERATION: 0.5},  # moderation: after a disconnect
    "StartParticipantReplication": {REPLICATION: 1.0},
    "StopParticipantReplication": {MODERATION: 1.0},
    "DisconnectParticipant": {MODERATION: 1.0},
}
# ListStageSessions: the stage's last session, asked only after IVS refused an idle stage's recording
# settings (who is still recorded within the reconnect window, automations/stage_settings.py).
# StopComposition: the policy's limits, which only the pass enforces (automations/limits.py).
CONVERGENCE_OPERATIONS: Final = frozenset(
    {*EVENT_PATH_CALLS, "ListStages", "UpdateStage", "ListStageSessions", "StopComposition"}
)
# The pass's slice: 1 call/s (60 per one-minute pass) of each operation; 2 of ListParticipants, its one
# per-stage listing (stagepilot.convergence.PARTICIPANT_LISTINGS_PER_PASS: 120 per pass).
CONVERGENCE_SLICE: Final = 1.0
CONVERGENCE_SLICES: Final[Mapping[str, float]] = {"ListParticipants": 2.0}
# The operator (the stagepilot CLI, one command at a time; not a function, so not in CALLERS): ``status``
# and ``ban add`` answer within seconds for 1,000 live stages, and ``ListStages`` gives 100 stages a page
# (10 pages at IVS's default 1,000 stages a region). At 2.5 calls/s those pages take 3.7 s; the pass, which
# lists once a pass, keeps the other 1.5 (10 pages in about 6 s of its 60-s pass). No automation calls
# ``ListStages``. The CLI's other operations are paced at the application's reserve (1 call/s), as before:
# an operator's command is the account's own use of IVS (docs/performance.md, section 3).
OPERATOR_SLICES: Final[Mapping[str, float]] = {"ListStages": 2.5}
# What a function that does not say which caller it is (STAGEPILOT_IVS_CALLER unset: a local run, a
# misconfigured deployment) paces every operation at: below every main-path share, so it works, slowly,
# rather than stop; it is not part of the split.
CONSERVATIVE_RATE: Final = 0.5


def operations_of(caller: str) -> frozenset[str]:
    """The IVS operations ``caller`` may call (tests/unit/test_ivs_budget.py checks the code calls no other)."""
    if caller == CONVERGENCE:
        return CONVERGENCE_OPERATIONS
    _check(caller)
    return frozenset(op for op, weights in EVENT_PATH_CALLS.items() if caller in weights)


def operator_rates() -> dict[str, float]:
    """The CLI's own rates: its ``OPERATOR_SLICES``; any other operation at ``APPLICATION_RESERVE``."""
    return dict(OPERATOR_SLICES)


def container_rates(caller: str) -> dict[str, float]:
    """Calls per second of each operation one container of ``caller`` may make.

    Summed over every container of every caller of an operation, at most
    ``QUOTA_PER_OPERATION - APPLICATION_RESERVE`` (``test_the_shares_of_all_callers_fit_the_quota``).
    """
    _check(caller)
    return {operation: _rate(operation, caller) for operation in sorted(operations_of(caller))}


def _rate(operation: str, caller: str) -> float:
    available = QUOTA_PER_OPERATION - APPLICATION_RESERVE
    event_path = EVENT_PATH_CALLS.get(operation, {})
    if caller == CONVERGENCE:
        # An operation no automation calls (ListStages, UpdateStage, ListStageSessions) is the pass's, but for
        # the operator's slice of it (ListStages).
        return convergence_slice(operation) if event_path else available - OPERATOR_SLICES.get(operation, 0.0)
    weights = sum(event_path.values())
    return (available - convergence_slice(operation)) * event_path[caller] / weights / CONCURRENCY[caller]


def convergence_slice(operation: str) -> float:
    return CONVERGENCE_SLICES.get(operation, CONVERGENCE_SLICE)


def _check(caller: str) -> None:
    if caller not in CONCURRENCY:
        raise ValueError(f"unknown IVS caller {caller!r}; expected one of {', '.join(CALLERS)}")
