"""The convergence pass's listing of the live stages, kept with its record for the fleet view
(adapters/pass_log.py): what is kept reads back as listed, and the item stays under DynamoDB's 400 KB."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from stagepilot.adapters.pass_log import KEY, LISTING_MAX_BYTES, ListedStage, PassLog, PassRecord

AT = datetime(2026, 11, 22, 20, 0, tzinfo=UTC)


class OneItem:
    """The two calls PassLog makes of its table, on one item."""

    def __init__(self) -> None:
        self.item: dict[str, Any] | None = None

    def get(self, pk: str, sk: str, *, consistent: bool = False) -> dict[str, Any] | None:
        assert (pk, sk) == KEY
        return self.item

    def put(self, item: dict[str, Any]) -> None:
        self.item = item


def fleet(count: int, *, name: str = "") -> list[ListedStage]:
    return [
        ListedStage(f"arn:aws:ivs:us-east-1:123456789012:stage/Fleet{n:07d}", f"st-Fleet{n:08d}", name)
        for n in range(count)
    ]


def test_the_listing_reads_back_as_the_pass_listed_it():
    table = OneItem()
    log = PassLog(table)  # type: ignore[arg-type]
    other = ListedStage("arn:aws:ivs:us-east-1:123456789012:stage/Other0000001", "st-Other00000001", "")
    listed = [*fleet(3, name="show"), other]
    log.record(PassRecord(AT, examinable=4, reached=4), listed)
    kept = log.listing()
    assert kept is not None and kept.listed_at == AT and list(kept.stages) == listed
    assert [p.started_at for p in log.passes()] == [AT]  # the record beside it, as before


def test_past_its_share_of_the_item_names_go_first_then_the_listing():
    table = OneItem()
    log = PassLog(table)  # type: ignore[arg-type]
    thousand = fleet(1000, name="n" * 128)  # IVS's longest names
    log.record(PassRecord(AT, examinable=1000, reached=100), thousand)
    assert table.item is not None and len(table.item["listing"]) <= LISTING_MAX_BYTES
    kept = log.listing()
    assert kept is not None and len(kept.stages) == 1000
    assert kept.stages[0].name == "n" * 128  # 1,000 live stages fit with their names

    many = fleet(4000, name="n" * 128)
    log.record(PassRecord(AT, examinable=4000, reached=100), many)
    kept = log.listing()
    assert kept is not None and [s.arn for s in kept.stages] == [s.arn for s in many]
    assert {s.name for s in kept.stages} == {""}  # without their names

    log.record(PassRecord(AT, examinable=20000, reached=100), fleet(20000))
    assert log.listing() is None  # too many to keep: the fleet view lists IVS itself
    assert len(log.passes()) == 3  # the pass's record is kept all the same


def test_an_item_without_a_listing_or_with_a_foreign_one_has_none():
    table = OneItem()
    log = PassLog(table)  # type: ignore[arg-type]
    assert log.listing() is None
    log.record(PassRecord(AT, examinable=0, reached=0))
    assert log.listing() is None
    assert table.item is not None
    table.item.update(listedAt="2026-11-22T20:00:00Z", listing="{not json")
    assert log.listing() is None
