"""The functions run within their roles: the event path and the convergence pass on moto, each function's
DynamoDB and IVS calls checked against its role's statements in the synthesized template (refused with
AccessDeniedException, as AWS would: tests/iam_emulation.py).

Over the example show (examples/show.jsonl), the chaos example (examples/chaos.jsonl) and a pass that
heals every kind of drift at once, no call any function makes is refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from stagepilot import budget
from stagepilot.local.deployment import TABLE_NAME, LocalDeployment
from stagepilot.local.simulate import read_scenario, simulate
from stagepilot.policy import parse_policy
from tests.iam_emulation import AccessDenied, FunctionRoles, Request, TemplateIam, allowed
from tests.infra.conftest import Synthesized
from tests.support import (
    ACCOUNT,
    CHANNEL,
    ENCODER,
    OTHER_STAGE,
    REGION,
    STAGE,
    STORAGE,
    T0,
    EventFactory,
    later,
    put_policy,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FUNCTIONS = (*budget.CALLERS,)  # composition, replication, moderation, convergence


@pytest.fixture(scope="module")
def template_iam(deployed: Synthesized) -> TemplateIam:
    return TemplateIam(deployed.template.to_json(), account=ACCOUNT, region=REGION, table_name=TABLE_NAME)


@pytest.fixture(scope="module")
def role_ids(deployed: Synthesized) -> dict[str, str]:
    stack = deployed.stack
    roles = {automation: deployed.logical_id(p.role) for automation, p in stack.pipelines.items()}
    return {**roles, budget.CONVERGENCE: deployed.logical_id(stack.convergence.role)}


def under_roles(template_iam: TemplateIam, role_ids: dict[str, str], deployment: LocalDeployment) -> FunctionRoles:
    roles = FunctionRoles(
        template_iam, role_ids, ivs_client=deployment.ivs.client, resource_tags=composition_tags(deployment)
    )
    deployment.function_roles = roles
    return roles


def composition_tags(deployment: LocalDeployment) -> Any:
    """The tags the stand-in holds on a composition (what ``aws:ResourceTag`` conditions see)."""

    def tags(arn: str) -> dict[str, str] | None:
        found = [c for c in deployment.ivs.compositions(include_deleted=True) if c.arn == arn]
        return dict(found[0].tags) if found else None

    return tags


def refusals(roles: FunctionRoles) -> list[str]:
    return [str(denial) for denial in roles.denied]


def run_example(template_iam: TemplateIam, role_ids: dict[str, str], scenario: str) -> tuple[Any, FunctionRoles]:
    policies = [parse_policy(p) for p in json.loads((EXAMPLES / "policies.json").read_text())]
    bans = json.loads((EXAMPLES / "bans.json").read_text())
    held: list[FunctionRoles] = []
    result = simulate(
        policies,
        read_scenario((EXAMPLES / scenario).read_text()),
        bans=bans,
        prepare=lambda deployment: held.append(under_roles(template_iam, role_ids, deployment)),
    )
    return result, held[0]


@pytest.mark.parametrize("scenario", ["show.jsonl", "chaos.jsonl"])
def test_the_examples_run_within_each_functions_role(
    template_iam: TemplateIam, role_ids: dict[str, str], scenario: str
) -> None:
    result, roles = run_example(template_iam, role_ids, scenario)

    assert refusals(roles) == []
    assert result.calls, "the example acts"
    # Every function ran under its own role (the emulation was in the way of each of them).
    assert {function for function, _ in roles.allowed} == set(FUNCTIONS)


@pytest.fixture
def deployment() -> Iterator[LocalDeployment]:
    with mock_aws():
        deployment = LocalDeployment(account=ACCOUNT, region=REGION, start=T0)
        yield deployment


def test_a_pass_that_heals_every_kind_of_drift_runs_within_the_convergence_role(
    template_iam: TemplateIam, role_ids: dict[str, str], deployment: LocalDeployment
) -> None:
    """Lost publishes leave no composition, no replica, a blocked user and a banned user on stage, the
    recording settings drifted, and more destinations than the host may still be replicated to (the
    application replicates the host elsewhere too: the first pass claims all five and starts four before
    IVS's quota refuses the fifth; the next pass lists the replicas and gives the fifth claim back, a
    DeleteItem)."""
    destinations = [f"arn:aws:ivs:{REGION}:{ACCOUNT}:stage/Destination{n:04d}" for n in range(5)]
    elsewhere = f"arn:aws:ivs:{REGION}:{ACCOUNT}:stage/Elsewhere0001"
    for arn in (STAGE, *destinations, elsewhere):
        deployment.ivs.create_stage(arn)
    put_policy(
        deployment,
        {
            "stageArn": STAGE,
            "composition": {
                "destinations": [
                    {"name": "live", "channel": {"channelArn": CHANNEL, "encoderConfigurationArn": ENCODER}}
                ],
                "tags": {"show": "main"},
            },
            "replication": [
                {"destinationStageArn": arn, "participants": {"userIds": ["host-1"]}} for arn in destinations
            ],
            "moderation": {"blockedUserIds": ["troll-3"]},
            "stage": {"participantRecording": {"storageConfigurationArn": STORAGE}},
        },
    )
    deployment.services.bans.add("banned-1", reason="fraud")
    roles = under_roles(template_iam, role_ids, deployment)
    events = EventFactory()
    for second, (participant, user) in enumerate([("host", "host-1"), ("troll", "troll-3"), ("fraud", "banned-1")]):
        deployment.put_event(events.published(participant, user_id=user, at=later(second)), deliver=False)
    deployment.ivs.client().start_participant_replication(  # the application's own call, not stagepilot's
        sourceStageArn=STAGE, destinationStageArn=elsewhere, participantId="host"
    )
    deployment.clock.advance_to(later(30))

    first = deployment.reconcile()
    deployment.clock.advance_to(later(90))
    second = deployment.reconcile()

    assert refusals(roles) == []
    assert second.errors == []
    healed = {(outcome.automation, outcome.action) for report in (first, second) for _, outcome in report.healed}
    # (The replicas the first pass started before IVS's quota refused one show in IVS's calls below.)
    assert {automation for automation, _ in healed} >= {"composition", "moderation", "stage"}
    made = [c.operation for c in deployment.ivs.mutating_calls()]
    assert made.count("StartParticipantReplication") == 1 + 4
    assert made.count("DisconnectParticipant") == 2
    assert "StartComposition" in made and "UpdateStage" in made
    # IVS's replication quota (402) is reported (the destination skipped over the limit), within the role,
    # and never sent again (the count above).
    assert deployment.metrics.counts["ReplicationSkippedLimit"] >= 1


def test_a_replica_blocked_at_its_destination_runs_within_the_roles(
    template_iam: TemplateIam, role_ids: dict[str, str], deployment: LocalDeployment
) -> None:
    """The destination's moderation writes the block into the source stage's replication record and its
    audit entry (one transaction), disconnects the replica and stops its replication; replication and the
    pass then leave it out."""
    green_room = f"arn:aws:ivs:{REGION}:{ACCOUNT}:stage/GreenRoom0001"
    for arn in (STAGE, green_room):
        deployment.ivs.create_stage(arn)
    put_policy(deployment, {"stageArn": STAGE, "replication": [{"destinationStageArn": green_room}]})
    put_policy(deployment, {"stageArn": green_room, "moderation": {"blockedUserIds": ["guest-9"]}})
    roles = under_roles(template_iam, role_ids, deployment)

    deployment.put_event(EventFactory().published("guest", user_id="guest-9"))
    deployment.drain()
    deployment.clock.advance_to(later(60))
    deployment.reconcile()

    assert refusals(roles) == []
    made = [c.operation for c in deployment.ivs.mutating_calls()]
    assert made.count("StartParticipantReplication") == 1 and made.count("DisconnectParticipant") == 1
    actions = sorted(e["action"] for e in deployment.services.audit.list(STAGE))
    assert actions == ["blocked-at-destination", "replication-started"]


def test_a_call_the_role_does_not_allow_is_refused_as_aws_refuses_it(
    template_iam: TemplateIam, role_ids: dict[str, str], deployment: LocalDeployment
) -> None:
    """The emulation refuses: a policy write by a function (dynamodb:LeadingKeys), an IVS write on a
    resource the role does not name, an action the role does not hold."""
    roles = under_roles(template_iam, role_ids, deployment)
    moderation = deployment.function_services("moderation")
    with pytest.raises(AccessDenied) as refused:
        moderation.table.client.put_item(TableName=TABLE_NAME, Item={"pk": {"S": "POLICY"}, "sk": {"S": STAGE}})
    assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
    with pytest.raises(AccessDenied):
        moderation.ivs._client.start_composition(stageArn=STAGE, destinations=[])
    composition = deployment.function_services("composition")
    with pytest.raises(AccessDenied):
        composition.ivs._client.disconnect_participant(stageArn=STAGE, participantId="p1")
    assert [str(d) for d in roles.denied] == [
        "moderation: PutItem needs dynamodb:PutItem on "
        f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{TABLE_NAME} {{'dynamodb:LeadingKeys': ('POLICY',)}}",
        f"moderation: StartComposition needs ivs:StartComposition on {STAGE}",
        f"composition: DisconnectParticipant needs ivs:DisconnectParticipant on {STAGE}",
    ]
    # Writes of automation state (STAGE#...) are the functions' own.
    moderation.table.client.put_item(TableName=TABLE_NAME, Item={"pk": {"S": f"STAGE#{STAGE}"}, "sk": {"S": "x"}})


def test_the_pass_stops_only_compositions_stagepilot_started(
    template_iam: TemplateIam, role_ids: dict[str, str], deployment: LocalDeployment
) -> None:
    """The convergence role's StopComposition holds only on compositions tagged stagepilot:managed=true
    (docs/policy.md, "What a stage may cost"): a limit's stop runs within it; another's composition is refused."""
    deployment.ivs.create_stage(STAGE)
    s3 = {"name": "archive", "s3": {"storageConfigurationArn": STORAGE, "encoderConfigurationArns": [ENCODER]}}
    limits = {"maxSessionMinutes": 1}
    put_policy(deployment, {"stageArn": STAGE, "composition": {"destinations": [s3]}, "limits": limits})
    roles = under_roles(template_iam, role_ids, deployment)
    deployment.put_event(EventFactory().published("host", user_id="host-1"))
    deployment.drain()
    deployment.clock.advance_to(later(90))
    deployment.reconcile()

    assert refusals(roles) == []
    assert [c.operation for c in deployment.ivs.mutating_calls()] == ["StartComposition", "StopComposition"]
    theirs = deployment.ivs.client().start_composition(  # the application's own composition, untagged
        stageArn=STAGE, destinations=[s3], tags={"team": "shows"}
    )["composition"]["arn"]
    convergence = deployment.function_services(budget.CONVERGENCE)
    with pytest.raises(AccessDenied):
        convergence.ivs._client.stop_composition(arn=theirs)
    assert refusals(roles) == [
        f"convergence: StopComposition needs ivs:StopComposition on {theirs} {{'aws:ResourceTag/team': ('shows',)}}"
    ]


@pytest.mark.parametrize(
    ("statement", "request_", "expected"),
    [
        (
            {"Effect": "Allow", "Action": "ivs:Get*", "Resource": "arn:aws:ivs:*:*:stage/*"},
            ("ivs:GetStage", "arn:aws:ivs:r:a:stage/S"),
            True,
        ),
        (
            {"Effect": "Allow", "Action": "ivs:Get*", "Resource": "arn:aws:ivs:*:*:stage/*"},
            ("ivs:GetStage", "arn:aws:ivs:r:a:channel/S"),
            False,
        ),
        ({"Effect": "Allow", "NotAction": "ivs:Delete*", "Resource": "*"}, ("ivs:DeleteStage", "*"), False),
        ({"Effect": "Allow", "NotAction": "ivs:Delete*", "Resource": "*"}, ("ivs:GetStage", "*"), True),
    ],
)
def test_actions_and_resources_match_as_iam_matches_them(
    statement: dict[str, Any], request_: tuple[str, str], expected: bool
) -> None:
    assert allowed([statement], Request(*request_)) is expected


def test_an_explicit_deny_wins_and_for_all_values_holds_for_a_request_without_keys() -> None:
    writes = {
        "Effect": "Allow",
        "Action": "dynamodb:*Item",
        "Resource": "*",
        "Condition": {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["STAGE#*"]}},
    }
    deny = {"Effect": "Deny", "Action": "dynamodb:DeleteItem", "Resource": "*"}
    keys = {"dynamodb:LeadingKeys": ("STAGE#a", "STAGE#b")}
    assert allowed([writes], Request("dynamodb:PutItem", "t", keys))
    assert not allowed([writes], Request("dynamodb:PutItem", "t", {"dynamodb:LeadingKeys": ("STAGE#a", "BAN")}))
    assert not allowed([writes, deny], Request("dynamodb:DeleteItem", "t", keys))
    assert allowed([writes], Request("dynamodb:PutItem", "t"))  # as AWS: ForAllValues of nothing is true


def test_a_persons_managed_policy_can_stand_in_for_a_role(
    deployed: Synthesized, template_iam: TemplateIam, deployment: LocalDeployment
) -> None:
    """The same emulation over OperatorPolicy / ViewerPolicy (what `reconcile` with an operator's credentials
    may do): a viewer's role cannot disconnect, an operator's can."""
    access = deployed.stack.access
    roles = FunctionRoles(
        template_iam,
        {
            "viewer": template_iam.managed_policy(deployed.logical_id(access.viewer)),
            "operator": template_iam.managed_policy(deployed.logical_id(access.operator)),
        },
        ivs_client=deployment.ivs.client,
    )
    deployment.function_roles = roles
    deployment.ivs.create_stage(STAGE)
    with pytest.raises(AccessDenied):
        deployment.function_services("viewer").ivs._client.disconnect_participant(stageArn=STAGE, participantId="p")
    operator = deployment.function_services("operator").ivs._client
    with pytest.raises(operator.exceptions.ResourceNotFoundException):  # past IAM: IVS knows no such participant
        operator.disconnect_participant(stageArn=STAGE, participantId="p")
    assert [d.function for d in roles.denied] == ["viewer"]


def test_operators_converge_through_the_function_and_hold_no_ivs_write_but_the_kick(
    deployed: Synthesized, template_iam: TemplateIam, role_ids: dict[str, str], deployment: LocalDeployment
) -> None:
    """docs/architecture-infra.md (who can make stagepilot act): `reconcile`, `policy put|rollback` and
    `resume` invoke the convergence function. An operator's (or an admin's) role cannot start a composition,
    change a stage's settings or replicate anyone; it may invoke that one function, which heals the stage
    under its own role."""
    from stagepilot.convergence_request import ConvergeRequest, report_from_json
    from stagepilot.local.functions import convergence_function

    access = deployed.stack.access
    people = {
        who: template_iam.managed_policy(deployed.logical_id(policy))
        for who, policy in (("viewer", access.viewer), ("operator", access.operator), ("admin", access.admin))
    }
    roles = FunctionRoles(template_iam, {**role_ids, **people}, ivs_client=deployment.ivs.client)
    deployment.function_roles = roles
    for arn in (STAGE, OTHER_STAGE):
        deployment.ivs.create_stage(arn)
    channel = {"name": "live", "channel": {"channelArn": CHANNEL, "encoderConfigurationArn": ENCODER}}
    put_policy(
        deployment,
        {
            "stageArn": STAGE,
            "composition": {"destinations": [channel]},
            "replication": [{"destinationStageArn": OTHER_STAGE}],
            "stage": {"participantRecording": {"storageConfigurationArn": STORAGE}},
        },
    )
    deployment.put_event(EventFactory().published("host", user_id="host-1"), deliver=False)  # lost
    deployment.clock.advance_to(later(30))

    for who in ("operator", "admin"):
        ivs = deployment.function_services(who).ivs._client
        with pytest.raises(AccessDenied):
            ivs.start_composition(stageArn=STAGE, destinations=[channel])
        with pytest.raises(AccessDenied):
            ivs.update_stage(arn=STAGE, autoParticipantRecordingConfiguration={"storageConfigurationArn": STORAGE})
        with pytest.raises(AccessDenied):
            ivs.start_participant_replication(
                sourceStageArn=STAGE, destinationStageArn=OTHER_STAGE, participantId="host"
            )
    assert sorted({(d.function, d.operation) for d in roles.denied}) == [
        (who, operation)
        for who in ("admin", "operator")
        for operation in ("StartComposition", "StartParticipantReplication", "UpdateStage")
    ]
    function = template_iam.resolve({"Fn::GetAtt": [deployed.logical_id(deployed.stack.convergence.function), "Arn"]})
    invoke = Request("lambda:InvokeFunction", function)
    assert {who: allowed(people[who], invoke) for who in people} == {"viewer": False, "operator": True, "admin": True}
    other = Request("lambda:InvokeFunction", function.replace("Convergence", "Composition"))
    assert not allowed(people["operator"], other)  # that one function only
    roles.denied.clear()

    # `reconcile STAGE`: the operator asks, the function acts with the convergence role.
    answer = convergence_function(deployment.function_services(budget.CONVERGENCE))(ConvergeRequest(STAGE).payload())
    report = report_from_json(answer)

    assert refusals(roles) == []
    assert sorted(o.automation for _, o in report.healed) == ["composition", "replication", "stage"]
    made = sorted(c.operation for c in deployment.ivs.mutating_calls())
    assert made == ["StartComposition", "StartParticipantReplication", "UpdateStage"]


def test_nobody_can_rewrite_the_audit_trail(
    deployed: Synthesized, template_iam: TemplateIam, role_ids: dict[str, str], deployment: LocalDeployment
) -> None:
    """Audit entries are only added: an operator's or admin's role (and every function's) may add one, and
    none may update, delete or batch-delete one, nor overwrite it through stagepilot's code."""
    from datetime import UTC, datetime

    from stagepilot.adapters.audit import ADD_ONLY, ADD_ONLY_NAMES, AuditRecord, audit_partition
    from stagepilot.adapters.dynamo import from_item

    access = deployed.stack.access
    people = {
        who: template_iam.managed_policy(deployed.logical_id(policy))
        for who, policy in (("operator", access.operator), ("admin", access.admin))
    }
    roles = FunctionRoles(template_iam, {**role_ids, **people}, ivs_client=deployment.ivs.client)
    deployment.function_roles = roles
    entry = AuditRecord(
        time=datetime.now(UTC),
        stage_arn=STAGE,
        automation="cli",
        action="policy-put",
        reason="stored version 1",
        event_id="cli:1",
        details={"by": "arn:aws:sts::123456789012:assumed-role/Admin/alice"},
    )
    deployment.function_services("admin").audit.record(entry)  # adding is allowed
    [item] = deployment.services.table.client.scan(TableName=TABLE_NAME)["Items"]
    key = {"pk": item["pk"], "sk": item["sk"]}
    assert item["pk"]["S"] == audit_partition(STAGE)

    for who in ("operator", "admin", *FUNCTIONS):
        client = deployment.function_services(who).table.client
        with pytest.raises(AccessDenied):
            client.update_item(
                TableName=TABLE_NAME,
                Key=key,
                UpdateExpression="SET #e = :e",
                ExpressionAttributeNames={"#e": "entry"},
                ExpressionAttributeValues={":e": {"S": "{}"}},
            )
        with pytest.raises(AccessDenied):
            client.delete_item(TableName=TABLE_NAME, Key=key)
        with pytest.raises(AccessDenied):
            client.batch_write_item(RequestItems={TABLE_NAME: [{"DeleteRequest": {"Key": key}}]})
        # stagepilot's code only adds: writing the same key again leaves the entry as it was.
        deployment.function_services(who).table.put(
            {**from_item(item), "entry": "{}"}, condition=ADD_ONLY, names=ADD_ONLY_NAMES
        )
    assert {d.operation for d in roles.denied} == {"UpdateItem", "DeleteItem", "BatchWriteItem"}
    assert len(roles.denied) == 3 * (2 + len(FUNCTIONS))
    assert deployment.services.table.client.get_item(TableName=TABLE_NAME, Key=key)["Item"] == item
    [shown] = deployment.services.audit.list(STAGE)  # `stagepilot audit` reads it, as it was written
    assert shown["details"]["by"].endswith("/alice")


def test_the_composition_budget_is_kept_and_enforced_within_the_roles(
    template_iam: TemplateIam, role_ids: dict[str, str]
) -> None:
    """compositionHoursPerDay (docs/policy.md): the composition function counts an end and refuses a start,
    the pass keeps the day's item and marks it spent, all within their roles (the day's item is a STAGE#
    item, ``STAGE#~composition-hours``)."""
    from stagepilot.config import Settings
    from stagepilot.decisions.composition_hours import parse_composition_hours

    settings = Settings(
        table_name=TABLE_NAME,
        account=ACCOUNT,
        region=REGION,
        composition_hours=parse_composition_hours({"limit": 0.01, "mode": "block"}),
    )
    with mock_aws():
        deployment = LocalDeployment(account=ACCOUNT, region=REGION, start=T0, settings=settings)
        for stage in (STAGE, OTHER_STAGE):
            deployment.ivs.create_stage(stage)
            s3 = {"name": "archive", "s3": {"storageConfigurationArn": STORAGE, "encoderConfigurationArns": [ENCODER]}}
            put_policy(deployment, {"stageArn": stage, "composition": {"destinations": [s3]}})
        roles = under_roles(template_iam, role_ids, deployment)
        events = EventFactory()
        deployment.put_event(events.published("host", user_id="host-1"))
        deployment.drain()
        deployment.clock.advance_to(later(60))
        deployment.reconcile()  # 60 s of 36 allowed: spent
        deployment.ivs.leave(STAGE, "host")
        deployment.settle(180)  # IVS ends it a minute later; its Session End is counted
        deployment.put_event(events.published("guest", stage=OTHER_STAGE, session="st-OtherSession1", at=later(300)))
        deployment.drain()
        deployment.reconcile()

        assert refusals(roles) == []
        assert deployment.metrics.counts.get("CompositionBudgetSpent") == 1
        assert deployment.metrics.counts.get("CompositionBudgetRefused") == 1
        assert [c.operation for c in deployment.ivs.mutating_calls()] == ["StartComposition"]
        deployment.close()
