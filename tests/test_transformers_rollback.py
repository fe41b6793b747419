"""Rollback, fork, supersession and cancellation of the transformers backend, and a monitored run with it."""

from __future__ import annotations

import threading
import time
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from interlock import Fail, GenerationRequest, Monitor, StopReason, TraceView, Verifier
from interlock.generators import Transformers
from support import assert_same_chunks
from test_transformers_backend import collect, ids_of, reference_greedy
from tiny_model import build_tiny_model

PROMPT = "What is 2 + 3?"
FEEDBACK = "Wait, 7 * 8 = 56. Déjà vu 🙂\n"


@pytest.fixture(scope="module")
def tiny() -> tuple[Any, Any]:
    return build_tiny_model()


def prompt_ids(gen: Transformers, tokenizer: Any, prompt: str = PROMPT) -> list[int]:
    return list(tokenizer(gen.prompt_text(prompt), add_special_tokens=False)["input_ids"])


def token_ends(tokenizer: Any, ids: list[int]) -> list[int]:
    return [len(tokenizer.decode(ids[:i + 1])) for i in range(len(ids))]


async def test_rollback_crops_the_cache_and_resumes_exactly(tiny: tuple[Any, Any]) -> None:
    model, tokenizer = tiny
    gen = Transformers(model, tokenizer, temperature=1.0, seed=3, max_new_tokens=30, eos_token_ids=())
    first = await collect(gen, GenerationRequest(PROMPT))
    text, ids = "".join(c.text for c in first), ids_of(first)
    n_prompt = len(prompt_ids(gen, tokenizer))
    before = list(gen.context_ids)
    assert before == [*prompt_ids(gen, tokenizer), *ids[:-1]]  # the last sampled token was never needed
    # cut inside a token of two or more clean characters: that token straddles the cut
    ends = token_ends(tokenizer, ids)
    straddle = next(i for i in range(1, len(ids) - 2) if ends[i] - ends[i - 1] >= 2
                    and "\ufffd" not in text[ends[i - 1]:ends[i]] and "\ufffd" not in text[:ends[i - 1]][-1:])
    cut = ends[straddle - 1] + 1
    prefix = text[:cut] + FEEDBACK
    forwarded = gen.forwarded_tokens

    resumed = await collect(gen, GenerationRequest(PROMPT, prefix=prefix, max_new_tokens=10, greedy=True))
    after = list(gen.context_ids)
    # the cached tokens before the straddling one are kept, not run through the model again
    assert after[:n_prompt + straddle] == before[:n_prompt + straddle]
    assert gen.forwarded_tokens - forwarded == len(after) - (n_prompt + straddle)
    assert gen.cached_tokens == len(after)
    # the context is the cut text plus the feedback, byte for byte, then the continuation
    n_prefix = len(after) - n_prompt - 9
    assert tokenizer.decode(after[n_prompt:n_prompt + n_prefix]).encode() == prefix.encode()
    assert after[n_prompt + n_prefix:] == ids_of(resumed)[:9]
    # the continuation is exactly what the model generates from those tokens without any cache
    assert ids_of(resumed) == reference_greedy(model, after[:n_prompt + n_prefix], 10)


async def test_canonical_tokenization_resumes_like_a_fresh_instance(tiny: tuple[Any, Any]) -> None:
    model, tokenizer = tiny
    gen = Transformers(model, tokenizer, temperature=1.0, seed=4, max_new_tokens=25, eos_token_ids=(),
                       tokenization="canonical")
    text = "".join(c.text for c in await collect(gen, GenerationRequest(PROMPT)))
    prefix = text[:11] + FEEDBACK
    resumed = await collect(gen, GenerationRequest(PROMPT, prefix=prefix, max_new_tokens=12, greedy=True))
    fresh = Transformers(model, tokenizer, max_new_tokens=12, eos_token_ids=(), tokenization="canonical")
    expected = await collect(fresh, GenerationRequest(PROMPT, prefix=prefix))
    assert ids_of(resumed) == ids_of(expected)
    assert "".join(c.text for c in resumed) == "".join(c.text for c in expected)
    encoded = tokenizer(prefix, add_special_tokens=False)["input_ids"]
    n_prompt = len(prompt_ids(gen, tokenizer))
    assert list(gen.context_ids[n_prompt:n_prompt + len(encoded)]) == encoded


async def test_resuming_from_the_emitted_text_continues_the_same_generation(tiny: tuple[Any, Any]) -> None:
    model, tokenizer = tiny
    whole = await collect(Transformers(model, tokenizer, max_new_tokens=20, eos_token_ids=()),
                          GenerationRequest(PROMPT))
    gen = Transformers(model, tokenizer, max_new_tokens=8, eos_token_ids=())
    head = await collect(gen, GenerationRequest(PROMPT))
    forwarded = gen.forwarded_tokens
    tail = await collect(gen, GenerationRequest(PROMPT, prefix="".join(c.text for c in head), max_new_tokens=12))
    assert "".join(c.text for c in head + tail) == "".join(c.text for c in whole)
    assert ids_of(head + tail) == ids_of(whole)
    # only the one token that was sampled but not yet run, plus the eleven new ones, went through the model
    assert gen.forwarded_tokens - forwarded == 1 + 11


async def test_rollback_to_the_prompt_reuses_the_prompt(tiny: tuple[Any, Any]) -> None:
    model, tokenizer = tiny
    gen = Transformers(model, tokenizer, max_new_tokens=10, eos_token_ids=())
    first = await collect(gen, GenerationRequest(PROMPT))
    forwarded = gen.forwarded_tokens
    again = await collect(gen, GenerationRequest(PROMPT))
    assert_same_chunks(again, first)  # the same tokens; floats along another cache path agree to 1e-5
    assert gen.forwarded_tokens - forwarded == 1 + 9  # the prompt's last token again (for its logits), then 9
    other = await collect(gen, GenerationRequest("Another prompt entirely"))
    assert ids_of(other) == reference_greedy(model, prompt_ids(gen, tokenizer, "Another prompt entirely"), 10)


async def test_fork_does_not_disturb_the_main_stream(tiny: tuple[Any, Any]) -> None:
    model, tokenizer = tiny
    undisturbed = await collect(Transformers(model, tokenizer, temperature=1.0, seed=9, max_new_tokens=24,
                                             eos_token_ids=()), GenerationRequest(PROMPT))
    gen = Transformers(model, tokenizer, temperature=1.0, seed=9, max_new_tokens=24, eos_token_ids=(),
                       tokenization="canonical")
    main: list[Any] = []
    forks: list[tuple[str, list[Any]]] = []
    seen_some = anyio.Event()

    async def consume() -> None:
        async for chunk in gen.stream(GenerationRequest(PROMPT)):
            main.append(chunk)
            if len(main) == 4:
                seen_some.set()
            await anyio.sleep(0)

    async def fork() -> None:
        await seen_some.wait()
        base = "".join(c.text for c in main) + " So the answer is"
        forks.append((base, await collect(gen, GenerationRequest(PROMPT, prefix=base, max_new_tokens=6,
                                                                  purpose="fork", greedy=True))))

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        tg.start_soon(fork)
    assert [(c.text, c.token_ids) for c in main] == [(c.text, c.token_ids) for c in undisturbed]
    base, fork_chunks = forks[0]
    encoded = tokenizer(base, add_special_tokens=False)["input_ids"]
    assert ids_of(fork_chunks) == reference_greedy(model, prompt_ids(gen, tokenizer) + encoded, 6)


async def test_a_new_main_stream_supersedes_the_old_one(tiny: tuple[Any, Any]) -> None:
    model, tokenizer = tiny
    gen = Transformers(model, tokenizer, max_new_tokens=20, eos_token_ids=())
    old = gen.stream(GenerationRequest(PROMPT))
    await old.__anext__()
    new = await collect(gen, GenerationRequest("x = 3", max_new_tokens=5))
    assert sum(c.n_tokens for c in new) > 0
    with pytest.raises(StopAsyncIteration):
        await old.__anext__()
    await old.aclose()


class _SlowForward:
    """Counts forward passes (and those in flight) and makes each take a while, to cancel in the middle."""

    def __init__(self, model: Any, delay: float) -> None:
        self.calls = 0
        self.in_flight = 0
        self.lock = threading.Lock()
        self.delay = delay
        self.handles = [model.register_forward_pre_hook(self.pre), model.register_forward_hook(self.post)]

    def pre(self, *_: Any) -> None:
        with self.lock:
            self.calls += 1
            self.in_flight += 1
        time.sleep(self.delay)

    def post(self, *_: Any) -> None:
        with self.lock:
            self.in_flight -= 1

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


async def test_cancellation_stops_within_one_token_and_leaves_no_work_running(tiny: tuple[Any, Any]) -> None:
    model, tokenizer = tiny
    gen = Transformers(model, tokenizer, max_new_tokens=200, eos_token_ids=())
    slow = _SlowForward(model, 0.05)
    try:
        received: list[Any] = []
        with anyio.CancelScope() as scope:
            async for chunk in gen.stream(GenerationRequest(PROMPT)):
                received.append(chunk)
                if len(received) == 3:
                    calls_at_cancel = slow.calls
                    scope.cancel()
                    await anyio.sleep(1)  # the cancel lands here; the stream must not run on
        assert slow.in_flight == 0
        assert slow.calls - calls_at_cancel <= 1
        calls = slow.calls
        await anyio.sleep(0.3)
        assert slow.calls == calls  # nothing runs on in the background
    finally:
        slow.remove()
    # the state stays consistent: resuming from what was received continues the greedy generation
    whole = await collect(Transformers(model, tokenizer, max_new_tokens=10, eos_token_ids=()),
                          GenerationRequest(PROMPT))
    text = "".join(c.text for c in received)
    rest = await collect(gen, GenerationRequest(PROMPT, prefix=text, max_new_tokens=10 - len(ids_of(received))))
    assert text + "".join(c.text for c in rest) == "".join(c.text for c in whole)


async def test_cancelled_while_consumer_waits_elsewhere(tiny: tuple[Any, Any]) -> None:
    model, tokenizer = tiny
    gen = Transformers(model, tokenizer, max_new_tokens=500, eos_token_ids=())
    slow = _SlowForward(model, 0.02)
    got: list[Any] = []
    try:
        async def consume() -> None:
            async for chunk in gen.stream(GenerationRequest(PROMPT)):
                got.append(chunk)

        with anyio.move_on_after(0.3):
            await consume()
        calls = slow.calls
        assert slow.in_flight == 0
        await anyio.sleep(0.2)
        assert slow.calls == calls
        assert 0 < len(got) < 500
    finally:
        slow.remove()


class FailTwice(Verifier):
    """Fails the last step in epochs 0 and 1 (different claims), passes afterwards."""

    name = "fail-twice"

    def extract(self, view: TraceView) -> TraceView:
        return view

    def check(self, view: TraceView) -> Fail | None:
        if view.epoch >= 2 or not view.step.text.strip():
            return None
        return Fail(f"bad step in epoch {view.epoch}", span=view.step.span, feedback=f"fix number {view.epoch}",
                    claim=f"epoch {view.epoch}")


async def test_monitored_run_rolls_back_through_the_cache(tiny: tuple[Any, Any]) -> None:
    model, tokenizer = tiny
    gen = Transformers(model, tokenizer, max_new_tokens=20, eos_token_ids=())
    monitor = Monitor(gen, verifiers=[FailTwice()])
    result = await monitor.run(PROMPT)
    assert result.stop_reason is StopReason.LENGTH  # no EOS: the generator's own max_new_tokens ended the text
    assert [i.source for i in result.interventions] == ["fail-twice", "fail-twice"]
    fb1, fb2 = (i.feedback for i in result.interventions)
    assert fb1 == "Wait, fix number 0. Let me redo this step.\n"
    assert fb2 == "Wait, fix number 1. Let me redo this step.\n"
    assert result.interventions[0].position == 0
    assert result.interventions[1].position == len(fb1)
    assert result.text.startswith(fb1 + fb2)
    assert result.tokens.kept == 20 and result.tokens.discarded == 40
    # every rollback ran only the feedback through the model: the prompt and fb1 stayed cached
    n_prompt = len(prompt_ids(gen, tokenizer))
    encode = lambda s: tokenizer(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    assert gen.forwarded_tokens == n_prompt + len(encode(fb1)) + len(encode(fb2)) + 3 * 19
    # and the final continuation is what the model generates from that context
    context = list(gen.context_ids)
    assert tokenizer.decode(context[n_prompt:]) == result.text[:len(tokenizer.decode(context[n_prompt:]))]
    continuation = reference_greedy(model, context[:-19], 20)
    assert tokenizer.decode(continuation) == result.text[len(fb1 + fb2):]


@pytest.fixture(scope="module")
def sampled_trace(tiny: tuple[Any, Any]) -> tuple[Transformers, str]:
    """A generator and a sampled trace with multi-byte characters and tokens that only together make one."""
    model, tokenizer = tiny
    gen = Transformers(model, tokenizer, temperature=1.0, seed=2, max_new_tokens=40, eos_token_ids=())
    text = anyio.run(lambda: collect(gen, GenerationRequest(PROMPT)))
    return gen, "".join(c.text for c in text)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0, max_value=10_000), feedback=st.text(max_size=12))
def test_the_resumed_context_is_the_cut_text_plus_the_feedback_byte_for_byte(
        tiny: tuple[Any, Any], sampled_trace: tuple[Transformers, str], cut: int, feedback: str) -> None:
    _, tokenizer = tiny
    gen, text = sampled_trace
    cut = cut % (len(text) + 1)
    prefix = text[:cut] + feedback

    async def resume() -> None:
        await collect(gen, GenerationRequest(PROMPT, prefix=text, max_new_tokens=1, greedy=True))
        await collect(gen, GenerationRequest(PROMPT, prefix=prefix, max_new_tokens=1, greedy=True))

    anyio.run(resume)
    n_prompt = len(prompt_ids(gen, tokenizer))
    context = list(gen.context_ids)
    assert tokenizer.decode(context[n_prompt:]).encode() == prefix.encode()
    assert gen.cached_tokens == len(context)
