"""The IVS budget: one map of who calls which operation, and shares that fit the quota together."""

from __future__ import annotations

import ast
import inspect
import textwrap
from pathlib import Path

import pytest

from stagepilot import budget
from stagepilot.adapters.ivs import IvsStage
from stagepilot.config import ENV_IVS_CALLER, Settings, SettingsError
from stagepilot.handlers.wiring import budget_pacer

PACKAGE = Path(budget.__file__).parent
# What each caller runs: the automation's module; the pass runs every automation's healing too.
AUTOMATION_MODULES = {
    budget.COMPOSITION: ("automations/composition.py",),
    budget.REPLICATION: ("automations/replication.py",),
    budget.MODERATION: ("automations/moderation.py",),
}
CALLER_MODULES = {
    **AUTOMATION_MODULES,
    budget.CONVERGENCE: (
        "convergence.py",
        *(m for ms in AUTOMATION_MODULES.values() for m in ms),
        "automations/stage_settings.py",
        "automations/limits.py",
    ),
}


def _ivs_operations_by_method() -> dict[str, set[str]]:
    """Each public ``IvsStage`` method -> the IVS operations it calls (through ``_call``/``_paginate``, or
    another of its public methods)."""
    direct: dict[str, set[str]] = {}
    uses: dict[str, set[str]] = {}
    for name, function in inspect.getmembers(IvsStage, inspect.isfunction):
        if name.startswith("_"):  # the plumbing: it passes the operation it is given
            continue
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
        direct[name], uses[name] = set(), set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                if node.func.attr in ("_call", "_paginate") and node.args:
                    first = node.args[0]
                    assert isinstance(first, ast.Constant), f"{name}: the operation must be a literal"
                    direct[name].add(str(first.value))
                elif isinstance(node.func.value, ast.Name) and node.func.value.id == "self":
                    uses[name].add(node.func.attr)

    def resolve(name: str, seen: frozenset[str] = frozenset()) -> set[str]:
        found = set(direct[name])
        for other in uses[name] - seen - {name}:
            if other in direct:
                found |= resolve(other, seen | {name})
        return found

    return {name: resolve(name) for name in direct}


def _ivs_methods_called(module: str) -> set[str]:
    """Every ``<something>.ivs.<method>(...)`` call in the module."""
    tree = ast.parse((PACKAGE / module).read_text())
    return {
        node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Attribute)
        and node.func.value.attr == "ivs"
    }


def test_the_scan_sees_the_calls_it_must_see() -> None:
    """Guards the scan itself: if it found nothing, the map test below would pass for any map."""
    by_method = _ivs_operations_by_method()
    assert by_method["start_composition"] == {"StartComposition"}
    assert by_method["has_publishers"] == {"ListParticipants"}
    assert {"start_composition", "active_session_id"} <= _ivs_methods_called("automations/composition.py")


@pytest.mark.parametrize("caller", list(CALLER_MODULES))
def test_every_ivs_operation_a_caller_makes_is_in_the_budget_map(caller: str) -> None:
    by_method = _ivs_operations_by_method()
    called: set[str] = set()
    for module in CALLER_MODULES[caller]:
        for method in _ivs_methods_called(module):
            assert method in by_method, f"{module} calls IvsStage.{method}, which the scan does not know"
            called |= by_method[method]
    assert called, f"no IVS call found for {caller}"
    missing = called - budget.operations_of(caller)
    assert not missing, f"{caller} calls {sorted(missing)} but stagepilot.budget gives it no share of them"


def test_the_shares_of_all_callers_fit_the_quota_minus_the_application_reserve() -> None:
    operations = set().union(*(budget.operations_of(caller) for caller in budget.CALLERS))
    for operation in operations:
        total = sum(
            budget.container_rates(caller).get(operation, 0.0) * budget.CONCURRENCY[caller] for caller in budget.CALLERS
        )
        total += budget.operator_rates().get(operation, 0.0)  # the operator's own slice (ListStages)
        assert total == pytest.approx(budget.QUOTA_PER_OPERATION - budget.APPLICATION_RESERVE), operation


def test_the_convergence_pass_keeps_its_slice_of_every_shared_operation() -> None:
    rates = budget.container_rates(budget.CONVERGENCE)
    assert rates["ListParticipants"] == 2.0  # its per-stage listing: 120 per one-minute pass
    assert rates["GetParticipant"] == budget.CONVERGENCE_SLICE
    # No automation lists stages: the pass shares ListStages with the operator's fleet views only.
    assert rates["ListStages"] == 1.5 and budget.operator_rates() == {"ListStages": 2.5}


def test_the_operators_fleet_listing_fits_in_seconds_at_the_default_stage_quota() -> None:
    pages = 1000 // 100  # IVS: 1,000 stages a region by default, ListStages gives 100 a page
    assert (pages - 1) / budget.operator_rates()["ListStages"] <= 4.0  # the first page goes at once


def test_an_automation_splits_its_share_between_its_containers_by_weight() -> None:
    # GetParticipant: replication and moderation weigh the same, after the pass's slice: 3 calls/s over 4.
    assert budget.container_rates(budget.REPLICATION)["GetParticipant"] == pytest.approx(0.75)
    assert budget.container_rates(budget.MODERATION)["GetParticipant"] == pytest.approx(0.75)
    # StartComposition is the composition automation's alone: 3 calls/s over its 2 containers.
    assert budget.container_rates(budget.COMPOSITION)["StartComposition"] == pytest.approx(1.5)
    # GetStage: composition's every start, moderation's rare flag without a session id.
    composition = budget.container_rates(budget.COMPOSITION)["GetStage"]
    assert composition > 10 * budget.container_rates(budget.MODERATION)["GetStage"]


def test_a_caller_gets_no_share_of_an_operation_it_does_not_call() -> None:
    assert "StartComposition" not in budget.container_rates(budget.MODERATION)
    assert "DisconnectParticipant" not in budget.container_rates(budget.COMPOSITION)


def test_an_unknown_caller_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown IVS caller 'reconcile'"):
        budget.container_rates("reconcile")


def test_the_deployed_pacer_paces_at_the_callers_shares() -> None:
    pacer = budget_pacer(budget.COMPOSITION)
    assert pacer.rate("StartComposition") == budget.container_rates(budget.COMPOSITION)["StartComposition"]
    assert pacer.rate("ListStages") == budget.CONSERVATIVE_RATE  # not the composition's to call


def test_a_function_that_does_not_say_which_caller_it_is_paces_conservatively() -> None:
    pacer = budget_pacer(None)
    smallest = min(rate for caller in budget.CALLERS for rate in budget.container_rates(caller).values())
    assert pacer.rate("GetParticipant") == budget.CONSERVATIVE_RATE
    assert max(smallest, 0.5) >= budget.CONSERVATIVE_RATE


def test_settings_read_the_ivs_caller() -> None:
    env = {"STAGEPILOT_TABLE": "t"}
    assert Settings.from_env(env).ivs_caller is None
    assert Settings.from_env({**env, ENV_IVS_CALLER: "moderation"}).ivs_caller == "moderation"
    with pytest.raises(SettingsError, match="STAGEPILOT_IVS_CALLER must be one of"):
        Settings.from_env({**env, ENV_IVS_CALLER: "everything"})
