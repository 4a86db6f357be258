"""``stagepilot policy validate|put|get|list|delete``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stagepilot.cli.resources import CliError, read_json_file
from stagepilot.errors import ConflictError, NotFound
from stagepilot.events import STAGE_ARN
from stagepilot.policy import DEFAULT_STAGE, StagePolicy, parse_policy, replication_cycles, validate_policy

if TYPE_CHECKING:
    from stagepilot.cli.main import Output


def register(commands: Any, common: argparse.ArgumentParser, aws: argparse.ArgumentParser) -> None:
    policy = commands.add_parser("policy", help="manage stage policies", description="Manage stage policies.")
    sub = policy.add_subparsers(dest="policy_command", metavar="COMMAND", required=True)

    validate = sub.add_parser(
        "validate",
        parents=[common],
        help="check a policy file offline",
        description="Check a policy file offline (one policy, or a JSON array of policies) "
        "and print every problem, field by field. Exit 2 when invalid.",
    )
    validate.add_argument("file", type=Path, metavar="FILE")
    validate.set_defaults(handler=cmd_validate)

    put = sub.add_parser(
        "put",
        parents=[common, aws],
        help="validate and store a policy",
        description="Validate a policy file and store it. Concurrent writers are detected: "
        "the write fails if the stored policy changed since it was read.",
    )
    put.add_argument("file", type=Path, metavar="FILE")
    put.add_argument(
        "--expected-version",
        type=int,
        metavar="N",
        help="store only if the stored version is still N (0: only if none is stored yet)",
    )
    put.set_defaults(handler=cmd_put)

    get = sub.add_parser(
        "get",
        parents=[common, aws],
        help="print a stored policy",
        description="Print the policy stored for a stage (or 'default').",
    )
    get.add_argument("stage_arn", metavar="ARN")
    get.set_defaults(handler=cmd_get)

    listing = sub.add_parser(
        "list", parents=[common, aws], help="list stored policies", description="List the stored policies."
    )
    listing.set_defaults(handler=cmd_list)

    delete = sub.add_parser(
        "delete",
        parents=[common, aws],
        help="delete a stored policy",
        description="Delete the policy stored for a stage (or 'default').",
    )
    delete.add_argument("stage_arn", metavar="ARN")
    delete.set_defaults(handler=cmd_delete)


def load_policy_file(path: Path) -> list[Any]:
    """The documents in a policy file: one object, or an array of them."""
    document = read_json_file(path)
    return document if isinstance(document, list) else [document]


def problems_in(documents: list[Any]) -> list[str]:
    many = len(documents) > 1
    lines = []
    for index, document in enumerate(documents):
        for problem in validate_policy(document):
            lines.append(
                f"[{index}].{problem}" if many and problem.path else f"[{index}]: {problem}" if many else str(problem)
            )
    return lines


def cmd_validate(args: argparse.Namespace, out: Output) -> int:
    documents = load_policy_file(args.file)
    problems = problems_in(documents)
    valid = not problems
    cycles = replication_cycles(parse_policy(d) for d in documents) if valid else []
    if out.as_json:
        out.json(
            {
                "file": str(args.file),
                "valid": valid,
                "policies": len(documents),
                "problems": problems,
                "replicationCycles": cycles,
            }
        )
    else:
        for line in problems:
            out.line(f"{args.file}: {line}")
        if valid:
            out.line(f"{args.file}: valid ({len(documents)} {'policy' if len(documents) == 1 else 'policies'})")
    for cycle in cycles:
        out.warn(
            f"replication cycle: {' -> '.join([*cycle, cycle[0]])} (replicas are never replicated again, "
            "but check that this is what you meant)"
        )
    return 0 if valid else 2


def cmd_put(args: argparse.Namespace, out: Output) -> int:
    from stagepilot.cli.main import resources

    documents = load_policy_file(args.file)
    if len(documents) != 1:
        raise CliError(f"{args.file}: put takes one policy per file, found {len(documents)}", status=2)
    problems = problems_in(documents)
    if problems:
        for line in problems:
            print(f"{args.file}: {line}", file=out.stderr)
        raise CliError(f"{args.file}: invalid policy ({len(problems)} problems); nothing stored", status=2)
    policy = parse_policy(documents[0])
    store = _store(resources(args))
    try:
        stored = store.put(policy, expected_version=args.expected_version)
    except ConflictError as exc:
        raise CliError(str(exc)) from exc
    others = [p for p in _parsed(store.list()) if p.stage_arn != policy.stage_arn]
    for cycle in replication_cycles([*others, policy]):
        out.warn(f"stored policies form a replication cycle: {' -> '.join([*cycle, cycle[0]])}")
    if out.as_json:
        out.json({"stageArn": stored.stage_arn, "version": stored.version, "updatedAt": stored.updated_at})
    else:
        out.line(f"stored policy for {stored.stage_arn} (version {stored.version})")
    return 0


def cmd_get(args: argparse.Namespace, out: Output) -> int:
    from stagepilot.cli.main import resources

    arn = checked_arn(args.stage_arn, allow_default=True)
    stored = _store(resources(args)).get(arn)
    if stored is None:
        raise CliError(f"no policy stored for {arn}")
    if out.as_json:
        out.json(
            {
                "stageArn": stored.stage_arn,
                "version": stored.version,
                "updatedAt": stored.updated_at,
                "policy": stored.document,
            }
        )
    else:
        out.line(json.dumps(stored.document, indent=2, sort_keys=False))
        out.line(f"# version {stored.version}, updated {stored.updated_at}")
    return 0


def cmd_list(args: argparse.Namespace, out: Output) -> int:
    from stagepilot.cli.main import resources

    stored = _store(resources(args)).list()
    rows = []
    for item in stored:
        sections = [key for key in ("composition", "replication", "moderation") if item.document.get(key)]
        rows.append(
            {
                "stageArn": item.stage_arn,
                "version": item.version,
                "updatedAt": item.updated_at,
                "paused": bool(item.document.get("paused", False)),
                "sections": sections,
                "valid": not validate_policy(item.document),
            }
        )
    if out.as_json:
        out.json(rows)
        return 0
    if not rows:
        out.line("no policies stored")
    for row in rows:
        state = "PAUSED " if row["paused"] else ""
        invalid = " INVALID (fix with policy put)" if not row["valid"] else ""
        out.line(
            f"{row['stageArn']}  v{row['version']}  {state}{','.join(row['sections']) or '-'}"
            f"  {row['updatedAt']}{invalid}"
        )
    return 0


def cmd_delete(args: argparse.Namespace, out: Output) -> int:
    from stagepilot.cli.main import resources

    arn = checked_arn(args.stage_arn, allow_default=True)
    try:
        _store(resources(args)).delete(arn)
    except NotFound as exc:
        raise CliError(str(exc)) from exc
    if out.as_json:
        out.json({"stageArn": arn, "deleted": True})
    else:
        out.line(f"deleted policy for {arn}")
    return 0


def checked_arn(value: str, *, allow_default: bool = False) -> str:
    if allow_default and value == DEFAULT_STAGE:
        return value
    if not STAGE_ARN.fullmatch(value):
        raise CliError(f"not a stage ARN: {value!r} (expected arn:aws:ivs:<region>:<account>:stage/<id>)", status=2)
    return value


def _store(res: Any) -> Any:
    from stagepilot.adapters.table import PolicyStore

    return PolicyStore(res.table)


def _parsed(stored: list[Any]) -> list[StagePolicy]:
    out = []
    for item in stored:
        if not validate_policy(item.document):
            out.append(parse_policy(item.document))
    return out
