"""``stagepilot ban add|remove|list`` over real HTTP against moto in server mode."""

from __future__ import annotations

import argparse
from datetime import timedelta

import pytest

from stagepilot.cli.bans import parse_duration
from tests.cli.conftest import run


def test_ban_add_list_remove(aws: str):
    added = run("ban", "add", "spammer-7", "--reason", "spam", "--no-disconnect")
    assert added.status == 0, added.stderr
    assert added.stdout.startswith("banned spammer-7")
    [ban] = run("ban", "list", "--json").json()
    assert (ban["userId"], ban["reason"], ban["expiresAt"]) == ("spammer-7", "spam", None)

    assert run("ban", "remove", "spammer-7").status == 0
    assert run("ban", "list", "--json").json() == []
    again = run("ban", "remove", "spammer-7")
    assert again.status == 1 and again.stderr.strip() == "error: spammer-7 is not banned"


def test_ban_with_ttl_records_its_expiry(aws: str):
    result = run("ban", "add", "troll-3", "--ttl", "12h", "--no-disconnect", "--json")
    assert result.status == 0
    assert result.json()["expiresAt"] is not None
    assert "until" in run("ban", "list").stdout


@pytest.mark.parametrize(
    "text, seconds", [("90s", 90), ("30m", 1800), ("12h", 43200), ("7d", 604800), ("1d12h", 129600), ("2w", 1209600)]
)
def test_durations(text: str, seconds: int):
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "12", "h", "1.5h", "0s", "-1d", "1y", "1h 30m"])
def test_bad_durations_are_rejected(text: str):
    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration(text)


def test_reason_longer_than_disconnect_allows_is_bad_input(aws: str):
    result = run("ban", "add", "u1", "--reason", "x" * 129, "--no-disconnect")
    assert result.status == 2 and "--reason" in result.stderr
