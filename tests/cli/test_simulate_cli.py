"""``stagepilot simulate`` exactly as docs/simulate.md describes it."""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path

import pytest

from tests.cli.conftest import NO_PASSES, run

EXAMPLES = Path(__file__).parents[2] / "examples"


def simulate(*extra: str) -> list[dict]:
    """The example show's calls (``--json``) or lines; run once per process for the same options (four tests
    read the same ``--json`` run), each caller getting its own copy. Its readers are one xdist group
    (``EXAMPLE_SHOW``), so with ``make test``'s ``--dist loadgroup`` one worker runs it, not each."""
    return copy.deepcopy(_simulated(extra))


EXAMPLE_SHOW = pytest.mark.xdist_group("example-show-json")


@functools.cache
def _simulated(extra: tuple[str, ...]) -> list[dict]:
    result = run(
        "simulate",
        "--policies",
        str(EXAMPLES / "policies.json"),
        "--events",
        str(EXAMPLES / "show.jsonl"),
        "--bans",
        str(EXAMPLES / "bans.json"),
        *extra,
    )
    assert result.status == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


@EXAMPLE_SHOW
def test_demo_starts_the_show_composition_once_and_restarts_it_after_the_failure():
    calls = [c for c in simulate("--json") if c["operation"] == "StartComposition"]
    assert [c["params"]["idempotencyToken"] for c in calls] == [
        "sp-MainStage0001-st-ShowSession01-1",
        "sp-MainStage0001-st-ShowSession01-2",
    ]
    first = calls[0]["params"]
    assert {d["name"] for d in first["destinations"]} == {"live", "archive"}
    assert first["layout"] == {"grid": {"featuredParticipantAttribute": "featured"}}


@EXAMPLE_SHOW
def test_json_lines_name_operation_and_exact_params():
    for call in simulate("--json"):
        assert set(call) >= {"operation", "params"}
        assert call["operation"] in {
            "StartComposition",
            "StopComposition",
            "StartParticipantReplication",
            "StopParticipantReplication",
            "DisconnectParticipant",
        }


def test_readable_timeline_says_what_was_done_and_why():
    result = run(
        "simulate", "--policies", str(EXAMPLES / "policies.json"), "--events", str(EXAMPLES / "show.jsonl"), *NO_PASSES
    )
    assert result.status == 0
    assert "started composition: first publisher of the session" in result.stdout
    assert "composition already started for this session" in result.stdout
    assert "restarted composition: restart 1 of 2" in result.stdout


def test_malformed_lines_are_reported_with_their_number_and_skipped(tmp_path: Path):
    lines = (EXAMPLES / "show.jsonl").read_text().splitlines()
    lines.insert(1, "{not json")
    lines.insert(3, json.dumps({"simulate": "teleport"}))
    lines.insert(5, json.dumps({"version": "0", "id": "x"}))
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(lines) + "\n")

    result = run(
        "simulate", "--json", "--policies", str(EXAMPLES / "policies.json"), "--events", str(events), *NO_PASSES
    )

    assert result.status == 0
    errors = result.stderr.splitlines()
    assert errors[0].startswith(f"{events}: line 2: not JSON")
    assert errors[1].startswith(f"{events}: line 4: simulate: unknown directive 'teleport'")
    assert errors[2].startswith(f"{events}: line 6: not an EventBridge event: missing detail-type")
    assert any(json.loads(line)["operation"] == "StartComposition" for line in result.stdout.splitlines())


def test_invalid_policies_stop_the_simulation(tmp_path: Path):
    policies = tmp_path / "policies.json"
    policies.write_text(json.dumps([{"stageArn": "default", "moderation": {"dryRun": "yes"}}]))
    result = run("simulate", "--policies", str(policies), "--events", str(EXAMPLES / "show.jsonl"))
    assert result.status == 2
    assert "moderation.dryRun: " in result.stderr


@EXAMPLE_SHOW
def test_demo_replicates_the_host_and_removes_the_banned_user_and_the_flagged_guest():
    calls = simulate("--json")
    replications = [c["params"] for c in calls if c["operation"] == "StartParticipantReplication"]
    assert replications == [
        {
            "sourceStageArn": "arn:aws:ivs:us-east-1:123456789012:stage/MainStage0001",
            "destinationStageArn": "arn:aws:ivs:us-east-1:123456789012:stage/GreenRoom0001",
            "participantId": "hOst1AbCdEf1",
            "reconnectWindowSeconds": 30,
            "attributes": {"replicated": "true"},
        }
    ]
    kicked = [c["params"]["participantId"] for c in calls if c["operation"] == "DisconnectParticipant"]
    assert kicked == ["bAnNed0pArt1", "gUe5t9pArt1c"]


@EXAMPLE_SHOW
def test_json_calls_say_when_and_why_they_were_made():
    calls = simulate("--json")
    assert all(set(call) >= {"operation", "params", "time", "trigger"} for call in calls)
    # the first publish starts the composition within its second (replication, beside it, may call first)
    first = next(c for c in calls if c["operation"] == "StartComposition")
    assert (first["time"], first["trigger"]) == ("2026-11-21T20:00:00Z", "event")
    restart = [c for c in calls if c["operation"] == "StartComposition"][1]
    # the Session Failure is redelivered after the restart back-off: the restart is a retry
    assert (restart["time"], restart["trigger"]) == ("2026-11-21T20:10:06Z", "retry")


def test_chaos_scenario_shows_what_was_lost_late_and_failed():
    result = run(
        "simulate",
        "--policies",
        str(EXAMPLES / "policies.json"),
        "--bans",
        str(EXAMPLES / "bans.json"),
        "--events",
        str(EXAMPLES / "chaos.jsonl"),
    )
    assert result.status == 0, result.stderr
    assert result.stderr == ""  # every directive of the example is valid
    out = result.stdout
    assert "hOst1AbCdEf1 (host-1) (happens; never delivered)" in out
    assert "EventBridge  ✗ lost: never delivered: Participant Published" in out
    assert "(happens; delivered 90 s late)" in out
    # the convergence pass (every 60 s; its paced calls take a few seconds) heals what the lost publish left
    # undone, before the late one arrives
    assert "20:01:03    composition  ✔ [convergence pass] healed: a publisher and no composition" in out
    assert "20:01:03    replication  ✔ [convergence pass] healed: replicated" in out
    assert "20:01:35    composition  · composition already started for this session" in out
    # the lost Session Failure: the pass restarts the composition once IVS stops throttling StartComposition
    assert "20:13:04    composition  ✔ [convergence pass] healed" in out
    assert "EventBridge  ✗ lose-emitted: never delivered: Session Failure" in out
    assert "IVS fails the next 2 StartComposition call(s) with ThrottlingException" in out
    assert "IVS is down for 900 s (every call: InternalServerException)" in out
    assert "participant hOst2AbCdEf2 leaves stage/MainStage0001" in out
    assert "events never delivered: 2" in out
    assert "IVS calls made: StartComposition ×2, StartParticipantReplication ×1, DisconnectParticipant ×1" in out


def test_without_the_convergence_pass_the_chaos_scenario_loses_the_show():
    policies, bans, chaos = (str(EXAMPLES / name) for name in ("policies.json", "bans.json", "chaos.jsonl"))
    result = run("simulate", "--policies", policies, "--bans", bans, "--events", chaos, "--reconcile-seconds", "0")
    assert result.status == 0
    assert "convergence pass" not in result.stdout
    assert "IVS calls made: StartComposition ×1, DisconnectParticipant ×1" in result.stdout


def test_json_says_what_the_convergence_pass_did():
    policies, bans, chaos = (str(EXAMPLES / name) for name in ("policies.json", "bans.json", "chaos.jsonl"))
    calls = [
        json.loads(line)
        for line in run(
            "simulate", "--json", "--policies", policies, "--bans", bans, "--events", chaos
        ).stdout.splitlines()
    ]
    assert [(c["operation"], c["trigger"], c["time"]) for c in calls] == [
        ("StartComposition", "reconcile", "2026-11-21T20:01:03Z"),
        ("StartParticipantReplication", "reconcile", "2026-11-21T20:01:03Z"),
        ("StartComposition", "reconcile", "2026-11-21T20:13:04Z"),
        ("DisconnectParticipant", "event", "2026-11-21T20:13:30Z"),
    ]


def test_bad_directives_are_reported_and_skipped(tmp_path: Path):
    stage = "arn:aws:ivs:us-east-1:123456789012:stage/MainStage0001"
    published = json.loads((EXAMPLES / "show.jsonl").read_text().splitlines()[4])
    bad = [
        {"simulate": "fault", "operation": "StartTheShow", "error": "ThrottlingException", "time": published["time"]},
        {"simulate": "fault", "operation": "StartComposition", "error": "Oops", "time": published["time"]},
        {"simulate": "outage", "time": published["time"], "seconds": 0},
        {"simulate": "late", "seconds": -5, "event": published},
        {"simulate": "lost", "event": {"id": "x"}},
        {"simulate": "lose-emitted", "eventName": "Session End", "count": 0},
        {"simulate": "leave", "stageArn": stage, "time": published["time"]},
        {**published, "resources": 5},
        {**published, "detail": "x"},
        {**published, "time": "9999-12-31T23:59:59Z"},
    ]
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(json.dumps(line) for line in [*bad, published]) + "\n")

    result = run(
        "simulate", "--json", "--policies", str(EXAMPLES / "policies.json"), "--events", str(events), *NO_PASSES
    )

    assert result.status == 0
    errors = result.stderr.splitlines()
    assert [e.split(": ", 2)[1] for e in errors] == [f"line {n}" for n in range(1, len(bad) + 1)]
    assert "operation: 'StartTheShow' is not an IVS real-time operation" in errors[0]
    assert "error: must be one of" in errors[1]
    assert "seconds: must be > 0" in errors[2]
    assert "seconds: must be >= 0" in errors[3]
    assert "event.not an EventBridge event: missing" in errors[4]
    assert "count: must be a whole number >= 1" in errors[5]
    assert "participantId: required" in errors[6]
    assert "resources: must be an array" in errors[7]
    assert "detail: must be a JSON object" in errors[8]
    assert "time: must be an ISO-8601 time" in errors[9]
    assert sorted(json.loads(line)["operation"] for line in result.stdout.splitlines()) == [
        "StartComposition",
        "StartParticipantReplication",
    ]


def test_reconcile_and_settle_options_are_checked():
    for option, value in (("--reconcile-seconds", "-1"), ("--settle", "soon")):
        result = run(
            "simulate",
            "--policies",
            str(EXAMPLES / "policies.json"),
            "--events",
            str(EXAMPLES / "show.jsonl"),
            option,
            value,
        )
        assert result.status == 2
        assert result.stderr.startswith(f"error: argument {option}: ")  # one line, like every usage error


def test_recording_settings_from_the_policy_show_as_an_update_stage_call(tmp_path: Path):
    policies = json.loads((EXAMPLES / "policies.json").read_text())
    storage = "arn:aws:ivs:us-east-1:123456789012:storage-configuration/ShowStorage01"
    policies[0]["stage"] = {"participantRecording": {"storageConfigurationArn": storage}}
    path = tmp_path / "policies.json"
    path.write_text(json.dumps(policies))

    result = run("simulate", "--json", "--policies", str(path), "--events", str(EXAMPLES / "show.jsonl"))

    assert result.status == 0, result.stderr
    [update] = [json.loads(line) for line in result.stdout.splitlines() if '"UpdateStage"' in line]
    assert update["trigger"] == "reconcile" and update["time"] == "2026-11-21T20:01:00Z"
    assert update["params"]["arn"] == policies[0]["stageArn"]
    assert update["params"]["autoParticipantRecordingConfiguration"]["storageConfigurationArn"] == storage


def test_the_recording_directive_holds_recording_settings_until_nobody_is_recorded(tmp_path: Path):
    stage = "arn:aws:ivs:us-east-1:123456789012:stage/RecStage0001"
    storage = "arn:aws:ivs:us-east-1:123456789012:storage-configuration/ShowStorage01"
    policies = [{"stageArn": stage, "stage": {"participantRecording": {"storageConfigurationArn": storage}}}]
    published = {
        "version": "0",
        "id": "3f1e0b4c-0000-4000-8000-000000000001",
        "detail-type": "IVS Stage Update",
        "source": "aws.ivs",
        "account": "123456789012",
        "time": "2026-11-21T20:00:00Z",
        "region": "us-east-1",
        "resources": [stage],
        "detail": {"session_id": "st-RecSession001", "event_name": "Participant Published", "participant_id": "p1"},
    }
    lines = [
        published,
        {
            "simulate": "recording",
            "stageArn": stage,
            "participantId": "p1",
            "state": "active",
            "time": "2026-11-21T20:00:05Z",
        },
        {
            "simulate": "recording",
            "stageArn": stage,
            "participantId": "p1",
            "state": "paused",
            "time": "2026-11-21T20:00:06Z",
        },
        {
            "simulate": "recording",
            "stageArn": stage,
            "participantId": "p1",
            "state": "stopped",
            "time": "2026-11-21T20:02:30Z",
        },
    ]
    (tmp_path / "policies.json").write_text(json.dumps(policies))
    (tmp_path / "events.jsonl").write_text("\n".join(json.dumps(line) for line in lines))
    args = ("simulate", "--policies", str(tmp_path / "policies.json"), "--events", str(tmp_path / "events.jsonl"))

    as_json = run(*args, "--json", "--settle", "120")

    assert as_json.status == 0, as_json.stderr
    assert as_json.stderr.strip().endswith("events.jsonl: line 3: state: required, one of active, stopped (skipped)")
    [update] = [json.loads(line) for line in as_json.stdout.splitlines() if '"UpdateStage"' in line]
    assert (update["time"], update["trigger"]) == ("2026-11-21T20:03:00Z", "reconcile")  # not at 20:01 nor 20:02
    timeline = run(*args, "--settle", "120").stdout
    assert "▶ IVS starts recording participant p1 on" in timeline
    assert "⏸ [convergence pass] pending: the stage's recording settings differ from the policy in" in timeline


def test_a_copy_of_an_event_that_finds_the_first_copys_claim_held_comes_back_after_the_lease(tmp_path: Path):
    lines = (EXAMPLES / "show.jsonl").read_text().splitlines()
    first_publish = next(line for line in lines if "Participant Published" in line)
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join([*lines[:4], first_publish, first_publish]) + "\n")  # EventBridge sent it twice

    result = run("simulate", "--policies", str(EXAMPLES / "policies.json"), "--events", str(events), *NO_PASSES)

    assert result.status == 0, result.stderr
    held = [
        line for line in result.stdout.splitlines() if "another event is starting this session's composition" in line
    ]
    assert len(held) == 1 and "↻" in held[0] and "ClaimHeld" not in held[0], result.stdout
    assert "tried again then, to find it done or take it over; again in 12" in held[0]
    assert any("composition already started" in line and "(delivery 2)" in line for line in result.stdout.splitlines())
    assert "StartComposition ×1" in result.stdout and "dead-letter queues: empty" in result.stdout


def test_an_encoder_on_the_show_channel_takes_it_and_the_composition_records_on(tmp_path: Path):
    # docs/simulate.md: a channel takes one stream at a time; a composition into a live channel starts, and
    # its channel destination fails (Destination Failure); with its S3 destination it records on.
    channel = "arn:aws:ivs:us-east-1:123456789012:channel/ShowChannel01"
    lines = (EXAMPLES / "show.jsonl").read_text().splitlines()
    on_air = {"simulate": "encoder", "channelArn": channel, "onAir": True, "time": "2026-11-21T19:59:00Z"}
    again = {**on_air, "onAir": False, "time": "2026-11-21T20:00:30Z"}
    late = {**on_air, "time": "2026-11-21T20:00:40Z"}
    bad = {"simulate": "encoder", "channelArn": channel.replace("channel/", "stage/"), "time": on_air["time"]}
    events = tmp_path / "events.jsonl"
    head = [json.dumps(line) for line in (bad, on_air)]
    events.write_text("\n".join([*head, *lines[:5], json.dumps(again), json.dumps(late)]) + "\n")
    args = ("simulate", "--policies", str(EXAMPLES / "policies.json"), "--events", str(events), *NO_PASSES)

    result = run(*args, "--settle", "60")

    assert result.status == 0
    assert result.stderr.splitlines() == [f"{events}: line 1: channelArn: required, a channel ARN (skipped)"]
    timeline = result.stdout
    assert "▶ an encoder outside stagepilot starts streaming into channel/ShowChannel01\n" in timeline
    assert "started composition: first publisher of the session" in timeline
    assert "the channel destination failed (the channel already has a live stream); audited and alarmed" in timeline
    assert "▶ an encoder outside stagepilot stops streaming into channel/ShowChannel01\n" in timeline
    # the channel is free, but the failed destination does not come back, and nothing restarts for it
    assert "starts streaming into channel/ShowChannel01 (refused" not in timeline
    assert "restarted composition" not in timeline
    calls = [json.loads(line)["operation"] for line in run(*args, "--settle", "60", "--json").stdout.splitlines()]
    assert calls.count("StartComposition") == 1


def test_an_encoder_is_refused_a_channel_the_show_composes_into(tmp_path: Path):
    lines = (EXAMPLES / "show.jsonl").read_text().splitlines()[:5]  # the first publish: the show composes
    channel = "arn:aws:ivs:us-east-1:123456789012:channel/ShowChannel01"
    encoder = {"simulate": "encoder", "channelArn": channel, "time": "2026-11-21T20:00:30Z"}
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join([*lines, json.dumps(encoder)]) + "\n")

    result = run("simulate", "--policies", str(EXAMPLES / "policies.json"), "--events", str(events), *NO_PASSES)

    assert result.status == 0 and result.stderr == ""
    assert "starts streaming into channel/ShowChannel01 (refused: a composition streams into it)" in result.stdout
    assert "Destination Failure" not in result.stdout
