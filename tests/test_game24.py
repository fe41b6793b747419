"""The Game of 24 verifier and its exact solver, through the public API: each kind of error flagged at its
step with its exact span, numbers from the constructor or the prompt, rollbacks in a real monitor, and the
solver against an independent reference and the Tree-of-Thoughts puzzle set."""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from interlock import Action, Fail, Monitor, Pass, Span, StopReason, Unknown, create_verifier
from interlock.generators import Scripted
from interlock.verifiers import VerifierConfigError
from interlock.verifiers.game24 import Game24, numbers_from_prompt, parse_expression, solvable, solve

GOOD = ("13 - 9 = 4 (left: 4 4 10)\n"
        "10 - 4 = 6 (left: 4 6)\n"
        "4 * 6 = 24 (left: 24)\n"
        "Answer: (10 - 4) * (13 - 9) = 24\n")


def fails(verdicts: Iterable[object]) -> list[Fail]:
    return [v for v in verdicts if isinstance(v, Fail)]


def at(text: str, needle: str) -> Span:
    start = text.index(needle)
    return Span(start, start + len(needle))


def test_a_correct_trace_passes() -> None:
    verdicts = Game24([4, 9, 10, 13], dead_ends=True).scan(GOOD)
    assert fails(verdicts) == [] and not any(isinstance(v, Unknown) for v in verdicts)
    assert [v.note for v in verdicts if isinstance(v, Pass) and v.note.startswith("the final")] == [
        "the final answer (10 - 4) * (13 - 9) = 24"]


def test_wrong_arithmetic_in_a_step_points_at_the_result() -> None:
    text = GOOD.replace("10 - 4 = 6 (left: 4 6)", "10 - 4 = 5 (left: 4 5)")
    (fail,) = fails(Game24([4, 9, 10, 13]).scan(text)[:2])
    assert fail.message == "10 - 4 is 6, not 5"
    assert fail.span == Span(text.index("= 5") + 2, text.index("= 5") + 3)
    assert fail.feedback == "10 - 4 is 6, not 5." and fail.claim == "10-4=5"


def test_a_number_that_is_not_available_is_flagged_at_the_operand() -> None:
    text = "13 - 9 = 4 (left: 4 4 10)\n9 + 4 = 13 (left: 4 10 13)\n"
    (fail,) = fails(Game24([4, 9, 10, 13]).scan(text))
    assert fail.message == "9 + 4 uses 9, which is not among the numbers available (4 4 10)"
    assert fail.span == Span(26, 27) and text[26:27] == "9"
    assert fail.feedback == "9 is not available; the numbers left are 4 4 10."


def test_wrong_left_bookkeeping_points_at_the_list() -> None:
    text = "13 - 9 = 4 (left: 4 10)\n"
    (fail,) = fails(Game24([4, 9, 10, 13]).scan(text))
    assert fail.message == "after 13 - 9 = 4 the numbers left are 4 4 10, not 4 10"
    assert fail.span == Span(18, 22)
    assert text[18:22] == "4 10"


def test_dead_ends_are_flagged_only_when_asked() -> None:
    text = "4 + 9 = 13 (left: 10 13 13)\n"
    assert fails(Game24([4, 9, 10, 13]).scan(text)) == []
    (fail,) = fails(Game24([4, 9, 10, 13], dead_ends="warn").scan(text))
    assert fail.message == "dead end: 10 13 13 can no longer make 24"
    assert fail.span == Span(0, 27) and fail.action is Action.WARN
    assert not solvable([10, 13, 13])


def test_free_form_arithmetic_is_checked_but_not_availability() -> None:
    text = "We could try 4 * 6 = 24 later.\nOr (13 - 9) * (10 - 4) = 25.\n"
    (fail,) = fails(Game24([4, 9, 10, 13]).scan(text))
    assert fail.message == "(13 - 9) * (10 - 4) is 24, not 25"
    assert fail.span == at(text, "25")


@pytest.mark.parametrize(("answer", "message", "needle"), [
    ("Answer: (10 + 4) * (13 - 9) = 24", "the final answer (10 + 4) * (13 - 9) equals 56, not 24",
     "(10 + 4) * (13 - 9)"),
    ("Answer: (10 - 4) * 4 = 24",
     "the final answer (10 - 4) * 4 does not use 9 13 and uses 4 beyond the input: each of 4 9 10 13 must be used "
     "exactly once", "(10 - 4) * 4"),
    ("Answer: (13 - 9) * (10 - 4) = 25", "the final answer says = 25, but the target is 24", "25"),
    ("Answer: 10 / (13 - 9 - 4) = 24", "the final answer 10 / (13 - 9 - 4) divides by zero", "10 / (13 - 9 - 4)"),
])
def test_final_answer_errors(answer: str, message: str, needle: str) -> None:
    text = "13 - 9 = 4 (left: 4 4 10)\n" + answer + "\n"
    found = fails(Game24([4, 9, 10, 13]).scan(text))
    assert [f.message for f in found][:1] == [message]
    assert found[0].span == Span(text.rindex(needle), text.rindex(needle) + len(needle))


def test_boxed_latex_answers_are_read_too() -> None:
    right = "So the answer is \\boxed{(10 - 4) \\times (13 - 9)}.\n"
    assert fails(Game24([4, 9, 10, 13]).scan(right)) == []
    wrong = "\\boxed{(10 - 4) \\times (13 - 9) \\div 2}\n"
    found = fails(Game24([4, 9, 10, 13]).scan(wrong))
    assert [f.message for f in found] == [
        "the final answer (10 - 4) \\times (13 - 9) \\div 2 uses 2 beyond the input: each of 4 9 10 13 must be used "
        "exactly once",
        "the final answer (10 - 4) \\times (13 - 9) \\div 2 equals 12, not 24"]
    assert [f.span for f in found] == [Span(7, 38)] * 2


def test_a_trace_that_starts_over_is_replayed_from_the_inputs() -> None:
    text = "13 - 9 = 4 (left: 4 4 10)\nLet me start over.\n10 - 4 = 6 (left: 6 9 13)\n"
    assert fails(Game24([4, 9, 10, 13]).scan(text)) == []


def test_numbers_come_from_the_prompt_when_not_given() -> None:
    prompt = ("Use numbers and basic arithmetic operations (+ - * /) to obtain 24.\nInput: 4 4 6 8\n"
              "Answer: (4 + 8) * (6 - 4) = 24\nInput: 4 9 10 13\n")
    assert numbers_from_prompt(prompt) == [Fraction(x) for x in (4, 9, 10, 13)]
    assert numbers_from_prompt("Make 24 from 1, 1, 4, 6 please") == [Fraction(x) for x in (1, 1, 4, 6)]
    assert numbers_from_prompt("Make 24.") is None
    (fail,) = fails(Game24().scan("13 - 9 = 5 (left: 4 5 10)\n", prompt=prompt))
    assert fail.message == "13 - 9 is 4, not 5"
    unknown = Game24().scan("13 - 9 = 4 (left: 4 4 10)\n", prompt="Make 24.")[0]
    assert isinstance(unknown, Unknown) and unknown.reason == (
        "no input numbers: pass Game24([4, 9, 10, 13]) or put 'Input: 4 9 10 13' in the prompt")


def test_a_trace_without_a_final_answer_is_unknown_at_the_end() -> None:
    verdicts = Game24([4, 9, 10, 13]).scan("13 - 9 = 4 (left: 4 4 10)\n")
    assert isinstance(verdicts[-1], Unknown) and verdicts[-1].reason == "no final 'Answer: <expression>' in the trace"
    assert not any(isinstance(v, Unknown) for v in Game24([4, 9, 10, 13], require_answer=False).scan("1 + 1 = 2\n"))


def test_bad_configuration_is_rejected() -> None:
    with pytest.raises(VerifierConfigError, match="need at least two numbers"):
        Game24([24])
    with pytest.raises(VerifierConfigError, match="numbers must be numbers"):
        Game24(["four", 9])
    made = create_verifier("game24", numbers=[1, 2, 3, 4])
    assert isinstance(made, Game24) and made.numbers == tuple(Fraction(x) for x in (1, 2, 3, 4))


async def test_a_wrong_step_is_rolled_back_and_redone_in_a_monitor() -> None:
    wrong = "13 - 9 = 4 (left: 4 4 10)\n10 - 4 = 5 (left: 4 5)\n4 * 5 = 24 (left: 24)\n"
    fixed = "10 - 4 = 6 (left: 4 6)\n4 * 6 = 24 (left: 24)\nAnswer: (10 - 4) * (13 - 9) = 24\n"
    gen = Scripted({"": wrong, "Let me redo this step.\n": fixed})
    result = await Monitor(gen, [Game24([4, 9, 10, 13])]).run("Input: 4 9 10 13")
    (rollback,) = result.interventions
    assert rollback.position == 26 and rollback.span == Span(35, 36)
    assert result.text == ("13 - 9 = 4 (left: 4 4 10)\nWait, 10 - 4 is 6, not 5. Let me redo this step.\n" + fixed)
    assert result.stop_reason is StopReason.COMPLETE and result.passed


def _reference_reachable(numbers: tuple[int, ...]) -> set[Fraction]:
    """Independent reference: every value reachable from the whole set, by splitting it into two parts."""
    memo: dict[tuple[int, ...], set[Fraction]] = {}

    def values(idx: tuple[int, ...]) -> set[Fraction]:
        if idx in memo:
            return memo[idx]
        if len(idx) == 1:
            out = {Fraction(numbers[idx[0]])}
        else:
            out = set()
            for r in range(1, len(idx)):
                for left in itertools.combinations(idx, r):
                    right = tuple(i for i in idx if i not in left)
                    for a in values(left):
                        for b in values(right):
                            out |= {a + b, a - b, a * b}
                            if b != 0:
                                out.add(a / b)
        memo[idx] = out
        return out

    return values(tuple(range(len(numbers))))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 13), min_size=4, max_size=4))
def test_the_solver_agrees_with_an_independent_reference_and_its_expressions_are_exact(nums: list[int]) -> None:
    expected = Fraction(24) in _reference_reachable(tuple(nums))
    assert solvable(nums) is expected
    expr = solve(nums)
    assert (expr is not None) is expected
    if expr is not None:
        parsed = parse_expression(expr)
        assert parsed.value == 24
        assert sorted(leaf.value for leaf in parsed.leaves) == sorted(Fraction(n) for n in nums)
        # and the verifier accepts the solver's own answer
        assert fails(Game24(nums).scan(f"Answer: {expr} = 24\n")) == []


def _fmt(x: Fraction) -> str:
    return str(x.numerator) if x.denominator == 1 else f"{x.numerator}/{x.denominator}"


def _correct_steps(nums: list[int]) -> list[tuple[Fraction, str, Fraction, Fraction, list[Fraction]]]:
    """(a, op, b, c, left) steps that keep 24 reachable, chosen with the solver."""
    pool = [Fraction(n) for n in nums]
    steps = []
    while len(pool) > 1:
        for (i, a), (j, b) in itertools.permutations(enumerate(pool), 2):
            rest = [x for k, x in enumerate(pool) if k not in (i, j)]
            options = [("+", a + b), ("-", a - b), ("*", a * b)] + ([("/", a / b)] if b else [])
            choice = next(((op, c) for op, c in options if solvable([*rest, c])), None)
            if choice is not None:
                pool = sorted([*rest, choice[1]])
                steps.append((a, choice[0], b, choice[1], pool))
                break
    return steps


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 13), min_size=4, max_size=4).filter(solvable), st.integers(0, 2))
def test_correct_traces_pass_and_a_wrong_result_is_flagged_at_its_step(nums: list[int], bad: int) -> None:
    steps = _correct_steps(nums)
    lines = [f"{_fmt(a)} {op} {_fmt(b)} = {_fmt(c)} (left: {' '.join(map(_fmt, left))})" for a, op, b, c, left in steps]
    text = "\n".join(lines) + f"\nAnswer: {solve(nums)} = 24\n"
    verdicts = Game24(nums, dead_ends=True).scan(text)
    assert fails(verdicts) == [] and not any(isinstance(v, Unknown) for v in verdicts)
    # the same trace with one result off by one (and its left list kept consistent): flagged there, exactly
    a, op, b, c, left = steps[bad]
    wrong = c + 1
    new_left = sorted([*(x for x in left if x != c), wrong] + [c] * (left.count(c) - 1))
    lines[bad] = f"{_fmt(a)} {op} {_fmt(b)} = {_fmt(wrong)} (left: {' '.join(map(_fmt, new_left))})"
    text = "\n".join(lines) + "\n"
    first = fails(Game24(nums, require_answer=False).scan(text))[0]
    start = sum(len(line) + 1 for line in lines[:bad]) + lines[bad].index(" = ") + 3
    assert first.span == Span(start, start + len(_fmt(wrong)))
    assert first.message == f"{_fmt(a)} {op} {_fmt(b)} is {_fmt(c)}, not {_fmt(wrong)}"


def test_fractions_are_exact() -> None:
    expr = solve([3, 3, 8, 8])
    assert expr == "8 / (3 - (8 / 3))"
    assert parse_expression(expr).value == 24
    assert solve([1, 1, 1, 1]) is None


def test_the_solver_finds_every_puzzle_of_the_tree_of_thoughts_set(shared_data: Path) -> None:
    with open(shared_data / "game24" / "24.csv", newline="") as f:
        puzzles = [[int(x) for x in row["Puzzles"].split()] for row in csv.DictReader(f)]
    assert len(puzzles) == 1362
    for nums in puzzles:
        expr = solve(nums)
        assert expr is not None, nums
        parsed = parse_expression(expr)
        assert parsed.value == 24 and sorted(x.value for x in parsed.leaves) == sorted(map(Fraction, nums))


# -- the notations models really write -------------------------------------------------------------------------
CHAT = "Use the numbers 4, 9, 10, and 13 to make 24. Each number must be used exactly once."


@pytest.mark.parametrize("text", [
    # chat steps with the numbers left in other words, markdown, unicode and LaTeX
    "Step 1: 13 - 9 = 4. Remaining numbers: 4, 4, 10\nStep 2: 10 - 4 = 6. Remaining numbers: 4, 6\n"
    "Step 3: 4 * 6 = 24. Remaining numbers: 24\n\n**Answer:** (10 - 4) × (13 - 9) = 24",
    "1. 13 - 9 = 4 → Numbers left: [4, 4, 10]\n2. 10 - 4 = 6 → Numbers left: [4, 6]\n\n"
    "Final answer: (10 − 4) × (13 − 9) = 24",
    "13 - 9 = 4, remaining: 4 4 10\n10 - 4 = 6, remaining: 4 6\nAnswer: (10-4)*(13-9)",
    "**Step 1:** 13 − 9 = 4\nRemaining numbers: 4, 4, 10\n\n**Final Answer:** $(10 - 4) \\times (13 - 9) = 24$",
    "First, 13 - 9 = 4, so we are left with 4, 4, and 10.\nThen 10 - 4 = 6, leaving 4 and 6.\n"
    "**Answer:** (10 - 4) × (13 - 9) = 24",
    "- $13 - 9 = 4$\n- $6 \\times 4 = 24$\n\nSo the expression is $(10 - 4) \\times (13 - 9) = 24$.\n\n"
    "$$\\boxed{(10-4)\\times(13-9)}$$",
    # chains, a question, reversed and implicit products, the answer on the next line or in <answer> tags
    "Check: (10 - 4) * (13 - 9) = 6 * 4 = 24.\nAnswer: (10 - 4) * (13 - 9)",
    "Is 10 + 13 = 24? No, 10 + 13 = 23.\nAnswer: (10 - 4) * (13 - 9) = 24",
    "24 = 6 × 4 = (10 − 4) × (13 − 9)\nFinal answer: 24 = (10 - 4) × (13 - 9)",
    "The answer is (10 - 4)(13 - 9) = 24.",
    "**Final Answer**\n\n$$(10 - 4) \\times (13 - 9) = 24$$",
    "<think>\n4 + 10 = 14, 14 + 13 = 27. No.\n</think>\n<answer>(10 - 4) * (13 - 9)</answer>",
    # something glued in front of an expression is not read as its start ("2^3", "x")
    "Powers are out: 4^2 - 10 + 2 = 8 is not allowed.\nAnswer: (10 - 4) * (13 - 9) = 24",
    # a branch abandoned at depth two, then a sibling of its first step
    "13 - 9 = 4 (left: 4 4 10)\n4 + 4 = 8 (left: 8 10)\n8 + 10 = 18 (left: 18)\nThat doesn't work.\n"
    "10 - 4 = 6 (left: 4 6)\n4 * 6 = 24 (left: 24)\nAnswer: (10 - 4) * (13 - 9) = 24",
    # a step that uses three numbers at once
    "Step 1: 13 + 10 + 4 - 9 = 18 (left: 18)\nThat doesn't work.\nAnswer: (10 - 4) * (13 - 9) = 24",
])
def test_correct_traces_in_the_notations_models_write_pass(text: str) -> None:
    for verifier, prompt in ((Game24([4, 9, 10, 13]), ""), (Game24(), CHAT)):
        verdicts = verifier.scan(text, prompt=prompt)
        assert fails(verdicts) == [], (text, fails(verdicts))
        assert not any(isinstance(v, Unknown) for v in verdicts), (text, verdicts)


def test_remaining_numbers_in_chat_steps_are_checked() -> None:
    text = "Step 1: 13 - 9 = 4. Remaining numbers: 4, 10\n"
    (fail,) = fails(Game24([4, 9, 10, 13]).scan(text))
    assert fail.message == "after 13 - 9 = 4 the numbers left are 4 4 10, not 4 10"
    assert fail.span == at(text, "4, 10")
    text = "13 - 9 = 4 → Numbers left: [4, 4, 10]\n10 - 4 = 6 → Numbers left: [6, 10]\n"
    (fail,) = fails(Game24([4, 9, 10, 13]).scan(text))
    assert fail.message == "after 10 - 4 = 6 the numbers left are 4 6, not 6 10"
    assert fail.span == at(text, "[6, 10]")
    text = "**Step 1:** 13 − 9 = 4\nRemaining numbers: 4, 4, 10\n**Step 2:** 9 + 4 = 13\nRemaining numbers: 4, 10, 13\n"
    (fail,) = fails(Game24([4, 9, 10, 13]).scan(text))
    assert fail.message == "9 + 4 uses 9, which is not among the numbers available (4 4 10)"
    assert fail.span == Span(text.index("9 + 4"), text.index("9 + 4") + 1)


def test_unicode_and_latex_errors_point_at_what_the_model_wrote() -> None:
    text = "(13 − 9) × (10 − 4) = 4 × 5 = 20\n"
    (fail,) = fails(Game24([4, 9, 10, 13], require_answer=False).scan(text))
    assert fail.message == "(13 − 9) × (10 − 4) is 24, not 4 × 5" and fail.span == at(text, "4 × 5")
    text = "**Answer:** $(10 - 4) \\times (13 - 4) = 24$"
    found = fails(Game24([4, 9, 10, 13]).scan(text))
    assert [f.message for f in found] == [
        "the final answer (10 - 4) \\times (13 - 4) does not use 9 and uses 4 beyond the input: each of 4 9 10 13 "
        "must be used exactly once",
        "the final answer (10 - 4) \\times (13 - 4) equals 54, not 24"]
    assert found[0].span == at(text, "(10 - 4) \\times (13 - 4)")


def test_answer_tags_of_reasoning_gym_are_read() -> None:
    import reasoning_gym

    for entry in reasoning_gym.create_dataset("puzzle24", seed=7, size=3):
        nums, question, answer = entry["metadata"]["numbers"], entry["question"], entry["answer"]
        assert numbers_from_prompt(question) == [Fraction(x) for x in nums]
        good = f"Trying {answer}.\n<answer>{answer}</answer>"
        assert fails(Game24().scan(good, prompt=question)) == []
        bad = f"<answer>{answer} + {nums[0]}</answer>"
        (fail, *_) = fails(Game24().scan(bad, prompt=question))
        assert fail.span == at(bad, f"{answer} + {nums[0]}")
        assert fail.message.startswith(f"the final answer {answer} + {nums[0]} uses {nums[0]} beyond the input")


def test_numbers_in_chat_prompts() -> None:
    def read(prompt: str) -> list[int]:
        return [int(x) for x in numbers_from_prompt(prompt) or []]

    assert read(CHAT) == [4, 9, 10, 13]
    assert read("Play the 24 game with these numbers: [4, 9, 10, 13].") == [4, 9, 10, 13]
    assert read("Make 24 using 8, 5, 10, 6. You can only use each number once.") == [8, 5, 10, 6]


@pytest.mark.parametrize(("text", "message", "needle"), [
    ("3 / 7 = 0.43 (left: 0.43 3 7)\n3 + 0.43 = 3.43 (left: 3.43 7)\n7 * 3.43 = 25 (left: 25)\n",
     "7 * 3.43 is 2401/100, not 25", "25 ("),
    ("8 / 3 = 2.5\n", "8 / 3 is 8/3, not 2.5", "2.5"),
    ("10 / 4 = 2.6\n", "10 / 4 is 5/2, not 2.6", "2.6"),  # 2.5 is exact: no rounding allowed
])
def test_rounded_decimals_pass_but_wrong_ones_do_not(text: str, message: str, needle: str) -> None:
    ok = "3 / 7 = 0.43 (left: 0.43 3 7)\n3 + 0.43 = 3.43 (left: 3.43 7)\n7 * 3.43 = 24 (left: 24)\n" \
         "8 / 3 = 2.67\n8 / 0.333 = 24.02\nAnswer: (3 + 3 / 7) * 7 = 24\n"
    assert fails(Game24([3, 3, 7, 7], dead_ends=True).scan(ok)) == []
    (fail,) = fails(Game24([3, 3, 7, 7], require_answer=False).scan(text))
    start = text.rindex(needle)
    assert fail.message == message and fail.span == Span(start, start + len(needle.rstrip(" (")))


def test_written_fractions_in_steps_and_latex() -> None:
    steps = "8 / 3 = 8/3 (left: 3 8 8/3)\n3 - 8/3 = 1/3 (left: 1/3 8)\n8 / 1/3 = 24 (left: 24)\n" \
            "Answer: 8 / (3 - 8 / 3) = 24\n"
    latex = "$$\\dfrac{8}{3 - \\dfrac{8}{3}} = \\dfrac{8}{\\frac{1}{3}} = 24$$\n\\boxed{8 \\div (3 - 8 \\div 3)}"
    for text in (steps, latex):
        verdicts = Game24([3, 3, 8, 8], dead_ends=True).scan(text)
        assert fails(verdicts) == [] and not any(isinstance(v, Unknown) for v in verdicts)
    text = "\\frac{8}{3 - \\frac{8}{3}} = 12"
    (fail,) = fails(Game24([3, 3, 8, 8], require_answer=False).scan(text))
    assert fail.message == "\\frac{8}{3 - \\frac{8}{3}} is 24, not 12" and fail.span == at(text, "12")


def test_a_weak_answer_phrase_is_judged_only_for_a_whole_expression() -> None:
    passing = "So the solution is 4 * 6 = 24 once I make 4 and 6.\nAnswer: (10 - 4) * (13 - 9) = 24"
    assert fails(Game24([4, 9, 10, 13]).scan(passing)) == []
    text = "So the expression is (10 - 4) * (13 + 9)."
    found = fails(Game24([4, 9, 10, 13]).scan(text))
    assert [f.message for f in found][-1] == "the final answer (10 - 4) * (13 + 9) equals 132, not 24"


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 13), min_size=4, max_size=4).filter(solvable),
       st.sampled_from(["{s}. Remaining numbers: {l}", "{s} (remaining: {l})", "{s} → Numbers left: [{l}]",
                        "Step {i}: {s}, remaining: {l}", "**Step {i}:** {s}\nRemaining numbers: {l}"]),
       st.sampled_from([("×", "÷", "−"), ("\\times", "\\div", "-"), ("*", "/", "-")]),
       st.integers(0, 2))
def test_chat_formats_replay_like_the_left_format(nums: list[int], fmt: str, ops: tuple[str, str, str],
                                                  bad: int) -> None:
    steps = _correct_steps(nums)
    sym = {"*": ops[0], "/": ops[1], "-": ops[2], "+": "+"}

    def line(i: int, a: Fraction, op: str, b: Fraction, c: Fraction, left: list[Fraction]) -> str:
        return fmt.format(i=i + 1, s=f"{_fmt(a)} {sym[op]} {_fmt(b)} = {_fmt(c)}", l=", ".join(map(_fmt, left)))

    lines = [line(i, *step) for i, step in enumerate(steps)]
    text = "\n".join(lines) + f"\n**Answer:** {solve(nums)} = 24\n"
    verdicts = Game24(nums, dead_ends=True).scan(text)
    assert fails(verdicts) == [] and not any(isinstance(v, Unknown) for v in verdicts), text
    # drop one number from the list of a step: flagged there, at the list
    a, op, b, c, left = steps[bad]
    short = left[1:]
    if not short:
        return
    lines[bad] = line(bad, a, op, b, c, short)
    wrong = "\n".join(lines[:bad + 1]) + "\n"
    (fail,) = fails(Game24(nums, require_answer=False).scan(wrong))
    assert fail.message == (f"after {_fmt(a)} {sym[op]} {_fmt(b)} = {_fmt(c)} the numbers left are "
                            f"{' '.join(map(_fmt, sorted(left)))}, not {' '.join(map(_fmt, sorted(short)))}")
    listed = ", ".join(map(_fmt, short))
    assert fail.span is not None and wrong[fail.span.start:fail.span.end].strip("[]") == listed
