"""Bridges from :class:`PetriNet` to networkx and SNAKES, and back from SNAKES.

networkx gets the net as a bipartite ``DiGraph`` for graph algorithms and
drawing. SNAKES is an independent Petri-net engine: besides interchange it
serves as a *differential oracle* — :func:`snakes_reachable_markings` explores
a net with SNAKES' own firing rule and ``StateGraph``, so petriflow's state
space can be checked against code it shares nothing with.

A P/T net becomes a SNAKES net of black tokens: a place with ``n`` tokens
holds ``[dot] * n``; an arc of weight 1 is ``Value(dot)`` and an arc of weight
``w > 1`` is ``MultiArc([Value(dot)] * w)``, which SNAKES consumes and produces
as ``w`` tokens at once. Both libraries are imported when first used.

One semantic gap is bridged: SNAKES never enables a transition without input
arcs, whereas in a P/T net such a transition is always enabled. Those
transitions therefore get a self-loop on one extra place, :data:`ALWAYS_PLACE`,
that holds a single token forever; :func:`from_snakes` drops it again and
:func:`snakes_reachable_markings` never reports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from petriflow.errors import BudgetExceeded, NetError
from petriflow.limits import check_matrix, failing
from petriflow.net.petrinet import PetriNet, WorkflowNet

if TYPE_CHECKING:
    import networkx as nx
    import snakes.nets

__all__ = ["ALWAYS_PLACE", "from_snakes", "snakes_reachable_markings", "to_networkx", "to_snakes"]

ALWAYS_PLACE = "_petriflow_always_"
"""The SNAKES place that lets transitions with an empty preset fire (see the module docstring)."""


def to_networkx(net: PetriNet) -> nx.DiGraph:
    """The net as a bipartite directed graph.

    Nodes are place and transition ids with ``kind`` (``"place"`` or
    ``"transition"``) and ``label``; places also carry ``tokens`` (initial
    marking). Edges carry ``weight``. For a :class:`WorkflowNet` every node
    also has ``step`` and ``construct`` (and ``role``) from its origin, and the
    graph records ``source`` and ``sink``. A place that is both input and
    output of a transition gives two opposite edges.
    """
    import networkx as nx

    graph = nx.DiGraph(name=net.name)
    origins = net.origins if isinstance(net, WorkflowNet) else None
    if isinstance(net, WorkflowNet):
        graph.graph.update(source=net.source, sink=net.sink)

    def extra(node: str) -> dict[str, Any]:
        if origins is None:
            return {}
        o = origins[node]
        return {"step": o.step, "construct": o.construct, "role": o.role}

    for i, p in enumerate(net.places):
        graph.add_node(p, kind="place", label=net.place_labels[i], tokens=int(net.initial[i]), **extra(p))
    for t, label in zip(net.transitions, net.transition_labels):
        graph.add_node(t, kind="transition", label=label, **extra(t))
    graph.add_weighted_edges_from(net.arcs())
    return graph


def to_snakes(net: PetriNet) -> snakes.nets.PetriNet:
    """The net as a SNAKES P/T net of black tokens (see the module docstring for the encoding)."""
    from snakes.nets import MultiArc, Place, Transition, Value, dot
    from snakes.nets import PetriNet as SnakesNet

    def annotation(weight: int) -> Any:
        return Value(dot) if weight == 1 else MultiArc([Value(dot)] * weight)

    snet = SnakesNet(net.name)
    for p, tokens in zip(net.places, net.initial.tolist()):
        snet.add_place(Place(p, [dot] * tokens))
    for t in net.transitions:
        snet.add_transition(Transition(t))
    unguarded = [net.transitions[i] for i in np.flatnonzero(~net.pre.any(axis=1))]
    if unguarded:
        if ALWAYS_PLACE in net.places or ALWAYS_PLACE in net.transitions:
            raise NetError(f"'{ALWAYS_PLACE}' is reserved by the SNAKES adapter", hint="rename that node")
        snet.add_place(Place(ALWAYS_PLACE, [dot]))
        for t in unguarded:
            snet.add_input(ALWAYS_PLACE, t, Value(dot))
            snet.add_output(ALWAYS_PLACE, t, Value(dot))
    places = set(net.places)
    for src, dst, weight in net.arcs():
        if src in places:
            snet.add_input(src, dst, annotation(weight))
        else:
            snet.add_output(dst, src, annotation(weight))
    return snet


def _weight(annotation: Any, where: str) -> int:
    """How many black tokens an arc annotation moves; anything else is not a P/T arc."""
    from snakes.nets import MultiArc, Value, dot

    if isinstance(annotation, Value) and annotation.value == dot:
        return 1
    if isinstance(annotation, MultiArc) and type(annotation) is MultiArc:
        return sum(_weight(c, where) for c in annotation)
    raise NetError(
        f"arc {where} is annotated {annotation!r}",
        hint="only P/T nets of black tokens convert: use Value(dot) or MultiArc of Value(dot)",
    )


def from_snakes(snet: snakes.nets.PetriNet) -> PetriNet:
    """A :class:`PetriNet` from a SNAKES net whose places hold only black tokens.

    Place and transition order follow SNAKES' insertion order; labels are the
    node names; :data:`ALWAYS_PLACE` and its arcs are dropped. Raises :class:`NetError` for coloured tokens, guards, or arcs
    that are not ``Value(dot)`` / ``MultiArc`` of them.
    """
    from snakes.nets import Expression, dot

    snakes_places = [p for p in snet.place() if p.name != ALWAYS_PLACE]
    places = [p.name for p in snakes_places]
    transitions = [t.name for t in snet.transition()]
    pix = {p: i for i, p in enumerate(places)}
    initial = np.zeros(len(places), dtype=np.int64)
    for i, place in enumerate(snakes_places):
        tokens = list(place.tokens)
        if any(tok != dot for tok in tokens):
            raise NetError(f"place '{place.name}' holds tokens other than dot", hint="only black-token nets convert")
        initial[i] = len(tokens)
    check_matrix(len(transitions), len(places), fail=failing(NetError, "SNAKES net"))
    pre = np.zeros((len(transitions), len(places)), dtype=np.int64)
    post = np.zeros_like(pre)
    for k, trans in enumerate(snet.transition()):
        if trans.guard != Expression("True"):
            raise NetError(f"transition '{trans.name}' has guard {trans.guard}", hint="only unguarded P/T nets convert")
        for place, ann in trans.input():
            if place.name != ALWAYS_PLACE:
                pre[k, pix[place.name]] += _weight(ann, f"{place.name} -> {trans.name}")
        for place, ann in trans.output():
            if place.name != ALWAYS_PLACE:
                post[k, pix[place.name]] += _weight(ann, f"{trans.name} -> {place.name}")
    return PetriNet(
        places=tuple(places), transitions=tuple(transitions), pre=pre, post=post, initial=initial, name=snet.name
    )


def snakes_reachable_markings(net: PetriNet, limit: int = 100_000) -> set[tuple[int, ...]]:
    """All reachable markings of ``net``, computed by SNAKES, as token-count tuples in ``net.places`` order.

    An oracle for petriflow's own explorer: SNAKES fires transitions with its
    own multiset semantics. It is slow (about a millisecond per marking), so
    keep nets small. Raises :class:`BudgetExceeded` once more than ``limit``
    markings are found (an unbounded net would never stop).
    """
    from snakes.nets import StateGraph

    graph = StateGraph(to_snakes(net))
    places = net.places
    found: set[tuple[int, ...]] = set()
    for state in graph:
        marking = graph[state]
        found.add(tuple(len(marking.get(p, ())) for p in places))
        if len(graph) > limit:
            raise BudgetExceeded(
                f"SNAKES found more than {limit} reachable markings", where=net.name, hint="raise the limit"
            )
    return found
