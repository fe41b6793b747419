"""Traces of thinking models (DeepSeek-R1, QwQ, Qwen3 with <think>...</think>, o1-style summaries): long
monologues that try a calculation, give it up, check it again and only then answer. Every calculation they state
truly must pass, even in a branch that leads nowhere; a wrong one fails with its exact span."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from interlock import Fail, Span
from interlock.verifiers import Arithmetic, Game24
from support import statuses, wrong

PUZZLE = [4, 9, 10, 13]
FINAL = "</think>\n\nAnswer: (10 - 4) * (13 - 9) = 24\n"


def fails(verdicts: Iterable[object]) -> list[Fail]:
    return [v for v in verdicts if isinstance(v, Fail)]


def at(text: str, needle: str) -> Span:
    start = text.index(needle)
    return Span(start, start + len(needle))


R1_SEARCH = """<think>
Okay, so I need to make 24 using 4, 9, 10, and 13. Let me think.

Let's see, 13 - 9 = 4. Then I have 4, 4, 10. 4 * 4 = 16, 16 + 10 = 26. No, that's 26, not 24.

What about 9 + 13 = 22, 22 + 4 = 26, no.

10 * 4 = 40, 40 - 13 = 27, 27 - 9 = 18. Not 24.

Hmm. Let me try another way. 10 - 4 = 6, then 13 - 9 = 4, 6 * 4 = 24. That works!

So (10 - 4) * (13 - 9) = 6 * 4 = 24. Let me double-check: 10 - 4 is 6, 13 - 9 is 4, and 6 times 4 is 24. Yes.
""" + FINAL


def test_an_r1_style_search_passes_in_both_verifiers() -> None:
    assert fails(Game24(PUZZLE).scan(R1_SEARCH)) == []
    assert fails(Game24().scan(R1_SEARCH, prompt="Make 24 using 4, 9, 10, 13.")) == []
    assert fails(Arithmetic().scan(R1_SEARCH)) == []


@pytest.mark.parametrize("line", [
    "Maybe the answer is 4 * 6 = 24. But I need to use all four numbers.",
    "So the answer is 13 - 9 = 4.\nHmm, no. The answer might be 18.",
    "Answer: 10 * 4 - 13 - 9 = 18. Not 24.",
    "So the expression is 10 * 4 - 13 - 9, which is 18. No.",
    "The solution is (10 - 4) * (13 - 9 + 1) = 30. Too big.",
    "\\boxed{4 + 9 + 10 + 13 = 36} would be too large.",
])
def test_an_answer_tried_inside_the_monologue_is_not_the_final_answer(line: str) -> None:
    text = f"<think>\n{line}\n{FINAL}"
    verdicts = Game24(PUZZLE).scan(text)
    assert fails(verdicts) == []
    assert [v.note for v in verdicts if getattr(v, "note", "").startswith("the final")] == [
        "the final answer (10 - 4) * (13 - 9) = 24"]


def test_the_monologue_may_start_in_the_prompt_or_before_a_lone_closing_tag() -> None:
    text = "Perhaps 4 + 9 + 10 + 13 = 36.\nAnswer: 4 + 9 + 10 + 13 = 36, too big.\n" + FINAL
    assert fails(Game24(PUZZLE).scan(text, prompt="Make 24 with 4 9 10 13.<|Assistant|><think>\n")) == []
    wrong_final = "Answer: 4 + 9 + 10 + 13 = 36, too big.\n</think>\nAnswer: 4 + 9 + 10 + 13\n"
    (fail,) = fails(Game24(PUZZLE).scan(wrong_final, prompt="<think>\n"))
    assert fail.message == "the final answer 4 + 9 + 10 + 13 equals 36, not 24"
    assert fail.span == Span(wrong_final.rindex("4 + 9"), len(wrong_final) - 1)


@pytest.mark.parametrize("line", [
    "The answer: 4 * (13 - 9) + 10 = 26? That's not it.",
    "Perhaps answer = 4 + 9 + 10 + 13 = 36. Too large.",
    "Let me try: answer is (13 - 10) * 9 - 4 = 23. No, not 24.",
    "Suppose the answer is 10 + 13 + 4 - 9 = 18. Not 24.",
    "So the answer is 13 - 9 = 4.",
])
def test_an_answer_asked_about_tried_or_partial_is_not_final_without_tags_either(line: str) -> None:
    text = f"{line}\nAnswer: (10 - 4) * (13 - 9) = 24\n"
    assert fails(Game24(PUZZLE).scan(text)) == []


def test_a_final_answer_after_the_monologue_is_still_judged() -> None:
    text = "<think>\nMaybe the answer is 4 * 6 = 24.\n</think>\n\nAnswer: (10 - 4) * (13 - 9 + 1) = 30\n"
    assert [(f.message, f.span) for f in fails(Game24(PUZZLE).scan(text))] == [
        ("the final answer (10 - 4) * (13 - 9 + 1) uses 1 beyond the input: each of 4 9 10 13 must be used exactly "
         "once", at(text, "(10 - 4) * (13 - 9 + 1)")),
        ("the final answer (10 - 4) * (13 - 9 + 1) equals 30, not 24", at(text, "(10 - 4) * (13 - 9 + 1)"))]
    text = "<think>\nMaybe the answer is 4 * 6 = 24.\n</think>\n\nSo the answer is 13 - 9 = 5.\n"
    assert [f.message for f in fails(Game24(PUZZLE).scan(text))][:1] == [
        "the final answer 13 - 9 does not use 4 10: each of 4 9 10 13 must be used exactly once"]


def test_a_step_that_goes_on_from_an_unrecorded_result_is_checked_for_arithmetic_only() -> None:
    text = ("What if 4 * 10 = 40, 40 - 13 = 27, so we're left with 27 and 9. 27 - 9 = 18. No.\n"
            "Then 13 - 9 = 4, leaving 4, 4 and 10.\n" + FINAL)
    assert fails(Game24(PUZZLE).scan(text)) == []
    bad = text.replace("40 - 13 = 27, so", "40 - 13 = 26, so")
    (fail,) = fails(Game24(PUZZLE).scan(bad))
    assert fail.message == "40 - 13 is 27, not 26" and fail.span == at(bad, "26")
    # a number no calculation made is still not available
    reused = "13 - 9 = 4 (left: 4 4 10)\n9 + 4 = 13 (left: 4 10 13)\n"
    (fail,) = fails(Game24(PUZZLE).scan(reused))
    assert fail.message == "9 + 4 uses 9, which is not among the numbers available (4 4 10)"


def test_a_wrong_step_in_an_abandoned_branch_is_flagged_at_its_result() -> None:
    text = ("<think>\n13 - 9 = 4. Then 4 * 10 = 40, 40 - 4 = 36. No.\n"
            "10 - 4 = 6, 13 - 9 = 4, 6 * 4 = 25. Hmm, no.\n" + FINAL)
    (fail,) = fails(Game24(PUZZLE).scan(text))
    assert fail.message == "6 * 4 is 24, not 25" and fail.span == at(text, "25")


@pytest.mark.parametrize("text", [
    "Wait, 7 * 8 = 54, no wait, 56.",
    "7 * 8 = 54 — no, wait, it's 56.",
    "7 * 8 = 54, hmm, no: 56.",
    "7 * 8 = 54, wait, 56.",
    "7 * 8 = 54, no, 56 is right.",
])
def test_a_value_taken_back_at_once_is_not_a_claim(text: str) -> None:
    assert statuses(text) == []


def test_no_after_a_claim_still_leaves_it_judged_unless_a_corrected_value_follows() -> None:
    assert wrong("22 + 4 = 27, no, 27 - 10 = 17") == [("22 + 4 = 27", "22 + 4 is 26, not 27.")]
    assert wrong("22 + 4 = 27, no.") == [("22 + 4 = 27", "22 + 4 is 26, not 27.")]
    assert wrong("5 * 4 = 21, wait, let me check") == [("5 * 4 = 21", "5 * 4 is 20, not 21.")]
    assert statuses("22 + 4 = 26, no, 26 - 10 = 16") == [("ok", "22 + 4 = 26"), ("ok", "26 - 10 = 16")]


@pytest.mark.parametrize(("line", "flagged"), [
    ("10 - 4 = 6, 6 * 4 = 25, no wait, 24.", []),
    ("6 * 4 = 25, wait, 24.", []),
    ("6 * 4 = 25 — wait, no.", []),
    ("6 * 4 = 25, no.", ["6 * 4 is 24, not 25"]),
    ("6 * 4 = 25, no, 25 - 1 = 24", ["6 * 4 is 24, not 25"]),
])
def test_game24_takes_the_same_corrections(line: str, flagged: list[str]) -> None:
    text = f"{line}\n{FINAL}"
    assert [f.message for f in fails(Game24(PUZZLE).scan(text))] == flagged
