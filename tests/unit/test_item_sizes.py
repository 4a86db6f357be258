"""benchmarks/item_sizes.py against DynamoDB's documented rules and examples ("DynamoDB item sizes and formats";
"DynamoDB read and write operations"): what benchmarks/cost.py's request units are computed from."""

from __future__ import annotations

import pytest

from benchmarks.item_sizes import item_size, read_units, value_size, write_units

KB = 1024


@pytest.mark.parametrize(
    ("item", "size"),
    [
        ({"Name": {"S": "abc"}}, 4 + 3),  # name bytes + UTF-8 bytes
        ({"é": {"S": "日本"}}, 2 + 6),  # UTF-8 bytes, the name's too
        ({"n": {"N": "12345"}}, 1 + 3 + 1),  # 1 byte per two significant digits (rounded up) + 1
        ({"n": {"N": "1000"}}, 1 + 1 + 1),  # trailing zeroes trimmed: "1"
        ({"n": {"N": "0.0012"}}, 1 + 1 + 1),  # leading zeroes trimmed: "12"
        ({"n": {"N": "-123.45"}}, 1 + 3 + 1),  # the sign and the point are not digits
        ({"b": {"B": b"hello"}}, 1 + 5),  # raw bytes
        ({"b": {"B": "aGVsbG8="}}, 1 + 5),  # the base64 JSON carries, decoded: still the raw bytes
        ({"flag": {"BOOL": True}}, 4 + 1),
        ({"none": {"NULL": True}}, 4 + 1),
        ({"l": {"L": []}}, 1 + 3),  # an empty list: 3 bytes
        ({"l": {"L": [{"S": "a"}, {"S": "bc"}]}}, 1 + 3 + (1 + 1) + (2 + 1)),  # + each element + 1 byte each
        ({"m": {"M": {}}}, 1 + 3),
        ({"m": {"M": {"k": {"S": "v"}, "kk": {"N": "7"}}}}, 1 + 3 + (1 + 1 + 1) + (2 + 2 + 1)),  # keys count
        ({"ss": {"SS": ["a", "bc"]}}, 2 + 1 + 2),  # a set: its elements, no overhead
        ({"ns": {"NS": ["1", "22", "300"]}}, 2 + 2 + 2 + 2),
        ({"bs": {"BS": [b"ab", b"c"]}}, 2 + 2 + 1),
        ({"m": {"M": {"l": {"L": [{"M": {}}]}}}}, 1 + 3 + (1 + (3 + (3 + 1)) + 1)),  # nested
    ],
)
def test_an_item_is_the_sum_of_its_names_and_values(item: dict[str, dict[str, object]], size: int) -> None:
    assert item_size(item) == size


def test_an_item_of_several_attributes_adds_them_up() -> None:
    item = {"pk": {"S": "STAGE#x"}, "sk": {"S": "CURSOR"}, "at": {"N": "1700000000"}, "on": {"BOOL": False}}
    assert item_size(item) == (2 + 7) + (2 + 6) + (2 + 1 + 1) + (2 + 1)


def test_a_value_that_is_not_one_typed_value_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown attribute type"):
        value_size({"X": "1"})
    with pytest.raises(ValueError, match="not one typed attribute value"):
        value_size({"S": "a", "N": "1"})


def test_reads_are_charged_per_started_4_kb_half_when_eventually_consistent() -> None:
    # "reading a 3,500-byte item consumes the same throughput as reading a 4 KB item"
    assert read_units(3500, consistent=True) == 1
    assert read_units(3500) == 0.5
    # "if your item size is 8 KB, you require 2 read units ... 1 read unit if you choose eventually consistent"
    assert read_units(8 * KB, consistent=True) == 2
    assert read_units(8 * KB) == 1
    # GetItem: "If you read an item of 10 KB, DynamoDB rounds the item size to 12 KB"
    assert read_units(10 * KB, consistent=True) == 3
    # Query: "10 items whose combined size is 40.8 KB. DynamoDB rounds the item size for the operation to 44 KB"
    assert read_units(int(40.8 * KB), consistent=True) == 11
    # an item that does not exist still costs a read
    assert read_units(0) == 0.5


def test_writes_are_charged_per_started_kb_twice_in_a_transaction() -> None:
    # "writing a 500-byte item consumes the same throughput as writing a 1 KB item"
    assert write_units(500) == 1
    # "if you put or delete an item of 1.6 KB, DynamoDB rounds the item size up to 2 KB"
    assert write_units(int(1.6 * KB)) == 2
    # "if your item size is 2 KB, you require 2 write units ... or 4 write units for a transactional write"
    assert write_units(2 * KB) == 2
    assert write_units(2 * KB, transactional=True) == 4
    # BatchWriteItem: "two items of sizes 500-byte and 3.5 KB, DynamoDB calculates the size as 5 KB"
    assert write_units(500) + write_units(int(3.5 * KB)) == 5
    assert write_units(60 * KB) == 60
    assert write_units(60 * KB + 1) == 61
