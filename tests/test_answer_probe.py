"""AnswerProbe: the stop rules (hypothesis), the turns it probes at, and the governor live: over HTTP in front of a
stand-in reasoning server that settles early and re-checks itself, on the local backend by KV fork, and with a
rollback that cancels the probes in flight."""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from interlock import (
    AnswerProbe,
    Capabilities,
    Chunk,
    Fail,
    GenerationRequest,
    Monitor,
    OpenAICompatible,
    Outcome,
    Step,
    StopReason,
    verifier,
)
from interlock.monitor.cli import main
from interlock.monitor.errors import ConfigError
from interlock.monitor.governors import Agreement, Confident, EntropySettled, ProbeAnswer, StopRules
from interlock.monitor.governors.answer_probe import DEFAULT_PROBE_ANSWER, probe_from_spec
from interlock.monitor.governors.probe_boundaries import ProbeBoundaries
from interlock.monitor.governors.probe_rules import ema_variance, probe_answer, read_answer, same_answer
from interlock.monitor.governors.thinking_budget import DEFAULT_BUDGET_MESSAGE
from interlock.monitor.phases import ANSWER, THINKING
from interlock.monitor.result import TokenCounts
from probe_server import ProbeServer, RecheckingModel, served_in_thread


def pa(answer: str | None, *, lps: tuple[float, ...] | None = None, entropy: float | None = None,
       position: int = 1) -> ProbeAnswer:
    return ProbeAnswer(position=position, tokens=position, text=f"{answer}}}", answer=answer, logprobs=lps,
                       entropy=entropy, fork_tokens=1)


def eq(a: str, b: str) -> bool:
    return a == b


# -- reading a probe's answer -------------------------------------------------------------------------------
def test_read_answer_closes_the_braces_the_prefix_opened() -> None:
    assert read_answer("\\boxed{", "42} and more") == ("42", 3)
    assert read_answer("\\boxed{", "\\frac{1}{2}}.") == ("\\frac{1}{2}", 12)
    assert read_answer("\\boxed{", "\\{1, 2\\}}") == ("\\{1, 2\\}", 9)  # escaped braces are characters
    assert read_answer("\\boxed{", "\\frac{1}{2") == (None, 10)  # not finished within the probe: no answer
    assert read_answer("\\boxed{", "}") == (None, 1)  # an empty box is no answer
    assert read_answer("The answer is", " 42.\nMore") == ("42", 4)
    assert read_answer("The answer is", " 42") == (None, 3)  # the line may go on
    assert read_answer("The answer is", " $42$", complete=True) == ("42", 5)


def test_probe_answer_takes_the_logprobs_of_the_answer_tokens_and_the_first_entropy() -> None:
    chunks = [Chunk("4", logprobs=(-0.1,), entropy=(0.5,)), Chunk("2", logprobs=(-0.2,), entropy=(0.1,)),
              Chunk("}", logprobs=(-0.3,), entropy=(0.2,)), Chunk(" and", logprobs=(-2.0,), entropy=(3.0,))]
    got = probe_answer(chunks, "\\boxed{", position=10, tokens=5)
    assert (got.answer, got.logprobs, got.entropy, got.fork_tokens) == ("42", (-0.1, -0.2, -0.3), 0.5, 4)
    assert got.confidence == pytest.approx((math.exp(-0.1) + math.exp(-0.2) + math.exp(-0.3)) / 3)
    bare = probe_answer([Chunk("42}")], "\\boxed{", position=1, tokens=1)
    assert (bare.answer, bare.logprobs, bare.entropy, bare.confidence) == ("42", None, None, None)
    surprisal = probe_answer([Chunk("7}", logprobs=(-0.7,))], "\\boxed{", position=1, tokens=1)
    assert surprisal.entropy == pytest.approx(0.7)  # no entropy: the surprisal of the first token stands in


def test_answers_are_compared_after_normalisation() -> None:
    assert same_answer("\\dfrac{1}{2}", "\\frac{1}{2}")
    assert same_answer("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})")
    assert same_answer("0.5", "\\frac{1}{2}")  # math-verify
    assert not same_answer("42", "41")
    assert not same_answer("x" * 100, "y" * 100)  # long answers: normalised text only


# -- the stop rules (hypothesis) -------------------------------------------------------------------------------
answers = st.lists(st.sampled_from(["1", "2", None]), max_size=30)


def first_stop(rules: StopRules, history: Sequence[ProbeAnswer]) -> int | None:
    for i in range(1, len(history) + 1):
        if rules.check(history[:i], eq) is not None:
            return i
    return None


@given(answers, st.integers(1, 5))
def test_agreement_stops_at_the_first_run_of_k_equal_answers(seq: list[str | None], k: int) -> None:
    history = [pa(a) for a in seq]
    stop = first_stop(StopRules((Agreement(k),)), history)
    runs = [i for i in range(k, len(seq) + 1) if seq[i - 1] is not None and len(set(seq[i - k:i])) == 1]
    assert stop == (runs[0] if runs else None)
    if stop is not None:
        assert stop >= k and None not in seq[stop - k:stop]


@given(st.lists(st.lists(st.floats(-8, 0), min_size=1, max_size=4), min_size=1, max_size=12),
       st.floats(0.05, 1.0))
def test_confidence_stops_at_the_first_probe_whose_mean_probability_reaches_the_threshold(
        lps: list[list[float]], threshold: float) -> None:
    history = [pa("7", lps=tuple(x)) for x in lps]
    stop = first_stop(StopRules((Confident(threshold),)), history)
    means = [sum(math.exp(v) for v in x) / len(x) for x in lps]
    expected = next((i + 1 for i, m in enumerate(means) if m >= threshold), None)
    assert stop == expected


@given(st.lists(st.floats(0, 5), min_size=1, max_size=20), st.floats(0.05, 1.0))
def test_ema_variance_is_zero_for_constant_values_and_never_negative(values: list[float], alpha: float) -> None:
    assert ema_variance(values, alpha) >= 0
    assert ema_variance([values[0]] * len(values), alpha) == 0
    shifted = [v + 3.0 for v in values]  # a shift of every value changes nothing
    assert ema_variance(shifted, alpha) == pytest.approx(ema_variance(values, alpha), abs=1e-9)


@given(st.lists(st.floats(0, 3), min_size=0, max_size=15), st.integers(2, 6))
def test_entropy_settles_after_warmup_when_the_variance_is_below_the_threshold(values: list[float],
                                                                              warmup: int) -> None:
    rule = EntropySettled(0.05, 0.3, warmup)
    history = [pa("3", entropy=v) for v in values]
    stop = first_stop(StopRules((rule,)), history)
    expected = next((i for i in range(warmup, len(values) + 1) if ema_variance(values[:i], 0.3) < 0.05), None)
    assert stop == expected


@given(answers, st.lists(st.floats(-3, 0), min_size=30, max_size=30))
def test_all_means_every_rule_at_the_same_probe(seq: list[str | None], lps: list[float]) -> None:
    history = [pa(a, lps=(lp,)) for a, lp in zip(seq, lps, strict=False)]
    both = StopRules((Agreement(2), Confident(0.5)), "all")
    for i in range(1, len(history) + 1):
        got = both.check(history[:i], eq) is not None
        assert got == (Agreement(2).check(history[:i], eq) is not None
                       and Confident(0.5).check(history[:i], eq) is not None)


def test_rules_reject_bad_settings() -> None:
    for bad in (lambda: Agreement(0), lambda: Confident(1.5), lambda: EntropySettled(0), lambda: StopRules(()),
                lambda: AnswerProbe(k=None), lambda: AnswerProbe(at=("sometimes",)), lambda: AnswerProbe(every=0),
                lambda: AnswerProbe(at=(), every=None), lambda: probe_from_spec("k=x"),
                lambda: probe_from_spec("colour=red"), lambda: AnswerProbe(then="maybe")):  # type: ignore[arg-type]
        with pytest.raises(ConfigError):
            bad()


def test_spec_sets_the_kind_defaults_and_options() -> None:
    p = probe_from_spec("k=2:at=wait/paragraph:every=64:tokens=8")
    assert (p.boundaries.at, p.every, p.probe_tokens, [r.name for r in p.rules.rules]) == (
        ("wait", "paragraph"), 64, 8, ["agree"])
    deer = probe_from_spec("", "deer")
    assert [(type(r).__name__, getattr(r, "threshold", None)) for r in deer.rules.rules] == [("Confident", 0.95)]
    eat = probe_from_spec("eat=0.02:k=2", "eat")
    assert ([type(r).__name__ for r in eat.rules.rules], eat.boundaries.at) == (
        ["Agreement", "EntropySettled"], ("paragraph",))


# -- where it probes --------------------------------------------------------------------------------------------
TEXT = ("So 6 times 7 is 42.\n\nWait, let me check. 42 is right. Hmm, yes.\nLet me just double-check: fine.\n\n"
        "Alternatively, count: it waits. Waiting is no turn. But wait")


def test_boundaries_at_turn_words_and_paragraphs() -> None:
    turns = ProbeBoundaries(("wait",)).find(TEXT)
    assert [TEXT[p:p + 9] for p in turns] == ["Wait, let", "Hmm, yes.", "Let me ju", "Alternati"]
    paragraphs = ProbeBoundaries(("paragraph",)).find(TEXT)
    assert [TEXT[p:p + 5] for p in paragraphs] == ["Wait,", "Alter"]
    assert ProbeBoundaries(("wait", "paragraph")).find(TEXT) == sorted(set(turns) | set(paragraphs))


@given(st.integers(0, len(TEXT)))
def test_a_stream_cut_anywhere_finds_the_points_of_the_whole_text(cut: int) -> None:
    b = ProbeBoundaries(("wait", "paragraph"))
    whole = b.find(TEXT)
    assert set(b.find(TEXT[:cut])) <= set(whole)  # never a point that the rest of the text undoes
    later = b.find(TEXT, max(0, cut - 64))
    assert sorted(set(b.find(TEXT[:cut])) | set(later)) == whole


# -- the governor, driven by hand: ordering and rollbacks (hypothesis) ------------------------------------------
@dataclass
class FakeRun:
    """The governor's view of a run, with forks whose answers the test releases in any order."""

    text: str = ""
    epoch: int = 0
    phase: str = THINKING
    kept: int = 0
    forks: list[tuple[int, anyio.Event, list[str]]] = field(default_factory=list)
    run_id: str = "r1"
    prompt: str = "q"
    interventions: tuple[Any, ...] = ()
    elapsed: float = 0.0
    capabilities: Capabilities = field(default_factory=lambda: Capabilities(fork=True))
    forcing_answer: bool = False

    @property
    def tokens(self) -> TokenCounts:
        return TokenCounts(kept=self.kept, thinking=self.kept if self.phase == THINKING else 0)

    def fork_at(self, end: int | None = None) -> Any:
        position = len(self.text) if end is None else end
        run = self

        class _Fork:
            async def chunks(self, suffix: str, max_tokens: int, *, answer: str | None = None) -> list[Chunk]:
                event, out = anyio.Event(), []
                run.forks.append((position, event, out))
                await event.wait()
                return [Chunk(out[0])]

        return _Fork()

    def add(self, text: str) -> Chunk:
        self.text += text
        self.kept += 1
        return Chunk(text, phase=self.phase)  # type: ignore[arg-type]


@settings(max_examples=40, deadline=None)
@given(st.permutations(range(6)), st.integers(2, 4))
def test_answers_reach_the_rules_in_the_order_the_probes_were_made(order: list[int], k: int) -> None:
    said = ["1", "2", "2", "2", "2", "2"]  # in probe order: agreement of k on "2" ends at probe k + 1

    async def scenario() -> list[tuple[int, Any]]:
        probe = AnswerProbe(at=(), every=1, k=k, same=eq)
        run = FakeRun()
        probe.start(run)  # type: ignore[arg-type]
        pending = [probe.on_chunk(run, run.add(f"step {i}. ")) for i in range(6)]  # type: ignore[arg-type]
        decisions: list[tuple[int, Any]] = []

        async def wait(i: int, awaitable: Any) -> None:
            decision = await awaitable
            if decision is not None:
                decisions.append((i, decision))

        async with anyio.create_task_group() as tg:
            for i, awaitable in enumerate(pending):
                tg.start_soon(wait, i, awaitable)
            await anyio.wait_all_tasks_blocked()
            for i in order:
                _, event, out = run.forks[i]
                out.append(said[i] + "}")
                event.set()
                await anyio.wait_all_tasks_blocked()
        return decisions

    decisions = anyio.run(scenario)
    assert len(decisions) == 1  # one decision, whatever the order the answers came back in
    _, decision = decisions[0]
    assert decision.thinking == "end" and decision.inject == DEFAULT_BUDGET_MESSAGE
    assert f"{k} probes in a row answered '2'" in decision.reason


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 5), st.integers(0, 4))
def test_a_rollback_drops_the_probes_made_before_it(before: int, after: int) -> None:
    async def scenario() -> tuple[list[Any], tuple[ProbeAnswer, ...]]:
        probe = AnswerProbe(at=(), every=1, k=2, same=eq)
        run = FakeRun()
        probe.start(run)  # type: ignore[arg-type]
        old = [probe.on_chunk(run, run.add(f"a{i}. ")) for i in range(before)]  # type: ignore[arg-type]
        run.text, run.epoch = run.text[:3], 1  # a rollback cut the text (and the monitor cancelled nothing yet)
        new = [probe.on_chunk(run, run.add(f"b{i}. ")) for i in range(after)]  # type: ignore[arg-type]
        results: list[Any] = []

        async def wait(awaitable: Any) -> None:
            results.append(await awaitable)

        async with anyio.create_task_group() as tg:
            for awaitable in [*old, *new]:
                if awaitable is not None:
                    tg.start_soon(wait, awaitable)
            await anyio.wait_all_tasks_blocked()
            for _, event, out in run.forks:  # every answer is "7": the old probes would agree with the new
                out.append("7}")
                event.set()
        return results, probe.probes(run.run_id)

    results, history = anyio.run(scenario)
    assert all(p.position > 3 for p in history)  # only probes of text after the cut count
    assert len(history) == after
    stops = [r for r in results if r is not None]
    assert len(stops) == (1 if after >= 2 else 0)  # old probes never made the new streak


# -- live, over HTTP, in front of the stand-in reasoning server -------------------------------------------------
@pytest.fixture(scope="module")
def rechecking() -> Any:
    model = RecheckingModel()
    server = ProbeServer(model, delay=0.005)  # a turn every ~110 ms: probes come back long before the next one
    with served_in_thread(server.app()) as url:
        yield server, url


async def test_probes_end_a_rechecking_thinking_early_over_http(rechecking: Any) -> None:
    server, url = rechecking
    start = len(server.bodies)
    probe = AnswerProbe()
    async with OpenAICompatible(url, "reasoner", max_tokens=4096) as gen:
        result = await Monitor(gen, governors=[probe]).run("What is 6 times 7?")
    full = server.model.thinking
    assert result.stop_reason is StopReason.COMPLETE and result.outcome is not Outcome.BUDGET
    assert result.answer == "The answer is \\boxed{42}."
    assert result.reasoning.endswith(DEFAULT_BUDGET_MESSAGE)
    assert len(result.reasoning) < len(full) / 2
    # three probes, at the first three turns ("Wait"), each answered "42" in one token (on a loaded machine a
    # fourth may have gone out before the third came back: it is cancelled when the thinking ends)
    made = probe.last_probes
    assert [p.answer for p in made[:3]] == ["42", "42", "42"] and len(made) in (3, 4)
    assert [full[p.position:p.position + 5] for p in made] == ["Wait,"] * len(made)
    assert result.tokens.fork == len(made)
    probes = server.probe_requests()[-len(made):]
    assert len(server.bodies) - start == 2 + len(made)  # the main stream, the probes, the answer after the thinking
    for body in probes:
        final = body["messages"][-1]
        assert final["content"] == DEFAULT_PROBE_ANSWER and body["temperature"] == 0
        assert full.startswith(final["reasoning_content"]) and body["continue_final_message"] is True
    governed = [e for e in result.interventions]
    assert governed == []  # ending the thinking is no intervention on the text


async def test_then_probe_returns_the_probed_answer(rechecking: Any) -> None:
    _, url = rechecking
    probe = AnswerProbe(k=2, then="probe", message="")
    async with OpenAICompatible(url, "reasoner", max_tokens=4096) as gen:
        result = await Monitor(gen, governors=[probe]).run("What is 6 times 7?")
    assert result.answer == DEFAULT_PROBE_ANSWER + "42}"
    assert result.stop_reason is StopReason.GOVERNOR and "2 probes in a row answered '42'" in result.detail


async def test_deer_and_eat_read_the_probes_token_probabilities() -> None:
    model = RecheckingModel(preamble="Let me think about 6 times 7 first.\n\nHmm, six sevens.")
    server = ProbeServer(model)
    with served_in_thread(server.app()) as url:
        async with OpenAICompatible(url, "reasoner", max_tokens=4096, logprobs=True, top_logprobs=5) as gen:
            deer = AnswerProbe(k=None, confidence=0.9, at=("wait", "paragraph"))
            first = await Monitor(gen, governors=[deer]).run("What is 6 times 7?")
            eat = AnswerProbe(k=None, entropy=0.01, alpha=0.5, warmup=3, at=("paragraph",))
            second = await Monitor(gen, governors=[eat]).run("What is 6 times 7?")
        with pytest.raises(ConfigError, match="logprobs"):
            Monitor(OpenAICompatible(url, "reasoner"), governors=[AnswerProbe(k=None, confidence=0.9)])
    # before the answer is found the probes are unsure (mean probability e^-1.2 = 0.30): no stop there
    assert [p.answer for p in deer.last_probes] == ["41", "41", "42"]
    assert [round(p.confidence or 0, 2) for p in deer.last_probes] == [0.3, 0.3, 0.99]
    assert first.answer == "The answer is \\boxed{42}." and first.outcome is not Outcome.BUDGET
    entropies = [p.entropy for p in eat.last_probes]
    assert len(entropies) >= 3 and entropies[0] != entropies[-1]  # unsure, then settled
    assert second.answer == "The answer is \\boxed{42}." and second.reasoning.endswith(DEFAULT_BUDGET_MESSAGE)
    assert len(second.reasoning) < len(model.thinking) / 2


def test_interlock_run_probe_ends_the_thinking_and_answers(rechecking: Any,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    server, url = rechecking
    full = server.model.thinking
    code = main(["run", "What is 6 times 7?", "--base-url", url, "--model", "reasoner", "--probe", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert out["outcome"] not in ("budget", "cut") and code == 0
    assert out["answer"] == "The answer is \\boxed{42}."
    assert len(out["reasoning"]) < len(full) / 2 and out["tokens"]["fork"] in (3, 4)
    # without the probes the same run spends its whole budget thinking
    code = main(["run", "What is 6 times 7?", "--base-url", url, "--model", "reasoner", "--json"])
    plain = json.loads(capsys.readouterr().out)
    assert (plain["outcome"], code, plain.get("answer", "")) == ("budget", 3, "")


async def test_interlock_proxy_probe_ends_the_upstreams_thinking() -> None:
    import httpx
    from interlock.monitor.cli.main import build_parser
    from interlock.monitor.cli.proxy import build_config
    from interlock.monitor.proxy import create_app, serving

    server = ProbeServer(RecheckingModel(), delay=0.005)
    question = {"model": "reasoner", "messages": [{"role": "user", "content": "What is 6 times 7?"}]}
    async with serving(server.app()) as upstream:
        answers = {}
        for flag in (["--probe", "k=2"], []):
            args = build_parser().parse_args(["proxy", "--base-url", upstream + "/v1", "-v", "none", *flag])
            config, _, _ = build_config(args)
            async with serving(create_app(config)) as url, httpx.AsyncClient(timeout=60) as http:
                reply = await http.post(url + "/v1/chat/completions", json=question)
            answers[bool(flag)] = reply.json()
    probed, plain = answers[True], answers[False]
    assert probed["choices"][0]["message"]["content"].endswith("The answer is \\boxed{42}.")
    assert probed["interlock"]["tokens"]["fork"] in (2, 3) and probed["interlock"]["stop_reason"] == "complete"
    assert probed["usage"]["completion_tokens"] * 4 < plain["usage"]["completion_tokens"]
    assert len(server.probe_requests()) == probed["interlock"]["tokens"]["fork"]  # only the probed run asked


# -- a rollback inside the thinking cancels the probes in flight ------------------------------------------------
class SlowForks:
    """Plays a thinking in word pieces; fork requests hang until cancelled (counted), or answer at once once
    ``answer_forks`` is set."""

    def __init__(self, script: dict[str, str]) -> None:
        self.script = script
        self.cancelled = 0
        self.answer_forks = False
        self.requests: list[GenerationRequest] = []

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(fork=True, resumable=True)

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        self.requests.append(request)
        if request.purpose == "fork":
            if not self.answer_forks:
                try:
                    await anyio.sleep_forever()
                except anyio.get_cancelled_exc_class():
                    self.cancelled += 1
                    raise
            yield Chunk("9}", finish_reason="stop")
            return
        if request.phases and request.phase == ANSWER:  # the thinking was ended: the answer
            yield Chunk("The answer is 9.", phase=ANSWER, finish_reason="stop")
            return
        key = max((k for k in self.script if request.prefix.endswith(k)), key=len)
        for word in self.script[key].split(" "):
            await anyio.sleep(0.001)
            yield Chunk(word + " ", phase=THINKING)


async def test_a_rollback_cancels_the_probes_in_flight() -> None:
    @verifier(name="no_eight")
    def no_eight(step: Step) -> Fail | None:
        if "= 8" in step.text:
            at = step.text.index("= 8")
            return Fail("2 * 4 is 8 but the step claims it wrongly", span=step.to_trace(at, at + 3),
                        feedback="redo it")
        return None

    gen = SlowForks({"": "First. Wait, a. Wait, b. Wait, c. Then 3 = 8 done.\n",
                     "Let me redo this step.\n": "Fine. Wait, d. Wait, e. Wait, f. Wait, g. end.\n"})
    probe = AnswerProbe(k=2, same=eq)
    monitor = Monitor(gen, verifiers=[no_eight], governors=[probe])
    async with monitor.stream("q") as run:
        async for event in run:
            if event.kind == "intervention":
                gen.answer_forks = True
        result = run.result
    assert gen.cancelled == 3  # the three probes before the rollback, still hanging, were cancelled
    assert [i.action.value for i in result.interventions] == ["rollback"]
    cut = result.interventions[0].position
    assert all(p.position > cut for p in probe.last_probes) and len(probe.last_probes) >= 2
    assert result.reasoning.endswith(DEFAULT_BUDGET_MESSAGE)
    assert result.tokens.fork == len(probe.last_probes)  # the answered probes; the cancelled ones produced nothing


# -- the local backend: probes are KV forks ------------------------------------------------------------------------
class Recording:
    """A generator wrapper that records the requests it is asked for."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.requests: list[GenerationRequest] = []

    @property
    def capabilities(self) -> Capabilities:
        return self.inner.capabilities  # type: ignore[no-any-return]

    def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        self.requests.append(request)
        return self.inner.stream(request)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def thinking_model() -> Any:
    from tiny_model import build_tiny_model

    return build_tiny_model(thinking=True)


async def test_probes_fork_the_kv_cache_of_a_local_thinking_model(thinking_model: Any) -> None:
    from interlock import Transformers

    model, tokenizer = thinking_model
    plain = Transformers(model, tokenizer, max_new_tokens=40)
    baseline = await Monitor(plain).run("What is 2 + 3?")
    gen = Recording(Transformers(model, tokenizer, max_new_tokens=40))
    probe = AnswerProbe(at=(), every=6, k=2, probe_tokens=3, same=lambda a, b: True,
                        read=lambda prefix, chunks: "".join(c.text for c in chunks) or None)
    result = await Monitor(gen, governors=[probe]).run("What is 2 + 3?")
    forks = [r for r in gen.requests if r.purpose == "fork"]
    assert len(forks) >= 2 and all(r.max_new_tokens == 3 and r.greedy for r in forks)  # (one more may be out)
    for r in forks:  # the thinking so far, closed, and the probe's answer prefix
        assert r.prefix.endswith("</think>" + DEFAULT_PROBE_ANSWER)
        assert r.phases[-1] == (len(r.prefix) - len(DEFAULT_PROBE_ANSWER), ANSWER)
        assert baseline.text.startswith(r.prefix[:r.phases[-1][0] - len("</think>")])
    # the probes never disturbed the main stream: its thinking is the run without probes, up to the end
    stop = result.reasoning.index(DEFAULT_BUDGET_MESSAGE)
    assert result.reasoning[:stop] == baseline.reasoning[:stop]
    assert result.tokens.fork >= sum(p.fork_tokens for p in probe.last_probes) > 0
    assert result.text.count("</think>") == 1 and result.phases[-1][1] == ANSWER


def test_a_backend_that_cannot_fork_is_refused() -> None:
    from interlock.generators import Scripted

    class NoFork(Scripted):
        @property
        def capabilities(self) -> Capabilities:
            return Capabilities()

    with pytest.raises(ConfigError, match="can fork"):
        Monitor(NoFork("x"), governors=[AnswerProbe()])


# -- the embedded model (not a reasoning model) ----------------------------------------------------------------------
@pytest.mark.slow
async def test_probes_run_end_to_end_on_the_embedded_model() -> None:
    """SmolLM2-135M-Instruct is no reasoning model: it never thinks, so the probes read its whole reply as the
    reasoning, and the probe rule that ends it forces an answer line (after the same prefix) rather than ending a
    thinking. (DEER's "**Final Answer**" prefix gets LaTeX environments from it, not an answer: it is asked
    "The final answer is $\\boxed{".)"""
    from interlock import Transformers

    prefix = "\n\nThe final answer is $\\boxed{"
    gen = Recording(Transformers.default(max_new_tokens=120))
    probe = AnswerProbe(at=("paragraph",), every=24, k=2, probe_tokens=10, answer=prefix)
    result = await Monitor(gen, governors=[probe]).run(
        "Natalia sold 48 clips in April and half as many in May. How many clips did she sell in total? "
        "Explain step by step.")
    forks = [r for r in gen.requests if r.purpose == "fork"]
    answers = [p.answer for p in probe.last_probes]
    assert len(forks) >= len(answers) >= 2 and all(r.prefix.endswith(prefix) for r in forks)  # (one may be cut)
    # two probes in a row agreed (by math-verify): it stopped (a probe still out then may come back after them)
    pairs = [(a, b) for a, b in itertools.pairwise(answers) if a is not None and b is not None]
    agreed = [a for a, b in pairs if same_answer(a, b)]
    assert agreed and f"2 probes in a row answered {agreed[0]!r}" in result.detail
    assert result.stop_reason is StopReason.GOVERNOR and result.phases == ()  # it never thought
    assert result.text.count(prefix) == 1 and re.search(r"\\boxed\{[^{}\n]+\}\$\.?$", result.text)
    assert result.tokens.fork >= sum(p.fork_tokens for p in probe.last_probes) > 0
