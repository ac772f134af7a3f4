"""Pictures of nets with matplotlib, on the layout of :mod:`petriflow.viz.layout`.

Workflow nets are drawn in workflow terms: a tinted, titled box per step;
transitions named by their part (``start``, ``→ code``, ``↺ draft``); colours
by construct (legend at the top); a shared resource drawn as a dashed copy
under each step that uses it. Places show their tokens as dots (up to three)
or a number. Nets of more than :data:`BIG` nodes (PNML models) are drawn as a
sketch, markers and lines without bend points: fast, never stuck.

matplotlib is imported inside :func:`render` and used through the Agg canvas
(no pyplot, no global state, no display needed).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np

from petriflow.viz.layout import (
    FS_G,
    FS_P,
    FS_T,
    TH,
    Layout,
    R,
    box,
    layered_layout,
    place_caption,
    shared_caption,
    transition_text,
)
from petriflow.viz.text import (
    COLOURS,
    CONSTRUCT_NAMES,
    HIGHLIGHT,
    TRAIL,
    Scene,
    SceneNode,
    tint,
)

__all__ = ["BIG", "render"]

BIG = 300
"""Above this many places and transitions a net is drawn as a sketch."""

PASTELS = ("#eef3fb", "#fdf1e7", "#edf7ee", "#f5f0fa", "#fdf0f5", "#f1f7f9", "#f8f6e6", "#f3efeb")


Point = tuple[float, float]


def _clip(c: Point, toward: Point, kind: str, wh: Point) -> Point:
    """Where the segment from a node's centre ``c`` toward ``toward`` leaves the node's outline."""
    dx, dy = toward[0] - c[0], toward[1] - c[1]
    d = float(np.hypot(dx, dy))
    if d < 1e-9:
        return c
    if kind == "place":
        return c[0] + R * dx / d, c[1] + R * dy / d
    t = min((wh[0] / 2) / abs(dx) if dx else np.inf, (TH / 2) / abs(dy) if dy else np.inf)
    return c[0] + t * dx, c[1] + t * dy


def render(sc: Scene, path: Path, *, fmt: str, workflow: bool) -> None:
    """Draw ``sc`` into ``path`` (``fmt`` is ``png`` or ``svg``)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    big = len(sc.nodes) > BIG
    lay = layered_layout(sc, big=big, workflow=workflow)
    xs = [p[0] for p in lay.pos.values()] or [0.0]
    ys = [p[1] for p in lay.pos.values()] or [0.0]
    x0, x1, y0, y1 = min(xs) - 0.9, max(xs) + 0.9, min(ys) - 0.6, max(ys) + 0.6
    band = 0.55 if (sc.title or sc.name) else 0.2
    w, h = x1 - x0, y1 - y0 + band
    if big:
        scale = (min(24.0 / w, 1.0), min(16.0 / h, 1.0))
    else:
        s = min(1.0, 36.0 / w, 24.0 / h)
        scale = (s, s)
    fig = Figure(figsize=(max(w * scale[0], 4.0), max(h * scale[1], 2.5)), dpi=110 if not big else 100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_xlim(x0, x0 + fig.get_figwidth() / scale[0])
    ax.set_ylim(y0 + fig.get_figheight() / scale[1] - band, y0 - band)  # y grows downwards
    ax.axis("off")
    k = min(scale)
    if sc.title or sc.name:
        ax.text(x0 + 0.15, y0 - band + 0.1, sc.title or sc.name, fontsize=12 * max(k, 0.6), va="top",
                fontweight="bold", color="#222222")
    if big:
        _sketch(ax, sc, lay, k)
    else:
        _full(ax, sc, lay, k, workflow=workflow, legend_at=(x1, y0 - band + 0.1))
    fig.savefig(path, format=fmt)


def _sketch(ax: Any, sc: Scene, lay: Layout, k: float) -> None:
    """Markers and lines only: thousands of nodes in a second."""
    from matplotlib.collections import LineCollection

    nodes = {n.id: n for n in sc.nodes}
    segments: dict[bool, list[Any]] = {False: [], True: []}
    for a in sc.arcs:
        ends = lay.pos[lay.end(a.src, nodes[a.dst])], lay.pos[lay.end(a.dst, nodes[a.src])]
        segments[a.hot].append(ends)
    ax.add_collection(LineCollection(segments[False], colors="#9aa5b1", linewidths=0.4, alpha=0.6, zorder=1))
    if segments[True]:
        ax.add_collection(LineCollection(segments[True], colors=HIGHLIGHT, linewidths=1.2, zorder=2))
    drawn = [(n, lay.pos[n.id]) for n in sc.nodes if n.id in lay.pos]
    drawn += [(nodes[c.split("\1")[1]], lay.pos[c]) for c in lay.copies]
    for kind, marker in (("place", "o"), ("transition", "s")):
        these = [(n, p) for n, p in drawn if n.kind == kind]
        pts = np.array([p for _, p in these]).reshape(-1, 2)
        colours = [HIGHLIGHT if n.hot else ("#333333" if n.tokens else "#ffffff" if kind == "place" else "#4c72b0")
                   for n, _ in these]
        ax.scatter(pts[:, 0], pts[:, 1], s=14 * k + 4, marker=marker, c=colours, edgecolors="#333333",
                   linewidths=0.4, zorder=3)
    if len(drawn) <= 1200:
        for n, (cx, cy) in drawn:
            ax.text(cx, cy + 0.2, n.label[:20], fontsize=max(2.5, 5 * k), ha="center", va="top",
                    color=HIGHLIGHT if n.hot else "#555555", zorder=4)


def _groups(ax: Any, sc: Scene, lay: Layout, k: float) -> None:
    """A tinted, titled box behind each step's nodes."""
    from matplotlib.patches import FancyBboxPatch

    owner = {n.id: n.group for n in sc.nodes if n.id in lay.pos}
    owner.update({c: c.split("\1")[2] or None for c in lay.copies})
    for gi, g in enumerate(sc.groups):
        members = [v for v, o in owner.items() if o == g]
        if not members:
            continue
        left, top, right, bottom = box(members, lay)
        ax.add_patch(FancyBboxPatch((left, top), right - left, bottom - top,
                                    boxstyle="round,pad=0.02,rounding_size=0.08", facecolor=PASTELS[gi % len(PASTELS)],
                                    edgecolor="#c3cad6", linewidth=0.8 * k, zorder=0))
        ax.text(left + 0.06, top + 0.03, g, fontsize=FS_G * k, fontweight="bold", va="top", ha="left",
                color="#2b3a55", zorder=1)


def _weight_at(pts: list[tuple[float, float]], rad: float) -> tuple[float, float]:
    """Where an arc's weight goes: its middle, or near its head when it is long (so it is read with its target)."""
    (x0, y0), (x1, y1) = pts[-2], pts[-1]
    dx, dy = x1 - x0, y1 - y0
    if len(pts) == 2 and rad:  # middle of matplotlib's arc3 curve (its y runs upwards on screen, ours down)
        return (x0 + x1) / 2 - 0.5 * rad * dy, (y0 + y1) / 2 + 0.5 * rad * dx
    d = float(np.hypot(dx, dy))
    if (len(pts) == 2 and d < 1.2) or d < 1e-9:
        return (x0 + x1) / 2, (y0 + y1) / 2
    back = min(0.35, d / 2)
    return x1 - dx / d * back, y1 - dy / d * back


def _arcs(ax: Any, sc: Scene, lay: Layout, k: float) -> None:
    """Arrows, smooth through bend points; a pair of opposite arcs bends apart; weights > 1 written."""
    from matplotlib.patches import FancyArrowPatch
    from matplotlib.path import Path as MPath

    nodes = {n.id: n for n in sc.nodes}
    ends = {(a.src, a.dst): (lay.end(a.src, nodes[a.dst]), lay.end(a.dst, nodes[a.src])) for a in sc.arcs}
    pairs = set(ends.values())
    for a in sc.arcs:
        src, dst = ends[(a.src, a.dst)]
        pts = [lay.pos[src], *lay.bends.get((a.src, a.dst), []), lay.pos[dst]]
        pts[0] = _clip(lay.pos[src], pts[1], nodes[a.src].kind, lay.size[src])
        pts[-1] = _clip(lay.pos[dst], pts[-2], nodes[a.dst].kind, lay.size[dst])
        colour = HIGHLIGHT if a.hot else TRAIL if a.trail else a.colour
        style: dict[str, Any] = dict(
            arrowstyle="-|>", mutation_scale=(11 if a.hot or a.trail else 9) * k, color=colour, zorder=2,
            linewidth=(2.0 if a.hot or a.trail else 1.4 if a.style == "back" else 0.9) * k,
            linestyle="--" if a.style == "dashed" else "-", alpha=0.7 if a.style == "dashed" else 1.0)
        if len(pts) == 2:
            length = float(np.hypot(pts[1][0] - pts[0][0], pts[1][1] - pts[0][1]))
            rad = min(0.3, 0.3 / max(length, 1e-6)) if (dst, src) in pairs else 0.0  # bulge at most ~0.15 in
            ax.add_patch(FancyArrowPatch(pts[0], pts[1], connectionstyle=f"arc3,rad={rad}", shrinkA=0, shrinkB=0,
                                         **style))
        else:  # quadratic pieces between the midpoints of the polyline's segments
            verts, codes = [pts[0]], [MPath.MOVETO]
            for p, q in itertools.pairwise(pts[1:]):
                verts += [p, ((p[0] + q[0]) / 2, (p[1] + q[1]) / 2)]
                codes += [MPath.CURVE3, MPath.CURVE3]
            verts[-1] = pts[-1]
            ax.add_patch(FancyArrowPatch(path=MPath(verts, codes), **style))
            rad = 0.0
        if a.weight > 1:
            at = _weight_at(pts, rad)
            ax.text(at[0], at[1], str(a.weight), fontsize=7 * k, ha="center", va="center", color=colour, zorder=5,
                    bbox=dict(boxstyle="round,pad=0.12", facecolor="white", edgecolor="none"))


def _place(ax: Any, n: SceneNode, at: tuple[float, float], caption: str, k: float) -> None:
    """A circle with its tokens (dots up to 3, a number beyond) and its caption below."""
    from matplotlib.patches import Circle

    cx, cy = at
    colour = HIGHLIGHT if n.hot else COLOURS.get(n.construct, "#555555")
    lw = (2.4 if n.hot else 1.8 if n.role in ("source", "sink") else 1.1) * k
    ax.add_patch(Circle(at, R, facecolor="white", edgecolor=colour, linewidth=lw, zorder=3,
                        linestyle="--" if n.role == "resource" else "-"))
    if n.role == "sink":
        ax.add_patch(Circle(at, R * 0.72, facecolor="none", edgecolor=colour, linewidth=lw, zorder=3))
    dots = {1: [(0.0, 0.0)], 2: [(-0.055, 0.0), (0.055, 0.0)], 3: [(0.0, -0.06), (-0.055, 0.035), (0.055, 0.035)]}
    if n.tokens in dots:
        for dx, dy in dots[n.tokens]:
            ax.add_patch(Circle((cx + dx, cy + dy), 0.034, facecolor="#111111", edgecolor="none", zorder=4))
    elif n.tokens:
        ax.text(cx, cy, str(n.tokens), fontsize=7.5 * k, ha="center", va="center", fontweight="bold", zorder=4)
    if caption:
        ax.text(cx, cy + R + 0.02, caption, fontsize=FS_P * k, ha="center", va="top", linespacing=1.0, zorder=4,
                color=HIGHLIGHT if n.hot else "#4a4a4a",
                fontweight="bold" if n.role in ("source", "sink") or n.hot else "normal")


def _full(ax: Any, sc: Scene, lay: Layout, k: float, *, workflow: bool, legend_at: tuple[float, float]) -> None:
    """The readable drawing: step boxes, arcs, places with tokens, transitions, legend."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import FancyBboxPatch, Patch

    if workflow:
        _groups(ax, sc, lay, k)
    _arcs(ax, sc, lay, k)
    nodes = {n.id: n for n in sc.nodes}
    for n in sc.nodes:
        if n.id not in lay.pos:
            continue
        cx, cy = lay.pos[n.id]
        if n.kind == "place":
            _place(ax, n, (cx, cy), place_caption(n, workflow=workflow), k)
            continue
        colour = HIGHLIGHT if n.hot else COLOURS.get(n.construct, "#555555")
        w = lay.size[n.id][0]
        ax.add_patch(FancyBboxPatch((cx - w / 2, cy - TH / 2), w, TH, boxstyle="round,pad=0,rounding_size=0.04",
                                    facecolor=tint(colour, 0.85), edgecolor=TRAIL if n.trail and not n.hot else colour,
                                    linewidth=(2.4 if n.hot or n.trail else 1.1) * k,
                                    zorder=3))
        ax.text(cx, cy, transition_text(n, workflow=workflow), fontsize=FS_T * k, ha="center", va="center",
                zorder=4, color=HIGHLIGHT if n.hot else "#1b1b1b", fontweight="bold" if n.hot else "normal")
    for c in lay.copies:
        n = nodes[c.split("\1")[1]]
        _place(ax, n, lay.pos[c], shared_caption(n), k)
    present = [c for c in CONSTRUCT_NAMES if any(n.construct == c for n in sc.nodes)] if workflow else []
    handles: list[Any] = [Patch(facecolor=tint(COLOURS[c], 0.85), edgecolor=COLOURS[c], label=CONSTRUCT_NAMES[c])
                          for c in present]
    if any(a.style == "dashed" for a in sc.arcs):
        handles.append(Line2D([], [], color=COLOURS["resource"], linestyle="--",
                              label="takes / returns a shared resource"))
    if any(n.trail for n in sc.nodes):
        handles.append(Line2D([], [], color=TRAIL, linewidth=2, label="path taken"))
    if any(n.hot for n in sc.nodes):
        handles.append(Patch(facecolor="white", edgecolor=HIGHLIGHT, linewidth=2, label="highlighted"))
    if handles:
        ax.legend(handles=handles, loc="upper right", bbox_to_anchor=legend_at, bbox_transform=ax.transData,
                  ncol=len(handles), fontsize=7 * max(k, 0.7), frameon=False, handlelength=1.4, columnspacing=1.0)
