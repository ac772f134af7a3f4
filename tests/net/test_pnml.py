"""PNML import/export: the MCC conformance models, the dialects of other tools, errors, round trips.

The oracle for the conformance models is an independent ElementTree reader
written here (plus the place/transition counts of ``expected.csv``), not a
golden file.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import _conformance as conformance
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from petriflow.errors import NetError, PnmlError
from petriflow.net.petrinet import Origin, PetriNet, WorkflowNet
from petriflow.net.pnml import read_pnml, to_pnml_string, write_pnml

EXPECTED = {row["model"]: row for row in conformance.rows()}


def _et_oracle(path: Path) -> tuple[dict[str, int], set[str], dict[tuple[str, str], int]]:
    """An independent reader: places with markings, transitions, arcs with summed weights."""
    root = ET.parse(path).getroot()

    def local(el: ET.Element) -> str:
        return el.tag.rsplit("}", 1)[-1]

    def text_of(el: ET.Element, child: str) -> str | None:
        for c in el:
            if local(c) == child:
                for t in c:
                    if local(t) == "text":
                        return (t.text or "").strip()
        return None

    places: dict[str, int] = {}
    transitions: set[str] = set()
    arcs: dict[tuple[str, str], int] = {}
    (net,) = [c for c in root if local(c) == "net"]
    pages = [c for c in net if local(c) == "page"]
    while pages:
        page = pages.pop()
        for el in page:
            kind = local(el)
            if kind == "page":
                pages.append(el)
            elif kind == "place":
                places[el.get("id")] = int(text_of(el, "initialMarking") or 0)
            elif kind == "transition":
                transitions.add(el.get("id"))
            elif kind == "arc":
                key = (el.get("source"), el.get("target"))
                arcs[key] = arcs.get(key, 0) + int(text_of(el, "inscription") or 1)
    return places, transitions, arcs


@pytest.mark.parametrize("model", sorted(EXPECTED))
def test_conformance_model_loads_matches_oracle_and_round_trips(model: str) -> None:
    path = conformance.path(model)
    net = read_pnml(path)
    row = EXPECTED[model]
    assert len(net.places) == int(row["places"])
    assert len(net.transitions) == int(row["transitions"])

    places, transitions, arcs = _et_oracle(path)
    assert set(net.places) == set(places) and set(net.transitions) == transitions
    assert {p: int(net.initial[i]) for i, p in enumerate(net.places)} == places
    assert {(s, d): w for s, d, w in net.arcs()} == arcs

    again = read_pnml(to_pnml_string(net))
    assert again == net
    assert again.place_labels == net.place_labels and again.transition_labels == net.transition_labels
    assert again.name == net.name


def test_conformance_has_the_thirty_models() -> None:
    assert len(EXPECTED) == 30
    assert sorted(p.stem for p in conformance.DIR.glob("*.pnml")) == sorted(EXPECTED)


def test_weights_above_one_are_read() -> None:
    """README: weights up to 5 in BridgeAndVehicles and 7 in GPPP."""
    bridge = read_pnml(conformance.path("BridgeAndVehicles-PT-V04P05N02"))
    gppp = read_pnml(conformance.path("GPPP-PT-C0001N0000000001"))
    assert max(bridge.pre.max(), bridge.post.max()) == 5
    assert max(gppp.pre.max(), gppp.post.max()) == 7


# -- random nets --------------------------------------------------------------
_ID = st.text(alphabet="abcxyz019_-.", min_size=1, max_size=6)
_LABEL = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Cn", "Co")), max_size=8).map(str.strip)


@st.composite
def small_nets(draw: st.DrawFn) -> PetriNet:
    ids = draw(st.lists(_ID, min_size=1, max_size=10, unique=True))
    n_places = draw(st.integers(0, len(ids)))
    places, transitions = ids[:n_places], ids[n_places:]
    shape = (len(transitions), len(places))
    weights = st.integers(0, 4).map(lambda w: w if w <= 2 else 0)  # mostly sparse, weights up to 2
    matrix = st.lists(st.lists(weights, min_size=shape[1], max_size=shape[1]), min_size=shape[0], max_size=shape[0])
    pre = np.array(draw(matrix), dtype=np.int64).reshape(shape)
    post = np.array(draw(matrix), dtype=np.int64).reshape(shape) * draw(st.sampled_from([1, 3]))
    initial = np.array(draw(st.lists(st.integers(0, 12), min_size=len(places), max_size=len(places))), dtype=np.int64)
    place_labels = tuple(draw(_LABEL) or p for p in places)
    transition_labels = tuple(draw(_LABEL) or t for t in transitions)
    return PetriNet(
        places=tuple(places), transitions=tuple(transitions), pre=pre, post=post, initial=initial,
        name=draw(_LABEL) or "net", place_labels=place_labels, transition_labels=transition_labels,
    )


@settings(max_examples=150, deadline=None)
@given(small_nets())
def test_random_net_round_trips(net: PetriNet) -> None:
    again = read_pnml(to_pnml_string(net))
    assert again == net
    assert again.place_labels == net.place_labels
    assert again.transition_labels == net.transition_labels
    assert again.name == net.name
    assert again.final is None and type(again) is PetriNet


def test_write_pnml_writes_a_file_that_reads_back(tmp_path: Path) -> None:
    net = PetriNet.from_arcs(places={"p": 3, "q": 0}, transitions=["t"], arcs=[("p", "t", 2), ("t", "q", 5)])
    out = write_pnml(net, tmp_path / "n.pnml")
    assert out.exists() and read_pnml(out) == net
    assert read_pnml(str(out)) == net


def test_final_marking_and_workflow_net_round_trip(tmp_path: Path) -> None:
    base = PetriNet.from_arcs(
        places={"i": 1, "o": 0, "loop": 2},
        transitions=["go"],
        arcs=[("i", "go", 1), ("go", "o", 1)],
        place_labels={"i": "source & start"},
    )
    origins = {
        "i": Origin("begin", role="source"),
        "o": Origin("end", role="sink"),
        "loop": Origin("loop", step="ask", role="budget", detail='say "hi" <now>'),
        "go": Origin("step", step="ask", role="start"),
    }
    wf = WorkflowNet(
        places=base.places, transitions=base.transitions, pre=base.pre, post=base.post, initial=base.initial,
        name="wf", place_labels=base.place_labels, final=np.array([0, 1, 0]), final_mask=np.array([True, True, False]),
        source="i", sink="o", origins=origins, resources=(), budgets=("loop",),
    )
    again = read_pnml(write_pnml(wf, tmp_path / "wf.pnml"))
    assert isinstance(again, WorkflowNet) and again == wf
    assert (again.source, again.sink, again.budgets, again.resources) == ("i", "o", ("loop",), ())
    assert dict(again.origins) == origins
    assert again.final.tolist() == [0, 1, 0] and again.final_mask.tolist() == [True, True, False]
    assert again.is_final(np.array([0, 1, 7])) and not again.is_final(np.array([1, 1, 0]))


# -- dialects -----------------------------------------------------------------
def test_unnamespaced_nested_pages_references_and_skipped_tool_data() -> None:
    doc = """<?xml version="1.0"?>
<pnml>
  <net id="n" type="http://www.pnml.org/version-2009/grammar/ptnet">
    <toolspecific tool="other"><place id="ghost"/><arc id="g" source="x" target="y"/></toolspecific>
    <page id="top">
      <place id="p"><name><text>P one</text><graphics><offset x="1" y="2"/></graphics></name>
        <graphics><position x="1" y="1"/></graphics>
        <initialMarking><text> 4 </text></initialMarking></place>
      <page id="inner">
        <transition id="t"><toolspecific tool="nupn"><unit id="u"/></toolspecific></transition>
        <referencePlace id="rp" ref="p"/>
        <place id="q"/>
        <arc id="a1" source="rp" target="t"><inscription><text>2</text></inscription></arc>
        <arc id="a2" source="t" target="q"/>
        <arc id="a3" source="p" target="t"/>
      </page>
    </page>
  </net>
</pnml>"""
    net = read_pnml(doc)
    assert net.places == ("p", "q") and net.transitions == ("t",)
    assert net.place_labels == ("P one", "q")
    assert net.initial.tolist() == [4, 0]
    assert net.preset("t") == {"p": 3} and net.postset("t") == {"q": 1}  # parallel arcs add up


def test_prefixed_namespace() -> None:
    doc = """<p:pnml xmlns:p="http://www.pnml.org/version-2009/grammar/pnml">
      <p:net id="n" type="http://www.pnml.org/version-2009/grammar/ptnet"><p:page id="pg">
        <p:place id="a"><p:initialMarking><p:text>1</p:text></p:initialMarking></p:place>
        <p:transition id="t"/><p:arc id="x" source="a" target="t"/>
      </p:page></p:net></p:pnml>"""
    net = read_pnml(doc.encode())
    assert net.pre.tolist() == [[1]] and net.initial.tolist() == [1]


def test_pipe_dialect() -> None:
    doc = """<?xml version="1.0" encoding="ISO-8859-1"?><pnml>
<net id="Net-One" type="P/T net">
<token id="Default" enabled="true" red="0" green="0" blue="0"/>
<place id="P0"><graphics><position x="1" y="2"/></graphics><name><value>P0</value><graphics/></name>
<initialMarking><value>Default,2</value><graphics/></initialMarking><capacity><value>0</value></capacity></place>
<place id="P1"><name><value>P1</value></name><initialMarking><value>Default,0</value></initialMarking></place>
<transition id="T0"><name><value>T0</value></name><orientation><value>0</value></orientation>
<rate><value>1.0</value></rate><timed><value>false</value></timed></transition>
<arc id="P0 to T0" source="P0" target="T0"><graphics/><inscription><value>Default,2</value><graphics/></inscription>
<tagged><value>false</value></tagged><arcpath id="000" x="1" y="2" curvePoint="false"/><type value="normal"/></arc>
<arc id="T0 to P1" source="T0" target="P1"><inscription><value>Default,1</value></inscription><type value="normal"/></arc>
</net></pnml>"""
    net = read_pnml(doc)
    assert net.initial.tolist() == [2, 0] and net.preset("T0") == {"P0": 2} and net.postset("T0") == {"P1": 1}


def test_pm4py_dialect_with_final_marking() -> None:
    doc = """<?xml version='1.0' encoding='UTF-8'?>
<pnml><net id="net1" type="http://www.pnml.org/version-2009/grammar/pnmlcoremodel">
  <name><text>model</text></name>
  <page id="n0">
    <place id="source"><name><text>source</text></name><initialMarking><text>1</text></initialMarking></place>
    <place id="sink"><name><text>sink</text></name></place>
    <transition id="t1"><name><text>A</text></name></transition>
    <transition id="t2"><name><text>tau</text></name>
      <toolspecific tool="ProM" version="6.4" activity="$invisible$" localNodeID="x"/></transition>
    <arc id="1" source="source" target="t1"/><arc id="2" source="t1" target="sink"/>
    <arc id="3" source="sink" target="t2"/><arc id="4" source="t2" target="sink"/>
  </page>
  <finalmarkings><marking><place idref="sink"><text>1</text></place></marking></finalmarkings>
</net></pnml>"""
    net = read_pnml(doc)
    assert net.name == "model" and net.transition_labels == ("A", "tau")
    assert net.final is not None and net.final.tolist() == [0, 1]
    assert net.is_final(np.array([0, 1])) and not net.is_final(np.array([1, 1]))


def test_woped_type_uri_is_a_pt_net() -> None:
    doc = """<pnml><net id="n" type="http://www.informatik.hu-berlin.de/top/pntd/ptNetb">
      <place id="p1"><initialMarking><text>1</text></initialMarking></place></net></pnml>"""
    assert read_pnml(doc).initial.tolist() == [1]


# -- errors -------------------------------------------------------------------
def _error(doc: str, tmp_path: Path) -> PnmlError:
    path = tmp_path / "bad.pnml"
    path.write_text(doc)
    with pytest.raises(PnmlError) as info:
        read_pnml(path)
    assert str(path) in str(info.value)
    assert info.value.hint
    return info.value


def _net(body: str, net_type: str = "http://www.pnml.org/version-2009/grammar/ptnet") -> str:
    return f'<pnml>\n<net id="n" type="{net_type}"><page id="g">\n{body}\n</page></net>\n</pnml>\n'


def test_malformed_xml_names_line(tmp_path: Path) -> None:
    err = _error("<pnml>\n<net id='n'>\n<place id='p'>\n</net></pnml>", tmp_path)
    assert ":4:" in err.where and "malformed" in err.message


def test_symmetric_net_is_refused(tmp_path: Path) -> None:
    err = _error(_net("", "http://www.pnml.org/version-2009/grammar/symmetricnet"), tmp_path)
    assert "not a place/transition net" in err.message and "unfold" in err.hint


def test_high_level_marking_is_refused(tmp_path: Path) -> None:
    err = _error(_net('<place id="p"><hlinitialMarking><text>1</text></hlinitialMarking></place>', ""), tmp_path)
    assert "coloured" in err.message and err.where.endswith(":3")


@pytest.mark.parametrize(
    "arc",
    ['<arc id="a" source="p" target="t" type="inhibitor"/>', '<arc id="a" source="p" target="t"><type value="reset"/></arc>'],
)
def test_special_arcs_are_refused(tmp_path: Path, arc: str) -> None:
    err = _error(_net(f'<place id="p"/><transition id="t"/>\n{arc}'), tmp_path)
    assert "arc 'a'" in err.message and err.where.endswith(":4")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('<place id="p"/>\n<arc id="a" source="p" target="nowhere"/>', "unknown node 'nowhere'"),
        ('<place id="p"/><place id="q"/>\n<arc id="a" source="p" target="q"/>', "two nodes of the same kind"),
        ('<place id="p"/>\n<transition id="p"/>', "duplicate id 'p'"),
        ('<place id="p"/><transition id="t"/>\n<arc id="a" source="p" target="t"><inscription><text>x</text></inscription></arc>',
         "the weight of 'a' is 'x'"),
        ('<place id="p"/><transition id="t"/>\n<arc id="a" source="p" target="t"><inscription><text>0</text></inscription></arc>',
         "weight 0"),
        ('<place id="p"/>\n<place id="q"><initialMarking><text>-1</text></initialMarking></place>', "initial marking of 'q'"),
        ('<place id="p"/>\n<place id="q"><capacity><text>3</text></capacity></place>', "capacity 3"),
        ('<place id="p"/>\n<place/>', "has no id"),
    ],
)
def test_bad_nets_name_the_line(tmp_path: Path, body: str, message: str) -> None:
    err = _error(_net(body), tmp_path)
    assert message in err.message
    assert err.where.endswith(":4"), err.where


def test_document_level_errors(tmp_path: Path) -> None:
    assert "not <pnml>" in _error("<net id='n'/>", tmp_path).message
    assert "no <net>" in _error("<pnml></pnml>", tmp_path).message
    assert "more than one" in _error("<pnml><net id='a'/><net id='b'/></pnml>", tmp_path).message
    with pytest.raises(PnmlError, match="cannot read"):
        read_pnml(tmp_path / "missing.pnml")


def test_bad_petriflow_block_is_a_pnml_error(tmp_path: Path) -> None:
    """A NetError while building the net surfaces as a PnmlError (exit code 2) naming the file."""
    doc = """<pnml><net id="n" type="http://www.pnml.org/version-2009/grammar/ptnet">
      <toolspecific tool="petriflow" version="1"><workflow source="i" sink="nowhere"/></toolspecific>
      <page id="g"><place id="i"/></page></net></pnml>"""
    err = _error(doc, tmp_path)
    assert "nowhere" in err.message and err.exit_code == 2 and not isinstance(err, NetError)


@pytest.mark.parametrize("model", ["qa_router.yaml", "qa_router_broken.yaml"])
def test_lowered_workflow_round_trips_as_the_same_workflow_net(model: str) -> None:
    from petriflow.net.lower import lower
    from petriflow.spec import load

    wf = lower(load(Path(__file__).resolve().parents[2] / "models" / model))
    again = read_pnml(to_pnml_string(wf))
    assert isinstance(again, WorkflowNet) and again == wf
    assert dict(again.origins) == dict(wf.origins)
    assert (again.source, again.sink, again.resources, again.budgets) == (wf.source, wf.sink, wf.resources, wf.budgets)
    assert np.array_equal(again.final, wf.final) and np.array_equal(again.final_mask, wf.final_mask)
    assert again.place_labels == wf.place_labels and again.transition_labels == wf.transition_labels
