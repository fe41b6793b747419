"""Numbers too big to judge are undecided, and exact integers get no float tolerance (issue 24, item 4)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from interlock import Fail, Monitor, Outcome, Pass, Unknown
from interlock.generators import Scripted
from interlock.verifiers import Arithmetic
from interlock.verifiers.arithmetic import consistent, parse_literal

HUGE = "1" + "0" * 70


def test_a_stated_value_past_the_digit_limit_is_unknown_not_a_pass() -> None:
    text = f"So 7 + 8 = {HUGE}.\n"
    verdicts = Arithmetic().scan(text)
    assert [type(v) for v in verdicts] == [Unknown]
    (unknown,) = verdicts
    assert unknown.reason == "too complex to check: a number with 71 digits"
    assert text[unknown.span.start:unknown.span.end] == f"7 + 8 = {HUGE}"


def test_fail_closed_fails_it() -> None:
    (fail,) = Arithmetic(fail_closed=True).scan(f"So 7 + 8 = {HUGE}.\n")
    assert isinstance(fail, Fail)
    assert fail.message == "arithmetic: not checked: too complex to check: a number with 71 digits"


async def test_a_run_with_it_is_never_verified() -> None:
    result = await Monitor(Scripted(f"So 7 + 8 = {HUGE}.\n"), [Arithmetic()]).run("q")
    assert result.outcome is not Outcome.VERIFIED
    result = await Monitor(Scripted(f"So 7 + 8 = {HUGE}.\n"), [Arithmetic(fail_closed=True)]).run("q")
    assert result.outcome is Outcome.VIOLATION


def test_exact_integers_get_no_calculator_float_tolerance() -> None:
    (fail,) = [v for v in Arithmetic().scan("So 1000000000000007 + 1000000000000007 = 2000000000000015.\n")
               if isinstance(v, Fail)]
    assert fail.feedback == "1000000000000007 + 1000000000000007 is 2000000000000014, not 2000000000000015."
    (ok,) = Arithmetic().scan("So 1000000000000007 + 1000000000000007 = 2000000000000014.\n")
    assert isinstance(ok, Pass) and ok.checked


def test_calculator_floats_still_pass() -> None:
    assert consistent(1, 3, parse_literal("0.3333333333333333"))
    assert consistent(3, 1, parse_literal("3.0000000000000004"))
    assert consistent(99, 1, parse_literal("99.00000000000001"))


@settings(max_examples=200, deadline=None)
@given(a=st.integers(10**14, 10**40), b=st.integers(10**14, 10**40), off=st.integers(-9, 9).filter(bool))
def test_a_wrong_sum_of_big_integers_is_flagged(a: int, b: int, off: int) -> None:
    assert not consistent(a + b, 1, parse_literal(str(a + b + off)))
    fails = [v for v in Arithmetic().scan(f"So {a} + {b} = {a + b + off}.\n") if isinstance(v, Fail)]
    assert [f.feedback for f in fails] == [f"{a} + {b} is {a + b}, not {a + b + off}."]


@pytest.mark.parametrize("text", [f"So {HUGE} + 1 = 5.\n", f"So 2 * 3 = {HUGE}.\n", f"So 2 * 3 = -{HUGE}.\n"])
def test_either_side_past_the_limit_is_unknown(text: str) -> None:
    assert [type(v) for v in Arithmetic().scan(text)] == [Unknown]
