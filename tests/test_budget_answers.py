"""What answer a prefix of a trace states, and the math-verify comparison with the reference."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from interlock.monitor.budgets import AnswerScorer, boxed_answers, stated_answer


def test_nested_boxed_is_read_whole_and_an_unclosed_one_is_not_an_answer_yet() -> None:
    text = r"so $\boxed{\frac{1}{2}}$ and later \boxed{\left( 3, \frac{\pi}{2} \right)}. Then \boxed{\frac{1"
    found = boxed_answers(text)
    assert [a.text for a in found] == [r"\frac{1}{2}", r"\left( 3, \frac{\pi}{2} \right)"]
    assert text[found[0].end - 1] == "}" and text[: found[1].end].endswith(r"\right)}")
    assert stated_answer(text) == found[1]


def test_the_answer_is_needs_its_sentence_to_end_unless_the_trace_is_complete() -> None:
    assert stated_answer("so the answer is 4") is None  # "4" may be the start of "45"
    done = stated_answer("so the answer is 45.\nCheck")
    assert done is not None and (done.text, done.kind, done.end) == ("45", "answer_is", 19)
    whole = stated_answer("Final answer: $\\frac{3}{4}$", complete=True)
    assert whole is not None and (whole.text, whole.kind) == ("$\\frac{3}{4}$", "answer_is")


def test_the_later_of_boxed_and_answer_is_wins_and_a_number_is_the_last_resort() -> None:
    a = stated_answer("\\boxed{3}. Wait, no: the answer is 5.\n")
    assert a is not None and (a.text, a.kind) == ("5", "answer_is")
    b = stated_answer("6 x 7 = 42 inches, and 1,250 more.")
    assert b is not None and (b.text, b.kind) == ("1250", "result")
    assert stated_answer("no numbers here") is None
    assert stated_answer("x = 1") is None  # "1" may still be "12": not complete
    c = stated_answer("x = 12", complete=True)
    assert c is not None and c.text == "12"


@given(st.text(alphabet="ab{}\\ 1+", max_size=30), st.from_regex(r"[0-9a-z+\-]{1,8}", fullmatch=True))
def test_a_balanced_boxed_answer_is_always_found_after_any_text(noise: str, answer: str) -> None:
    inner = "{" + answer + "}"
    text = noise.replace("\\boxed", "") + " \\boxed{x" + inner + "}."
    found = boxed_answers(text)
    assert found and found[-1].text == "x" + inner and text[found[-1].end:] == "."


@pytest.fixture(scope="module")
def scorer() -> AnswerScorer:
    return AnswerScorer()


@pytest.mark.parametrize(("answer", "reference", "right"), [
    ("0.5", r"\frac{1}{2}", True),
    (r"\left( 3, \frac{\pi}{2} \right)", r"(3,\frac{\pi}{2})", True),
    ("$-2 + 7i$", "-2 + 7i", True),
    (r"\(x=3\)", "3", True),
    ("7", "8", False),
    (None, "8", False),
    ("", "8", False),
])
def test_answers_are_compared_by_value(scorer: AnswerScorer, answer: str | None, reference: str, right: bool) -> None:
    assert scorer.correct(answer, reference) is right
