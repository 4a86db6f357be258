"""Across policies: stages that replicate into each other."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Final

from stagepilot.policy.model import DEFAULT_STAGE, StagePolicy


def replication_cycles(policies: Iterable[StagePolicy]) -> list[list[str]]:
    """Stage ARNs that replicate into each other (A→B→A), each cycle once, starting at its smallest ARN.

    A stage without a policy of its own follows the ``default`` policy, so the default's replication
    rules apply to every destination stage that has none (a default rule pointing at such a stage
    itself is ignored). Paused policies replicate nothing.
    """
    own: dict[str, StagePolicy] = {}
    default: StagePolicy | None = None
    for policy in policies:
        if policy.is_default:
            default = policy
        else:
            own[policy.stage_arn] = policy

    def targets(stage: str) -> list[str]:
        policy = own.get(stage, default)
        if policy is None or policy.paused:
            return []
        return sorted({rule.destination_stage_arn for rule in policy.replication} - {stage, DEFAULT_STAGE})

    graph: dict[str, list[str]] = {}
    pending = sorted(own)
    while pending:
        stage = pending.pop()
        if stage in graph:
            continue
        graph[stage] = targets(stage)
        pending.extend(target for target in graph[stage] if target not in graph)

    cycles: list[list[str]] = []
    for start in sorted(graph):
        for cycle in _cycles_from(start, graph):
            cycles.append(cycle)
            if len(cycles) >= _MAX_CYCLES_REPORTED:
                return cycles
    return cycles


_MAX_CYCLES_REPORTED: Final = 100


def _cycles_from(start: str, graph: dict[str, list[str]]) -> Iterator[list[str]]:
    """Elementary cycles through ``start`` whose other stages all sort after it (so each is found once)."""
    stack: list[tuple[str, Iterator[str]]] = [(start, iter(graph[start]))]
    path = [start]
    on_path = {start}
    while stack:
        _, children = stack[-1]
        child = next(children, None)
        if child is None:
            stack.pop()
            on_path.discard(path.pop())
            continue
        if child == start:
            yield list(path)
        elif child > start and child not in on_path:
            path.append(child)
            on_path.add(child)
            stack.append((child, iter(graph.get(child, []))))
