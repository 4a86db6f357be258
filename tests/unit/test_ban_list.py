"""``BanList``: the ban list as the convergence pass reads it once a pass, unreadable items kept aside."""

from __future__ import annotations

import pytest

from stagepilot.adapters.bans import Ban, BanList, _named
from stagepilot.errors import MalformedItem

STAGE = "arn:aws:ivs:us-east-1:123456789012:stage/AbCdEf012345"
OTHER = "arn:aws:ivs:us-east-1:123456789012:stage/ZyXwVu987654"
BROKEN = MalformedItem("BAN/troll-3", "expiresAt", "expected epoch seconds (a number), found str 'tomorrow'")


def ban(user_id: str, stage_arn: str | None = None) -> Ban:
    return Ban(user_id=user_id, reason="spam", created_at="2026-12-07T00:00:00Z", expires_at=None, stage_arn=stage_arn)


def test_the_strongest_ban_that_applies_on_the_stage() -> None:
    bans = BanList([ban("a", OTHER), ban("a", STAGE), ban("b")])
    assert bans.applying("a", STAGE) == ban("a", STAGE)
    assert bans.applying("b", STAGE) == ban("b")
    assert bans.applying("c", STAGE) is None
    assert bans.applying(None, STAGE) is None


def test_a_user_whose_global_ban_item_cannot_be_read_fails_on_every_stage() -> None:
    bans = BanList([ban("spammer")], {("troll-3", None): BROKEN})
    for stage in (STAGE, OTHER):
        with pytest.raises(MalformedItem, match="expiresAt"):
            bans.applying("troll-3", stage)
    assert bans.applying("spammer", STAGE) == ban("spammer")  # the other bans still hold


def test_a_user_whose_stage_ban_item_cannot_be_read_fails_on_that_stage_only() -> None:
    bans = BanList([], {("troll-3", STAGE): BROKEN})
    with pytest.raises(MalformedItem, match="expiresAt"):
        bans.applying("troll-3", STAGE)
    assert bans.applying("troll-3", OTHER) is None


def test_an_unreadable_item_names_its_user_and_stage_from_its_attributes_else_its_key() -> None:
    assert _named({"sk": "troll-3"}) == ("troll-3", None)
    assert _named({"sk": f"troll-3#{STAGE}", "stageArn": STAGE}) == ("troll-3", STAGE)
    assert _named({"sk": "a#b", "userId": "a#b"}) == ("a#b", None)  # a user id may hold a '#'
