"""Pictures of nets: PNG/SVG with matplotlib, Mermaid and Graphviz DOT as text.

``draw(net, "out.png")`` picks the format from the suffix. A
:class:`~petriflow.net.petrinet.WorkflowNet` is drawn in the words of the
workflow it came from (a box per step, transitions named ``start``,
``→ code``, ``↺ draft``, colours per construct); ``highlight`` paints nodes
red, for instance a deadlock's stuck places and the transitions left waiting.

matplotlib is imported only when a PNG or SVG is asked for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from petriflow.errors import InputError
from petriflow.net.petrinet import PetriNet, WorkflowNet

# imported here, before `def draw`: a first import of the submodule later would rebind `petriflow.viz.draw`
# from this function to the module (a second drawing in one process then failed)
from petriflow.viz.draw import render
from petriflow.viz.text import scene, to_dot, to_mermaid

__all__ = ["SUFFIXES", "draw", "to_dot", "to_mermaid"]

SUFFIXES = (".png", ".svg", ".mmd", ".dot")
"""What :func:`draw` can write, by file suffix."""


def draw(
    net: PetriNet,
    path: str | Path,
    *,
    highlight: Iterable[str] | None = None,
    marking: np.ndarray | Mapping[str, int] | None = None,
    title: str | None = None,
    trail: Iterable[str] | None = None,
) -> Path:
    """Draw ``net`` into ``path``; the suffix picks the format (``.png``, ``.svg``, ``.mmd``, ``.dot``).

    ``highlight``: place and transition ids drawn in red. ``marking``: tokens
    to show instead of the initial marking (a stuck marking, say). ``title``:
    a line above the drawing (default: the net's name). ``trail``: transitions
    that fired on the way (a witness's trace), drawn bold. Returns the path.
    Raises :class:`InputError` for an unknown suffix, an unknown highlighted
    id or a file that cannot be written.
    """
    out = Path(path)
    suffix = out.suffix.lower()
    if suffix not in SUFFIXES:
        raise InputError(f"cannot draw to '{out}': unknown suffix '{out.suffix}'",
                         hint=f"use one of {', '.join(SUFFIXES)}")
    options: dict[str, Any] = dict(highlight=highlight, marking=marking, title=title, trail=trail)
    try:
        if suffix == ".mmd":
            out.write_text(to_mermaid(net, **options), encoding="utf-8")
        elif suffix == ".dot":
            out.write_text(to_dot(net, **options), encoding="utf-8")
        else:
            render(scene(net, **options), out, fmt=suffix[1:], workflow=isinstance(net, WorkflowNet))
    except OSError as err:
        raise InputError(f"cannot write '{out}': {err.strerror or err}",
                         hint="check that the folder exists and is writable") from None
    return out
