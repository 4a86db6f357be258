"""A heal's reason says what was observed (docs/policy.md's vocabulary); only ``event-lost`` is alarmed."""

from __future__ import annotations

from datetime import timedelta

import pytest

from infra import names
from stagepilot.decisions.heals import (
    ALARMED,
    EVENT_LATE_SECONDS,
    EVENT_TRANSIT_SECONDS,
    HealReason,
    Observed,
    explain_heal,
    metric_name,
)
from stagepilot.decisions.leases import CLAIM_LEASE, ClaimVerdict, claim_verdict, lease_runs
from tests.support import T0

LONG_AGO = T0 - timedelta(hours=1)
NOW = T0


def test_the_vocabulary_is_the_contracts() -> None:
    assert {r.value for r in HealReason} == {
        "event-lost",
        "event-late",
        "ivs-ended",
        "resumed",
        "policy-changed",
        "taken-over",
        "rollover",  # the planned successor at IVS's 24-hour limit (docs/policy.md): not a lost event
        "budget",  # a start compositionHoursPerDay refused, made the next UTC day (docs/policy.md): not lost
    }
    assert {HealReason.EVENT_LOST} == ALARMED
    assert metric_name(HealReason.EVENT_LOST) == names.METRIC_HEALED_EVENT_LOST  # what HealedAlarm watches
    assert metric_name("taken-over") == "HealedTakenOver"


@pytest.mark.parametrize(
    ("observed", "reason"),
    [
        (Observed(now=NOW), HealReason.EVENT_LOST),  # nothing explains it
        (Observed(now=NOW, happened_at=LONG_AGO), HealReason.EVENT_LOST),
        (Observed(now=NOW, happened_at=NOW - timedelta(seconds=EVENT_LATE_SECONDS - 1)), HealReason.EVENT_LATE),
        # resumed after the publish: its event came while the stage was paused, rightly skipped
        (Observed(now=NOW, happened_at=LONG_AGO, resumed_at=NOW - timedelta(minutes=1)), HealReason.RESUMED),
        # resumed before the publish: the event path should have acted
        (Observed(now=NOW, happened_at=NOW - timedelta(minutes=5), resumed_at=LONG_AGO), HealReason.EVENT_LOST),
        (Observed(now=NOW, resumed_at=NOW - timedelta(minutes=2)), HealReason.RESUMED),
        (Observed(now=NOW, resumed_at=LONG_AGO), HealReason.EVENT_LOST),  # an old resume explains nothing
        # the policy was written after the publish: the event was handled under the previous policy
        (
            Observed(now=NOW, happened_at=LONG_AGO, policy_changed_at=NOW - timedelta(minutes=1)),
            HealReason.POLICY_CHANGED,
        ),
        (Observed(now=NOW, happened_at=NOW - timedelta(minutes=5), policy_changed_at=LONG_AGO), HealReason.EVENT_LOST),
        (Observed(now=NOW, policy_changed_at=NOW), HealReason.EVENT_LOST),  # unknown when it happened
        # the automation's queue read: events still queued make any heal late, however old (a burst drains
        # for minutes); an empty queue leaves only EventBridge's transit, so a 60-s-old publish was lost
        (Observed(now=NOW, happened_at=NOW - timedelta(minutes=5), events_queued=True), HealReason.EVENT_LATE),
        (Observed(now=NOW, events_queued=True), HealReason.EVENT_LATE),
        (Observed(now=NOW, happened_at=NOW - timedelta(seconds=60), events_queued=False), HealReason.EVENT_LOST),
        (
            Observed(now=NOW, happened_at=NOW - timedelta(seconds=EVENT_TRANSIT_SECONDS - 1), events_queued=False),
            HealReason.EVENT_LATE,
        ),
        # a resume still explains it first
        (
            Observed(now=NOW, happened_at=LONG_AGO, resumed_at=NOW - timedelta(minutes=1), events_queued=True),
            HealReason.RESUMED,
        ),
    ],
)
def test_a_heal_is_explained_by_what_was_observed(observed: Observed, reason: HealReason) -> None:
    assert explain_heal(observed) is reason


def test_what_the_converge_function_knows_wins() -> None:
    observed = Observed(now=NOW, happened_at=LONG_AGO)
    assert explain_heal(observed, known="taken-over") is HealReason.TAKEN_OVER
    assert explain_heal(observed, known=HealReason.IVS_ENDED) is HealReason.IVS_ENDED
    with pytest.raises(ValueError):
        explain_heal(observed, known="because")  # not in the vocabulary


def test_one_claim_lease_rule() -> None:
    fresh, stale = NOW - timedelta(seconds=1), NOW - CLAIM_LEASE - timedelta(seconds=1)
    assert claim_verdict(owner="me", claimed_at=stale, caller="me", now=NOW) is ClaimVerdict.RESUME
    assert claim_verdict(owner="me", claimed_at=fresh, caller="me", now=NOW) is ClaimVerdict.RESUME
    assert claim_verdict(owner="other", claimed_at=fresh, caller="me", now=NOW) is ClaimVerdict.HELD
    assert claim_verdict(owner="other", claimed_at=NOW - CLAIM_LEASE, caller="me", now=NOW) is ClaimVerdict.HELD
    assert claim_verdict(owner="other", claimed_at=stale, caller="me", now=NOW) is ClaimVerdict.TAKE_OVER
    assert lease_runs(fresh, NOW) and not lease_runs(stale, NOW) and not lease_runs(None, NOW)


def test_the_queue_depth_is_read_once_a_pass_per_queue_and_counts_every_kind_of_message() -> None:
    from stagepilot.adapters.queues import QueueDepths, queue_urls_from_env

    asked: list[str] = []
    answers = {
        "q-composition": {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"},
        "q-moderation": {"ApproximateNumberOfMessagesDelayed": "2"},  # a retry waiting its back-off
    }

    class Sqs:
        def get_queue_attributes(self, QueueUrl: str, AttributeNames: list[str]) -> dict[str, object]:
            asked.append(QueueUrl)
            return {"Attributes": answers[QueueUrl]}

    now = [0.0]
    urls = queue_urls_from_env(
        {"STAGEPILOT_QUEUE_URLS": '{"composition": "q-composition", "moderation": "q-moderation"}'}
    )
    depths = QueueDepths(urls, Sqs, clock=lambda: now[0])

    assert (depths("composition"), depths("moderation"), depths("replication")) == (False, True, None)
    assert depths("composition") is False and asked == ["q-composition", "q-moderation"]  # kept within a pass
    now[0] = 31.0
    depths("composition")
    assert asked == ["q-composition", "q-moderation", "q-composition"]
    assert queue_urls_from_env({"STAGEPILOT_QUEUE_URLS": "not json"}) == {}
