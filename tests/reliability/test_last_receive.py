"""A record's last receive gives up its event's claims before the record goes to the DLQ (issue 11).

The case it matters for: an event whose early receives failed before it could claim (the table throttling
its claim write), whose last receive then claims and has IVS fail the action. Without the release, that
fresh claim would tell the next event and the convergence pass "an event is starting this replication"
for a whole lease, for an owner that will never come back.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from stagepilot.automations.replication import ReplicationAutomation
from stagepilot.decisions.leases import CLAIM_LEASE, MAX_RECEIVES
from stagepilot.local.deployment import LocalDeployment
from tests.support import OTHER_STAGE, STAGE, EventFactory, later, put_policy

POLICY: dict[str, Any] = {
    "stageArn": STAGE,
    "replication": [{"destinationStageArn": OTHER_STAGE, "participants": {"userIds": ["host-1"]}}],
}


def run_until_parked(show: LocalDeployment) -> None:
    for _ in range(300):
        if show.dead_letters["replication"]:
            return
        show.settle(10)
    raise AssertionError("the event never reached the dead-letter queue")


def replicas(show: LocalDeployment) -> list[Any]:
    return show.ivs.replicas(STAGE, "host", active_only=True)


def prepare(make_deployment: Any, events: EventFactory) -> LocalDeployment:
    show: LocalDeployment = make_deployment(automations=[ReplicationAutomation()])  # the pass is run by hand
    put_policy(show, POLICY)
    # Receives 1-4 have the claim write throttled (no claim yet); the last one claims, and IVS fails the start.

    def throttle_early_claims(model: Any, **_: Any) -> None:
        if len(show.deliveries) < MAX_RECEIVES - 1:
            raise ClientError(
                {
                    "Error": {"Code": "ProvisionedThroughputExceededException", "Message": "injected"},
                    "ResponseMetadata": {"HTTPStatusCode": 400},
                },
                model.name,
            )

    show.table.client.meta.events.register("before-call.dynamodb.PutItem", throttle_early_claims)
    show.ivs.fail_next("StartParticipantReplication", 1)
    show.put_event(events.published("host", user_id="host-1", at=later(1)))
    run_until_parked(show)
    last = show.deliveries[-1]
    assert last.receive == MAX_RECEIVES and last.parked
    assert show.clock() - last.time < CLAIM_LEASE  # its claim is moments old
    return show


def test_the_pass_takes_over_at_once_the_claim_of_an_event_that_went_to_the_dlq(
    make_deployment: Any, events: EventFactory
) -> None:
    show = prepare(make_deployment, events)

    report = show.reconcile()

    assert [o.action for _, o in report.healed] == ["replication-started"], report.outcomes
    assert [r.destination_stage_arn for r in replicas(show)] == [OTHER_STAGE]
    assert show.metrics.counts.get("ClaimsReleased") == 1


def test_the_next_event_takes_over_at_once_too(make_deployment: Any, events: EventFactory) -> None:
    show = prepare(make_deployment, events)

    show.put_event(events.published("host", user_id="host-1", at=show.clock()))
    show.settle(5)

    assert [r.destination_stage_arn for r in replicas(show)] == [OTHER_STAGE]
    publish = [
        d
        for d in show.deliveries
        if d.event["detail"].get("event_name") == "Participant Published" and d.event["resources"] == [STAGE]
    ][-1]
    assert publish.outcome is not None and publish.outcome.action == "replication-started"


def test_only_the_events_own_unfinished_claims_are_released(make_deployment: Any) -> None:
    from stagepilot.adapters.counters import DisconnectClaims
    from stagepilot.adapters.leases import release_claims

    show: LocalDeployment = make_deployment()
    claims = DisconnectClaims(show.services.table, clock=show.clock)
    claims.claim(STAGE, "st-Session000001", "mine", owner="event-1", dry_run=False)
    claims.claim(STAGE, "st-Session000001", "done", owner="event-1", dry_run=False)
    claims.finish(STAGE, "st-Session000001", "done", owner="event-1", dry_run=False, result="disconnected")
    claims.claim(STAGE, "st-Session000001", "theirs", owner="event-2", dry_run=False)

    released = release_claims(show.services.table, STAGE, "event-1", clock=show.clock)

    assert released == ["SESSION#st-Session000001#DISCONNECT#mine"]
    mine = claims.get(STAGE, "st-Session000001", "mine", dry_run=False)
    theirs = claims.get(STAGE, "st-Session000001", "theirs", dry_run=False)
    assert mine is not None and show.clock() - mine.claimed_at > CLAIM_LEASE and mine.owner == "event-1"
    assert theirs is not None and theirs.claimed_at == show.clock()
    assert release_claims(show.services.table, STAGE, "event-1", clock=show.clock) == []  # already released
