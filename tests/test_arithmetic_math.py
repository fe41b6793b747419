"""The arithmetic verifier on competition-math solutions (MATH, ProcessBench, PRM800K styles).

Soundness first: a correct step in LaTeX-heavy algebra, number theory, counting, geometry or precalculus is
never flagged, whatever notation it uses; a wrong one is flagged only where its reading is certain.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from interlock import Fail, Monitor
from interlock.generators import Scripted
from interlock.verifiers import Arithmetic
from interlock.verifiers.arithmetic import check_text, context_of
from support import statuses, wrong

# Correct steps in the notations competition solutions use; none may be flagged.
SOUND = [
    r"So $x^2 - 5x + 6 = (x-2)(x-3)$, and $f(3) = 2(3)^2 + 1 = 19$.",
    r"The number of ways is $\binom{5}{2} = 10$ and there are $5! = 120$ orders, so $\frac{10!}{8!2!} = 45$.",
    r"We have $17 \mod 5 = 2$ and $\gcd(12, 18) = 6$.",
    r"Thus $\lfloor \frac{100}{7} \rfloor = 14$ and $\lceil \frac{17}{5} \rceil = 4$, and $|2 - 7| = 5$.",
    r"Recall $\sin 30^\circ = \frac12$ and $\cos \frac{\pi}{3} = \frac{1}{2}$, and $\log_2 8 + 1 = 4$.",
    r"So $\sqrt{8} = 2\sqrt{2}$ and $\sqrt{50} \approx 7.07$, and $\pi \cdot 3^2 = 9\pi$.",
    r"Then $0.\overline{3} = \frac{1}{3}$ and $3 \cdot 0.\overline{3} = 1$, and $1.5 \times 10^3 = 1500$.",
    r"In binary, $101_2 = 5$, and $11_2 + 1 = 4$; $a_3 = 7$ and $x_1 + x_2 = 5$.",
    r"So $1 + 2 + \cdots + 100 = 5050$ and $\sum_{k=1}^{10} k = 55$.",
    r"Since $i^2 = -1$, $(1+i)^2 = 2i$ and $(2+3i)(2-3i) = 4 + 9 = 13$.",
    r"The area is $6 \cdot 4 = 24 \text{ cm}^2$ and the angle is $180^\circ - 50^\circ - 60^\circ = 70^\circ$.",
    r"\begin{aligned} 2^5 - 1 &= 32 - 1 \\ &= 31 \end{aligned}",
    r"Wait, let me double-check: 12 * 7 = 84. Yes.",
    r"Thus $1{,}000 + 2{,}000 = 3{,}000$, and the answer is $\boxed{3000}$.",
    r"We need $2 < x \le 5$, and $2 \cdot 3 = 6 > 5$.",
    r"$\frac{10!}{8!} = 90$ and $(3!)^2 = 36$ and $2^{3!} = 64$.",
]


@pytest.mark.parametrize("text", SOUND)
def test_correct_competition_steps_are_never_flagged(text: str) -> None:
    assert wrong(text) == []


# A step about modular arithmetic states congruences as equalities: "3^4 = 1 \pmod 5" is no error.
@pytest.mark.parametrize("text", [
    r"So $3^4 = 1 \pmod 5$.",
    r"So $2^{10} = 1 \pmod{11}$.",
    r"Thus $7 \cdot 8 = 2 \pmod{9}$.",
    r"Hence $3 \cdot 5 = 1 \mod 7$.",
    r"So $3 \cdot 5 = 1 \ (\text{mod } 7)$.",
    r"So $3 \cdot 5 = 1 \ (\mathrm{mod}\ 7)$.",
    r"So $3 \cdot 5 = 1 \bmod 7$.",
    r"Working mod 7, 3 * 5 = 1.",
    r"In $\mathbb{Z}_7$, $3 \cdot 5 = 1$.",
    r"Since $2^{10} \equiv 1$, we get $2^{20} = 1$.",  # the modulus was named in another step
    r"We need $2^{-1} = 4 \pmod 7$.",
    r"The units digit of the product: 3 * 7 = 1.",
    r"The last two digits: 7 * 43 = 1.",
])
def test_congruences_in_a_modular_step_are_not_flagged(text: str) -> None:
    assert wrong(text) == []


def test_a_residue_that_fits_no_modulus_the_step_names_is_flagged_with_the_residue() -> None:
    assert wrong(r"Thus $7 \cdot 8 = 3 \pmod{9}$.") == [
        (r"7 \cdot 8 = 3", r"7 \cdot 8 is 56, which is 2 modulo 9, not 3.")]
    assert wrong(r"So $3 \cdot 5 = 2 \bmod 7$.") == [
        (r"3 \cdot 5 = 2", r"3 \cdot 5 is 15, which is 1 modulo 7, not 2.")]
    assert wrong("The units digit: 3 * 7 = 2.") == [("3 * 7 = 2", "3 * 7 is 21, not 2.")]


# A step about another base writes numerals in it: "In base 6, 4 + 5 = 13" is right.
@pytest.mark.parametrize("text", [
    r"In base 6, $4 + 5 = 13$.",
    r"In base $8$, $7 + 1 = 10$.",
    "We work in base 7. Then 6 + 6 = 15.",
    r"In base $b$, $5 + 5 = 11$ means $b = 9$.",
    "In hexadecimal, 9 + 9 = 12.",
    "In binary, 1 + 1 = 10.",
])
def test_numerals_of_another_base_are_not_flagged(text: str) -> None:
    assert wrong(text) == []


def test_a_digit_the_named_base_has_not_makes_the_claim_decimal() -> None:
    # "8" is no base-6 digit, so this is decimal arithmetic (the triangle's base), and wrong
    assert wrong("With base 6 and height 8, the area is 6 * 8 / 2 = 25.") == [
        ("6 * 8 / 2 = 25", "6 * 8 / 2 is 24, not 25.")]
    assert wrong("The base is 6 and the height 8, so the area is 6 * 8 / 2 = 25.") == [
        ("6 * 8 / 2 = 25", "6 * 8 / 2 is 24, not 25.")]


# A claim quoted to be corrected, or supposed, is not one the step makes.
@pytest.mark.parametrize("text", [
    "Earlier I said 7 * 8 = 54, but actually 7 * 8 = 56.",
    "I made an error: 7 * 8 = 54 should be 56.",
    "7 * 8 = 54? No; instead it is 56.",
    "Let me reconsider: suppose 2 + 2 = 5; then everything breaks.",
    "Previously, I had 6 * 7 = 43, which I now correct.",
    "We check whether 17 * 3 = 41: it is not.",
    "I thought 12 * 12 = 124, but 12 * 12 = 144.",
])
def test_quoted_or_supposed_claims_are_not_flagged(text: str) -> None:
    assert wrong(text) == []


def test_the_correction_after_a_quoted_error_is_still_judged() -> None:
    assert wrong("Earlier I said 7 * 8 = 54, but actually 7 * 8 = 57.") == [("7 * 8 = 57", "7 * 8 is 56, not 57.")]


def test_the_dollar_that_opens_math_is_no_part_of_the_claim() -> None:
    assert statuses(r"So $9 \cdot 8 = 72 \pmod{100}$.") == [("ok", r"9 \cdot 8 = 72")]


@settings(max_examples=60, deadline=None)
@given(a=st.integers(0, 10**6), b=st.integers(0, 10**6), m=st.integers(2, 1000),
       style=st.sampled_from([r"$%s \cdot %s = %s \pmod{%s}$", r"$%s \times %s = %s \mod %s$",
                              r"%s * %s = %s (mod %s)", r"$%s \cdot %s \equiv %s \pmod %s$"]))
def test_any_correct_residue_is_never_flagged(a: int, b: int, m: int, style: str) -> None:
    assert wrong("So " + style % (a, b, a * b % m, m) + ".") == []


# Readings a competition solution relies on, and that are ambiguous: neither reading is flagged.
@pytest.mark.parametrize("text", [
    "$6/2(1+2) = 1$",  # juxtaposition binds first
    "$6/2(1+2) = 9$",  # left to right
    r"$1/2(3 + 5)(4) = 16$",
    r"Substituting $x = -3$: $x^2 = -3^2 = 9$.",  # the minus is the base's sign
    "$-3^2 = -9$",
    "negative 3 + 5 = 2",  # -3 + 5
    r"$2^3! = 64$",  # 2^(3!) or (2^3)!: not judged
])
def test_ambiguous_notation_is_not_flagged(text: str) -> None:
    assert wrong(text) == []


def test_a_value_that_fits_neither_reading_is_flagged() -> None:
    assert wrong("$6/2(1+2) = 4$") == [("6/2(1+2) = 4", "6/2(1+2) is 9, not 4.")]
    assert wrong("So $2 - 3^2 = 7$.") == [("2 - 3^2 = 7", "2 - 3^2 is -7, not 7.")]


# Factorials and binomial coefficients are read exactly; a wrong one is flagged.
@pytest.mark.parametrize(("text", "claim", "feedback"), [
    (r"So $\binom{5}{2} = 20$.", r"\binom{5}{2} = 20", r"\binom{5}{2} is 10, not 20."),
    (r"$\dbinom{10}{3} = 720$", r"\dbinom{10}{3} = 720", r"\dbinom{10}{3} is 120, not 720."),
    (r"$\frac{10!}{8!2!} = 90$", r"\frac{10!}{8!2!} = 90", r"\frac{10!}{8!2!} is 45, not 90."),
    (r"$5! = 100$", "5! = 100", "5! is 120, not 100."),
    (r"$7!/5! = 41$", "7!/5! = 41", "7!/5! is 42, not 41."),
    (r"$\binom{6}{2} + \binom{6}{3} = 36$", r"\binom{6}{2} + \binom{6}{3} = 36",
     r"\binom{6}{2} + \binom{6}{3} is 35, not 36."),
    (r"$(5-1)! = 120$", "(5-1)! = 120", "(5-1)! is 24, not 120."),
])
def test_wrong_factorials_and_binomials_are_flagged(text: str, claim: str, feedback: str) -> None:
    assert wrong(text) == [(claim, feedback)]


@pytest.mark.parametrize("text", [
    "$5!=6$",  # "!=" is "not equal" in code
    "$4!! = 8$",  # a double factorial is not read
    "So 3 + 2 = 5!",  # an exclamation after a result
    r"$\binom{n}{2} = 10$",
    "$1000! = 5$",  # past the size limit: unknown
])
def test_factorial_notation_that_is_not_read_for_sure_is_not_flagged(text: str) -> None:
    assert wrong(text) == []


@settings(max_examples=80, deadline=None)
@given(n=st.integers(0, 40), k=st.integers(0, 40), style=st.sampled_from([
    r"$\binom{%(n)s}{%(k)s} = %(c)s$", r"$\dbinom{%(n)s}{%(k)s} = %(c)s$",
    r"So $\frac{%(n)s!}{%(k)s!(%(n)s-%(k)s)!} = %(c)s$.", r"$%(n)s! = %(f)s$", r"$%(n)s!/%(n)s = %(g)s$"]))
def test_correct_factorials_and_binomials_are_never_flagged_and_are_judged(n: int, k: int, style: str) -> None:
    import math

    k = min(k, n)
    text = style % {"n": n, "k": k, "c": math.comb(n, k), "f": math.factorial(n),
                    "g": math.factorial(n) // n if n else 0}
    if n == 0 and "/" in style:
        assert wrong(text) == []  # a division by zero is not checked
        return
    assert [s for s, _ in statuses(text)] == ["ok"]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 40), k=st.integers(0, 40), delta=st.integers(1, 10**6))
def test_a_binomial_off_by_anything_is_flagged(n: int, k: int, delta: int) -> None:
    import math

    k = min(k, n)
    assert len(wrong(f"So $\\binom{{{n}}}{{{k}}} = {math.comb(n, k) + delta}$.")) == 1


# LaTeX notations read exactly.
@pytest.mark.parametrize(("text", "claim", "feedback"), [
    (r"$\frac34 \cdot 8 = 7$", r"\frac34 \cdot 8 = 7", r"\frac34 \cdot 8 is 6, not 7."),
    (r"$10 \cdot 100 = 1\,001$", r"10 \cdot 100 = 1\,001", r"10 \cdot 100 is 1,000, not 1\,001."),
    (r"\begin{aligned} 2^5 - 1 &= 32 - 1 \\ &= 30 \end{aligned}", r"32 - 1 \\ &= 30", "32 - 1 is 31, not 30."),
])
def test_latex_notations_are_read_exactly(text: str, claim: str, feedback: str) -> None:
    assert wrong(text) == [(claim, feedback)]


@pytest.mark.parametrize("text", [
    r"$\frac12 + \frac12 = 1$",
    r"$\frac123 = 5$",  # \frac{1}{2}3 or \frac{12}{3}: not read
    r"$2^{20} = 1\,048\,576$",
    r"$\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}$ and $x &= 5 \\ y &= 7$",
])
def test_latex_notations_that_are_right_pass(text: str) -> None:
    assert wrong(text) == []


async def test_modular_work_named_in_the_prompt_or_an_earlier_step_holds_for_later_steps() -> None:
    trace = "We work modulo 7 throughout.\nThen 3 * 5 = 1.\nThen 4 * 4 = 3.\n"
    found = [v for v in await Arithmetic().ascan(trace) if isinstance(v, Fail)]
    assert [(trace[f.span.start:f.span.end], f.feedback) for f in found] == [
        ("4 * 4 = 3", "4 * 4 is 16, which is 2 modulo 7, not 3.")]
    assert wrong("Then 3 * 5 = 1.") == [("3 * 5 = 1", "3 * 5 is 15, not 1.")]  # no context: an error

    result = await Monitor(Scripted("So 3 * 5 = 1 and 2 * 4 = 1.\n"), [Arithmetic()]).run(
        "Compute everything modulo 7.")
    assert result.passed and not any(isinstance(v, Fail) for v in result.verdicts)
    assert [f.status for f in check_text("4 + 5 = 13", context=context_of("Write it in base 6."))] == ["unsure"]
    assert [f.status for f in check_text("4 + 5 = 13")] == ["wrong"]
