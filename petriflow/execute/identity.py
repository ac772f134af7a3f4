"""Run identity: what a run was made of, as digests, so that a run id is never reused for something else.

A run records three things when it is created: the digest of its inputs,
the digest of its workflow, and one digest per step (its definition, the
model endpoint it calls, and for a Python step the source of the module its
function lives in, so editing the function counts as a change). Reusing a
``--run-id`` with other inputs or another workflow, or resuming a run whose
workflow has changed since, would pair inputs with outputs they did not
produce; both are refused. :func:`still_valid` says which saved outputs of
a changed workflow still apply (no step they depend on changed), so a *new*
run can start from those.

Simulation annotations (``latency``, ``failure_rate``, ``cost``, ``tokens``),
descriptions and line numbers do not change what a step computes and are left
out of its digest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from petriflow.spec.model import Step, Workflow

__all__ = ["Identity", "human_passes", "inputs_digest", "recorded_path", "step_of_key", "still_valid", "workflow_file",
           "workflow_identity"]

_NOT_BEHAVIOUR = ("line", "description", "latency", "failure_rate", "cost", "tokens")


@dataclasses.dataclass(frozen=True)
class Identity:
    """A run's digests: of its inputs, its workflow, and each step (hex sha256)."""

    inputs: str
    workflow: str
    steps: Mapping[str, str]

    def to_json(self) -> dict[str, Any]:
        return {"inputs": self.inputs, "workflow": self.workflow, "steps": dict(self.steps)}

    @classmethod
    def from_json(cls, data: Any) -> Identity | None:
        """The identity a run recorded, or None for a run written before runs recorded one."""
        if not isinstance(data, dict) or not isinstance(data.get("steps"), dict):
            return None
        return cls(str(data.get("inputs")), str(data.get("workflow")), dict(data["steps"]))


def _sha(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))


def inputs_digest(values: Iterable[Any]) -> str:
    """The digest of a batch's inputs, in order."""
    return _sha(_canonical(list(values)))


def _module_source(function: str | None) -> str:
    """The digest of the source file of a Python step's module (its spec when the file cannot be found)."""
    module = (function or "").partition(":")[0]
    try:
        spec = importlib.util.find_spec(module) if module else None
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.origin or not Path(spec.origin).is_file():
        return _sha(function or "")
    return _sha(Path(spec.origin).read_bytes())


def _step_digest(wf: Workflow, step: Step) -> str:
    own = {k: v for k, v in dataclasses.asdict(step).items() if k not in _NOT_BEHAVIOUR}
    if step.model and step.model in wf.models:
        own["_endpoint"] = dataclasses.asdict(wf.models[step.model])
    if step.uses:
        own["_resources"] = {r: dataclasses.asdict(wf.resources[r]) for r in step.uses if r in wf.resources}
    if step.kind == "python":
        own["_source"] = _module_source(step.function)
    return _sha(_canonical(own))


def workflow_identity(wf: Workflow, values: Iterable[Any]) -> Identity:
    """The identity of running ``values`` through ``wf``."""
    steps = {s.id: _step_digest(wf, s) for s in wf.steps}
    return Identity(inputs_digest(values), _sha(_canonical([wf.name, sorted(steps.items())])), steps)


def step_of_key(key: str) -> str:
    """The step a checkpoint key belongs to: ``a`` of ``a#2``, ``a#1/3`` and ``a#1>fallback``."""
    return key.partition("#")[0]


def still_valid(wf: Workflow, old: Identity, new: Identity) -> frozenset[str]:
    """The steps whose saved outputs still apply: neither they nor any step they depend on changed.

    A changed step invalidates everything downstream of it, the step it is the
    fallback of, and (when it is inside a loop) the whole loop's region, whose
    later passes saw its output.
    """
    changed = {s for s, d in new.steps.items() if old.steps.get(s) != d}
    bad: set[str] = set()
    for s in changed:
        bad |= wf.downstream(s) | {wf.root_of(s)}
    loops = [s.id for s in wf.steps if s.loop is not None]
    grew = True
    while grew:
        grew = False
        for looper in loops:
            region = set(wf.loop_region(looper)) | {looper}
            if region & bad and not region <= bad:
                for r in region:
                    bad |= wf.downstream(r)
                grew = True
    return frozenset(new.steps) - bad


def human_passes(wf: Workflow) -> dict[str, int]:
    """Each human step and how many passes it can have: one, times ``1 + max`` of every loop it is inside."""
    passes = {s.id: 1 for s in wf.steps if s.kind == "human"}
    for looper in (s for s in wf.steps if s.loop is not None):
        assert looper.loop is not None
        for sid in {*wf.loop_region(looper.id), looper.id} & passes.keys():
            passes[sid] *= 1 + looper.loop.max
    return passes


def recorded_path(workflow: str) -> str:
    """The workflow as a run records it: a file's absolute path (any directory finds it again), else as given."""
    p = Path(workflow)
    return str(p.resolve()) if workflow and p.is_file() else workflow


def workflow_file(stored: str, store: Any, *, run_id: str = "") -> Path:
    """The workflow file a run recorded, or one clear :class:`~petriflow.errors.InputError` saying where it looked.

    Runs record absolute paths (:func:`recorded_path`); a relative one comes
    from a run made before they did and is looked for beside the store's
    file first (where a project keeps its runs), then in the current directory.
    """
    from petriflow.errors import InputError

    p = Path(stored)
    tried = [p] if p.is_absolute() else []
    if not p.is_absolute():
        db = getattr(store, "path", None)
        tried = ([Path(str(db)).resolve().parent / p] if db is not None else []) + [p.resolve()]
    for candidate in tried:
        if candidate.is_file():
            return candidate
    looked = " or ".join(str(t) for t in dict.fromkeys(tried))
    raise InputError(f"the workflow file {stored!r} of run {run_id or '?'} is not there (looked for {looked})",
                     hint="pass the workflow again: petriflow run WORKFLOW.yaml --resume RUN")
