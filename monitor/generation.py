"""The generator protocol: an async iterator of chunks that starts from a prompt plus a prefix.

The monitor never tells a backend how to roll back: it asks for a stream that continues ``prompt + prefix``.
A backend with a KV cache compares the prefix with what it has cached and crops the cache to the common
part; an HTTP backend re-sends the prefix (cheap with prefix caching). A ``purpose="fork"`` request must not
disturb the main stream's state: it is a side question (what is the current answer?) about the same prefix.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from interlock.monitor.chunks import Chunk

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


@dataclass(frozen=True)
class GenerationRequest:
    """Continue ``prompt`` + ``prefix``; at most ``max_new_tokens`` (``None``: the backend's own limit)."""

    prompt: str
    prefix: str = ""
    max_new_tokens: int | None = None
    stop: tuple[str, ...] = ()
    purpose: Literal["main", "fork"] = "main"
    greedy: bool = False
    meta: dict[str, object] = field(default_factory=dict, compare=False)


@runtime_checkable
class Generator(Protocol):
    """Anything with ``capabilities`` and ``stream(request)`` returning an async iterator of chunks.

    ``stream`` must stop promptly when the consuming task is cancelled (the monitor cancels it to roll back).
    """

    @property
    def capabilities(self) -> Capabilities: ...

    def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]: ...
