"""``stagepilot policy diff|export|import``: compare a policy before storing it; copy every policy out and
back in.

``diff`` shows, as a unified diff of the documents ``policy get`` prints, what storing a file would change
(the stored policy -> the file), or what changed since a kept version (version N -> the stored policy).
``export`` prints every stored policy ('default' first) as one JSON array of the documents ``put`` takes,
and ``import`` stores such a file again: export then import round-trips (a backup restores), and
``import --dry-run`` says what it would store. Imported policies are validated first, like ``put``, and
each is written over the version it was read at and audited as a ``policy-put`` by the caller; live
stages follow within the convergence pass's ``reconcileMinutes``.
"""

from __future__ import annotations

import argparse
import difflib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stagepilot.cli.confirm import confirm, yes_option
from stagepilot.cli.errors import BadInput, CliError
from stagepilot.cli.resources import resources
from stagepilot.policy import DEFAULT_STAGE, parse_policy

if TYPE_CHECKING:
    from stagepilot.adapters.table import PolicyStore, StoredPolicy
    from stagepilot.cli.output import Output


def register(sub: Any, common: argparse.ArgumentParser, aws: argparse.ArgumentParser) -> None:
    """The three commands under ``stagepilot policy`` (``sub``: its subcommands)."""
    from stagepilot.cli.policies import _version as version_number

    diff = sub.add_parser(
        "diff",
        parents=[common, aws],
        help="what storing a file would change, or what changed since a version",
        description="FILE: the stored policy of the file's stage -> the file, as a unified diff of the "
        "documents `policy get` prints (nothing stored yet: every line is new). STAGE_ARN --version N: "
        "version N (see policy history) -> the stored policy; FILE --version N: version N -> the file. "
        "Reads only; exit 0 whether or not they differ.",
    )
    diff.add_argument("target", metavar="FILE|STAGE_ARN", help="a policy file (- for stdin), or a stage ARN")
    diff.add_argument("--version", type=version_number, metavar="N", help="compare with this kept version")
    diff.set_defaults(handler=cmd_diff)

    export = sub.add_parser(
        "export",
        parents=[common, aws],
        help="every stored policy, as one file import takes",
        description="Print every stored policy ('default' first) as one JSON array of the documents `policy "
        "put` takes: a backup that `policy import` restores, and a file `simulate --policies` reads.",
    )
    export.set_defaults(handler=cmd_export)

    imported = sub.add_parser(
        "import",
        parents=[common, aws, yes_option()],
        help="store every policy of a file (what export printed)",
        description="Store every policy of FILE (one object or a JSON array, as export prints): each one is "
        "validated first (nothing is stored if any is invalid), then stored over the version it was read at "
        "(a policy changed meanwhile is refused and named), and audited as a policy-put with your identity. "
        "Policies equal to the stored ones are left as they are, and stored policies the file does not name "
        "are left alone. --dry-run prints what would be stored; without it, asks on a terminal (--yes in "
        "scripts). Live stages follow within the convergence pass's reconcileMinutes.",
    )
    imported.add_argument("file", type=Path, metavar="FILE")
    imported.add_argument("--dry-run", action="store_true", help="print what would be stored; store nothing")
    imported.set_defaults(handler=cmd_import)


def valid_policies(path: Path, out: Output, *, refused: str, then: str = "") -> list[Any]:
    """The policy documents of ``path``, every one valid and each stage named once; else every problem
    on stderr, then one error line (exit 2)."""
    from stagepilot.cli.policies import load_policy_file, problems_in

    documents = load_policy_file(path)
    problems = problems_in(documents)
    if problems:
        for line in problems:
            out.notice(f"{path}: {line}")
        raise BadInput(f"{path}: {refused} ({len(problems)} problems){then}")
    return documents


def shown(document: Any) -> list[str]:
    """A document's lines, keys sorted (as the store keeps them): equal documents give equal lines."""
    return json.dumps(document, indent=2, sort_keys=True).splitlines()


def cmd_diff(args: argparse.Namespace, out: Output) -> int:
    from stagepilot.adapters.table import PolicyStore
    from stagepilot.cli.policies import checked_arn

    target = str(args.target)
    old: tuple[dict[str, Any] | None, str]  # (document, what it is); None: nothing stored
    new: tuple[dict[str, Any], str]
    if target.startswith("arn:") or target == DEFAULT_STAGE:
        arn = checked_arn(target, allow_default=True)
        if args.version is None:
            raise BadInput(f"diff {arn}: with a stage ARN, give --version N (or give a policy file)")
        store = PolicyStore(resources(args).table)
        before = _kept(store, arn, args.version)
        current = store.get(arn)
        if current is None:
            raise CliError(f"no policy stored for {arn} now (policy history {arn} lists the kept versions)")
        old, new = (
            (before.document, f"version {args.version}"),
            (current.document, f"stored (version {current.version})"),
        )
    else:
        documents = valid_policies(Path(target), out, refused="invalid policy")
        if len(documents) != 1:
            raise BadInput(f"{target}: diff takes one policy per file, found {len(documents)}")
        document = parse_policy(documents[0]).to_document()  # as put would store it
        arn = checked_arn(document["stageArn"], allow_default=True)
        store = PolicyStore(resources(args).table)
        if args.version is not None:
            before = _kept(store, arn, args.version)
            old = (before.document, f"version {args.version}")
        else:
            stored = store.get(arn)
            old = (
                stored.document if stored else None,
                f"stored (version {stored.version})" if stored else "nothing stored",
            )
        new = (document, target)
    lines = list(
        difflib.unified_diff(
            shown(old[0]) if old[0] is not None else [],
            shown(new[0]),
            fromfile=f"{arn} {old[1]}",
            tofile=f"{arn} {new[1]}",
            lineterm="",
        )
    )
    if out.as_json:
        out.json({"stageArn": arn, "from": old[1], "to": new[1], "differs": bool(lines), "diff": lines})
    elif lines:
        out.lines("\n".join(lines))
    else:
        out.line(f"no difference: {arn} {old[1]} is {new[1]}")
    return 0


def _kept(store: PolicyStore, arn: str, version: int) -> StoredPolicy:
    kept = store.version(arn, version)
    if kept is None:
        raise CliError(f"version {version} of the policy for {arn} is not kept (see policy history {arn})")
    return kept


def cmd_export(args: argparse.Namespace, out: Output) -> int:
    from stagepilot.adapters.table import PolicyStore

    stored = sorted(
        PolicyStore(resources(args).table).list(), key=lambda p: (p.stage_arn != DEFAULT_STAGE, p.stage_arn)
    )
    documents = [p.document for p in stored]
    if out.as_json:
        out.json(documents)
    else:
        out.lines(json.dumps(documents, indent=2))
    out.notice(f"# {len(documents)} policies exported")
    return 0


def cmd_import(args: argparse.Namespace, out: Output) -> int:
    from stagepilot.adapters.table import PolicyStore
    from stagepilot.cli.changes import caller_arn
    from stagepilot.cli.home import check_home
    from stagepilot.errors import ConflictError

    documents = valid_policies(args.file, out, refused="invalid policies", then="; nothing stored")
    check_home(documents)  # another region's ARN: before any call
    by = caller_arn()
    check_home(documents, caller=by)
    policies = [parse_policy(d) for d in documents]
    res = resources(args)
    store = PolicyStore(res.table)
    current = {p.stage_arn: p for p in store.list()}
    plan: list[dict[str, Any]] = []
    for policy in policies:
        found = current.get(policy.stage_arn)
        if found is None:
            change = "new"
        elif found.document == policy.to_document():
            change = "unchanged"
        else:
            change = "changed"
        plan.append({"stageArn": policy.stage_arn, "change": change, "version": found.version if found else 0})
    writes = [p for p in plan if p["change"] != "unchanged"]
    untouched = sorted(set(current) - {p.stage_arn for p in policies})
    if args.dry_run or not writes:
        _print_plan(out, plan, untouched, dry_run=args.dry_run)
        return 0
    confirm(args, f"store {len(writes)} policies from {args.file}")
    by_arn = {p.stage_arn: p for p in policies}
    failed = 0
    for entry in writes:
        policy = by_arn[entry["stageArn"]]
        try:  # the policy and its audit entry: one transaction
            stored = store.put(
                policy,
                expected_version=entry["version"],
                updated_by=by,
                history=True,
                audit=_audited(res, by, args.file, entry["version"]),
            )
        except ConflictError as exc:
            entry.update(change="conflict", error=str(exc))
            failed += 1
            continue
        entry["stored"] = stored.version
    _print_plan(out, plan, untouched, dry_run=False)
    return 1 if failed else 0


def _audited(res: Any, by: str, file: object, previous: int) -> Any:
    """The audit entry of one imported policy, for the store's transaction."""
    from stagepilot.adapters.table import AuditLog
    from stagepilot.cli.changes import change_entry

    def entry(stored: Any) -> Any:
        return AuditLog(res.table).put_with(
            change_entry(
                stage_arn=stored.stage_arn,
                action="policy-put",
                by=by,
                reason=f"stored version {stored.version} (imported from {file})",
                previous_version=previous or None,
                version=stored.version,
            )
        )

    return entry


def _print_plan(out: Output, plan: list[dict[str, Any]], untouched: list[str], *, dry_run: bool) -> None:
    if out.as_json:
        out.json({"dryRun": dry_run, "policies": plan, "leftAlone": untouched})
        return
    for entry in plan:
        arn, change = entry["stageArn"], entry["change"]
        if change == "unchanged":
            out.line(f"unchanged  {arn} (version {entry['version']})")
        elif change == "conflict":
            out.line(f"refused    {arn}: {entry['error']}")
        elif dry_run:
            was = f" (over version {entry['version']})" if entry["version"] else ""
            out.line(f"would store {arn}: {change}{was}")
        else:
            out.line(f"stored     {arn}: {change}, version {entry['stored']}")
    if untouched:
        out.line(
            f"left alone: {len(untouched)} stored policies the file does not name ({', '.join(untouched[:3])}"
            + (", ..." if len(untouched) > 3 else "")
            + ")"
        )
    if dry_run:
        out.line("dry run: nothing stored")
    elif any(e["change"] in ("new", "changed") for e in plan):
        out.line("live stages follow within the convergence pass's reconcileMinutes (stagepilot reconcile --all now)")
