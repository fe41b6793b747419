"""Cost bounds per step (issue 14): long steps are checked in bounded windows, the size test comes first, the
Game of 24 dead-end search is bounded, and a constraints step shares one time budget. Timing is never
asserted: each test checks what is read and what is ``Unknown``, and that a hostile input ends."""

from __future__ import annotations

import asyncio
import random
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from interlock import Arithmetic, Game24
from interlock.verifiers.arithmetic import Limits, check_text, wrong_claims
from interlock.verifiers.game24.solver import MAX_NUMBERS, solvable, solvable_within

# The size bounds as shipped, with time bounds no loaded test machine reaches (timing is never what is tested).
UNHURRIED = Limits(seconds=30.0, window_seconds=30.0)


def prose(n: int, seed: int = 0) -> str:
    """About ``n`` characters of sentences with a true calculation in some of them."""
    rng = random.Random(seed)
    out: list[str] = []
    size = 0
    while size < n:
        a, b = rng.randint(1, 999), rng.randint(1, 999)
        s = f"Then {a} + {b} = {a + b} and some words follow here. " if rng.random() < 0.05 else "Words go on. "
        out.append(s)
        size += len(s)
    return "".join(out)


@pytest.mark.parametrize("where", [10, 7_990, 8_000, 8_500, 12_345, 20_000, 31_000])
def test_a_wrong_claim_anywhere_in_a_long_step_is_flagged_with_its_span(where: int) -> None:
    text = prose(where) + "So 17 * 23 = 381. " + prose(4_000, seed=1)
    start = text.index("17 * 23")
    found = wrong_claims(check_text(text, UNHURRIED))
    assert [(f.start, f.end, f.judgement.feedback) for f in found] == [(start, start + 13, "17 * 23 is 391, not 381.")]
    fails = [v for v in Arithmetic(limits=UNHURRIED).check(_step(text)) if v.kind == "fail"]
    assert [(v.span.start, v.span.end) for v in fails] == [(start, start + 13)]


def _step(text: str):  # type: ignore[no-untyped-def]
    from interlock import Span, Step

    return Step(text, Span(0, len(text)))


@settings(max_examples=40, deadline=None)
@given(offset=st.integers(min_value=6_500, max_value=17_000), seed=st.integers(0, 5))
def test_claims_across_window_edges_are_judged_once(offset: int, seed: int) -> None:
    text = prose(offset, seed) + " 17 * 23 = 381, and 6 * 7 = 42. " + prose(9_000, seed + 1)
    found = check_text(text, UNHURRIED)
    starts = [(f.start, f.end) for f in found]
    assert len(starts) == len(set(starts))  # no claim judged twice in two windows
    wrong = [text[f.start:f.end] for f in wrong_claims(found)]
    assert wrong == ["17 * 23 = 381"]
    assert all(f.status == "ok" for f in found if text[f.start:f.end] != "17 * 23 = 381")


def test_past_the_checked_size_the_rest_is_unknown_or_fails_closed() -> None:
    text = prose(40_000) + " 17 * 23 = 381."
    found = check_text(text, UNHURRIED)
    rest = [f for f in found if f.status == "unknown"]
    assert len(rest) == 1 and rest[0].end == len(text) and rest[0].start <= Limits().max_checked_chars
    assert "not checked (the limits are 32,000 characters and 30000 ms per step)" in rest[0].judgement.reason
    assert wrong_claims(found) == []  # the wrong claim is past the bound: not judged, but not passed either
    verdicts = Arithmetic(limits=UNHURRIED).check(_step(text))
    assert [v.kind for v in verdicts] == ["unknown"]
    closed = Arithmetic(limits=UNHURRIED, fail_closed=True).check(_step(text))
    assert [v.kind for v in closed] == ["fail"]
    assert closed[0].feedback.startswith("this part was not checked (")


@pytest.mark.parametrize("text", ["1" * 5_000_000, "x" * 5_000_000, "= " * 2_500_000, "3 + 4 = 7 " * 500_000,
                                  "(" * 5_000_000])
def test_a_five_megabyte_line_ends_with_a_bounded_answer(text: str) -> None:
    found = check_text(text)
    assert found[-1].status == "unknown" and found[-1].end == len(text)
    assert all(f.end <= Limits().max_checked_chars or f.status == "unknown" for f in found)


def test_a_long_step_continued_from_the_line_before_keeps_its_offsets() -> None:
    text = "= 4800 + 528 = 5329 " + prose(9_000)
    found = wrong_claims(check_text(text, UNHURRIED, before="48 \\times 111\n"))
    assert [(f.start, f.end) for f in found] == [(2, 19)]


# --- Game of 24 --------------------------------------------------------------------------------------------------

def test_the_bounded_solver_agrees_with_the_exact_one_within_its_bound() -> None:
    rng = random.Random(3)
    for _ in range(200):
        numbers = [rng.randint(1, 13) for _ in range(rng.randint(2, 5))]
        assert solvable_within(numbers, seconds=30.0) == solvable(numbers)


@pytest.mark.parametrize("numbers", [[2, 3, 5, 7, 11, 13, 17], [1] * 9, list(range(1, 9))])
def test_more_numbers_than_the_bound_are_not_searched(numbers: list[int]) -> None:
    assert len(numbers) > MAX_NUMBERS
    assert solvable_within(numbers) is None


def test_a_search_past_its_state_budget_is_unknown() -> None:
    assert solvable_within([97, 89, 83, 79, 73, 71], max_states=50) is None
    assert solvable_within([97, 89, 83, 79, 73, 71], max_states=50, seconds=0.0) is None


def test_dead_ends_with_many_numbers_are_unknown_not_a_hang() -> None:
    numbers = [2, 3, 5, 7, 11, 13, 17, 19, 23]
    text = "2 + 3 = 5 (left: 5 5 7 11 13 17 19 23)\n"
    verdicts = Game24(numbers, dead_ends=True, require_answer=False).scan(text)
    unknown = [v for v in verdicts if v.kind == "unknown"]
    assert [text[v.span.start:v.span.end] for v in unknown] == ["5 5 7 11 13 17 19 23"]
    assert "past the solver's bound (6 numbers, 200,000 states, 100 ms)" in unknown[0].reason
    assert not [v for v in verdicts if v.kind == "fail"]


def test_dead_ends_within_the_bound_are_still_flagged() -> None:
    text = "4 + 9 = 13 (left: 10 13 13)\n"
    verdicts = Game24([4, 9, 10, 13], dead_ends=True, require_answer=False).scan(text)
    assert [v.feedback for v in verdicts if v.kind == "fail"] == [
        "with 10 13 13 left, 24 can no longer be made; try another step."]


def test_a_trace_past_max_chars_is_unknown() -> None:
    text = "13 - 9 = 4 (left: 4 4 10)\n" + "thinking... " * 100
    verdicts = Game24([4, 9, 10, 13], max_chars=20, require_answer=False).scan(text)
    assert {v.kind for v in verdicts} == {"unknown"}
    assert "(the limit is 20)" in verdicts[0].reason


@pytest.mark.parametrize(("numbers", "text"), [
    ([6, 2, 3, 4], "2 - 3 = -1 (left: 6 -1 4)\n6 + (-1) = 5 (left: 5 4)\n"),
    ([5, 3, 9, 2], "5 / 3 = 5/3 (left: 5/3 9 2)\n(5/3) + 9 = 32/3 (left: 32/3 2)\n"),
    ([15, 10, 6, 8], "10 / 6 = 5/3 (left: 15 5/3 8)\n15 / (5/3) = 9 (left: 9 8)\n"),
    ([7, 2, 9, 4], "2 - 9 = -7 (left: 7 -7 4)\n(-7) * 4 = -28 (left: 7 -28)\n7 - (-28) = 35 (left: 35)\n"),
    ([8, 3, 3, 8], "8 / 3 = 8/3 (left: 8/3 3 8)\n3 - (8/3) = 1/3 (left: 1/3 8)\n8 / (1/3) = 24 (left: 24)\n"),
    ([6, 4, 1, 1], "1 - 4 = -3 (left: 6 -3 1)\n(-3) - 1 = -4 (left: 6 -4)\n6 * (-4) = -24 (left: -24)\n"),
])
def test_numbers_in_brackets_are_one_number_of_the_state(numbers: list[int], text: str) -> None:
    verdicts = Game24(numbers, require_answer=False).scan(text)
    assert [v for v in verdicts if v.kind != "pass"] == []


@pytest.mark.parametrize(("numbers", "text", "flagged", "feedback"), [
    ([6, 2, 3, 4], "2 - 3 = -1 (left: 6 -1 4)\n6 + (-1) = 5 (left: 5 6)\n", "5 6",
     "the numbers left after 6 + (-1) = 5 would be 4 5, not 5 6."),
    ([15, 10, 6, 8], "10 / 6 = 5/3 (left: 15 5/3 8)\n15 / (5/3) = 8 (left: 8 8)\n", "8",
     "15 / (5/3) is 9, not 8."),
])
def test_a_wrong_step_with_bracketed_numbers_is_still_flagged(numbers: list[int], text: str, flagged: str,
                                                              feedback: str) -> None:
    fails = [v for v in Game24(numbers, require_answer=False).scan(text) if v.kind == "fail"]
    assert [(text[v.span.start:v.span.end], v.feedback) for v in fails][:1] == [(flagged, feedback)]


@pytest.mark.parametrize(("text", "flagged"), [
    ("3 * 4 = 12 (left: 12 12 7)\n12 / 7 = 1.71 (approx) (left: 1.71 7)\n", "1.71 7"),
    ("3 * 4 = 12 (left: 12 12 7)\n12 / 7 = 1.71 (rounded) (left: 1.71 7)\n", "1.71 7"),
])
def test_a_left_list_after_another_aside_is_read(text: str, flagged: str) -> None:
    fails = [v for v in Game24([12, 7, 3, 4], require_answer=False).scan(text) if v.kind == "fail"]
    assert [text[v.span.start:v.span.end] for v in fails] == [flagged]
    assert fails[0].feedback == "the numbers left after 12 / 7 = 1.71 would be 171/100 12, not 171/100 7."


@pytest.mark.parametrize(("text", "flagged", "feedback"), [
    ("Answer: 24\n", "24",
     "the answer must be an expression that uses each of 4 9 10 13 exactly once and makes 24."),
    ("\\boxed{24}", "24", "the answer must be an expression that uses each of 4 9 10 13 exactly once and makes 24."),
    ("Answer: ((13 - 9) * (10 - 4) = 24\n", "((13 - 9) * (10 - 4) = 24", "the answer's parentheses do not match."),
    ("Answer: (13 - 9) * (10 - 4)) = 24\n", "(13 - 9) * (10 - 4)) = 24", "the answer's parentheses do not match."),
    ("13 - 9 = 4 (left: 4 4 10)\nAnswer: 13 - 9 = 4\n", "13 - 9",
     "the answer must use each of 4 9 10 13 exactly once; it does not use 4 10."),
    ("Answer: (10 - 4) * 4 = 24\n", "(10 - 4) * 4",
     "the answer must use each of 4 9 10 13 exactly once; it does not use 9 13 and uses 4 beyond the input."),
    ("Answer: 13 + 9 + 4 - 10 ≈ 24\n", "13 + 9 + 4 - 10", "13 + 9 + 4 - 10 is 16, not 24."),
])
def test_a_final_answer_that_is_no_solution_fails(text: str, flagged: str, feedback: str) -> None:
    fails = [v for v in Game24([4, 9, 10, 13]).scan(text) if v.kind == "fail"]
    assert fails and (text[fails[0].span.start:fails[0].span.end], fails[0].feedback) == (flagged, feedback)


def test_a_correct_final_answer_still_passes() -> None:
    text = ("13 - 9 = 4 (left: 4 4 10)\n10 - 4 = 6 (left: 4 6)\n4 * 6 = 24 (left: 24)\n"
            "Answer: (13 - 9) * (10 - 4) = 24\n")
    verdicts = Game24([4, 9, 10, 13]).scan(text)
    assert [v.kind for v in verdicts if v.kind != "pass"] == []
    assert Fraction(24) == (13 - 9) * (10 - 4)


@settings(max_examples=6, deadline=None)
@given(where=st.integers(min_value=0, max_value=34_000))
def test_in_a_dense_long_step_a_wrong_claim_is_flagged_or_covered_by_an_unknown(where: int) -> None:
    """Past ``max_claims`` in a window the rest of its claims are not judged: they are reported ``Unknown``,
    never dropped silently."""
    rng = random.Random(where)
    parts = [f"{a} + {b} = {a + b}. " for a, b in ((rng.randint(1, 99), rng.randint(1, 99)) for _ in range(2_600))]
    text = "".join(parts)
    cut = text.index(". ", where) + 2
    text = text[:cut] + "17 * 23 = 381. " + text[cut:]
    found = check_text(text, UNHURRIED)
    flagged = [f for f in wrong_claims(found) if text[f.start:f.end] == "17 * 23 = 381"]
    covered = [f for f in found if f.status == "unknown" and f.start <= cut and cut + 13 <= f.end]
    assert flagged or covered


# --- Verifier.scan of a long step (issue 24, item 16) ---------------------------------------------------------------

def test_scan_streams_a_chunk_independent_verifier_a_line_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 5 MB step went through the scheduler in a million word-sized pieces (12-44 s, where a replay took 3-6 s):
    a verifier whose trigger does not count tokens, and that does not read token data, sees the same steps and
    views when the text arrives a line at a time, as in a replay."""
    from interlock.monitor.replay.importers import ImportedTrace
    from interlock.monitor.replay.scanning import scan_trace
    from interlock.monitor.trace import Trace

    appended: list[int] = []
    original = Trace.append

    def counting(self: Trace, chunk: object) -> object:
        appended.append(1)
        return original(self, chunk)  # type: ignore[arg-type]

    monkeypatch.setattr(Trace, "append", counting)
    text = "she counts the sheep again and " * 170_000 + "so 17 * 23 = 381.\nThen 2 + 2 = 5.\n"
    assert len(text) > 5_000_000
    verdicts = Arithmetic().scan(text)
    assert len(appended) == 2  # its two lines, not a million pieces
    report = asyncio.run(scan_trace(ImportedTrace(id="t", text=text), [Arithmetic()]))
    assert [(v.kind, v.span) for v in verdicts] == [(v.kind, v.span) for v in report.verdicts]
    assert [v.kind for v in verdicts] == ["unknown", "fail"]  # the long step is past the bound; then 2 + 2 = 5
