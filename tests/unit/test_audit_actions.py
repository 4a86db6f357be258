"""`stagepilot audit --action` accepts exactly the actions the trail records (adapters/audit.py's
AUDIT_ACTIONS): every action the code writes is in the list, so a valid filter is never refused."""

from __future__ import annotations

import re
from pathlib import Path

from stagepilot.adapters.audit import AUDIT_ACTIONS

SOURCE = Path(__file__).parents[2] / "lambdas" / "stagepilot"
ARGPARSE_ACTIONS = {"store", "store_true", "store_const", "append", "version", "count"}
WRITTEN = [
    re.compile(r'\baction="([a-z][a-z-]*)"'),  # AuditRecord(action=...), record_change(action=...)
    re.compile(r'\baction="[a-z-]+" if \w+ else "([a-z][a-z-]*)"'),  # the other branch of a choice
    re.compile(r'\b(?:audit|_entry)\(\s*"([a-z][a-z-]*)"'),  # moderation's audit(...), the door's _entry(...)
    re.compile(r'\baction = "([a-z][a-z-]*)"'),
]
NAMED = re.compile(r"\baction=([A-Z][A-Z0-9_]*)\b")  # action=GUARDED: a constant of the package's own
CONSTANT = re.compile(r'^([A-Z][A-Z0-9_]*)(?:: Final)? = "([a-z][a-z-]*)"', re.MULTILINE)


def written_actions() -> set[str]:
    found: set[str] = set()
    named: set[str] = set()
    constants: dict[str, str] = {}
    for path in SOURCE.rglob("*.py"):
        text = path.read_text()
        for pattern in WRITTEN:
            found.update(pattern.findall(text))
        named.update(NAMED.findall(text))
        constants.update(CONSTANT.findall(text))
        if 'f"composition-{verb}"' in text:
            found.update({"composition-started", "composition-restarted"})
    return (found | {constants[name] for name in named if name in constants}) - ARGPARSE_ACTIONS


def test_every_action_the_code_writes_is_one_audit_accepts():
    written = written_actions()

    assert {"disconnect", "healed", "token-issued", "resume", "flag", "rollover"} <= written  # the scan works
    assert {"guarded", "budget"} <= written  # action=GUARDED, action=BUDGET: the constants are read too
    assert written - AUDIT_ACTIONS == set()
    assert AUDIT_ACTIONS - written == set()  # none listed that nothing writes any more
