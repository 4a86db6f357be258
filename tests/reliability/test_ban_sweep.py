"""A new ban's sweep through every live stage, handed to the convergence pass (issue 26): ``ban add``
disconnects at once the participants the door's token records name; the rest (tokens the application
made itself, on any live stage) is the pass's, which judges every connected participant against the bans
it read at its start. ``ban list`` shows how far the passes that started after the ban got
(adapters/pass_log.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from stagepilot.adapters.pass_log import PassLog
from stagepilot.automations import convergence_order
from stagepilot.convergence import run_pass
from stagepilot.local.deployment import LocalDeployment
from tests.support import put_policy

STAGES = [f"arn:aws:ivs:us-east-1:123456789012:stage/Sweep{n:07d}" for n in range(6)]
PER_PASS = 2  # the pass's participant listings: 2 stages a pass here (about a hundred deployed)


def one_pass(deployment: LocalDeployment) -> None:
    deployment.clock.advance_to(deployment.clock() + timedelta(seconds=60))
    run_pass(deployment.services, convergence_order(), participant_listings=PER_PASS)


def test_the_passes_after_a_ban_sweep_every_live_stage_and_ban_list_can_say_how_far(make_deployment: Any):
    deployment: LocalDeployment = make_deployment()
    put_policy(deployment, {"stageArn": "default", "moderation": {"blockedUserIds": ["spammer-7"]}})
    for n, arn in enumerate(STAGES):
        deployment.ivs.create_stage(arn)
        deployment.ivs.connect(arn, f"p-host-{n}", user_id=f"host-{n}")
        if n % 2 == 0:  # the raider watches on every other stage, with tokens the application made
            deployment.ivs.connect(arn, f"p-raider-{n}", user_id="raider")
    one_pass(deployment)  # before the ban: it does not count toward the ban's sweep
    log = PassLog(deployment.table)
    ban, _ = deployment.services.bans.add("raider", reason="raid", ttl=None, replace=False, stage_arn=None)
    since = deployment.clock()
    assert ban.created_at <= since.isoformat().replace("+00:00", "Z")

    progress = log.progress(since)
    assert (progress.passes, progress.done, progress.examinable, progress.passes_left) == (0, False, 6, 3)

    one_pass(deployment)
    progress = log.progress(since)
    assert (progress.passes, progress.reached, progress.done) == (1, PER_PASS, False)
    assert progress.to_json()["stagesChecked"] == PER_PASS and progress.passes_left == 2

    one_pass(deployment)
    assert not log.progress(since).done
    one_pass(deployment)
    progress = log.progress(since)
    assert progress.done and progress.to_json()["stagesChecked"] == 6 and progress.passes == 3
    assert progress.finished_at == since + timedelta(seconds=180)  # the third pass after the ban
    raiders = [
        c.params["participantId"] for c in deployment.ivs.mutating_calls() if c.operation == "DisconnectParticipant"
    ]
    assert sorted(raiders) == ["p-raider-0", "p-raider-2", "p-raider-4"]


def test_a_pass_cut_short_counts_only_the_stages_it_finished(make_deployment: Any):
    deployment: LocalDeployment = make_deployment()
    for arn in STAGES:
        deployment.ivs.create_stage(arn)
        deployment.ivs.connect(arn, f"p-{arn[-3:]}", user_id="viewer")
    since = deployment.clock()
    deployment.services.bans.add("raider", reason="raid", ttl=None, replace=False, stage_arn=None)
    deployment.clock.advance_to(since + timedelta(seconds=60))
    report = run_pass(deployment.services, convergence_order(), participant_listings=1)
    assert (report.examined, report.reached, len(report.deferred)) == (6, 1, 5)
    assert PassLog(deployment.table).progress(since).to_json()["stagesChecked"] == 1
    # A pass over one stage (reconcile STAGE_ARN, converge-now) is not a sweep: it is not recorded.
    run_pass(deployment.services, convergence_order(), only_stage=STAGES[0])
    assert PassLog(deployment.table).progress(since).passes == 1


def test_the_pass_judges_publishers_on_the_ban_list_it_read_not_a_ban_read_each(make_deployment: Any):
    """One ban list read per pass, whatever the number of connected publishers (issue 24): a banned
    publisher, with a stage ban and a global one, is disconnected on it, and no ``BAN`` key is read apart."""
    deployment: LocalDeployment = make_deployment()
    put_policy(deployment, {"stageArn": "default", "moderation": {"blockedUserIds": ["spammer-7"]}})
    for n, arn in enumerate(STAGES[:3]):
        deployment.ivs.create_stage(arn)
        deployment.ivs.connect(arn, f"p-host-{n}", user_id=f"host-{n}", publish=True)
        deployment.ivs.connect(arn, f"p-guest-{n}", user_id=f"guest-{n}", publish=True)
    deployment.ivs.connect(STAGES[1], "p-raider", user_id="raider", publish=True)
    deployment.ivs.connect(STAGES[2], "p-local", user_id="local-troll", publish=True)
    deployment.services.bans.add("raider", reason="raid")
    deployment.services.bans.add("local-troll", reason="spam", stage_arn=STAGES[2])
    ban_reads: list[str] = []

    def count(model: Any, params: Any, **_: Any) -> None:
        if model.name in ("GetItem", "BatchGetItem") and '"BAN"' in repr(params).replace("'", '"'):
            ban_reads.append(model.name)

    deployment.table.client.meta.events.register("before-call.dynamodb", count)
    run_pass(deployment.services, convergence_order())

    assert ban_reads == []
    gone = sorted(
        c.params["participantId"] for c in deployment.ivs.mutating_calls() if c.operation == "DisconnectParticipant"
    )
    assert gone == ["p-local", "p-raider"]
