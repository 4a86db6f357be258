"""``validate_policy``: every problem in a hand-written policy document, each naming the field.

The parts of a policy that are handed to IVS as they are (``composition.layout``, ``destinations``,
``tags``, replication ``attributes``, moderation ``reason``) are checked against botocore's own
``ivs-realtime`` request shapes (``shapes``), so the limits are IVS's and move with botocore.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, Final

from stagepilot.policy.model import (
    DEFAULT_STAGE,
    HOST_GONE_ACTIONS,
    HOST_GONE_GRACE_RANGE,
    LIMIT_COUNT_RANGE,
    LIMIT_WINDOW_RANGE,
    MAX_POLICY_TAGS,
    MAX_REPLICATION_ATTRIBUTES_BYTES,
    MAX_REPLICATIONS,
    MAX_RESTARTS_LIMIT,
    MAX_SESSION_MINUTES_RANGE,
    MAX_TOKEN_ATTRIBUTES_BYTES,
    MAX_USER_ID_LENGTH,
    NO_PUBLISHER_SECONDS_RANGE,
    RESERVED_TAG_PREFIXES,
    STAGEPILOT_TAG_COUNT,
    TOKEN_CAPABILITIES,
    TOKEN_DURATION_RANGE,
)
from stagepilot.policy.problems import Problem, join, json_type, show
from stagepilot.policy.shapes import check_request, check_shape, member_shape, walk

# Stand-ins for request members the policy does not carry, so a partial request passes the shape.
_STANDIN_STAGE_ARN: Final = "arn:aws:ivs:us-east-1:000000000000:stage/StandIn"
_STANDIN_PARTICIPANT_ID: Final = "StandIn"

_ROOT_FIELDS: Final = (
    "stageArn",
    "paused",
    "composition",
    "replication",
    "moderation",
    "stage",
    "tokens",
    "limits",
)
# DynamoDB's item limit is 400 KB (names and values, UTF-8); a policy item holds the document as JSON plus its
# key, version, time and who stored it (at most about 2.5 KB): documents up to this size can be stored.
DYNAMODB_ITEM_LIMIT: Final = 400 * 1024
MAX_POLICY_BYTES: Final = DYNAMODB_ITEM_LIMIT - 4 * 1024
_STAGE_FIELDS: Final = ("participantRecording",)
_COMPOSITION_FIELDS: Final = ("layout", "destinations", "tags", "maxRestarts")
_REPLICATION_FIELDS: Final = ("destinationStageArn", "reconnectWindowSeconds", "attributes", "participants")
_PARTICIPANTS_FIELDS: Final = ("userIds", "attributes")
_LIMITS_FIELDS: Final = ("maxSessionMinutes", "noPublisherSeconds", "hostGone")
_HOST_GONE_FIELDS: Final = (*_PARTICIPANTS_FIELDS, "graceSeconds", "action")
_MODERATION_FIELDS: Final = (
    "dryRun",
    "reason",
    "blockedUserIds",
    "blockedAttributes",
    "publishErrorLimit",
    "flagLimit",
)
_LIMIT_FIELDS: Final = ("count", "windowSeconds")
_TOKENS_FIELDS: Final = ("roles", "defaultRole")
_ROLE_FIELDS: Final = ("capabilities", "attributes", "durationMinutes")
_ROLE_NAME: Final = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def validate_policy(document: object) -> list[Problem]:
    """Every problem in ``document`` (empty when it is a valid policy). Never raises."""
    problems: list[Problem] = []
    if not isinstance(document, dict):
        problems.append(Problem("", f"a policy must be an object, got {json_type(document)}"))
        return problems
    _check_unknown(document, _ROOT_FIELDS, "", problems)
    _check_unicode(document, "", problems)

    stage_arn = document.get("stageArn")
    if "stageArn" not in document:
        problems.append(Problem("stageArn", f'required field missing (a stage ARN or "{DEFAULT_STAGE}")'))
    elif not isinstance(stage_arn, str):
        problems.append(Problem("stageArn", f"must be a string, got {json_type(stage_arn)}"))
    elif stage_arn != DEFAULT_STAGE:
        walk(stage_arn, member_shape("StartComposition", "stageArn"), "stageArn", problems)

    if "paused" in document:
        _check_bool(document["paused"], "paused", problems)
    if "composition" in document:
        _check_composition(document["composition"], "composition", problems)
    if "replication" in document:
        own = stage_arn if isinstance(stage_arn, str) else None
        _check_replication(document["replication"], own, "replication", problems)
    if "moderation" in document:
        _check_moderation(document["moderation"], "moderation", problems)
    if "stage" in document:
        _check_stage(document["stage"], "stage", problems)
    if "tokens" in document:
        _check_tokens(document["tokens"], "tokens", problems)
    if "limits" in document:
        _check_limits(document["limits"], "limits", problems)
    if isinstance(stage_arn, str) and stage_arn != DEFAULT_STAGE and _ARN_PLACE.match(stage_arn):
        _check_same_place(document, stage_arn, problems)
    _check_storable(document, problems)
    return problems


def _check_storable(document: dict[str, Any], problems: list[Problem]) -> None:
    """A document DynamoDB cannot store (its 400 KB item limit) is refused here, not by ``put``."""
    try:
        size = len(json.dumps(document, sort_keys=True).encode("utf-8"))
    except (TypeError, ValueError, UnicodeEncodeError):
        return  # not JSON at all: the field checks above say why
    if size > MAX_POLICY_BYTES:
        problems.append(
            Problem(
                "",
                f"the policy is {size:,} bytes as stored; DynamoDB stores items of at most 400 KB, so a policy may "
                f"be at most {MAX_POLICY_BYTES:,} bytes (its key, version and author take the rest)",
            )
        )


def _check_stage(section: object, path: str, problems: list[Problem]) -> None:
    if not isinstance(section, dict):
        problems.append(Problem(path, f"must be an object, got {json_type(section)}"))
        return
    _check_unknown(section, _STAGE_FIELDS, path, problems)
    if "participantRecording" in section:
        shape = member_shape("UpdateStage", "autoParticipantRecordingConfiguration")
        check_shape(section["participantRecording"], shape, join(path, "participantRecording"), problems)


def _check_tokens(section: object, path: str, problems: list[Problem]) -> None:
    if not isinstance(section, dict):
        problems.append(Problem(path, f"must be an object, got {json_type(section)}"))
        return
    _check_unknown(section, _TOKENS_FIELDS, path, problems)
    roles = section.get("roles")
    roles_path = join(path, "roles")
    if "roles" not in section:
        problems.append(Problem(roles_path, "required field missing (an object of roles by name)"))
    elif not isinstance(roles, dict):
        problems.append(Problem(roles_path, f"must be an object, got {json_type(roles)}"))
    elif not roles:
        problems.append(Problem(roles_path, "must name at least one role"))
    else:
        for name, role in roles.items():
            if not isinstance(name, str) or not _ROLE_NAME.fullmatch(name):
                problems.append(
                    Problem(roles_path, f"role name {show(str(name))}: 1-64 letters, digits, '.', '_' or '-'")
                )
                continue
            _check_role(role, join(roles_path, name), problems)
    if "defaultRole" in section:
        default = section["defaultRole"]
        default_path = join(path, "defaultRole")
        if not isinstance(default, str):
            problems.append(Problem(default_path, f"must be a string, got {json_type(default)}"))
        elif isinstance(roles, dict) and default not in roles:
            known = ", ".join(str(name) for name in roles) or "none"
            problems.append(Problem(default_path, f"must name a role in tokens.roles ({known}), got {show(default)}"))


def _check_role(role: object, path: str, problems: list[Problem]) -> None:
    if not isinstance(role, dict):
        problems.append(Problem(path, f"must be an object, got {json_type(role)}"))
        return
    _check_unknown(role, _ROLE_FIELDS, path, problems)
    capabilities = role.get("capabilities")
    capabilities_path = join(path, "capabilities")
    if "capabilities" not in role:
        problems.append(Problem(capabilities_path, "required field missing (PUBLISH and/or SUBSCRIBE)"))
    elif not isinstance(capabilities, list):
        problems.append(Problem(capabilities_path, f"must be an array, got {json_type(capabilities)}"))
    elif not capabilities:
        problems.append(Problem(capabilities_path, "must not be empty (PUBLISH and/or SUBSCRIBE)"))
    else:
        for index, capability in enumerate(capabilities):
            if capability not in TOKEN_CAPABILITIES:
                problems.append(
                    Problem(
                        f"{capabilities_path}[{index}]", f"must be PUBLISH or SUBSCRIBE, got {show(str(capability))}"
                    )
                )
        if len(set(map(str, capabilities))) != len(capabilities):
            problems.append(Problem(capabilities_path, "must not repeat a capability"))
    duration_path = join(path, "durationMinutes")
    if "durationMinutes" not in role:
        problems.append(Problem(duration_path, "required field missing (the token's lifetime, 1-20160 minutes)"))
    else:
        _check_int(role["durationMinutes"], *TOKEN_DURATION_RANGE, duration_path, problems)
    if "attributes" in role:
        attributes = role["attributes"]
        attributes_path = join(path, "attributes")
        before = len(problems)
        check_shape(attributes, member_shape("CreateParticipantToken", "attributes"), attributes_path, problems)
        if len(problems) == before and isinstance(attributes, dict):
            size = sum(len(k.encode()) + len(v.encode()) for k, v in attributes.items())
            if size > MAX_TOKEN_ATTRIBUTES_BYTES:
                problems.append(
                    Problem(attributes_path, f"must be at most {MAX_TOKEN_ATTRIBUTES_BYTES} bytes in all, got {size}")
                )


_ARN_PLACE: Final = re.compile(r"arn:aws:ivs:([a-z0-9-]+):([0-9]+):")


def _check_same_place(document: dict[str, Any], stage_arn: str, problems: list[Problem]) -> None:
    """docs/policy.md: every ARN in a policy is in the stage's own account and region (IVS refuses others)."""
    home = _ARN_PLACE.match(stage_arn)
    assert home is not None
    for path, arn in _arns_in(document):
        place = _ARN_PLACE.match(arn)
        if place is not None and place.groups() != home.groups():
            problems.append(
                Problem(
                    path,
                    f"must be in the stage's account and region ({home.group(2)}, {home.group(1)}), "
                    f"not ({place.group(2)}, {place.group(1)}): IVS refuses resources of another account or region",
                )
            )


def _arns_in(document: dict[str, Any]) -> Iterator[tuple[str, str]]:
    composition = document.get("composition")
    destinations = composition.get("destinations") if isinstance(composition, dict) else None
    for index, destination in enumerate(destinations if isinstance(destinations, list) else []):
        for kind in ("channel", "s3"):
            body = destination.get(kind) if isinstance(destination, dict) else None
            if not isinstance(body, dict):
                continue
            for key, value in body.items():
                values = value if isinstance(value, list) else [value]
                for position, item in enumerate(values):
                    if isinstance(item, str) and item.startswith("arn:"):
                        suffix = f"[{position}]" if isinstance(value, list) else ""
                        yield f"composition.destinations[{index}].{kind}.{key}{suffix}", item
    replication = document.get("replication")
    for index, entry in enumerate(replication if isinstance(replication, list) else []):
        arn = entry.get("destinationStageArn") if isinstance(entry, dict) else None
        if isinstance(arn, str):
            yield f"replication[{index}].destinationStageArn", arn
    stage = document.get("stage")
    recording = stage.get("participantRecording") if isinstance(stage, dict) else None
    storage = recording.get("storageConfigurationArn") if isinstance(recording, dict) else None
    if isinstance(storage, str) and storage:
        yield "stage.participantRecording.storageConfigurationArn", storage


def _check_composition(section: object, path: str, problems: list[Problem]) -> None:
    if not isinstance(section, dict):
        problems.append(Problem(path, f"must be an object, got {json_type(section)}"))
        return
    _check_unknown(section, _COMPOSITION_FIELDS, path, problems)
    request: dict[str, Any] = {"stageArn": _STANDIN_STAGE_ARN}
    request.update({key: section[key] for key in ("layout", "destinations", "tags") if key in section})
    check_request(request, "StartComposition", path, problems)
    if "maxRestarts" in section:
        _check_int(section["maxRestarts"], 0, MAX_RESTARTS_LIMIT, join(path, "maxRestarts"), problems)

    destinations = section.get("destinations")
    if isinstance(destinations, list):
        _check_destinations(destinations, join(path, "destinations"), problems)
    tags = section.get("tags")
    if isinstance(tags, dict) and MAX_POLICY_TAGS < len(tags) <= 50:  # above 50 the model check reports it
        problems.append(
            Problem(
                join(path, "tags"),
                f"at most {MAX_POLICY_TAGS} tags: IVS allows 50 per composition "
                f"and stagepilot adds {STAGEPILOT_TAG_COUNT} of its own",
            )
        )
    if isinstance(tags, dict):
        for key in tags:
            if isinstance(key, str) and key.lower().startswith(RESERVED_TAG_PREFIXES):
                problems.append(
                    Problem(
                        join(join(path, "tags"), key),
                        "tag keys starting with "
                        + " or ".join(f'"{prefix}"' for prefix in RESERVED_TAG_PREFIXES)
                        + " are reserved",
                    )
                )


def _check_destinations(destinations: list[Any], path: str, problems: list[Problem]) -> None:
    """IVS rules the model cannot express: one channel and/or one s3, exactly one kind each, unique names."""
    seen_kind: dict[str, int] = {}
    seen_name: dict[str, int] = {}
    for index, destination in enumerate(destinations):
        if not isinstance(destination, dict):
            continue  # reported by the shape check
        item = f"{path}[{index}]"
        kinds = [kind for kind in ("channel", "s3") if kind in destination]
        if len(kinds) != 1:
            found = "both" if kinds else "neither"
            problems.append(Problem(item, f"a destination must have exactly one of channel, s3 (found {found})"))
        for kind in kinds:
            if kind in seen_kind:
                problems.append(
                    Problem(
                        join(item, kind),
                        f"a composition can have at most one {kind} destination (already {path}[{seen_kind[kind]}])",
                    )
                )
            else:
                seen_kind[kind] = index
        name = destination.get("name")
        if isinstance(name, str) and name:
            if name in seen_name:
                problems.append(
                    Problem(
                        join(item, "name"),
                        f'duplicate destination name "{name}" (already {path}[{seen_name[name]}])',
                    )
                )
            else:
                seen_name[name] = index


def _check_replication(section: object, own_stage_arn: str | None, path: str, problems: list[Problem]) -> None:
    if not isinstance(section, list):
        problems.append(Problem(path, f"must be an array, got {json_type(section)}"))
        return
    if len(section) > MAX_REPLICATIONS:
        problems.append(
            Problem(
                path,
                f"at most {MAX_REPLICATIONS} entries (IVS allows {MAX_REPLICATIONS} concurrent replications "
                f"per participant), got {len(section)}",
            )
        )
    seen: dict[str, int] = {}
    for index, entry in enumerate(section):
        item = f"{path}[{index}]"
        if not isinstance(entry, dict):
            problems.append(Problem(item, f"must be an object, got {json_type(entry)}"))
            continue
        _check_unknown(entry, _REPLICATION_FIELDS, item, problems)
        request: dict[str, Any] = {
            "sourceStageArn": _STANDIN_STAGE_ARN,
            "participantId": _STANDIN_PARTICIPANT_ID,
        }
        request.update(
            {key: entry[key] for key in ("destinationStageArn", "reconnectWindowSeconds", "attributes") if key in entry}
        )
        check_request(request, "StartParticipantReplication", item, problems)

        destination = entry.get("destinationStageArn")
        if isinstance(destination, str):
            if destination == own_stage_arn:
                problems.append(Problem(join(item, "destinationStageArn"), "a stage cannot replicate to itself"))
            elif destination in seen:
                problems.append(
                    Problem(
                        join(item, "destinationStageArn"),
                        f"duplicate destination (already {path}[{seen[destination]}])",
                    )
                )
            else:
                seen[destination] = index
        attributes = entry.get("attributes")
        if isinstance(attributes, dict):
            size = sum(
                len(key.encode()) + len(value.encode())
                for key, value in attributes.items()
                if isinstance(key, str) and isinstance(value, str)
            )
            if size > MAX_REPLICATION_ATTRIBUTES_BYTES:
                problems.append(
                    Problem(
                        join(item, "attributes"),
                        f"must be at most 1 KB in total (keys and values, UTF-8), got {size} bytes",
                    )
                )
        if "participants" in entry:
            _check_participants(entry["participants"], join(item, "participants"), problems)


def _check_limits(section: object, path: str, problems: list[Problem]) -> None:
    if not isinstance(section, dict):
        problems.append(Problem(path, f"must be an object, got {json_type(section)}"))
        return
    _check_unknown(section, _LIMITS_FIELDS, path, problems)
    if "maxSessionMinutes" in section:
        _check_int(section["maxSessionMinutes"], *MAX_SESSION_MINUTES_RANGE, join(path, "maxSessionMinutes"), problems)
    if "noPublisherSeconds" in section:
        _check_int(
            section["noPublisherSeconds"], *NO_PUBLISHER_SECONDS_RANGE, join(path, "noPublisherSeconds"), problems
        )
    if "hostGone" in section:
        _check_host_gone(section["hostGone"], join(path, "hostGone"), problems)


def _check_host_gone(section: object, path: str, problems: list[Problem]) -> None:
    """Who the hosts are (as ``replication[].participants``), the grace, and the action: all required, as
    the action ends a show."""
    if not isinstance(section, dict):
        problems.append(Problem(path, f"must be an object, got {json_type(section)}"))
        return
    _check_participants(section, path, problems, known=_HOST_GONE_FIELDS, missing="who the hosts are")
    grace_path = join(path, "graceSeconds")
    if "graceSeconds" not in section:
        problems.append(Problem(grace_path, "required field missing (how long the show waits for a host, 0-3600)"))
    else:
        _check_int(section["graceSeconds"], *HOST_GONE_GRACE_RANGE, grace_path, problems)
    action_path = join(path, "action")
    choices = " or ".join(HOST_GONE_ACTIONS)
    action = section.get("action")
    if "action" not in section:
        problems.append(Problem(action_path, f"required field missing ({choices})"))
    elif action not in HOST_GONE_ACTIONS:
        shown = show(action) if isinstance(action, str) else json_type(action)
        problems.append(Problem(action_path, f"must be {choices}, got {shown}"))


def _check_participants(
    section: object,
    path: str,
    problems: list[Problem],
    *,
    known: tuple[str, ...] = _PARTICIPANTS_FIELDS,
    missing: str = "omit participants to replicate every publisher",
) -> None:
    if not isinstance(section, dict):
        problems.append(Problem(path, f"must be an object, got {json_type(section)}"))
        return
    _check_unknown(section, known, path, problems)
    if not any(key in section for key in _PARTICIPANTS_FIELDS):
        problems.append(Problem(path, f"must give userIds and/or attributes ({missing})"))
    if "userIds" in section:
        _check_strings(section["userIds"], join(path, "userIds"), problems, non_empty_list=True)
    if "attributes" in section:
        attributes = section["attributes"]
        attributes_path = join(path, "attributes")
        if not isinstance(attributes, dict):
            problems.append(Problem(attributes_path, f"must be an object, got {json_type(attributes)}"))
        elif not attributes:
            problems.append(Problem(attributes_path, "must not be empty"))
        else:
            for key, value in attributes.items():
                if not isinstance(value, str):
                    problems.append(
                        Problem(join(attributes_path, str(key)), f"must be a string, got {json_type(value)}")
                    )


def _check_moderation(section: object, path: str, problems: list[Problem]) -> None:
    if not isinstance(section, dict):
        problems.append(Problem(path, f"must be an object, got {json_type(section)}"))
        return
    _check_unknown(section, _MODERATION_FIELDS, path, problems)
    if "dryRun" in section:
        _check_bool(section["dryRun"], join(path, "dryRun"), problems)
    if "reason" in section:
        request = {
            "stageArn": _STANDIN_STAGE_ARN,
            "participantId": _STANDIN_PARTICIPANT_ID,
            "reason": section["reason"],
        }
        check_request(request, "DisconnectParticipant", path, problems)
    if "blockedUserIds" in section:
        _check_strings(section["blockedUserIds"], join(path, "blockedUserIds"), problems, non_empty_list=False)
    if "blockedAttributes" in section:
        blocked = section["blockedAttributes"]
        blocked_path = join(path, "blockedAttributes")
        if not isinstance(blocked, dict):
            problems.append(Problem(blocked_path, f"must be an object, got {json_type(blocked)}"))
        else:
            for key, values in blocked.items():
                if key == "":
                    problems.append(Problem(blocked_path, "attribute names must not be empty"))
                _check_strings(values, join(blocked_path, str(key)), problems, non_empty_list=True)
    for name in ("publishErrorLimit", "flagLimit"):
        if name in section:
            _check_limit(section[name], join(path, name), problems)


def _check_limit(section: object, path: str, problems: list[Problem]) -> None:
    if not isinstance(section, dict):
        problems.append(Problem(path, f"must be an object, got {json_type(section)}"))
        return
    _check_unknown(section, _LIMIT_FIELDS, path, problems)
    for name, (low, high) in (("count", LIMIT_COUNT_RANGE), ("windowSeconds", LIMIT_WINDOW_RANGE)):
        if name not in section:
            problems.append(Problem(join(path, name), "required field missing"))
        else:
            _check_int(section[name], low, high, join(path, name), problems)


def _check_strings(value: object, path: str, problems: list[Problem], *, non_empty_list: bool) -> None:
    """An array of non-empty strings of at most 128 characters (user ids, attribute values)."""
    if not isinstance(value, list):
        problems.append(Problem(path, f"must be an array of strings, got {json_type(value)}"))
        return
    if non_empty_list and not value:
        problems.append(Problem(path, "must not be empty"))
    for index, item in enumerate(value):
        item_path = f"{path}[{index}]"
        if not isinstance(item, str):
            problems.append(Problem(item_path, f"must be a string, got {json_type(item)}"))
        elif not item:
            problems.append(Problem(item_path, "must not be empty"))
        elif len(item) > MAX_USER_ID_LENGTH:
            problems.append(Problem(item_path, f"must be at most {MAX_USER_ID_LENGTH} characters, got {len(item)}"))


def _check_unknown(section: dict[str, Any], known: tuple[str, ...], path: str, problems: list[Problem]) -> None:
    for key in section:
        if key not in known:
            problems.append(Problem(join(path, str(key)), f"unknown field (expected one of: {', '.join(known)})"))


def _check_unicode(document: object, path: str, problems: list[Problem]) -> None:
    """Every string (keys too) must be encodable: JSON allows lone surrogates ("\\ud800"); nothing
    downstream (DynamoDB, botocore, IVS, logs) can send them. Iterative: depth is not bounded here."""
    stack: list[tuple[object, str]] = [(document, path)]
    while stack:
        value, where = stack.pop()
        if isinstance(value, str):
            if not _encodable(value):
                problems.append(Problem(where, "must be valid Unicode text (it holds a lone surrogate)"))
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str) and not _encodable(key):
                    problems.append(Problem(where, "a key must be valid Unicode text (it holds a lone surrogate)"))
                stack.append((item, join(where, key if isinstance(key, str) and _encodable(key) else "?")))
        elif isinstance(value, list):
            stack.extend((item, f"{where}[{index}]") for index, item in enumerate(value))


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_bool(value: object, path: str, problems: list[Problem]) -> None:
    if not isinstance(value, bool):
        problems.append(Problem(path, f"must be a boolean, got {json_type(value)}"))


def _check_int(value: object, low: int, high: int, path: str, problems: list[Problem]) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        problems.append(Problem(path, f"must be an integer, got {json_type(value)}"))
    elif not low <= value <= high:
        # str() of an int over 4300 digits raises: say how long it is instead.
        shown = (
            str(value) if abs(value) < 10**40 else f"a number of about {int(value.bit_length() * 0.30103) + 1} digits"
        )
        problems.append(Problem(path, f"must be between {low} and {high}, got {shown}"))
