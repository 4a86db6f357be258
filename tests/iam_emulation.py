"""IAM as deployed, for tests: each function's DynamoDB and IVS calls checked against its role's policy
statements, read from the synthesized template.

Why here (tests/, not stagepilot.local): the statements come from a CDK synth (aws_cdk is a dev
dependency), and `stagepilot simulate` must run from the shipped package without CDK; shipping code never
imports this module. ``LocalDeployment.function_roles`` (and ``simulate(prepare=...)``) is the seam.

What it models, as AWS evaluates an identity policy in one account:
- every ``AWS::IAM::Policy`` attached to the function's role (``Roles`` names it), whatever construct made
  it, and the role's managed policies in the template;
- an explicit Deny wins, then any Allow, else the call is refused (implicit deny);
- ``Action`` and ``Resource`` with ``*``/``?`` wildcards (actions case-insensitively), ``NotAction`` /
  ``NotResource``;
- conditions: ``String*``/``Arn*`` operators (``...IfExists`` too) with ``ForAllValues:``/``ForAnyValue:``,
  on ``dynamodb:LeadingKeys`` (taken from the request, as DynamoDB does: every partition key a request
  touches), ``aws:PrincipalArn`` and ``aws:ResourceTag/<key>`` (the tags IVS holds on the resource a call
  names: ``FunctionRoles(resource_tags=...)``, the stand-in's); a condition on a key it does not know fails
  the test instead of guessing;
- DynamoDB: ``TransactWriteItems``/``TransactGetItems`` are authorized item by item on ``PutItem``,
  ``UpdateItem``, ``DeleteItem``, ``ConditionCheckItem``, ``GetItem``; a ``Query`` on an index is
  authorized on ``<table>/index/<name>`` with that index's partition key as the leading key;
- IVS: each operation is authorized on the ARNs its request names (``IVS_AUTHORIZED_ON``, after the
  service authorization reference); listings without a resource type on ``*``; ``StartComposition`` with
  ``tags`` also needs ``ivs:TagResource`` on the composition it creates.

A refused call raises ``AccessDeniedException`` from the client, as AWS answers, and is recorded in
``FunctionRoles.denied`` so a test can name every refusal.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import ClientError

from stagepilot.adapters.table import Table
from stagepilot.pipeline import Services

# Where each IVS operation's request names the resources IAM authorizes it on ("a[].b": every item's b).
# An empty tuple: the operation has no resource type and is authorized on "*". Operations missing here
# fail the test: say how IVS authorizes a new one before a function calls it.
IVS_AUTHORIZED_ON: dict[str, tuple[str, ...]] = {
    "GetStage": ("arn",),
    "UpdateStage": ("arn",),
    "ListStages": (),
    "GetStageSession": ("stageArn",),
    "ListStageSessions": ("stageArn",),
    "GetParticipant": ("stageArn",),
    "ListParticipants": ("stageArn",),
    "ListParticipantEvents": ("stageArn",),
    "DisconnectParticipant": ("stageArn",),
    "CreateParticipantToken": ("stageArn",),
    "StartComposition": (
        "stageArn",
        "destinations[].channel.channelArn",
        "destinations[].channel.encoderConfigurationArn",
        "destinations[].s3.storageConfigurationArn",
        "destinations[].s3.encoderConfigurationArns[]",
    ),
    "StopComposition": ("arn",),
    "GetComposition": ("arn",),
    "ListCompositions": (),
    "StartParticipantReplication": ("sourceStageArn", "destinationStageArn"),
    "StopParticipantReplication": ("sourceStageArn", "destinationStageArn"),
    "ListParticipantReplicas": ("sourceStageArn",),
    "TagResource": ("resourceArn",),
    "ListTagsForResource": ("resourceArn",),
}
# DynamoDB operations authorized per item, on another action (DynamoDB's IAM documentation).
_TRANSACT_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}
_KEYED = {"GetItem", "PutItem", "UpdateItem", "DeleteItem"}


@dataclass(frozen=True)
class Request:
    """One authorization IAM makes for a call: an action on a resource, with its request context."""

    action: str
    resource: str
    context: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Denial:
    function: str
    operation: str
    request: Request

    def __str__(self) -> str:
        keys = f" {dict(self.request.context)}" if self.request.context else ""
        return f"{self.function}: {self.operation} needs {self.request.action} on {self.request.resource}{keys}"


class AccessDenied(ClientError):
    pass


# -- the template --------------------------------------------------------------------------------------


class TemplateIam:
    """The synthesized template's IAM, with its tokens resolved for one account, region and table."""

    def __init__(self, template: Mapping[str, Any], *, account: str, region: str, table_name: str) -> None:
        self.resources: Mapping[str, Any] = template["Resources"]
        self.account, self.region = account, region
        [(self.table_id, table)] = [
            (logical_id, r) for logical_id, r in self.resources.items() if r["Type"] == "AWS::DynamoDB::Table"
        ]
        self.table_name = table_name
        self.table_arn = f"arn:aws:dynamodb:{region}:{account}:table/{table_name}"
        self.partition_keys = {None: _hash_key(table["Properties"]["KeySchema"])} | {
            index["IndexName"]: _hash_key(index["KeySchema"])
            for index in table["Properties"].get("GlobalSecondaryIndexes", [])
        }

    def statements(self, role_id: str) -> list[dict[str, Any]]:
        """Every statement of every policy the template attaches to the role ``role_id`` (logical id)."""
        role = self.resources[role_id]
        assert role["Type"] == "AWS::IAM::Role", role_id
        found = []
        for resource in self.resources.values():
            if resource["Type"] == "AWS::IAM::Policy" and {"Ref": role_id} in resource["Properties"].get("Roles", []):
                found.extend(resource["Properties"]["PolicyDocument"]["Statement"])
        for arn in role["Properties"].get("ManagedPolicyArns", []):
            if isinstance(arn, dict) and "Ref" in arn and arn["Ref"] in self.resources:
                managed = self.resources[arn["Ref"]]["Properties"]["PolicyDocument"]["Statement"]
                found.extend(managed)
            else:
                raise AssertionError(f"{role_id}: a managed policy outside the template ({arn}) cannot be emulated")
        return [self.resolve(statement) for statement in found]

    def managed_policy(self, policy_id: str) -> list[dict[str, Any]]:
        """The statements of the template's managed policy ``policy_id`` (logical id), e.g. OperatorPolicy:
        what a person's role holds when it is given that policy and nothing else."""
        policy = self.resources[policy_id]
        assert policy["Type"] == "AWS::IAM::ManagedPolicy", policy_id
        return [self.resolve(statement) for statement in policy["Properties"]["PolicyDocument"]["Statement"]]

    def resolve(self, value: Any) -> Any:
        """CloudFormation intrinsic functions -> strings, for the stack deployed in this account/region.
        A reference to something other than the table resolves to a name no request ever uses."""
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if set(value) == {"Ref"}:
            pseudo = {"AWS::Partition": "aws", "AWS::Region": self.region, "AWS::AccountId": self.account}
            if value["Ref"] in pseudo:
                return pseudo[value["Ref"]]
            return self.table_name if value["Ref"] == self.table_id else f"unresolved:{value['Ref']}"
        if set(value) == {"Fn::GetAtt"}:
            logical_id, attribute = value["Fn::GetAtt"]
            if logical_id == self.table_id and attribute == "Arn":
                return self.table_arn
            return f"unresolved:{logical_id}.{attribute}"
        if set(value) == {"Fn::Join"}:
            delimiter, parts = value["Fn::Join"]
            return delimiter.join(str(self.resolve(part)) for part in parts)
        return {key: self.resolve(item) for key, item in value.items()}


def _hash_key(schema: Iterable[Mapping[str, str]]) -> str:
    return next(k["AttributeName"] for k in schema if k["KeyType"] == "HASH")


# -- evaluation ----------------------------------------------------------------------------------------


def allowed(statements: Iterable[Mapping[str, Any]], request: Request) -> bool:
    """IAM's decision for one request under an identity policy: explicit Deny > Allow > implicit deny."""
    matching = [s for s in statements if _applies(s, request)]
    if any(s["Effect"] == "Deny" for s in matching):
        return False
    return any(s["Effect"] == "Allow" for s in matching)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _applies(statement: Mapping[str, Any], request: Request) -> bool:
    if "Action" in statement:
        if not any(_glob(p, request.action, fold=True) for p in _as_list(statement["Action"])):
            return False
    elif any(_glob(p, request.action, fold=True) for p in _as_list(statement["NotAction"])):
        return False
    if "Resource" in statement:
        if not any(_glob(p, request.resource) for p in _as_list(statement["Resource"])):
            return False
    elif any(_glob(p, request.resource) for p in _as_list(statement["NotResource"])):
        return False
    return all(
        _condition(operator, key, _as_list(values), request.context)
        for operator, block in statement.get("Condition", {}).items()
        for key, values in block.items()
    )


def _glob(pattern: str, value: str, *, fold: bool = False) -> bool:
    if not isinstance(pattern, str):
        return False
    if fold:
        pattern, value = pattern.lower(), value.lower()
    return _glob_regex(pattern).fullmatch(value) is not None


@functools.cache
def _glob_regex(pattern: str) -> re.Pattern[str]:
    """The template's few patterns, each compiled once (a show asks about them a million characters' worth)."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), re.DOTALL)


KNOWN_CONDITION_KEYS = {"dynamodb:LeadingKeys", "aws:PrincipalArn"}
RESOURCE_TAG = "aws:ResourceTag/"


def _condition(operator: str, key: str, values: list[Any], context: Mapping[str, tuple[str, ...]]) -> bool:
    if key not in KNOWN_CONDITION_KEYS and not key.startswith(RESOURCE_TAG):
        raise AssertionError(f"the emulation does not know condition key {key}: model it before relying on it")
    qualifier, _, test = operator.rpartition(":")
    if_exists = test.endswith("IfExists")
    test = test.removesuffix("IfExists")
    present = key in context
    found = list(context.get(key, ()))
    negated = "Not" in test
    compare = {
        "StringEquals": lambda p, v: p == v,
        "StringNotEquals": lambda p, v: p == v,
        "StringEqualsIgnoreCase": lambda p, v: p.lower() == v.lower(),
        "StringLike": lambda p, v: _glob(p, v),
        "StringNotLike": lambda p, v: _glob(p, v),
        "ArnEquals": lambda p, v: _glob(p, v),
        "ArnLike": lambda p, v: _glob(p, v),
        "ArnNotEquals": lambda p, v: _glob(p, v),
        "ArnNotLike": lambda p, v: _glob(p, v),
    }.get(test)
    if compare is None:
        raise AssertionError(f"the emulation does not know condition operator {operator}")

    def one(value: str) -> bool:
        hit = any(compare(str(pattern), value) for pattern in values)
        return not hit if negated else hit

    if qualifier == "ForAllValues":
        return all(one(v) for v in found)  # true when the request carries no such key (as in AWS)
    if qualifier == "ForAnyValue":
        return any(one(v) for v in found)
    if qualifier:
        raise AssertionError(f"the emulation does not know condition qualifier {qualifier}")
    if not present:
        return if_exists or negated  # a missing key: ...IfExists and the negated operators hold
    return any(one(v) for v in found) if not negated else all(one(v) for v in found)


# -- requests ------------------------------------------------------------------------------------------


def dynamodb_requests(iam: TemplateIam, operation: str, params: Mapping[str, Any]) -> list[Request]:
    """What IAM authorizes for one DynamoDB call (its leading keys: every partition key it names)."""

    def table_arn(name: str, index: str | None = None) -> str:
        arn = f"arn:aws:dynamodb:{iam.region}:{iam.account}:table/{name}"
        return f"{arn}/index/{index}" if index else arn

    def leading(key: Mapping[str, Any] | None, index: str | None = None) -> tuple[str, ...]:
        attribute = iam.partition_keys[index]
        value = (key or {}).get(attribute)
        return (next(iter(value.values())),) if value else ()

    def keyed(action: str, item: Mapping[str, Any], key_field: str) -> Request:
        return Request(
            f"dynamodb:{action}",
            table_arn(item["TableName"]),
            {"dynamodb:LeadingKeys": leading(item.get(key_field))},
        )

    if operation in _KEYED:
        return [keyed(operation, params, "Item" if operation == "PutItem" else "Key")]
    if operation == "TransactWriteItems":
        requests = []
        for entry in params["TransactItems"]:
            ((kind, item),) = entry.items()
            requests.append(keyed(_TRANSACT_ACTIONS[kind], item, "Item" if kind == "Put" else "Key"))
        return requests
    if operation == "TransactGetItems":
        return [keyed("GetItem", entry["Get"], "Key") for entry in params["TransactItems"]]
    if operation in ("BatchGetItem", "BatchWriteItem"):
        requests = []
        for name, spec in params["RequestItems"].items():
            if operation == "BatchGetItem":
                keys = [leading(k) for k in spec["Keys"]]
            else:
                keys = [
                    leading(w.get("PutRequest", {}).get("Item") or w.get("DeleteRequest", {}).get("Key")) for w in spec
                ]
            values = tuple(sorted({v for k in keys for v in k}))
            requests.append(Request(f"dynamodb:{operation}", table_arn(name), {"dynamodb:LeadingKeys": values}))
        return requests
    if operation == "Query":
        index = params.get("IndexName")
        names = params.get("ExpressionAttributeNames", {})
        values = params.get("ExpressionAttributeValues", {})
        partition = iam.partition_keys[index]
        keys: tuple[str, ...] = ()
        for name, placeholder in re.findall(r"(#?[\w]+)\s*=\s*(:[\w]+)", params.get("KeyConditionExpression", "")):
            if names.get(name, name) == partition:
                keys = (next(iter(values[placeholder].values())),)
        return [Request("dynamodb:Query", table_arn(params["TableName"], index), {"dynamodb:LeadingKeys": keys})]
    # Scan, DescribeTable ...: on the table, no leading keys.
    return [Request(f"dynamodb:{operation}", table_arn(params["TableName"], params.get("IndexName")))]


def ivs_requests(
    iam: TemplateIam,
    operation: str,
    params: Mapping[str, Any],
    resource_tags: Callable[[str], Mapping[str, str] | None] | None = None,
) -> list[Request]:
    """``resource_tags``: the tags IVS holds on an ARN (None: it holds none, or no such resource), the
    ``aws:ResourceTag/<key>`` keys of each request on an existing resource."""
    if operation not in IVS_AUTHORIZED_ON:
        raise AssertionError(f"the emulation does not know how IAM authorizes ivs:{operation}: add it")
    arns = [arn for path in IVS_AUTHORIZED_ON[operation] for arn in _at(params, path.split("."))]

    def tags(arn: str) -> dict[str, tuple[str, ...]]:
        found = resource_tags(arn) if resource_tags is not None and arn != "*" else None
        return {f"{RESOURCE_TAG}{key}": (value,) for key, value in (found or {}).items()}

    requests = [Request(f"ivs:{operation}", arn, tags(arn)) for arn in (arns or ["*"])]
    if operation == "StartComposition" and params.get("tags"):
        new = f"arn:aws:ivs:{iam.region}:{iam.account}:composition/NewComposition0"
        requests.append(Request("ivs:TagResource", new))
    return requests


def _at(value: Any, path: list[str]) -> list[str]:
    if not path:
        return [value] if isinstance(value, str) else []
    head, rest = path[0], path[1:]
    many = head.endswith("[]")
    item = value.get(head.removesuffix("[]")) if isinstance(value, Mapping) else None
    if item is None:
        return []
    if many:
        return [found for element in item for found in _at(element, rest)]
    return _at(item, rest)


# -- the functions -------------------------------------------------------------------------------------


class FunctionRoles:
    """``LocalDeployment.function_roles``: each function gets its own clients, refused what its role is.

    ``roles``: function name (automation, or ``convergence``) -> its role's logical id in the template, or
    the statements it holds (``TemplateIam.managed_policy``: a person's role running the same code).
    ``ivs_client``: makes a new IVS client answered by the stand-in (``IvsStandIn.client``);
    ``resource_tags``: the tags the stand-in holds on an ARN (what ``aws:ResourceTag/<key>`` conditions see).
    """

    def __init__(
        self,
        iam: TemplateIam,
        roles: Mapping[str, str | list[dict[str, Any]]],
        *,
        ivs_client: Any,
        resource_tags: Callable[[str], Mapping[str, str] | None] | None = None,
    ) -> None:
        self.iam = iam
        self._resource_tags = resource_tags
        self.statements = {
            function: iam.statements(role) if isinstance(role, str) else role for function, role in roles.items()
        }
        self._ivs_client = ivs_client
        self._services: dict[str, Services] = {}
        self.denied: list[Denial] = []
        self.allowed: list[tuple[str, Request]] = []

    def __call__(self, function: str, services: Services) -> Services:
        """``services`` as ``function``'s container holds them: its own DynamoDB and IVS clients, under its role."""
        if function not in self.statements:
            raise AssertionError(f"no role in the template for function {function!r}")
        if function not in self._services:
            dynamodb = boto3.client("dynamodb", region_name=self.iam.region)
            self._check(dynamodb, "dynamodb", function, dynamodb_requests)
            ivs = self._ivs_client()
            self._check(
                ivs,
                "ivs-realtime",
                function,
                lambda iam, operation, params: ivs_requests(iam, operation, params, self._resource_tags),
            )
            self._services[function] = dataclasses.replace(
                services, table=Table(dynamodb, services.table.name), ivs=services.ivs.on_client(ivs)
            )
        return self._services[function]

    def _check(self, client: Any, service: str, function: str, requests: Any) -> None:
        def before(params: Mapping[str, Any], model: Any, **_: Any) -> None:
            for request in requests(self.iam, model.name, params):
                if not allowed(self.statements[function], request):
                    self.denied.append(Denial(function, model.name, request))
                    raise AccessDenied(
                        {
                            "Error": {
                                "Code": "AccessDeniedException",
                                "Message": f"User: arn:aws:sts::{self.iam.account}:assumed-role/{function}/x is not "
                                f"authorized to perform: {request.action} on resource: {request.resource}",
                            },
                            "ResponseMetadata": {"HTTPStatusCode": 400 if service == "dynamodb" else 403},
                        },
                        model.name,
                    )
                self.allowed.append((function, request))

        client.meta.events.register(f"before-parameter-build.{service}", before)
