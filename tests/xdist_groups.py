"""``--dist loadgroup`` that keeps the CDK tests on one worker with the pytest this project pins.

xdist tells its controller a test's ``xdist_group`` by appending ``@group`` to the node id on the worker;
since pytest 9.2 a node id can no longer be changed that way (pytest-dev/pytest-xdist#1386), so every
test became a group of its own and both workers synthesized the stacks, built the zip and paid the CDK
boot. This scheduler reads the group from the node id's ``@`` suffix as xdist does, and otherwise from
the test's path (``tests/infra`` is the ``cdk`` group, as tests/conftest.py marks it).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from xdist.remote import Producer
from xdist.scheduler import LoadGroupScheduling


class PathGroupScheduling(LoadGroupScheduling):
    def __init__(self, config: pytest.Config, log: Producer | None, groups: dict[Path, str]) -> None:
        super().__init__(config, log)
        root = config.rootpath
        self.prefixes = {f"{path.relative_to(root).as_posix()}/": group for path, group in groups.items()}

    def _split_scope(self, nodeid: str) -> str:
        scope = super()._split_scope(nodeid)
        if scope != nodeid:  # xdist's own @group suffix (a pytest where it still works)
            return scope
        return next((group for prefix, group in self.prefixes.items() if nodeid.startswith(prefix)), nodeid)
