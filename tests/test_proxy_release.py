"""What a proxy client receives, as a property: whatever mistakes the model makes and however slow the checks are,
the released pieces join to the corrected answer (feedback left out) and no wrong claim is ever released."""

from __future__ import annotations

from typing import Any

import anyio
from hypothesis import given, settings
from hypothesis import strategies as st
from interlock import Monitor, Step, verifier
from interlock.generators import Scripted
from interlock.monitor.proxy import ReleasedRun

from tests.support import check_sums


def step(a: int, b: int, wrong: bool) -> str:
    return f"Add {a} + {b} = {a + b + (1 if wrong else 0)}.\n"


def feedback(a: int, b: int) -> str:
    return f"Wait, {a} + {b} is {a + b}, not {a + b + 1}. Let me redo this step.\n"


steps_strategy = st.lists(st.tuples(st.integers(1, 60), st.integers(1, 60), st.booleans()), min_size=1, max_size=6,
                          unique_by=lambda t: (t[0], t[1]))


@given(steps=steps_strategy, delay=st.sampled_from([0.0, 0.002, 0.01]), rate=st.sampled_from([None, 2000.0]),
       show=st.booleans())
@settings(max_examples=40, deadline=None)
def test_released_text_is_the_corrected_answer(steps: list[tuple[int, int, bool]], delay: float,
                                               rate: float | None, show: bool) -> None:
    script: dict[str, str] = {"": "".join(step(a, b, w) for a, b, w in steps)}
    for k, (a, b, wrong) in enumerate(steps):
        if wrong:  # after the feedback about step k: step k done right, then the rest as first written
            script[feedback(a, b)] = step(a, b, False) + "".join(step(x, y, w) for x, y, w in steps[k + 1:])

    @verifier(name="sums")
    async def sums(s: Step) -> Any:
        await anyio.sleep(delay)
        return check_sums(s)

    async def play() -> tuple[list[str], ReleasedRun]:
        run = ReleasedRun(Monitor(Scripted(script, rate=rate), [sums], max_interventions=10), "p", show_feedback=show)
        pieces = await run.collect()
        assert all(isinstance(p, str) for p in pieces)
        return [str(p) for p in pieces], run

    pieces, run = anyio.run(play)
    corrected = "".join(step(a, b, False) for a, b, _ in steps)
    with_feedback = "".join((feedback(a, b) if w else "") + step(a, b, False) for a, b, w in steps)
    assert "".join(pieces) == (with_feedback if show else corrected)
    assert not any(step(a, b, True) in p for p in pieces for a, b, w in steps if w)
    assert run.result.passed and not run.retracted
    assert len(run.result.interventions) == sum(w for _, _, w in steps)


@given(steps=steps_strategy, delay=st.sampled_from([0.0, 0.002, 0.01]), rate=st.sampled_from([None, 2000.0]))
@settings(max_examples=30, deadline=None)
def test_released_thinking_is_the_corrected_thinking(steps: list[tuple[int, int, bool]], delay: float,
                                                     rate: float | None) -> None:
    """The same inside a reasoning model's thinking: the released Thought pieces join to the corrected thinking, a
    wrong step never leaves, and the answer after the thinking comes after it."""
    from interlock.monitor.proxy import Thought

    end = "</think>\nThe answer.\n"
    script: dict[str, str] = {"": "<think>\n" + "".join(step(a, b, w) for a, b, w in steps) + end}
    for k, (a, b, wrong) in enumerate(steps):
        if wrong:
            script[feedback(a, b)] = step(a, b, False) + "".join(step(x, y, w) for x, y, w in steps[k + 1:]) + end

    @verifier(name="sums")
    async def sums(s: Step) -> Any:
        await anyio.sleep(delay)
        return check_sums(s)

    async def play() -> tuple[list[str], ReleasedRun]:
        generator = Scripted(script, rate=rate, thinking_tags="<think>")
        run = ReleasedRun(Monitor(generator, [sums], max_interventions=10), "p")
        return [p for p in await run.collect() if isinstance(p, str)], run

    pieces, run = anyio.run(play)
    thinking = "".join(p for p in pieces if isinstance(p, Thought))
    assert thinking == "<think>\n" + "".join(step(a, b, False) for a, b, _ in steps) + "</think>"
    assert "".join(p for p in pieces if not isinstance(p, Thought)) == "\nThe answer.\n"
    last_thought = max(i for i, p in enumerate(pieces) if isinstance(p, Thought))
    assert all(not isinstance(p, Thought) for p in pieces[last_thought + 1:])
    assert not any(step(a, b, True) in p for p in pieces for a, b, w in steps if w)
    assert run.result.passed and run.text_of("thinking") == thinking
