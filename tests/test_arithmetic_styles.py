"""Arithmetic verifier on the notations chat models write beyond GSM8K's calculator annotations: markdown bold,
LaTeX align and \\text{} units, rates ("$2/egg", "= 128 per week"), asides in brackets, rounding, unit powers,
mixed numbers. Each wrong claim is flagged with its exact span and feedback; each trap is left alone."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from interlock import Fail
from interlock.verifiers import Arithmetic
from interlock.verifiers.arithmetic import check_text
from support import statuses, wrong


@pytest.mark.parametrize(("text", "claim", "feedback"), [
    # markdown bold on the stated value
    ("- Weekly: $18 × 7 = **$128**", "$18 × 7 = **$128", "$18 × 7 is $126, not $128."),
    ("So 16 - 3 - 4 = **8** eggs.", "16 - 3 - 4 = **8", "16 - 3 - 4 is 9, not 8."),
    ("3 + 4 is **8**.", "3 + 4 is **8", "3 + 4 is 7, not 8."),
    # LaTeX align: "&=" is an alignment mark
    (r"18 \times 7 &= 127 \\", r"18 \times 7 &= 127", r"18 \times 7 is 126, not 127."),
    # \text{} with a rate or several words
    (r"\[ 5 \text{ hours} \times 12 \text{ dollars/hour} = 50 \text{ dollars} \]",
     r"5 \text{ hours} \times 12 \text{ dollars/hour} = 50",
     r"5 \text{ hours} \times 12 \text{ dollars/hour} is 60, not 50."),
    (r"\( 9\text{ eggs} \times 7 = 62\text{ eggs per week} \)", r"9\text{ eggs} \times 7 = 62",
     r"9\text{ eggs} \times 7 is 63, not 62."),
    (r"\( 160 \text{ hours} \times \$15/\text{hour} = \$2{,}500 \)",
     r"160 \text{ hours} \times \$15/\text{hour} = \$2{,}500",
     r"160 \text{ hours} \times \$15/\text{hour} is $2,400, not \$2{,}500."),
    # a rate after an amount, and "per <unit>" after the result
    ("9 eggs × $2/egg = $19", "9 eggs × $2/egg = $19", "9 eggs × $2/egg is $18, not $19."),
    ("$5/hour × 2 hours = $12", "$5/hour × 2 hours = $12", "$5/hour × 2 hours is $10, not $12."),
    ("is $200000 x .05 = $100/year", "$200000 x .05 = $100", "$200000 x .05 is $10000, not $100."),
    ("Then $18 \\times 7 = 128$ per week.", "18 \\times 7 = 128", "18 \\times 7 is 126, not 128."),
    (r"So $2^3 \cdot 3^2 = 64$.", r"2^3 \cdot 3^2 = 64", r"2^3 \cdot 3^2 is 72, not 64."),
    ("24 / 2 = 13 per person", "24 / 2 = 13", "24 / 2 is 12, not 13."),
    ("9,300 / 30 = 275 miles per day.", "9,300 / 30 = 275", "9,300 / 30 is 310, not 275."),
    # words in brackets after the value
    ("3 × 4 = 13 (eggs)", "3 × 4 = 13", "3 × 4 is 12, not 13."),
    ("100 / 30 = 5 buses (rounded up)", "100 / 30 = 5", "100 / 30 is about 3.33, not 5."),
    ("A round trip is 2 × 18 = 40 miles.", "2 × 18 = 40", "2 × 18 is 36, not 40."),  # no rounding spoken of
    # a unit's power after the value, a metre sign
    ("Volume: 4 × 3 × 2 = 25 cm³.", "4 × 3 × 2 = 25", "4 × 3 × 2 is 24, not 25."),
    ("Area = 12 × 8 = 86 ft^2", "12 × 8 = 86", "12 × 8 is 96, not 86."),
    ("Perimeter: 2 × (12 + 8) = 42 m.", "2 × (12 + 8) = 42", "2 × (12 + 8) is 40, not 42."),
    # mixed numbers as results
    ("2 1/2 + 1 1/4 = 3 1/4 hours", "2 1/2 + 1 1/4 = 3 1/4", "2 1/2 + 1 1/4 is 3 3/4, not 3 1/4."),
    ("1/2 - 2 = -2 1/2", "1/2 - 2 = -2 1/2", "1/2 - 2 is -1 1/2, not -2 1/2."),
    ("3/4 + 3/4 = 1 1/4", "3/4 + 3/4 = 1 1/4", "3/4 + 3/4 is 1 1/2, not 1 1/4."),
    # arrows between steps, an x glued between numbers
    ("16 - 3 - 4 = 9 => 9 x 2 = 19", "9 x 2 = 19", "9 x 2 is 18, not 19."),
    ("16 - 3 - 4 = 9 -> 9 x 2 = 19", "9 x 2 = 19", "9 x 2 is 18, not 19."),
    ("16 − 3 − 4 = 9 ⇒ 9 × 2 = 19", "9 × 2 = 19", "9 × 2 is 18, not 19."),
    ("9x2 = 19", "9x2 = 19", "9x2 is 18, not 19."),
    ("a 3x4x5 box = 50 cubes", "3x4x5 box = 50", "3x4x5 box is 60, not 50."),
    # list markers with letters or roman numerals, quote marks
    ("a) 16 - 3 - 4 = 11", "16 - 3 - 4 = 11", "16 - 3 - 4 is 9, not 11."),
    ("(b) 16 - 3 - 4 = 11", "16 - 3 - 4 = 11", "16 - 3 - 4 is 9, not 11."),
    ("iv) 3 + 4 = 8", "3 + 4 = 8", "3 + 4 is 7, not 8."),
    ("> - 3 + 4 = 8", "3 + 4 = 8", "3 + 4 is 7, not 8."),
    # "of" after the label of the result only says what is counted (SmolLM2 wrote the first one)
    ("So, 28 - 3 = 22 slices of peach were eaten.", "28 - 3 = 22", "28 - 3 is 25, not 22."),
    ("This results in 20 + 5 = 26 liters of grape drink.", "20 + 5 = 26", "20 + 5 is 25, not 26."),
    ("3/4 of 120 = 80 pages of the book", "3/4 of 120 = 80", "3/4 of 120 is 90, not 80."),
    # results stated with a verb, and a whole expression named by "the sum of"
    ("16 - 3 - 4 leaves 8 eggs.", "16 - 3 - 4 leaves 8", "16 - 3 - 4 is 9, not 8."),
    ("So 9 * 2 makes 19 dollars.", "9 * 2 makes 19", "9 * 2 is 18, not 19."),
    ("The sum of 2 + 4 is 7.", "2 + 4 is 7", "2 + 4 is 6, not 7."),
    ("The result of 12 / 4 is 4.", "12 / 4 is 4", "12 / 4 is 3, not 4."),
    # Chinese and Japanese glue words to numbers
    ("所以16 - 3 - 4 = 8个鸡蛋。", "16 - 3 - 4 = 8", "16 - 3 - 4 is 9, not 8."),
    ("她有16-3-4=9个，卖了9×2=19元。", "9×2=19", "9×2 is 18, not 19."),
    ("つまり16 - 3 - 4 = 8個です。", "16 - 3 - 4 = 8", "16 - 3 - 4 is 9, not 8."),
    # an ordinal opens an aside in brackets after the result (SmolLM2 again)
    ("There are 76 - 30 = 24 girls (4th grade) who are absent.", "76 - 30 = 24", "76 - 30 is 46, not 24."),
])
def test_wrong_claims_in_model_notations(text: str, claim: str, feedback: str) -> None:
    assert wrong(text) == [(claim, feedback)]


@pytest.mark.parametrize("text", [
    "- Weekly: $18 × 7 = **$126**", "**Answer:** 9 × $2 = **$18**", r"18 \times 7 &= 126 \\",
    r"\[ 5 \text{ hours} \times 12 \text{ dollars/hour} = 60 \text{ dollars} \]",
    r"\( 4 \text{ weeks} \times 5 \text{ days/week} = 20 \text{ days} \)",
    "9 eggs × $2/egg = $18", "Then $18 \\times 7 = 126$ per week.", "3 × 4 = 12 (eggs)",
    "4 × 3 × 2 = 24 m³.", "2 × (12 + 8) = 40 m.", "2 1/2 + 1 1/4 = 3 3/4", "1/2 - 2 = -1 1/2",
    # rounding spoken of in the step: a ceiling or a rounder number is what was meant
    "100 / 3 = 34 rounded up", "100 / 30 = 4 buses, rounded up", "100 / 30 = 4 buses (rounded up)",
    "Rounding up, 100 / 30 = 4 buses.", "1234 + 5 = 1240, rounded to the nearest ten",
    "16 - 3 - 4 = 9 => 9 x 2 = 18", "1920x1080 = 2,073,600 pixels",
    "2 * 3 = 6 cups of flour", "20% of 150 = 30 grams of sugar", "10 / 2 = 5 groups of 3",
    "There are 76 - 30 = 46 girls (4th grade).", "So 3 * 4 = 12 (1st batch)",
    "3 * 4 gives 12.", "12 / 4 yields 3 groups", "The sum of 2 + 4 is 6.",
    "所以16 - 3 - 4 = 9个鸡蛋。", "16 − 3 = 13（个）",
])
def test_correct_claims_in_model_notations_pass(text: str) -> None:
    found = statuses(text)
    assert found and all(status == "ok" for status, _ in found), found


@pytest.mark.parametrize("text", [
    "20 / 100 = 20 per cent", "3 + 4 = 8 pages per 2 days", "3 * 5 = 1 (mod 7)", "3 × 4 = 13 (dozen)",
    "1234 + 5 = 1200 (approx.)", "2,000,000 × 4 = $8 m", "2,000 × 4 = 8 k", "3 + 4 = 8 (or 9)",
    "12 m × 8 m = 86 m²", "60 km/h × 2 h = 100 km", "3 hours 20 minutes + 40 minutes = 4 hours",
    r"\( 5 \text{ th} + 2 = 8 \)", r"2 \left( 10 + 5 \right) = 31",
    "4 + 3 = 8 per 100 km", "**Total:** **5 + 3** = 9",
    "0x10 = 16", "2x + 3 = 8", "Step 3 - 16 - 3 - 4 = 9", "Day 2 - 5 + 3 = 8", "+ 16 - 3 = 28",
    "3 + 4 => 8", "x > 5 -> 3 + 1 = 4", "10 -> 2 = 5",
    # "of" that changes the value, or an expression that may start before the "of"
    "2 * 3 = 5 dozen of eggs", "4 * 3 = 10 percent of the total", "He has 3 boxes of 4 + 2 = 14 pencils.",
    # verbs that state no result here, and "of" after a word that is no name of the whole
    "Multiplying 3 by 4 gives 13.", "10 - 4 leaves her with 7.", "2 + 3 makes 5 more than 1.",
    "She uses 3 + 4 leaves of lettuce.", "Half of 10 + 2 is 7.", "the sum of 3 + 4 and 5 is 11",
    # characters that take part in the calculation: 万 is 10,000, 倍 "times", 乘以 "multiplied by"
    "30000 × 2 = 6万", "5 + 5 = 10万元", "3 × 4 = 12倍", "乘以3 + 4 = 8", "一半16 + 2 = 10",
])
def test_not_flagged_in_model_notations(text: str) -> None:
    assert wrong(text) == [], wrong(text)


TRACE = r"""Let's break this down step by step.

1. **Eggs laid per day:** 16 eggs.
2. **Eggs remaining:** 16 - 3 - 4 = 9 eggs.
3. **Money made:** 9 eggs × $2/egg = **$18**.

\begin{aligned}
9 \times 2 &= 18 \\
18 \times 7 &= 127
\end{aligned}

**Answer:** Janet makes **$18** every day, or $18 \times 7 = 126$ per week."""


def test_scan_flags_only_the_wrong_line_of_a_markdown_latex_trace() -> None:
    verdicts = Arithmetic().scan(TRACE)
    fails = [v for v in verdicts if isinstance(v, Fail)]
    spans = [f.span for f in fails]
    assert all(span is not None for span in spans)
    assert [(TRACE[s.start:s.end], f.feedback) for s, f in zip(spans, fails, strict=True) if s is not None] == [
        (r"18 \times 7 &= 127", r"18 \times 7 is 126, not 127.")]


# Property: a calculation with its result in any of the styles models write passes with the true value and is
# flagged, over exactly the claim, with a wrong one.
STYLES = {
    "bold": ("{e} = **{r}**", "{e} = **{r}"),
    "per": ("{e} = {r} per week.", "{e} = {r}"),
    "aside": ("{e} = {r} (apples)", "{e} = {r}"),
    "align": ("{e} &= {r} \\\\", "{e} &= {r}"),
    "text": ("\\( {e} = {r} \\text{{ apples per day}} \\)", "{e} = {r}"),
}
ints = st.integers(min_value=1, max_value=999)


@settings(max_examples=200, deadline=None)
@given(a=ints, b=ints, c=ints, ops=st.sampled_from(["+-", "*+", "-*", "++", "*-"]),
       style=st.sampled_from(sorted(STYLES)), delta=st.integers(-20, 20))
def test_result_styles_are_read(a: int, b: int, c: int, ops: str, style: str, delta: int) -> None:
    expr = f"{a} {ops[0]} {b} {ops[1]} {c}"
    v = eval_plain(a, b, c, ops)
    stated = v + delta
    template, claim = STYLES[style]
    text = template.format(e=expr, r=stated)
    found = check_text(text)
    expected = "ok" if delta == 0 else "wrong"
    assert [f.status for f in found] == [expected], (text, [(f.status, f.judgement.reason) for f in found])
    f = found[0]
    assert text[f.start:f.end] == claim.format(e=expr, r=stated)
    if delta:
        assert f.judgement.feedback == f"{expr} is {v}, not {stated}."


def eval_plain(a: int, b: int, c: int, ops: str) -> int:
    """a op b op c with the usual precedence, for the whole-number operators the property uses."""
    first, second = ops[0], ops[1]
    if second == "*":
        bc = b * c
        return a + bc if first == "+" else a - bc if first == "-" else a * bc
    ab = a + b if first == "+" else a - b if first == "-" else a * b
    return ab + c if second == "+" else ab - c


@pytest.mark.parametrize("text", [
    "Wait, is 340 + 51 = 381? No, 340 + 51 = 391.", "Does 3 + 4 = 8?", "3 + 4 = 8 is wrong",
    "I wrote 3 + 4 = 8, which is wrong.", "3 + 4 = 8 (wrong!)", "Check: 3 + 4 = 8 ✗", "3 + 4 = 8 ❌",
    "I incorrectly computed 3 + 4 = 8 before.", "3 + 4 = 8 is not right", "Earlier: 12 * 7 = 89 was a typo",
])
def test_claims_asked_about_or_refuted_are_not_flagged(text: str) -> None:
    assert wrong(text) == []


@pytest.mark.parametrize(("text", "claim", "feedback"), [
    ("16 - 3 = 12, not 13", "16 - 3 = 12", "16 - 3 is 13, not 12."),  # the value it states is 12
    ("So 3 + 4 = 8 eggs and 5 + 5 = 10 is correct.", "3 + 4 = 8", "3 + 4 is 7, not 8."),
    ("Is it 5 + 5? Yes: 5 + 5 = 11.", "5 + 5 = 11", "5 + 5 is 10, not 11."),
])
def test_claims_near_a_question_or_a_verdict_on_another_are_still_judged(text: str, claim: str,
                                                                          feedback: str) -> None:
    assert wrong(text) == [(claim, feedback)]
