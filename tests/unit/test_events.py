"""Envelope parsing details that IVS's model fixes (the fuzzing of every field is in tests/reliability)."""

from __future__ import annotations

import json

import pytest

from stagepilot.errors import MalformedEvent
from stagepilot.events import parse_body
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
