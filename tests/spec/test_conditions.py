"""`when:` expressions in the loader: errors with file, line, step and hint; overlaps and gaps refused with an
example value; undecidable routes need `else`; the decision agrees with brute-force evaluation (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from petriflow.errors import SpecError
from petriflow.spec import load, loads
from petriflow.spec.conditions import evaluate, exclusivity, parse


def _route(*branches: str, kind: str = "python") -> str:
    targets = "".join(f"  - {{id: t{i}, kind: python, function: builtins:len}}\n" for i in range(len(branches)))
    rows = "".join(f"      - {{to: t{i}, p: {1 / len(branches)}, when: {b}}}\n" for i, b in enumerate(branches))
    extra = "    labels: {a: [x], b: [y]}\n" if kind == "classify" else "    function: builtins:len\n"
    join = ", ".join(f"t{i}" for i in range(len(branches)))
    return (f"name: r\nsteps:\n  - id: pick\n    kind: {kind}\n{extra}    route:\n{rows}{targets}"
            f"  - {{id: out, kind: python, function: builtins:len, after_any: [{join}]}}\n")


@pytest.mark.parametrize(("when", "says"), [
    ('"output.score <"', "is not an expression"),
    ('"scroe < 0.5"', "names 'scroe'"),
    ("\"__import__('os').system('x') == 0\"", "calls something other than"),
    ('"output.score + 1 > 2"', "uses binop"),
    ('"output.__class__ == 1"', "'__class__'"),
])
def test_a_bad_expression_is_a_spec_error_at_its_line_with_a_hint(when: str, says: str) -> None:
    with pytest.raises(SpecError) as err:
        loads(_route(when, "else"), file="w.yaml")
    e = err.value
    assert says in str(e) and e.file == "w.yaml" and e.line == 7 and e.step == "pick" and e.hint


def test_overlapping_conditions_are_refused_with_a_value_where_both_hold() -> None:
    with pytest.raises(SpecError, match=r"'t0' and 't1' both hold when output.score = 0.55"):
        loads(_route('"output.score < 0.6"', '"output.score > 0.5"'))


def test_a_gap_is_refused_with_a_value_no_branch_takes_unless_there_is_else() -> None:
    with pytest.raises(SpecError, match=r"no branch's condition holds when output.score = 0.6"):
        loads(_route('"output.score < 0.6"', '"output.score > 0.6"'))
    loads(_route('"output.score < 0.6"', '"output.score > 0.6"', "else"))
    loads(_route('"output.score < 0.6"', '"output.score >= 0.6"'))  # complete and exclusive: no else needed


def test_an_undecidable_route_needs_else() -> None:
    with pytest.raises(SpecError, match="cannot be decided") as err:
        loads(_route("\"'refund' in output.words\"", '"output.score > 1"'))
    assert "when: else" in (err.value.hint or "")
    loads(_route("\"'refund' in output.words\"", '"output.score > 1"', "else"))
    with pytest.raises(SpecError, match="match labels while"):
        loads(_route("a", '"output.score > 1"'))
    with pytest.raises(SpecError, match="two branches say `when: else`"):
        loads(_route('"output.score > 1"', "else", "else"))


def test_a_classify_steps_labels_and_score_range_are_known() -> None:
    loads(_route("\"output.label == 'a' and output.score >= 0.5\"", "\"output.label == 'b' and output.score >= 0.5\"",
                 '"output.score < 0.5"', kind="classify"))
    with pytest.raises(SpecError, match=r"no branch's condition holds when output\.label = \"b\""):
        loads(_route("\"output.label == 'a' and output.score >= 0.5\"", '"output.score < 0.5"', kind="classify"))


def test_the_label_is_the_name_else_the_bare_label_else_the_target() -> None:
    wf = loads(_route('"output.score < 0.5"', "else").replace("when: else}", "when: else, name: rest}"))
    assert [(b.when, b.condition, b.default) for b in wf.step("pick").route] == [
        ("t0", "output.score < 0.5", False), ("rest", None, True)]
    qa = load("models/qa_router.yaml")
    assert [(b.when, b.match) for b in qa.step("classify").route] == [
        ("general", "general"), ("code", "code"), ("search", "search")]


def test_a_loop_when_expression_is_checked_too() -> None:
    text = ("name: l\nsteps:\n  - {id: a, kind: python, function: builtins:len}\n"
            "  - {id: b, kind: python, function: builtins:len, after: [a],\n"
            "     loop: {to: a, max: 2, when: \"outptu.n < 2\"}}\n")
    with pytest.raises(SpecError, match="names 'outptu'") as err:
        loads(text)
    assert err.value.step == "b" and err.value.line == 5


_OPS = ["<", "<=", ">", ">=", "==", "!="]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_OPS), st.integers(-3, 3), st.sampled_from(["", "and", "or"]),
                          st.sampled_from(_OPS), st.integers(-3, 3)), min_size=2, max_size=4),
       st.booleans())
def test_the_decision_agrees_with_trying_every_value(rows: list[tuple[str, int, str, str, int]],
                                                     has_default: bool) -> None:
    """Conditions on one integer field: checked against evaluation on a fine grid (an independent oracle)."""
    conds = {}
    for i, (op1, c1, join, op2, c2) in enumerate(rows):
        text = f"output.x {op1} {c1}" + (f" {join} output.x {op2} {c2}" if join else "")
        conds[f"b{i}"] = parse(text)
    grid = [x / 4 for x in range(-24, 25)]
    counts = [sum(evaluate(t, output={"x": x}) for t in conds.values()) for x in grid]
    verdict = exclusivity(conds, has_default=has_default)
    if verdict.problem == "overlap":
        x = float(verdict.example.split("= ")[1])
        assert sum(evaluate(conds[b], output={"x": x}) for b in verdict.branches) == 2
    elif verdict.problem == "gap":
        x = float(verdict.example.split("= ")[1])
        assert not has_default and not any(evaluate(t, output={"x": x}) for t in conds.values())
        assert max(counts) <= 1
    else:
        assert verdict.problem is None and max(counts) <= 1 and (has_default or min(counts) == 1)


def test_membership_in_a_list_of_strings_is_decided() -> None:
    a, b = parse("output.kind in ['spam', 'scam']"), parse("output.kind not in ['spam', 'scam']")
    assert exclusivity({"a": a, "b": b}).problem is None
    assert exclusivity({"a": a, "c": parse("output.kind == 'scam'")}, has_default=True).problem == "overlap"
