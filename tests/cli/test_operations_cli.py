"""``stagepilot disconnect|audit|pause|resume|status`` end to end: moto in server mode and the IVS stand-in,
both over real HTTP, the way an operator's shell reaches AWS."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3

from stagepilot.adapters.table import AuditLog, AuditRecord, Table
from stagepilot.automations.composition import CompositionAutomation
from stagepilot.decisions.composition import managed_tags
from stagepilot.events import parse_event
from stagepilot.local.deployment import default_automations
from stagepilot.local.ivs import IvsStandIn
from stagepilot.pipeline import handle_event
from tests.cli.conftest import handler_services, run
from tests.support import CHANNEL, ENCODER, OTHER_STAGE, SESSION, STAGE, T0, EventFactory

COMPOSITION = {
    "destinations": [{"name": "live", "channel": {"channelArn": CHANNEL, "encoderConfigurationArn": ENCODER}}]
}


def put(tmp_path: Path, document: dict) -> None:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(document))
    result = run("policy", "put", str(path))
    assert result.status == 0, result.stderr


def test_disconnect_kicks_the_participant_and_is_audited(ivs: IvsStandIn):
    ivs.declare_participant(STAGE, "p-1", user_id="troll-9")
    events = EventFactory(at=datetime.now(UTC))
    ivs.observe(events.published("p-1", user_id="troll-9"))
    ivs.observe(events.published("p-2", user_id="host"))  # keeps the session going after the kick

    result = run("disconnect", STAGE, "p-1", "--reason", "harassment")

    assert result.status == 0, result.stderr
    assert result.stdout.startswith(f"disconnected p-1 from {STAGE} (session {SESSION})")
    [call] = ivs.mutating_calls()
    assert (call.operation, call.params) == (
        "DisconnectParticipant",
        {"stageArn": STAGE, "participantId": "p-1", "reason": "harassment"},
    )
    [entry] = run("audit", STAGE, "--json").json()
    assert entry["action"] == "disconnect" and entry["rule"] == "manual"
    assert (entry["participantId"], entry["userId"], entry["sessionId"]) == ("p-1", "troll-9", SESSION)
    assert entry["reason"] == "harassment" and entry["result"] == "disconnected"
    assert "manual disconnect by" in entry["details"]["why"]

    again = run("disconnect", STAGE, "p-1")
    assert again.status == 0 and "already disconnected" in again.stdout
    assert len(ivs.mutating_calls()) == 1


def test_disconnect_after_a_throttled_try_resumes_and_blocks_no_one(ivs: IvsStandIn):
    ivs.declare_participant(STAGE, "p-1", user_id="troll-9")
    ivs.observe(EventFactory(at=datetime.now(UTC)).published("p-1", user_id="troll-9"))
    ivs.set_rate_limit("DisconnectParticipant", 0)  # every call throttled (429), botocore's retries too

    throttled = run("disconnect", STAGE, "p-1")

    assert throttled.status == 1
    [line] = throttled.stderr.splitlines()  # one line, no traceback
    assert line.startswith("error: p-1 is not disconnected yet (DisconnectParticipant: ") and line.endswith(
        "; run the command again"
    )
    assert ivs.mutating_calls() == [] and run("audit", STAGE, "--json").json() == []
    claims = [i for i in handler_services(ivs).table.query(f"STAGE#{STAGE}") if "#DISCONNECT#" in i["sk"]]
    assert claims == []  # released: neither this operator, another one, nor the automation waits 15 minutes

    ivs.set_rate_limit("DisconnectParticipant", math.inf)
    again = run("disconnect", STAGE, "p-1")

    assert again.status == 0, again.stderr
    assert again.stdout.startswith(f"disconnected p-1 from {STAGE}")
    assert [c.operation for c in ivs.mutating_calls()] == ["DisconnectParticipant"]
    [entry] = run("audit", STAGE, "--json").json()
    assert (entry["action"], entry["result"]) == ("disconnect", "disconnected")


def test_a_manual_kick_has_one_owner_per_operator_stage_and_participant():
    from stagepilot.cli.disconnect import manual_owner

    alice = "arn:aws:sts::123456789012:assumed-role/Operators/alice"
    assert manual_owner(alice, STAGE, "p-1") == manual_owner(alice, STAGE, "p-1")  # a re-run resumes
    others = {
        manual_owner("arn:aws:sts::123456789012:assumed-role/Operators/bob", STAGE, "p-1"),
        manual_owner(alice, OTHER_STAGE, "p-1"),
        manual_owner(alice, STAGE, "p-2"),
    }
    assert manual_owner(alice, STAGE, "p-1") not in others and len(others) == 3


def test_disconnect_without_a_session_or_stage_is_one_line_exit_1(ivs: IvsStandIn):
    ivs.create_stage(STAGE)
    idle = run("disconnect", STAGE, "p-1")
    assert (
        idle.status == 1 and idle.stderr.strip() == f"error: stage {STAGE} has no active session: nobody is connected"
    )
    missing = run("disconnect", OTHER_STAGE, "p-1")
    assert missing.status == 1 and missing.stderr.strip() == f"error: stage {OTHER_STAGE} not found"
    assert run("disconnect", STAGE, "p-1", "--reason", "x" * 129).status == 2


def test_audit_lists_newest_first_per_stage_and_across_stages(ivs: IvsStandIn):
    for minutes, stage in ((0, STAGE), (2, OTHER_STAGE), (1, STAGE)):
        # Entries are ordered by when they were written (the log's clock), not by the event's time.
        written = T0 + timedelta(minutes=minutes)
        AuditLog(handler_services(ivs).table, clock=lambda at=written: at).record(
            AuditRecord(
                time=T0 - timedelta(days=minutes),
                stage_arn=stage,
                automation="moderation",
                action="disconnect",
                reason=f"at {minutes}",
                event_id=f"e{minutes}",
            )
        )
    everything = run("audit", "--json").json()
    assert [e["reason"] for e in everything] == ["at 2", "at 1", "at 0"]
    one = run("audit", STAGE, "--limit", "1", "--json").json()
    assert [e["reason"] for e in one] == ["at 1"]
    text = run("audit", STAGE).stdout.splitlines()
    assert text[0].startswith("2026-11-21T20:01:00.000Z  moderation/disconnect") and len(text) == 2
    assert run("audit", "--limit", "0").status == 2


def test_pause_blocks_every_automation_until_resume(ivs: IvsStandIn, tmp_path: Path):
    put(tmp_path, {"stageArn": STAGE, "composition": COMPOSITION, "moderation": {"blockedUserIds": ["troll-9"]}})
    events = EventFactory(at=datetime.now(UTC))
    ivs.observe(events.published("p-1", user_id="host"))

    paused = run("pause", STAGE)
    assert paused.status == 0 and paused.stdout.strip() == f"paused {STAGE}"
    published = parse_event(events.published("p-1", user_id="host"))
    outcomes = [handle_event(published, a, handler_services(ivs)) for a in default_automations()]
    assert [(o.action, o.reason) for o in outcomes] == [("skip", "stage is paused")] * 3
    assert ivs.mutating_calls() == []
    assert run("pause", STAGE).stdout.strip() == f"{STAGE} is already paused"
    # The switch is not an edit of the policy: no new version, the document as it was.
    stored = run("policy", "get", STAGE, "--json").json()
    assert stored["version"] == 1 and stored["policy"]["paused"] is False
    assert run("status", STAGE, "--json").json()["policy"]["pausedBy"] == "pause"

    # --no-converge: the event path after a resume is under test here (tests/cli/test_converge_now.py has the rest)
    resumed = run("resume", STAGE, "--json", "--no-converge").json()
    assert (resumed["paused"], resumed["changed"], resumed["ok"]) == (False, True, True)
    outcome = handle_event(published, CompositionAutomation(), handler_services(ivs))
    assert outcome.action == "composition-started"


def test_pausing_a_stage_without_a_policy_stops_even_the_ban_list(ivs: IvsStandIn, tmp_path: Path):
    ivs.observe(EventFactory(at=datetime.now(UTC)).published("p-1", user_id="troll-9"))
    handler_services(ivs).bans.add("troll-9")
    published = parse_event(EventFactory(at=datetime.now(UTC)).published("p-1", user_id="troll-9"))

    assert run("pause", STAGE).status == 0

    [moderation] = [a for a in default_automations() if a.name == "moderation"]
    assert handle_event(published, moderation, handler_services(ivs)).reason == "stage is paused"
    assert run("policy", "get", STAGE).status == 1  # no policy was created for it
    assert run("resume", STAGE, "--no-converge").status == 0  # the event path is under test
    assert handle_event(published, moderation, handler_services(ivs)).action == "disconnect"


def test_resume_says_what_still_pauses_the_stage(ivs: IvsStandIn, tmp_path: Path):
    put(tmp_path, {"stageArn": "default", "composition": COMPOSITION})
    assert run("pause", "default").status == 0

    follows_default = run("resume", STAGE)

    assert follows_default.status == 1
    assert follows_default.stdout.strip() == (
        f"{STAGE} is not paused by pause; it follows 'default', which is paused (stagepilot resume default)"
    )
    assert run("resume", "default").status == 0
    (tmp_path / "own.json").write_text(json.dumps({"stageArn": STAGE, "paused": True}))
    assert run("policy", "put", str(tmp_path / "own.json")).status == 0
    by_policy = run("resume", STAGE)
    assert by_policy.status == 1
    assert by_policy.stdout.strip().endswith("its policy (its own) says paused: true: change that with policy put")


def test_pause_and_resume_are_audited_with_the_caller(ivs: IvsStandIn, tmp_path: Path):
    put(tmp_path, {"stageArn": STAGE, "composition": COMPOSITION})
    ivs.create_stage(STAGE)
    ivs.create_stage(OTHER_STAGE)
    assert run("pause", STAGE).status == 0
    assert run("pause", STAGE).status == 0  # already paused: nothing changed, nothing audited
    assert run("resume", STAGE).status == 0
    assert run("pause", OTHER_STAGE).status == 0

    trail = run("audit", "--json").json()

    caller = boto3.client("sts").get_caller_identity()["Arn"]
    assert [(e["stageArn"], e["action"]) for e in trail if e["automation"] == "cli"] == [
        (OTHER_STAGE, "pause"),
        (STAGE, "resume"),
        (STAGE, "pause"),
        (STAGE, "policy-put"),
    ]
    assert {e["details"]["by"] for e in trail} == {caller}


def test_pause_all_pauses_default_and_every_policy(ivs: IvsStandIn, tmp_path: Path):
    put(tmp_path, {"stageArn": STAGE, "composition": COMPOSITION})
    assert run("pause", "--all").status == 2  # not on a terminal: --yes required
    result = run("pause", "--all", "--yes", "--json")
    assert result.status == 0, result.stderr
    assert {(r["stageArn"], r["changed"]) for r in result.json()} == {("default", True), (STAGE, True)}
    listed = {p["stageArn"]: p["paused"] for p in run("policy", "list", "--json").json()}
    assert listed == {STAGE: True}
    published = parse_event(EventFactory(at=datetime.now(UTC)).published("p-1", stage=OTHER_STAGE))
    [moderation] = [a for a in default_automations() if a.name == "moderation"]
    assert handle_event(published, moderation, handler_services(ivs)).reason == "stage is paused"  # via default

    resumed = run("resume", "--all", "--yes", "--json")
    assert resumed.status == 0
    assert [r["stageArn"] for r in resumed.json()] == ["default", STAGE]
    listed = {p["stageArn"]: p["paused"] for p in run("policy", "list", "--json").json()}
    assert listed == {STAGE: False}
    assert run("resume", "--all", "--yes").stdout.strip() == "nothing is paused"
    assert run("pause", STAGE, "--all").status == 2  # one or the other


def test_status_shows_session_publishers_compositions_and_recent_actions(ivs: IvsStandIn, tmp_path: Path):
    put(tmp_path, {"stageArn": STAGE, "composition": COMPOSITION})
    events = EventFactory(at=datetime.now(UTC))
    ivs.observe(events.published("p-1", user_id="host"))
    ivs.observe(events.published("p-2", user_id="guest"))
    outcome = handle_event(
        parse_event(events.published("p-1", user_id="host")), CompositionAutomation(), handler_services(ivs)
    )
    assert outcome.action == "composition-started"
    other = ivs.client()  # another application's compositions on the same stage: one live, one stopped

    def theirs(channel: str) -> dict[str, Any]:  # a channel of its own: one stream at a time
        encoder = {"channelArn": CHANNEL.replace("ShowChannel01", channel), "encoderConfigurationArn": ENCODER}
        return {"destinations": [{"name": "clips", "channel": encoder}], "stageArn": STAGE}

    live_other = other.start_composition(**theirs("Clips1"), tags={"team": "clips"})["composition"]["arn"]
    stopped_other = other.start_composition(**theirs("Clips2"))["composition"]["arn"]
    other.stop_composition(arn=stopped_other)
    run("disconnect", STAGE, "p-2")

    report = run("status", STAGE, "--json").json()

    assert report["activeSessionId"] == SESSION
    assert [p["participantId"] for p in report["publishers"]] == ["p-1"]
    states = {c["arn"]: (c["state"], c["managedByStagepilot"]) for c in report["compositions"]}
    assert states[outcome.details["composition_arn"]] == ("ACTIVE", True)
    assert states[live_other] == ("ACTIVE", False) and states[stopped_other] == ("STOPPED", False)
    assert report["compositionRecord"]["state"] == "started"
    assert report["policy"] == {
        "source": "stage",
        "version": 1,
        "paused": False,
        "pausedBy": None,
        "dryRun": False,
        "valid": True,
        "sections": ["composition"],
    }
    actions = [a["action"] for a in report["recentActions"]]
    assert actions[0] == "disconnect" and sorted(actions[1:]) == ["composition-started", "policy-put"]

    text = run("status", STAGE).stdout
    assert f"session  {SESSION}" in text and "participants (1 connected, 1 publishing now, 1 kicked)" in text
    assert f"{outcome.details['composition_arn']}  ACTIVE  (stagepilot, session {SESSION} attempt 1)" in text
    assert f"{stopped_other}  STOPPED  (other)" in text
    assert "stagepilot composition record: started, attempt 1" in text
    assert "moderation/disconnect  rule=manual  p-2" in text
    assert managed_tags(SESSION, 1)["stagepilot:managed"] == "true"


def test_status_of_an_unknown_stage_is_one_line_exit_1(ivs: IvsStandIn):
    result = run("status", OTHER_STAGE)
    assert result.status == 1 and result.stderr.strip() == f"error: stage {OTHER_STAGE} not found"
    assert run("status", "not-an-arn").status == 2


def record(table: Table, minutes: int, action: str, **extra: object) -> None:
    """An audit entry written at T0 + minutes (the trail is ordered by the time entries are written)."""
    when = T0 + timedelta(minutes=minutes)
    AuditLog(table, clock=lambda: when).record(
        AuditRecord(
            time=when,
            stage_arn=str(extra.pop("stage", STAGE)),
            automation=str(extra.pop("automation", "moderation")),
            action=action,
            reason=f"at {minutes}",
            event_id=f"e{minutes}",
            **extra,  # type: ignore[arg-type]
        )
    )


def test_audit_filters_by_time_user_action_and_stage(ivs: IvsStandIn):
    table = handler_services(ivs).table
    record(table, 0, "composition-started", automation="composition")
    record(table, 1, "disconnect", user_id="troll-9", participant_id="p-1")
    record(table, 2, "would-disconnect", user_id="troll-9", participant_id="p-2", stage=OTHER_STAGE)
    record(table, 3, "pause", automation="cli", details={"by": "arn:aws:sts::123456789012:assumed-role/ops/alice"})

    def reasons(*argv: str) -> list[str]:
        result = run("audit", *argv, "--json")
        assert result.status == 0, result.stderr
        return [entry["reason"] for entry in result.json()]

    assert reasons("--user", "troll-9") == ["at 2", "at 1"]
    assert reasons("--user", "alice") == ["at 3"]  # the caller's session name
    assert reasons("--action", "disconnect", "--action", "would-disconnect") == ["at 2", "at 1"]
    assert reasons("--since", "2026-11-21T20:02:00Z") == ["at 3", "at 2"]
    assert reasons("--since", "3650d", "--limit", "1") == ["at 3"]
    assert reasons("--since", "1h") == []  # T0 is long ago
    assert reasons("--stage", OTHER_STAGE) == ["at 2"] == reasons(OTHER_STAGE, "--stage", OTHER_STAGE)
    assert reasons("--stage", STAGE, "--user", "troll-9", "--since", "2026-11-21T20:00:30Z") == ["at 1"]
    assert run("audit", "--user", "nobody").stdout == "no actions recorded that match\n"
    assert run("audit", STAGE, "--stage", OTHER_STAGE).status == 2
    assert run("audit", "--since", "yesterday").status == 2


def test_the_automations_audit_what_they_start(ivs: IvsStandIn, tmp_path: Path):
    put(tmp_path, {"stageArn": STAGE, "composition": COMPOSITION})
    published = parse_event(EventFactory().published("p-1", user_id="host"))
    ivs.observe(EventFactory().published("p-1", user_id="host"))
    outcome = handle_event(published, CompositionAutomation(), handler_services(ivs))
    [entry] = run("audit", STAGE, "--action", "composition-started", "--json").json()
    assert entry["details"] == {"compositionArn": outcome.details["composition_arn"], "attempt": 1}
    assert entry["sessionId"] == SESSION and entry["automation"] == "composition"


def test_disconnecting_a_participant_ivs_does_not_know_is_exit_1_and_not_audited(ivs: IvsStandIn):
    ivs.observe(EventFactory().published("p-1", user_id="host"))
    result = run("disconnect", STAGE, "p-ghost")
    assert result.status == 1
    assert result.stderr.startswith(f"error: p-ghost is not connected to {STAGE}: IVS does not know it in session")
    assert run("audit", STAGE, "--json").json() == [] and ivs.mutating_calls() == []
