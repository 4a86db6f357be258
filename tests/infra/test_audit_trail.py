"""Context ``auditTrail: true``: a CloudTrail trail of the table's data events (every write to the audit trail,
with the principal that made it), in a bucket of its own; cdk-nag clean. Absent: no trail."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.infra.conftest import Synthesized, synthesize


def test_no_trail_unless_asked(deployed: Synthesized) -> None:
    assert deployed.template.find_resources("AWS::CloudTrail::Trail") == {}


def test_the_audit_trail_records_the_tables_data_events(tmp_path: Path) -> None:
    synthesized = synthesize({"auditTrail": True}, tmp_path)  # raises on an unacknowledged cdk-nag finding
    [trail] = synthesized.template.find_resources("AWS::CloudTrail::Trail").values()
    properties = trail["Properties"]
    [selector] = properties["AdvancedEventSelectors"]
    fields = {f["Field"]: f["Equals"] for f in selector["FieldSelectors"]}
    table = synthesized.logical_id(synthesized.stack.table)
    assert fields == {
        "eventCategory": ["Data"],
        "resources.type": ["AWS::DynamoDB::Table"],
        "resources.ARN": [{"Fn::GetAtt": [table, "Arn"]}],
    }
    assert properties["EnableLogFileValidation"] is True and "EventSelectors" not in properties
    [bucket] = synthesized.template.find_resources("AWS::S3::Bucket").values()
    assert bucket["DeletionPolicy"] == "Retain"
    assert bucket["Properties"]["PublicAccessBlockConfiguration"]["BlockPublicPolicy"] is True


@pytest.mark.parametrize("value", ["yes", 1])
def test_audit_trail_is_true_or_false(tmp_path: Path, value: object) -> None:
    with pytest.raises(ValueError, match="auditTrail"):
        synthesize({"auditTrail": value}, tmp_path)
