"""PNML export of place/transition nets (ISO/IEC 15909-2, ``ptnet``); the reader is :mod:`petriflow.net.pnml`.

The document is written as strings in one pass (no DOM), on one page, with
only what differs from the PNML defaults; a final marking and a workflow net's
source, sink, resources, budgets and origins go in a ``toolspecific`` block
that other tools skip and :func:`~petriflow.net.pnml.read_pnml` restores, so a
lowered net round-trips as the same ``WorkflowNet``. Kept apart from the
reader because the two share nothing but the namespace and the tool name.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from petriflow.errors import PnmlError
from petriflow.net.petrinet import PetriNet, WorkflowNet

__all__ = ["PETRIFLOW_TOOL", "PNML_NAMESPACE", "PTNET_TYPE", "to_pnml_string", "write_pnml"]

PNML_NAMESPACE = "http://www.pnml.org/version-2009/grammar/pnml"
PTNET_TYPE = "http://www.pnml.org/version-2009/grammar/ptnet"
PETRIFLOW_TOOL = "petriflow"  # the ``tool`` of petriflow's own ``toolspecific`` block


def _arc_ids(net: PetriNet) -> Callable[[], str]:
    taken = set(net.places) | set(net.transitions)
    prefix = "a"
    while any(x.startswith(prefix) and x[len(prefix):].isdigit() for x in taken):
        prefix += "a"
    counter = iter(range(1, 1 << 62))
    return lambda: f"{prefix}{next(counter)}"


def _named(kind: str, node_id: str, label: str, extra: str = "") -> str:
    return (
        f"      <{kind} id={quoteattr(node_id)}>\n"
        f"        <name><text>{escape(label)}</text></name>\n{extra}"
        f"      </{kind}>\n"
    )


def _tool_block(net: PetriNet) -> list[str]:
    """petriflow's own data, which other tools skip: final marking, workflow source, sink and origins."""
    if net.final is None and not isinstance(net, WorkflowNet):
        return []
    out = [f'    <toolspecific tool="{PETRIFLOW_TOOL}" version="1">\n']
    if net.final is not None:
        assert net.final_mask is not None
        for i in np.flatnonzero(net.final_mask):
            out.append(f"      <final place={quoteattr(net.places[i])} tokens=\"{int(net.final[i])}\"/>\n")
    if isinstance(net, WorkflowNet):
        out.append(f"      <workflow source={quoteattr(net.source)} sink={quoteattr(net.sink)}/>\n")
        out += [f"      <resource place={quoteattr(p)}/>\n" for p in net.resources]
        out += [f"      <budget place={quoteattr(p)}/>\n" for p in net.budgets]
        for node, o in net.origins.items():
            step = f" step={quoteattr(o.step)}" if o.step is not None else ""
            out.append(
                f"      <origin node={quoteattr(node)} construct={quoteattr(o.construct)}{step}"
                f" role={quoteattr(o.role)} detail={quoteattr(o.detail)}/>\n"
            )
    out.append("    </toolspecific>\n")
    return out


def to_pnml_string(net: PetriNet) -> str:
    """The net as a PNML 2009 ``ptnet`` document on one page.

    Writes ids, labels as names, non-zero initial markings and weights other
    than 1 (the PNML defaults are 0 and 1). A final marking, and a workflow
    net's source, sink and origins, go in a ``toolspecific tool="petriflow"``
    block that other tools skip and :func:`read_pnml` restores.
    """
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>\n',
        f'<pnml xmlns="{PNML_NAMESPACE}">\n',
        f'  <net id={quoteattr(net.name or "net")} type="{PTNET_TYPE}">\n',
        f"    <name><text>{escape(net.name)}</text></name>\n",
    ]
    out += _tool_block(net)
    page = "page0" if "page0" not in set(net.places) | set(net.transitions) else "petriflow-page0"
    out.append(f'    <page id="{page}">\n')
    for i, p in enumerate(net.places):
        tokens = int(net.initial[i])
        extra = f"        <initialMarking><text>{tokens}</text></initialMarking>\n" if tokens else ""
        out.append(_named("place", p, net.place_labels[i], extra))
    for t, label in zip(net.transitions, net.transition_labels):
        out.append(_named("transition", t, label))
    next_id = _arc_ids(net)
    for matrix, forward in ((net.pre, True), (net.post, False)):
        ts, ps = np.nonzero(matrix)
        for ti, pi, w in zip(ts.tolist(), ps.tolist(), matrix[ts, ps].tolist()):
            place, trans = net.places[pi], net.transitions[ti]
            src, dst = (place, trans) if forward else (trans, place)
            inscription = f"<inscription><text>{w}</text></inscription>" if w != 1 else ""
            out.append(
                f"      <arc id=\"{next_id()}\" source={quoteattr(src)} target={quoteattr(dst)}>{inscription}</arc>\n"
            )
    out += ["    </page>\n", "  </net>\n", "</pnml>\n"]
    return "".join(out)


def write_pnml(net: PetriNet, path: str | os.PathLike[str]) -> Path:
    """Write :func:`to_pnml_string` of ``net`` to ``path`` (UTF-8) and return the path."""
    target = Path(path)
    try:
        target.write_text(to_pnml_string(net), encoding="utf-8")
    except OSError as err:
        raise PnmlError(f"cannot write the file: {err.strerror}", where=str(target), hint="check the directory") from None
    return target
