"""Answering a human step: the one path the CLI (``petriflow answer``) and the web console share.

An answer is checked against the run before it is stored: the step must be a
human step of the run's workflow, the pass one it can reach and the case one
the run has, or the answer would wait forever for a step that never asks.
The waiting run polls the store (:meth:`~petriflow.execute.tools.Kinds._human`)
and continues by itself once the answer is there; nothing else needs telling.
"""

from __future__ import annotations

import json
from typing import Any

from petriflow.errors import InputError

__all__ = ["human_passes_of", "record_answer", "record_escalation", "short"]


def short(value: Any, width: int = 60) -> str:
    """One line of at most ``width`` printable characters (control characters shown escaped)."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    return text if len(text) <= width else text[:width - 3] + "..."


def run_row(store: Any, run_id: str) -> Any:
    """The run's row, or one clear :class:`InputError` naming the store."""
    row = store.get_run(run_id)
    if row is None:
        raise InputError(f"no run '{short(run_id)}' in {getattr(store, 'path', 'the store')}",
                         hint="petriflow runs list shows the runs")
    return row


def human_passes_of(row: Any, store: Any = None) -> dict[str, int]:
    """The run's human steps and their passes: recorded with the run, else read from its workflow file."""
    recorded = row.options.get("human")
    if isinstance(recorded, dict):
        return {str(k): int(v) for k, v in recorded.items()}
    from petriflow.execute.identity import human_passes, workflow_file
    from petriflow.spec import load

    return human_passes(load(workflow_file(row.workflow, store, run_id=row.run_id)))


def _check(store: Any, run_id: str, step: str, npass: int | None, case: int | None) -> None:
    """Refuse (:class:`InputError`) a step the run has no human step of, a pass it cannot reach, a case it lacks."""
    row = run_row(store, run_id)
    passes = human_passes_of(row, store)
    if step not in passes:
        can = ", ".join(f"'{s}'" for s in sorted(passes)) or "none"
        raise InputError(f"run '{short(run_id)}' has no human step '{short(step)}'",
                         hint=f"the steps it can be answered for: {can}")
    if npass is not None and not 1 <= npass <= passes[step]:
        raise InputError(f"step '{step}' has passes 1 to {passes[step]}, not {npass}",
                         hint="pass --pass N within the loop's bound")
    if case is not None and case not in {c.case for c in store.cases(run_id)}:
        raise InputError(f"run '{short(run_id)}' has no case {case}", hint="petriflow runs show RUN lists its cases")


def record_answer(store: Any, run_id: str, step: str, value: str, *, npass: int | None = 1,
                  case: int | None = None, once: bool = False) -> str:
    """Check an answer against the run (a human step it has, a pass and case it can reach) and store it.

    ``once``: refuse a second answer to the same case and pass (the console's
    buttons must not record a double click twice); the CLI may answer ahead
    of time for every case, so it leaves it off. Returns a sentence saying
    what was answered.
    """
    _check(store, run_id, step, npass, case)
    if once and case is not None and store.get_answer(run_id, step, case, npass=npass or 1) is not None:
        raise InputError(f"step '{step}' of case {case} (pass {npass or 1}) of run '{short(run_id)}' is already "
                         "answered", hint="an answer is recorded once; the run goes on with the first")
    store.answer(run_id, step, value, case=case, npass=npass)
    which = (f" pass {npass}" if npass else "") + (f" of case {case}" if case is not None else "")
    return f"answered step '{step}'{which} of run {run_id}"


def record_escalation(store: Any, run_id: str, step: str, *, npass: int = 1, case: int | None = None) -> str:
    """Escalate a waiting human step now, as its deadline would (:meth:`~petriflow.execute.store.RunStore.escalate`).

    Only a step that waits (``petriflow runs pending`` lists it) can be
    escalated, each wait once; ``case=None`` escalates every case of the run
    that waits at that step and pass. Returns a sentence saying what was escalated.
    """
    _check(store, run_id, step, npass, case)
    waits = [w.case for w in store.waiting(run_id) if w.step == step and w.npass == npass
             and case in (None, w.case)]
    if not waits:
        which = f"case {case} of " if case is not None else ""
        raise InputError(f"step '{step}' (pass {npass}) of {which}run '{short(run_id)}' is not waiting",
                         hint="only a waiting step can be escalated: petriflow runs pending lists them")
    fresh = [k for k in waits if store.escalate(run_id, k, step, npass)]
    if not fresh:
        raise InputError(f"step '{step}' of run '{short(run_id)}' is already escalated",
                         hint="its fallback or on_failure step takes over at the wait's next poll")
    cases = ", ".join(map(str, fresh))
    return f"escalated step '{step}' pass {npass} of case{'s' if len(fresh) > 1 else ''} {cases} of run {run_id}"
