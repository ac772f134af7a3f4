"""The draft: the small format a model writes a workflow in, and its expansion into petriflow's format.

A tiny model under petriflow's full generation schema wanders: it invents
long step ids, repeats route branches until the token limit cuts its answer
mid-string, and writes branch probabilities that do not add up to one (the
benchmark of ``analysis/bench/README.md`` measured 0 of 52 passing). The
draft removes each of those freedoms from the output space, so the
grammar-constrained decoder cannot write them:

* ``steps`` is an object keyed by step id, and the ids are the catalog's own
  names (a tool, a function, a prompt, a person of ``humans``): no id can be
  invented or written twice, and the keys come in the catalog's
  ``generate_order``;
* what a step *is* (kind, tool, function, model, prompt and system text,
  token limits) follows from its id, so the model writes only what it
  decides: ``after`` (one step, a name: a grammar cannot keep a list's
  items unique, and the model repeats them), tool ``args``, function
  ``kwargs``, and ``route`` or ``loop`` on a function whose catalog entry
  lists the ``labels`` its output names;
* a ``route`` is ``{label: step}`` with every label of the function required
  once: no branch can be repeated or missing, and it has no probabilities to
  get wrong; the expansion gives the branches equal shares (the route's
  ``p`` is a profile's prior, which petriflow fits from traces; the gate's
  cost bound takes the dearest branch whatever the shares);
* every string is bounded by its pattern (a literal holds no braces, so it is
  never read as a template; a template is one of an enum), every integer by
  the catalog's limits, so a whole answer fits the tokens it is given
  (:func:`draft_tokens` is that bound);
* with a plan (:func:`plan_schema`, :func:`chosen_steps`), the steps are
  fixed before the draft is written, and every reference names one of them.

:func:`expand` turns a draft into a workflow document by adding only what
the catalog holds; the gate then checks that document like any other file,
every check in place. Whatever is not a draft (a full workflow document, a
string that is not JSON, an unknown id or key) passes through unchanged or
as written, for the gate to refuse by name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from petriflow.generate.catalog import Catalog

__all__ = ["chosen_steps", "draft_ids", "draft_schema", "draft_tokens", "expand", "expand_text", "plan_schema",
           "template_names"]

_ID = "^[a-z][a-z0-9_]{0,31}$"
_FREE = 60
"""The longest literal string a draft may hold (a tool argument, the name): room for a note, no room to wander."""


def draft_ids(catalog: Catalog) -> dict[str, tuple[str, str]]:
    """Each step id a draft may use -> (kind, catalog name), in the catalog's ``generate_order``.

    A name that is not a valid step id, or that an earlier section already took, is left out (the
    sections are read in the order functions, tools, prompts, humans)."""
    from petriflow.generate.schema import _kinds  # the kinds the catalog offers: one rule for both formats

    kinds = set(_kinds(catalog))
    found: dict[str, tuple[str, str]] = {}
    sections = [("python", catalog.functions), ("tool", catalog.tools), ("chat", catalog.prompts),
                ("human", catalog.humans)]
    for kind, names in sections:
        if kind not in kinds:
            continue
        for name in names:
            if re.match(_ID, name) and name not in found:
                found[name] = (kind, name)
    order = [i for i in catalog.generate_order if i in found]
    return {i: found[i] for i in [*order, *(i for i in found if i not in order)]}


def _labels(catalog: Catalog, name: str) -> tuple[str, ...]:
    return tuple(catalog.functions[name].get("labels", ()))


def _template(catalog: Catalog, ids: list[str], own: str) -> dict[str, Any]:
    """The templates an argument may be: a case input, another step's output, or a field of it that the
    function's catalog entry lists (an enum: the decoder cannot invent a name)."""
    names = [f"{{{n}}}" for n in (*catalog.inputs, *(i for i in ids if i != own))]
    names += [f"{{{i}[{f}]}}" for i in ids if i != own and i in catalog.functions
              for f in catalog.functions[i].get("fields", ())]
    return {"enum": names}


def _narrow(schema: Any) -> Any:
    """A literal argument's schema: a free string cut to :data:`_FREE` characters and without braces (still
    within the tool's own schema: such a string it allows is one it allows)."""
    if not isinstance(schema, Mapping):
        return schema
    out = dict(schema)
    if out.get("type") == "string" and "enum" not in out and "pattern" not in out:
        # no braces: a literal is never read as a template (the templates are the enum beside it), and the
        # length inside the pattern, which the grammar keeps (it drops maxLength next to a pattern)
        most = min(int(out.pop("maxLength", _FREE)), _FREE)
        out["pattern"] = f"^[^{{}}]{{0,{most}}}$"
    return out


def _args(catalog: Catalog, schema: Mapping[str, Any], ids: list[str], own: str) -> dict[str, Any]:
    props = schema.get("properties")
    if not isinstance(props, Mapping):
        return dict(schema)
    return {"type": "object", "additionalProperties": False, "required": list(schema.get("required", [])),
            "properties": {k: {"anyOf": [_narrow(v), _template(catalog, ids, own)]} for k, v in props.items()}}


def _step(catalog: Catalog, sid: str, kind: str, ids: list[str]) -> dict[str, Any]:
    others = [i for i in ids if i != sid]
    reads = [i for i in _reads_steps(catalog, kind, sid) if i in others]
    # one predecessor, written as a name, not a list: a grammar cannot keep a list's items unique, and a tiny
    # model repeats them ("after": ["facts", "facts", "facts"]); a step that reads another step waits for it
    props: dict[str, Any] = {"after": {"enum": reads or others}} if reads or others else {}
    required: list[str] = ["after"] if reads else []
    if kind == "tool":
        props["args"] = _args(catalog, catalog.tools[sid].schema, ids, sid)
        required.append("args")
    elif kind == "python":
        kwargs = catalog.functions[sid].get("kwargs")
        if kwargs is not None:
            props["kwargs"] = dict(kwargs)
        labels = _labels(catalog, sid)
        if len(labels) >= 2 and others:
            props["route"] = {"type": "object", "additionalProperties": False, "required": list(labels),
                              "properties": {lab: {"enum": others} for lab in labels}}
        elif len(labels) == 1 and catalog.limits.loop and others:
            props["loop"] = {"type": "object", "additionalProperties": False, "required": ["to", "max"],
                             "properties": {"to": {"enum": others}, "max": {"type": "integer", "minimum": 1,
                                                                          "maximum": catalog.limits.loop}}}
    elif kind == "chat":
        chat = [m for m, e in catalog.models.items() if e.kind == "chat"]
        if len(chat) > 1:
            props["model"] = {"enum": chat}
            required.append("model")
    return {"type": "object", "additionalProperties": False, "required": required, "properties": props}


def _reads_steps(catalog: Catalog, kind: str, name: str) -> list[str]:
    """The step names a catalog entry's own text reads (a chat prompt's templates), case inputs left out."""
    if kind != "chat":
        return []
    texts = [catalog.prompts[name]["prompt"], catalog.prompts[name].get("system", "")]
    return sorted({n for t in texts for n in template_names(t)} - set(catalog.inputs))


def template_names(template: str) -> list[str]:
    """The top-level names a template reads (``{a[b]}`` reads ``a``); none if it cannot be read (the gate
    says why)."""
    import string

    try:
        return [re.split(r"[.\[]", f, maxsplit=1)[0] for _, f, _, _ in string.Formatter().parse(template) if f]
    except ValueError:
        return []


def plan_schema(catalog: Catalog) -> dict[str, Any]:
    """The schema of the plan, the first of a round's two calls: which of the catalog's steps the case needs.

    A draft written all at once names steps it then never writes (``"after": "update_ticket"`` with no
    ``update_ticket``: a tiny model mixes its examples), and a grammar cannot know which optional keys an
    object already holds. Choosing the steps first lets the second call's schema (:func:`draft_schema` with
    ``chosen``) require exactly those steps and allow references to them alone."""
    ids = list(draft_ids(catalog))
    return {"type": "object", "required": ["steps"], "additionalProperties": False,
            "properties": {"steps": {"type": "array", "items": {"enum": ids}, "minItems": 1,
                                     "maxItems": min(len(ids), catalog.limits.steps)}}}


def chosen_steps(plan: Any, catalog: Catalog) -> tuple[str, ...] | None:
    """The steps a plan chose, in the draft's order, with every step a chosen one reads (a reply reads the
    facts: choosing it brings them, for the model to write); None if ``plan`` is not a plan of catalog steps.
    """
    ids = draft_ids(catalog)
    names = plan.get("steps") if isinstance(plan, Mapping) else None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n in ids for n in names):
        return None
    picked = set(names)
    while True:
        more = {r for n in picked for r in _reads_steps(catalog, ids[n][0], ids[n][1]) if r in ids} - picked
        if not more:
            break
        picked |= more
    if len(picked) > catalog.limits.steps:
        return None
    return tuple(i for i in ids if i in picked)


def draft_schema(catalog: Catalog, chosen: tuple[str, ...] | None = None) -> dict[str, Any]:
    """The JSON Schema a model writes its draft under (``response_format: json_schema``); see the module
    docstring for what it leaves out and why. With ``chosen`` (:func:`chosen_steps`), exactly those steps,
    each required, and every reference names one of them."""
    ids = draft_ids(catalog)
    if chosen is not None:
        ids = {i: ids[i] for i in ids if i in chosen}
    order = list(ids)
    steps = {sid: _step(catalog, sid, kind, order) for sid, (kind, _) in ids.items()}
    box: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": steps}
    if chosen is None:
        box.update(minProperties=1, maxProperties=min(len(steps), catalog.limits.steps))
    else:
        box["required"] = order
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"petriflow workflow draft for catalog {catalog.name}",
        "type": "object", "required": ["name", "steps"], "additionalProperties": False,
        "properties": {"name": {"type": "string", "pattern": "^[a-z][a-z_]{0,23}$"}, "steps": box},
    }


_WS = 22
"""The most whitespace llama.cpp's JSON grammar lets a model put at one place (``"\\n" [ \\t]{0,20}``)."""


def draft_tokens(catalog: Catalog, chosen: tuple[str, ...] | None = None) -> int:
    """An upper bound on the tokens of any answer :func:`draft_schema` allows: every key at its longest,
    the most whitespace at every place the grammar allows it, a token per character of its punctuation and
    names (a token is at least one character) and six per character of a free string (an escape or a
    character's UTF-8 bytes). ``max_tokens`` this large means no answer is cut off."""
    return _WS + _longest(draft_schema(catalog, chosen)) + _WS


def _longest(schema: Any) -> int:
    """Characters of the longest JSON text ``schema`` allows, whitespace included (the shapes
    :func:`draft_schema` writes: enums, objects, arrays, integers, strings whose pattern ends in
    ``{m,n}$``)."""
    if not isinstance(schema, Mapping):
        raise ValueError(f"no bound for {schema!r}")
    if "enum" in schema:
        return max(len(json.dumps(v)) for v in schema["enum"])
    if "anyOf" in schema:
        return max(_longest(s) for s in schema["anyOf"])
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})  # {, then per key: ws "key" ws : ws value ws , ; then }
        return 2 + sum(len(json.dumps(k)) + 4 * _WS + 2 + _longest(v) for k, v in props.items())
    if kind == "array":
        return 2 + _WS + int(schema["maxItems"]) * (_longest(schema["items"]) + 2 * _WS + 1)
    if kind == "string":
        m = re.search(r"\{(\d+),(\d+)\}\$$", str(schema.get("pattern", "")))
        if m is None:
            raise ValueError(f"no bound for the string {schema!r}")
        return 2 + 6 * int(m.group(2))  # a character is at most 6 tokens: an escape \uXXXX, or 4 UTF-8 bytes
    if kind == "integer":
        return len(str(schema["maximum"])) + 1 if "maximum" in schema and schema.get("minimum", -1) >= 0 else 21
    raise ValueError(f"no bound for {schema!r}")


def expand(doc: Any, catalog: Catalog) -> Any:
    """The workflow document of a draft (see the module docstring); anything else is returned as it is.

    Only the catalog's own entries are added; every key the model wrote goes into the document (an
    unknown one too, for the gate's ``schema`` check to name)."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("steps"), Mapping):
        return doc
    ids = draft_ids(catalog)
    steps: list[dict[str, Any]] = []
    for sid, body in doc["steps"].items():
        if sid not in ids or not isinstance(body, Mapping):
            steps.append({"id": sid, "draft": body})  # no kind: the gate's schema check refuses it by id
            continue
        kind, name = ids[sid]
        step: dict[str, Any] = {"id": sid, "kind": kind}
        rest = dict(body)
        if kind == "tool":
            step["tool"] = name
            if "args" in rest:
                step["config"] = {"args": rest.pop("args")}
        elif kind == "python":
            step["function"] = catalog.functions[name]["function"]
            if "kwargs" in rest:
                step["config"] = {"kwargs": rest.pop("kwargs")}
            labels = _labels(catalog, name)
            if isinstance(rest.get("route"), Mapping):
                route = rest.pop("route")
                share = Fraction(1, max(len(route), 1))
                step["route"] = [{"when": lab, "to": to, "p": float(share)} for lab, to in route.items()]
            if isinstance(rest.get("loop"), Mapping) and len(labels) == 1:
                step["loop"] = {"when": labels[0], **rest.pop("loop")}
        elif kind == "chat":
            chat = [m for m, e in catalog.models.items() if e.kind == "chat"]
            prompt = catalog.prompts[name]
            step["model"] = rest.pop("model", None) or (catalog.generator if catalog.generator in chat
                                                        else chat[0] if chat else None)
            step["prompt"] = prompt["prompt"]
            if "system" in prompt:
                step["system"] = prompt["system"]
            step["config"] = {"max_tokens": catalog.limits.max_tokens,
                              "max_input_tokens": catalog.limits.max_input_tokens}
        if isinstance(rest.get("after"), str):
            step["after"] = [rest.pop("after")]
        step.update(rest)
        steps.append(step)
    return {**{k: v for k, v in doc.items() if k != "steps"}, "steps": steps}


def expand_text(text: str, catalog: Catalog) -> Any:
    """A model's answer as the gate should see it: the expanded draft when it is one, else the text itself
    (so the ``parse`` check refuses what is not JSON, with its own message)."""
    try:
        doc = json.loads(text)
    except ValueError:
        return text
    expanded = expand(doc, catalog)
    return text if expanded is doc else expanded
