"""Who may spend how much of each IVS operation's 5 calls a second: the one map of who calls what.

IVS real-time allows 5 calls per second **per operation, per account and region**, reads as much as writes,
and the quota cannot be raised. Every stagepilot function that may call an operation at the same time takes
from that one quota, and so does the customer's own application. This module is the only place that says
which functions call which operation and how the quota is split; the stack (``infra/``) imports it for the
functions' reserved concurrency and environment, and each function paces its calls with its share of it
(``container_shares``, used by ``handlers/wiring.py``).

**A bound, not an average** (docs/performance.md, section 3). In any one-second window, of any operation:

- stagepilot's functions together (every container of every automation, and the convergence pass) send
  at most ``FUNCTIONS_PER_SECOND`` (3) calls;
- the operator's ``stagepilot`` command sends at most ``OPERATOR_PER_SECOND`` (1) more (``ListStages``:
  3, of which the pass takes none but 1);
- ``APPLICATION_RESERVE`` (1) is the application's and never stagepilot's;
- so IVS sees at most 4 calls of stagepilot's in any second (3 when no operator runs a command), and one
  call a second of every operation is always left to the application with one more of headroom.

How the bound holds without any call to a shared store:

1. Each function runs at most ``CONCURRENCY[caller]`` containers at once: the reserved concurrency of its
   function (the template sets it from this map, ``infra/``). Reserved concurrency caps concurrent
   executions, not environments: during a deploy one more environment exists, never running beside the
   others, and an invocation may land in one that did not see what its slot just sent. So a container
   sends nothing in the first window of each invocation (``Pacer.invocation_started``): by then every
   call of the slot's previous invocations has left it (docs/performance.md, section 3).
2. Each container's pacer (``adapters/ivs.py``, ``Pacer``) is a sliding-window bound: at most ``calls``
   requests of an operation in any ``WINDOW_SECONDS`` (1.2 s: one second plus ``LATENCY_SPREAD``, the most
   two requests' trips to IVS can differ, so requests sent 1.2 s apart cannot land within one second).
3. An operation whose callers' containers would exceed 3 if all sent at once (``GetParticipant``: two
   replication and two moderation containers and the pass) is shared in *frames*: wall-clock frames of
   ``FRAME_SECONDS`` (1.4 s) in rotation, each frame one automation's; a container sends only in the
   first ``SEND_SPAN`` (0.2 s) of its automation's frames, so the calls of two frames can never reach
   IVS within one second of each other. Lambda's clocks are synchronised (Amazon Time Sync), far inside
   the spread. The pass never waits for a frame: its one call a window is counted beside every frame.

``worst_second(operation)`` adds it up; ``tests/unit/test_ivs_budget.py`` checks every operation.

The price, measured (docs/performance.md, section 3): a container of an automation sends at most one call
of an operation per 1.2 s (0.83/s; 1.5/s of StartComposition before), and a framed operation waits for its
automation's frame (1.3 s on average, 2.6 s at most). Sharing the idle automations' calls with a busy one
needs a store every container asks before each call: one more DynamoDB call per IVS call (docs/performance.md
weighs it). The door (``DOOR``) is counted apart: its ``GetStage`` (a stage's endpoints, once per stage per
container and day) has no reserved concurrency to count containers by (it scales with token requests).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

QUOTA_PER_OPERATION: Final = 5  # calls/s, per operation, account and region; not adjustable
APPLICATION_RESERVE: Final = 1  # calls in any second of every operation, left to the customer's application
FUNCTIONS_PER_SECOND: Final = 3  # every stagepilot function together, any second, any operation
OPERATOR_PER_SECOND: Final = 1  # the operator's command, any second, any operation but ListStages
# Headroom: the quota less the three shares above, 0 with an operator's command running, 1 without one.

LATENCY_SPREAD: Final = 0.2  # seconds: how much two requests' trips to IVS may differ (clock skew included)
WINDOW_SECONDS: Final = 1.0 + LATENCY_SPREAD  # a container's sliding window
SEND_SPAN: Final = 0.2  # seconds at the start of a frame in which its automation's containers may send
FRAME_SECONDS: Final = WINDOW_SECONDS + SEND_SPAN  # two frames' calls land more than a second apart

MAX_CONCURRENCY: Final = 2  # each automation's SQS MaximumConcurrency and reserved concurrency (infra/pipeline.py)

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
DOOR: Final = "door"  # the token function: GetStage only, counted apart (module docstring)
DOOR_OPERATIONS: Final = frozenset({"GetStage"})
DOOR_GET_STAGE_PER_WINDOW: Final = 1  # per door container

# Operation -> (calls per container in any window, any time: {caller: calls}, frames in rotation: one
# {caller: calls} per frame). The pass is always in the first part: it never waits for a frame.
Share = tuple[Mapping[str, int], tuple[Mapping[str, int], ...]]
SPLIT: Final[Mapping[str, Share]] = {
    # composition: before every start (its burst path). Moderation asks ListStageSessions instead.
    "GetStage": ({COMPOSITION: 1, CONVERGENCE: 1}, ()),
    # moderation: the live session of a flag that names none (automations/moderation.py)
    "ListStageSessions": ({MODERATION: 1, CONVERGENCE: 1}, ()),
    # composition: before a restart; moderation: a ban; the pass: its per-stage listing
    "ListParticipants": ({CONVERGENCE: 1}, ({COMPOSITION: 1}, {MODERATION: 1})),
    "ListCompositions": ({COMPOSITION: 1, CONVERGENCE: 1}, ()),
    "GetComposition": ({COMPOSITION: 1, CONVERGENCE: 1}, ()),
    "StartComposition": ({COMPOSITION: 1, CONVERGENCE: 1}, ()),
    # replication and moderation: once per publisher (shared through the table, adapters/publishers.py)
    "GetParticipant": ({CONVERGENCE: 1}, ({REPLICATION: 1}, {MODERATION: 1})),
    "ListParticipantEvents": ({REPLICATION: 1, CONVERGENCE: 1}, ()),
    # replication: the replicas of a publisher; moderation: after a disconnect
    "ListParticipantReplicas": ({CONVERGENCE: 1}, ({REPLICATION: 1}, {MODERATION: 1})),
    "StartParticipantReplication": ({REPLICATION: 1, CONVERGENCE: 1}, ()),
    "StopParticipantReplication": ({MODERATION: 1, CONVERGENCE: 1}, ()),
    "DisconnectParticipant": ({MODERATION: 1, CONVERGENCE: 1}, ()),
    # the pass's own: ListStages (one call per 100 stages), the stages' recording settings
    "ListStages": ({CONVERGENCE: 1}, ()),
    "UpdateStage": ({CONVERGENCE: FUNCTIONS_PER_SECOND}, ()),
    # the policy's limits, which only the pass enforces (automations/limits.py)
    "StopComposition": ({CONVERGENCE: FUNCTIONS_PER_SECOND}, ()),
}
# The operator: 1 call in any window of every operation, but ListStages: 3 (the fleet views list 1,000
# stages, 10 pages, within 4 s; the pass keeps 1 of it: 10 pages in 12 s of its 60-s pass).
OPERATOR_SHARES: Final[Mapping[str, int]] = {"ListStages": 3}
# What a function that does not say which caller it is (STAGEPILOT_IVS_CALLER unset: a local run, a
# misconfigured deployment) paces every operation at: one call per window, aligned on no frame. Not part
# of the split: a deployment always says.
CONSERVATIVE_CALLS: Final = 1
CONSERVATIVE_RATE: Final = CONSERVATIVE_CALLS / WINDOW_SECONDS  # the same, as an average (calls/s)


def operations_of(caller: str) -> frozenset[str]:
    """The IVS operations ``caller`` may call (tests/unit/test_ivs_budget.py checks the code calls no other)."""
    if caller == DOOR:
        return DOOR_OPERATIONS
    _check(caller)
    return frozenset(op for op, share in SPLIT.items() if caller in share[0] or any(caller in f for f in share[1]))


def container_shares(caller: str) -> dict[str, tuple[int, ...]]:
    """Per operation, the calls one container of ``caller`` may send in any window: one number (any time),
    or one number per frame of the operation's rotation (0 in the other automations' frames)."""
    _check(caller)
    shares: dict[str, tuple[int, ...]] = {}
    for operation in sorted(operations_of(caller)):
        anytime, frames = SPLIT[operation]
        if caller in anytime:
            shares[operation] = (anytime[caller],)
        else:
            shares[operation] = tuple(frame.get(caller, 0) for frame in frames)
    return shares


def operator_shares() -> dict[str, int]:
    """The CLI's calls per window: ``OPERATOR_PER_SECOND`` of every operation, ``OPERATOR_SHARES`` apart."""
    return dict(OPERATOR_SHARES)


def worst_second(operation: str) -> int:
    """The most calls of ``operation`` stagepilot's functions can send into one second: every container of
    every caller spending its whole window at once, in the fullest frame."""
    anytime, frames = SPLIT[operation]
    always = sum(CONCURRENCY[caller] * calls for caller, calls in anytime.items())
    framed = max((sum(CONCURRENCY[caller] * calls for caller, calls in frame.items()) for frame in frames), default=0)
    return always + framed


def _check(caller: str) -> None:
    if caller not in CONCURRENCY:
        raise ValueError(f"unknown IVS caller {caller!r}; expected one of {', '.join(CALLERS)}")
