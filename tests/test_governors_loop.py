"""LoopGuard: catches the real SmolLM loop, steers once with a rollback and a nudge, then stops; no false
positives on ordinary step-by-step text (hypothesis)."""

from __future__ import annotations

import re

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from interlock import (
    Action,
    ConfigError,
    GovernorDecided,
    LoopGuard,
    Monitor,
    Step,
    StopReason,
    TokenBudget,
    verifier,
)
from interlock.generators import Scripted
from interlock.monitor.governors.loop_guard import find_char_repeat, find_repeated_line, find_tandem_repeat
from support import SumVerifier

# The loop SmolLM2-135M fell into (greedy, 256-token cap) on the eggs problem, as issue 7 reports it; the
# sentences before it are illustrative.
SMOL_LOOP = ("Janet's ducks lay 16 eggs per day. She eats 3 for breakfast.\n"
             "So she has 16 eggs * 1 = 16 eggs * 1 = 16 eggs * 1 = 16 eggs * 1 = 16 eggs * 1 = 16 eggs * 1 = ")
PRE_LOOP = "Janet's ducks lay 16 eggs per day. She eats 3 for breakfast.\n"
NUDGE_FB = ("Wait, I am repeating myself instead of making progress. I will finish the calculation. "
            "Let me redo this step.\n")


def test_the_smollm_loop_is_found_where_it_starts() -> None:
    rep = find_tandem_repeat(SMOL_LOOP)
    assert rep is not None
    assert (rep.unit, rep.count, rep.kind) == ("16 eggs * 1 =", 6, "ngram")
    assert SMOL_LOOP[rep.start:].startswith("16 eggs * 1 = 16 eggs")
    assert SMOL_LOOP[:rep.start].endswith("So she has ")


def test_three_copies_are_needed_and_a_word_still_being_written_does_not_count() -> None:
    assert find_tandem_repeat("So 16 eggs * 1 = 16 eggs * 1 = ") is None
    assert find_tandem_repeat("So 16 eggs * 1 = 16 eggs * 1 = 16 eggs * 1") is None  # "1" may become "12"
    assert find_tandem_repeat("So 16 eggs * 1 = 16 eggs * 1 = 16 eggs * 1 =\n") is not None
    assert find_tandem_repeat("ha ha ha ") is None  # too short to be a runaway


def test_a_loop_without_spaces_is_found_by_its_characters() -> None:
    # what the tiny random model writes: no word break for the word-level detector to count by
    rep = find_char_repeat("Final: " + "YU" * 40)
    assert rep is not None and (rep.start, rep.unit, rep.count, rep.kind) == (7, "YU", 40, "chars")
    assert find_char_repeat("Final: " + "YU" * 20) is None  # 40 characters: not yet
    assert find_char_repeat("x = 1234567890123456789012345678901234567890.\n") is None
    assert find_char_repeat("table\n" + " " * 100) is None  # whitespace is not a loop


def test_repeated_lines_far_apart_are_found_at_their_second_copy() -> None:
    text = "Let me compute the total.\n3 + 4 = 7\nLet me compute the total.\n7 * 2 = 14\nLet me compute the total.\n"
    rep = find_repeated_line(text)
    assert rep is not None and rep.kind == "line" and rep.count == 3
    assert rep.start == text.index("Let me compute the total.", 1)
    assert find_repeated_line(text.replace("total.\n7", "sum.\n7")) is None


def test_numbered_copies_of_a_line_are_the_same_line() -> None:
    # SmolLM2 on a Game of 24 puzzle, parroting the feedback it was given with a new list number each time
    text = ("1. 10 * 3 = 30\n2. 7 * 4 = 28\n3. Wait, 7 * 4 is 28, not 24. Let me redo this step.\n"
            "4. 7 * 4 is 28, not 24. Let me redo this step.\n5. 7 * 4 is 28, not 24. Let me redo this step.\n"
            "6. 7 * 4 is 28, not 24. Let me redo this step.\n")
    rep = find_repeated_line(text)
    assert rep is not None and rep.count == 3
    assert rep.start == text.index("5. 7 * 4")  # the second copy: where the repetition began
    assert find_repeated_line("1. Add the first two numbers.\n2. Add the last two numbers.\n"
                              "3. Add the middle two numbers.\n") is None


@st.composite
def step_by_step(draw: st.DrawFn) -> str:
    """Ordinary reasoning: each line does a different operation on different numbers."""
    n = draw(st.integers(2, 14))
    lines = [draw(st.sampled_from(["Let's solve it step by step.", "We add the numbers one by one.", ""]))]
    value = draw(st.integers(0, 99))
    used = set()
    for i in range(n):
        op = draw(st.sampled_from(["+", "-", "*"]))
        x = draw(st.integers(2, 99))
        if (op, x) in used:
            continue
        used.add((op, x))
        new = value + x if op == "+" else value - x if op == "-" else value * x
        label = draw(st.sampled_from(["Step {i}: ", "Then ", "", "Now we have "])).format(i=i + 1)
        lines.append(f"{label}{value} {op} {x} = {new}.")
        value = new
    lines.append(f"The answer is {value}.")
    return "\n".join(lines) + "\n"


@settings(max_examples=300, deadline=None)
@given(step_by_step())
def test_no_false_positive_on_step_by_step_text(text: str) -> None:
    guard = LoopGuard()
    for end in range(1, len(text) + 1):  # as it streams
        if text[end - 1].isspace():
            assert guard.find(text[:end]) is None, text[:end]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="abcdefgh0123456789+=* ", min_size=1, max_size=12).filter(str.strip),
                min_size=1, max_size=6), st.integers(3, 8), st.text(alphabet="xyz .\n", max_size=30))
def test_any_unit_written_enough_times_is_a_loop(words: list[str], copies: int, before: str) -> None:
    unit = " ".join(w.strip() for w in words) + " "
    unit = re.sub(r"\s+", " ", unit)
    text = before + "\n" + unit * max(copies, -(-40 // len(unit)))
    rep = find_tandem_repeat(text)
    assert rep is not None
    assert rep.count >= 3 and len(text) - rep.start >= 30


async def test_the_guard_nudges_once_with_a_rollback_then_forces_the_answer() -> None:
    def script(prefix: str) -> str:
        if prefix.endswith("Final answer:"):
            return " 13\n"
        return SMOL_LOOP[len(PRE_LOOP):] * 3 if prefix.endswith(PRE_LOOP) or prefix.endswith("step.\n") else PRE_LOOP

    gen = Scripted(lambda p: script(p) if p else PRE_LOOP + SMOL_LOOP[len(PRE_LOOP):] * 3)
    async with Monitor(gen, governors=[LoopGuard(), TokenBudget(max_total=300)]).stream("q") as run:
        events = [e async for e in run]
    result = run.result
    rollbacks = [i for i in result.interventions if i.action is Action.ROLLBACK and i.applied]
    assert len(rollbacks) == 1
    assert rollbacks[0].source == "loop_guard"
    assert rollbacks[0].position == len(PRE_LOOP)  # the start of the step where the loop began
    assert rollbacks[0].removed_text.startswith("So she has 16 eggs * 1 = 16 eggs * 1 = 16 eggs * 1 = ")
    assert result.text.startswith(PRE_LOOP + NUDGE_FB + "So she has 16 eggs * 1 =")
    assert result.text.endswith("\nFinal answer: 13")
    assert result.stop_reason is StopReason.GOVERNOR
    assert "again after the nudge" in result.detail
    decided = [e for e in events if isinstance(e, GovernorDecided)]
    assert [d.action for d in decided] == ["rollback", "stop"]
    assert decided[1].tokens_saved is not None and decided[1].tokens_saved > 200
    assert result.tokens.total < 60


async def test_without_a_nudge_the_first_loop_stops_the_run_plainly() -> None:
    gen = Scripted(SMOL_LOOP * 5)
    result = await Monitor(gen, governors=[LoopGuard(nudge=None, force_answer=False)]).run("q")
    assert result.stop_reason is StopReason.GOVERNOR
    # the third "=" is known to be a whole word when the next piece (" 16") arrives
    assert result.text.endswith("So she has 16 eggs * 1 = 16 eggs * 1 = 16 eggs * 1 = 16")
    assert result.interventions[-1].action is Action.STOP


async def test_the_same_extracted_state_coming_back_is_a_loop() -> None:
    text = "x = 5.\nThen x = 6.\nNo, x = 5.\nHmm, x = 6.\nSo x = 5.\nAgain x = 6.\n" * 2

    def last_assignment(prefix: str) -> str | None:
        found = re.findall(r"x = (\d+)", prefix)
        return found[-1] if found else None

    guard = LoopGuard(state=last_assignment, max_state_repeats=3, nudge=None, force_answer=False)
    result = await Monitor(Scripted(text), governors=[guard]).run("q")
    assert result.stop_reason is StopReason.GOVERNOR
    assert result.text == "x = 5.\nThen x = 6.\nNo, x = 5.\nHmm, x = 6.\nSo x = 5.\nAgain"
    assert "state '5' came back 3 times" in result.detail


async def test_a_cycle_of_rollbacks_to_the_same_point_is_stopped() -> None:
    wrong = "Tom has 3 apples.\nSo 3 + 4 = 8.\n"
    gen = Scripted({"": wrong, "apples.\n": "So 3 + 4 = 8.\n"})  # the same wrong step after every rollback
    guard = LoopGuard(max_rollbacks_to_same_point=2)
    result = await Monitor(gen, [SumVerifier()], governors=[guard], oscillation_limit=50,
                           feedback_template="").run("q")
    assert result.stop_reason is StopReason.GOVERNOR
    assert "rollback cycle: rolled back to position 18 2 times already" in result.detail
    assert sum(1 for i in result.interventions if i.action is Action.ROLLBACK and i.applied) == 2


def test_loop_guard_rejects_bad_settings() -> None:
    with pytest.raises(ConfigError, match="min_repeats must be >= 2"):
        LoopGuard(min_repeats=1)
    with pytest.raises(ConfigError, match="state must be a function"):
        LoopGuard(state="x")  # type: ignore[arg-type]


async def test_while_the_nudge_waits_for_a_slow_check_the_same_loop_does_not_stop_the_run() -> None:
    @verifier(name="slow")
    async def slow(step: Step) -> None:
        await anyio.sleep(0.3 if step.index == 0 else 0)

    def script(prefix: str) -> str:
        if prefix.endswith("Final answer:"):
            return " 13\n"
        if prefix.endswith("step.\n"):
            return "So she has 13 eggs left.\n"
        return PRE_LOOP + SMOL_LOOP[len(PRE_LOOP):] * 20

    result = await Monitor(Scripted(script, rate=300), [slow], governors=[LoopGuard()]).run("q")
    assert [i.source for i in result.interventions if i.action is Action.ROLLBACK and i.applied] == ["loop_guard"]
    assert result.text == PRE_LOOP + NUDGE_FB + "So she has 13 eggs left.\n"
    assert result.stop_reason is StopReason.COMPLETE
