"""The unit a generator streams: a piece of text with optional token ids and per-token data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Chunk"]


@dataclass(frozen=True)
class Chunk:
    """A piece of generated text.

    ``token_ids`` (and ``logprobs``/``entropy``, one value per token) are set by backends that have them; a
    chunk without token ids counts as one token, which is what streaming APIs without ids deliver.
    ``injected`` marks text a monitor wrote (feedback, a nudge) that a replay plays back: the monitor appends it
    as injected text, never checks it and does not count it as generated tokens.
    ``finish_reason`` on a stream's last chunk says why the generator stopped: ``"length"`` at its own token
    limit (the text may end mid-sentence: the monitor reports the run as cut), ``"stop"`` at an end of text;
    ``None`` when it does not say.
    """

    text: str
    token_ids: tuple[int, ...] | None = None
    logprobs: tuple[float, ...] | None = None
    entropy: tuple[float, ...] | None = None
    injected: bool = False
    finish_reason: Literal["stop", "length"] | None = None

    @property
    def n_tokens(self) -> int:
        if self.injected:
            return 0
        return len(self.token_ids) if self.token_ids is not None else 1

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"text": self.text}
        if self.token_ids is not None:
            out["token_ids"] = list(self.token_ids)
        if self.logprobs is not None:
            out["logprobs"] = list(self.logprobs)
        if self.entropy is not None:
            out["entropy"] = list(self.entropy)
        if self.finish_reason is not None:
            out["finish_reason"] = self.finish_reason
        return out
