"""botocore's ``ivs-realtime`` request shapes: the model (loaded once, or the IVS client's own) and the
walk that checks a value against a shape.

botocore's ``ParamValidator`` checks types, required and unknown members and minimums; the shape walk here
adds what it skips: maximums, string patterns (ARNs), enums, and booleans where integers are expected.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any, Final

from stagepilot.policy.problems import Problem, article, join, json_type, show

if TYPE_CHECKING:  # botocore's modules are imported when a policy is first checked: the CLI's commands that
    # never check one (``--version``, ``status``'s help, ``simulate``'s parsing) do not pay for them at start-up
    from botocore.model import ServiceModel, Shape

_ARN_KIND = re.compile(r"^arn:aws:ivs:.*:([a-z-]+)/")
_PY_TYPE_NAMES: Final = {
    "<class 'str'>": "string",
    "<class 'int'>": "integer",
    "<class 'bool'>": "boolean",
    "<class 'dict'>": "object",
    "<class 'list'>": "array",
    "<class 'tuple'>": "array",
    "<class 'float'>": "number",
    "<class 'decimal.Decimal'>": "number",
}


# --------------------------------------------------------------------------------------------------
# The botocore model


_LOADED_MODEL: list[ServiceModel] = []  # the IVS client's own model, when the caller has one


def use_service_model(model: ServiceModel) -> None:
    """Validate against ``model`` (an ``ivs-realtime`` client's ``meta.service_model``) instead of loading the
    model a second time: a fresh botocore Loader rescans every service folder (~9 ms of a cold start)."""
    if model.service_name != "ivs-realtime":
        raise ValueError(f"not the ivs-realtime model: {model.service_name}")
    _LOADED_MODEL[:] = [model]
    _service_model.cache_clear()
    _input_shape.cache_clear()


@functools.lru_cache(maxsize=1)
def _service_model() -> ServiceModel:
    if _LOADED_MODEL:
        return _LOADED_MODEL[0]
    # Measured with boto3 already imported (as in the Lambda), Python 3.11, botocore 1.44.5:
    # ~7 ms through botocore.loaders (~12 ms through botocore.session.get_session()); once per container.
    from botocore.loaders import Loader
    from botocore.model import ServiceModel

    return ServiceModel(Loader().load_service_model("ivs-realtime", "service-2"), "ivs-realtime")


@functools.cache
def _input_shape(operation: str) -> Shape:
    shape = _service_model().operation_model(operation).input_shape
    assert shape is not None
    return shape


def member_shape(operation: str, member: str) -> Shape:
    return _input_shape(operation).members[member]


# --------------------------------------------------------------------------------------------------
# Checking a request against a botocore shape


def check_request(request: dict[str, Any], operation: str, path: str, problems: list[Problem]) -> None:
    """Problems with ``request`` as input to ``operation``, their paths under ``path``."""
    check_shape(request, _input_shape(operation), path, problems)


def check_shape(value: object, shape: Shape, path: str, problems: list[Problem]) -> None:
    """Problems with ``value`` as the structure ``shape`` of the IVS model, their paths under ``path``."""
    if not isinstance(value, dict):
        problems.append(Problem(path, f"must be an object, got {json_type(value)}"))
        return
    request = value
    from botocore.validate import ParamValidator

    report = ParamValidator().validate(request, shape)
    # The report keeps (reason, name, details) tuples; generate_report() would only give us text.
    for reason, name, details in getattr(report, "_errors", []):
        problems.append(_from_botocore(reason, str(name), details, shape, path))
    walk(request, shape, path, problems)


def _from_botocore(reason: str, name: str, details: dict[str, Any], root: Shape, path: str) -> Problem:
    segments, shape, key = _resolve(name, root)
    where = path
    for segment in segments:
        where = f"{where}[{segment}]" if isinstance(segment, int) else join(where, segment)
    prefix = f"key {show(key)}: " if key is not None else ""
    if reason == "missing required field":
        return Problem(join(where, str(details.get("required_name"))), "required field missing")
    if reason == "unknown field":
        valid = ", ".join(str(name) for name in details.get("valid_names", []))
        return Problem(join(where, str(details.get("unknown_param"))), f"unknown field (expected one of: {valid})")
    if reason == "invalid type":
        wanted = " or ".join(sorted({_PY_TYPE_NAMES.get(kind, kind) for kind in details.get("valid_types", [])}))
        return Problem(where, f"{prefix}must be {article(wanted)} {wanted}, got {json_type(details.get('param'))}")
    if reason == "invalid range":
        return Problem(where, f"must be at least {details.get('min_allowed')}, got {details.get('param')}")
    if reason == "invalid length":
        minimum, length = details.get("min_allowed"), details.get("param")
        if shape is not None and shape.type_name == "list":
            return Problem(where, f"must have at least {minimum} item(s), got {length}")
        if shape is not None and shape.type_name == "map":
            return Problem(where, f"must have at least {minimum} entries, got {length}")
        return Problem(where, f"{prefix}must be at least {minimum} character(s) long, got {length}")
    return Problem(where, f"{prefix}{reason}")


def _resolve(name: str, root: Shape) -> tuple[list[str | int], Shape | None, str | None]:
    """Split a botocore parameter name (".destinations[0].channel") into segments, guided by the shape.

    Returns the segments, the shape at the end (None if the name leaves the model) and, for an error
    about a map key (".tags (key: k)"), the key.
    """
    segments: list[str | int] = []
    shape: Shape | None = root
    rest = name
    while rest and shape is not None:
        if shape.type_name == "structure" and rest.startswith("."):
            member = next(
                (
                    candidate
                    for candidate in sorted(shape.members, key=len, reverse=True)
                    if rest[1:].startswith(candidate)
                    and rest[1 + len(candidate) : 2 + len(candidate)] in ("", ".", "[", " ")
                ),
                None,
            )
            if member is None:
                break
            segments.append(member)
            shape = shape.members[member]
            rest = rest[1 + len(member) :]
        elif shape.type_name == "list" and (match := re.match(r"\[(\d+)\]", rest)):
            segments.append(int(match.group(1)))
            shape = shape.member
            rest = rest[match.end() :]
        elif shape.type_name == "map" and rest.startswith(" (key: ") and rest.endswith(")"):
            return segments, shape.key, rest[len(" (key: ") : -1]
        elif shape.type_name == "map" and rest.startswith("."):
            # Map values here are scalars, so the rest of the name is the key.
            segments.append(rest[1:])
            return segments, shape.value, None
        else:
            break
    if rest:
        segments.append(rest.lstrip("."))
        shape = None
    return segments, shape, None


def walk(value: object, shape: Shape, path: str, problems: list[Problem]) -> None:
    """What ParamValidator skips: maximums, patterns, enums, bools as integers, tuples as arrays.

    Only descends where the type is right; wrong types are ParamValidator's to report.
    """
    kind = shape.type_name
    metadata = shape.metadata
    if kind == "string" and isinstance(value, str):
        _walk_string(value, shape, path, problems)
    elif kind in ("integer", "long") and isinstance(value, int):
        if isinstance(value, bool):
            problems.append(Problem(path, "must be an integer, got boolean"))
        elif "max" in metadata and value > metadata["max"]:
            problems.append(Problem(path, f"must be at most {metadata['max']}, got {value}"))
    elif kind == "list" and isinstance(value, (list, tuple)):
        if isinstance(value, tuple):
            problems.append(Problem(path, "must be an array, got tuple"))
        if "max" in metadata and len(value) > metadata["max"]:
            problems.append(Problem(path, f"must have at most {metadata['max']} item(s), got {len(value)}"))
        for index, item in enumerate(value):
            walk(item, shape.member, f"{path}[{index}]", problems)
    elif kind == "map" and isinstance(value, dict):
        if "max" in metadata and len(value) > metadata["max"]:
            problems.append(Problem(path, f"must have at most {metadata['max']} entries, got {len(value)}"))
        for key, item in value.items():
            if isinstance(key, str):
                key_problems: list[Problem] = []
                _walk_string(key, shape.key, path, key_problems)
                problems.extend(Problem(p.path, f"key {show(key)}: {p.message}") for p in key_problems)
                walk(item, shape.value, join(path, key), problems)
    elif kind == "structure" and isinstance(value, dict):
        members = shape.members
        for key, item in value.items():
            if key in members:
                walk(item, members[key], join(path, key), problems)


def _walk_string(value: str, shape: Shape, path: str, problems: list[Problem]) -> None:
    metadata = shape.metadata
    if "max" in metadata and len(value) > metadata["max"]:
        problems.append(Problem(path, f"must be at most {metadata['max']} characters, got {len(value)}"))
    pattern = metadata.get("pattern")
    if pattern is not None and _pattern(pattern).fullmatch(value) is None:
        arn_kind = _ARN_KIND.match(pattern)
        if arn_kind:
            kind = arn_kind.group(1)
            problems.append(
                Problem(
                    path,
                    f"not {article(kind)} {kind} ARN (expected arn:aws:ivs:<region>:<account>:{kind}/<id>)",
                )
            )
        else:
            problems.append(Problem(path, f"does not match the pattern {pattern}"))
    enum = metadata.get("enum")
    if enum and value not in enum:
        problems.append(Problem(path, f"must be one of {', '.join(enum)}, got {value!r}"))


@functools.cache
def _pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)
