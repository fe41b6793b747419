"""``AnswerProbe``: ask the model for its answer at the turns of its thinking, and end the thinking once it has one.

Reasoning models find the answer long before they stop thinking: they re-check it, try another way, re-check
again. At each turn of the thinking ("Wait", a new paragraph, every N tokens: :mod:`.probe_boundaries`) this
governor forks the model with a probe that closes the thinking and starts the answer (``\\boxed{`` for math), for
a few tokens, and reads the answer the model would give if it stopped there. When the probes say it would not
change (:mod:`.probe_rules`: ``k`` agreeing answers as Dynasor-CoT, a confident answer as DEER, the first token's
entropy settling as EAT), the thinking ends with the budget message and the model writes its answer
(``then="answer"``), or the probed answer is the answer (``then="probe"``).

Probes run beside generation (``on_chunk`` returns them as awaitables, which the monitor runs in the run's task
group): the main stream never waits for one. Their tokens count as fork tokens (so total budgets hold), a rollback
cancels the probes in flight and starts the count again, and answers reach the rules in the order the probes were
made. A probe that fails or times out counts as no answer. Over HTTP the probe is a fork request (the thinking sent
back where the model expects it, see ``OpenAICompatible``); on the local backend a copy of the KV cache.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import anyio
from interlock.monitor.chunks import Chunk
from interlock.monitor.errors import ConfigError
from interlock.monitor.generation import Capabilities
from interlock.monitor.governor import ForceAnswer, Governor, GovernorDecision, RunContext
from interlock.monitor.governors.probe_boundaries import LOOKBACK, ProbeBoundaries
from interlock.monitor.governors.probe_rules import (
    Agreement,
    Confident,
    EntropySettled,
    ProbeAnswer,
    StopRule,
    StopRules,
    open_braces,
    probe_answer,
    same_answer,
)
from interlock.monitor.governors.thinking_budget import DEFAULT_BUDGET_MESSAGE
from interlock.monitor.phases import THINKING
from interlock.monitor.trace import Forker

__all__ = ["DEFAULT_PROBE_ANSWER", "PROBE_KINDS", "PROBE_OPTIONS", "AnswerProbe", "ImmediateForker", "probe_from_spec"]

DEFAULT_PROBE_ANSWER = "\n\n**Final Answer**\n\\boxed{"  # DEER's trial-answer prompt, after the end of the thinking
_log = logging.getLogger("interlock.answer_probe")


@runtime_checkable
class ImmediateForker(Protocol):
    """A forker that answers at once, without waiting (offline: a probe cache). The governor then decides within
    ``on_chunk``, as if the probe had come back before the next chunk."""

    def answer_now(self, suffix: str, max_tokens: int, *, answer: str | None = None) -> Sequence[Chunk]: ...


@dataclass
class _ProbeRun:
    epoch: int
    scanned: int = 0  # the text up to here was searched for boundaries
    last_position: int = 0  # the last point probed
    last_tokens: int = -(1 << 60)  # reasoning tokens at the last probe
    next_every: int = 0
    saw_thinking: bool = False
    sent: int = 0  # probes made in this epoch (their sequence numbers)
    fed: int = 0  # probes handed to the rules, in order
    total: int = 0  # probes made in the run
    pending: dict[int, ProbeAnswer] = field(default_factory=dict)
    history: list[ProbeAnswer] = field(default_factory=list)  # this epoch's probes, in order
    done: bool = False
    failures: int = 0


class AnswerProbe(Governor):
    """Probe the answer at the thinking's turns; end the thinking when the probes agree or are confident.

    - Where: ``at`` (``"wait"``, ``"paragraph"``, both), ``every`` N reasoning tokens, or a regex ``pattern``;
      not before ``min_tokens`` reasoning tokens, not within ``min_gap`` tokens of the last probe, at most
      ``max_probes`` a run (at the last point of a chunk that holds several). It probes while the model thinks
      (the thinking of a reasoning model; the whole text of a model that never thinks).
    - The probe: ``suffix`` appended to the thinking, the thinking closed, ``answer`` (default
      ``"\\n\\n**Final Answer**\\n\\boxed{"``) starting the answer, ``probe_tokens`` tokens at most, greedy,
      within ``timeout`` seconds. ``read(answer_prefix, chunks)`` may replace the answer reading.
    - When to stop (combined by ``combine``, ``"any"`` by default): ``k`` agreeing answers in a row (``None``:
      off), ``confidence`` (the answer's mean token probability; needs logprobs), ``entropy`` (the EMA variance of
      the first token's entropy, smoothed by ``alpha`` after ``warmup`` probes; needs entropy or logprobs).
      ``same(a, b)`` compares answers (default: LaTeX-normalised, then ``math-verify``).
    - Then: ``then="answer"`` ends the thinking with ``message`` (the budget message) and lets the model answer (a
      model that never thinks gets ``answer`` injected and writes one answer line); ``then="probe"`` ends the
      thinking and writes the probe's answer (``answer`` + the answer + its closing braces) as the answer, and the
      run ends there.
    """

    name = "answer_probe"

    def __init__(self, *, at: str | Iterable[str] = ("wait",), every: int | None = None, pattern: str | None = None,
                 k: int | None = 3, confidence: float | None = None, entropy: float | None = None,
                 alpha: float = 0.2, warmup: int = 4, combine: Literal["any", "all"] = "any", suffix: str = "",
                 answer: str = DEFAULT_PROBE_ANSWER, probe_tokens: int = 16, min_tokens: int = 0, min_gap: int = 0,
                 max_probes: int | None = None, then: Literal["answer", "probe"] = "answer",
                 message: str = DEFAULT_BUDGET_MESSAGE, timeout: float = 60.0,
                 same: Callable[[str, str], bool] = same_answer,
                 read: Callable[[str, Sequence[Chunk]], str | None] | None = None) -> None:
        if every is not None and (not isinstance(every, int) or every < 1):
            raise ConfigError(f"AnswerProbe: every must be a positive number of tokens, got {every!r}")
        boundaries = ProbeBoundaries.of(at, pattern)
        if not boundaries.at and boundaries.pattern is None and every is None:
            raise ConfigError("AnswerProbe needs somewhere to probe: at= ('wait', 'paragraph'), every= or pattern=")
        rules: list[StopRule] = []
        if k is not None:
            rules.append(Agreement(k))
        if confidence is not None:
            rules.append(Confident(confidence))
        if entropy is not None:
            rules.append(EntropySettled(entropy, alpha, warmup))
        self.rules = StopRules(tuple(rules), combine)
        for label, value in (("probe_tokens", probe_tokens), ("min_tokens", min_tokens), ("min_gap", min_gap)):
            if not isinstance(value, int) or value < (1 if label == "probe_tokens" else 0):
                raise ConfigError(f"AnswerProbe: {label} must be an integer >= "
                                  f"{1 if label == 'probe_tokens' else 0}, got {value!r}")
        if max_probes is not None and (not isinstance(max_probes, int) or max_probes < 1):
            raise ConfigError(f"AnswerProbe: max_probes must be a positive integer or None, got {max_probes!r}")
        if then not in ("answer", "probe"):
            raise ConfigError(f"AnswerProbe: then must be 'answer' or 'probe', got {then!r}")
        if not isinstance(answer, str) or not isinstance(suffix, str) or not isinstance(message, str):
            raise ConfigError("AnswerProbe: suffix, answer and message must be strings")
        if not timeout > 0:
            raise ConfigError(f"AnswerProbe: timeout must be > 0 seconds, got {timeout!r}")
        self.boundaries = boundaries
        self.every = every
        self.suffix = suffix
        self.answer = answer
        self.probe_tokens = probe_tokens
        self.min_tokens = min_tokens
        self.min_gap = min_gap
        self.max_probes = max_probes
        self.then = then
        self.message = message
        self.timeout = float(timeout)
        self.same = same
        self.read = read
        self.last_probes: tuple[ProbeAnswer, ...] = ()  # the probes of the last run that ended (its last epoch)
        self._runs: dict[str, _ProbeRun] = {}

    @property
    def settings(self) -> dict[str, object]:
        """What a probe asks (a probe cache keys on it): the suffix, the answer prefix and the token limit."""
        return {"suffix": self.suffix, "answer": self.answer, "probe_tokens": self.probe_tokens}

    # -- the governor hooks -----------------------------------------------------------------------------
    def validate(self, capabilities: Capabilities) -> None:
        if not capabilities.fork:
            raise ConfigError("AnswerProbe forks the model at the thinking's turns: it needs a backend that can fork "
                              "(Capabilities.fork: interlock.Transformers, OpenAICompatible); this generator cannot")
        needs = self.rules.needs
        if "" not in needs and not (capabilities.logprobs or capabilities.entropy):
            raise ConfigError("AnswerProbe(confidence=/entropy=) reads the probes' token probabilities: the backend "
                              "reports no logprobs (OpenAICompatible(logprobs=True, top_logprobs=5)); or use k=")

    def start(self, ctx: RunContext) -> None:
        self._runs[ctx.run_id] = _ProbeRun(epoch=ctx.epoch, next_every=self.every or 0)

    def on_end(self, ctx: RunContext) -> None:
        st = self._runs.pop(ctx.run_id, None)
        if st is not None:
            self.last_probes = tuple(st.history)

    def probes(self, run_id: str) -> tuple[ProbeAnswer, ...]:
        """The probes of a running run so far (since its last rollback), in order."""
        st = self._runs.get(run_id)
        return tuple(st.history) if st is not None else ()

    def on_chunk(self, ctx: RunContext, chunk: Chunk
                 ) -> GovernorDecision | Awaitable[GovernorDecision | None] | None:
        st = self._runs.get(ctx.run_id)
        if st is None:
            st = self._runs[ctx.run_id] = _ProbeRun(epoch=ctx.epoch, next_every=self.every or 0)
        if st.done or ctx.forcing_answer:
            return None
        text = ctx.text
        if ctx.epoch != st.epoch:  # a rollback: what was probed may be gone; count again from the new text on
            self._restart(st, ctx.epoch, len(text) - len(chunk.text))
        if chunk.phase == THINKING and chunk.text:
            st.saw_thinking = True
        if not (ctx.phase == THINKING or not st.saw_thinking):
            st.scanned = len(text)  # the model is answering: nothing to probe
            return None
        tokens = ctx.tokens.thinking if st.saw_thinking else ctx.tokens.kept
        points = self.boundaries.find(text, max(0, st.scanned - LOOKBACK)) if (
            self.boundaries.at or self.boundaries.pattern) else []
        st.scanned = len(text)
        if self.every is not None and st.next_every < 0:  # after a rollback: the next multiple from the cut on
            st.next_every = (max(0, tokens - chunk.n_tokens) // self.every + 1) * self.every
        if self.every is not None and tokens >= st.next_every:
            points.append(len(text))
            st.next_every = (tokens // self.every + 1) * self.every
        points = [p for p in points if p > st.last_position]
        if not points or tokens < self.min_tokens or tokens - st.last_tokens < self.min_gap:
            return None
        if self.max_probes is not None and st.total >= self.max_probes:
            return None
        position = max(points)
        fork = ctx.fork_at(position)
        if fork is None:
            return None
        st.last_position, st.last_tokens = position, tokens
        st.sent += 1
        st.total += 1
        if isinstance(fork, ImmediateForker):  # offline: the probe is answered at once
            chunks = fork.answer_now(self.suffix, self.probe_tokens, answer=self.answer)
            return self._settle(st, st.sent, self._read(chunks, position, tokens))
        return self._probe(ctx, st, fork, st.sent, position, tokens, ctx.epoch)

    # -- probes -----------------------------------------------------------------------------------------------
    def _restart(self, st: _ProbeRun, epoch: int, scan_from: int) -> None:
        st.epoch = epoch
        st.scanned = max(0, scan_from)  # the model's new text: the feedback injected before it is not probed
        st.last_position = st.scanned - 1
        st.next_every = -1
        st.sent = st.fed = 0
        st.pending.clear()
        st.history.clear()

    async def _probe(self, ctx: RunContext, st: _ProbeRun, fork: Forker, seq: int, position: int,
                     tokens: int, epoch: int) -> GovernorDecision | None:
        chunks: Sequence[Chunk] | None = None
        try:
            with anyio.move_on_after(self.timeout):
                chunks = await _fork_chunks(fork, self.suffix, self.probe_tokens, self.answer)
        except Exception as exc:  # a probe that fails is no answer; the run goes on
            st.failures += 1
            _log.warning("answer probe failed: %s: %s", type(exc).__name__, exc)
        if ctx.epoch != epoch or st.epoch != epoch:
            return None  # a rollback since: this probe was about text that may be gone
        if chunks is None:
            answer = ProbeAnswer(position=position, tokens=tokens, text="", answer=None)
        else:
            answer = self._read(chunks, position, tokens)
        return self._settle(st, seq, answer)

    def _read(self, chunks: Sequence[Chunk], position: int, tokens: int) -> ProbeAnswer:
        found = probe_answer(chunks, self.answer, position=position, tokens=tokens)
        if self.read is None:
            return found
        custom = self.read(self.answer, chunks)
        return ProbeAnswer(found.position, found.tokens, found.text, custom, found.logprobs, found.entropy,
                           found.fork_tokens)

    def _settle(self, st: _ProbeRun, seq: int, answer: ProbeAnswer) -> GovernorDecision | None:
        """Hand the probes to the rules in the order they were made; the decision when they say stop."""
        st.pending[seq] = answer
        decision = None
        while st.fed + 1 in st.pending:
            st.fed += 1
            st.history.append(st.pending.pop(st.fed))
            if st.done:
                continue
            reason = self.rules.check(st.history, self.same)
            if reason is not None:
                st.done = True
                decision = self._decision(st, reason, st.history[-1])
        return decision

    def _decision(self, st: _ProbeRun, reason: str, last: ProbeAnswer) -> GovernorDecision:
        why = f"{reason}: the thinking has its answer after {last.tokens} tokens"
        if self.then == "probe":
            return GovernorDecision.end_thinking(why, self.message if st.saw_thinking else "",
                                                 answer=self.answer + _closed(self.answer, last))
        if st.saw_thinking:
            return GovernorDecision.end_thinking(why, self.message)
        return ForceAnswer(prefix=self.answer, tokens=self.probe_tokens).decision(why)


def _closed(prefix: str, probe: ProbeAnswer) -> str:
    """The probe's answer as the answer text after ``prefix``: closed with the braces the prefix opened."""
    return (probe.answer or "") + "}" * open_braces(prefix)


async def _fork_chunks(fork: Forker, suffix: str, max_tokens: int, answer: str) -> Sequence[Chunk]:
    """The probe's chunks (with logprobs and entropy) from a monitor fork, or its text from any other forker."""
    chunks = getattr(fork, "chunks", None)
    if callable(chunks):
        got = await chunks(suffix, max_tokens, answer=answer)
        return list(got)
    return [Chunk(await fork(suffix, max_tokens, answer=answer))]


# The named probe policies (``interlock budget -p``, ``--probe``): Dynasor-style agreement, DEER, EAT.
PROBE_KINDS: dict[str, dict[str, object]] = {
    "probe": {"k": 3, "at": ("wait",)},
    "deer": {"k": None, "confidence": 0.95, "at": ("wait",)},
    "eat": {"k": None, "entropy": 0.01, "at": ("paragraph",)},
}
PROBE_OPTIONS = {"k": "k", "conf": "confidence", "eat": "entropy", "alpha": "alpha", "warmup": "warmup",
                 "at": "at", "every": "every", "tokens": "probe_tokens", "min": "min_tokens", "gap": "min_gap",
                 "max": "max_probes", "then": "then", "combine": "combine", "answer": "answer", "suffix": "suffix"}


def probe_from_spec(spec: str = "", kind: str = "probe", **overrides: object) -> AnswerProbe:
    """An :class:`AnswerProbe` from a short spec, the same for ``interlock run --probe SPEC`` and the budget policies
    ``probe:SPEC``: options ``key=value`` joined by ``:``: ``k`` (agreeing answers; ``k=0`` off), ``conf`` (DEER's
    threshold), ``eat`` (EAT's variance threshold), ``alpha``, ``warmup``, ``at`` (``wait``, ``paragraph`` or
    ``wait/paragraph``; ``at=none`` with ``every``), ``every`` (tokens), ``tokens`` (probe tokens), ``min``, ``gap``,
    ``max``, ``then`` (``answer`` or ``probe``), ``combine`` (``any`` or ``all``), ``answer``, ``suffix``. ``kind``
    picks the defaults: ``probe`` (k=3 at turns), ``deer`` (conf=0.95 at turns), ``eat`` (eat=0.01 at
    paragraphs)."""
    if kind not in PROBE_KINDS:
        raise ConfigError(f"unknown probe kind {kind!r}; expected one of {', '.join(PROBE_KINDS)}")
    options: dict[str, object] = dict(PROBE_KINDS[kind])
    for item in (p for p in spec.split(":") if p.strip()):
        key, eq, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or key not in PROBE_OPTIONS:
            raise ConfigError(f"probe option {item!r} is not key=value with a key of: {', '.join(PROBE_OPTIONS)}")
        name = PROBE_OPTIONS[key]
        options[name] = _spec_value(name, value, item)
    options.update(overrides)
    return AnswerProbe(**options)  # type: ignore[arg-type]


def _spec_value(name: str, value: str, item: str) -> object:
    if name == "at":
        return () if value == "none" else tuple(v for v in value.replace(",", "/").split("/") if v)
    if name in ("then", "combine", "answer", "suffix"):
        return value.replace("\\n", "\n") if name in ("answer", "suffix") else value
    try:
        number = float(value) if name in ("confidence", "entropy", "alpha") else int(value)
    except ValueError:
        raise ConfigError(f"probe option {item!r}: {value!r} is not a number") from None
    if name == "k" and number == 0:
        return None
    return number
