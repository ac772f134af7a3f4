"""The two graph questions loading asks of the step graph, in plain Python.

Loading a workflow is on the path of every ``petriflow check``; networkx
costs about 0.3 s to import, more than checking a small workflow does, so
the cycle and reachability questions are answered here by iterative
depth-first search (no recursion: a chain of thousands of steps is fine).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

__all__ = ["adjacency", "find_cycle", "has_path"]


def adjacency(nodes: Iterable[str], edges: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Successor lists in insertion order, each edge once (what a ``DiGraph`` holds)."""
    succ: dict[str, dict[str, None]] = {n: {} for n in nodes}
    for u, v in edges:
        succ.setdefault(u, {})[v] = None
        succ.setdefault(v, {})
    return {u: list(vs) for u, vs in succ.items()}


def find_cycle(succ: Mapping[str, Sequence[str]]) -> list[tuple[str, str]]:
    """The edges of the first cycle a depth-first search meets (nodes and successors in order), or ``[]``."""
    state: dict[str, int] = {}  # 1 on the current path, 2 finished
    for root in succ:
        if root in state:
            continue
        path = [root]
        state[root] = 1
        stack = [iter(succ[root])]
        while stack:
            for v in stack[-1]:
                if state.get(v) == 1:
                    cycle = path[path.index(v):]
                    return list(zip(cycle, cycle[1:] + [v], strict=True))
                if v not in state:
                    state[v] = 1
                    path.append(v)
                    stack.append(iter(succ[v]))
                    break
            else:
                state[path.pop()] = 2
                stack.pop()
    return []


def has_path(succ: Mapping[str, Sequence[str]], source: str, target: str) -> bool:
    """Whether ``target`` is reachable from ``source`` (a node reaches itself)."""
    seen = {source}
    todo = [source]
    while todo:
        u = todo.pop()
        if u == target:
            return True
        for v in succ.get(u, ()):
            if v not in seen:
                seen.add(v)
                todo.append(v)
    return False
