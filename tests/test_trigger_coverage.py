"""Every trigger covers the whole trace by the end of a run and at every barrier (issue 24, item 2).

A trigger decides when a verifier is due; what its checks were about is their steps. Text that no step of a
verifier covered (the last < n tokens of ``EveryNTokens``, the text between and after the matches of
``OnPattern``, a step cut short by an injected answer prefix) is checked as one more step when the run ends, and
by the barrier's provisional checks: nothing generated escapes a verifier because of its trigger.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from interlock import (
    AtEnd,
    Chunk,
    EveryNTokens,
    ForceAnswer,
    Monitor,
    OnPattern,
    Outcome,
    Step,
    StepBoundary,
    TokenBudget,
    Trigger,
    verifier,
)
from interlock.generators import Scripted
from interlock.monitor.agents.tools import ToolRefusal, guard_tool
from interlock.monitor.scheduler import Scheduler
from interlock.monitor.trace import Trace

from tests.support import check_sums
from tests.test_breaker import Gated, Ledger, until

TEXT = "There are 5 apples and 3 pears.\nSo 2 + 2 = 5.\n"  # 14 pieces; the wrong claim is in the last 6

TRIGGERS: dict[str, Trigger] = {
    "every-8": EveryNTokens(8),
    "pattern-pears": OnPattern(r"pears"),
    "pattern-never": OnPattern(r"Wait"),
    "pattern-or-every": OnPattern(r"apples") | EveryNTokens(9),
}


def sums(trigger: Trigger, action: str = "interrupt") -> Any:
    return verifier(check_sums, name="sums", trigger=trigger, action=action)


@pytest.mark.parametrize("name", sorted(TRIGGERS))
async def test_a_wrong_tail_no_trigger_fired_on_is_a_violation_at_the_end_of_a_run(name: str) -> None:
    result = await Monitor(Scripted(TEXT), [sums(TRIGGERS[name])]).run("q")
    assert result.outcome is Outcome.VIOLATION
    assert [(i.action.value, i.message) for i in result.interventions] == [("interrupt", "2 + 2 is 4, not 5")]
    fail = result.open_violations[0]
    assert TEXT[fail.span.start:fail.span.end] == "2 + 2 = 5"


@pytest.mark.parametrize("name", sorted(TRIGGERS))
def test_scan_judges_the_tail(name: str) -> None:
    verdicts = sums(TRIGGERS[name]).scan(TEXT)
    fails = [v for v in verdicts if v.kind == "fail"]
    assert [(TEXT[f.span.start:f.span.end], f.message) for f in fails] == [("2 + 2 = 5", "2 + 2 is 4, not 5")]


async def test_a_guarded_call_after_a_wrong_tail_is_refused() -> None:
    """The barrier's provisional checks cover what the trigger has not reached yet, not only the open step."""
    ledger = Ledger()
    gen = Gated(["There", " are", " 5", " apples", " and", " 3", " pears.", "\nSo", " 2", " +", " 2", " =",
                 " 5.", "\n"], [" Transfer", " 5.\n"], [])
    async with Monitor(gen, [sums(EveryNTokens(8))]).stream("q") as run:
        await until(run, "= 5.\n")
        outcome = await guard_tool(ledger.transfer, run=run)(5)
        gen.gate.set()
        result = await run.wait(timeout=10)
    assert ledger.writes == []
    assert isinstance(outcome, ToolRefusal)
    assert [(r.stage, r.source, r.message) for r in outcome.reasons] == [("reasoning", "sums", "2 + 2 is 4, not 5")]
    assert result.outcome is Outcome.VIOLATION


async def test_a_step_cut_short_by_a_forced_answer_is_checked() -> None:
    answer = ForceAnswer(prefix="\nFinal answer:", end_of_thinking="", tokens=3)
    gen = Scripted({"": "I think 2 + 2 = 5 and then more words keep coming", "Final answer:": " 5\n"})
    monitor = Monitor(gen, [sums(StepBoundary())], [TokenBudget(max_total=12, force_answer=answer)])
    result = await monitor.run("q")
    assert result.text == "I think 2 + 2 = 5 and then\nFinal answer: 5"
    assert result.outcome is Outcome.VIOLATION
    assert [(i.action.value, i.message) for i in result.interventions] == [("interrupt", "2 + 2 is 4, not 5")]


def test_at_end_is_about_the_answer_after_the_last_injection() -> None:
    """AtEnd judges the answer as a whole (its view holds all the text): it gets no extra steps."""
    seen: list[tuple[int, int]] = []

    @verifier(name="spy", trigger=AtEnd())
    def spy(step: Step) -> None:
        seen.append((step.span.start, step.span.end))

    trace = Trace()
    scheduler = Scheduler(trace, [spy])
    trace.append(Chunk("2 + 2 = 5. "))
    trace.inject("Wait. ")
    scheduler.injected(11)
    trace.append(Chunk("So 4."))
    assert [(d.step.span.start, d.step.span.end) for _, d in scheduler.advance(final=True)] == [(17, 22)]


def _uncovered(trigger: Trigger, pieces: list[str], injections: dict[int, str]) -> set[int]:
    """Positions of generated, non-blank characters that no step of a check (at the end) was about."""
    trace = Trace()
    scheduler = Scheduler(trace, [sums(trigger)])
    covered: set[int] = set()
    for i, piece in enumerate(pieces):
        if i in injections:
            start = len(trace)
            trace.inject(injections[i])
            scheduler.injected(start)
        trace.append(Chunk(piece))
        for _, due in scheduler.advance():
            covered.update(range(due.step.span.start, due.step.span.end))
    for _, due in scheduler.advance(final=True):
        covered.update(range(due.step.span.start, due.step.span.end))
    text = trace.text
    return {p for p in range(len(text)) if not text[p].isspace() and not trace.is_injected(p)} - covered


@settings(max_examples=150, deadline=None)
@given(pieces=st.lists(st.text(alphabet="ab 1.!?\nW", max_size=6), max_size=20),
       injections=st.dictionaries(st.integers(0, 19), st.sampled_from(["FB. ", "\nAnswer:"]), max_size=3),
       trigger=st.sampled_from([EveryNTokens(1), EveryNTokens(3), EveryNTokens(50), OnPattern(r"W"),
                                OnPattern(r"a\.") | EveryNTokens(4), StepBoundary()]))
def test_every_generated_character_is_in_some_step_at_the_end(pieces: list[str], injections: dict[int, str],
                                                             trigger: Trigger) -> None:
    assert _uncovered(trigger, pieces, injections) == set()
