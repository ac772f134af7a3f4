"""PNML import and export of place/transition nets (ISO/IEC 15909-2, ``ptnet``).

One streaming pass of expat reads the document, so every error can name the
line it comes from and a 1.7 MB Model Checking Contest file loads in a small
fraction of a second; the arc list becomes the ``pre``/``post`` matrices with
one ``numpy.add.at`` each instead of a Python loop over matrix cells.

What is read, whatever tool wrote it (MCC, TAPAAL, PIPE, WoPeD, pm4py):

* places, transitions and arcs on any number of (nested) ``<page>`` s, with or
  without the PNML namespace; ``referencePlace``/``referenceTransition`` nodes
  are resolved to the node they stand for;
* ``<name><text>`` (or PIPE's ``<value>``) as the label, falling back to the id;
* ``<initialMarking>`` and arc ``<inscription>`` as integers (PIPE's
  ``Default,3`` too); parallel arcs between the same pair add up;
* pm4py's ``<finalmarkings>`` and petriflow's own ``<toolspecific
  tool="petriflow">`` block (final marking, and for a workflow net its source,
  sink and origins, so a lowered net comes back as the same ``WorkflowNet``);
* every other ``toolspecific`` and ``graphics`` element is skipped.

Coloured, symmetric and other high-level nets, inhibitor/reset/read arcs and
bounded place capacities change the firing rule, so they are refused with a
:class:`~petriflow.errors.PnmlError` rather than read wrongly.

The writer lives in :mod:`petriflow.net.pnml_write`; :func:`to_pnml_string`,
:func:`write_pnml` and the namespace constants are re-exported here, so
``petriflow.net.pnml`` stays the one place to import PNML support from.

>>> net = read_pnml(to_pnml_string(PetriNet.from_arcs(
...     places={"a": 2, "b": 0}, transitions=["t"], arcs=[("a", "t", 2), ("t", "b", 1)])))
>>> net.places, net.transitions, net.pre.tolist(), net.initial.tolist()
(('a', 'b'), ('t',), [[2, 0]], [2, 0])
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.parsers import expat

import numpy as np

from petriflow.errors import NetError, PnmlError, printable
from petriflow.limits import MAX_COUNT, MAX_NAME, MAX_PNML_BYTES, Fail, check_matrix, check_name, failing, read_bytes
from petriflow.net.petrinet import Origin, PetriNet, WorkflowNet
from petriflow.net.pnml_write import (
    PETRIFLOW_TOOL,
    PNML_NAMESPACE,
    PTNET_TYPE,
    to_pnml_string,
    write_pnml,
)

__all__ = ["PNML_NAMESPACE", "PTNET_TYPE", "read_pnml", "to_pnml_string", "write_pnml"]

# Net types read as P/T nets: the 2009 grammar, its core model (pm4py), the
# older Humboldt URIs (WoPeD, ProM) and PIPE/TAPAAL's "P/T net".
_PT_TYPE = re.compile(r"(ptnet|pnmlcoremodel|pt\s*net|p/t\s*net|ptNetb?)\s*$", re.IGNORECASE)
_HIGH_LEVEL = re.compile(r"symmetric|highlevel|hlpn|pt-hlpng|colou?red|cpn", re.IGNORECASE)
_NODES = frozenset({"place", "transition", "arc", "referencePlace", "referenceTransition"})
_NODE_PROPS = frozenset({"name", "initialMarking", "inscription", "capacity"})
_HL_PROPS = frozenset({"hlinitialMarking", "hlinscription", "type"})
_PLAIN_ARC_TYPES = frozenset({"", "normal", "timed", "regular"})


def _local(tag: str) -> str:
    """``prefix:name`` or ``name`` -> ``name`` (expat runs without namespace processing)."""
    return tag.rpartition(":")[2]


class _Reader:
    """An expat handler that collects the nodes of the first net, with the lines they start on.

    Each element gets a *role* from its parent's role and its own name; an
    element with no meaning for a P/T net gets role ``skip`` and so does
    everything under it, which is how graphics and foreign tool data are
    tolerated without being understood.
    """

    def __init__(self, where: str) -> None:
        self.where = where
        self.parser = expat.ParserCreate()
        self.parser.buffer_text = True
        self.parser.StartElementHandler = self.start
        self.parser.EndElementHandler = self.end
        self.parser.EntityDeclHandler = self._entity
        self.roles: list[str] = []
        self.nets = 0
        self.net_id = ""
        self.net_name: str | None = None
        # node id -> [kind, line, label, marking/weight text, source, target, extra]
        self.nodes: dict[str, list[Any]] = {}
        self.place_ids: list[str] = []
        self.transition_ids: list[str] = []
        self.arc_ids: list[str] = []
        self.refs: dict[str, tuple[str, int]] = {}
        self.final_text: dict[str, str] = {}
        self.tool: dict[str, list[dict[str, str]]] = {}
        self._node: list[Any] | None = None
        self._prop = ""
        self._fm_place = ""
        self._fm_markings = 0
        self._text: list[str] = []

    # -- errors -------------------------------------------------------------
    def fail(self, message: str, hint: str, line: int | None = None) -> PnmlError:
        line = self.parser.CurrentLineNumber if line is None else line
        return PnmlError(message, where=f"{self.where}:{line}", hint=hint)

    def failing(self, line: int) -> Fail:
        """How :mod:`petriflow.limits` reports a refusal at ``line`` of this document."""
        return failing(PnmlError, f"{self.where}:{line}")

    # -- expat callbacks ----------------------------------------------------
    def _entity(self, name: str, *_: Any) -> None:
        """No PNML tool declares entities; refusing them keeps out entity bombs and external files."""
        raise self.fail(f"the document declares the entity '{name}'", "remove the <!DOCTYPE> declarations")

    def _collect(self, data: str) -> None:
        self._text.append(data)

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        roles = self.roles
        name = _local(tag)
        parent = roles[-1] if roles else ""
        role = "skip"
        if parent == "skip":
            pass
        elif parent == "":
            if name != "pnml":
                raise self.fail(f"the root element is <{name}>, not <pnml>", "give a PNML document")
            role = "pnml"
        elif parent == "pnml":
            if name == "net":
                role = self._start_net(attrs)
        elif parent in ("net", "page"):
            if name in _NODES:
                role = self._start_node(name, attrs)
            elif name == "page":
                role = "page"
            elif parent == "net":
                if name == "name":
                    role, self._node, self._prop = "prop", None, "netname"
                elif name == "toolspecific" and attrs.get("tool") == PETRIFLOW_TOOL:
                    role = "tool"
                elif name == "finalmarkings":
                    role = "fm"
                elif name == "declaration":
                    raise self.fail("the net declares sorts or variables (a coloured net)", _UNFOLD)
        elif parent == "node":
            if name in _NODE_PROPS:
                role, self._prop = "prop", name
            elif name in _HL_PROPS:
                self._high_level_prop(name, attrs)
        elif parent == "prop":
            if name in ("text", "value"):
                role = "text"
                self._text = []
                self.parser.CharacterDataHandler = self._collect
        elif parent == "tool":
            self.tool.setdefault(name, []).append(dict(attrs))
        elif parent == "fm":
            if name == "marking":
                self._fm_markings += 1
                role = "fmm" if self._fm_markings == 1 else "skip"
        elif parent == "fmm":
            if name == "place":
                role, self._fm_place = "fmp", attrs.get("idref", "")
        elif parent == "fmp" and name == "text":
            role, self._prop, self._node = "text", "final", None
            self._text = []
            self.parser.CharacterDataHandler = self._collect
        roles.append(role)

    def end(self, tag: str) -> None:
        role = self.roles.pop()
        if role == "text":
            self.parser.CharacterDataHandler = None
            text = "".join(self._text).strip()
            if self._prop == "final":
                self.final_text[self._fm_place] = text
            elif self._prop == "netname":
                self.net_name = text
            elif self._node is not None:
                self._node[{"name": 2, "capacity": 6}.get(self._prop, 3)] = text
        elif role == "node":
            self._node = None

    # -- element handlers ---------------------------------------------------
    def _start_net(self, attrs: dict[str, str]) -> str:
        self.nets += 1
        if self.nets > 1:
            raise self.fail(
                "the document holds more than one <net>", "split it into one file per net"
            )
        net_type = attrs.get("type", "").strip()
        if net_type and (_HIGH_LEVEL.search(net_type) or not _PT_TYPE.search(net_type)):
            raise self.fail(f"net type '{net_type}' is not a place/transition net", _UNFOLD)
        self.net_id = attrs.get("id", "")
        return "net"

    def _start_node(self, kind: str, attrs: dict[str, str]) -> str:
        line = self.parser.CurrentLineNumber
        node_id = attrs.get("id")
        if not node_id:
            raise self.fail(f"<{kind}> has no id", "give every place, transition and arc an id")
        check_name(node_id, what=f"the id of a <{kind}>", fail=self.failing(line))
        if node_id in self.nodes or node_id in self.refs:
            first = self.nodes[node_id][1] if node_id in self.nodes else self.refs[node_id][1]
            raise self.fail(f"duplicate id '{node_id}' (first used on line {first})", "ids must be unique")
        if kind.startswith("reference"):
            self.refs[node_id] = (attrs.get("ref", ""), line)
            return "skip"
        # TAPAAL's own dialect carries marking and weight as attributes.
        value = attrs.get("initialMarking") or attrs.get("weight") or attrs.get("inscription")
        node = [kind, line, attrs.get("name"), value, attrs.get("source"), attrs.get("target"), None]
        if kind == "arc":
            self._check_arc_type(node_id, attrs.get("type", ""))
            self.arc_ids.append(node_id)
        else:
            (self.place_ids if kind == "place" else self.transition_ids).append(node_id)
            check_matrix(len(self.transition_ids), len(self.place_ids), fail=self.failing(line))
        self.nodes[node_id] = node
        self._node = node
        return "node"

    def _check_arc_type(self, arc_id: str, arc_type: str) -> None:
        if arc_type.strip().lower() not in _PLAIN_ARC_TYPES:
            raise self.fail(
                f"arc '{arc_id}' is a '{arc_type}' arc",
                "petriflow reads plain P/T nets; inhibitor, reset, read and transport arcs change the firing rule",
            )

    def _high_level_prop(self, name: str, attrs: dict[str, str]) -> None:
        if name == "type":  # PIPE: <type value="normal"/>; symmetric nets: <type><structure>...
            node = self._node
            if node is not None and node[0] == "arc" and "value" in attrs:
                self._check_arc_type(self.arc_ids[-1], attrs["value"])
                return
            if node is not None and node[0] == "arc" and not attrs:
                return
        raise self.fail(f"<{name}> is a high-level (coloured) annotation", _UNFOLD)

    def parse(self, data: bytes | str) -> None:
        try:
            self.parser.Parse(data, True)
        except expat.ExpatError as err:
            raise PnmlError(
                f"malformed XML: {expat.ErrorString(err.code)}",
                where=f"{self.where}:{err.lineno}:{err.offset + 1}",
                hint="fix the XML (is the file complete and well-formed?)",
            ) from None
        if self.nets == 0:
            raise PnmlError("the document has no <net>", where=self.where, hint="give a PNML document with one net")


_COUNT_HINT = f"write an integer from 0 to {MAX_COUNT}"
_UNFOLD = (
    "petriflow reads place/transition nets (type ...grammar/ptnet); "
    "unfold a coloured net first, e.g. use the MCC's -PT- instance of the model"
)


def _count(text: str | None, where: Callable[[], PnmlError]) -> int:
    """An initial marking or arc weight: ``3``, `` 3 `` or PIPE's ``Default,3``."""
    if text is None or text == "":
        return -1
    s = text.strip()
    if "," in s:
        parts = [p.strip() for p in s.split(",")]
        if len(parts) != 2:
            raise where()
        s = parts[1]
    try:
        value = int(s)
    except ValueError:
        try:
            f = float(s)
        except ValueError:
            raise where() from None
        if not f.is_integer():
            raise where() from None
        value = int(f)
    if not 0 <= value <= MAX_COUNT:  # no int64 holds 10**30; a marking that large is not a net to explore
        raise where()
    return value


def _source(path_or_text: str | bytes | os.PathLike[str]) -> tuple[bytes | str, str]:
    """The document and the name errors give for it."""
    if isinstance(path_or_text, bytes) or (isinstance(path_or_text, str) and path_or_text.lstrip().startswith("<")):
        if len(path_or_text) > MAX_PNML_BYTES:
            raise PnmlError(f"the document is larger than {MAX_PNML_BYTES // 2**20} MiB", where="<pnml string>",
                            hint="petriflow reads PNML documents up to that size")
        return path_or_text, "<pnml string>"
    path = Path(path_or_text)
    return read_bytes(path, what="PNML file", max_bytes=MAX_PNML_BYTES, fail=failing(PnmlError, str(path))), str(path)


def read_pnml(path_or_text: str | bytes | os.PathLike[str]) -> PetriNet:
    """Read a P/T net from a PNML file path, or from PNML text (a string starting with ``<``).

    Returns a :class:`WorkflowNet` when the document carries petriflow's own
    workflow block (a net written by :func:`write_pnml` from a workflow net),
    else a :class:`PetriNet`; its ``final`` marking is set when the document
    declares one (petriflow's block or pm4py's ``<finalmarkings>``).

    Raises :class:`PnmlError` naming the file and line for malformed XML,
    non-P/T nets, dangling or ill-typed arcs and bad markings or weights.
    """
    data, where = _source(path_or_text)
    reader = _Reader(where)
    reader.parse(data)
    return _build(reader)


def _resolve(reader: _Reader, node_id: str, line: int) -> str:
    """Follow ``referencePlace``/``referenceTransition`` to the node they stand for."""
    seen = set()
    while node_id in reader.refs:
        if node_id in seen:
            raise reader.fail(f"reference node '{node_id}' refers to itself in a cycle", "fix the ref attributes", line)
        seen.add(node_id)
        node_id = reader.refs[node_id][0]
    return node_id


def _build(reader: _Reader) -> PetriNet:
    nodes, where = reader.nodes, reader.where
    places, transitions = reader.place_ids, reader.transition_ids
    pix = {p: i for i, p in enumerate(places)}
    tix = {t: i for i, t in enumerate(transitions)}

    def bad(node_id: str, what: str) -> Callable[[], PnmlError]:
        line = nodes[node_id][1]
        return lambda: reader.fail(
            f"{what} of '{node_id}' is '{nodes[node_id][3]}'", _COUNT_HINT, line
        )

    initial = np.zeros(len(places), dtype=np.int64)
    for i, p in enumerate(places):
        node = nodes[p]
        initial[i] = max(_count(node[3], bad(p, "the initial marking")), 0)
        if node[6] not in (None, "") and _count(node[6], bad(p, "the capacity")) > 0:
            raise reader.fail(
                f"place '{p}' has capacity {node[6].strip()}",
                "petriflow reads unbounded P/T places; model the capacity with a complement place",
                node[1],
            )
    n_arcs = len(reader.arc_ids)
    rows = np.empty(n_arcs, dtype=np.int64)
    cols = np.empty(n_arcs, dtype=np.int64)
    weights = np.empty(n_arcs, dtype=np.int64)
    is_pre = np.empty(n_arcs, dtype=bool)
    for k, a in enumerate(reader.arc_ids):
        node = nodes[a]
        line = node[1]
        src, dst = node[4], node[5]
        if not src or not dst:
            raise reader.fail(f"arc '{a}' lacks a source or a target", "give both attributes", line)
        src, dst = _resolve(reader, src, line), _resolve(reader, dst, line)
        w = _count(node[3], bad(a, "the weight"))
        if w == 0:
            raise reader.fail(f"arc '{a}' has weight 0", "drop the arc or give it a weight >= 1", line)
        weights[k] = 1 if w < 0 else w
        if src in pix and dst in tix:
            rows[k], cols[k], is_pre[k] = tix[dst], pix[src], True
        elif src in tix and dst in pix:
            rows[k], cols[k], is_pre[k] = tix[src], pix[dst], False
        else:
            missing = [x for x in (src, dst) if x not in pix and x not in tix]
            what = f"unknown node '{missing[0]}'" if missing else "two nodes of the same kind"
            raise reader.fail(
                f"arc '{a}' ({src} -> {dst}) joins {what}",
                "every arc goes place->transition or transition->place between declared nodes",
                line,
            )
    pre = np.zeros((len(transitions), len(places)), dtype=np.int64)
    post = np.zeros_like(pre)
    np.add.at(pre, (rows[is_pre], cols[is_pre]), weights[is_pre])
    np.add.at(post, (rows[~is_pre], cols[~is_pre]), weights[~is_pre])

    final, mask = _final(reader, pix)
    fields: dict[str, Any] = {
        "places": tuple(places),
        "transitions": tuple(transitions),
        "pre": pre,
        "post": post,
        "initial": initial,
        "name": _label(reader.net_name or reader.net_id or "net"),
        "place_labels": tuple(_label(nodes[p][2] or p) for p in places),
        "transition_labels": tuple(_label(nodes[t][2] or t) for t in transitions),
        "final": final,
        "final_mask": mask,
    }
    try:
        workflow = reader.tool.get("workflow")
        if workflow:
            return WorkflowNet(**fields, **_workflow_fields(reader, workflow[0]))
        return PetriNet(**fields)
    except NetError as err:
        raise PnmlError(err.message, where=where, hint=err.hint or "fix the net in the file") from None


def _label(text: str) -> str:
    """A name for people (reports, drawings): escaped and shortened like names in messages, never refused."""
    return printable(text, limit=MAX_NAME)


def _final(reader: _Reader, pix: dict[str, int]) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The declared final marking and its mask, from petriflow's block or pm4py's ``finalmarkings``."""
    entries: dict[str, str] = {e.get("place", ""): e.get("tokens", "0") for e in reader.tool.get("final", [])}
    partial = bool(entries)
    if not entries and reader.final_text:
        entries = reader.final_text
    if not entries:
        return None, None
    final = np.zeros(len(pix), dtype=np.int64)
    mask = np.zeros(len(pix), dtype=bool) if partial else np.ones(len(pix), dtype=bool)
    for p, text in entries.items():
        if p not in pix:
            raise PnmlError(f"the final marking names unknown place '{p}'", where=reader.where, hint="fix the final marking")
        def bad(p: str = p, text: str = text) -> PnmlError:
            return PnmlError(f"the final marking of '{p}' is '{text}'", where=reader.where,
                             hint=_COUNT_HINT)

        final[pix[p]] = max(_count(text, bad), 0)
        mask[pix[p]] = True
    return final, mask


def _workflow_fields(reader: _Reader, workflow: dict[str, str]) -> dict[str, Any]:
    origins = {
        o["node"]: Origin(
            construct=o.get("construct", ""), step=o.get("step") or None, role=o.get("role", ""), detail=o.get("detail", "")
        )
        for o in reader.tool.get("origin", [])
        if "node" in o
    }
    return {
        "source": workflow.get("source", ""),
        "sink": workflow.get("sink", ""),
        "origins": origins,
        "resources": tuple(r["place"] for r in reader.tool.get("resource", []) if "place" in r),
        "budgets": tuple(b["place"] for b in reader.tool.get("budget", []) if "place" in b),
    }
