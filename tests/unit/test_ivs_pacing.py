"""The IVS adapter's pacing is a bound per window, throttles are sent again where they happen, and a
402 quota is told apart from a throttle (issue 24)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from stagepilot import budget
from stagepilot.adapters.ivs import (
    FUNCTION_CLIENT_CONFIG,
    READ_RETRIES,
    THROTTLE_RETRIES,
    IvsQuotaExceeded,
    IvsRejected,
    IvsStage,
    Pacer,
    Participant,
)
from stagepilot.errors import RetryLater
from stagepilot.local.ivs import IvsStandIn
from tests.support import Time

STAGE = "arn:aws:ivs:us-east-1:123456789012:stage/AbCdef1G2hij"


def _sends(pacer: Pacer, time: Time, key: str, count: int) -> list[float]:
    sent = []
    for _ in range(count):
        pacer.wait(key)
        sent.append(round(time.now, 6))
    return sent


def test_a_share_is_a_bound_on_every_window_not_an_average() -> None:
    time = Time()
    pacer = Pacer(1.0, shares={"GetStage": (2,)}, clock=time.clock, sleep=time.sleep)
    sent = _sends(pacer, time, "GetStage", 6)
    assert sent == [0.0, 0.0, 1.2, 1.2, 2.4, 2.4]  # two at once, then nothing until the window has passed
    assert all(sum(1 for t in sent if start <= t < start + budget.WINDOW_SECONDS) <= 2 for start in sent)


def test_each_operation_is_paced_on_its_own() -> None:
    time = Time()
    pacer = Pacer(1.0, shares={"GetStage": (1,), "ListParticipants": (1,)}, clock=time.clock, sleep=time.sleep)
    for operation in ("GetStage", "GetStage", "ListParticipants", "GetStage"):
        pacer.wait(operation)
    assert time.slept == [pytest.approx(1.2), pytest.approx(1.2)]  # ListParticipants did not wait


def test_a_framed_share_sends_only_at_the_start_of_its_own_frames() -> None:
    first, second = Time(), Time()
    replication = Pacer(1.0, shares={"GetParticipant": (1, 0)}, clock=first.clock, sleep=first.sleep)
    moderation = Pacer(1.0, shares={"GetParticipant": (0, 1)}, clock=second.clock, sleep=second.sleep)
    assert _sends(replication, first, "GetParticipant", 3) == [0.0, 2.8, 5.6]
    assert _sends(moderation, second, "GetParticipant", 3) == [1.4, 4.2, 7.0]


def test_stagepilot_never_sends_more_than_its_share_into_any_second() -> None:
    """Every container of every caller of each operation asking as fast as it can, at random moments, with
    requests taking 0-0.2 s to reach IVS: no one-second window at IVS ever holds more than
    budget.FUNCTIONS_PER_SECOND of stagepilot's calls (the old split's pacers put 6-8 there)."""
    rng = random.Random(24)
    for operation in budget.SPLIT:
        arrivals: list[float] = []
        for caller in budget.CALLERS:
            share = budget.container_shares(caller).get(operation)
            if share is None:
                continue
            for _ in range(budget.CONCURRENCY[caller]):
                time = Time(1000.0 + rng.uniform(0, 3))
                pacer = Pacer(1.0, shares={operation: share}, clock=time.clock, sleep=time.sleep)
                for _ in range(40):
                    time.now += rng.choice((0.0, 0.0, rng.uniform(0, 1.5)))
                    pacer.wait(operation)
                    arrivals.append(time.now + rng.uniform(0, budget.LATENCY_SPREAD))
        arrivals.sort()
        most = max(sum(1 for t in arrivals[i:] if t < start + 1.0) for i, start in enumerate(arrivals))
        assert most <= budget.FUNCTIONS_PER_SECOND, (operation, most)


def test_after_a_throttle_the_pacer_slows_the_operation_down_and_recovers() -> None:
    time = Time()
    pacer = Pacer(1.0, shares={"GetStage": (2,)}, clock=time.clock, sleep=time.sleep)
    pacer.wait("GetStage")
    pacer.throttled("GetStage")
    assert pacer.slowed("GetStage")
    pacer.wait("GetStage")
    assert time.now == pytest.approx(Pacer.SLOWED_SPACING)  # not at once, as its share of 2 would allow
    time.now += Pacer.RECOVERY_SECONDS
    assert not pacer.slowed("GetStage")
    before = time.now
    pacer.wait("GetStage")
    pacer.wait("GetStage")
    assert time.now == before  # two at once again


def test_a_pacer_refuses_a_rate_or_share_that_allows_nothing() -> None:
    with pytest.raises(ValueError):
        Pacer(1.0, rates={"GetStage": 0.0})
    with pytest.raises(ValueError):
        Pacer(-1.0)
    with pytest.raises(ValueError):
        Pacer(1.0, shares={"GetStage": (0, 0)})


def _stage(ivs: IvsStandIn, time: Time, *, left: float | None = 60.0) -> tuple[IvsStage, list[float]]:
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    stage = IvsStage(
        ivs.client(),
        pacer=Pacer(1.0, shares={}, clock=time.clock, sleep=time.sleep),
        sleep=sleep,
        jitter=lambda low, high: (low + high) / 2,
    )
    if left is not None:
        start = time.now
        stage.time_left = lambda: left - (time.now - start)
    return stage, waits


def test_a_throttled_write_is_sent_again_after_a_short_wait_while_the_invocation_has_time() -> None:
    ivs = IvsStandIn()
    ivs.create_stage(STAGE)
    time = Time()
    stage, waits = _stage(ivs, time)
    ivs.fail_next("DisconnectParticipant", 2, error="ThrottlingException")

    with pytest.raises(IvsRejected):  # IVS's own answer to the third try: no RetryLater, no 30-s back-off
        stage.disconnect(STAGE, "p1", "reason")

    assert [c.status for c in ivs.calls if c.operation == "DisconnectParticipant"] == [429, 429, 404]
    assert waits == [2.0, 2.0]  # jittered within 1-3 s


def test_a_throttled_call_goes_back_to_the_queue_when_the_invocation_has_no_time_for_a_wait() -> None:
    ivs = IvsStandIn()
    ivs.create_stage(STAGE)
    time = Time()
    stage, waits = _stage(ivs, time, left=16.0)
    ivs.fail_next("DisconnectParticipant", 1, error="ThrottlingException")
    with pytest.raises(RetryLater) as raised:
        stage.disconnect(STAGE, "p1", "reason")
    assert raised.value.throttled and waits == []


def test_a_call_throttled_past_its_retries_goes_back_to_the_queue() -> None:
    ivs = IvsStandIn()
    ivs.create_stage(STAGE)
    stage, waits = _stage(ivs, Time(), left=600.0)
    ivs.fail_next("GetStage", THROTTLE_RETRIES + 1, error="ThrottlingException")
    with pytest.raises(RetryLater):
        stage.active_session_id(STAGE)
    assert len(waits) == THROTTLE_RETRIES


@pytest.mark.parametrize("operation", ["GetStage", "DisconnectParticipant"])
def test_a_quota_402_is_not_a_throttle_it_is_reported_at_once(operation: str) -> None:
    ivs = IvsStandIn()
    ivs.create_stage(STAGE)
    stage, waits = _stage(ivs, Time())
    ivs.fail_next(operation, 1, error="ServiceQuotaExceededException")
    with pytest.raises(IvsQuotaExceeded) as raised:
        if operation == "GetStage":
            stage.active_session_id(STAGE)
        else:
            stage.disconnect(STAGE, "p1", "reason")
    assert raised.value.code == "ServiceQuotaExceededException"
    assert len([c for c in ivs.calls if c.operation == operation]) == 1 and waits == []


def test_without_a_deadline_a_throttled_read_is_tried_again_after_the_pacers_wait() -> None:
    ivs = IvsStandIn()
    ivs.create_stage(STAGE)
    time = Time()
    stage = IvsStage(ivs.client(), pacer=Pacer(2.0, clock=time.clock, sleep=time.sleep))
    ivs.fail_next("GetStage", READ_RETRIES, error="ThrottlingException")

    assert stage.active_session_id(STAGE) is None  # answered on the last try

    assert [c.status for c in ivs.calls] == [429] * READ_RETRIES + [200]
    assert time.slept == [0.5] * READ_RETRIES


def test_without_a_deadline_a_throttled_write_is_not_tried_again_here() -> None:
    ivs = IvsStandIn()
    ivs.create_stage(STAGE)
    ivs.fail_next("DisconnectParticipant", 1, error="ThrottlingException")
    with pytest.raises(RetryLater):
        IvsStage(ivs.client()).disconnect(STAGE, "p1", "reason")
    calls: list[Any] = [c for c in ivs.calls if c.operation == "DisconnectParticipant"]
    assert len(calls) == 1  # the claim and the queue decide when to try again


def test_every_request_of_the_functions_client_waits_for_the_pacer() -> None:
    """botocore retrying a throttled request itself would spend the quota outside the budget."""
    ivs = IvsStandIn()
    ivs.create_stage(STAGE)
    waits: list[str] = []

    class Counting(Pacer):
        def wait(self, key: str = "") -> None:
            waits.append(key)

    stage = IvsStage(ivs.client(config=FUNCTION_CLIENT_CONFIG), pacer=Counting(1000.0))
    ivs.fail_next("GetStage", READ_RETRIES, error="ThrottlingException")

    assert stage.active_session_id(STAGE) is None
    assert len(ivs.calls) == len(waits) == READ_RETRIES + 1


def test_environments_taking_turns_in_the_slots_never_exceed_the_slots_share() -> None:
    """Reserved concurrency caps concurrent executions, not environments: in a deploy one more environment
    exists, and an invocation may land in the one idle longest, which never saw the calls its slot just
    sent. Each invocation's quiet window keeps the two slots' calls within their two shares."""
    time = Time()
    environments = [Pacer(1.0, shares={"StartComposition": (1,)}, clock=time.clock, sleep=time.sleep) for _ in range(3)]
    free_at = [0.0, 0.0, 0.0]
    slots = [0.0, 0.05]  # when each slot's next invocation starts (reserved concurrency 2)
    sent: list[float] = []
    for _ in range(60):
        slot = min(range(len(slots)), key=slots.__getitem__)
        time.now = slots[slot]
        idle = [i for i, free in enumerate(free_at) if free <= time.now]
        environment = min(idle, key=lambda i: (free_at[i], i))
        environments[environment].invocation_started()
        environments[environment].wait("StartComposition")
        sent.append(time.now)
        free_at[environment] = time.now + 0.01
        slots[slot] = free_at[environment] + 0.001
    sent.sort()
    most = max(sum(1 for t in sent[i:] if t < start + budget.WINDOW_SECONDS - 1e-9) for i, start in enumerate(sent))
    assert most <= 2


def test_an_invocations_first_call_waits_one_window_and_the_next_ones_do_not() -> None:
    time = Time(10.0)
    pacer = Pacer(1.0, shares={"GetStage": (1,), "StartComposition": (1,)}, clock=time.clock, sleep=time.sleep)
    pacer.invocation_started()
    pacer.wait("GetStage")
    assert time.now == pytest.approx(10.0 + budget.WINDOW_SECONDS)
    pacer.wait("StartComposition")  # the same invocation: its window has passed
    assert time.now == pytest.approx(10.0 + budget.WINDOW_SECONDS)


@pytest.mark.parametrize(("starts_at", "kept_answer"), [(0.5, True), (0.5, False), (0.0, True)])
def test_a_get_participant_that_waited_for_its_frame_takes_the_answer_kept_meanwhile(
    starts_at: float, kept_answer: bool
) -> None:
    """Replication and moderation both ask about a shared publisher, each in its own frames: the one whose
    frame comes second reads what the other kept while it waited, and asks IVS only if nothing was kept."""
    ivs = IvsStandIn()
    ivs.create_stage(STAGE)
    session = ivs.connect(STAGE, "p1", user_id="host-1", publish=True)
    assert session is not None
    time = Time(now=starts_at)
    pacer = Pacer(1.0, shares={"GetParticipant": (1, 0)}, clock=time.clock, sleep=time.sleep)  # our frame, theirs
    stage = IvsStage(ivs.client(), pacer=pacer)
    asked: list[float] = []
    kept = Participant("p1", "host-1", "", False, {"role": "host"}, "NONE", None)

    def read_kept() -> Participant | None:
        asked.append(time.now)
        return kept if kept_answer else None

    found = stage.participant(STAGE, session, "p1", kept=read_kept)

    sent = [c for c in ivs.calls if c.operation == "GetParticipant"]
    if starts_at == 0.0:  # our frame is open: nobody can have asked since; IVS is asked, nothing read
        assert (asked, len(sent), found.state) == ([], 1, "CONNECTED")
    elif kept_answer:  # waited 2.3 s for our next frame; the other automation kept its answer meanwhile
        assert (asked, sent, found) == ([2.8], [], kept)
    else:  # nothing kept: asked once, at the frame it waited for (not made to wait again)
        assert (asked, len(sent), time.slept, found.user_id) == ([2.8], 1, [pytest.approx(2.3)], "host-1")
