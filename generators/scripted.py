"""A generator that plays scripted continuations, keyed by the prefix it is resumed from.

It lets a test (or a demo) script "a wrong step, then the corrected step after the feedback" without a
model::

    Scripted({
        "": "16 - 3 - 4 = 11.\\nShe sells the rest.",
        "is 9, not 11. Let me redo this step.\\n": "16 - 3 - 4 = 9.\\nShe sells 9 eggs.",
    })

A key matches when the prefix ends with it; the longest matching key wins, and ``""`` matches every prefix.
A value is a string (streamed in word-sized pieces) or a list of pieces (strings, or :class:`~interlock.Chunk` s
that say their own phase, as a server's ``reasoning`` field would). With ``thinking_tags`` (e.g. ``"<think>"``)
the pieces are split at those tags, as a backend that reads raw text does: text between them is thinking, and a
request that continues a thinking continues inside it. ``rate`` plays at that many chunks
per second on an absolute schedule, so pauses do not accumulate drift. ``max_new_tokens`` is the generator's own
limit per stream (a piece is a token): a stream that stops there, or at the request's limit, marks its last chunk
``finish_reason="length"``; one that plays its script to the end marks it ``"stop"``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Literal

import anyio
import anyio.lowlevel
from interlock import Capabilities, Chunk, ConfigError, GenerationRequest
from interlock.generators.errors import ScriptError
from interlock.monitor.phases import THINKING, ThinkingTags
from interlock.monitor.scan import pseudo_tokens
from interlock.monitor.thinking import TagSplitter

__all__ = ["Scripted"]

Continuation = str | Sequence[str | Chunk]
Script = Continuation | Mapping[str, Continuation] | Callable[[str], Continuation]


def _pieces(value: Continuation) -> list[str | Chunk]:
    if isinstance(value, str):
        return list(pseudo_tokens(value))
    pieces = list(value)
    if not all(isinstance(p, str | Chunk) for p in pieces):
        raise ConfigError("a scripted continuation must be a string or a list of strings and chunks")
    return pieces


class Scripted:
    """Plays continuations keyed by prefix; ``forks`` answers fork requests (keyed by prefix too)."""

    def __init__(self, script: Script, *, rate: float | None = None,
                 forks: Mapping[str, Continuation] | None = None, max_new_tokens: int | None = None,
                 thinking_tags: ThinkingTags | str | Sequence[str] | None = None) -> None:
        if rate is not None and rate <= 0:
            raise ConfigError(f"Scripted: rate must be a positive number of chunks per second, got {rate}")
        if max_new_tokens is not None and max_new_tokens < 1:
            raise ConfigError(f"Scripted: max_new_tokens must be at least 1, got {max_new_tokens}")
        self.max_new_tokens = max_new_tokens
        self.thinking_tags = ThinkingTags.parse(thinking_tags) if thinking_tags is not None else None
        self._fn: Callable[[str], Continuation] | None = None
        self._script: dict[str, list[str | Chunk]] = {}
        if callable(script):
            self._fn = script
        elif isinstance(script, Mapping):
            for key, value in script.items():
                if not isinstance(key, str):
                    raise ConfigError(f"Scripted: script keys must be prefix strings, got {key!r}")
                self._script[key] = _pieces(value)
        else:
            self._script[""] = _pieces(script)
        self._forks = {k: _pieces(v) for k, v in (forks or {}).items()}
        self.rate = rate
        self.requests: list[GenerationRequest] = []

    @property
    def capabilities(self) -> Capabilities:
        tags = self.thinking_tags
        return Capabilities(resumable=True, fork=bool(self._forks),
                            thinking_tags=(tags.open, tags.close) if tags is not None else None)

    def _lookup(self, table: Mapping[str, list[str | Chunk]], prefix: str, what: str) -> list[str | Chunk]:
        matches = [k for k in table if prefix.endswith(k)]
        if not matches:
            tail = prefix[-60:]
            raise ScriptError(f"no {what} scripted for a prefix ending in {tail!r}; "
                              f"keys are {sorted(table)!r}")
        return table[max(matches, key=len)]

    def continuation(self, request: GenerationRequest) -> list[str | Chunk]:
        """The chunks this generator plays for ``request``."""
        if request.purpose == "fork":
            return self._lookup(self._forks, request.prefix, "fork answer")
        if self._fn is not None:
            return _pieces(self._fn(request.prefix))
        return self._lookup(self._script, request.prefix, "continuation")

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        self.requests.append(request)
        pieces = self.continuation(request)
        limits = [n for n in (request.max_new_tokens, self.max_new_tokens) if n is not None]
        limit = min(limits) if limits else None
        start = time.perf_counter()
        produced = ""
        tags = self.thinking_tags
        splitter = TagSplitter((tags,), thinking=request.phase == THINKING) if tags is not None else None
        for i, piece in enumerate(pieces):
            if limit is not None and i >= limit:
                break
            if self.rate is not None:
                delay = start + (i + 1) / self.rate - time.perf_counter()
                await anyio.sleep(max(0.0, delay))
            else:
                await anyio.lowlevel.checkpoint()
            text = piece.text if isinstance(piece, Chunk) else piece
            stopped = bool(request.stop) and any(s in produced + text for s in request.stop)
            last = stopped or i == len(pieces) - 1 or (limit is not None and i + 1 >= limit)
            why: Literal["stop", "length"] | None = None
            if last:
                why = "length" if not stopped and i < len(pieces) - 1 else "stop"
            chunk = (Chunk(piece, finish_reason=why) if isinstance(piece, str)
                     else dataclasses.replace(piece, finish_reason=why))
            for out in splitter.feed(chunk) if splitter is not None else (chunk,):
                yield out
            produced += text
            if stopped:
                break
        for out in splitter.flush() if splitter is not None else ():
            yield out
