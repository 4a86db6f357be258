"""``stagepilot explain``: what each automation would do with an event, and why."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stagepilot.cli.errors import BadInput
from stagepilot.cli.files import read_json_file
from stagepilot.cli.resources import client, resources

if TYPE_CHECKING:
    from stagepilot.cli.output import Output


def register(commands: Any, common: argparse.ArgumentParser, aws: argparse.ArgumentParser) -> None:
    explain = commands.add_parser(
        "explain",
        parents=[common, aws],
        help="what each automation would do with an event, and why",
        description="Evaluate one EventBridge event (a JSON file) against the stored policies and the current "
        "state of IVS and the table, without acting: which automations the stack's rules send it to, and "
        "what each would do and why. Runs each handler's own code on a what-if copy of the world: it reads IVS and "
        "the table, and records the writes and IVS calls it would make (details.wouldCall) instead of making them.",
    )
    explain.add_argument("event_file", type=Path, metavar="EVENT_FILE")
    explain.add_argument(
        "--moderation-source",
        action="append",
        metavar="SOURCE",
        help="an event source the stack allows for Participant Flagged (default stagepilot.moderation)",
    )
    explain.set_defaults(handler=cmd_explain)


def cmd_explain(args: argparse.Namespace, out: Output) -> int:
    from stagepilot.cli.services import cli_services
    from stagepilot.operator.explain import explain_event
    from stagepilot.routing import DEFAULT_MODERATION_SOURCES, build_routes

    document = _read_event(args.event_file)
    res = resources(args)
    sts = client("sts")
    account = str(sts.get_caller_identity()["Account"])
    sources = tuple(args.moderation_source or DEFAULT_MODERATION_SOURCES)
    routes = build_routes(account=account, region=sts.meta.region_name, moderation_sources=sources)
    services = cli_services(res, account=account, region=sts.meta.region_name, moderation_sources=sources)
    explanations = explain_event(document, services, routes=routes)
    if out.as_json:
        out.json(
            {
                "eventId": document.get("id"),
                "detailType": document.get("detail-type"),
                "eventName": (document.get("detail") or {}).get("event_name")
                if isinstance(document.get("detail"), dict)
                else None,
                "automations": [e.to_json() for e in explanations],
            }
        )
        return 0
    detail = document.get("detail") if isinstance(document.get("detail"), dict) else {}
    name = detail.get("event_name") if isinstance(detail, dict) else None
    out.line(f"event {document.get('id', '?')}: {document.get('detail-type', '?')}" + (f" / {name}" if name else ""))
    for e in explanations:
        out.line(f"  {e.automation:<11} {e.summary}")
    return 0


def _read_event(path: Path) -> dict[str, Any]:
    """The event file, checked offline to be an EventBridge envelope (before any AWS call)."""
    from stagepilot.errors import MalformedEvent
    from stagepilot.events import parse_envelope

    document = read_json_file(path)
    if not isinstance(document, dict):
        raise BadInput(f"{path}: expected one EventBridge event (a JSON object)")
    try:
        parse_envelope(document)
    except MalformedEvent as exc:
        raise BadInput(f"{path}: not an EventBridge event: {exc}") from exc
    return document
