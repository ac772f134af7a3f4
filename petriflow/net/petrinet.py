"""Place/transition nets as immutable values, and the firing rule.

A :class:`PetriNet` holds its arcs as two integer matrices of shape
``(transitions, places)``: ``pre[t]`` is what transition ``t`` consumes and
``post[t]`` what it produces, so firing is one vector subtraction and one
addition. Markings are numpy integer vectors indexed like ``places``; the
net never changes, firing returns a new marking (no mutable net state, unlike
SNAKES' ``fire()``).

>>> net = PetriNet.from_arcs(places={"a": 1, "b": 0}, transitions=["t"],
...                          arcs=[("a", "t", 1), ("t", "b", 1)])
>>> net.fire(net.initial, "t").tolist()
[0, 1]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from petriflow.errors import NetError
from petriflow.limits import check_matrix, failing
from petriflow.net.sparse import SparseArcs, as_sparse
from petriflow.net.wiring import NetWiring

__all__ = ["Marking", "Origin", "PetriNet", "WorkflowNet"]

Marking = np.ndarray
"""A marking: a 1-d ``int64`` vector with one entry per place."""


def _frozen(array: Any, *, shape: tuple[int, ...], what: str) -> np.ndarray:
    if isinstance(array, SparseArcs):  # validated when built; kept as it is (see petriflow.net.sparse)
        if array.shape != shape:
            raise NetError(f"{what} has shape {array.shape}, expected {shape}")
        return array  # type: ignore[return-value]  # row reads behave as the dense matrix's
    out = np.array(array, dtype=np.int64, copy=True)
    if out.shape != shape:
        raise NetError(f"{what} has shape {out.shape}, expected {shape}")
    if (out < 0).any():
        raise NetError(f"{what} has a negative entry", hint="arc weights and markings are >= 0")
    out.flags.writeable = False
    return out


@dataclass(frozen=True, eq=False)
class PetriNet:
    """A P/T net: ids, labels, weighted arcs, an initial and an optional final marking.

    ``final`` with ``final_mask`` is a *partial* final marking: a marking ``m``
    is final when ``m[final_mask] == final[final_mask]``. Places outside the
    mask (loop and retry budgets) may hold anything. ``final`` is ``None`` for
    a net with no declared goal, where every dead marking counts as a deadlock.

    A net too big to hold densely (a lowered chain of thousands of steps)
    keeps ``pre`` and ``post`` as :class:`~petriflow.net.sparse.SparseArcs`
    (:attr:`is_sparse`): rows read as dense vectors, so firing, replaying and
    explaining work; only ``check`` explores it, after reducing it.
    """

    places: tuple[str, ...]
    transitions: tuple[str, ...]
    pre: np.ndarray
    post: np.ndarray
    initial: np.ndarray
    name: str = "net"
    place_labels: tuple[str, ...] = ()
    transition_labels: tuple[str, ...] = ()
    final: np.ndarray | None = None
    final_mask: np.ndarray | None = None
    _place_index: dict[str, int] = field(init=False, repr=False, compare=False)
    _transition_index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        P, T = len(self.places), len(self.transitions)
        set_ = object.__setattr__
        set_(self, "places", tuple(self.places))
        set_(self, "transitions", tuple(self.transitions))
        for ids, what in ((self.places, "place"), (self.transitions, "transition")):
            seen: set[str] = set()
            for i in ids:
                if i in seen:
                    raise NetError(f"duplicate {what} id '{i}'", hint="ids must be unique")
                seen.add(i)
        clash = set(self.places) & set(self.transitions)
        if clash:
            raise NetError(f"id '{sorted(clash)[0]}' names both a place and a transition")
        set_(self, "pre", _frozen(self.pre, shape=(T, P), what="pre"))
        set_(self, "post", _frozen(self.post, shape=(T, P), what="post"))
        set_(self, "initial", _frozen(self.initial, shape=(P,), what="initial marking"))
        set_(self, "place_labels", tuple(self.place_labels) or self.places)
        set_(self, "transition_labels", tuple(self.transition_labels) or self.transitions)
        if len(self.place_labels) != P or len(self.transition_labels) != T:
            raise NetError("labels must match places and transitions one to one")
        if self.final is not None:
            set_(self, "final", _frozen(self.final, shape=(P,), what="final marking"))
            mask = np.ones(P, dtype=bool) if self.final_mask is None else np.array(self.final_mask, dtype=bool)
            if mask.shape != (P,):
                raise NetError(f"final mask has shape {mask.shape}, expected {(P,)}")
            mask.flags.writeable = False
            set_(self, "final_mask", mask)
        set_(self, "_place_index", {p: i for i, p in enumerate(self.places)})
        set_(self, "_transition_index", {t: i for i, t in enumerate(self.transitions)})

    # -- construction -----------------------------------------------------
    @classmethod
    def from_arcs(
        cls,
        *,
        places: Mapping[str, int],
        transitions: Sequence[str],
        arcs: Iterable[tuple[str, str, int]],
        name: str = "net",
        place_labels: Mapping[str, str] | None = None,
        transition_labels: Mapping[str, str] | None = None,
        final: Mapping[str, int] | None = None,
    ) -> PetriNet:
        """Build a net from ``{place: initial tokens}``, transition ids and ``(src, dst, weight)`` arcs.

        Parallel arcs between the same pair add up, as in PNML.
        """
        pids = list(places)
        tids = list(transitions)
        pix = {p: i for i, p in enumerate(pids)}
        tix = {t: i for i, t in enumerate(tids)}
        check_matrix(len(tids), len(pids), fail=failing(NetError, f"net '{name}'"))
        pre = np.zeros((len(tids), len(pids)), dtype=np.int64)
        post = np.zeros_like(pre)
        for src, dst, weight in arcs:
            if src in pix and dst in tix:
                pre[tix[dst], pix[src]] += weight
            elif src in tix and dst in pix:
                post[tix[src], pix[dst]] += weight
            else:
                raise NetError(
                    f"arc {src} -> {dst} does not join a place and a transition",
                    hint="every arc goes place->transition or transition->place between declared ids",
                )
        final_vec = None
        if final is not None:
            final_vec = np.zeros(len(pids), dtype=np.int64)
            for p, n in final.items():
                if p not in pix:
                    raise NetError(f"final marking names unknown place '{p}'")
                final_vec[pix[p]] = n
        return cls(
            places=tuple(pids),
            transitions=tuple(tids),
            pre=pre,
            post=post,
            initial=np.array([places[p] for p in pids], dtype=np.int64),
            name=name,
            place_labels=tuple((place_labels or {}).get(p, p) for p in pids),
            transition_labels=tuple((transition_labels or {}).get(t, t) for t in tids),
            final=final_vec,
        )

    # -- structure ----------------------------------------------------------
    @property
    def is_sparse(self) -> bool:
        """Whether the arcs are kept as :class:`~petriflow.net.sparse.SparseArcs` (too big for dense matrices)."""
        return isinstance(self.pre, SparseArcs)

    @property
    def incidence(self) -> np.ndarray:
        """``post - pre``, shape ``(transitions, places)``: the effect of each firing."""
        effect: np.ndarray = self.post - self.pre
        return effect

    @property
    def arc_count(self) -> int:
        """Number of arcs (non-zero entries of ``pre`` and ``post``)."""
        if isinstance(self.pre, SparseArcs) and isinstance(self.post, SparseArcs):
            return self.pre.nnz + self.post.nnz
        return int(np.count_nonzero(self.pre) + np.count_nonzero(self.post))

    def place_index(self, place: str) -> int:
        try:
            return self._place_index[place]
        except KeyError:
            raise NetError(f"unknown place '{place}'", where=self.name) from None

    def transition_index(self, transition: str) -> int:
        try:
            return self._transition_index[transition]
        except KeyError:
            raise NetError(f"unknown transition '{transition}'", where=self.name) from None

    def preset(self, transition: str) -> dict[str, int]:
        """Input places of a transition with their arc weights."""
        row = self.pre[self.transition_index(transition)]
        return {self.places[i]: int(row[i]) for i in np.flatnonzero(row)}

    def postset(self, transition: str) -> dict[str, int]:
        """Output places of a transition with their arc weights."""
        row = self.post[self.transition_index(transition)]
        return {self.places[i]: int(row[i]) for i in np.flatnonzero(row)}

    def arcs(self) -> list[tuple[str, str, int]]:
        """All arcs as ``(source id, target id, weight)``."""
        out: list[tuple[str, str, int]] = []
        pre, post = as_sparse(self.pre), as_sparse(self.post)
        for t, tid in enumerate(self.transitions):
            out += [(self.places[p], tid, int(w)) for p, w in zip(*pre.row(t))]
            out += [(tid, self.places[p], int(w)) for p, w in zip(*post.row(t))]
        return out

    # -- the firing rule ----------------------------------------------------
    def marking(self, tokens: Mapping[str, int] | None = None) -> Marking:
        """A marking from ``{place: tokens}`` (others 0)."""
        m = np.zeros(len(self.places), dtype=np.int64)
        for p, n in (tokens or {}).items():
            m[self.place_index(p)] = n
        return m

    def enabled(self, marking: Marking) -> np.ndarray:
        """Boolean vector: which transitions the marking enables."""
        if isinstance(self.pre, SparseArcs):
            return self.pre.covered_by(marking)
        enabled: np.ndarray = np.all(self.pre <= marking, axis=1)
        return enabled

    def enabled_ids(self, marking: Marking) -> list[str]:
        return [self.transitions[i] for i in np.flatnonzero(self.enabled(marking))]

    def fire(self, marking: Marking, transition: str | int) -> Marking:
        """The marking after firing ``transition``; raises :class:`NetError` if it is not enabled."""
        t = transition if isinstance(transition, (int, np.integer)) else self.transition_index(transition)
        if np.any(self.pre[t] > marking):
            raise NetError(
                f"transition '{self.transitions[t]}' is not enabled in {self.describe_marking(marking)}"
            )
        after: Marking = marking - self.pre[t] + self.post[t]
        return after

    def replay(self, sequence: Iterable[str], marking: Marking | None = None) -> Marking:
        """Fire a sequence of transition ids from ``marking`` (default: the initial one)."""
        m = self.initial if marking is None else marking
        for t in sequence:
            m = self.fire(m, t)
        return m

    def is_final(self, marking: Marking) -> bool:
        """Whether ``marking`` is the declared final marking (always False when none is declared)."""
        if self.final is None:
            return False
        mask = self.final_mask
        return bool(np.array_equal(marking[mask], self.final[mask]))

    def describe_marking(self, marking: Marking) -> str:
        """``{p1: 2, p3: 1}`` using place labels; places with no token are left out."""
        parts = [f"{self.place_labels[i]}: {int(marking[i])}" for i in np.flatnonzero(marking)]
        return "{" + ", ".join(parts) + "}"

    # -- value semantics ----------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PetriNet):
            return NotImplemented
        return (
            self.places == other.places
            and self.transitions == other.transitions
            and _same_arcs(self.pre, other.pre)
            and _same_arcs(self.post, other.post)
            and np.array_equal(self.initial, other.initial)
        )

    def __hash__(self) -> int:
        return hash((self.places, self.transitions, self.arc_count, self.initial.tobytes()))


def _same_arcs(a: np.ndarray | SparseArcs, b: np.ndarray | SparseArcs) -> bool:
    """Equal arc matrices, whichever form each is kept in."""
    if isinstance(a, SparseArcs) or isinstance(b, SparseArcs):
        return as_sparse(a).same_as(as_sparse(b))
    return bool(np.array_equal(a, b))


@dataclass(frozen=True)
class Origin:
    """Where a place or transition of a lowered net comes from in the workflow, in words.

    The words are for people and drawings only (witnesses told as steps,
    labels, colours): nothing decides what a node *is* by comparing them.
    That is the typed :class:`~petriflow.net.wiring.NetWiring` the lowering
    writes next to the net (:attr:`WorkflowNet.wiring`).

    ``construct`` is one of ``step``, ``dependency``, ``route``, ``join``,
    ``loop``, ``map``, ``retry``, ``fallback``, ``resource``, ``begin``,
    ``end``; ``role`` says which part of it (``start``, ``finish``, ``fail``,
    ``budget``...); ``detail`` carries a branch label or the other step of an
    edge.
    """

    construct: str
    step: str | None = None
    role: str = ""
    detail: str = ""

    def describe(self) -> str:
        """A few words for a person: ``classify finishes choosing `code` ``."""
        s = f"`{self.step}`" if self.step else "the workflow"
        role = self.role
        if self.construct == "route" and role == "finish":
            return f"{s} finishes and chooses `{self.detail}`"
        if self.construct == "loop" and role == "back":
            return f"{s} loops back to `{self.detail}`"
        if self.construct == "loop" and role == "budget":
            return f"loop budget of {s}"
        if self.construct == "retry":
            return {"fail": f"{s} fails (or times out)", "retry": f"{s} is retried",
                    "budget": f"retry budget of {s}", "backoff": f"{s} backs off"}.get(role, f"{s} {role}")
        if self.construct == "fallback":
            return f"{s} gives up and falls back to `{self.detail}`"
        if self.construct == "map":
            return f"{s} {role} {self.detail}".strip()
        if self.construct == "dependency":
            return f"`{self.detail}` done, for {s}"
        if self.construct == "join":
            return f"one of {s}'s inputs done"
        if self.construct == "resource":
            return f"resource `{self.detail}`"
        if self.construct == "begin":
            return "the workflow starts" if role != "source" else "source"
        if self.construct == "end":
            return "the workflow ends" if role != "sink" else "sink"
        verb = {"start": "starts", "finish": "finishes", "running": "is running"}.get(role, role)
        return f"{s} {verb}".strip()


@dataclass(frozen=True, eq=False)
class WorkflowNet(PetriNet):
    """A workflow net: one source place, one sink place, and the map back to the workflow.

    ``origins`` maps every place and transition id to its :class:`Origin`
    (words for people); ``resources`` lists the shared resource places
    (capacity tokens that every case returns), ``budgets`` the loop and retry
    counter places that the final marking ignores. ``wiring`` says what each
    node is, by role, for the code that plans and simulates the net; it is
    set by :func:`~petriflow.net.lower.lower` and covers every node, and it is
    ``None`` for a net read from PNML (which stores no such records).
    """

    source: str = ""
    sink: str = ""
    origins: Mapping[str, Origin] = field(default_factory=dict)
    resources: tuple[str, ...] = ()
    budgets: tuple[str, ...] = ()
    wiring: NetWiring | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        for role, p in (("source", self.source), ("sink", self.sink)):
            if p not in self._place_index:
                raise NetError(f"workflow net {role} '{p}' is not a place")
        missing = [x for x in self.places + self.transitions if x not in self.origins]
        if missing:
            raise NetError(f"'{missing[0]}' has no origin in the workflow")
        if self.wiring is not None:
            self._check_wiring(self.wiring)

    def _check_wiring(self, wiring: NetWiring) -> None:
        """The wiring covers this net exactly: every node has one role, and it names no other node."""
        for what, ids, wired in (("transition", self.transitions, wiring.transition_roles),
                                 ("place", self.places, wiring.place_roles)):
            unwired = [x for x in ids if x not in wired]
            extra = sorted(set(wired) - set(ids))
            if unwired:
                raise NetError(f"{what} '{unwired[0]}' has no role in the wiring", where=self.name)
            if extra:
                raise NetError(f"the wiring names {what} '{extra[0]}', which the net does not have", where=self.name)
        if (wiring.source, wiring.sink) != (self.source, self.sink):
            raise NetError("the wiring's source and sink are not the net's", where=self.name)

    def require_wiring(self) -> NetWiring:
        """The typed wiring, for code that must know what each node is; a NetError for a net read from PNML."""
        if self.wiring is None:
            raise NetError(
                f"net '{self.name}' has no wiring (it was not lowered from a workflow here)",
                where=self.name,
                hint="lower the workflow with petriflow.net.lower.lower(); a net read from PNML can be checked, "
                     "not planned or simulated",
            )
        return self.wiring

    def step_of(self, node: str) -> str | None:
        """The workflow step a place or transition belongs to (None for glue)."""
        return self.origins[node].step

    def transitions_of(self, step: str) -> list[str]:
        """All transitions lowered from ``step``."""
        return [t for t in self.transitions if self.origins[t].step == step]

    def tell(self, sequence: Iterable[str]) -> list[str]:
        """A firing sequence told in workflow words, one line per transition."""
        return [self.origins[t].describe() for t in sequence]
