"""Prompt templates: what ``{name}`` reads (a case variable, a step's output, the map item, the loop state)
and how a file input becomes an OpenAI content part in a chat message.

:func:`render` makes text (a file input there is an error: nothing is turned
into text behind the user's back); :func:`render_content` makes a message's
``content``, the text or, when the template names files, content parts in the
template's order (see :mod:`petriflow.execute.attachments`).

>>> from types import SimpleNamespace as NS
>>> call = NS(vars={"question": "hi"}, outputs={"retrieve": ["a", "b"]}, loop_pass=1, previous={}, item=None,
...           failure=None)
>>> render("Q: {question}\\nNotes: {retrieve}", call, "s")
'Q: hi\\nNotes: a\\nb'
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Mapping
from typing import Any, Protocol

from petriflow.errors import InputError
from petriflow.execute.attachments import content_part, is_file_ref

__all__ = ["Seen", "as_text", "render", "render_content"]


class Seen(Protocol):
    """What a template reads of one step execution (:class:`petriflow.execute.tools.StepCall` is one)."""

    @property
    def vars(self) -> Mapping[str, Any]: ...
    @property
    def outputs(self) -> Mapping[str, Any]: ...
    @property
    def loop_pass(self) -> int: ...
    @property
    def previous(self) -> Mapping[str, Any]: ...
    @property
    def item(self) -> Any: ...
    @property
    def failure(self) -> Mapping[str, str] | None: ...


def as_text(value: Any) -> str:
    """How an upstream output reads inside a prompt: text as is, a list of texts one per line, else JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "\n".join(value)
    return json.dumps(value, default=str)


_MARK = "\x00part{}\x00"
_MARKS = re.compile("\x00part(\\d+)\x00")


class _Formatter(string.Formatter):
    """Fills a template; a file field becomes a marker when ``parts`` collects content parts, else an error."""

    def __init__(self, step: str, parts: list[Any] | None = None) -> None:
        self.step = step
        self.parts = parts

    def get_value(self, key: int | str, args: Any, kwargs: Mapping[str, Any]) -> Any:
        if isinstance(key, int) or key not in kwargs:
            raise InputError(f"the prompt names '{{{key}}}', which is neither a case variable nor a step this "
                             "one sees (a step finished on every path to it)", where=f"step '{self.step}'",
                             hint=f"known here: {', '.join(sorted(kwargs)) or 'nothing'}") from None
        return kwargs[key]

    def format_field(self, value: Any, format_spec: str) -> str:
        files = [value] if is_file_ref(value) else (
            value if isinstance(value, list) and value and all(is_file_ref(v) for v in value) else None)
        if files is None:
            return as_text(value) if not format_spec else format(value, format_spec)
        if self.parts is None:
            raise InputError("the prompt names a file input, which only a chat step's prompt can carry",
                             where=f"step '{self.step}'",
                             hint="send it to a chat model that reads files, or read it in a python step "
                                  "(case['FIELD']['path']), e.g. OCR first and template its text")
        marks = ""
        for f in files:
            self.parts.append(content_part(f, where=f"step '{self.step}'"))
            marks += _MARK.format(len(self.parts) - 1)
        return marks


def _context(call: Seen) -> dict[str, Any]:
    ctx: dict[str, Any] = {**call.vars, **call.outputs, "loop_pass": call.loop_pass, "previous": call.previous}
    if call.item is not None:
        ctx["item"] = call.item
    if call.failure is not None:
        ctx["failure"] = dict(call.failure)
    return ctx


def render(template: str, call: Seen, step: str) -> str:
    """``template`` with ``{name}`` replaced by a case variable, a step's output, or ``{item}``."""
    return _Formatter(step).vformat(template, (), _context(call))


def render_content(template: str, call: Seen, step: str) -> str | list[dict[str, Any]]:
    """A message's ``content``: the rendered text, or, when it names file inputs, OpenAI content parts.

    Each file field becomes a part where the template names it, between the
    text parts around it (``"Describe {image}"`` is a text part, then an
    ``image_url`` part); see :mod:`petriflow.execute.attachments`.
    """
    parts: list[Any] = []
    text = _Formatter(step, parts).vformat(template, (), _context(call))
    if not parts:
        return text
    out: list[dict[str, Any]] = []
    for i, piece in enumerate(_MARKS.split(text)):
        if i % 2:
            out.append(parts[int(piece)])
        elif piece:  # whitespace too: the text parts are exactly the template's text, nothing dropped
            out.append({"type": "text", "text": piece})
    return out
