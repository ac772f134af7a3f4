"""Where each node goes: a layered, left-to-right layout measured in inches.

Sugiyama's method, kept small. Reverse the arcs that close cycles (those a
depth-first search from the source finds, and a retry's way back) so loops
point backwards; put each node on the layer of its longest path from the
source; add a bend point per layer an arc skips; order each layer by
barycentres, keeping each workflow step's nodes together and the steps in one
order throughout; then place nodes along their layer so arcs run straight
where they can (an isotonic regression per layer keeps order and spacing),
and push steps apart where their boxes would overlap. Sizes come from the
labels, so the picture is as large as the net needs and labels do not collide.

No matplotlib here: the layout is plain numbers, tested without drawing.
"""

from __future__ import annotations

import itertools
import textwrap
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np

from petriflow.viz.text import Scene, SceneNode

__all__ = ["Layout", "box", "copy_id", "layered_layout", "place_caption", "shared_caption"]

# Sizes in inches and font sizes in points, at scale 1.
R = 0.17  # place radius
TH = 0.30  # transition height
FS_T, FS_P, FS_G = 8.0, 6.5, 9.0  # font sizes: transitions, place captions, step titles
CHAR = 0.60 / 72  # average glyph width per point of font size, in inches
HGAP, VGAP = 0.34, 0.24  # air between layers and between rows
TITLE, PAD = 0.26, 0.1  # a step box's room for its title, and its padding
BENDS = 3000  # at most this many bend points; past it arcs are straight (keeps dense nets fast)
COUNTED = 1500  # crossings are counted (quadratic) only for layered graphs with at most this many arcs


def copy_id(resource: str, group: str | None) -> str:
    """The layout id of the copy of shared place ``resource`` drawn next to step ``group``."""
    return f"\1{resource}\1{group or ''}"


def place_caption(n: SceneNode, *, workflow: bool) -> str:
    """The words under a place: its part inside a step box, its full name elsewhere."""
    if n.role in ("source", "sink"):
        return n.label
    text = n.short if workflow and n.group else n.label
    return "\n".join(textwrap.wrap(text, 16)[:2]) if text else ""


def shared_caption(n: SceneNode) -> str:
    return f"{n.label} (shared)"


def transition_text(n: SceneNode, *, workflow: bool) -> str:
    return n.short if workflow and n.group else n.label


def node_size(n: SceneNode, caption: str, label: str) -> tuple[float, float]:
    """Width and height a node needs, a place's caption included."""
    if n.kind == "place":
        lines = caption.split("\n") if caption else []
        return max([2 * R] + [len(s) * FS_P * CHAR for s in lines]), 2 * R + len(lines) * FS_P * 1.25 / 72
    return max(0.45, len(label) * FS_T * CHAR + 0.16), TH


@dataclass(frozen=True)
class Layout:
    """Node centres and sizes (inches, y grows downwards), arc bend points, resource copies."""

    pos: dict[str, tuple[float, float]]
    size: dict[str, tuple[float, float]]
    bends: dict[tuple[str, str], list[tuple[float, float]]]
    copies: tuple[str, ...] = ()
    kinds: dict[str, str] = field(default_factory=dict)

    def end(self, node: str, other: SceneNode) -> str:
        """The drawn node an arc meets: a resource's copy beside ``other``'s step, else ``node`` itself."""
        return node if node in self.pos else copy_id(node, other.group)


def box(members: list[str], lay: Layout) -> tuple[float, float, float, float]:
    """A step's box (left, top, right, bottom) around its members, with room for its title."""
    pos, size = lay.pos, lay.size

    def half_up(v: str) -> float:
        return TH / 2 if lay.kinds.get(v) == "transition" else R

    left = min(pos[v][0] - size[v][0] / 2 for v in members) - PAD
    right = max(pos[v][0] + size[v][0] / 2 for v in members) + PAD
    top = min(pos[v][1] - half_up(v) for v in members) - TITLE
    bottom = max(pos[v][1] - half_up(v) + size[v][1] for v in members) + 0.08
    return left, top, right, bottom


def _dfs_back_edges(g: nx.DiGraph, roots: list[str]) -> tuple[dict[str, int], set[tuple[str, str]]]:
    """Preorder numbers and back edges of an iterative depth-first search from ``roots`` in order."""
    order: dict[str, int] = {}
    on_stack: set[str] = set()
    back: set[tuple[str, str]] = set()
    for root in roots:
        if root in order:
            continue
        order[root] = len(order)
        on_stack.add(root)
        stack = [(root, iter(g.succ[root]))]
        while stack:
            v, it = stack[-1]
            for w in it:
                if w not in order:
                    order[w] = len(order)
                    on_stack.add(w)
                    stack.append((w, iter(g.succ[w])))
                    break
                if w in on_stack:
                    back.add((v, w))
            else:
                stack.pop()
                on_stack.discard(v)
    return order, back


def _mean(values: list[float] | list[int]) -> float:
    """Mean of a short list (numpy's costs more than the sum on a handful of numbers)."""
    return sum(values) / len(values)


def _isotonic(target: np.ndarray, gaps: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Closest positions to ``target`` (weighted least squares) with ``y[i+1] - y[i] >= gaps[i]``.

    Pool adjacent violators on ``target`` minus the running sum of gaps.
    """
    if len(target) == 0:
        return target
    offset = np.concatenate([[0.0], np.cumsum(gaps)])
    weight = np.ones(len(target)) if weights is None else weights
    blocks: list[list[float]] = []  # [mean, weight, count]
    for value, wt in zip(target - offset, weight):
        blocks.append([float(value), float(wt), 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, c2 = blocks.pop()
            m1, w1, c1 = blocks[-1]
            blocks[-1] = [(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, c1 + c2]
    out: np.ndarray = np.concatenate([np.full(int(c), m) for m, _, c in blocks]) + offset
    return out


def _crossings(layers: list[list[str]], down: dict[str, list[str]], index: dict[str, int]) -> int:
    """Arc crossings between neighbouring layers (quadratic per layer pair: small nets only)."""
    total = 0
    for layer in layers[:-1]:
        ends = [v for _, v in sorted((index[u], index[v]) for u in layer for v in down[u])]
        total += sum(1 for i in range(len(ends)) for j in range(i + 1, len(ends)) if ends[j] < ends[i])
    return total


def _attachments(sc: Scene) -> dict[str, list[str]]:
    """Per-step copies of each shared resource: ``copy id -> the transitions it serves``.

    One shared place wired to every step that uses it tangles the drawing; a
    small copy under each step, with short arcs, reads at a glance (its
    caption says it is shared). Transitions outside any step share one copy.
    """
    nodes = {n.id: n for n in sc.nodes}
    copies: dict[str, list[str]] = defaultdict(list)
    for a in sc.arcs:
        place, trans = (a.src, a.dst) if nodes[a.src].kind == "place" else (a.dst, a.src)
        if nodes[place].role == "resource":
            cid = copy_id(place, nodes[trans].group)
            if trans not in copies[cid]:
                copies[cid].append(trans)
    return dict(copies)


def _against_flow(sc: Scene) -> set[tuple[str, str]]:
    """Arcs drawn right to left on purpose: a retry's way back (fail → backoff → retry), a loop's way back.

    With these reversed the retry cycle closes under its step (retry left of
    ``running``, backoff under it, fail right of it) and a loop re-enters its
    target beside the target's own start, instead of either trailing off to
    the right across the next steps.
    """
    nodes = {n.id: n for n in sc.nodes}
    return {(a.src, a.dst) for a in sc.arcs
            if a.style == "back"
            or any(nodes[x].construct == "retry" and nodes[x].part == "backoff" for x in (a.src, a.dst))}


def _layers(sc: Scene, g: nx.DiGraph) -> tuple[dict[str, int], dict[str, int], set[tuple[str, str]]]:
    """Longest-path layers once cycles are cut; also the DFS preorder and the arcs drawn reversed."""
    forced = _against_flow(sc) & set(g.edges)
    g2 = nx.DiGraph()
    g2.add_nodes_from(g)
    g2.add_edges_from((v, u) if (u, v) in forced else (u, v) for u, v in g.edges)
    roots = [sc.source] if sc.source is not None and sc.source in g else []
    roots += [n.id for n in sc.nodes if n.kind == "place" and n.tokens and n.id in g]
    roots += [v for v in g2 if g2.in_degree(v) == 0] + list(g2)
    preorder, back2 = _dfs_back_edges(g2, roots)
    back = {(u, v) for u, v in g.edges if ((u, v) in forced) != (((v, u) if (u, v) in forced else (u, v)) in back2)}
    dag = nx.DiGraph()
    dag.add_nodes_from(g)
    dag.add_edges_from((v, u) if (u, v) in back else (u, v) for u, v in g.edges)
    topo = list(nx.topological_sort(dag))
    layer: dict[str, int] = {}
    for v in topo:
        layer[v] = max((layer[u] + 1 for u in dag.pred[v]), default=0)
    start = [sc.source] if sc.source is not None and sc.source in g else [
        n.id for n in sc.nodes if n.tokens and n.id in g]
    reached: set[str] = set(start) if start else set(g)
    frontier = list(reached)
    while frontier:  # one search from all starts at once (one per start is quadratic on big nets)
        following: list[str] = []
        for v in frontier:
            fresh = [u for u in dag.succ[v] if u not in reached]
            reached.update(fresh)
            following += fresh
        frontier = following
    for v in reversed(topo):  # what the start does not lead to (a budget, a retry) sits by its successors
        if v not in reached and dag.out_degree(v):
            layer[v] = min(layer[s] for s in dag.succ[v]) - 1
    low = min(layer.values(), default=0)
    return {v: k - low for v, k in layer.items()}, preorder, back


@dataclass
class _Work:
    """The layout in progress: layers of real, copy and bend nodes with their neighbours."""

    layer: dict[str, int]
    group: dict[str, str | None]
    rank: dict[str, float]
    slot: dict[str, int]
    size: dict[str, tuple[float, float]]
    up: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    down: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    attract: dict[str, list[str]] = field(default_factory=dict)
    layers: list[list[str]] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    gkey: dict[str | None, float] = field(default_factory=dict)


def _order_layer(w: _Work, k: int, nbrs: dict[str, list[str]]) -> None:
    """Barycentre order of layer ``k``; once ``gkey`` is known, steps in one global order, each contiguous.

    The steps' blocks take the sorted positions of their barycentres in this
    layer, so glue nodes still fall between the right steps; inside a block a
    budget goes on top and a resource copy at the bottom.
    """
    lay, index, group = w.layers[k], w.index, w.group
    key = {v: (_mean([index[u] for u in nbrs[v]]) if nbrs[v] else float(index[v])) for v in lay}
    if w.gkey:
        members: dict[str | None, list[float]] = defaultdict(list)
        for v in lay:
            members[group[v]].append(key[v])
        present = sorted((gr for gr in members if gr is not None), key=lambda gr: w.gkey.get(gr, 0.0))
        block = dict(zip(present, sorted(_mean(members[gr]) for gr in present)))
        rank = {gr: i for i, gr in enumerate(present)}  # breaks ties between blocks

        def place(v: str) -> tuple[float, int, int, int, float]:
            gr = group[v]
            if gr is None:  # glue between steps
                return key[v], 1, 0, 0, key[v]
            return block[gr], 0, rank[gr], w.slot[v], key[v]

        lay.sort(key=place)
    else:
        lay.sort(key=lambda v: key[v])
    index.update({v: i for i, v in enumerate(lay)})


def _order(w: _Work, *, big: bool) -> None:
    """Order every layer, trying two orders of the steps; keep the fewest crossings.

    One order of the steps comes from the depth-first order, which follows
    the file (route branches as written), the other from free barycentre
    sweeps (where each step wants to be); constrained sweeps refine each.
    """
    n = len(w.layers)
    count = not big and sum(len(d) for d in w.down.values()) <= COUNTED

    def sweep() -> None:
        for k in range(1, n):
            _order_layer(w, k, w.up)
        for k in range(n - 2, -1, -1):
            _order_layer(w, k, w.down)

    def step_keys(value: dict[str, float], how: Any = _mean) -> dict[str | None, float]:
        spread: dict[str | None, list[float]] = defaultdict(list)
        for v, c in value.items():
            if w.group[v] is not None and v[0] != "\0":
                spread[w.group[v]].append(c)
        return {gr: float(how(cs)) for gr, cs in spread.items()}

    start = {k: list(lay) for k, lay in enumerate(w.layers)}
    for _ in range(2 if big else 4):
        sweep()
    candidates = [step_keys({v: i - (len(w.layers[w.layer[v]]) - 1) / 2 for v, i in w.index.items()})]
    if not big:  # the file's order first: it wins ties
        candidates.insert(0, step_keys(w.rank, min))
    best: tuple[int, dict[str, int], dict[str | None, float]] | None = None
    for gkey in candidates:
        w.gkey = gkey
        if len(candidates) > 1:
            w.layers = [list(start[k]) for k in range(n)]
            w.index = {v: i for lay in w.layers for i, v in enumerate(lay)}
        for _ in range(2 if big else 6):
            sweep()
            c = _crossings(w.layers, w.down, w.index) if count else 0
            if best is None or c < best[0]:
                best = (c, dict(w.index), gkey)
    assert best is not None
    _, w.index, w.gkey = best
    for lay in w.layers:
        lay.sort(key=lambda v: w.index[v])


def _rows(w: _Work, *, big: bool, workflow: bool, start: dict[str, float] | None = None,
          pinned: frozenset[str] = frozenset(), rounds: int | None = None) -> dict[str, float]:
    """y of every node: towards its neighbours, order and spacing kept.

    A node of a step counts its own step's neighbours thrice; a node between
    steps counts thrice a step it is the only link of (the start it alone
    feeds, the finish that feeds only it), so fans spread in the free
    columns between boxes rather than across the boxes. ``pinned`` nodes stay
    where ``start`` has them (used once steps have been pushed apart).
    """
    group, size = w.group, w.size

    def gaps(lay: list[str]) -> np.ndarray:
        out = []
        for a, b in itertools.pairwise(lay):
            dummy = a[0] == "\0" or b[0] == "\0"
            apart = workflow and group[a] != group[b]  # a step's title fits; arcs pass outside its box
            extra = (0.3 if apart else 0.0) if dummy else VGAP + (0.22 if apart else 0.0)
            out.append((size[a][1] + size[b][1]) / 2 + extra + 0.08)
        return np.array(out)

    def pull(v: str, u: str, downward: bool) -> float:
        if group[v] is not None:
            return 3.0 if group[u] == group[v] else 1.0
        only = len(w.up[u] if downward else w.down[u]) == 1  # u's only link on this side: hug it
        return 3.0 if only and group[u] is not None and v[0] != "\0" else 1.0

    y: dict[str, float] = dict(start) if start is not None else {}
    if start is None:
        for lay in w.layers:
            y.update(zip(lay, _isotonic(np.zeros(len(lay)), gaps(lay))))
    n = len(w.layers)
    for it in range(rounds if rounds is not None else 4 if big else 40):
        for k in range(n) if it % 2 == 0 else range(n - 1, -1, -1):
            lay, target = w.layers[k], []
            for v in lay:
                if v in pinned:
                    target.append(y[v])
                elif v in w.attract:  # a resource copy: under the transitions it serves
                    target.append(_mean([y[u] for u in w.attract[v]]) + 0.5)
                elif w.up[v] or w.down[v]:
                    near = [(u, pull(v, u, False)) for u in w.up[v]] + [(u, pull(v, u, True)) for u in w.down[v]]
                    target.append(sum(y[u] * c for u, c in near) / sum(c for _, c in near))
                else:
                    target.append(y[v])
            weights = np.array([1e9 if v in pinned else 1.0 for v in lay]) if pinned else None
            y.update(zip(lay, _isotonic(np.array(target), gaps(lay), weights)))
    return y


def _separate(w: _Work, pos: dict[str, tuple[float, float]], lay: Layout) -> None:
    """Push a step, and what lies under it in its layers, down until its box clears the steps above."""
    steps = sorted({g for g in w.group.values() if g is not None}, key=lambda g: w.gkey.get(g, 0.0))
    members = {g: [v for v in pos if w.group.get(v) == g and v[0] != "\0"] for g in steps}
    placed: list[str] = []
    for g in steps:
        if not members[g]:
            continue
        left, top, right, _ = box(members[g], lay)
        need = 0.0
        for h in placed:
            l2, _, r2, b2 = box(members[h], lay)
            if l2 < right and left < r2:
                need = max(need, b2 + 0.12 - top)
        if need > 0:  # move g and whatever lies under it, whole steps at a time
            moving: set[str | None] = {g}
            while True:
                moved = set()
                for lay_k in w.layers:
                    below = False
                    for v in lay_k:
                        below = below or w.group[v] in moving
                        if below:
                            moved.add(v)
                grown = moving | {w.group[v] for v in moved if w.group[v] is not None}
                if grown == moving:
                    break
                moving = grown
            for v in moved:
                pos[v] = (pos[v][0], pos[v][1] + need)
        placed.append(g)


def layered_layout(sc: Scene, *, big: bool = False, workflow: bool = False) -> Layout:
    """Left-to-right layered layout of a Scene; resource places become per-step copies (:func:`copy_id`)."""
    nodes = {n.id: n for n in sc.nodes}
    size = {n.id: node_size(n, place_caption(n, workflow=workflow), transition_text(n, workflow=workflow))
            for n in sc.nodes}
    g = nx.DiGraph()
    g.add_nodes_from(n.id for n in sc.nodes if n.role != "resource")
    g.add_edges_from((a.src, a.dst) for a in sc.arcs if a.src in g and a.dst in g)
    layer, preorder, back = _layers(sc, g)
    w = _Work(layer=layer, group={v: nodes[v].group for v in g}, rank={v: float(preorder.get(v, 0)) for v in g},
              slot={v: (-1 if nodes[v].role == "budget" else 0) for v in g}, size=size)
    kinds = {n.id: n.kind for n in sc.nodes}
    for cid, served in _attachments(sc).items():
        resource = nodes[cid.split("\1")[1]]
        w.attract[cid] = served
        layer[cid] = round(_mean([layer[t] for t in served]))
        w.group[cid], w.rank[cid], w.slot[cid] = nodes[served[0]].group, max(w.rank[t] for t in served) + 0.5, 1
        size[cid], kinds[cid] = node_size(resource, shared_caption(resource), ""), "place"
    chains: dict[tuple[str, str], list[str]] = {}
    skipped = sum(abs(layer[u] - layer[v]) - 1 for u, v in g.edges)
    bend = not big and skipped <= BENDS  # a dense net with long arcs gets straight ones
    for u, v in g.edges:  # one bend node per skipped layer, for each arc separately
        a, b = (v, u) if (u, v) in back else (u, v)
        chain = [a]
        for k in range(layer[a] + 1, layer[b]) if bend else ():
            d = f"\0{u}\0{v}\0{k}"
            inside = w.group[u] if w.group[u] == w.group[v] else None
            layer[d], w.rank[d], w.slot[d], w.group[d], size[d] = k, w.rank[a] + 0.5, 0, inside, (0.0, 0.0)
            chain.append(d)
        chain.append(b)
        for p, q in itertools.pairwise(chain):
            w.down[p].append(q)
            w.up[q].append(p)
        chains[(u, v)] = chain[1:-1] if (u, v) not in back else chain[-2:0:-1]
    w.layers = [[] for _ in range(max(layer.values(), default=0) + 1)]
    for v in sorted(layer, key=lambda v: w.rank[v]):
        w.layers[layer[v]].append(v)
    w.index = {v: i for lay in w.layers for i, v in enumerate(lay)}
    _order(w, big=big)
    y = _rows(w, big=big, workflow=workflow)
    x: dict[str, float] = {}
    cursor = 0.0
    for lay in w.layers:  # each layer as wide as its widest node
        width = max([size[v][0] for v in lay] + [0.1])
        x.update({v: cursor + width / 2 for v in lay})
        cursor += width + HGAP
    pos = {v: (x[v], y[v]) for v in layer}
    if workflow and not big:
        _separate(w, pos, Layout(pos=pos, size=size, bends={}, kinds=kinds))
        steps = frozenset(v for v in pos if w.group[v] is not None)
        settled = _rows(w, big=big, workflow=workflow, start={v: p[1] for v, p in pos.items()}, pinned=steps,
                        rounds=20)
        pos = {v: (p[0], p[1] if v in steps else settled[v]) for v, p in pos.items()}
    top = min((p[1] - size[v][1] for v, p in pos.items()), default=0.0)
    pos = {v: (p[0], p[1] - top) for v, p in pos.items()}
    bends = {arc: [pos[d] for d in chain] for arc, chain in chains.items()}
    return Layout(pos={v: p for v, p in pos.items() if v[0] != "\0"}, size=size, bends=bends,
                  copies=tuple(w.attract), kinds=kinds)
