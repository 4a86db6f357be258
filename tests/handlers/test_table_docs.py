"""docs/table.md is the table's design: every kind of item the functions write on the demo is listed there.

An item the design does not explain is one an operator reading a stage's partition cannot interpret, and
one whose IAM scope and expiry nobody reviewed."""

from __future__ import annotations

import re
from pathlib import Path

from moto import mock_aws

from benchmarks.work_per_event import demo, deploy, play

DOCS = Path(__file__).resolve().parents[2] / "docs" / "table.md"


def _kind(pk: str, sk: str) -> str:
    """The item's key shape with its variable parts left out: ``SESSION#…#PUBLISHER#``, ``AUDIT#``, ``BAN``."""
    if pk.startswith("AUDIT#"):
        return "AUDIT#"  # the audit trail: AUDIT#<stage ARN>, sort key <time>#<id>
    if not pk.startswith(("STAGE#", "HISTORY#")):
        return pk  # POLICY, PAUSE, BAN: one partition each, the sort key is the stage ARN or user id
    if pk.startswith("HISTORY#"):
        return "HISTORY#"
    if sk.startswith("SESSION#"):
        kind = sk.split("#")[2]
        return f"SESSION#<sid>#{kind}"
    return re.sub(r"#.*", "#", sk)


def test_every_item_the_demo_writes_is_in_the_table_design() -> None:
    policies, bans, scenario = demo()
    with mock_aws():
        deployment = deploy(policies, bans)
        play(deployment, scenario)
        deployment.settle(600)
        items = deployment.table.client.scan(TableName=deployment.table.name)["Items"]
    kinds = {_kind(item["pk"]["S"], item["sk"]["S"]) for item in items}
    assert {"POLICY", "BAN", "AUDIT#", "COMPOSITIONS", "SESSION#<sid>#PUBLISHER"} <= kinds  # the demo writes these
    text = DOCS.read_text()
    assert {kind for kind in kinds if not _documented(kind, text)} == set()


def _documented(kind: str, text: str) -> bool:
    """``SESSION#<sid>#PUBLISHER`` is written ``SESSION#<sid>#PUBLISHER#<participant id>`` in the design."""
    if kind.startswith("SESSION#<sid>#"):
        name = kind.split("#")[2]
        return f"`SESSION#<sid>#{name}" in text or f"`SESSION#<session id>#{name}" in text
    return f"`{kind}" in text
