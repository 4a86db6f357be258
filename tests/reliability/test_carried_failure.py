"""A composition carried into a new session fails; EventBridge delivers its ``Session Failure`` three times within
half a second (at least once: each copy another SQS message, in its own container) while the convergence pass
runs every minute beside them: exactly one restart (docs/reliability.md, "A failure is restarted once").

The restart belongs to the newest session's record that holds the composition, and that record names the failed
composition until the restart is recorded: a copy that finds it claimed waits for that claim or takes it over,
never marks it failed and restarts again.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from stagepilot.decisions.composition import State, managed_tags
from stagepilot.local.deployment import LocalDeployment
from tests.handlers.test_rollover_end import POLICY as ROLLOVER_POLICY
from tests.handlers.test_rollover_end import compositions
from tests.support import STAGE, EventFactory, later, put_policy

NEXT = "st-NextSession01"
PASS = 60
FAILS_AT = later(300)
# a channel and S3, as the handler stories' (a channel takes one composition at a time); two restarts allowed
POLICY = {**ROLLOVER_POLICY, "composition": {**ROLLOVER_POLICY["composition"], "maxRestarts": 2}}


@pytest.mark.parametrize("pass_after", [0.0, 0.3, 5.0, 5.6], ids=lambda s: f"pass-{s}s-after-the-failure")
def test_a_carried_failure_delivered_three_times_beside_the_pass_is_restarted_once(
    make_deployment: Any, events: EventFactory, pass_after: float
) -> None:
    """``pass_after``: when the pass runs, from the failure: as the copies arrive (it finds the failure in IVS's
    listing first, or the copies' record), or as the restart's 5-s back-off ends (the copies' claims in flight)."""
    deployment: LocalDeployment = make_deployment(reconcile_seconds=None)
    deployment.every(timedelta(seconds=PASS), deployment.reconcile, first=FAILS_AT + timedelta(seconds=pass_after))
    put_policy(deployment, POLICY)
    deployment.put_event(events.published("host", user_id="host-1"))
    deployment.settle(5)
    deployment.ivs.leave(STAGE, "host")  # everyone leaves, and the host is back within the minute
    deployment.put_event(events.published("host", user_id="host-1", session=NEXT, at=later(40)))
    deployment.run_until(FAILS_AT)
    [carried] = compositions(deployment)
    assert deployment.services.compositions.get(STAGE, NEXT).composition_arn == carried.arn  # NEXT holds it
    deployment.lose_emitted("Session Failure", stage_arn=STAGE)  # held back, to be delivered three times
    deployment.ivs.fail_compositions(STAGE)
    [failure] = [e for e in deployment.lost if e["detail"]["event_name"] == "Session Failure"]
    for delay in (0.0, 0.2, 0.5):
        deployment.put_event(failure, observe=False, delay_seconds=delay)
    deployment.run_until(FAILS_AT + timedelta(minutes=10))

    started = [(c.tags["stagepilot:session"], c.tags["stagepilot:attempt"], c.state) for c in compositions(deployment)]
    assert len(started) == 2, started  # the carried one and one restart
    restart = compositions(deployment)[1]
    assert restart.state == "ACTIVE" and managed_tags(NEXT, 2).items() <= restart.tags.items()
    record = deployment.services.compositions.get(STAGE, NEXT)
    assert (record.state, record.attempt, record.restarts, record.composition_arn) == (
        State.STARTED,
        2,
        1,
        restart.arn,
    )
    restarted = [e for e in deployment.services.audit.list(STAGE, limit=200) if e["action"] == "composition-restarted"]
    assert len(restarted) == 1, restarted
    assert restart.start_time - FAILS_AT <= timedelta(seconds=PASS)  # the back-off, not a lease or a pass later
    errors = [d.error for d in deployment.deliveries if d.error is not None]
    assert all(e.startswith(("ClaimHeld: ", "RetryLater: ")) for e in errors), errors  # the back-off, the held
    assert any(e.startswith("ClaimHeld: ") for e in errors)  # the copies did meet the restart's claim
    assert not any(deployment.dead_letters.values())
