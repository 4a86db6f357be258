"""``--dist loadgroup`` that keeps each ``xdist_group`` on one worker with the pytest this project pins.

xdist tells its controller a test's group by appending ``@group`` to the node id on the worker
(``item._nodeid``); since pytest 9.2 a node's id is ``item._id``, so the suffix never reached the controller
(pytest-dev/pytest-xdist#1386): every test was a group of its own, both workers synthesized the stacks,
built the zip and paid the CDK boot, and both simulated the example show. Two remedies, each enough alone:

- ``carry_group_suffixes`` (run after xdist's own hook, on each worker) puts the suffixed id where pytest
  reads it, as xdist's pending fix does (pytest-dev/pytest-xdist#1388); every ``xdist_group`` mark counts;
- ``PathGroupScheduling`` (the controller's scheduler) also takes a group from the test's path
  (``tests/infra`` is ``cdk``), should the suffix get lost again.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from xdist.remote import Producer
from xdist.scheduler import LoadGroupScheduling

# Groups by path, for the scheduler (tests/conftest.py marks the same tests xdist_group("cdk")).
GROUPS_BY_PATH = {Path(__file__).parent / "infra": "cdk"}


def pytest_xdist_make_scheduler(config: pytest.Config, log: Producer) -> PathGroupScheduling | None:
    return PathGroupScheduling(config, log, GROUPS_BY_PATH) if config.getvalue("dist") == "loadgroup" else None


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    carry_group_suffixes(items)


def carry_group_suffixes(items: list[pytest.Item]) -> None:
    from _pytest.nodeid import coerce_node_id

    for item in items:
        suffixed = item.__dict__.get("_nodeid")
        if isinstance(suffixed, str) and suffixed != item.nodeid and suffixed.startswith(item.nodeid + "@"):
            item._id = coerce_node_id(suffixed)  # type: ignore[attr-defined]


class PathGroupScheduling(LoadGroupScheduling):
    def __init__(self, config: pytest.Config, log: Producer | None, groups: dict[Path, str]) -> None:
        super().__init__(config, log)
        root = config.rootpath
        self.prefixes = {f"{path.relative_to(root).as_posix()}/": group for path, group in groups.items()}

    def _split_scope(self, nodeid: str) -> str:
        scope = super()._split_scope(nodeid)
        if scope != nodeid:  # the @group suffix
            return scope
        return next((group for prefix, group in self.prefixes.items() if nodeid.startswith(prefix)), nodeid)
