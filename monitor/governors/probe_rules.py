"""What an answer probe said, and when the probes say the thinking can stop: pure functions of the probes so far.

The live governor (:class:`~interlock.monitor.governors.AnswerProbe`) and the offline evaluator
(``interlock budget -p probe:...``) share these, so a stop rule decides the same on a recorded probe as on a live
one. A rule looks at the probes of one run in order (:class:`ProbeAnswer`, oldest first) and returns why the
thinking can stop now, or ``None``:

- :class:`Agreement` (Dynasor-CoT's certaindex): the last ``k`` probes gave the same answer.
- :class:`Confident` (DEER): the last probe's answer tokens have a mean probability of at least ``threshold``
  (needs logprobs).
- :class:`EntropySettled` (EAT): the exponentially weighted variance of the entropy of each probe's first token
  fell below ``threshold`` (after ``warmup`` probes; needs entropy, or logprobs as a stand-in).

:class:`StopRules` combines them (any of them, or all at the same probe). Answers are compared by
:func:`same_answer`: the same after LaTeX normalisation, else equal by ``math-verify`` when it is installed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol

from interlock.monitor.chunks import Chunk
from interlock.monitor.errors import ConfigError

__all__ = ["Agreement", "Confident", "EntropySettled", "ProbeAnswer", "StopRule", "StopRules", "ema_variance",
           "open_braces", "probe_answer", "read_answer", "same_answer"]

Same = Callable[[str, str], bool]
_MATH_VERIFY_MAX_CHARS = 64  # longer probe answers are compared by their normalised text only (bounded time)


@dataclass(frozen=True)
class ProbeAnswer:
    """One probe: where it forked (``position`` in characters of the trace, ``tokens`` of reasoning by then), what
    it wrote after the answer prefix (``text``), the answer read from that (``None``: no complete answer), the
    logprobs of the answer's tokens, the entropy of its first token (nats; ``None`` without token data) and the
    tokens it generated."""

    position: int
    tokens: int
    text: str
    answer: str | None
    logprobs: tuple[float, ...] | None = None
    entropy: float | None = None
    fork_tokens: int = 0

    @property
    def confidence(self) -> float | None:
        """The mean probability of the answer's tokens (DEER's confidence), or ``None`` without logprobs."""
        if not self.logprobs:
            return None
        return sum(math.exp(lp) for lp in self.logprobs) / len(self.logprobs)

    def to_dict(self) -> dict[str, Any]:
        return {"position": self.position, "tokens": self.tokens, "text": self.text, "answer": self.answer,
                "logprobs": None if self.logprobs is None else list(self.logprobs), "entropy": self.entropy,
                "fork_tokens": self.fork_tokens}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProbeAnswer:
        lps = data.get("logprobs")
        return cls(position=int(data["position"]), tokens=int(data["tokens"]), text=str(data["text"]),
                   answer=None if data.get("answer") is None else str(data["answer"]),
                   logprobs=None if lps is None else tuple(float(x) for x in lps),
                   entropy=None if data.get("entropy") is None else float(data["entropy"]),
                   fork_tokens=int(data.get("fork_tokens", 0)))


def open_braces(prefix: str) -> int:
    """How many ``{`` of ``prefix`` are still open (``\\{`` is a brace character, not a group)."""
    depth, i = 0, 0
    while i < len(prefix):
        c = prefix[i]
        if c == "\\":
            i += 2
            continue
        depth += (c == "{") - (c == "}")
        depth = max(depth, 0)
        i += 1
    return depth


def read_answer(answer_prefix: str, text: str, *, complete: bool = False) -> tuple[str | None, int]:
    """The answer a probe wrote after ``answer_prefix``, and where it ends in ``text``.

    A prefix that opens a brace (``\\boxed{``) is answered by the text up to the brace that closes it; any other
    by its first non-empty line (ended by a newline, or by the probe's own end when ``complete``). An answer that
    is not finished within the probe's tokens is ``None``: it breaks a streak rather than counting.
    """
    depth = open_braces(answer_prefix)
    if depth:
        i = 0
        while i < len(text):
            c = text[i]
            if c == "\\":
                i += 2
                continue
            depth += (c == "{") - (c == "}")
            if depth == 0:
                answer = text[:i].strip()
                return (answer or None), i + 1
            i += 1
        return None, len(text)
    start = len(text) - len(text.lstrip())
    end = text.find("\n", start)
    if end < 0:
        if not complete:
            return None, len(text)
        end = len(text)
    line = text[start:end].strip().rstrip(".").strip()
    if len(line) > 1 and line[0] == line[-1] == "$":
        line = line.strip("$").strip()
    return (line or None), end


def probe_answer(chunks: Sequence[Chunk], answer_prefix: str, *, position: int, tokens: int) -> ProbeAnswer:
    """A :class:`ProbeAnswer` from a probe's chunks: the answer read from their text, the logprobs of the tokens
    that wrote it (every token of each chunk that began before the answer ended) and the first token's entropy
    (its surprisal, ``-logprob``, where the backend gives logprobs but no entropy)."""
    text = "".join(c.text for c in chunks)
    finished = bool(chunks) and chunks[-1].finish_reason == "stop"
    answer, end = read_answer(answer_prefix, text, complete=finished)
    lps: list[float] | None = [] if chunks and all(c.logprobs is not None for c in chunks if c.text) else None
    first: float | None = None
    at = 0
    for c in chunks:
        if not c.text:
            continue
        if first is None:
            if c.entropy:
                first = float(c.entropy[0])
            elif c.logprobs:
                first = -float(c.logprobs[0])
        if lps is not None and at < max(end, 1) and c.logprobs is not None:
            lps.extend(float(x) for x in c.logprobs)
        at += len(c.text)
    return ProbeAnswer(position=position, tokens=tokens, text=text, answer=answer,
                       logprobs=tuple(lps) if lps else None, entropy=first,
                       fork_tokens=sum(c.n_tokens for c in chunks))


def same_answer(a: str, b: str) -> bool:
    """Whether two probe answers are the same answer: equal after LaTeX normalisation (spacing, ``\\left``,
    ``\\dfrac`` ...), else equal by ``math-verify`` (``"0.5"`` and ``"\\frac{1}{2}"``) when it is installed and both
    are short (a bounded comparison)."""
    from interlock.monitor.budgets.rules import normalise_latex

    if normalise_latex(a) == normalise_latex(b):
        return True
    if len(a) > _MATH_VERIFY_MAX_CHARS or len(b) > _MATH_VERIFY_MAX_CHARS:
        return False
    scorer = _scorer()
    return scorer is not None and scorer.correct(b, a)


_SCORERS: list[Any] = []


def _scorer() -> Any:
    """The budget evaluator's math-verify scorer (cached comparisons), or ``None`` without math-verify."""
    if not _SCORERS:
        try:
            from interlock.monitor.budgets.answers import AnswerScorer

            _SCORERS.append(AnswerScorer())
        except Exception:  # math-verify is not installed: normalised text only
            _SCORERS.append(None)
    return _SCORERS[0]


def ema_variance(values: Sequence[float], alpha: float) -> float:
    """The exponentially weighted variance of ``values`` (weight ``alpha`` on the newest), as EAT smooths the
    entropy after its probe: ``d = x - mean; mean += alpha * d; var = (1 - alpha) * (var + alpha * d * d)``."""
    if not values:
        return math.inf
    mean, var = float(values[0]), 0.0
    for x in values[1:]:
        d = float(x) - mean
        mean += alpha * d
        var = (1 - alpha) * (var + alpha * d * d)
    return var


Needs = Literal["", "logprobs", "entropy"]


class StopRule(Protocol):
    """Why the thinking can stop after the probes so far (oldest first), or ``None``; ``needs``: the token data it
    reads."""

    @property
    def name(self) -> str: ...
    @property
    def needs(self) -> Needs: ...

    def check(self, history: Sequence[ProbeAnswer], same: Same) -> str | None: ...


@dataclass(frozen=True)
class Agreement:
    """The last ``k`` probes all gave a complete answer, and the same one (Dynasor-CoT)."""

    k: int = 3
    name: ClassVar[str] = "agree"
    needs: ClassVar[Needs] = ""

    def __post_init__(self) -> None:
        if not isinstance(self.k, int) or self.k < 1:
            raise ConfigError(f"Agreement: k must be an integer >= 1, got {self.k!r}")

    def check(self, history: Sequence[ProbeAnswer], same: Same) -> str | None:
        if len(history) < self.k:
            return None
        last = history[-self.k:]
        first = last[0].answer
        if first is None or any(a.answer is None or not same(first, a.answer) for a in last[1:]):
            return None
        return f"{self.k} probe{'s' if self.k > 1 else ''} in a row answered {first!r}"


@dataclass(frozen=True)
class Confident:
    """The last probe's answer has a mean token probability of at least ``threshold`` (DEER)."""

    threshold: float = 0.95
    name: ClassVar[str] = "confident"
    needs: ClassVar[Needs] = "logprobs"

    def __post_init__(self) -> None:
        if not 0 < self.threshold <= 1:
            raise ConfigError(f"Confident: threshold must be a probability in (0, 1], got {self.threshold!r}")

    def check(self, history: Sequence[ProbeAnswer], same: Same) -> str | None:
        if not history:
            return None
        last = history[-1]
        c = last.confidence
        if last.answer is None or c is None or c < self.threshold:
            return None
        return f"the probe answered {last.answer!r} with mean token probability {c:.3f} >= {self.threshold:g}"


@dataclass(frozen=True)
class EntropySettled:
    """The exponentially weighted variance (``alpha``) of the probes' first-token entropy is below ``threshold``
    after at least ``warmup`` probes with a value, and the last probe answered (EAT)."""

    threshold: float = 0.01
    alpha: float = 0.2
    warmup: int = 4
    name: ClassVar[str] = "settled"
    needs: ClassVar[Needs] = "entropy"

    def __post_init__(self) -> None:
        if not self.threshold > 0:
            raise ConfigError(f"EntropySettled: threshold must be > 0, got {self.threshold!r}")
        if not 0 < self.alpha <= 1:
            raise ConfigError(f"EntropySettled: alpha must be in (0, 1], got {self.alpha!r}")
        if not isinstance(self.warmup, int) or self.warmup < 2:
            raise ConfigError(f"EntropySettled: warmup must be an integer >= 2, got {self.warmup!r}")

    def check(self, history: Sequence[ProbeAnswer], same: Same) -> str | None:
        values = [a.entropy for a in history if a.entropy is not None]
        if len(values) < self.warmup or not history or history[-1].answer is None:
            return None
        var = ema_variance(values, self.alpha)
        if var >= self.threshold:
            return None
        return (f"the probes' first-token entropy settled (EMA variance {var:.2g} < {self.threshold:g} over "
                f"{len(values)} probes; answer {history[-1].answer!r})")


@dataclass(frozen=True)
class StopRules:
    """Rules combined: the thinking stops when ``any`` of them says so (default), or ``all`` at the same probe."""

    rules: tuple[StopRule, ...]
    combine: Literal["any", "all"] = "any"

    def __post_init__(self) -> None:
        if not self.rules:
            raise ConfigError("an answer probe needs at least one stop rule (k=, confidence= or entropy=)")
        if self.combine not in ("any", "all"):
            raise ConfigError(f"combine must be 'any' or 'all', got {self.combine!r}")

    @property
    def needs(self) -> set[str]:
        """The token data every rule needs ("" for none): a combination needs it when all its rules do."""
        return {r.needs for r in self.rules}

    def check(self, history: Sequence[ProbeAnswer], same: Same = same_answer) -> str | None:
        reasons = [r.check(history, same) for r in self.rules]
        if self.combine == "all":
            return "; ".join(r for r in reasons if r) if all(reasons) else None
        return next((r for r in reasons if r), None)
