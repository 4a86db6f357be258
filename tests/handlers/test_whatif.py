"""The what-if port (operator/whatif.py): reads are real, writes and IVS mutations are recorded, never made.

On moto DynamoDB (the "real" table) and the IVS stand-in, as the handlers run: what ``explain`` and
``reconcile --dry-run`` rely on to run the real orchestration without acting.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ParamValidationError

from stagepilot.adapters.schema import AUDIT_INDEX, PARTITION_KEY
from stagepilot.adapters.table import ConditionalPut, Table
from stagepilot.local.deployment import LocalDeployment
from stagepilot.operator.whatif import (
    HYPOTHETICAL_PREFIX,
    WHAT_IF_READS,
    IvsCall,
    TableWrite,
    WhatIf,
    WhatIfUnsupported,
    what_if,
)
from tests.support import CHANNEL, ENCODER, OTHER_STAGE, SESSION, STAGE, STORAGE, EventFactory

PK = "STAGE#test"
ABSENT = "attribute_not_exists(#pk)"
NAMES = {"#pk": PARTITION_KEY}


@pytest.fixture
def whatif(deployment: LocalDeployment) -> Iterator[WhatIf]:
    deployment.table.put({"pk": PK, "sk": "A", "n": 1})
    deployment.table.put({"pk": PK, "sk": "B", "n": 2})
    with what_if(deployment.services) as port:
        yield port


def real_items(table: Table) -> list[dict[str, Any]]:
    return sorted(table.client.scan(TableName=table.name)["Items"], key=lambda i: (i["pk"]["S"], i["sk"]["S"]))


# reads -----------------------------------------------------------------------------------------------
def test_reads_see_the_real_table(whatif: WhatIf, deployment: LocalDeployment) -> None:
    assert whatif.table.get(PK, "A", consistent=True) == {"pk": PK, "sk": "A", "n": 1}
    assert set(whatif.table.get_many([(PK, "A"), (PK, "B"), (PK, "C")])) == {(PK, "A"), (PK, "B")}
    assert [i["sk"] for i in whatif.table.query(PK)] == ["A", "B"]
    assert [i["sk"] for i in whatif.table.query(PK, newest_first=True, limit=1)] == ["B"]
    assert whatif.table.get(PK, "C") is None
    assert whatif.writes == []


def test_a_query_of_the_audit_index_sees_the_real_trail(whatif: WhatIf, deployment: LocalDeployment) -> None:
    from stagepilot.adapters.table import AuditRecord

    entry = AuditRecord(time=deployment.clock(), stage_arn=STAGE, automation="composition", action="x", reason="y")
    deployment.services.audit.record(entry)
    assert [e["action"] for e in whatif.services.audit.list()] == ["x"]
    assert next(iter(whatif.table.query("AUDIT", index=AUDIT_INDEX)))["auditPk"] == "AUDIT"


# writes ----------------------------------------------------------------------------------------------
def test_writes_are_recorded_and_never_reach_the_real_table(whatif: WhatIf, deployment: LocalDeployment) -> None:
    before = real_items(deployment.table)

    assert whatif.table.put({"pk": PK, "sk": "C", "n": 3}, condition=ABSENT, names=NAMES)
    assert whatif.table.update(PK, "A", "SET #n = #n + :one", names={"#n": "n"}, values={":one": 1}) == {
        "pk": PK,
        "sk": "A",
        "n": 2,
    }
    assert whatif.table.delete(PK, "B")
    assert whatif.table.put_all([ConditionalPut({"pk": PK, "sk": "D"}), ConditionalPut({"pk": PK, "sk": "E"})])

    assert real_items(deployment.table) == before
    assert [(w.operation, w.sk) for w in whatif.writes] == [
        ("PutItem", "C"),
        ("UpdateItem", "A"),
        ("DeleteItem", "B"),
        ("PutItem", "D"),
        ("PutItem", "E"),
    ]
    assert whatif.writes[1] == TableWrite("UpdateItem", PK, "A", {"pk": PK, "sk": "A", "n": 2})
    assert whatif.writes[2].item is None


def test_a_run_reads_its_own_writes(whatif: WhatIf) -> None:
    whatif.table.delete(PK, "A")  # real, deleted in the shadow only
    whatif.table.put({"pk": PK, "sk": "C", "n": 3})  # new, in the shadow only

    assert whatif.table.get(PK, "A") is None
    assert whatif.table.get(PK, "C") == {"pk": PK, "sk": "C", "n": 3}
    # a first query of the partition copies what is real there, without bringing back what the run deleted
    assert [i["sk"] for i in whatif.table.query(PK)] == ["B", "C"]
    assert whatif.table.update(
        PK, "C", "SET #n = :n", condition="#n = :three", names={"#n": "n"}, values={":n": 4, ":three": 3}
    )


def test_a_conditional_write_fails_as_dynamodb_would(whatif: WhatIf) -> None:
    assert not whatif.table.put({"pk": PK, "sk": "A", "n": 9}, condition=ABSENT, names=NAMES)  # exists at real
    stale = {"#n": "n"}, {":n": 5, ":old": 7}
    assert whatif.table.update(PK, "B", "SET #n = :n", condition="#n = :old", names=stale[0], values=stale[1]) is None
    assert not whatif.table.put_all(
        [ConditionalPut({"pk": PK, "sk": "Z"}), ConditionalPut({"pk": PK, "sk": "A"}, ABSENT, NAMES)]
    )
    assert whatif.writes == []  # nothing written, nothing recorded
    assert whatif.table.get(PK, "Z") is None  # the transaction wrote none of its items


def test_a_failed_condition_answers_the_stored_item_when_asked_all_old(whatif: WhatIf) -> None:
    """The one-call claims (ReturnValuesOnConditionCheckFailure=ALL_OLD) read the holder from the failure."""
    assert whatif.table.put_or_get({"pk": PK, "sk": "A", "n": 5}, condition=ABSENT, names=NAMES) == (
        False,
        {"pk": PK, "sk": "A", "n": 1},  # copied from the real table on the way
    )
    assert whatif.table.update_or_get(
        PK, "B", "SET #n = :n", condition="#n = :old", names={"#n": "n"}, values={":n": 5, ":old": 7}
    ) == (None, {"pk": PK, "sk": "B", "n": 2})
    written, _ = whatif.table.put_or_get({"pk": PK, "sk": "C", "n": 3}, condition=ABSENT, names=NAMES)
    assert written and [(w.operation, w.sk) for w in whatif.writes] == [("PutItem", "C")]
    assert whatif.table.put_or_get({"pk": PK, "sk": "C", "n": 4}, condition=ABSENT, names=NAMES) == (
        False,
        {"pk": PK, "sk": "C", "n": 3},  # its own write, not the real table's nothing
    )


def test_a_call_the_port_cannot_hold_back_is_refused(whatif: WhatIf, deployment: LocalDeployment) -> None:
    before = real_items(deployment.table)
    with pytest.raises(WhatIfUnsupported):
        whatif.table._call("batch_write_item", RequestItems={})
    assert real_items(deployment.table) == before


def test_the_shadow_lives_apart_and_is_dropped_afterwards(deployment: LocalDeployment) -> None:
    with what_if(deployment.services) as port:
        name = port.table.name
        assert name in port.table.client.list_tables()["TableNames"]
        assert deployment.table.client.list_tables()["TableNames"] == [deployment.table.name]  # the mocked account
    assert name not in port.table.client.list_tables()["TableNames"]


# IVS -------------------------------------------------------------------------------------------------
def test_ivs_reads_go_through_and_mutations_are_recorded_not_made(
    whatif: WhatIf, deployment: LocalDeployment, events: EventFactory
) -> None:
    deployment.ivs.observe(events.published("host", user_id="host-1"))
    assert whatif.ivs.active_session_id(STAGE) == SESSION
    assert [p.participant_id for p in whatif.ivs.connected_participants(STAGE, SESSION)] == ["host"]

    destination = {"name": "live", "channel": {"channelArn": CHANNEL, "encoderConfigurationArn": ENCODER}}
    request = {"stageArn": STAGE, "idempotencyToken": "t-1", "destinations": [destination]}
    arn = whatif.ivs.start_composition(request)
    whatif.ivs.start_replication({"sourceStageArn": STAGE, "destinationStageArn": OTHER_STAGE, "participantId": "host"})
    whatif.ivs.stop_replication(STAGE, OTHER_STAGE, "host")
    whatif.ivs.disconnect(STAGE, "host", "bye")
    whatif.ivs.update_stage_recording(STAGE, {"storageConfigurationArn": STORAGE})

    assert arn.startswith("arn:aws:ivs:us-east-1:123456789012:composition/" + HYPOTHETICAL_PREFIX)
    assert arn == whatif.ivs.start_composition(request)  # the same request, the same answer
    assert [c.operation for c in whatif.calls] == [
        "StartComposition",
        "StartParticipantReplication",
        "StopParticipantReplication",
        "DisconnectParticipant",
        "UpdateStage",
        "StartComposition",
    ]
    assert whatif.calls[3] == IvsCall(
        "DisconnectParticipant", {"stageArn": STAGE, "participantId": "host", "reason": "bye"}
    )
    assert deployment.ivs.mutating_calls() == []
    assert whatif.ivs.compositions(STAGE) == []  # IVS's reaction to a call is not simulated


def test_an_invalid_ivs_request_fails_as_the_real_client_would(whatif: WhatIf) -> None:
    with pytest.raises(ParamValidationError):
        whatif.ivs.start_composition({"stageArn": STAGE, "destinations": "live"})
    with pytest.raises(ParamValidationError):
        whatif.ivs.start_replication(
            {
                "sourceStageArn": STAGE,
                "destinationStageArn": OTHER_STAGE,
                "participantId": "h",
                "reconnectWindowSeconds": "30",
            }
        )
    assert whatif.calls == []


def test_an_ivs_call_neither_a_listed_read_nor_marked_mutating_is_refused(
    whatif: WhatIf, deployment: LocalDeployment, events: EventFactory
) -> None:
    """Default deny: a write that forgot ``mutating=True`` never reaches IVS from a what-if run."""
    deployment.ivs.observe(events.published("host", user_id="host-1"))
    with pytest.raises(WhatIfUnsupported, match="not DisconnectParticipant"):
        whatif.ivs._call("DisconnectParticipant", stageArn=STAGE, participantId="host", reason="forgot mutating")
    assert deployment.ivs.mutating_calls() == []
    assert [p.participant_id for p in whatif.ivs.connected_participants(STAGE, SESSION)] == ["host"]
    assert whatif.calls == []


def test_every_read_ivs_stage_makes_is_listed_and_no_write_is() -> None:
    """WHAT_IF_READS is exactly the operations IvsStage calls without ``mutating=True``: a read added there
    and not here would fail ``explain``; a write listed here would reach IVS if it forgot the flag."""
    import ast
    import inspect

    from stagepilot.adapters import ivs

    reads, writes = set(), set()
    for node in ast.walk(ast.parse(inspect.getsource(ivs))):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) in ("_call", "_paginate") and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                mutating = any(k.arg == "mutating" and getattr(k.value, "value", False) for k in node.keywords)
                (writes if mutating else reads).add(first.value)
    assert {"GetStage", "ListParticipants"} <= reads and {"StartComposition", "DisconnectParticipant"} <= writes
    assert reads == WHAT_IF_READS
    assert writes & WHAT_IF_READS == set()


# the services ----------------------------------------------------------------------------------------
def test_metrics_and_the_audit_trail_are_held_back(whatif: WhatIf, deployment: LocalDeployment) -> None:
    from stagepilot.adapters.table import AuditRecord

    counted = dict(deployment.metrics.counts)
    whatif.services.metrics.count("Healed")
    whatif.services.audit.record(
        AuditRecord(time=deployment.clock(), stage_arn=STAGE, automation="composition", action="healed", reason="r")
    )

    assert whatif.metrics.counts == {"Healed": 1} and deployment.metrics.counts == counted
    assert deployment.services.audit.list(STAGE) == []
    assert [e["action"] for e in whatif.services.audit.list(STAGE)] == ["healed"]
