"""The generator protocol: an async iterator of chunks that starts from a prompt plus a prefix.

The monitor never tells a backend how to roll back: it asks for a stream that continues ``prompt + prefix``.
A backend with a KV cache compares the prefix with what it has cached and crops the cache to the common
part; an HTTP backend re-sends the prefix (cheap with prefix caching). A ``purpose="fork"`` request must not
disturb the main stream's state: it is a side question (what is the current answer?) about the same prefix.

``request.phases`` says which part of the prefix is thinking and which is answer, and ``request.phase`` which
one the continuation is in: a backend whose wire format keeps the thinking apart from the text (a server's
``reasoning`` field) needs it to send the thinking back where the model expects it, and to continue *inside* the
thinking after a rollback into it rather than start the answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from interlock.monitor.chunks import Chunk
from interlock.monitor.phases import ANSWER, THINKING, Phase, PhaseRuns

__all__ = ["Capabilities", "GenerationRequest", "Generator"]


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do; the monitor and governors adapt to it."""

    token_ids: bool = False
    logprobs: bool = False
    entropy: bool = False
    resumable: bool = True  # can continue from an arbitrary prefix (rollback possible)
    kv_rollback: bool = False  # crops a cache instead of re-encoding the prefix
    fork: bool = False  # can answer purpose="fork" requests
    tool_calls: bool = False  # may yield chunks that carry tool calls (Chunk.tool_calls)
    # The (open, close) tags this backend keeps in the trace text around the thinking, or None (it reports the
    # phase without tags, or has no thinking): where the monitor ends a thinking itself (a thinking budget, a
    # probe's answer) it writes the closing tag into the trace for such a backend.
    thinking_tags: tuple[str, str] | None = None
    thinking_budget: bool = False  # passes request.max_thinking_tokens to a server that enforces it


@dataclass(frozen=True)
class GenerationRequest:
    """Continue ``prompt`` + ``prefix``; at most ``max_new_tokens`` (``None``: the backend's own limit).

    ``phases``: where each phase begins in ``prefix`` (``()``: it is all answer); its last entry's phase is the
    one the continuation is in, even when that run is still empty (a thinking the monitor has just ended).
    ``max_thinking_tokens``: the thinking tokens a thinking budget still allows, for a backend that has its
    server enforce it (``Capabilities.thinking_budget``); ``None``: no budget on the thinking.
    """

    prompt: str
    prefix: str = ""
    max_new_tokens: int | None = None
    stop: tuple[str, ...] = ()
    purpose: Literal["main", "fork"] = "main"
    greedy: bool = False
    meta: dict[str, object] = field(default_factory=dict, compare=False)
    phases: PhaseRuns = ()
    max_thinking_tokens: int | None = None

    @property
    def phase(self) -> Phase:
        """The phase the continuation is in: ``"thinking"`` continues the thinking (it must not be closed)."""
        return self.phases[-1][1] if self.phases else ANSWER

    def parts(self) -> list[tuple[str, Phase]]:
        """The prefix as ``(text, phase)`` parts in order, empty parts left out."""
        if not self.phases:
            return [(self.prefix, ANSWER)] if self.prefix else []
        out = []
        for i, (start, phase) in enumerate(self.phases):
            end = self.phases[i + 1][0] if i + 1 < len(self.phases) else len(self.prefix)
            if end > start:
                out.append((self.prefix[start:end], phase))
        return out

    @property
    def thinking(self) -> str:
        """The thinking text of the prefix (its parts joined)."""
        return "".join(text for text, phase in self.parts() if phase == THINKING)

    @property
    def answer(self) -> str:
        """The answer text of the prefix (its parts joined)."""
        return "".join(text for text, phase in self.parts() if phase == ANSWER)


@runtime_checkable
class Generator(Protocol):
    """Anything with ``capabilities`` and ``stream(request)`` returning an async iterator of chunks.

    ``stream`` must stop promptly when the consuming task is cancelled (the monitor cancels it to roll back).
    """

    @property
    def capabilities(self) -> Capabilities: ...

    def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]: ...
