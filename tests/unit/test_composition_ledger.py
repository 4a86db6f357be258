"""When a first start asks IVS for the stage's compositions: the pure rule over the stage's ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from stagepilot.decisions.composition import LEDGER_HORIZON, forgettable, why_list_compositions
from stagepilot.decisions.leases import CLAIM_LEASE

NOW = datetime(2026, 12, 1, 20, 0, tzinfo=UTC)


def why(*, resumed: bool = False, kept: bool = True, recorded: bool = True, **others: timedelta) -> str | None:
    return why_list_compositions(
        resumed=resumed,
        ledger_kept=kept,
        others={s: NOW - age for s, age in others.items()},
        now=NOW,
        session_recorded=recorded,
    )


def test_a_fresh_claim_on_a_stage_whose_sessions_all_left_the_ledger_needs_no_listing() -> None:
    assert why() is None


def test_a_resumed_claim_a_stage_without_ledger_or_another_live_entry_asks() -> None:
    assert why(resumed=True) == "the claim is resumed: an earlier try may have started the composition"
    assert why(kept=False) == "the stage has no composition ledger yet"
    assert why(older=timedelta(hours=3)) == "session older may still hold a live composition"


def test_a_first_claim_on_a_stage_without_ledger_needs_no_listing_nothing_of_ours_can_be_live() -> None:
    # no ledger: no start on the stage for 7 days, or ever (a composition lives 24 hours at most)
    assert why(kept=False, recorded=False) is None
    # a session record without a ledger was written before stagepilot kept ledgers: IVS is asked
    assert why(kept=False, recorded=True) == "the stage has no composition ledger yet"
    assert why(kept=False, recorded=False, resumed=True) is not None


def test_an_entry_older_than_a_compositions_longest_life_is_not_live() -> None:
    assert why(old=LEDGER_HORIZON) is None
    assert why(old=LEDGER_HORIZON - timedelta(seconds=1)) is not None


def test_only_entries_past_the_claim_lease_are_forgotten() -> None:
    others = {"inflight": NOW - CLAIM_LEASE, "stale": NOW - CLAIM_LEASE - timedelta(seconds=1)}
    assert forgettable(others, now=NOW) == ["stale"]
