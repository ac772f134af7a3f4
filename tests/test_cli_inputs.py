"""``--input KEY=VALUE``: any case field from the command line, plain ``--input TEXT`` still a question."""

from __future__ import annotations

import pytest

from petriflow.cli.run import _cases
from petriflow.errors import InputError


def test_plain_texts_are_one_question_each() -> None:
    assert _cases(("what is 2 + 2 = ?", "hello")) == ["what is 2 + 2 = ?", "hello"]


def test_fields_make_one_case_with_the_plain_text_as_question() -> None:
    assert _cases(("customer=ann", "order_id=42", "where is my order?")) == [
        {"customer": "ann", "order_id": "42", "question": "where is my order?"}]


def test_a_question_that_looks_like_a_field_is_written_as_question() -> None:
    assert _cases(("question=x=1",)) == [{"question": "x=1"}]


@pytest.mark.parametrize("texts", [("a=1", "a=2"), ("a=1", "one", "two"), ("question=q", "other")])
def test_ambiguous_inputs_are_refused(texts: tuple[str, ...]) -> None:
    with pytest.raises(InputError):
        _cases(texts)
