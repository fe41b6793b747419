"""Recall: the calculations models plainly write are read and judged (links between two expressions, words
around a claim, reversed claims, remainders, results after "which is", chains continued over lines), and the
forms that only look like a wrong claim are left alone (refuted or tested claims, a fraction before letters,
a modulus or base that only the problem names)."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from interlock import Arithmetic
from interlock.verifiers.arithmetic import check_text, context_of, wrong_claims


def wrong(text: str, **kw: object) -> list[tuple[str, str]]:
    return [(text[f.start:f.end], f.judgement.feedback) for f in wrong_claims(check_text(text, **kw))]


# --- 1. every "=" between two checkable expressions is a claim ------------------------------------------------

@pytest.mark.parametrize(("text", "span", "feedback"), [
    ("(7 + 2 - -3 * 2) = (7 + 2 - 6) = 3", "(7 + 2 - -3 * 2) = (7 + 2 - 6)",
     "(7 + 2 - -3 * 2) is 15, but (7 + 2 - 6) is 3."),
    ("6 * 40 - 25 = 260 - 25 = 235", "6 * 40 - 25 = 260 - 25", "6 * 40 - 25 is 215, but 260 - 25 is 235."),
    ("(1/6) + (10/30) = (4/30) + (10/30) = 14/30", "(1/6) + (10/30) = (4/30) + (10/30)",
     "(1/6) + (10/30) is 1/2, but (4/30) + (10/30) is 7/15."),
    (r"24 \times 5 \times 3 = 360 \times 3 = 1080", r"24 \times 5 \times 3 = 360 \times 3",
     r"24 \times 5 \times 3 is 360, but 360 \times 3 is 1080."),
    ("So 17 * 23 = 17 * 20 + 17 * 3 = 340 + 41 = 381.", "17 * 20 + 17 * 3 = 340 + 41",
     "17 * 20 + 17 * 3 is 391, but 340 + 41 is 381."),
    ("12 × (8 − 3) = 12 × 4 = 48", "12 × (8 − 3) = 12 × 4", "12 × (8 − 3) is 60, but 12 × 4 is 48."),
    ("$9 \\cdot 7 + 2 = 56 + 2 = 58$", "9 \\cdot 7 + 2 = 56 + 2", "9 \\cdot 7 + 2 is 65, but 56 + 2 is 58."),
])
def test_a_wrong_link_between_two_expressions_is_flagged(text: str, span: str, feedback: str) -> None:
    assert wrong(text)[:1] == [(span, feedback)]


@pytest.mark.parametrize("text", [
    "6 * 40 - 25 = 240 - 25 = 215", "(1/6) + (10/30) = (5/30) + (10/30) = 15/30 = 1/2",
    "He had 20 - 5 = 15 + 3 = 18 marbles.",  # a running total goes on from a value
    "5 * 3 = 15 * 2 = 30",  # ... also with a product after it
    "13*1.5 = 19.5 times $1.5 = $29.25",
    "100 / 3 * 3 = 33.33 * 3 = 99.99",  # a rounded value inside the right side
    "2 * (3.14 * 5) = 2 * 15.7 = 31.4",
    "3 hours + 30 minutes = 180 minutes + 30 minutes = 210 minutes",
])
def test_a_true_or_running_link_is_not_flagged(text: str) -> None:
    assert wrong(text) == []


def test_a_latex_display_continued_over_lines_is_one_chain() -> None:
    text = ("We compute:\n\\[ 48 \\times 111 = 48 \\times 100 + 48 \\times 11 \\]\n\\[ = 4800 + 528 \\]\n"
            "\\[ = 5329 \\]\nSo the answer is 5329.")
    fails = [v for v in Arithmetic().scan(text) if v.kind == "fail"]
    assert [(text[v.span.start:v.span.end], v.feedback) for v in fails] == [("\\[ = 5329",
                                                                            "4800 + 528 is 5328, not 5329.")]
    found = check_text("\\[ = 5329 \\]", before="\\[ = 4800 + 528 \\]\n")
    assert [(f.status, f.start, f.end) for f in found] == [("wrong", -len("4800 + 528 \\]\n"), len("\\[ = 5329"))]


@pytest.mark.parametrize(("text", "flagged", "feedback"), [
    ("\\begin{align*}\n7 \\cdot 8 + 3 &= 56 + 3 \\\\\n&= 60\n\\end{align*}", "56 + 3 \\\\\n&= 60",
     "56 + 3 is 59, not 60."),
    ("48 × 111\n= 48 × 100 + 48 × 11\n= 4800 + 528\n= 5338", "4800 + 528\n= 5338", "4800 + 528 is 5328, not 5338."),
    ("Total:\n$$ 12 \\times 12 $$\n$$ = 140 $$", "12 \\times 12 $$\n$$ = 140", "12 \\times 12 is 144, not 140."),
])
def test_chains_continued_on_the_next_line_are_checked(text: str, flagged: str, feedback: str) -> None:
    """The monitor cuts steps at line ends: the claim is judged with the step that ends it, its span clipped to
    that step; offline, ``check_text(before=...)`` gives its whole span."""
    fails = [v for v in Arithmetic().scan(text) if v.kind == "fail"]
    assert [(text[v.span.start:v.span.end], v.feedback) for v in fails] == [(flagged.rsplit("\n", 1)[1], feedback)]
    cut = text.index(flagged) + flagged.index("\n") + 1
    found = wrong_claims(check_text(text[cut:], before=text[:cut]))
    assert [(f.start + cut, f.end + cut) for f in found] == [(text.index(flagged), text.index(flagged) + len(flagged))]


# --- 2. words around a claim ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "span", "expected"), [
    ("So she is left with 9 - 4 + 1 = 5 apples.", "9 - 4 + 1 = 5", "6"),
    ("There are a total of 30 + 120 + 60 = 220 sheep.", "30 + 120 + 60 = 220", "210"),
    ("He paid a total of $15 * 40 = $650 for the tickets.", "$15 * 40 = $650", "$600"),
    ("She needs $20 + $35 - $5 = $45 more.", "$20 + $35 - $5 = $45", "$50"),
    ("It took (20 + 40)/2 = 35 minutes to bake.", "(20 + 40)/2 = 35", "30"),
    ("He walked 40 - 6 - 21 = 12 miles.", "40 - 6 - 21 = 12", "13"),
    ("The room is 120 square feet x $12 = $1540.", "120 square feet x $12 = $1540", "$1440"),
    ("She used 3 * 4 = 24 cups of flour.", "3 * 4 = 24", "12"),
    ("So we get -381 - 662 = -1046 km.", "-381 - 662 = -1046", "-1043"),
    ("They ran 12 + 15 = 28 km to the lake.", "12 + 15 = 28", "27"),
    ("She ends up with 50 - 12 - 9 = 31 stickers.", "50 - 12 - 9 = 31", "29"),
    ("The class needs 400 - 475 = 76 more points.", "400 - 475 = 76", "-75"),
])
def test_words_around_a_claim_do_not_hide_it(text: str, span: str, expected: str) -> None:
    assert [(s, f.split(" is ", 1)[1].split(", not")[0]) for s, f in wrong(text)] == [(span, expected)]


@pytest.mark.parametrize("text", [
    "She has 3 + 2 = 5 more than 10.",  # "5 more than 10" may be the value
    "It is 3 + 4 = 5 to 9 hours.",  # a range
    "The result is 2^3 = 2 to the power 3.",
    "Multiply 3 with 4 + 2 = 14.",  # "with" after an operation verb is part of the calculation
    "half of 10 + 2 = 7",
    "So, he got $1800 - $2000 = $200 less.",  # a difference stated as how much less, either order
    "The class needs 400 - 475 = 75 more points.",
])
def test_risky_words_still_keep_a_claim_unjudged(text: str) -> None:
    assert wrong(text) == []


# --- 3. reversed claims, remainders, "which is" -------------------------------------------------------------

@pytest.mark.parametrize(("text", "span", "feedback"), [
    ("221 = 13 * 18", "221 = 13 * 18", "13 * 18 is 234, not 221."),
    ("So 95 = 11 * 8 + 6.", "95 = 11 * 8 + 6", "11 * 8 + 6 is 94, not 95."),
    ("400 = 17 × 23 + 7", "400 = 17 × 23 + 7", "17 × 23 + 7 is 398, not 400."),
    ("Check: 1001 = 7 \\times 11 \\times 12", "1001 = 7 \\times 11 \\times 12",
     "7 \\times 11 \\times 12 is 924, not 1001."),
    ("400 \\div 17 = 23 \\text{ remainder } 7", "400 \\div 17 = 23 \\text{ remainder } 7",
     "400 \\div 17 is 23 remainder 9, not 23 \\text{ remainder } 7."),
    ("100 / 7 = 14 R 3", "100 / 7 = 14 R 3", "100 / 7 is 14 remainder 2, not 14 R 3."),
    ("58 ÷ 5 = 11 with a remainder of 4.", "58 ÷ 5 = 11 with a remainder of 4",
     "58 ÷ 5 is 11 remainder 3, not 11 with a remainder of 4."),
    ("12 * 13, which is 157.", "12 * 13, which is 157", "12 * 13 is 156, not 157."),
    ("Then 45 + 38 that gives 84 in all.", "45 + 38 that gives 84", "45 + 38 is 83, not 84."),
    ("Together 250 + 175, which equals 415.", "250 + 175, which equals 415", "250 + 175 is 425, not 415."),
])
def test_reversed_remainder_and_which_is_forms_are_read(text: str, span: str, feedback: str) -> None:
    assert wrong(text) == [(span, feedback)]


@pytest.mark.parametrize("text", [
    "221 = 13 * 17", "400 = 17 × 23 + 9", "400 \\div 17 = 23 \\text{ remainder } 9", "100 / 7 = 14 R 2",
    "58 ÷ 5 = 11 with a remainder of 3.", "12 * 13, which is 156.", "0.5 = 1/2", "0.33 = 1/3",
    "Day 2 = 10 + 5",  # a label, not a value
    "48 = 100% + 20% = 120% of the actual number",  # shares of an amount
    "100 Ah = 100 * 0.001 kAh",  # a unit the other side does not carry
    "So 3 + 2 = 5!",
])
def test_true_or_unreadable_forms_of_these_kinds_are_not_flagged(text: str) -> None:
    assert wrong(text) == []


# --- 4. false alarms removed ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "\\frac{1}{2}bh = 7", "\\frac{1}{2}ab = 12", "A = \\frac{1}{2}bh = 7",
    "3 * 5 = 16 (False)", "3 * 5 = 16 ✗", "3 * 5 = 16, which is not true.",
    "Try x = 3: 3 * 3 + 2 = 12, so x = 3 does not work.",
    "Substituting gives 0 + 14 * 61 = 855, which simplifies to 854, so the equation fails.",
    "If n = 4 then 4 * 4 - 1 = 14, which isn't equal to 15.",
    "Plugging in: 2 * 9 + 1 = 20 \\neq 19, a contradiction.",
    "\\[ 6 = \\frac{1}{2} \\left| \\text{det} \\right| \\]",  # an absolute value follows the fraction
    "\\left| 3 - 7 \\right| = 4",
    "So 25 = 16 - 2(ac + bd) + 9.",  # the right side goes on with letters: not all there
    "96^2 = 144 + 2 \\sum_{i<j} a_i a_j",
    "Plugging into the original equation: 3 + (-1/2) = 7/(-2)",
    "343 + 3675 + 2625 + 125 = 343 + 125 = 468",  # a part of the sum worked out first
    "9 \\& 2 = \\frac{\\sqrt{9 \\cdot 2 + 9}}{\\sqrt{9 \\cdot 2 - 2}}",  # an operation the problem defines
])
def test_refuted_tested_and_symbolic_forms_are_not_flagged(text: str) -> None:
    assert wrong(text) == []


def test_a_modulus_named_only_in_the_problem_does_not_silence_a_decimal_claim() -> None:
    problem = context_of("What is the units digit of 253 * 341?")
    assert wrong("253 \\cdot 341 = 86373", context=problem) == [
        ("253 \\cdot 341 = 86373", "253 \\cdot 341 is 86273, not 86373.")]
    assert wrong("253 \\cdot 341 = 86273", context=problem) == []
    assert wrong("3 = 3", context=problem) == []
    mod7 = context_of("We work mod 7 throughout.")
    assert wrong("3 * 5 = 1", context=mod7) == []  # a reduced residue
    assert wrong("3 * 5 = 8", context=mod7) == [("3 * 5 = 8", "3 * 5 is 15, which is 1 modulo 7, not 8.")]
    base6 = context_of("Answer in base 6.")
    assert wrong("4 + 5 = 13", context=base6) == []  # true in base 6
    # base-6 digits do not make a claim right: 4 + 5 is 13 in base 6 (issue 24: a prompt's sentence must not excuse)
    assert wrong("4 + 5 = 14", context=base6) == [("4 + 5 = 14", "4 + 5 is 9, not 14.")]
    assert wrong("4 + 5 = 19", context=base6) == [("4 + 5 = 19", "4 + 5 is 9, not 19.")]
    octal = context_of("Write 100 in octal.")
    assert wrong("8 * 12 + 4 = 100", context=octal) == []  # true in base 8, though 8 is no octal digit


def test_a_value_just_tried_is_tested_not_claimed() -> None:
    text = ("First, check \\( x = 1 \\):\n\n\\[ 1 = \\sqrt{11 - 2(1)} + 4 \\]\n\n\\[ 1 = \\sqrt{9} + 4 \\]\n\n"
            "\\[ 1 = 3 + 4 \\]\n\nThat's not true.")
    assert [v for v in Arithmetic().scan(text) if v.kind == "fail"] == []
    assert wrong("So 221 = 13 * 18.", before="Let n = 13 and try it.\n") == [
        ("221 = 13 * 18", "13 * 18 is 234, not 221.")]  # 13 was tried, 221 was not


def test_the_verifier_reads_the_problem_context_and_flags_a_plain_claim() -> None:
    fails = [v for v in Arithmetic().scan("First, 253 * 341 = 86373.", prompt="Find the last two digits of 253 * 341.")
             if v.kind == "fail"]
    assert [v.feedback for v in fails] == ["253 * 341 is 86273, not 86373."]


# --- properties: true links in every notation are never flagged; a perturbed link is, with its span ---------

OPS = {"plain": ("+", "-", "*"), "unicode": ("+", "−", "×"), "latex": ("+", "-", "\\times")}
small = st.integers(min_value=1, max_value=60)


def render(a: int, op: str, b: int, style: str) -> str:
    return f"{a} {OPS[style]['+-*'.index(op)]} {b}"


def apply(a: int, op: str, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b


@settings(max_examples=150, deadline=None)
@given(a=small, b=small, c=small, op1=st.sampled_from("+-*"), op2=st.sampled_from("+-"),
       style=st.sampled_from(sorted(OPS)), form=st.sampled_from(["chain", "reversed", "which", "words", "display"]),
       delta=st.sampled_from([0, 1, -1, 2, 10, -7]))
def test_links_in_every_form(a: int, b: int, c: int, op1: str, op2: str, style: str, form: str, delta: int) -> None:
    first = apply(a, op1, b)
    stated = first + delta
    total = apply(stated, op2, c)
    # a wrong value that happens to be one of the numbers, or the whole left side's value, reads as a part of
    # the sum worked out first or a running total: sound to leave alone, so not what this property is about
    assume(delta == 0 or (stated not in (a, b, c) and stated != apply(first, op2, c)))
    head = render(a, op1, b, style)
    tail_op = OPS[style]["+-*".index(op2)]
    if form == "chain":
        text = f"{head} {tail_op} {c} = {stated} {tail_op} {c} = {total}"
        span = f"{head} {tail_op} {c} = {stated} {tail_op} {c}"
    elif form == "reversed":
        text = f"So {stated} = {head}."
        span = f"{stated} = {head}"
    elif form == "which":
        text = f"First, {head}, which is {stated}."
        span = f"{head}, which is {stated}"
    elif form == "words":
        text = f"She is left with {head} = {stated} apples."
        span = f"{head} = {stated}"
    else:
        text = f"\\[ {head} {tail_op} {c} \\]\n\\[ = {stated} {tail_op} {c} \\]\n\\[ = {total} \\]"
        span = f"{head} {tail_op} {c} \\]\n\\[ = {stated} {tail_op} {c}"
    fails = [v for v in Arithmetic().scan(text) if v.kind == "fail"]
    if delta == 0:
        assert fails == []
    elif form == "display":
        start = text.index(span)
        line_start = text.index("\n") + 1
        assert [(v.span.start, v.span.end) for v in fails] == [(line_start, start + len(span))]
    else:
        start = text.index(span)
        assert [(v.span.start, v.span.end) for v in fails] == [(start, start + len(span))]


@settings(max_examples=100, deadline=None)
@given(a=st.integers(min_value=1, max_value=5000), b=st.integers(min_value=2, max_value=60),
       style=st.sampled_from(["\\div", "÷", "/"]), word=st.sampled_from(["remainder", "R", "r", "rem"]),
       off=st.sampled_from([0, 1, -1]))
def test_remainders(a: int, b: int, style: str, word: str, off: int) -> None:
    q, r = divmod(a, b)
    text = f"{a} {style} {b} = {q} {word} {r + off}"
    found = wrong(text)
    if off == 0 or r + off < 0:
        assert found == [] if off == 0 else True
    else:
        assert found == [(text, f"{a} {style} {b} is {q} remainder {r}, not {q} {word} {r + off}.")]
