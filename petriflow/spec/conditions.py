"""Conditions on outputs: the small, safe expression language of ``when:``.

A route branch's (or a loop's) ``when`` is either a bare label (one word,
matched against the output as labels always were) or an expression over
three names: ``output`` (the step's output, the parsed JSON value when the
output is JSON text), ``case`` (the case's inputs) and ``loop_pass`` (the
pass number, 1 on the first). Expressions may compare, combine with
``and``/``or``/``not``, test membership with ``in``, read fields
(``output.score`` and ``output["score"]`` alike) and write literals
(numbers, strings, ``true``/``false``/``null``, lists); the only calls are
``len``, ``lower`` and ``upper``. Everything else (arithmetic, attribute
methods, lambdas, comprehensions) is refused when the workflow loads, with
the reason. Evaluation goes through the ``simpleeval`` library on the tree
this module has checked, never Python's ``eval``.

Routes stay exclusive. :func:`exclusivity` decides, where it can, whether
two branch conditions can hold at once or none can: when every condition
compares fields with constants, the truth of all of them is constant on the
cells between the constants, so evaluating each condition on one value per
cell (every constant, a value between two neighbours, one beyond each end;
a string unlike every constant) is exact. Where it cannot decide (a field
compared with a field, a call, ``"x" in output.words``) the route needs a
``when: else`` branch.

>>> tree = parse("output.score < 0.6 and case.lang == 'en'")
>>> evaluate(tree, output='{"score": 0.5}', case={"lang": "en"})
True
>>> exclusivity({"low": parse("output.score < 0.6"), "high": parse("output.score > 0.5")}).problem
'overlap'
"""

from __future__ import annotations

import ast
import functools
import itertools
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["NAMES", "ConditionError", "Domain", "Exclusivity", "as_value", "evaluate", "exclusivity", "is_label", "parse"]

NAMES = ("output", "case", "loop_pass")
"""The names an expression reads."""

_CONSTANTS: Mapping[str, Any] = {"true": True, "false": False, "null": None, "True": True, "False": False,
                                 "None": None}
_FUNCTIONS: Mapping[str, Any] = {"len": len, "lower": lambda s: str(s).lower(), "upper": lambda s: str(s).upper()}
_LABEL = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")
_MAX_CELLS = 20_000
"""How many representative points :func:`exclusivity` evaluates before it calls a route undecidable."""


class ConditionError(ValueError):
    """An expression that cannot be used: ``hint`` says what would."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


def is_label(text: str) -> bool:
    """Whether a ``when`` is a bare label (one word) rather than an expression."""
    return bool(_LABEL.match(text))


_ALLOWED = (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.UAdd, ast.Compare,
            ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn, ast.Name, ast.Load,
            ast.Attribute, ast.Subscript, ast.Constant, ast.List, ast.Tuple, ast.Call)


@functools.lru_cache(maxsize=4096)
def parse(text: str) -> ast.Expression:
    """The checked tree of an expression; :class:`ConditionError` says what is wrong with it."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ConditionError(f"`{text}` is not an expression: {exc.msg} (column {exc.offset or 1})",
                             "write a comparison such as `output.score < 0.6`, or one word for a label") from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise ConditionError(f"`{text}` uses {type(node).__name__.lower()}, which a condition may not",
                                 "use comparisons, and/or/not, in, field access and literals only")
        if isinstance(node, ast.Name) and node.id not in NAMES and node.id not in _CONSTANTS \
                and node.id not in _FUNCTIONS:
            raise ConditionError(f"`{text}` names '{node.id}', which a condition cannot read",
                                 f"read {', '.join(NAMES)} (e.g. output.{node.id} or case.{node.id})")
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS
                                               and len(node.args) == 1 and not node.keywords):
            raise ConditionError(f"`{text}` calls something other than {', '.join(_FUNCTIONS)} with one argument",
                                 "conditions call no functions but len(x), lower(x) and upper(x)")
        if isinstance(node, ast.Name) and node.id in _FUNCTIONS and not _is_callee(tree, node):
            raise ConditionError(f"`{text}` uses the function '{node.id}' as a value", f"call it: {node.id}(...)")
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            raise ConditionError(f"`{text}` reads '{node.attr}'", "fields starting with '_' cannot be read")
    return tree


def _is_callee(tree: ast.AST, name: ast.Name) -> bool:
    return any(isinstance(n, ast.Call) and n.func is name for n in ast.walk(tree))


def as_value(output: Any) -> Any:
    """What ``output`` is in a condition: JSON text parsed, anything else as it is."""
    if isinstance(output, str):
        text = output.strip()
        if text[:1] in ("{", "[", '"') or text in ("true", "false", "null") or _number(text):
            try:
                return json.loads(text)
            except ValueError:
                return output
    return output


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _evaluator(names: Mapping[str, Any]) -> Any:
    from simpleeval import EvalWithCompoundTypes

    class _Eval(EvalWithCompoundTypes):  # type: ignore[misc]
        """Fields of a mapping by ``.name`` first (a field called ``items`` is the field, not a method)."""

        def _eval_attribute(self, node: ast.Attribute) -> Any:
            value = self._eval(node.value)
            if isinstance(value, Mapping):
                if node.attr not in value:
                    raise KeyError(node.attr)
                return value[node.attr]
            raise TypeError(f"'.{node.attr}' reads a field, but the value is {type(value).__name__} {value!r:.60}")

    return _Eval(names={**_CONSTANTS, **names}, functions=dict(_FUNCTIONS))


def evaluate(tree: ast.Expression, *, output: Any = None, case: Mapping[str, Any] | None = None,
             loop_pass: int = 1) -> bool:
    """The truth of a checked expression for one output; ``ValueError`` says why it cannot be evaluated."""
    return _truth(tree, {"output": as_value(output), "case": dict(case or {}), "loop_pass": loop_pass})


def _truth(tree: ast.Expression, names: Mapping[str, Any]) -> bool:
    """Evaluate; any failure (a missing field, ``<`` between text and a number) is a ``ValueError``."""
    from simpleeval import InvalidExpression

    try:
        return bool(_evaluator(names).eval(ast.unparse(tree), previously_parsed=tree.body))
    except KeyError as exc:
        raise ValueError(f"it has no field {exc}") from None
    except (TypeError, IndexError, ArithmeticError, InvalidExpression) as exc:
        raise ValueError(str(exc)) from None


# -- exclusivity -------------------------------------------------------------------------------

Path = tuple[str, ...]


@dataclass(frozen=True)
class Exclusivity:
    """What :func:`exclusivity` found: ``problem`` is ``None`` (exclusive and complete), ``"overlap"``
    (``branches`` both hold for ``example``), ``"gap"`` (none holds for ``example``) or ``"undecided"``
    (``reason`` says why)."""

    problem: str | None
    branches: tuple[str, ...] = ()
    example: str = ""
    reason: str = ""


def _path(node: ast.AST) -> Path | None:
    """``output.a["b"]`` as ``("output", "a", "b")``; None for anything else."""
    parts: list[str] = []
    while True:
        if isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) \
                and isinstance(node.slice.value, str):
            parts.append(node.slice.value)
            node = node.value
        elif isinstance(node, ast.Name) and node.id in NAMES:
            return (node.id, *reversed(parts))
        else:
            return None


def _constant(node: ast.AST) -> tuple[bool, Any]:
    if isinstance(node, ast.Constant):
        return True, node.value
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return True, _CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        ok, v = _constant(node.operand)
        if ok and isinstance(v, (int, float)) and not isinstance(v, bool):
            return True, -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_constant(e) for e in node.elts]
        if all(ok for ok, _ in items):
            return True, [v for _, v in items]
    return False, None


class _Undecided(Exception):
    pass


def _atoms(node: ast.AST, out: dict[Path, list[Any]]) -> None:
    """Collect, per field, the constants it is compared with; :class:`_Undecided` when not decidable."""
    if isinstance(node, ast.BoolOp):
        for v in node.values:
            _atoms(v, out)
        return
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        _atoms(node.operand, out)
        return
    path = _path(node)
    if path is not None:  # a field used as a truth value
        out.setdefault(path, []).extend([True, False])
        return
    if isinstance(node, ast.Constant):
        return
    if isinstance(node, ast.Compare):
        operands = [node.left, *node.comparators]
        for (a, b), op in zip(itertools.pairwise(operands), node.ops, strict=True):
            pa, pb = _path(a), _path(b)
            (ka, va), (kb, vb) = _constant(a), _constant(b)
            if pa is not None and kb:
                field, value = pa, vb
            elif pb is not None and ka and not isinstance(op, (ast.In, ast.NotIn)):
                field, value = pb, va
            elif ka and kb:
                continue
            else:
                raise _Undecided(f"`{ast.unparse(node)}` is not a field compared with a constant")
            if isinstance(op, (ast.In, ast.NotIn)):
                if not isinstance(value, list):
                    raise _Undecided(f"`{ast.unparse(node)}` tests membership in something not a list")
                out.setdefault(field, []).extend(value)
            else:
                out.setdefault(field, []).append(value)
        return
    raise _Undecided(f"`{ast.unparse(node)}` is not a comparison of a field with constants")


@dataclass(frozen=True)
class Domain:
    """What a field can be, when the step kind says so: one of ``values``, or a number in ``[low, high]``."""

    values: tuple[Any, ...] = ()
    low: float = -math.inf
    high: float = math.inf


def _representatives(field: Path, constants: list[Any], domain: Domain | None = None) -> list[Any]:
    """One value per cell of the line the constants cut (exact for comparisons with these constants)."""
    if domain is not None and domain.values:
        return list(domain.values)
    reps = _cells(field, constants)
    if domain is not None and reps and all(isinstance(r, (int, float)) and not isinstance(r, bool) for r in reps):
        inside = [r for r in reps if domain.low <= r <= domain.high]
        return sorted({*inside, domain.low, domain.high} - {math.inf, -math.inf})
    return reps


def _cells(field: Path, constants: list[Any]) -> list[Any]:
    kinds = {type(c) for c in constants if c is not None}
    numbers = {c for c in constants if isinstance(c, (int, float)) and not isinstance(c, bool)}
    if kinds <= {bool}:
        return [True, False]
    if kinds <= {int, float}:
        xs = sorted(numbers)
        if field == ("loop_pass",):  # a whole number from 1 on
            whole = {v for x in xs for v in (math.floor(x) - 1, math.floor(x), math.ceil(x), math.ceil(x) + 1)}
            return sorted(v for v in whole | {1} if v >= 1)
        reps = [xs[0] - 1.0, *xs, xs[-1] + 1.0]
        reps += [(a + b) / 2 for a, b in itertools.pairwise(xs)]
        return sorted(set(reps))
    if kinds <= {str}:
        words = sorted({c for c in constants if isinstance(c, str)})
        return [*words, "another " + max(words, key=len)]  # longer than every constant: equal to none
    raise _Undecided(f"'{'.'.join(field)}' is compared with values of different types")


def _assemble(values: Mapping[Path, Any]) -> dict[str, Any]:
    """The names (output, case, loop_pass) that hold these field values."""
    root: dict[str, Any] = {}
    for path, v in sorted(values.items(), key=lambda kv: len(kv[0])):
        cur = root
        for p in path[:-1]:
            nxt = cur.setdefault(p, {})
            if not isinstance(nxt, dict):
                raise _Undecided(f"'{'.'.join(path[:-1])}' is read both as a value and as a mapping")
            cur = nxt
        if path[-1] in cur:
            raise _Undecided(f"'{'.'.join(path)}' is read both as a value and as a mapping")
        cur[path[-1]] = v
    return root


def _show(values: Mapping[Path, Any]) -> str:
    return ", ".join(f"{'.'.join(p)} = {json.dumps(v)}" for p, v in sorted(values.items()))


def exclusivity(conditions: Mapping[str, ast.Expression], *, has_default: bool = False,
                domains: Mapping[Path, Domain] | None = None) -> Exclusivity:
    """Whether the branch ``conditions`` (label -> tree) can hold two at once, or none (without a default).

    ``domains`` narrows fields whose values the step kind fixes (a classify
    step's ``output.label`` is one of its labels, its ``output.score`` in [0, 1]).
    """
    fields: dict[Path, list[Any]] = {}
    try:
        for tree in conditions.values():
            _atoms(tree.body, fields)
        order = sorted(fields)
        reps = [_representatives(f, fields[f], (domains or {}).get(f)) for f in order]
    except _Undecided as exc:
        return Exclusivity("undecided", reason=str(exc))
    if math.prod(len(r) for r in reps) > _MAX_CELLS:
        return Exclusivity("undecided", reason=f"more than {_MAX_CELLS} cells to try")
    gap: dict[Path, Any] | None = None
    for point in itertools.product(*reps):
        values = dict(zip(order, point, strict=True))
        try:
            names = _assemble(values)
        except _Undecided as exc:
            return Exclusivity("undecided", reason=str(exc))
        names.setdefault("loop_pass", 1)
        holds = []
        for label, tree in conditions.items():
            try:
                ok = _truth(tree, names)
            except ValueError as exc:  # e.g. "<" between a string and a number
                return Exclusivity("undecided", reason=f"cannot evaluate the conditions on {_show(values)}: {exc}")
            if ok:
                holds.append(label)
        if len(holds) > 1:
            return Exclusivity("overlap", tuple(holds[:2]), _show(values))
        if not holds and gap is None:
            gap = values
    if gap is not None and not has_default:
        return Exclusivity("gap", (), _show(gap) or "any output")
    return Exclusivity(None)
