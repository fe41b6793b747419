"""Choosing the next token: greedy or sampled (temperature, top-k, top-p), plus the distribution's statistics.

The reported logprob and entropy are those of the model's own next-token distribution (temperature 1, no
truncation), so they mean the same whatever sampling settings chose the token.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from interlock.monitor.errors import ConfigError

__all__ = ["Sampling", "choose", "token_stats"]


@dataclass(frozen=True)
class Sampling:
    """Decoding settings; ``temperature == 0`` means greedy."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0

    def __post_init__(self) -> None:
        if not (isinstance(self.temperature, int | float) and math.isfinite(self.temperature)
                and self.temperature >= 0):
            raise ConfigError(f"temperature must be a finite number >= 0, got {self.temperature!r}")
        if not (isinstance(self.top_p, int | float) and 0 < self.top_p <= 1):
            raise ConfigError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if not (isinstance(self.top_k, int) and self.top_k >= 0):
            raise ConfigError(f"top_k must be an integer >= 0 (0: off), got {self.top_k!r}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def choose(logits: Any, sampling: Sampling, generator: Any, *, greedy: bool = False) -> int:
    """The next token id from a 1-D float tensor of logits; ``generator`` is a seeded ``torch.Generator``."""
    import torch

    if greedy or sampling.greedy:
        return int(torch.argmax(logits).item())
    scores = logits / sampling.temperature
    if sampling.top_k and sampling.top_k < scores.shape[-1]:
        kth = torch.topk(scores, sampling.top_k).values[-1]
        scores = scores.masked_fill(scores < kth, -math.inf)
    if sampling.top_p < 1.0:
        sorted_scores, order = torch.sort(scores, descending=True)
        probs = torch.softmax(sorted_scores, dim=-1)
        before = torch.cumsum(probs, dim=-1) - probs  # mass of the tokens ranked above each one
        drop = before >= sampling.top_p
        drop[0] = False  # always keep the most likely token
        scores = scores.clone()
        scores[order[drop]] = -math.inf
    probs = torch.softmax(scores, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator).item())


def token_stats(logits: Any, token: int) -> tuple[float, float]:
    """``(logprob of token, entropy in nats)`` of the distribution ``softmax(logits)``."""
    import torch

    logp = torch.log_softmax(logits, dim=-1)
    entropy = -(logp.exp() * logp).nansum()
    return float(logp[token].item()), float(entropy.item())
