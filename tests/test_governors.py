"""TokenBudget with a forced answer, and how the monitor applies governors' decisions (events, tokens saved)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from interlock import (
    Action,
    Chunk,
    ConfigError,
    FeedbackInjected,
    ForceAnswer,
    GenerationRequest,
    Governor,
    GovernorDecided,
    GovernorDecision,
    Monitor,
    RunContext,
    StopReason,
    TokenBudget,
)
from interlock.generators import FromIterator, Scripted
from support import SumVerifier

WORDS = " ".join(f"w{i}" for i in range(200))


def answering(prefix: str) -> str:
    """Reasons forever, but answers "7" (then rambles on) once the answer prefix is in the prefix."""
    if prefix.endswith("Final answer:"):
        return " 7\nThen more text that must not appear."
    return WORDS


async def test_forced_answer_ends_the_run_with_an_answer_within_the_cap() -> None:
    gen = Scripted(answering)
    budget = TokenBudget(max_kept=40, force_answer=ForceAnswer(tokens=5))
    async with Monitor(gen, governors=[budget]).stream("q") as run:
        events = [e async for e in run]
    result = run.result
    assert result.stop_reason is StopReason.BUDGET
    assert result.text == " ".join(f"w{i}" for i in range(35)) + "\nFinal answer: 7"
    assert result.tokens.kept == 36 <= 40
    assert gen.requests[0].max_new_tokens == 35  # the reserve is held back from the reasoning
    assert gen.requests[1].prefix.endswith("w34\nFinal answer:") and gen.requests[1].max_new_tokens == 5
    kinds = [e.kind for e in events if e.kind != "chunk"]
    assert kinds == ["run_started", "governor", "inject", "end"]
    decided = next(e for e in events if isinstance(e, GovernorDecided))
    assert (decided.governor, decided.action, decided.tokens_saved) == ("token_budget", "stop", 0)
    assert "token budget (max_kept=40) spent" in decided.reason
    injected = next(e for e in events if isinstance(e, FeedbackInjected))
    assert (injected.text, injected.position) == ("\nFinal answer:", len(result.text) - len("\nFinal answer: 7"))


async def test_forced_answer_never_exceeds_the_cap_when_the_model_rambles() -> None:
    gen = Scripted(lambda prefix: WORDS)  # never writes a line end after the prefix
    result = await Monitor(gen, governors=[TokenBudget(max_total=30, force_answer=ForceAnswer(tokens=6))]).run("q")
    assert result.tokens.total == 30
    assert result.text.endswith("w23\nFinal answer:w0 w1 w2 w3 w4 w5")
    assert result.stop_reason is StopReason.BUDGET


async def test_total_cap_with_forced_answer_holds_across_rollbacks() -> None:
    wrong = "Tom has 3 apples.\nSo 3 + 4 = 8.\n"

    def script(prefix: str) -> str:
        return " 7\n" if prefix.endswith("Final answer:") else wrong

    result = await Monitor(Scripted(script), [SumVerifier()], oscillation_limit=100, max_interventions=100,
                           governors=[TokenBudget(max_total=40, force_answer=ForceAnswer(tokens=4))]).run("q")
    assert result.tokens.total <= 40
    assert result.text.endswith("Final answer: 7")
    assert result.stop_reason is StopReason.BUDGET
    assert any(i.action is Action.ROLLBACK and i.applied for i in result.interventions)


async def test_chunks_larger_than_the_rest_of_the_budget_are_not_kept_and_the_answer_is_forced() -> None:
    async def factory(request: GenerationRequest) -> AsyncIterator[Chunk]:
        if request.prefix.endswith("Final answer:"):
            yield Chunk(" 12\n", token_ids=(1, 2))
            return
        for i in range(10):
            yield Chunk(f"part{i} ", token_ids=(0, 0, 0, 0))

    result = await Monitor(FromIterator(factory),
                           governors=[TokenBudget(max_kept=14, force_answer=ForceAnswer(tokens=3))]).run("q")
    assert result.text == "part0 part1 \nFinal answer: 12\n"
    assert result.tokens.kept == 10


def test_token_budget_rejects_a_cap_the_reserve_would_swallow() -> None:
    with pytest.raises(ConfigError, match="leaves nothing for reasoning"):
        TokenBudget(max_kept=16, force_answer=True)
    with pytest.raises(ConfigError, match="tokens must be >= 1"):
        ForceAnswer(tokens=0)
    with pytest.raises(ConfigError, match="force_answer must be a bool or a ForceAnswer"):
        TokenBudget(max_kept=100, force_answer="yes")  # type: ignore[arg-type]


class StopAfter(Governor):
    """Stops at the first chunk holding ``word``, optionally forcing the answer."""

    name = "stop_after"

    def __init__(self, word: str, force: ForceAnswer | None = None) -> None:
        self.word = word
        self.force = force

    def on_chunk(self, ctx: RunContext, chunk: Chunk) -> GovernorDecision | None:
        if self.word not in chunk.text or ctx.forcing_answer:
            return None
        if self.force is not None:
            return self.force.decision(f"saw {self.word}")
        return GovernorDecision(Action.STOP, f"saw {self.word}")


async def test_a_governor_stop_reports_the_budget_left_as_tokens_saved() -> None:
    gen = Scripted(answering)
    async with Monitor(gen, governors=[StopAfter("w9"), TokenBudget(max_kept=100)]).stream("q") as run:
        events = [e async for e in run]
    assert run.result.stop_reason is StopReason.GOVERNOR
    assert run.result.text.endswith("w8 w9") and run.result.tokens.kept == 10
    decided = [e for e in events if isinstance(e, GovernorDecided)]
    assert [(d.governor, d.action, d.reason, d.tokens_saved) for d in decided] == [
        ("stop_after", "stop", "saw w9", 90)]
    assert run.result.detail == "stop_after: saw w9"


async def test_a_forced_answer_from_another_governor_stays_within_the_budget_and_its_reserve() -> None:
    gen = Scripted(answering)
    governors = [StopAfter("w9", ForceAnswer(tokens=8)), TokenBudget(max_kept=30, force_answer=ForceAnswer(tokens=4))]
    async with Monitor(gen, governors=governors).stream("q") as run:
        events = [e async for e in run]
    result = run.result
    assert result.text == " ".join(f"w{i}" for i in range(10)) + "\nFinal answer: 7"
    assert result.stop_reason is StopReason.GOVERNOR
    assert result.detail == "stop_after: saw w9; the answer was forced"
    decided = next(e for e in events if isinstance(e, GovernorDecided))
    assert decided.tokens_saved == 30 - 4 - 10 - 8  # the budget left, less the answer's allowance
    assert gen.requests[1].max_new_tokens == 8


async def test_without_a_budget_tokens_saved_is_unknown() -> None:
    async with Monitor(Scripted(WORDS), governors=[StopAfter("w3")]).stream("q") as run:
        saved = [e.tokens_saved async for e in run if isinstance(e, GovernorDecided)]
    assert saved == [None]
