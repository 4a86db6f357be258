"""benchmarks/first_record.py's ratio: per round, so that a drift between rounds moves both sides alike."""

from __future__ import annotations

import pytest

from benchmarks.first_record import LOADER_FLOOR_BODY, paired_ratio


def rounds(*walls: float) -> list[tuple[float, float, float]]:
    return [(w, w / 2, 0.0) for w in walls]


def test_the_ratio_is_the_median_of_each_rounds_ratio() -> None:
    # The host slowed down for the last three rounds: the medians of the two sides come from different
    # rounds (200 against 110 ms), each round's ratio does not.
    floors, handlers = rounds(100, 100, 200, 200, 200), rounds(110, 110, 220, 220, 110)
    assert paired_ratio(handlers, floors) == pytest.approx(1.1)
    assert paired_ratio(handlers, floors, cpu=True) == pytest.approx(1.1)


def test_a_missing_round_is_refused() -> None:
    with pytest.raises(ValueError, match="2 samples against 3 floors"):
        paired_ratio(rounds(1, 2), rounds(1, 2, 3))
    with pytest.raises(ValueError, match="0 samples"):
        paired_ratio([], [])


def test_the_stricter_floor_makes_its_clients_as_the_functions_do() -> None:
    assert "boto3.client(" not in LOADER_FLOOR_BODY
    assert LOADER_FLOOR_BODY.index("from stagepilot.adapters.clients import client") < LOADER_FLOOR_BODY.index(
        'client("dynamodb")'
    )
