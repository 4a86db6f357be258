"""``reconcile --all --dry-run`` examines every live stage and shows how far it got (issue 26): the
deployed pass stops at its share of listings and its timeout and goes on from its cursor next time; a dry
run from the CLI has no next time (its writes, the cursor's included, are held back)."""

from __future__ import annotations

import io
from typing import Any

from stagepilot.automations import convergence_order
from stagepilot.cli.output import Output
from stagepilot.cli.reconcile import dry_run_pass
from stagepilot.convergence import run_pass
from stagepilot.local.deployment import LocalDeployment
from stagepilot.operator.whatif import what_if
from tests.support import put_policy

STAGES = [f"arn:aws:ivs:us-east-1:123456789012:stage/Progress{n:04d}" for n in range(4)]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def live_fleet(make_deployment: Any) -> LocalDeployment:
    deployment: LocalDeployment = make_deployment()
    put_policy(deployment, {"stageArn": "default", "moderation": {"blockedUserIds": ["troll-3"]}})
    for n, arn in enumerate(STAGES):
        deployment.ivs.create_stage(arn)
        deployment.ivs.connect(arn, f"p-{n}", user_id="troll-3" if n == 3 else f"host-{n}", publish=True)
    return deployment


def test_a_pass_reports_its_progress_stage_by_stage(make_deployment: Any):
    deployment = live_fleet(make_deployment)
    seen: list[tuple[int, int]] = []
    report = run_pass(deployment.services, convergence_order(), progress=lambda done, of: seen.append((done, of)))
    assert seen == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)] and report.reached == 4


def test_the_clis_dry_run_examines_every_live_stage_whatever_the_passs_share(make_deployment: Any):
    deployment = live_fleet(make_deployment)
    with what_if(deployment.services) as whatif:  # the deployed pass's share: 2 listings, the rest deferred
        cut = run_pass(whatif.services, convergence_order(), participant_listings=2)
    assert (cut.examined, cut.reached, len(cut.deferred)) == (4, 2, 2)

    stderr = Terminal()
    with what_if(deployment.services) as whatif:
        report = dry_run_pass(whatif.services, None, Output(stdout=io.StringIO(), stderr=stderr))
        calls = whatif.calls

    assert (report.examined, report.reached, report.deferred) == (4, 4, [])
    assert [c.operation for c in calls] == ["DisconnectParticipant"]  # the troll, held back
    assert "examining live stages: 0 of 4" in stderr.getvalue() and stderr.getvalue().endswith("4 of 4\n")
    assert not deployment.ivs.mutating_calls()  # a dry run
