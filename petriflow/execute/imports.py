"""Resolve ``module:callable`` names the way a workflow file means them: relative to the file's directory.

A workflow and its tools travel together (``models/support/flow.yaml`` next to
``models/support/tools.py``), so ``function: tools:lookup`` must find the
file's neighbour whichever directory ``petriflow run`` is started from. The
workflow's directory is put first on ``sys.path``; a module of the same name
imported earlier from somewhere else (another workflow's ``tools.py``) is
dropped from ``sys.modules`` first, so two workflows never share a stale one.

Exception names (a tool's ``retry_on``, a step's ``retry.on``) are builtin
names (``ConnectionError``) or ``module:Name``, resolved the same way.
"""

from __future__ import annotations

import builtins
import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["resolve", "resolve_exceptions"]


def _base_dir(source: str | None) -> Path | None:
    if not source or source.startswith("<"):
        return None
    return Path(source).resolve().parent


def _import(module: str, base: Path | None) -> ModuleType:
    top = module.partition(".")[0]
    if base is not None and ((base / f"{top}.py").exists() or (base / top / "__init__.py").is_dir()
                             or (base / top / "__init__.py").exists()):
        loaded = sys.modules.get(top)
        where = getattr(loaded, "__file__", None) if loaded is not None else None
        if loaded is not None and (where is None or Path(where).resolve().parent not in (base, base / top)):
            for name in [m for m in sys.modules if m == top or m.startswith(top + ".")]:
                del sys.modules[name]
        if str(base) not in sys.path:
            sys.path.insert(0, str(base))
    return importlib.import_module(module)


def resolve(spec: str, source: str | None) -> Any:
    """The object ``spec`` (``module:name``) names, importing ``module`` relative to the file ``source``.

    Raises ``ImportError``, ``AttributeError`` or ``ValueError`` with a message saying what is missing.
    """
    module, sep, name = spec.partition(":")
    if not sep or not module or not name:
        raise ValueError(f"'{spec}' is not module:callable")
    mod = _import(module, _base_dir(source))
    try:
        return getattr(mod, name)
    except AttributeError:
        raise AttributeError(f"module '{module}' has no '{name}'") from None


def resolve_exceptions(names: tuple[str, ...], source: str | None) -> tuple[type[BaseException], ...]:
    """The exception classes ``names`` mean: builtin names, or ``module:Name`` resolved like :func:`resolve`."""
    out: list[type[BaseException]] = []
    for n in names:
        obj = resolve(n, source) if ":" in n else getattr(builtins, n, None)
        if not (isinstance(obj, type) and issubclass(obj, BaseException)):
            raise ValueError(f"'{n}' is not an exception class")
        out.append(obj)
    return tuple(out)
