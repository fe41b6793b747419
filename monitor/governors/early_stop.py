"""Early stopping: end a run once the model has decided, instead of letting it spend the rest of its budget.

- :class:`EntropyStop` watches per-token entropy (or, from a backend with logprobs only, the surprisal of the
  chosen token): when it stays below ``threshold`` for ``window`` tokens in a row, the model is no longer
  weighing alternatives, and the run is stopped or made to answer.
- :class:`AnswerConvergence` reads the current answer at every step boundary, from the text (a pattern) or by
  asking a fork of the model ("...so the final answer is"), and stops once the same answer came ``k`` times in
  a row.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from interlock.monitor.chunks import Chunk
from interlock.monitor.errors import ConfigError
from interlock.monitor.generation import Capabilities
from interlock.monitor.governor import (
    ForceAnswer,
    Governor,
    GovernorDecision,
    RunContext,
    force_answer_option,
)
from interlock.monitor.steps import STEP_END
from interlock.monitor.verdicts import Action

__all__ = ["DEFAULT_ANSWER_PATTERN", "AnswerConvergence", "EntropyStop", "normalise_answer"]


@dataclass
class _EntropyRun:
    low: int = 0  # tokens in a row below the threshold
    seen: int = 0  # tokens with a value
    warned: bool = False
    done: bool = False
    epoch: int = 0


class EntropyStop(Governor):
    """Stops (or forces the answer) when per-token entropy stays below ``threshold`` nats for ``window`` tokens.

    - ``min_tokens``: never before this many tokens with a value (the opening of a reply is often certain).
    - ``force_answer``: inject an answer prefix and let the model answer (default), or stop plainly.
    - ``require``: a backend without entropy or logprobs is a :class:`ConfigError` when the monitor is built
      (default); with ``require=False`` the governor stays idle and says so in a ``warn`` event at the first chunk.
    - ``use_surprisal``: where chunks carry logprobs but no entropy, use ``-logprob`` of the chosen token.
    """

    name = "entropy_stop"

    def __init__(self, threshold: float = 0.3, window: int = 24, *, min_tokens: int = 16,
                 force_answer: ForceAnswer | bool = True, require: bool = True, use_surprisal: bool = True) -> None:
        if not threshold > 0:
            raise ConfigError(f"EntropyStop: threshold must be > 0 nats, got {threshold}")
        if window < 1:
            raise ConfigError(f"EntropyStop: window must be >= 1 token, got {window}")
        if min_tokens < 0:
            raise ConfigError(f"EntropyStop: min_tokens must be >= 0, got {min_tokens}")
        self.threshold = threshold
        self.window = window
        self.min_tokens = min_tokens
        self.force_answer = force_answer_option(force_answer)
        self.require = require
        self.use_surprisal = use_surprisal
        self._runs: dict[str, _EntropyRun] = {}

    def _usable(self, caps: Capabilities) -> bool:
        return caps.entropy or (self.use_surprisal and caps.logprobs)

    def validate(self, capabilities: Capabilities) -> None:
        if self.require and not self._usable(capabilities):
            raise ConfigError("EntropyStop needs a backend that reports per-token entropy"
                              + (" or logprobs" if self.use_surprisal else "")
                              + " (Capabilities.entropy); this generator has none. Use generators.Transformers, "
                              "or EntropyStop(require=False) to run without it")

    def start(self, ctx: RunContext) -> None:
        self._runs[ctx.run_id] = _EntropyRun(epoch=ctx.epoch)

    def on_end(self, ctx: RunContext) -> None:
        self._runs.pop(ctx.run_id, None)

    def values(self, chunk: Chunk) -> tuple[float, ...] | None:
        """The per-token signal of a chunk: entropy, else surprisal (``-logprob``), else ``None``."""
        if chunk.entropy is not None:
            return chunk.entropy
        if self.use_surprisal and chunk.logprobs is not None:
            return tuple(-lp for lp in chunk.logprobs)
        return None

    def on_chunk(self, ctx: RunContext, chunk: Chunk) -> GovernorDecision | None:
        st = self._runs.setdefault(ctx.run_id, _EntropyRun(epoch=ctx.epoch))
        if st.done or ctx.forcing_answer:
            return None
        values = self.values(chunk)
        if values is None:
            if st.warned or self._usable(ctx.capabilities):
                return None
            st.warned = True
            return GovernorDecision(Action.WARN, "the backend reports no per-token entropy or logprobs: "
                                    "EntropyStop is idle for this run")
        if ctx.epoch != st.epoch:  # after a rollback the window starts again
            st.epoch, st.low = ctx.epoch, 0
        for v in values:
            st.seen += 1
            st.low = st.low + 1 if v < self.threshold else 0
        if st.low < self.window or st.seen < self.min_tokens:
            return None
        st.done = True
        reason = f"entropy below {self.threshold:g} for the last {st.low} tokens: the model has decided"
        if self.force_answer is not None:
            return self.force_answer.decision(reason)
        return GovernorDecision(Action.STOP, reason)


# "the answer is 18", "Answer: 18", "total of $1,250", "= 18" at the end of a sentence is left to the user.
DEFAULT_ANSWER_PATTERN = (r"(?i)(?:final answer|answer|result|total)\b[^\n0-9-]{0,20}?"
                          r"(-?\$?\d[\d,]*(?:\.\d+)?)")
_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?")


def normalise_answer(text: str) -> str:
    """Compare answers by value: ``"$1,250.00"`` and ``"1250"`` are the same; other text by its words."""
    t = text.strip().rstrip(".").replace("$", "").replace(",", "")
    try:
        value = float(t)
    except ValueError:
        return re.sub(r"\s+", " ", t).lower()
    return str(int(value)) if value.is_integer() else repr(value)


@dataclass
class _ConvergenceRun:
    checked_upto: int = 0
    steps: int = 0
    last: str | None = None
    streak: int = 0
    answers: list[str] = field(default_factory=list)
    probes_sent: int = 0
    probes_done: int = 0
    done: bool = False
    epoch: int = 0


class AnswerConvergence(Governor):
    """Stops once the current answer has come out the same ``k`` times in a row.

    The answer is read at every step boundary (a line end or a sentence end):

    - from the text with ``pattern`` (a regex whose first group is the answer; the last match in the step
      counts), and the run is stopped plainly: the answer is already in the trace; or
    - with ``probe="\\nSo the final answer is"``: a fork of the model continues the trace with the probe for
      ``probe_tokens`` tokens (fork tokens count towards total budgets) and the first number (or
      ``probe_pattern``'s group) is the answer; on convergence the probe is injected and the model writes the
      answer, so the run ends with the answer it converged on. Needs a backend that can fork.

    ``normalise`` maps an answer to the key compared (default :func:`normalise_answer`); answers are read only
    once ``min_steps`` steps are complete.
    """

    name = "answer_convergence"

    def __init__(self, k: int = 3, *, pattern: str | re.Pattern[str] | None = DEFAULT_ANSWER_PATTERN,
                 probe: str | None = None, probe_tokens: int = 12, probe_pattern: str | re.Pattern[str] | None = None,
                 normalise: Callable[[str], str] = normalise_answer, min_steps: int = 1,
                 force_answer: ForceAnswer | bool | None = None) -> None:
        if k < 2:
            raise ConfigError(f"AnswerConvergence: k must be >= 2 (one answer converges on nothing), got {k}")
        if probe is None and pattern is None:
            raise ConfigError("AnswerConvergence needs a pattern or a fork probe to read the answer")
        if probe_tokens < 1:
            raise ConfigError(f"AnswerConvergence: probe_tokens must be >= 1, got {probe_tokens}")
        self.k = k
        self.pattern = _compile(pattern, "pattern") if probe is None else None
        self.probe = probe
        self.probe_tokens = probe_tokens
        self.probe_pattern = _compile(probe_pattern, "probe_pattern") if probe_pattern is not None else _NUMBER
        self.normalise = normalise
        self.min_steps = min_steps
        if force_answer is None:  # a probe's answer is not in the trace: have the model write it
            force_answer = ForceAnswer(prefix=probe, tokens=probe_tokens) if probe else False
        self.force_answer = force_answer_option(force_answer)
        self._runs: dict[str, _ConvergenceRun] = {}

    def validate(self, capabilities: Capabilities) -> None:
        if self.probe is not None and not capabilities.fork:
            raise ConfigError("AnswerConvergence(probe=...) needs a backend that can fork (Capabilities.fork); "
                              "this generator cannot. Read the answer from the text with pattern= instead")

    def start(self, ctx: RunContext) -> None:
        self._runs[ctx.run_id] = _ConvergenceRun(epoch=ctx.epoch)

    def on_end(self, ctx: RunContext) -> None:
        self._runs.pop(ctx.run_id, None)

    def on_chunk(self, ctx: RunContext, chunk: Chunk
                 ) -> GovernorDecision | Awaitable[GovernorDecision | None] | None:
        st = self._runs.setdefault(ctx.run_id, _ConvergenceRun(epoch=ctx.epoch))
        if st.done or ctx.forcing_answer:
            return None
        text = ctx.text
        if ctx.epoch != st.epoch:  # a rollback changed the reasoning: the streak starts again
            st.epoch, st.last, st.streak = ctx.epoch, None, 0
            st.checked_upto = min(st.checked_upto, len(text))
        ends = [m.end() for m in STEP_END.finditer(text, st.checked_upto)]
        if not ends:
            return None
        steps = [(st.checked_upto if i == 0 else ends[i - 1], e) for i, e in enumerate(ends)]
        st.checked_upto = ends[-1]
        st.steps += len(ends)
        if st.steps < self.min_steps:
            return None
        if self.probe is not None:
            fork = ctx.fork_at(ends[-1])  # the answer after the last complete step
            if fork is None:
                return None
            st.probes_sent += 1
            return self._probe(st, fork, st.probes_sent, ctx.epoch)
        assert self.pattern is not None
        decision = None
        for start, end in steps:
            matches = list(self.pattern.finditer(text, start, end))
            if matches:
                decision = decision or self._observe(st, matches[-1].group(1))
        return decision

    async def _probe(self, st: _ConvergenceRun, fork: Callable[[str, int], Awaitable[str]], seq: int,
                     epoch: int) -> GovernorDecision | None:
        assert self.probe is not None
        answer_text = await fork(self.probe, self.probe_tokens)
        if seq <= st.probes_done or st.epoch != epoch:
            return None  # an older probe finishing after a newer one, or about text since cut
        st.probes_done = seq
        m = self.probe_pattern.search(answer_text)
        if m is None:
            st.last, st.streak = None, 0
            return None
        return self._observe(st, m.group(1) if m.groups() else m.group())

    def _observe(self, st: _ConvergenceRun, raw: str) -> GovernorDecision | None:
        answer = self.normalise(raw)
        st.answers.append(answer)
        st.streak = st.streak + 1 if answer == st.last else 1
        st.last = answer
        if st.streak < self.k or st.done:
            return None
        st.done = True
        reason = f"the answer {answer!r} came {st.streak} times in a row: converged"
        if self.force_answer is not None:
            return self.force_answer.decision(reason)
        return GovernorDecision(Action.STOP, reason)


def _compile(pattern: str | re.Pattern[str] | None, label: str) -> re.Pattern[str]:
    if pattern is None:
        raise ConfigError(f"AnswerConvergence: {label} is required")
    try:
        compiled = re.compile(pattern) if isinstance(pattern, str) else pattern
    except re.error as exc:
        raise ConfigError(f"AnswerConvergence: {label} {pattern!r} is not a valid regex: {exc}") from None
    if compiled.groups < 1 and label == "pattern":
        raise ConfigError(f"AnswerConvergence: pattern {compiled.pattern!r} needs a group that captures the answer")
    return compiled
