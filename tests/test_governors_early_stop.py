"""EntropyStop and AnswerConvergence through the public API, with scripted chunks that carry entropy values."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from interlock import (
    AnswerConvergence,
    Capabilities,
    Chunk,
    ConfigError,
    EntropyStop,
    GenerationRequest,
    GovernorDecided,
    Monitor,
    StopReason,
    TokenBudget,
)
from interlock.generators import FromIterator, Scripted
from interlock.monitor.governors.early_stop import normalise_answer


class EntropyScript:
    """A resumable backend with entropy: plays (word, entropy) pairs; answers after the answer prefix."""

    def __init__(self, pairs: list[tuple[str, float]], answer: str = " 42\n") -> None:
        self.pairs = pairs
        self.answer = answer
        self.requests: list[GenerationRequest] = []

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(token_ids=True, logprobs=True, entropy=True)

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        self.requests.append(request)
        if request.prefix.endswith("Final answer:"):
            yield Chunk(self.answer, token_ids=(1,), logprobs=(-0.1,), entropy=(0.2,))
            return
        for i, (word, h) in enumerate(self.pairs):
            if request.max_new_tokens is not None and i >= request.max_new_tokens:
                return
            yield Chunk(word, token_ids=(i,), logprobs=(-h / 2,), entropy=(h,))


def words(n: int, h: float, tag: str) -> list[tuple[str, float]]:
    return [(f" {tag}{i}", h) for i in range(n)]


async def test_entropy_stop_forces_the_answer_after_a_window_of_low_entropy() -> None:
    pairs = words(10, 2.5, "think") + words(3, 0.1, "sure") + [(" hm", 1.0)] + words(30, 0.1, "done")
    gen = EntropyScript(pairs)
    async with Monitor(gen, governors=[EntropyStop(threshold=0.3, window=8, min_tokens=4),
                                       TokenBudget(max_kept=100)]).stream("q") as run:
        events = [e async for e in run]
    result = run.result
    # 3 low tokens, one high (the window starts again), then 8 low in a row: stop at done7
    assert result.text == "".join(w for w, _ in pairs[:22]) + "\nFinal answer: 42\n"
    assert result.stop_reason is StopReason.GOVERNOR
    assert result.detail == ("entropy_stop: entropy below 0.3 for the last 8 tokens: the model has decided; "
                             "the answer was forced")
    decided = [e for e in events if isinstance(e, GovernorDecided)]
    assert [(d.governor, d.action, d.tokens_saved) for d in decided] == [("entropy_stop", "stop", 100 - 22 - 16)]
    assert result.tokens.kept == 23


async def test_entropy_stop_plain_stop_and_min_tokens() -> None:
    pairs = words(40, 0.05, "w")
    result = await Monitor(EntropyScript(pairs), governors=[
        EntropyStop(window=5, min_tokens=12, force_answer=False)]).run("q")
    assert result.text == "".join(w for w, _ in pairs[:12])
    assert result.stop_reason is StopReason.GOVERNOR


async def test_surprisal_from_logprobs_is_used_when_chunks_have_no_entropy() -> None:
    async def factory(request: GenerationRequest) -> AsyncIterator[Chunk]:
        for i in range(30):
            yield Chunk(f" t{i}", token_ids=(i,), logprobs=(-0.01,))

    class WithLogprobs(FromIterator):
        @property
        def capabilities(self) -> Capabilities:
            return Capabilities(token_ids=True, logprobs=True)

    result = await Monitor(WithLogprobs(factory), governors=[
        EntropyStop(window=6, min_tokens=0, force_answer=False)]).run("q")
    assert result.text == "".join(f" t{i}" for i in range(6))
    with pytest.raises(ConfigError, match="per-token entropy"):
        Monitor(WithLogprobs(factory), governors=[EntropyStop(use_surprisal=False)])


def test_entropy_stop_on_a_backend_without_entropy_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"EntropyStop needs a backend that reports per-token entropy or logprobs"):
        Monitor(Scripted("some text"), governors=[EntropyStop()])
    with pytest.raises(ConfigError, match="threshold must be > 0"):
        EntropyStop(threshold=0)


async def test_entropy_stop_without_require_warns_once_and_stays_idle() -> None:
    async with Monitor(Scripted("a b c d e f g"), governors=[EntropyStop(require=False, window=2,
                                                                         min_tokens=0)]).stream("q") as run:
        decided = [e async for e in run if isinstance(e, GovernorDecided)]
    assert run.result.text == "a b c d e f g" and run.result.stop_reason is StopReason.COMPLETE
    assert [(d.action, d.reason) for d in decided] == [
        ("warn", "the backend reports no per-token entropy or logprobs: EntropyStop is idle for this run")]


async def test_entropy_window_restarts_after_a_rollback() -> None:
    import anyio
    from support import SumVerifier

    feedback_end = "Let me redo this step.\n"
    # the wrong step and the calm piece that ends it are 7 pieces, one short of the window: the first attempt then
    # waits until the rollback cancels it, so the stop can never land before the rollback whatever the timing
    calm = "".join(f" ok{i}" for i in range(4))
    script = {"": "So 3 + 4 = 8.\n ok0", feedback_end: f"So 3 + 4 = 7.\n{calm} end"}

    class Calm(Scripted):
        @property
        def capabilities(self) -> Capabilities:
            return Capabilities(entropy=True)

        async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
            async for c in super().stream(request):
                yield Chunk(c.text, entropy=(0.0,))
            if not request.prefix.endswith(feedback_end):
                with anyio.fail_after(30):  # a rollback that never comes fails the run instead of hanging it
                    await anyio.sleep_forever()

    gen = Calm(script)
    result = await Monitor(gen, [SumVerifier()], governors=[EntropyStop(window=8, min_tokens=0,
                                                                        force_answer=False)]).run("q")
    assert [(i.action.value, i.source, i.removed_text) for i in result.interventions] == [
        ("rollback", "sums", "So 3 + 4 = 8.\n ok0"), ("stop", "entropy_stop", "")]
    # after the rollback the window starts again: 8 calm pieces since then (a window that kept the 7 pieces of the
    # removed step would stop after the first new one)
    assert result.text.endswith(f"{feedback_end}So 3 + 4 = 7.\n ok0 ok1")
    assert result.stop_reason is StopReason.GOVERNOR


def test_normalise_answer_compares_values() -> None:
    assert normalise_answer("$1,250.00") == normalise_answer("1250") == "1250"
    assert normalise_answer("0.5") == "0.5"
    assert normalise_answer(" Forty  Two. ") == "forty two"


async def test_answer_convergence_stops_when_the_same_answer_comes_k_times() -> None:
    text = ("The total is 10.\nCheck: the total is 12.\nSo the answer is 12.\nIndeed, total: $12.00\n"
            "The answer is 12.\nMore words that cost tokens.\n")
    async with Monitor(Scripted(text), governors=[AnswerConvergence(k=3),
                                                  TokenBudget(max_kept=200)]).stream("q") as run:
        decided = [e async for e in run if isinstance(e, GovernorDecided)]
    result = run.result
    assert result.text == "The total is 10.\nCheck: the total is 12.\nSo the answer is 12.\nIndeed, total: $12.00\nThe"
    assert result.stop_reason is StopReason.GOVERNOR
    assert [(d.reason, d.tokens_saved) for d in decided] == [
        ("the answer '12' came 3 times in a row: converged", 200 - result.tokens.kept)]


async def test_answer_convergence_streak_breaks_on_a_different_answer() -> None:
    text = "answer: 5\nanswer: 5\nanswer: 6\nanswer: 5\nanswer: 5\nend\n"
    result = await Monitor(Scripted(text), governors=[AnswerConvergence(k=3)]).run("q")
    assert result.stop_reason is StopReason.COMPLETE and result.text == text


async def test_answer_convergence_with_a_fork_probe_forces_the_converged_answer() -> None:
    steps = "".join(f"Step {i}: thinking.\n" for i in range(12))
    probe = "\nSo the final answer is"
    forks = {"Step 0: thinking.\n" + probe: " 7.", "Step 1: thinking.\n" + probe: " 9.", probe: " 9."}
    gen = Scripted({"": steps, probe: " 9.\nDone."}, forks=forks, rate=200)
    async with Monitor(gen, governors=[AnswerConvergence(k=3, probe=probe, probe_tokens=3),
                                       TokenBudget(max_total=500)]).stream("q") as run:
        decided = [e async for e in run if isinstance(e, GovernorDecided)]
    result = run.result
    assert decided[0].reason == "the answer '9' came 3 times in a row: converged"
    reasoning, _, answer = result.text.partition(probe)
    assert answer == " 9." and result.stop_reason is StopReason.GOVERNOR
    # the third 9 came from the probe after step 3; the main stream may have gone on a little meanwhile
    assert reasoning.startswith(steps[:steps.index("Step 4")]) and steps.startswith(reasoning)
    fork_requests = [r for r in gen.requests if r.purpose == "fork"]
    assert [r.prefix.split("\n")[-3] for r in fork_requests[:4]] == [
        "Step 0: thinking.", "Step 1: thinking.", "Step 2: thinking.", "Step 3: thinking."]
    assert all(r.max_new_tokens == 3 and r.prefix.endswith("thinking.\n" + probe) for r in fork_requests)
    assert 4 <= result.tokens.fork <= len(fork_requests)  # one piece per probe, counted towards the total


def test_answer_convergence_probe_needs_a_forking_backend() -> None:
    with pytest.raises(ConfigError, match="needs a backend that can fork"):
        Monitor(Scripted("x"), governors=[AnswerConvergence(probe="\nSo the answer is")])
    with pytest.raises(ConfigError, match="needs a group"):
        AnswerConvergence(pattern=r"answer \d+")
    with pytest.raises(ConfigError, match="k must be >= 2"):
        AnswerConvergence(k=1)
