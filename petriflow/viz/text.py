"""What a drawing says, and the two text drawings: Mermaid and Graphviz DOT.

A net is first turned into a :class:`Scene`: for every place and transition a
label a person can read, the workflow step it belongs to, the construct it
comes from (route, loop, retry, resource...) and its tokens. The Scene is
shared by every output, so the PNG, the Mermaid chart and the DOT file name
and colour things the same way. Plain nets (PNML) have no origins: their
labels are their own and nothing is grouped.

The text outputs need no binary: a ``.mmd`` file renders on GitHub or in the
Mermaid live editor, a ``.dot`` file with ``dot -Tsvg`` wherever Graphviz is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from petriflow.errors import InputError
from petriflow.net.petrinet import Origin, PetriNet, WorkflowNet

__all__ = [
    "COLOURS",
    "HIGHLIGHT",
    "TRAIL",
    "Scene",
    "SceneArc",
    "SceneNode",
    "scene",
    "tint",
    "to_dot",
    "to_mermaid",
    "tokens_text",
]

# One colour per construct (edge colour; fills are light tints of it). Chosen so
# that route, loop, retry, fallback and resource stay apart for colour-blind eyes too.
COLOURS: Mapping[str, str] = {
    "step": "#4c72b0",
    "dependency": "#7f7f7f",
    "route": "#dd8452",
    "join": "#55a868",
    "loop": "#8172b3",
    "map": "#937860",
    "retry": "#c44e8a",
    "fallback": "#b8a000",
    "resource": "#3a9fbf",
    "begin": "#333333",
    "end": "#333333",
    "net": "#4c72b0",
}
HIGHLIGHT = "#d62728"
TRAIL = "#1b1b1b"  # the path a witness took: bold and dark, under the red of the highlight
CONSTRUCT_NAMES: Mapping[str, str] = {
    "step": "step", "route": "route branch", "join": "join", "loop": "loop back",
    "map": "map", "retry": "retry / fail", "fallback": "fallback", "resource": "shared resource",
}


@dataclass(frozen=True)
class SceneNode:
    """One place or transition as it is drawn.

    ``label`` is the full name (``classify → code``); ``short`` drops the step,
    for drawings that write the step once on its group (``→ code``).
    ``group`` is the step whose box it is drawn in (None for the glue between
    steps); ``role`` marks the source, the sink, shared resources and budgets.
    """

    id: str
    kind: str  # "place" | "transition"
    label: str
    short: str
    construct: str
    group: str | None
    tokens: int
    role: str = ""  # "source" | "sink" | "resource" | "budget" | ""
    part: str = ""  # the origin's role: start, finish, back, fail...
    hot: bool = False
    trail: bool = False


@dataclass(frozen=True)
class SceneArc:
    """One arc: ``weight`` > 1 is written on it; ``style`` is ``solid``, ``dashed`` (resource) or ``back`` (loop).

    ``hot``: both ends highlighted; ``trail``: its transition fired on the path given as ``trail``.
    """

    src: str
    dst: str
    weight: int
    colour: str
    style: str = "solid"
    hot: bool = False
    trail: bool = False


@dataclass(frozen=True)
class Scene:
    """Everything a drawing needs, in net order: nodes (places first), arcs, groups in step order."""

    name: str
    nodes: tuple[SceneNode, ...]
    arcs: tuple[SceneArc, ...]
    groups: tuple[str, ...]
    source: str | None = None
    sink: str | None = None
    title: str | None = None
    by_id: Mapping[str, SceneNode] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_id", {n.id: n for n in self.nodes})

    def node(self, node_id: str) -> SceneNode:
        return self.by_id[node_id]


def tokens_text(n: int) -> str:
    """Dots for 1-3 tokens (what a person counts at a glance), a number beyond."""
    return "●" * n if 0 < n <= 3 else (str(n) if n else "")


def _names(o: Origin, node_id: str) -> tuple[str, str]:
    """(full label, label without the step) for a node of a lowered workflow.

    Follows the ids and origins of :mod:`petriflow.net.lower`: arrows say
    where a token goes (``classify → code``), ``↺`` marks a loop, ``⇢`` a
    fallback, ``▸`` a part of one step (``search ▸ retry``).
    """
    c, role, detail, step = o.construct, o.role, o.detail, o.step
    if c in ("begin", "end"):
        return (role or c), (role or c)
    if c == "resource":
        return (detail or node_id), (detail or node_id)
    if c == "dependency":
        return (f"{detail} → {step}" if step else f"{detail} done"), f"from {detail}"
    if c == "join":
        return (f"any → {step}" if not detail else f"{detail} → {step}"), "any input"
    if c == "loop" and role == "entry":
        return f"{detail} ↺ {step}", f"↺ from {detail}"
    if c == "fallback" and role == "input":
        return f"{detail} ⇢ {step}", f"⇢ from {detail}"
    if c == "route" and role == "finish":
        short = f"→ {detail}"
    elif c == "loop" and role == "back":
        short = f"↺ {detail}"
    elif role == "budget":
        short = "loop budget" if c == "loop" else f"{c} budget"
    elif c == "fallback":
        short = f"⇢ {detail}" if detail else "give up"
    elif c == "step" and role == "start" and detail:
        short = f"start ↺ {detail}"
    else:
        short = " ".join(x for x in (role, detail) if x) or c
    if step is None:
        return short, short
    sep = " " if short[:1] in "→↺⇢" else " ▸ "
    return f"{step}{sep}{short}", short


_GLUE = ("dependency", "join", "begin", "end", "resource")


def scene(
    net: PetriNet,
    *,
    highlight: Iterable[str] | None = None,
    marking: np.ndarray | Mapping[str, int] | None = None,
    title: str | None = None,
    trail: Iterable[str] | None = None,
) -> Scene:
    """The Scene of a net: labels, groups, constructs, tokens (of ``marking``, default the initial one).

    ``highlight`` names places and transitions to draw in red (a deadlock
    witness: the stuck marking's places and the transitions left waiting);
    an id the net does not have is an :class:`InputError`. ``trail`` names
    transitions that fired (a witness's firing sequence): they and their
    arcs are drawn bold, so the path taken can be followed.
    """
    if not isinstance(net, PetriNet):
        raise InputError(f"cannot draw a {type(net).__name__}", hint="pass a PetriNet or a WorkflowNet")
    hot = set(highlight or ())
    unknown = sorted(hot - set(net.places) - set(net.transitions))
    if unknown:
        raise InputError(f"highlight names '{unknown[0]}', which is not in net '{net.name}'",
                         hint="highlight place and transition ids of this net")
    fired = set(trail or ())
    unknown = sorted(fired - set(net.transitions))
    if unknown:
        raise InputError(f"trail names '{unknown[0]}', which is not a transition of net '{net.name}'",
                         hint="a trail is a firing sequence of this net")
    if marking is None:
        tokens = net.initial
    elif isinstance(marking, Mapping):
        tokens = net.marking(marking)
    else:
        tokens = np.asarray(marking, dtype=np.int64)
        if tokens.shape != net.initial.shape:
            raise InputError(f"marking has shape {tokens.shape}, net '{net.name}' has {len(net.places)} places")
    wf = net if isinstance(net, WorkflowNet) else None
    resources = set(wf.resources) if wf else set()
    budgets = set(wf.budgets) if wf else set()
    nodes: list[SceneNode] = []
    groups: list[str] = []
    kinds = [("place", i, p, net.place_labels[i]) for i, p in enumerate(net.places)]
    kinds += [("transition", i, t, net.transition_labels[i]) for i, t in enumerate(net.transitions)]
    for kind, i, nid, own_label in kinds:
        role = part = ""
        if wf is not None:
            o = wf.origins[nid]
            label, short = _names(o, nid)
            construct, part = o.construct, o.role
            glue = construct in _GLUE or part in ("entry", "input")
            group = None if glue else o.step
            if nid in resources or construct == "resource":
                role, group, construct = "resource", None, "resource"
            elif nid in budgets or o.role == "budget":
                role = "budget"
            if nid == wf.source:
                role, label, short = "source", "source", "source"
            elif nid == wf.sink:
                role, label, short = "sink", "sink", "sink"
        else:
            label = own_label if own_label else nid
            short, construct, group = label, "net", None
        if group is not None and group not in groups:
            groups.append(group)
        nodes.append(SceneNode(id=nid, kind=kind, label=label, short=short, construct=construct,
                               group=group, tokens=int(tokens[i]) if kind == "place" else 0,
                               role=role, part=part, hot=nid in hot, trail=nid in fired))
    by_id = {n.id: n for n in nodes}
    arcs: list[SceneArc] = []
    for src, dst, w in net.arcs():
        a, b = by_id[src], by_id[dst]
        place, trans = (a, b) if a.kind == "place" else (b, a)
        if place.role == "resource":
            style, colour = "dashed", COLOURS["resource"]
        elif trans.construct == "loop" and trans.part == "back":
            style, colour = ("back" if b is place else "solid"), COLOURS["loop"]
        elif trans.construct in ("route", "retry", "fallback", "loop"):
            style, colour = "solid", COLOURS[trans.construct]
        else:
            style, colour = "solid", "#555555"
        arcs.append(SceneArc(src=src, dst=dst, weight=w, colour=colour, style=style, hot=a.hot and b.hot,
                             trail=trans.trail))
    return Scene(name=net.name, nodes=tuple(nodes), arcs=tuple(arcs), groups=tuple(groups),
                 source=wf.source if wf else None, sink=wf.sink if wf else None, title=title)


# -- Mermaid -------------------------------------------------------------------

def _mermaid_ids(sc: Scene) -> dict[str, str]:
    """Safe, unique, still readable Mermaid ids: ``p3_classify_done`` (``end`` and friends are keywords)."""
    out: dict[str, str] = {}
    counters = {"place": 0, "transition": 0}
    for n in sc.nodes:
        k = counters[n.kind]
        counters[n.kind] += 1
        slug = re.sub(r"[^A-Za-z0-9_]+", "_", n.id).strip("_")[:28]
        out[n.id] = f"{n.kind[0]}{k}_{slug}" if slug else f"{n.kind[0]}{k}"
    return out


def _mm_text(s: str) -> str:
    """Text safe inside a quoted Mermaid label (entities, as Mermaid spells them)."""
    return (s.replace("#", "#35;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")
            .replace("\n", "<br/>"))


def to_mermaid(net: PetriNet, *, highlight: Iterable[str] | None = None,
               marking: np.ndarray | Mapping[str, int] | None = None, title: str | None = None,
               trail: Iterable[str] | None = None) -> str:
    """The net as a Mermaid ``flowchart LR``: one subgraph per workflow step, places as circles.

    Node ids are ``p<i>_...``/``t<i>_...`` (``i`` the index in ``net.places``/``net.transitions``);
    an arc of weight > 1 carries its weight as the edge label, resource arcs are dotted.
    """
    sc = scene(net, highlight=highlight, marking=marking, title=title, trail=trail)
    ids = _mermaid_ids(sc)
    out = []
    if sc.title or sc.name:
        out += ["---", f"title: {json.dumps(sc.title or sc.name)}", "---"]  # JSON strings are YAML strings
    out.append("flowchart LR")

    def decl(n: SceneNode) -> str:
        if n.kind == "transition":
            return f'{ids[n.id]}["{_mm_text(n.label)}"]'
        text = " ".join(x for x in (n.label, tokens_text(n.tokens)) if x)
        shape = ("((", "))") if n.role != "sink" else ("(((", ")))")
        return f'{ids[n.id]}{shape[0]}"{_mm_text(text)}"{shape[1]}'

    for gi, g in enumerate(sc.groups):
        out.append(f'  subgraph g{gi}["{_mm_text(g)}"]')
        out += [f"    {decl(n)}" for n in sc.nodes if n.group == g]
        out.append("  end")
    out += [f"  {decl(n)}" for n in sc.nodes if n.group is None]
    back: list[int] = []
    for k, a in enumerate(sc.arcs):
        arrow = "-.->" if a.style == "dashed" else "-->"
        label = f"|{a.weight}|" if a.weight > 1 else ""
        out.append(f"  {ids[a.src]} {arrow}{label} {ids[a.dst]}")
        if a.style == "back":
            back.append(k)
    for construct, colour in COLOURS.items():
        members = [ids[n.id] for n in sc.nodes if n.construct == construct and not n.hot]
        if members and construct not in ("dependency", "net"):
            # "c_" because `end` (and `class`, `style`...) are Mermaid keywords
            out.append(f"  classDef c_{construct} stroke:{colour},stroke-width:2px")
            out.append(f"  class {','.join(members)} c_{construct}")
    hot = [ids[n.id] for n in sc.nodes if n.hot]
    if hot:
        out.append(f"  classDef c_hot stroke:{HIGHLIGHT},stroke-width:3px,color:{HIGHLIGHT}")
        out.append(f"  class {','.join(hot)} c_hot")
    if back:
        out.append(f"  linkStyle {','.join(map(str, back))} stroke:{COLOURS['loop']},stroke-width:2px")
    walked = [str(k) for k, a in enumerate(sc.arcs) if a.trail and not a.hot]
    if walked:
        out.append(f"  linkStyle {','.join(walked)} stroke:{TRAIL},stroke-width:3px")
    hot_arcs = [str(k) for k, a in enumerate(sc.arcs) if a.hot]
    if hot_arcs:
        out.append(f"  linkStyle {','.join(hot_arcs)} stroke:{HIGHLIGHT},stroke-width:3px")
    return "\n".join(out) + "\n"


# -- Graphviz DOT ----------------------------------------------------------------

def _q(s: str) -> str:
    """A DOT double-quoted string."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def tint(hex_colour: str, amount: float = 0.82) -> str:
    """A light version of a colour, for fills."""
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return "#" + "".join(f"{int(c + (255 - c) * amount):02x}" for c in (r, g, b))


def to_dot(net: PetriNet, *, highlight: Iterable[str] | None = None,
           marking: np.ndarray | Mapping[str, int] | None = None, title: str | None = None,
           trail: Iterable[str] | None = None) -> str:
    """The net as a Graphviz ``digraph`` (left to right), one ``cluster`` per workflow step.

    Node ids are the net's own ids, quoted; an arc of weight > 1 has ``label="<weight>"``.
    Resource arcs are dashed.
    """
    sc = scene(net, highlight=highlight, marking=marking, title=title, trail=trail)
    out = [f"digraph {_q(sc.name)} {{",
           '  rankdir=LR; nodesep=0.35; ranksep=0.45; fontname="Helvetica";',
           '  node [fontname="Helvetica", fontsize=10]; edge [fontname="Helvetica", fontsize=9, arrowsize=0.7];']
    if sc.title or sc.name:
        out.append(f"  labelloc=t; label={_q(sc.title or sc.name)};")

    def decl(n: SceneNode) -> str:
        colour = HIGHLIGHT if n.hot else COLOURS.get(n.construct, "#555555")
        width = "3" if n.hot else ("2.5" if n.role in ("source", "sink") or n.trail else "1.3")
        if n.kind == "transition":
            attrs = (f"shape=box, style=\"filled\", fillcolor={_q(tint(colour))}, color={_q(colour)}, "
                     f"penwidth={width}, label={_q(n.label)}")
        else:
            shape = "doublecircle" if n.role == "sink" else "circle"
            style = ", style=dashed" if n.role == "resource" else ""
            attrs = (f"shape={shape}, fixedsize=true, width=0.42, color={_q(colour)}, penwidth={width}, "
                     f"label={_q(tokens_text(n.tokens))}, xlabel={_q(n.label)}{style}")
        if n.hot:
            attrs += f", fontcolor={_q(HIGHLIGHT)}"
        return f"{_q(n.id)} [{attrs}];"

    for gi, g in enumerate(sc.groups):
        out.append(f"  subgraph {_q(f'cluster_{gi}')} {{")
        out.append(f'    label={_q(g)}; style="rounded,filled"; fillcolor="#f4f6fa"; color="#c9d2e3";')
        out += [f"    {decl(n)}" for n in sc.nodes if n.group == g]
        out.append("  }")
    out += [f"  {decl(n)}" for n in sc.nodes if n.group is None]
    for a in sc.arcs:
        attrs = []
        if a.weight > 1:
            attrs.append(f"label={_q(str(a.weight))}")
        colour = HIGHLIGHT if a.hot else TRAIL if a.trail else a.colour
        attrs.append(f"color={_q(colour)}")
        if a.style == "dashed":  # constraining keeps a resource among its users instead of off to the side
            attrs.append("style=dashed")
        elif a.style == "back":
            attrs.append("penwidth=1.6")
        if a.hot or a.trail:
            attrs.append("penwidth=2.5")
        out.append(f"  {_q(a.src)} -> {_q(a.dst)} [{', '.join(attrs)}];")
    out.append("}")
    return "\n".join(out) + "\n"
