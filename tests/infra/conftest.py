"""Infra fixtures: the app synthesized once per session (bundling skipped), and its template.

``deployed`` is the app as ``cdk synth`` builds it from cdk.json; ``customized`` sets every context
option (alarm email, stage-ARN prefixes, other moderation sources) so tests can compare both.

Nothing here or in the test modules imports ``aws_cdk``, ``app`` or ``infra`` (but the plain ``infra.names``)
when pytest collects them: every xdist worker collects every test, and that import starts the jsii kernel
(node, the CDK assembly: ~2 CPU-s), which only the worker that runs the ``cdk`` group needs. The tests import
them where they use them; ``cdk_at_collection`` records what the collection imported, and
test_collection.py checks it is nothing.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # app.py lives at the repo root
    sys.path.insert(0, str(REPO))

if TYPE_CHECKING:
    import aws_cdk as cdk
    from aws_cdk.assertions import Template

    from infra.stack import StagePilotStack

# The reference sample events, kept in the repo so a clone alone runs the suite (tests/events/README.md).
EVENTS_DIR = Path(__file__).resolve().parents[1] / "events"
SKIP_BUNDLING = {"aws:cdk:bundling-stacks": []}
CUSTOM_CONTEXT = {
    "alarmEmail": "oncall@example.com",
    "stageArnPrefixes": [
        "arn:aws:ivs:us-east-1:123456789012:stage/Show",
        "arn:aws:ivs:us-east-1:123456789012:stage/Studio",
    ],
    "moderationSources": ["acme.trust-and-safety", "stagepilot.moderation"],
    "moderationPrincipals": [
        "arn:aws:iam::123456789012:role/trust-and-safety",
        "arn:aws:iam::123456789012:role/stagepilot-operators",
    ],
    "redrivePrincipals": ["arn:aws:iam::123456789012:role/stagepilot-operators"],
    "compositionHoursPerDay": {"limit": 200, "mode": "block"},
}


CDK_MODULES = ("aws_cdk", "jsii", "constructs", "cdk_nag", "app", "infra")
# What of the CDK this process had imported when pytest finished collecting (infra.names is plain Python).
cdk_at_collection: list[str] = []


def pytest_collection_finish(session: pytest.Session) -> None:
    plain = {"infra", "infra.names"}
    cdk_at_collection[:] = sorted(m for m in sys.modules if m.split(".")[0] in CDK_MODULES and m not in plain)


@dataclass(frozen=True)
class Synthesized:
    app: cdk.App
    stack: StagePilotStack
    template: Template
    outdir: Path
    # keyed by the construct itself (held here, so no other object can take its id())
    _logical_ids: dict[Any, str] = field(default_factory=dict, init=False, repr=False, compare=False)

    @functools.cached_property
    def _template_text(self) -> str:
        return json.dumps(self.template.to_json())

    @property
    def resources(self) -> dict[str, Any]:
        """The template's resources, a copy of their own for each caller: the template is read from node once
        a synthesis (a jsii round trip of ~140 kB, ~38 ms), not once a read."""
        resources: dict[str, Any] = json.loads(self._template_text)["Resources"]
        return resources

    def logical_id(self, construct: Any) -> str:
        """Asked of node once a construct (two jsii calls, ~2.4 ms: tests/infra asks ~460 times)."""
        if construct not in self._logical_ids:
            self._logical_ids[construct] = str(self.stack.get_logical_id(construct.node.default_child))
        return self._logical_ids[construct]


def synthesize(context: dict[str, Any], outdir: Path) -> Synthesized:
    """Synthesize like ``cdk synth`` does; raises if cdk-nag reports an unacknowledged finding."""
    from aws_cdk.assertions import Template

    import app as cdk_app
    from infra.stack import StagePilotStack

    app = cdk_app.build_app({**SKIP_BUNDLING, **context}, outdir=str(outdir))
    app.synth()
    stack = app.node.find_child(context.get("stackName", "StagePilot"))
    assert isinstance(stack, StagePilotStack)
    return Synthesized(app=app, stack=stack, template=Template.from_stack(stack), outdir=outdir)


@pytest.fixture(scope="session")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synthesize({}, tmp_path_factory.mktemp("cdk-out"))


@pytest.fixture(scope="session")
def customized(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    return synthesize(CUSTOM_CONTEXT, tmp_path_factory.mktemp("cdk-out-custom"))


@pytest.fixture(scope="session")
def staging(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """A second deployment in the same account and region, as README's ``make deploy STACK=...`` makes."""
    return synthesize({"stackName": "StagePilot-staging"}, tmp_path_factory.mktemp("cdk-out-staging"))


@pytest.fixture(scope="session")
def sample_events() -> dict[str, dict[str, Any]]:
    """The reference events by file stem (``stage-participant-published`` ...)."""
    events = {path.stem: json.loads(path.read_text()) for path in sorted(EVENTS_DIR.glob("*.json"))}
    assert events, f"no sample events in {EVENTS_DIR}"
    return events
