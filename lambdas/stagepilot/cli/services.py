"""The automation's services as the CLI uses them: same stores and IVS adapter as the Lambdas."""

from __future__ import annotations

from typing import Any

from stagepilot.cli.resources import Resources
from stagepilot.config import Settings
from stagepilot.pipeline import Services


class NoMetrics:
    """The CLI reports to the operator directly; CloudWatch metrics come from the functions."""

    def count(self, name: str, value: float = 1) -> None:
        return None


def cli_services(res: Resources, **settings: Any) -> Services:
    """``settings``: more of ``Settings``' fields (the account, region and sources ``explain`` checks)."""
    return Services(
        settings=Settings(table_name=res.table.name, **settings), table=res.table, ivs=res.ivs, metrics=NoMetrics()
    )
