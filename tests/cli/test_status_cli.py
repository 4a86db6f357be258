"""``stagepilot status``: the fleet (every live stage) and one stage in detail, against the IVS stand-in
and moto over HTTP; ``--watch`` redraws."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest

from stagepilot.adapters.composition_hours import CompositionHours, Listed, composition_id
from stagepilot.automations.composition import CompositionAutomation
from stagepilot.cli import status
from stagepilot.decisions.composition_hours import CompositionHoursPerDay, utc_day
from stagepilot.errors import RetryLater
from stagepilot.events import parse_event
from stagepilot.local.ivs import IvsStandIn
from stagepilot.pipeline import handle_event
from tests.cli.conftest import handler_services, run
from tests.support import CHANNEL, ENCODER, OTHER_STAGE, SESSION, STAGE, STORAGE, EventFactory

IDLE_STAGE = "arn:aws:ivs:us-east-1:123456789012:stage/IdleStage0001"
OTHER_SESSION = "st-GreenSession1"  # IVS session ids are 16 characters
COMPOSITION = {
    "destinations": [{"name": "live", "channel": {"channelArn": CHANNEL, "encoderConfigurationArn": ENCODER}}]
}


def put(tmp_path: Path, document: dict) -> None:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(document))
    assert run("policy", "put", str(path)).status == 0


@pytest.fixture
def show(ivs: IvsStandIn, tmp_path: Path) -> IvsStandIn:
    """STAGE: its own policy (composition, replication of host-1 to OTHER_STAGE, moderation in dry run
    blocking troll-9), composed; OTHER_STAGE: on a paused default; IDLE_STAGE: nobody there."""
    events = EventFactory()
    for arn in (STAGE, OTHER_STAGE, IDLE_STAGE):
        ivs.create_stage(arn)
    put(tmp_path, {"stageArn": "default", "paused": True})
    put(
        tmp_path,
        {
            "stageArn": STAGE,
            "composition": COMPOSITION,
            "replication": [{"destinationStageArn": OTHER_STAGE, "participants": {"userIds": ["host-1"]}}],
            "moderation": {"dryRun": True, "blockedUserIds": ["troll-9"]},
        },
    )
    for participant, user in (("p-host", "host-1"), ("p-troll", "troll-9")):
        ivs.declare_participant(STAGE, participant, user_id=user)
        ivs.observe(events.published(participant, user_id=user))
    ivs.observe(events.published("p-green", user_id="guest", stage=OTHER_STAGE, session=OTHER_SESSION))
    published = parse_event(events.published("p-host", user_id="host-1"))
    assert handle_event(published, CompositionAutomation(), handler_services(ivs)).action == "composition-started"
    return ivs


def test_compositions_stagepilot_did_not_start_are_listed_and_counted(show: IvsStandIn):
    """The application's own composition (no stagepilot:managed tag): in the fleet view's summary and row,
    and in the stage view as another's (docs/policy.md, "What a stage may cost")."""
    s3 = {"s3": {"storageConfigurationArn": STORAGE, "encoderConfigurationArns": [ENCODER]}}
    show.client().start_composition(stageArn=STAGE, destinations=[s3])
    report = run("status", "--json").json()
    assert report["summary"]["unmanagedCompositions"] == 1
    [main] = [row for row in report["stages"] if row["stageArn"] == STAGE]
    assert main["composition"]["others"] == 1 and main["composition"]["managedByStagepilot"] is True
    text = run("status").stdout
    assert "1 composition(s) stagepilot did not start" in text.splitlines()[0]
    assert "+1 not stagepilot's" in text
    stage = run("status", STAGE).stdout
    assert len([line for line in stage.splitlines() if "ACTIVE  (other)" in line]) == 1


def test_the_fleet_view_shows_todays_composition_hours_and_the_limit(show: IvsStandIn):
    """compositionHoursPerDay (docs/policy.md): today's figure as the convergence pass keeps it, and the limit."""
    services = handler_services(show)
    now = datetime.now(UTC)
    [composition] = show.compositions(STAGE)
    live = {composition_id(composition.arn): Listed(now - timedelta(hours=2), STAGE, SESSION)}
    budget = CompositionHoursPerDay(limit=10, mode="block")
    CompositionHours(services.table).record_live(utc_day(now), live, now=now, budget=budget)

    hours = run("status", "--json").json()["summary"]["compositionHours"]
    assert (hours["day"], hours["limit"], hours["mode"], hours["spentAt"]) == (
        utc_day(now).isoformat(),
        10,
        "block",
        None,
    )
    assert 2 <= hours["hours"] < 2.1
    assert "composition hours today 2" in run("status").stdout.splitlines()[0]
    assert " of 10 (block)" in run("status").stdout.splitlines()[0]


def test_the_fleet_view_lists_every_live_stage_with_its_policy_and_composition(show: IvsStandIn):
    show.calls.clear()
    report = run("status", "--json").json()

    assert report["liveStages"] == 2  # IDLE_STAGE has nobody
    rows = {row["stageArn"]: row for row in report["stages"]}
    main, green = rows[STAGE], rows[OTHER_STAGE]
    assert main["sessionId"] == SESSION and main["compositionRecord"]["state"] == "started"
    assert main["composition"]["state"] == "ACTIVE" and main["composition"]["destinations"] == "1/1 destinations active"
    assert main["policy"] == {
        "source": "stage",
        "version": 1,
        "paused": False,
        "pausedBy": None,
        "dryRun": True,
        "valid": True,
        "sections": ["composition", "replication", "moderation"],
    }
    assert main["lastAction"]["action"] == "composition-started" and main["problems"] == []
    assert (green["policy"]["source"], green["policy"]["paused"]) == ("default", True)
    assert green["composition"]["state"] == "none" and green["lastAction"] is None
    assert report["time"].endswith("Z")
    assert report["summary"] == {
        "live": 2,
        "paused": 1,
        "dryRun": 1,
        "noPolicy": 0,
        "invalidPolicy": 0,
        "withProblems": 0,
        "composed": 1,
        "deadLetters": 0,
        "deadLetterQueues": {"composition": 0, "replication": 0, "moderation": 0},
        "alarmsInAlarm": [],
        "alarms": 0,
        "unmanagedCompositions": 0,
        "compositionHours": None,  # the stack sets no compositionHoursPerDay
        "notCheckedForPublishers": 0,
    }
    # What it asked IVS: one listing of the stages and one of the compositions, whatever the fleet's size (no
    # convergence pass has run here: no listing of its own to take).
    assert sorted(c.operation for c in show.calls) == ["ListCompositions", "ListStages"]
    assert report["listing"]["by"] == "ListStages" and report["listing"]["why"] == "no listing of the convergence pass"

    text = run("status").stdout.splitlines()
    assert text[0].startswith("2 live stage(s): 1 paused, 1 dry-run, 0 with problems, dead letters 0, ")
    assert "(read 20" in text[0] and text[0].endswith("; live stages listed now)")
    main_line = text[text.index(f"{STAGE}  session {SESSION}") + 1]
    assert "policy own v1 DRY-RUN" in main_line and "composition ACTIVE (1/1 destinations active)" in main_line
    assert any("policy default v1 PAUSED" in line for line in text)
    assert "  last action none in the last hour" in text  # the green room: nothing done there


def test_problems_shows_only_the_stages_that_need_an_operator(show: IvsStandIn):
    assert "no stage with a problem" in run("status", "--problems").stdout
    [composition] = show.compositions(STAGE)
    show.fail_destination(composition.arn)

    report = run("status", "--problems", "--json").json()

    assert report["problemsOnly"] is True and report["summary"]["live"] == 2  # the summary counts every stage
    assert report["summary"]["withProblems"] == 1
    [row] = report["stages"]
    assert row["stageArn"] == STAGE and row["problems"] == ["stagepilot's composition FAILED"]  # its one destination
    text = run("status", "--problems").stdout
    assert "  composition FAILED (0/1 destinations active)" in text
    assert "  PROBLEM: stagepilot's composition FAILED" in text
    assert OTHER_STAGE not in text
    assert run("status", STAGE, "--problems").status == 2


def test_one_stage_shows_every_participant_and_what_the_policy_says_about_each(show: IvsStandIn):
    sqs = boto3.client("sqs")
    dlq_url = sqs.get_queue_url(QueueName="StagePilot-composition-dlq")["QueueUrl"]
    sqs.send_message(QueueUrl=dlq_url, MessageBody="{}")
    cloudwatch = boto3.client("cloudwatch")
    topics = {
        "StagePilot": boto3.client("sns").list_topics()["Topics"][0]["TopicArn"],  # the stack's AlarmTopicArn
        "StagePilot-staging": boto3.client("sns").create_topic(Name="StagePilot-staging-AlarmTopic")["TopicArn"],
    }
    # The same alarm in a second stack of the account and region (its name starts with "StagePilot-" too).
    for stack_name, topic in topics.items():
        cloudwatch.put_metric_alarm(
            AlarmName=f"{stack_name}-Composition-DlqDepthAlarm",
            AlarmActions=[topic],
            MetricName="m",
            Namespace="n",
            Statistic="Maximum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=1,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
        )
        cloudwatch.set_alarm_state(
            AlarmName=f"{stack_name}-Composition-DlqDepthAlarm", StateValue="ALARM", StateReason="t"
        )
    show.observe(EventFactory().publish_error("p-viewer", user_id="troll-9", event_id="evt-viewer"))  # never published

    report = run("status", STAGE, "--json").json()

    says = {p["participantId"]: p["policySays"] for p in report["participants"]}
    assert says["p-host"] == [f"replicated to {OTHER_STAGE}: NOT REPLICATING"]
    assert says["p-troll"] == ["dry run: would be kicked (blocked-user-id)"]
    assert says["p-viewer"] == ["dry run: would be kicked (blocked-user-id)"]
    assert [p["participantId"] for p in report["publishers"]] == ["p-host", "p-troll"]
    assert report["deadLetterQueues"] == {"composition": 1, "replication": 0, "moderation": 0}
    assert report["alarms"] == [{"name": "StagePilot-Composition-DlqDepthAlarm", "state": "ALARM"}]
    [composition] = report["compositions"]
    assert composition["destinationStates"] == ["ACTIVE"] and composition["managedByStagepilot"]
    assert report["sessionStartTime"].endswith("Z")

    text = run("status", STAGE).stdout
    assert "participants (3 connected, 2 publishing now)" in text
    assert "  p-viewer user=troll-9  CONNECTED  viewer\n    policy: dry run: would be kicked (blocked-user-id)" in text
    assert "dead-letter queues: composition 1, replication 0, moderation 0" in text
    assert "alarms: 1, in ALARM: StagePilot-Composition-DlqDepthAlarm" in text
    assert "destinations ACTIVE" in text


def test_a_banned_user_still_connected_is_to_be_kicked_and_a_paused_stage_acts_on_nobody(show: IvsStandIn):
    assert run("ban", "add", "guest", "--no-disconnect").status == 0
    assert run("ban", "add", "host-1", "--no-disconnect").status == 0
    main = {p["participantId"]: p["policySays"] for p in run("status", STAGE, "--json").json()["participants"]}
    assert main["p-host"][0] == "to be kicked (global-ban): still connected"
    green = run("status", OTHER_STAGE, "--json").json()
    assert green["participants"][0]["policySays"] == ["stage paused: no automation acts"]


def test_status_with_only_a_table_says_the_queues_are_unknown(show: IvsStandIn):
    text = run("status", STAGE, "--table", "StagePilot-Table", "--stack", "Nope").stdout
    assert "dead-letter queues: unknown (no stack outputs; use --stack)" in text


def test_watch_redraws_until_interrupted(show: IvsStandIn, monkeypatch: pytest.MonkeyPatch):
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(status.time, "sleep", sleep)
    text = run("status", "--watch", "2")
    assert text.status == 0 and len(sleeps) == 2 and 0 < sleeps[0] <= 2.0  # the period, less the frame's reads
    frames = text.stdout.split("\n\n")
    assert len(frames) == 2 and all(f.startswith("# read 20") and "every 2 s, Ctrl-C to stop" in f for f in frames)
    sleeps.clear()
    lines = run("status", STAGE, "--watch", "--json").stdout.splitlines()
    assert len(sleeps) == 2 and [json.loads(line)["stageArn"] for line in lines] == [STAGE, STAGE]


def test_watch_keeps_its_period_whatever_a_frame_takes_and_survives_a_failed_refresh():
    from stagepilot.cli.output import Output

    now = [0.0]
    sleeps: list[float] = []
    reads = iter([3.0, 1.0, 7.0, 0.5])  # how long each frame's reads take (the period is 5 s)

    def build() -> dict:
        took = next(reads)
        now[0] += took
        if took == 1.0:
            raise RetryLater("DynamoDB query: ProvisionedThroughputExceededException")
        return {"time": f"t={now[0] - took:g}"}

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds
        if len(sleeps) == 4:
            raise KeyboardInterrupt

    stdout = io.StringIO()
    out = Output(stdout=stdout, stderr=io.StringIO())
    code = status.watch(out, build, lambda report, o: o.line("frame"), every=5.0, sleep=sleep, clock=lambda: now[0])

    assert code == 0
    assert sleeps == [2.0, 4.0, 0.0, 4.5]  # frames start at 0, 5, 10 and, after a 7-s frame, at once (17)
    text = stdout.getvalue()
    assert "# read t=0  every 5 s" in text and "# read t=10  every 5 s" in text and "# read t=17" in text
    assert "# refresh failed at " in text and "(last read t=0)" in text and "ProvisionedThroughput" in text


def test_a_first_read_that_fails_is_the_commands_error_even_with_watch(ivs: IvsStandIn):
    result = run("status", "--watch", "2", "--stack", "Nope")
    assert result.status == 1 and "stack Nope not found" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("seconds", ["0", "0.5", "x", "3601"])
def test_watch_takes_a_sensible_period(seconds: str, aws: str):
    result = run("status", "--watch", seconds)
    assert result.status == 2 and "seconds from 1 to 3600" in result.stderr


def test_each_participants_recording_is_shown_with_its_s3_location(ivs: IvsStandIn, tmp_path: Path):
    from stagepilot.events import parse_event as parse

    events = EventFactory()
    ivs.create_stage(STAGE)
    ivs.set_stage_recording(STAGE, {"storageConfigurationArn": STORAGE})
    put(tmp_path, {"stageArn": STAGE, "composition": COMPOSITION})
    emitted: list[dict] = []
    ivs._on_event = emitted.append  # what IVS sends: the composition function keeps the recording events
    ivs.observe(events.published("p-host", user_id="host-1"))
    [started] = [e for e in emitted if e["detail"]["event_name"] == "Recording Start"]
    handle_event(parse(started), CompositionAutomation(), handler_services(ivs))

    shown = run("status", STAGE)

    assert shown.status == 0, shown.stderr
    prefix = started["detail"]["recording_s3_key_prefix"]
    assert f"    recording: ACTIVE  s3://{started['detail']['recording_s3_bucket_name']}/{prefix}" in shown.stdout
    [host] = run("status", STAGE, "--json").json()["participants"]
    assert host["recording"]["lastEvent"] == "Recording Start"


def test_status_shows_only_the_bans_that_hold_on_the_stage_and_a_join_banned_viewer(show: IvsStandIn):
    assert run("ban", "add", "host-1", "--stage", OTHER_STAGE, "--no-disconnect").status == 0
    show.connect(STAGE, "p-viewer", user_id="lurker-4")  # a subscriber: IVS sends no event for it
    assert run("ban", "add", "lurker-4", "--stage", STAGE, "--no-disconnect").status == 0

    main = {p["participantId"]: p["policySays"] for p in run("status", STAGE, "--json").json()["participants"]}

    assert not any("kicked" in line for line in main["p-host"])  # banned on another stage only
    assert main["p-viewer"] == ["to be kicked (stage-ban, join ban): connected while banned"]


def test_who_is_on_air_now_a_host_who_stopped_is_not_a_publisher_and_a_kicked_one_shows_as_kicked(show: IvsStandIn):
    """IVS's ``published`` means "ever published in the session" (issue 26): the participant's events say
    whether it publishes now; a participant stagepilot disconnected is shown as kicked, not as a viewer."""
    show.observe(EventFactory().stage("Participant Unpublished", "p-host", user_id="host-1", event_id="evt-stop"))
    assert run("disconnect", STAGE, "p-troll", "--reason", "spam").status == 0

    report = run("status", STAGE, "--json").json()

    by_id = {p["participantId"]: p for p in report["participants"]}
    assert (by_id["p-host"]["published"], by_id["p-host"]["publishingNow"]) == (True, False)
    assert by_id["p-host"]["state"] == "CONNECTED" and not by_id["p-host"]["kicked"]
    assert (by_id["p-troll"]["state"], by_id["p-troll"]["kicked"]) == ("DISCONNECTED", True)
    assert report["publishers"] == []  # nobody on air now
    text = run("status", STAGE).stdout
    assert "participants (1 connected, 0 publishing now, 1 published earlier, 1 kicked)" in text
    assert "  p-host user=host-1  CONNECTED  published earlier, not publishing now" in text
    assert "  p-troll user=troll-9  KICKED  disconnected by stagepilot (had published)" in text


def test_the_fleet_view_takes_the_convergence_passs_listing_of_a_large_fleet_while_it_is_fresh(show: IvsStandIn):
    """Issue 26: ten ListStages pages at the CLI's share took 5 s of a 7 s fleet view at 1,000 live stages. The
    pass lists every stage each minute anyway and keeps the live ones with its record: the view reads that (one
    GetItem) and says how old it is. IVS is listed again where that costs no wait (at most the CLI's 3 pages
    in a window: 300 stages, then the view is exact), when the listing is old, or with --fresh."""
    from datetime import UTC, datetime, timedelta

    from stagepilot.adapters.pass_log import ListedStage, PassLog
    from stagepilot.automations import convergence_order
    from stagepilot.convergence import run_pass

    services = handler_services(show)
    run_pass(services, convergence_order())  # a full pass, as the scheduled function runs it
    kept = PassLog(services.table).listing()
    assert kept is not None and kept.stages_listed == 3  # IDLE_STAGE too: one ListStages page
    assert [(s.arn, s.session_id) for s in kept.stages] == [(STAGE, SESSION), (OTHER_STAGE, OTHER_SESSION)]
    show.calls.clear()
    small = run("status", "--json").json()
    assert sorted(c.operation for c in show.calls) == ["ListCompositions", "ListStages"]  # 3 stages: listed now
    assert small["listing"]["why"] == "3 stage(s) at the last pass: listed at once"

    # A fleet of 1,000 stages as the pass listed it (a record as the pass writes it; two of them live).
    def listed(at: datetime) -> None:
        from stagepilot.adapters.pass_log import PassRecord

        live = [ListedStage(STAGE, SESSION, ""), ListedStage(OTHER_STAGE, OTHER_SESSION, "")]
        PassLog(services.table).record(PassRecord(at, examinable=2, reached=2), live, stages_listed=1000)

    listed(datetime.now(UTC) - timedelta(seconds=20))
    show.calls.clear()
    report = run("status", "--json").json()
    assert [c.operation for c in show.calls] == ["ListCompositions"]  # no ListStages
    assert report["listing"]["by"] == "convergence-pass" and 20 <= report["listing"]["ageSeconds"] < 80
    assert {row["stageArn"]: row["sessionId"] for row in report["stages"]} == {
        STAGE: SESSION,
        OTHER_STAGE: OTHER_SESSION,
    }
    [main] = [row for row in report["stages"] if row["stageArn"] == STAGE]
    assert main["composition"]["state"] == "ACTIVE"  # IVS's ListCompositions, as before
    first = run("status").stdout.splitlines()[0]
    assert first.startswith("2 live stage(s): ") and "; live stages as the convergence pass listed them " in first

    # A listing older than the passes' period and timeout allow (the pass stopped running): IVS is listed again.
    listed(datetime.now(UTC) - timedelta(minutes=3))
    show.calls.clear()
    stale = run("status", "--json").json()
    assert sorted(c.operation for c in show.calls) == ["ListCompositions", "ListStages"]
    assert stale["listing"]["why"].startswith("the convergence pass's last listing is from")
    assert run("status").stdout.splitlines()[0].endswith("; live stages listed now)")
    # --fresh lists IVS whatever the pass kept; it is the fleet view's only.
    listed(datetime.now(UTC))
    show.calls.clear()
    assert run("status", "--fresh", "--json").json()["listing"]["why"] == "--fresh"
    assert "ListStages" in [c.operation for c in show.calls]
    refused = run("status", STAGE, "--fresh")
    assert refused.status == 2 and refused.stderr.strip().endswith(
        "--fresh is for the fleet view (status without STAGE_ARN)"
    )


def test_the_policy_sections_include_the_stage_settings_and_the_door(ivs: IvsStandIn, tmp_path: Path):
    """The sections line named composition, replication, moderation and limits only: a policy that only gives the
    door's roles read as having no section at all."""
    ivs.create_stage(STAGE)
    put(
        tmp_path,
        {"stageArn": STAGE, "tokens": {"roles": {"viewer": {"capabilities": ["SUBSCRIBE"], "durationMinutes": 10}}}},
    )
    assert "policy   own v1, sections: tokens" in run("status", STAGE).stdout.splitlines()
    assert run("status", STAGE, "--json").json()["policy"]["sections"] == ["tokens"]


def test_a_stage_whose_policy_composes_with_someone_publishing_and_no_composition_is_a_problem(
    show: IvsStandIn, tmp_path: Path
):
    """The fleet view missed it: nothing in IVS's listings or the table says a publisher is there. Only the
    stages that compose by policy and have no composition are asked (ListParticipants, ListParticipantEvents),
    at most PUBLISHER_CHECKS a frame; a stage where nobody publishes (IVS stopped its composition) is none."""
    from stagepilot.cli.fleet import PUBLISHER_CHECKS

    events = EventFactory()
    extra = [f"arn:aws:ivs:us-east-1:123456789012:stage/Uncomposed{n:03d}" for n in range(PUBLISHER_CHECKS + 1)]
    for n, arn in enumerate(extra):
        show.create_stage(arn)
        put(tmp_path, {"stageArn": arn, "composition": COMPOSITION})
        session = f"st-Uncompose{n:04d}"  # 16 characters, as IVS's
        if n == 0:  # a host on air (its publish event lost: no composition record either)
            show.observe(events.published("p-on-air", user_id="host", stage=arn, session=session, event_id="on-air"))
        else:  # a host who stopped: still connected, not publishing
            for name in ("Participant Published", "Participant Unpublished"):
                show.observe(events.stage(name, f"p-stopped-{n}", stage=arn, session=session, event_id=f"{name}-{n}"))
    show.calls.clear()

    report = run("status", "--json").json()

    rows = {row["stageArn"]: row for row in report["stages"]}
    assert rows[extra[0]]["problems"] == [
        "p-on-air publishes and no composition runs, though the policy composes "
        "(the convergence pass starts one; stagepilot reconcile STAGE_ARN to now)"
    ]
    assert rows[extra[1]]["problems"] == [] and rows[extra[1]]["publishing"] is None  # checked: nobody on air
    assert "publishing" not in rows[extra[2]]  # past the frame's checks
    assert report["summary"]["withProblems"] == 1 and report["summary"]["notCheckedForPublishers"] == 1
    asked = [c.operation for c in show.calls]
    assert asked.count("ListParticipants") == PUBLISHER_CHECKS  # STAGE is composed: never asked
    text = run("status", "--problems").stdout
    assert text.splitlines()[0].startswith(f"{2 + len(extra)} live stage(s): 1 paused, 1 dry-run, 1 with problems, ")
    assert "1 uncomposed stage(s) whose policy composes not checked for a publisher (status STAGE_ARN)" in text
    assert "  PROBLEM: p-on-air publishes and no composition runs, though the policy composes" in text
    assert "  composition none (nobody publishing)" in run("status").stdout


def test_a_stage_whose_publishers_the_frame_could_not_all_ask_is_unchecked_not_nobody_publishing():
    """PUBLISH_STATE_READS bounds the events asked a frame: a stage left with participants not asked is
    counted unchecked, never shown as "nobody publishing"."""
    from types import SimpleNamespace

    from stagepilot.adapters.ivs import Participant
    from stagepilot.cli.fleet import PUBLISH_STATE_READS, check_publishers

    def stopped(n: int) -> Participant:
        return Participant(f"p-{n}", None, "CONNECTED", True, {}, "NONE", None)

    class Ivs:
        def published_participants(self, stage_arn: str, session_id: str) -> list[Participant]:
            return [stopped(n) for n in range(PUBLISH_STATE_READS + 1)]  # more than a frame asks

        def publish_state(self, stage_arn: str, session_id: str, participant_id: str) -> tuple[bool, None]:
            return False, None

    def row(arn: str) -> dict:
        return {
            "stageArn": arn,
            "sessionId": SESSION,
            "policy": {"valid": True, "paused": False, "sections": ["composition"]},
            "composition": {"state": "none"},
            "compositionRecord": None,
        }

    rows = [row(STAGE), row(OTHER_STAGE)]
    assert check_publishers(SimpleNamespace(ivs=Ivs()), rows) == 2  # type: ignore[arg-type]
    assert all("publishing" not in r for r in rows)
