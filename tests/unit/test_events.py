"""Envelope parsing details that IVS's model fixes (the fuzzing of every field is in tests/reliability)."""

from __future__ import annotations

import json

import pytest

from stagepilot.errors import MalformedEvent
from stagepilot.events import ParticipantFlagged, parse_body
from tests.support import EventFactory


@pytest.mark.parametrize("session_id", ["st-ZyXwvu1T2s", "st-ZyXwvu1T2sAb", "st-ZyXwvu1T2sAb12", "xx-ZyXwvu1T2sAb1"])
def test_a_session_id_that_is_not_16_characters_is_malformed(session_id: str) -> None:
    # StageSession sessionId: "Fixed length of 16" [model]; botocore refuses any other length client-side,
    # so an event carrying one could never be acted on: it is parked at once, naming the field.
    body = json.dumps(EventFactory().published("pArticipant1", session=session_id))
    with pytest.raises(MalformedEvent, match=r"detail\.session_id"):
        parse_body(body)


def test_a_16_character_session_id_parses() -> None:
    event = parse_body(json.dumps(EventFactory().published("pArticipant1", session="st-1CVugbu2cf2n8")))
    assert getattr(event, "session_id", None) == "st-1CVugbu2cf2n8"


@pytest.mark.parametrize(
    ("reporter", "expected"),
    [("viewer-77", "viewer-77"), ("", None), (None, None)],
)
def test_a_flags_reporter_is_read_when_given(reporter: str | None, expected: str | None) -> None:
    event = parse_body(json.dumps(EventFactory().flagged("p1", reporter=reporter)))
    assert isinstance(event, ParticipantFlagged)
    assert event.reporter == expected


@pytest.mark.parametrize(("reporter", "why"), [(7, "must be a string"), ("r" * 257, "longer than 256")])
def test_a_malformed_reporter_names_the_field(reporter: object, why: str) -> None:
    envelope = EventFactory().flagged("p1")
    envelope["detail"]["reporter"] = reporter
    with pytest.raises(MalformedEvent) as excinfo:
        parse_body(json.dumps(envelope))
    assert "detail.reporter" in str(excinfo.value) and why in str(excinfo.value)


def test_stage_updates_carry_no_replica_or_stage_fields_from_the_body() -> None:
    # IVS documents none: whether a publisher is a replica is asked of IVS (docs/policy.md)
    envelope = EventFactory().published("p1", replica=True, source_stage_arn="arn:aws:ivs:us-east-1:1:stage/x")
    event = parse_body(json.dumps(envelope))
    assert not hasattr(event, "source_stage_arn") and not hasattr(event, "destination_stage_arn")
