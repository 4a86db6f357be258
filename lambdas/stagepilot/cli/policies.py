"""``stagepilot policy validate|put|get|list|delete|history|rollback``.

No operator's change is lost: ``get`` prints exactly the document ``put`` takes (the version goes to
stderr); ``put`` over a stored policy needs the version it was read at (``--expected-version N``) or
``--force``; ``delete`` takes ``--expected-version`` too. Every change is in the audit trail with the
caller's identity and the version before it, and the last versions are kept for ``history`` and
``rollback``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stagepilot.adapters.schema import HISTORY_VERSIONS
from stagepilot.cli.changes import caller_arn
from stagepilot.cli.converge import add_option as add_converge_option
from stagepilot.cli.converge import converge_now
from stagepilot.cli.errors import CliError
from stagepilot.cli.files import read_json_file
from stagepilot.cli.home import check_home, check_region
from stagepilot.cli.paging import page, paging_options, say_more
from stagepilot.cli.resources import resources
from stagepilot.errors import ConflictError, NotFound
from stagepilot.events import STAGE_ARN
from stagepilot.policy import DEFAULT_STAGE, StagePolicy, parse_policy, replication_cycles, validate_policy

if TYPE_CHECKING:
    from stagepilot.adapters.table import PolicyStore, StoredPolicy
    from stagepilot.cli.output import Output


def register(commands: Any, common: argparse.ArgumentParser, aws: argparse.ArgumentParser) -> None:
    policy = commands.add_parser(
        "policy", parents=[common], help="manage stage policies", description="Manage stage policies."
    )
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
        description="Validate a policy file and store it. Over a stored policy, name the version you read "
        "(`policy get` prints it on stderr) with --expected-version N: the write is refused if someone changed "
        "the policy since, so nobody's change is silently lost. --force overwrites whatever is stored. "
        "Storing the document that is already stored changes nothing and says so. Audited with your identity. "
        "Nothing is applied before the policy is stored: the stage is then converged to it at once (as "
        "`stagepilot reconcile STAGE_ARN` does: a missing composition, replica or disconnect is done now, and a "
        "stage.participantRecording section is applied with UpdateStage), unless --no-converge. IVS takes no new "
        "recording settings while it records a participant of the stage: they are then pending, and the "
        "convergence pass applies them once nobody is recorded (put says so). If IVS refuses them with nobody "
        "recorded, the policy stays stored, put says why and exits 1.",
    )
    put.add_argument("file", type=Path, metavar="FILE")
    put.add_argument(
        "--check",
        action="store_true",
        help="show the stage's current recording settings (GetStage) beside the policy's, and store nothing",
    )
    version = put.add_mutually_exclusive_group()
    version.add_argument(
        "--expected-version",
        type=_version,
        metavar="N",
        help="store only if the stored version is still N (0: only if none is stored yet)",
    )
    version.add_argument("--force", action="store_true", help="overwrite the stored policy, whatever its version")
    add_converge_option(put)
    add_dry_run_option(put)
    put.set_defaults(handler=cmd_put)

    get = sub.add_parser(
        "get",
        parents=[common, aws],
        help="print a stored policy",
        description="Print the policy stored for a stage (or 'default'): exactly the document `policy put` "
        "takes, so get > file, edit, put round-trips. The version is printed on stderr "
        "(`# version N ...`): pass it to put as --expected-version N.",
    )
    get.add_argument("stage_arn", metavar="ARN")
    get.set_defaults(handler=cmd_get)

    listing = sub.add_parser(
        "list",
        parents=[common, aws, paging_options()],
        help="list stored policies",
        description="List the stored policies, by stage ARN ('default' first). --max-items N cuts the listing "
        "and says so, with the --starting-token that goes on from there.",
    )
    listing.set_defaults(handler=cmd_list)

    delete = sub.add_parser(
        "delete",
        parents=[common, aws],
        help="delete a stored policy",
        description="Delete the policy stored for a stage (or 'default'). With --expected-version N, only if "
        "it is still version N. Audited with your identity; `policy rollback` can bring it back.",
    )
    delete.add_argument("stage_arn", metavar="ARN")
    delete.add_argument(
        "--expected-version", type=_version, metavar="N", help="delete only if the stored version is still N"
    )
    add_dry_run_option(delete)
    delete.set_defaults(handler=cmd_delete)

    history = sub.add_parser(
        "history",
        parents=[common, aws],
        help="the last versions of a policy, and who stored them",
        description=f"The last {HISTORY_VERSIONS} versions stored with policy put or rollback, newest first: "
        "version, time and who stored it. Pause, resume and delete are in the audit trail (stagepilot audit).",
    )
    history.add_argument("stage_arn", metavar="ARN")
    history.add_argument("--show", type=_version, metavar="VERSION", help="print the document of that version")
    history.set_defaults(handler=cmd_history)

    rollback = sub.add_parser(
        "rollback",
        parents=[common, aws],
        help="store an earlier version again",
        description="Store the document of an earlier version (see policy history) as a new version. Refused if "
        "the policy changes while rolling back. Audited with your identity. A live stage is then converged to it "
        "at once (as `stagepilot reconcile STAGE_ARN` does), unless --no-converge.",
    )
    rollback.add_argument("stage_arn", metavar="ARN")
    rollback.add_argument("--to", type=_version, required=True, metavar="VERSION", dest="to_version")
    add_converge_option(rollback)
    add_dry_run_option(rollback)
    rollback.set_defaults(handler=cmd_rollback)

    from stagepilot.cli import policy_copies  # diff, export, import: a module of their own

    policy_copies.register(sub, common, aws)


def _version(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a version number (0, 1, 2...), got {text!r}")
    return value


def load_policy_file(path: Path) -> list[Any]:
    """The documents in a policy file: one object, or an array of them."""
    document = read_json_file(path)
    return document if isinstance(document, list) else [document]


def problems_in(documents: list[Any]) -> list[str]:
    many = len(documents) > 1
    lines = []
    for index, document in enumerate(documents):
        for problem in validate_policy(document):
            where = f"[{index}]" if many else ""
            if problem.path:
                where = f"{where}.{problem.path}" if where else problem.path
            lines.append(f"{where}: {problem.message}" if where else problem.message)
    first: dict[str, int] = {}
    for index, document in enumerate(documents):  # one policy per stage: which of two would count?
        arn = document.get("stageArn") if isinstance(document, dict) else None
        if isinstance(arn, str) and arn in first:
            lines.append(f"[{index}].stageArn: {arn} is already the stageArn of [{first[arn]}]: one policy per stage")
        elif isinstance(arn, str):
            first[arn] = index
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
    documents = load_policy_file(args.file)
    if len(documents) != 1:
        raise CliError(f"{args.file}: put takes one policy per file, found {len(documents)}", status=2)
    problems = problems_in(documents)
    if problems:
        for line in problems:
            out.notice(f"{args.file}: {line}")
        raise CliError(f"{args.file}: invalid policy ({len(problems)} problems); nothing stored", status=2)
    check_home(documents[0])  # another region's ARN: refused before any call
    check_home(documents[0], caller=caller_arn())  # another account's: before anything is read or stored
    policy = parse_policy(documents[0])
    res = resources(args)
    if args.check:
        return _check_stage_settings(policy, res, out)
    store = _store(res)
    current = store.get(policy.stage_arn)
    if current is not None and current.document == policy.to_document():
        # Nothing to store: said, not written (no new version, nothing for anyone to conflict with).
        if out.as_json:
            out.json({"stageArn": current.stage_arn, "version": current.version, "changed": False})
        else:
            out.line(f"policy for {current.stage_arn} is already this document (version {current.version}); unchanged")
        return 0
    expected = _expected_version(args, current, policy.stage_arn)
    _require_stage_for_settings(policy, res)
    if args.dry_run:
        return _dry_run_store(res, out, policy, current, expected, change="put")
    # The version check is the store's conditional write: nothing reaches IVS before it has passed, so a
    # stale or losing put leaves the stage as it is.
    stored = _write(store, res, policy, expected_version=expected, action="policy-put")
    others = [p for p in _parsed(store.list()) if p.stage_arn != policy.stage_arn]
    for cycle in replication_cycles([*others, policy]):
        out.warn(f"stored policies form a replication cycle: {' -> '.join([*cycle, cycle[0]])}")
    if not out.as_json:
        out.line(f"stored policy for {stored.stage_arn} (version {stored.version})")
    converged = converge_now(args, res, out, stored.stage_arn)
    settings = _recording_settings_after_put(policy, converged, out)
    if out.as_json:
        out.json(
            {
                "stageArn": stored.stage_arn,
                "version": stored.version,
                "updatedAt": stored.updated_at,
                "changed": True,
                **({"converged": converged} if converged is not None else {}),
                **({"recordingSettings": settings} if settings is not None else {}),
            }
        )
    return 1 if settings is not None and settings["state"] == "refused" else 0


def _require_stage_for_settings(policy: StagePolicy, res: Any) -> None:
    """A policy with recording settings for a stage IVS does not know is refused before anything is stored
    (a read: GetStage)."""
    if policy.stage is None or policy.stage.wanted_recording() is None or policy.is_default:
        return
    if res.ivs.get_stage(policy.stage_arn) is None:
        raise CliError(f"{policy.stage_arn} does not exist at IVS: its recording settings cannot apply; nothing stored")


def _recording_settings_after_put(
    policy: StagePolicy, converged: dict[str, Any] | None, out: Output
) -> dict[str, Any] | None:
    """What became of the policy's recording settings, and when they apply (None: it sets none)."""
    from stagepilot.cli.converge import LATER

    if policy.stage is None or policy.stage.wanted_recording() is None:
        return None
    found = [d for d in (converged or {}).get("done", []) if d["automation"] == "stage"]
    if found:
        entry = found[0]
        state = {"pending": "pending", "rejected": "refused"}.get(entry["action"], "applied")
        if state == "refused":
            out.warn(f"the policy is stored, but {entry['reason']}")
        return {"state": state, "reason": entry["reason"], **{k: v for k, v in entry.items() if k == "since"}}
    if converged is not None and converged.get("ran") and not converged.get("errors"):
        return {"state": "in-step", "reason": "the stage's recording settings already are the policy's"}
    when = f"the recording settings: {LATER}"
    if not out.as_json:
        out.line(when)
    return {"state": "later", "reason": when}


def _check_stage_settings(policy: StagePolicy, res: Any, out: Output) -> int:
    from stagepilot.automations.stage_settings import recording_drift

    wanted = policy.stage.wanted_recording() if policy.stage is not None else None
    if wanted is None or policy.is_default:
        out.line("the policy has no stage.participantRecording for a stage: nothing to compare; nothing stored")
        return 0
    stage = res.ivs.get_stage(policy.stage_arn)
    if stage is None:
        raise CliError(f"{policy.stage_arn} does not exist at IVS")
    current = dict(stage.get("autoParticipantRecordingConfiguration") or {})
    differing = recording_drift(current, wanted)
    session_id = stage.get("activeSessionId") or None
    recorded = res.ivs.recorded_participants(policy.stage_arn, session_id) if differing and session_id else []
    if out.as_json:
        out.json(
            {
                "stageArn": policy.stage_arn,
                "current": current,
                "wanted": wanted,
                "differing": differing,
                "recordedParticipants": recorded,
            }
        )
        return 0
    for key in wanted:
        mark = "≠" if key in differing else "="
        out.line(f"{mark} {key}: stage {json.dumps(current.get(key))}  policy {json.dumps(wanted[key])}")
    if differing and recorded:
        out.line(
            f"{len(differing)} member(s) differ; IVS is recording {len(recorded)} participant(s) and takes no new "
            "settings meanwhile: `policy put` would store the policy and they would be pending until nobody is"
        )
    elif differing:
        out.line(f"{len(differing)} member(s) differ; `policy put` would apply them")
    else:
        out.line("the stage matches")
    out.line("nothing stored (--check)")
    return 0


def _expected_version(args: argparse.Namespace, current: StoredPolicy | None, stage_arn: str) -> int:
    """The version ``put`` may overwrite: the one the operator read, or (``--force``) whatever is stored."""
    if args.force:
        return current.version if current is not None else 0
    if args.expected_version is not None:
        return int(args.expected_version)
    if current is None:
        return 0
    raise CliError(
        f"a policy is stored for {stage_arn} (version {current.version}): pass --expected-version N with the "
        "version you read (policy get prints it) so a change made since is not lost, or --force to overwrite it"
    )


def _write(store: PolicyStore, res: Any, policy: StagePolicy, *, expected_version: int, action: str) -> StoredPolicy:
    """Store ``policy`` over ``expected_version`` with its history and the audit entry of who did it, in one
    transaction (both or neither)."""
    from stagepilot.adapters.table import AuditLog
    from stagepilot.cli.changes import caller_arn, change_entry

    by = caller_arn()
    audit = AuditLog(res.table)

    def entry(stored: StoredPolicy) -> Any:
        return audit.put_with(
            change_entry(
                stage_arn=policy.stage_arn,
                action=action,
                by=by,
                reason=f"stored version {stored.version}",
                previous_version=expected_version or None,
                version=stored.version,
            )
        )

    try:
        return store.put(policy, expected_version=expected_version, updated_by=by, history=True, audit=entry)
    except ConflictError as exc:
        raise CliError(str(exc)) from exc


def cmd_get(args: argparse.Namespace, out: Output) -> int:
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
        out.lines(json.dumps(stored.document, indent=2, sort_keys=False))
        by = f" by {stored.updated_by}" if stored.updated_by else ""
        out.notice(f"# version {stored.version}, updated {stored.updated_at}{by}")
    return 0


def cmd_list(args: argparse.Namespace, out: Output) -> int:
    from stagepilot.adapters.table import PauseSwitches

    res = resources(args)
    stored, more = page(_store(res).list(), lambda p: "" if p.stage_arn == DEFAULT_STAGE else p.stage_arn, args)
    switches = PauseSwitches(res.table).list()
    rows = []
    for item in stored:
        sections = [key for key in ("composition", "replication", "moderation") if item.document.get(key)]
        rows.append(
            {
                "stageArn": item.stage_arn,
                "version": item.version,
                "updatedAt": item.updated_at,
                "paused": item.stage_arn in switches or item.document.get("paused") is True,
                "sections": sections,
                "valid": not validate_policy(item.document),
            }
        )
    if out.as_json:
        out.json(rows)
    elif not rows:
        out.line("no more policies stored" if args.starting_token is not None else "no policies stored")
    for row in [] if out.as_json else rows:
        state = "PAUSED " if row["paused"] else ""
        invalid = " INVALID (fix with policy put)" if not row["valid"] else ""
        out.line(
            f"{row['stageArn']}  v{row['version']}  {state}{','.join(row['sections']) or '-'}"
            f"  {row['updatedAt']}{invalid}"
        )
    say_more(out, more, "policies")
    return 0


def cmd_delete(args: argparse.Namespace, out: Output) -> int:
    from stagepilot.adapters.table import AuditLog
    from stagepilot.cli.changes import caller_arn, change_entry

    arn = checked_arn(args.stage_arn, allow_default=True)
    res = resources(args)
    if args.dry_run:
        current = _store(res).get(arn)
        if current is None:
            raise CliError(f"no policy stored for {arn}")
        sections = changed_sections(current.document, None)
        if not out.as_json:
            fallback = "no automation" if arn == DEFAULT_STAGE else "the 'default' policy, if one is stored"
            out.line(
                f"would delete the policy for {arn} (version {current.version}); the stage would follow {fallback}"
            )
        said = {"change": "delete", "version": current.version, "sections": sections}
        return dry_run_change(
            res, out, arn, lambda store: store.delete(arn, expected_version=args.expected_version), said
        )
    by = caller_arn()
    audit = AuditLog(res.table)

    def entry(current: StoredPolicy) -> Any:  # deleted with its audit entry, in one transaction
        return audit.put_with(
            change_entry(
                stage_arn=arn,
                action="policy-delete",
                by=by,
                reason=f"deleted version {current.version}",
                previous_version=current.version,
            )
        )

    try:
        deleted = _store(res).delete(arn, expected_version=args.expected_version, audit=entry)
    except (NotFound, ConflictError) as exc:
        raise CliError(str(exc)) from exc
    if out.as_json:
        out.json({"stageArn": arn, "deleted": True, "version": deleted.version})
    else:
        out.line(f"deleted policy for {arn} (was version {deleted.version}; policy rollback can restore it)")
    return 0


def cmd_history(args: argparse.Namespace, out: Output) -> int:
    arn = checked_arn(args.stage_arn, allow_default=True)
    store = _store(resources(args))
    if args.show is not None:
        kept = store.version(arn, args.show)
        if kept is None:
            raise CliError(f"version {args.show} of the policy for {arn} is not kept (see policy history {arn})")
        out.json(kept.document) if out.as_json else out.lines(json.dumps(kept.document, indent=2))
        return 0
    versions = store.history(arn)
    if out.as_json:
        out.json(
            [
                {"version": v.version, "updatedAt": v.updated_at, "updatedBy": v.updated_by, "policy": v.document}
                for v in versions
            ]
        )
        return 0
    if not versions:
        out.line(f"no versions kept for {arn}")
    for v in versions:
        out.line(f"v{v.version}  {v.updated_at}  {v.updated_by or '-'}")
    return 0


def cmd_rollback(args: argparse.Namespace, out: Output) -> int:
    arn = checked_arn(args.stage_arn, allow_default=True)
    res = resources(args)
    store = _store(res)
    kept = store.version(arn, args.to_version)
    if kept is None:
        raise CliError(f"version {args.to_version} of the policy for {arn} is not kept (see policy history {arn})")
    problems = validate_policy(kept.document)
    if problems:
        raise CliError(f"version {args.to_version} no longer validates ({problems[0]}); nothing stored")
    current = store.get(arn)
    policy = parse_policy(kept.document)
    if current is not None and current.document == policy.to_document():
        out.line(f"policy for {arn} is already the document of version {args.to_version} (version {current.version})")
        return 0
    if args.dry_run:
        expected = current.version if current is not None else 0
        return _dry_run_store(res, out, policy, current, expected, change="rollback", to_version=args.to_version)
    stored = _write(
        store,
        res,
        policy,
        expected_version=current.version if current is not None else 0,
        action="policy-rollback",
    )
    if not out.as_json:
        out.line(f"rolled the policy for {arn} back to version {args.to_version}: stored as version {stored.version}")
    converged = converge_now(args, res, out, arn)
    if out.as_json:
        out.json(
            {
                "stageArn": arn,
                "version": stored.version,
                "rolledBackTo": args.to_version,
                **({"converged": converged} if converged is not None else {}),
            }
        )
    return 0


MAX_STAGE_ARN = 128  # IVS's StageArn: 1-128 characters


def checked_arn(value: str, *, allow_default: bool = False) -> str:
    """A stage ARN as IVS takes it (its pattern, a 12-digit account, at most 128 characters), checked before
    any call; the refusal shows at most the start of what was given."""
    if allow_default and value == DEFAULT_STAGE:
        return value
    if len(value) > MAX_STAGE_ARN:
        raise CliError(
            f"not a stage ARN: {shown(value)}: {len(value):,} characters (IVS's have at most {MAX_STAGE_ARN})",
            status=2,
        )
    parts = value.split(":")
    if not STAGE_ARN.fullmatch(value) or len(parts) != 6 or len(parts[4]) != 12:
        raise CliError(
            f"not a stage ARN: {shown(value)} (expected arn:aws:ivs:<region>:<account>:stage/<id>)", status=2
        )
    check_region(value)  # another region's stage: refused before any call (cli/home.py)
    return value


def shown(value: str, limit: int = 80) -> str:
    """``value`` quoted for an error line, cut to ``limit`` characters (a pasted megabyte stays one line)."""
    return repr(value) if len(value) <= limit else repr(value[:limit]) + "..."


def _store(res: Any) -> Any:
    from stagepilot.adapters.table import PolicyStore

    return PolicyStore(res.table)


def _parsed(stored: list[Any]) -> list[StagePolicy]:
    out = []
    for item in stored:
        if not validate_policy(item.document):
            out.append(parse_policy(item.document))
    return out


def _dry_run_store(
    res: Any,
    out: Output,
    policy: StagePolicy,
    current: StoredPolicy | None,
    expected: int,
    *,
    change: str,
    to_version: int | None = None,
) -> int:
    """``policy put|rollback --dry-run``: the version it would store, the sections it changes, and what the
    convergence pass would then do."""
    version = (current.version if current is not None else 0) + 1
    sections = changed_sections(current.document if current is not None else None, policy.to_document())
    if not out.as_json:
        over = f"over version {current.version}" if current is not None else "no policy stored yet"
        what = f"roll back to version {to_version}: store" if to_version is not None else "store"
        out.line(
            f"would {what} the policy for {policy.stage_arn} as version {version} ({over}); "
            f"changes: {', '.join(sections) or 'nothing'}"
        )
    said: dict[str, Any] = {"change": change, "version": version, "sections": sections}
    if to_version is not None:
        said["rolledBackTo"] = to_version
    return dry_run_change(
        res,
        out,
        policy.stage_arn,
        lambda store: store.put(policy, expected_version=expected, updated_by="dry-run", history=True),
        said,
    )


def add_dry_run_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would change and what convergence would then do; store nothing, call nothing",
    )


def dry_run_change(
    res: Any, out: Output, stage_arn: str, change: Callable[[PolicyStore], StoredPolicy | None], said: dict[str, Any]
) -> int:
    """What a policy change would do, changing nothing: ``change`` is made on what-if services
    (cli/preview.py: reads copied from the real table, every write held, no IVS write sent), then the
    convergence pass runs over the stage (every live stage for ``default``) as `reconcile --dry-run` does.
    ``said``: what would change, for the JSON document (the caller has printed it)."""
    from stagepilot.adapters.table import PolicyStore
    from stagepilot.cli.preview import NOTHING_CHANGED, converge_after

    def make(services: Any) -> None:
        try:
            change(PolicyStore(services.table))
        except (ConflictError, NotFound) as exc:
            raise CliError(str(exc)) from exc

    convergence = converge_after(res, out, make, only=None if stage_arn == DEFAULT_STAGE else stage_arn)
    if out.as_json:
        out.json({"dryRun": True, "stageArn": stage_arn, **said, "convergence": convergence})
    else:
        out.line(NOTHING_CHANGED)
    return 0


def changed_sections(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[str]:
    """The top-level keys of a policy document that a change adds, removes or alters."""
    before, after = before or {}, after or {}
    return sorted(key for key in {*before, *after} if before.get(key) != after.get(key))
