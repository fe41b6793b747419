"""Governors on a real transformers model (the tiny random one): EntropyStop reads the backend's real per-token
entropy, a forced answer and the caps hold with a real tokenizer, LoopGuard on real greedy text."""

from __future__ import annotations

from typing import Any

import pytest
from interlock import (
    ChunkAppended,
    EntropyStop,
    ForceAnswer,
    GovernorDecided,
    Monitor,
    StopReason,
    TokenBudget,
)
from interlock.generators import Transformers
from tiny_model import build_tiny_model

PROMPT = "What is 2 + 3?"


@pytest.fixture(scope="module")
def tiny() -> tuple[Any, Any]:
    return build_tiny_model()


def backend(tiny: tuple[Any, Any], **kwargs: Any) -> Transformers:
    model, tokenizer = tiny
    return Transformers(model, tokenizer, eos_token_ids=[], max_new_tokens=200, **kwargs)


async def free_run(gen: Transformers, n: int) -> list[tuple[str, tuple[float, ...]]]:
    """(text, per-token entropies) of each chunk of an unmonitored greedy run of ``n`` tokens (a chunk holds
    several tokens when they only decode together)."""
    out = []
    async with Monitor(gen, governors=[TokenBudget(max_kept=n)]).stream(PROMPT) as run:
        async for event in run:
            if isinstance(event, ChunkAppended):
                assert event.chunk.entropy is not None
                out.append((event.chunk.text, event.chunk.entropy))
    return out


def expected_stop(chunks: list[tuple[str, tuple[float, ...]]], threshold: float, window: int,
                  min_tokens: int) -> int | None:
    """The rule EntropyStop implements: after the chunk in which ``window`` values in a row fell below."""
    low = seen = 0
    for i, (_, values) in enumerate(chunks):
        for h in values:
            seen += 1
            low = low + 1 if h < threshold else 0
        if low >= window and seen >= min_tokens:
            return i + 1
    return None


async def test_entropy_stop_stops_where_the_real_entropy_says(tiny: tuple[Any, Any]) -> None:
    gen = backend(tiny)
    chunks = await free_run(gen, 60)
    entropies = [h for _, values in chunks for h in values]
    assert all(h >= 0 for h in entropies) and len(set(entropies)) > 10  # real, varying values
    # a threshold at the median: some tokens are below it, some above, so the window is what decides
    threshold = sorted(entropies)[len(entropies) // 2]
    window = 3
    stop = expected_stop(chunks, threshold, window, min_tokens=4)
    assert stop is not None and stop < len(chunks)
    kept = sum(len(values) for _, values in chunks[:stop])
    async with Monitor(gen, governors=[EntropyStop(threshold=threshold, window=window, min_tokens=4,
                                                   force_answer=False),
                                       TokenBudget(max_kept=60)]).stream(PROMPT) as run:
        decided = [e async for e in run if isinstance(e, GovernorDecided)]
    result = run.result
    assert result.stop_reason is StopReason.GOVERNOR
    assert result.tokens.kept == kept
    assert result.text == "".join(t for t, _ in chunks[:stop])
    assert [(d.governor, d.action, d.tokens_saved) for d in decided] == [("entropy_stop", "stop", 60 - kept)]


async def test_a_threshold_below_every_entropy_never_stops(tiny: tuple[Any, Any]) -> None:
    gen = backend(tiny)
    entropies = [h for _, values in await free_run(gen, 30) for h in values]
    result = await Monitor(gen, governors=[EntropyStop(threshold=min(entropies) / 2, window=2, min_tokens=0),
                                           TokenBudget(max_kept=30)]).run(PROMPT)
    assert result.stop_reason is StopReason.BUDGET and result.tokens.kept == 30


async def test_forced_answer_with_a_real_tokenizer_keeps_the_hard_cap(tiny: tuple[Any, Any]) -> None:
    gen = backend(tiny)
    budget = TokenBudget(max_kept=40, max_total=40, force_answer=ForceAnswer(tokens=6))
    result = await Monitor(gen, governors=[budget]).run(PROMPT)
    assert result.stop_reason is StopReason.BUDGET
    assert result.tokens.total <= 40
    assert "\nFinal answer:" in result.text
    answer = result.text.partition("\nFinal answer:")[2]
    assert answer.strip()  # the model wrote something after the prefix
    assert "\n" not in answer.strip()  # and the run ended with the answer's first line


def test_entropy_stop_accepts_the_transformers_backend_and_refuses_it_without_entropy(
        tiny: tuple[Any, Any]) -> None:
    Monitor(backend(tiny), governors=[EntropyStop()])
    from interlock import ConfigError

    with pytest.raises(ConfigError, match="EntropyStop needs a backend"):
        Monitor(backend(tiny, entropy=False, logprobs=False), governors=[EntropyStop()])
