"""Drawings: every place, transition and arc is in the picture, once, with its weight.

Text outputs are parsed back (a small Mermaid reader, a small DOT reader) and
compared with the net itself, not with golden strings; pictures are checked
for being real files (PNG magic bytes, SVG that parses as XML); the layout is
checked for what makes it readable (no two nodes overlap, no two step boxes
overlap, flow runs from left to right).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from petriflow.errors import InputError
from petriflow.net.lower import lower
from petriflow.net.petrinet import PetriNet, WorkflowNet
from petriflow.spec import load, loads
from petriflow.viz import SUFFIXES, draw, to_dot, to_mermaid
from petriflow.viz.layout import TH, R, box, layered_layout
from petriflow.viz.text import HIGHLIGHT, TRAIL, scene, tokens_text

MODELS = Path(__file__).resolve().parents[2] / "models"

KITCHEN = """
name: kitchen_sink
resources:
  gpu: {capacity: 2}
steps:
  - {id: fetch, kind: tool}
  - {id: split, kind: python, after: [fetch]}
  - {id: embed, kind: embed, after: [split], map: {over: split, max: 3}, uses: [gpu]}
  - {id: draft, kind: chat, after: [embed], uses: [gpu], retry: {max_attempts: 3}, fallback: backup}
  - {id: backup, kind: chat}
  - {id: review, kind: chat, after: [draft], loop: {to: draft, max: 2}}
  - id: triage
    kind: classify
    after: [review]
    route: [{to: publish, p: 0.7, when: ok}, {to: escalate, p: 0.3, when: risky}]
  - {id: publish, kind: python}
  - {id: escalate, kind: human}
  - {id: notify, kind: tool, after_any: [publish, escalate]}
"""


# -- nets ----------------------------------------------------------------------------

def tiny() -> PetriNet:
    """Weights 2 and 3, a pair of opposite arcs, tokens 0, 1, 5."""
    return PetriNet.from_arcs(
        places={"a": 1, "b": 0, "c": 5}, transitions=["t1", "t2"],
        arcs=[("a", "t1", 1), ("t1", "b", 2), ("b", "t2", 2), ("t2", "a", 1), ("c", "t1", 3), ("t1", "c", 3)],
        name="tiny")


def ring(n: int = 200) -> PetriNet:
    """A ring of n places and n transitions with chords: 2n nodes, cycles everywhere."""
    places = {f"p{i}": (1 if i % 17 == 0 else 0) for i in range(n)}
    arcs = [(f"p{i}", f"t{i}", 1) for i in range(n)]
    arcs += [(f"t{i}", f"p{(i + 1) % n}", 1 + (i % 3 == 0)) for i in range(n)]
    arcs += [(f"t{i}", f"p{(i * 7 + 3) % n}", 1) for i in range(0, n, 5)]
    return PetriNet.from_arcs(places=places, transitions=[f"t{i}" for i in range(n)], arcs=arcs, name="ring")


def qa(broken: bool = False) -> WorkflowNet:
    return lower(load(MODELS / ("qa_router_broken.yaml" if broken else "qa_router.yaml")))


def wide_workflow(k: int = 45) -> WorkflowNet:
    """k parallel steps with retries sharing one resource: about 9k nodes."""
    steps = ["  - {id: src, kind: python}"]
    steps += [f"  - {{id: w{i}, kind: chat, after: [src], uses: [llm], retry: {{max_attempts: 2}}}}" for i in range(k)]
    steps.append(f"  - {{id: join, kind: python, after: [{', '.join(f'w{i}' for i in range(k))}]}}")
    return lower(loads("name: wide\nresources:\n  llm: {capacity: 4}\nsteps:\n" + "\n".join(steps) + "\n"))


def arcs_of(net: PetriNet) -> Counter[tuple[str, str, int]]:
    return Counter(net.arcs())


# -- readers -------------------------------------------------------------------------

NODE_MM = re.compile(r'^\s*([pt])(\d+)(?:_\w*)?(\(\(\(|\(\(|\[)"([^"]*)"(\)\)\)|\)\)|\])\s*$')
EDGE_MM = re.compile(r"^\s*([pt])(\d+)(?:_\w*)? (-->|-\.->)(?:\|(\d+)\|)? ([pt])(\d+)(?:_\w*)?\s*$")


def read_mermaid(text: str, net: PetriNet) -> tuple[Counter[str], Counter[tuple[str, str, int]], dict[str, str]]:
    """Declared nodes (net ids), edges with weights, and the subgraph each node sits in."""
    ids = {"p": net.places, "t": net.transitions}
    nodes: Counter[str] = Counter()
    edges: Counter[tuple[str, str, int]] = Counter()
    where: dict[str, str] = {}
    lines = text.splitlines()
    assert "flowchart LR" in lines
    current = None
    for line in lines:
        if m := re.match(r'^\s*subgraph \w+\["([^"]*)"\]\s*$', line):
            assert current is None, "nested subgraph"
            current = m.group(1)
        elif line.strip() == "end":
            assert current is not None
            current = None
        elif m := NODE_MM.match(line):
            node = ids[m.group(1)][int(m.group(2))]
            nodes[node] += 1
            if current is not None:
                where[node] = current
        elif m := EDGE_MM.match(line):
            src, dst = ids[m.group(1)][int(m.group(2))], ids[m.group(5)][int(m.group(6))]
            edges[(src, dst, int(m.group(4) or 1))] += 1
    assert current is None, "unclosed subgraph"
    return nodes, edges, where


DOT_TOKEN = re.compile(r'\s*(?:("(?:[^"\\]|\\.)*")|(->)|([{}\[\];=,])|([A-Za-z0-9_.#]+))')


def _dot_tokens(text: str) -> list[str]:
    out, i = [], 0
    while i < len(text):
        m = DOT_TOKEN.match(text, i)
        if m is None or m.end() == i:
            if text[i:].strip() == "":
                break
            raise AssertionError(f"DOT cannot be tokenised at {text[i:i + 30]!r}")
        out.append(next(g for g in m.groups() if g is not None))
        i = m.end()
    return out


def _unquote(tok: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), tok[1:-1]) if tok[:1] == '"' else tok


def read_dot(text: str) -> tuple[dict[str, dict[str, str]], list[tuple[str, str, dict[str, str]]]]:
    """Nodes with attributes, edges with attributes; asserts the syntax along the way."""
    toks = _dot_tokens(text)
    nodes: dict[str, dict[str, str]] = {}
    edges: list[tuple[str, str, dict[str, str]]] = []
    depth, i = 0, 0

    def attrs(j: int) -> tuple[dict[str, str], int]:
        out: dict[str, str] = {}
        if j < len(toks) and toks[j] == "[":
            j += 1
            while toks[j] != "]":
                key, eq, value = toks[j], toks[j + 1], toks[j + 2]
                assert eq == "=", f"attribute {key} without '='"
                out[_unquote(key)] = _unquote(value)
                j += 3
                if toks[j] == ",":
                    j += 1
            j += 1
        return out, j

    assert toks[:1] == ["digraph"]
    while i < len(toks):
        tok = toks[i]
        if tok in ("digraph", "subgraph"):
            assert toks[i + 2] == "{"
            depth, i = depth + 1, i + 3
        elif tok == "}":
            depth, i = depth - 1, i + 1
            assert depth >= 0, "unbalanced '}'"
        elif tok == ";":
            i += 1
        elif tok in ("node", "edge", "graph"):
            _, i = attrs(i + 1)
        elif i + 1 < len(toks) and toks[i + 1] == "=":
            i += 3
        elif i + 1 < len(toks) and toks[i + 1] == "->":
            src, dst = _unquote(tok), _unquote(toks[i + 2])
            a, i = attrs(i + 3)
            edges.append((src, dst, a))
        else:
            name = _unquote(tok)
            assert name not in nodes, f"node {name} declared twice"
            nodes[name], i = attrs(i + 1)
    assert depth == 0, "unbalanced braces"
    return nodes, edges


def dot_arcs(edges: list[tuple[str, str, dict[str, str]]]) -> Counter[tuple[str, str, int]]:
    return Counter((s, d, int(a.get("label", "1"))) for s, d, a in edges)


# -- Mermaid ---------------------------------------------------------------------------

@pytest.mark.parametrize("make", [tiny, qa, lambda: qa(True), lambda: lower(loads(KITCHEN)), ring])
def test_mermaid_has_every_node_once_and_every_arc_with_its_weight(make) -> None:
    net = make()
    nodes, edges, _ = read_mermaid(to_mermaid(net), net)
    assert nodes == Counter(net.places + net.transitions)
    assert edges == arcs_of(net)


def test_mermaid_puts_each_step_in_its_own_subgraph() -> None:
    net = qa()
    _, _, where = read_mermaid(to_mermaid(net), net)
    for step in ("classify", "general", "code", "retrieve", "search", "aggregate"):
        for t in net.transitions_of(step):
            assert where[t] == step
    assert "source" not in where and "sink" not in where and "res.llm" not in where


def test_mermaid_classes_are_not_keywords_and_highlight_is_exact() -> None:
    net = qa(True)
    hot = {"aggregate.start", "code.to.aggregate"}
    text = to_mermaid(net, highlight=hot)
    assert not re.search(r"^\s*classDef end\b", text, re.M)  # `end` would close a subgraph
    hot_line = next(line for line in text.splitlines() if line.strip().startswith("class ") and line.endswith(" c_hot"))
    members = hot_line.strip().split(" ")[1].split(",")
    assert len(members) == 2
    assert {net.transitions[int(m[1:].split("_")[0])] if m[0] == "t" else net.places[int(m[1:].split("_")[0])]
            for m in members} == hot


# -- DOT -------------------------------------------------------------------------------

@pytest.mark.parametrize("make", [tiny, qa, lambda: qa(True), lambda: lower(loads(KITCHEN)), ring])
def test_dot_declares_every_node_once_and_edges_only_between_them(make) -> None:
    net = make()
    nodes, edges = read_dot(to_dot(net))
    assert set(nodes) == set(net.places) | set(net.transitions) and len(nodes) == len(net.places) + len(net.transitions)
    assert all(s in nodes and d in nodes for s, d, _ in edges)
    assert dot_arcs(edges) == arcs_of(net)
    assert {v for v, a in nodes.items() if a["shape"] == "box"} == set(net.transitions)


def test_dot_shows_the_given_marking_and_paints_exactly_the_highlight() -> None:
    net = qa(True)
    stuck = net.replay(["begin", "classify.start", "classify.choose.code", "code.start", "code.finish"])
    hot = {"aggregate.start", "general.to.aggregate", "search.to.aggregate", "code.to.aggregate"}
    nodes, edges = read_dot(to_dot(net, marking=stuck, highlight=hot, title="deadlock"))
    for i, p in enumerate(net.places):
        assert nodes[p]["label"] == tokens_text(int(stuck[i]))
    assert {v for v, a in nodes.items() if a.get("color") == HIGHLIGHT} == hot
    assert {(s, d) for s, d, a in edges if a.get("color") == HIGHLIGHT} == {
        (p, "aggregate.start") for p in hot - {"aggregate.start"}}


def test_dot_escapes_awkward_ids() -> None:
    net = PetriNet.from_arcs(places={'say "hi"': 1, "back\\slash": 0, "end": 2}, transitions=["a -> b", "{x}"],
                             arcs=[('say "hi"', "a -> b", 2), ("a -> b", "back\\slash", 1), ("end", "{x}", 1),
                                   ("{x}", 'say "hi"', 1)])
    nodes, edges = read_dot(to_dot(net))
    assert set(nodes) == set(net.places + net.transitions)
    assert dot_arcs(edges) == arcs_of(net)
    mm_nodes, mm_edges, _ = read_mermaid(to_mermaid(net), net)
    assert mm_nodes == Counter(net.places + net.transitions) and mm_edges == arcs_of(net)


ids = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=8)


@st.composite
def nets(draw: st.DrawFn) -> PetriNet:
    names = draw(st.lists(ids, min_size=2, max_size=10, unique=True))
    cut = draw(st.integers(1, len(names) - 1))
    places, transitions = names[:cut], names[cut:]
    pre = draw(st.lists(st.lists(st.integers(0, 3), min_size=len(places), max_size=len(places)),
                        min_size=len(transitions), max_size=len(transitions)))
    post = draw(st.lists(st.lists(st.integers(0, 3), min_size=len(places), max_size=len(places)),
                         min_size=len(transitions), max_size=len(transitions)))
    marks = draw(st.lists(st.integers(0, 6), min_size=len(places), max_size=len(places)))
    return PetriNet(places=tuple(places), transitions=tuple(transitions), pre=np.array(pre), post=np.array(post),
                    initial=np.array(marks), name=draw(ids))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nets())
def test_any_net_reads_back_from_both_text_formats(net: PetriNet) -> None:
    nodes, edges = read_dot(to_dot(net))
    assert len(nodes) == len(net.places) + len(net.transitions) and dot_arcs(edges) == arcs_of(net)
    for i, p in enumerate(net.places):
        assert nodes[p]["label"] == tokens_text(int(net.initial[i]))
    mm_nodes, mm_edges, _ = read_mermaid(to_mermaid(net), net)
    assert mm_nodes == Counter(net.places + net.transitions) and mm_edges == arcs_of(net)


# -- labels ------------------------------------------------------------------------------

def test_workflow_labels_speak_in_steps() -> None:
    sc = scene(lower(loads(KITCHEN)))
    assert sc.node("triage.choose.risky").label == "triage → risky"
    assert sc.node("review.loop").label == "review ↺ draft"
    assert sc.node("draft.give_up").label == "draft ⇢ backup"
    assert sc.node("draft.start").label == "draft ▸ start" and sc.node("draft.start").short == "start"
    assert sc.node("res.gpu").role == "resource" and sc.node("res.gpu").group is None
    assert sc.node("source").role == "source" and sc.node("sink").role == "sink"
    assert sc.groups[:3] == ("fetch", "split", "embed")
    assert tokens_text(0) == "" and tokens_text(3) == "●●●" and tokens_text(4) == "4"


# -- layout ------------------------------------------------------------------------------

def _rect(lay, v: str) -> tuple[float, float, float, float]:
    (x, y), (w, h) = lay.pos[v], lay.size[v]
    top = y - (TH / 2 if lay.kinds.get(v) == "transition" else R)
    return x - w / 2, top, x + w / 2, top + h


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] - 1e-6 and b[0] < a[2] - 1e-6 and a[1] < b[3] - 1e-6 and b[1] < a[3] - 1e-6


@pytest.mark.parametrize("make", [qa, lambda: qa(True), lambda: lower(loads(KITCHEN))])
def test_layout_keeps_nodes_and_step_boxes_apart_and_flows_left_to_right(make) -> None:
    net = make()
    sc = scene(net)
    lay = layered_layout(sc, workflow=True)
    drawn = list(lay.pos)
    rects = {v: _rect(lay, v) for v in drawn}
    clashes = [(u, v) for i, u in enumerate(drawn) for v in drawn[i + 1:] if _overlap(rects[u], rects[v])]
    assert not clashes
    owner = {n.id: n.group for n in sc.nodes if n.id in lay.pos}
    owner.update({c: c.split("\1")[2] for c in lay.copies})
    boxes = {g: box([v for v, o in owner.items() if o == g], lay) for g in sc.groups}
    assert not [(g, h) for i, g in enumerate(sc.groups) for h in sc.groups[i + 1:] if _overlap(boxes[g], boxes[h])]
    xs = {v: p[0] for v, p in lay.pos.items()}
    assert xs["source"] == min(xs.values()) and xs["sink"] == max(xs.values())
    # every arc of a step-to-step dependency runs left to right
    for p in net.places:
        if net.origins[p].construct == "dependency":
            assert all(xs[t] < xs[p] for t in net.transitions if net.postset(t).get(p))
            assert all(xs[p] < xs[t] for t in net.transitions if net.preset(t).get(p))


def test_a_resource_is_drawn_once_per_step_that_uses_it() -> None:
    net = qa()
    lay = layered_layout(scene(net), workflow=True)
    assert "res.llm" not in lay.pos
    assert sorted(c.split("\1")[2] for c in lay.copies) == ["code", "general", "search"]


# -- pictures ----------------------------------------------------------------------------

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _valid(path: Path) -> None:
    data = path.read_bytes()
    assert len(data) > 1000
    if path.suffix == ".png":
        assert data[:8] == PNG_MAGIC
    else:
        root = ET.fromstring(data)
        assert root.tag.endswith("svg")


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_small_pictures_are_real_files(tmp_path: Path, suffix: str) -> None:
    for name, net in (("tiny", tiny()), ("qa", qa()), ("kitchen", lower(loads(KITCHEN)))):
        out = draw(net, tmp_path / f"{name}{suffix}", highlight={net.transitions[0]}, title="a title")
        _valid(out)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_big_nets_are_sketched_not_stuck(tmp_path: Path, suffix: str) -> None:
    big_ring, big_wf = ring(200), wide_workflow(45)
    assert len(big_ring.places) + len(big_ring.transitions) == 400
    assert len(big_wf.places) + len(big_wf.transitions) > 400
    _valid(draw(big_ring, tmp_path / f"ring{suffix}"))
    _valid(draw(big_wf, tmp_path / f"wide{suffix}", highlight={"join.start"}))


def test_text_files_are_written_by_suffix(tmp_path: Path) -> None:
    net = qa()
    mmd, dot = draw(net, tmp_path / "n.mmd"), draw(net, tmp_path / "N.DOT")
    assert mmd.read_text(encoding="utf-8") == to_mermaid(net)
    assert dot.read_text(encoding="utf-8") == to_dot(net)


# -- errors ------------------------------------------------------------------------------

def test_unknown_suffix_names_the_ones_that_work(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        draw(tiny(), tmp_path / "net.pdf")
    assert ".pdf" in str(err.value) and all(s in str(err.value) for s in SUFFIXES)
    assert not (tmp_path / "net.pdf").exists()


def test_bad_arguments_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="nowhere"):
        draw(tiny(), tmp_path / "x.dot", highlight={"nowhere"})
    with pytest.raises(InputError, match="PetriNet"):
        draw("not a net", tmp_path / "x.dot")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="cannot write"):
        draw(tiny(), tmp_path / "missing" / "x.mmd")
    with pytest.raises(InputError, match="cannot write"):
        draw(tiny(), tmp_path / "missing" / "x.png")
    with pytest.raises(InputError, match="marking"):
        draw(tiny(), tmp_path / "x.dot", marking=np.array([1, 2]))


def test_importing_viz_does_not_import_matplotlib() -> None:
    code = "import sys, petriflow.viz; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` is not installed")
@pytest.mark.parametrize("make", [tiny, lambda: qa(True), lambda: lower(loads(KITCHEN))])
def test_graphviz_itself_reads_the_dot(tmp_path: Path, make) -> None:
    """The independent oracle, where Graphviz is installed: it renders every node and every arc."""
    net = make()
    out = subprocess.run(["dot", "-Tsvg"], input=to_dot(net), capture_output=True, text=True, check=True)
    root = ET.fromstring(out.stdout)
    ns = {"s": "http://www.w3.org/2000/svg"}
    groups = root.findall(".//s:g", ns)
    titles = Counter((g.get("class"), g.findtext("s:title", namespaces=ns)) for g in groups)
    assert Counter(t for (c, t) in titles.elements() if c == "node") == Counter(net.places + net.transitions)
    assert sum(n for (c, _), n in titles.items() if c == "edge") == len(net.arcs())


def test_a_trail_is_drawn_bold_on_exactly_the_arcs_of_the_fired_transitions() -> None:
    net = qa(True)
    trace = ["begin", "classify.start", "classify.choose.code", "code.start", "code.finish"]
    nodes, edges = read_dot(to_dot(net, trail=trace, marking=net.replay(trace)))
    bold = {(s, d) for s, d, a in edges if a.get("color") == TRAIL and a.get("penwidth") == "2.5"}
    assert bold == {(s, d) for s, d, _ in net.arcs() if s in trace or d in trace}
    assert {v for v, a in nodes.items() if a["shape"] == "box" and a["penwidth"] == "2.5"} == set(trace)
    with pytest.raises(InputError, match="trail"):
        to_dot(net, trail=["source"])  # a place, not a transition
    _, mm_edges, _ = read_mermaid(to_mermaid(net, trail=trace), net)
    assert mm_edges == arcs_of(net)
