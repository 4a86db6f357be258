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


def test_no_second_holds_more_than_stagepilots_share_of_any_operation() -> None:
    """Every container of every caller spending its whole window at once, in the fullest frame: at most
    FUNCTIONS_PER_SECOND; with the operator's command too, never into the application's reserve."""
    for operation in budget.SPLIT:
        assert budget.worst_second(operation) <= budget.FUNCTIONS_PER_SECOND, operation
        operator = budget.operator_shares().get(operation, budget.OPERATOR_PER_SECOND)
        stagepilot = budget.worst_second(operation) + operator
        assert stagepilot <= budget.QUOTA_PER_OPERATION - budget.APPLICATION_RESERVE, operation
    assert budget.FUNCTIONS_PER_SECOND + budget.OPERATOR_PER_SECOND + budget.APPLICATION_RESERVE <= 5


def test_the_worst_second_counts_every_container_of_every_caller() -> None:
    # GetParticipant: the pass's 1 beside the fuller of the replication and moderation frames (2 containers).
    assert budget.worst_second("GetParticipant") == 1 + 2
    assert budget.container_shares(budget.REPLICATION)["GetParticipant"] == (1, 0)
    assert budget.container_shares(budget.MODERATION)["GetParticipant"] == (0, 1)


def test_the_convergence_pass_never_waits_for_a_frame() -> None:
    for operation, calls in budget.container_shares(budget.CONVERGENCE).items():
        assert len(calls) == 1 and calls[0] >= 1, operation


def test_the_operators_fleet_listing_fits_in_seconds_at_the_default_stage_quota() -> None:
    pages = 1000 // 100  # IVS: 1,000 stages a region by default, ListStages gives 100 a page
    per_window = budget.operator_shares()["ListStages"]
    assert (pages - per_window) / per_window * budget.WINDOW_SECONDS <= 4.0  # the first window's go at once


def test_a_caller_gets_no_share_of_an_operation_it_does_not_call() -> None:
    assert "StartComposition" not in budget.container_shares(budget.MODERATION)
    assert "DisconnectParticipant" not in budget.container_shares(budget.COMPOSITION)
    assert "GetStage" not in budget.container_shares(budget.MODERATION)  # it asks ListStageSessions


def test_the_door_is_in_the_map() -> None:
    assert budget.operations_of(budget.DOOR) == {"GetStage"}


def test_an_unknown_caller_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown IVS caller 'reconcile'"):
        budget.container_shares("reconcile")


def test_the_deployed_pacer_paces_at_the_callers_shares() -> None:
    pacer = budget_pacer(budget.COMPOSITION)
    assert pacer.share("StartComposition") == budget.container_shares(budget.COMPOSITION)["StartComposition"]
    assert pacer.share("ListStages") is None  # not the composition's to call: the conservative pace
    assert pacer.rate("ListStages") == pytest.approx(1 / budget.WINDOW_SECONDS)


def test_a_function_that_does_not_say_which_caller_it_is_paces_conservatively() -> None:
    pacer = budget_pacer(None)
    assert pacer.rate("GetParticipant") == pytest.approx(budget.CONSERVATIVE_CALLS / budget.WINDOW_SECONDS)


def test_settings_read_the_ivs_caller() -> None:
    env = {"STAGEPILOT_TABLE": "t"}
    assert Settings.from_env(env).ivs_caller is None
    assert Settings.from_env({**env, ENV_IVS_CALLER: "moderation"}).ivs_caller == "moderation"
    with pytest.raises(SettingsError, match="STAGEPILOT_IVS_CALLER must be one of"):
        Settings.from_env({**env, ENV_IVS_CALLER: "everything"})
