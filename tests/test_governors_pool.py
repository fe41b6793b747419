"""BudgetPool: shares by difficulty, easy runs give back, hard runs draw, the pool total always holds."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from interlock import (
    BudgetPool,
    Capabilities,
    Chunk,
    ConfigError,
    GenerationRequest,
    Monitor,
    StopReason,
    estimate_difficulty,
)
from interlock.generators import Scripted
from support import SumVerifier

EASY = "What is 2 + 3?"
HARD = ("A farmer has 12 cows and buys 3 more each week for 5 weeks, then sells half of them and gives 4 to "
        "each of his 2 sons. How many cows are left?")


def length_script(lengths: dict[str, int]) -> Scripted:
    """Each prompt reasons for its own number of words, then stops (or answers after the answer prefix)."""

    def script(prefix: str) -> str:
        return " 5\n" if prefix.endswith("Final answer:") else ""

    class ByPrompt(Scripted):
        async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
            self.requests.append(request)
            if request.prefix.endswith("Final answer:"):
                yield Chunk(" 5\n")
                return
            done = len(request.prefix.split())
            for i in range(done, lengths[request.prompt]):
                if request.max_new_tokens is not None and i - done >= request.max_new_tokens:
                    return
                await anyio.lowlevel.checkpoint()
                yield Chunk(f" w{i}")

    return ByPrompt(script)


def test_the_prior_ranks_word_problems_above_sums() -> None:
    assert estimate_difficulty(HARD) > 2 * estimate_difficulty(EASY)
    assert 0.5 < estimate_difficulty("What is 2 + 3?") < 2


async def test_shares_follow_difficulty_and_easy_runs_return_what_they_did_not_use() -> None:
    pool = BudgetPool(total=600, reserve=0.2, min_share=32, draw=40)
    gen = length_script({EASY: 10, HARD: 1000})
    results = await pool.run_batch(gen, [EASY, HARD], order="easy_first")
    easy, hard = pool.shares
    assert (easy.prompt, hard.prompt) == (EASY, HARD)
    base_easy, base_hard = easy.base, hard.base
    assert base_hard > 2 * base_easy and base_easy + base_hard <= 480
    assert results[0].text == "".join(f" w{i}" for i in range(10)) and results[0].stop_reason is StopReason.COMPLETE
    assert easy.returned == base_easy - 10
    # the hard run drew everything left: the reserve and what the easy run returned, then answered in its share
    assert hard.drawn == 600 - base_easy - base_hard + easy.returned
    assert results[1].stop_reason is StopReason.BUDGET and results[1].text.endswith("\nFinal answer: 5\n")
    assert results[0].tokens.total + results[1].tokens.total == pool.spent <= 600
    assert pool.free == 600 - pool.spent


async def test_a_draw_never_takes_the_share_promised_to_a_run_not_started_yet() -> None:
    pool = BudgetPool(total=300, reserve=0.0, min_share=32, draw=500)
    gen = length_script({HARD: 1000, EASY: 5})
    results = await pool.run_batch(gen, [HARD, EASY])  # the hard one goes first and draws all it can
    hard, easy = pool.shares
    assert easy.base == int(300 * easy.prior / (easy.prior + hard.prior))  # as promised when planned
    assert hard.drawn <= 300 - hard.base - easy.base  # at most the rounding leftover
    assert results[1].text == "".join(f" w{i}" for i in range(5))


async def test_rollbacks_make_a_run_look_harder_and_draw_more() -> None:
    pool = BudgetPool(total=10_000, min_share=32, draw=40)
    pool.plan([EASY, EASY + " "])
    calm, bumpy = pool.governor_for(EASY), pool.governor_for(EASY + " ")
    wrong = {"": "So 3 + 4 = 8.\n", "Let me redo this step.\n": "So 3 + 4 = 7.\n"}
    await Monitor(Scripted(wrong), [SumVerifier()], governors=[bumpy]).run(EASY + " ")
    assert bumpy.rollbacks == 1 and bumpy.difficulty == pytest.approx(1.5 * calm.difficulty)
    assert pool.draw_tokens(bumpy) == round(1.5 * pool.draw_tokens(calm))


async def test_high_entropy_raises_the_difficulty() -> None:
    class Unsure:
        capabilities = Capabilities(entropy=True)

        async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
            for i in range(5):
                yield Chunk(f" x{i}", entropy=(3.0,))

    pool = BudgetPool(total=1000, runs=1, reference_entropy=1.5)
    share = pool.governor_for(EASY)
    await Monitor(Unsure(), governors=[share]).run(EASY)
    assert share.difficulty == pytest.approx(2 * share.prior)


def test_pool_configuration_errors_are_clear() -> None:
    with pytest.raises(ConfigError, match="not planned"):
        BudgetPool(total=100).governor_for("x")
    with pytest.raises(ConfigError, match="reserve must be a fraction"):
        BudgetPool(total=100, reserve=1.5)
    with pytest.raises(ConfigError, match="need 192 tokens of base shares"):
        BudgetPool(total=100, min_share=64).plan(["a", "b", "c"])
    with pytest.raises(ConfigError, match="must exceed the forced answer"):
        BudgetPool(total=100, min_share=8)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(1, 300), min_size=1, max_size=6), st.integers(200, 1500), st.integers(1, 3),
       st.booleans())
def test_the_pool_total_always_holds(lengths: list[int], total: int, concurrency: int, force: bool) -> None:
    prompts = [f"Problem {i}: " + "add 3 and 4 " * (n % 7) for i, n in enumerate(lengths)]
    pool = BudgetPool(total=total, min_share=20, draw=25, force_answer=force)
    gen = length_script(dict(zip(prompts, lengths, strict=True)))

    async def main() -> list[int]:
        results = await pool.run_batch(gen, prompts, concurrency=concurrency)
        return [r.tokens.total for r in results]

    spent = anyio.run(main)
    assert sum(spent) == pool.spent <= total
    assert pool.free + sum(s.share for s in pool.shares) == total
    for share, n, used in zip(pool.shares, lengths, spent, strict=True):
        assert used <= share.share
        assert used == n or used >= share.base - 16  # finished on its own, or used at least its base share
