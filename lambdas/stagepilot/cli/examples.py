"""The examples at the end of every command's ``--help``, in one place (tests/cli/test_help_examples.py
checks that every command has some and that each one parses as written)."""

from __future__ import annotations

import argparse
from typing import Final

EXAMPLES: Final[dict[str, tuple[str, ...]]] = {
    "": (
        "stagepilot whoami",
        "stagepilot status --problems",
        "stagepilot audit --since 1h",
    ),
    "policy": ("stagepilot policy list", "stagepilot policy get $STAGE_ARN > policy.json"),
    "policy validate": ("stagepilot policy validate policy.json", "cat policy.json | stagepilot policy validate -"),
    "policy put": (
        "stagepilot policy put policy.json --expected-version N   # N: the version policy get printed",
        "cat policy.json | stagepilot policy put - --force",
    ),
    "policy get": ("stagepilot policy get $STAGE_ARN > policy.json", "stagepilot policy get default"),
    "policy list": ("stagepilot policy list", "stagepilot policy list --max-items 100 --output table"),
    "policy delete": ("stagepilot policy delete $STAGE_ARN --expected-version 3",),
    "policy history": ("stagepilot policy history $STAGE_ARN",),
    "policy rollback": ("stagepilot policy rollback $STAGE_ARN --to 2",),
    "policy diff": (
        "stagepilot policy diff policy.json              # the stored policy -> the file",
        "stagepilot policy diff $STAGE_ARN --version 2   # version 2 -> the stored policy",
    ),
    "policy export": ("stagepilot policy export > policies.json",),
    "policy import": (
        "stagepilot policy import policies.json --dry-run",
        "stagepilot policy import policies.json --yes",
    ),
    "ban": ("stagepilot ban add spammer-7 --reason spam --ttl 7d", "stagepilot ban list"),
    "ban add": (
        "stagepilot ban add spammer-7 --reason spam --ttl 7d",
        "stagepilot ban add spammer-7 --stage $STAGE_ARN --scope publish",
        "stagepilot ban add spammer-7 --dry-run",
    ),
    "ban remove": ("stagepilot ban remove spammer-7 --dry-run", "stagepilot ban remove spammer-7 --stage $STAGE_ARN"),
    "ban list": ("stagepilot ban list", "stagepilot ban list --max-items 50"),
    "disconnect": ("stagepilot disconnect $STAGE_ARN p-1234 --reason 'abusive chat'",),
    "audit": (
        "stagepilot audit $STAGE_ARN --since 1h",
        "stagepilot audit --action disconnect --action would-disconnect --since 2026-11-21T20:00:00Z",
        "stagepilot audit --user spammer-7 --csv > spammer-7.csv",
    ),
    "pause": ("stagepilot pause $STAGE_ARN --dry-run", "stagepilot pause list", "stagepilot pause --all --yes"),
    "resume": ("stagepilot resume $STAGE_ARN --dry-run", "stagepilot resume --all --since 1h --yes"),
    "explain": ("stagepilot dlq show EVENT_ID > event.json && stagepilot explain event.json",),
    "status": ("stagepilot status", "stagepilot status --problems --watch 10", "stagepilot status $STAGE_ARN"),
    "dlq": ("stagepilot dlq list", "stagepilot dlq redrive --automation composition"),
    "dlq list": ("stagepilot dlq list", "stagepilot dlq list --automation moderation"),
    "dlq show": ("stagepilot dlq show EVENT_ID > event.json",),
    "dlq delete": ("stagepilot dlq delete EVENT_ID --dry-run", "stagepilot dlq delete EVENT_ID --yes"),
    "dlq purge": ("stagepilot dlq purge --automation replication --dry-run", "stagepilot dlq purge --yes"),
    "dlq redrive": ("stagepilot dlq redrive", "stagepilot dlq redrive --automation composition"),
    "reconcile": ("stagepilot reconcile --all --dry-run", "stagepilot reconcile $STAGE_ARN"),
    "flag": ("stagepilot flag $STAGE_ARN p-1234 --reason 'spam in chat'",),
    "token": ("stagepilot token issue $STAGE_ARN host-1 --role host",),
    "token issue": ("stagepilot token issue $STAGE_ARN host-1 --role host",),
    "keys": ("stagepilot keys list", "stagepilot keys rotate"),
    "keys list": ("stagepilot keys list",),
    "keys rotate": ("stagepilot keys rotate",),
    "keys lockout": ("stagepilot keys lockout --yes",),
    "simulate": ("stagepilot simulate --policies examples/policies.json --events examples/events.jsonl",),
    "sandbox": (
        "stagepilot sandbox",
        "stagepilot sandbox play show.jsonl",
        'stagepilot sandbox --composition-hours-per-day \'{"limit": 40, "mode": "block"}\'',
    ),
    "sandbox play": ("stagepilot sandbox play show.jsonl",),
    "whoami": ("stagepilot whoami", "stagepilot whoami --profile prod --region eu-west-1"),
    "completion": (
        "source <(stagepilot completion bash)",
        "stagepilot completion zsh > ~/.zfunc/_stagepilot",
        "stagepilot completion fish > ~/.config/fish/completions/stagepilot.fish",
    ),
}


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, but the examples keep their lines (the description is still wrapped)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("examples:\n"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def add_examples(parser: argparse.ArgumentParser, path: str = "") -> None:
    """Give ``parser`` and every command under it the examples of ``EXAMPLES``, as their help's epilog."""
    parser.formatter_class = HelpFormatter
    examples = EXAMPLES.get(path)
    if examples:
        parser.epilog = "examples:\n" + "\n".join(f"  {line}" for line in examples)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                add_examples(sub, f"{path} {name}".strip())
