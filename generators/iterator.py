"""Any async iterator of strings (another SDK's stream, an agent) as a generator.

Give a *factory* ``request -> async iterable`` and the monitor can roll back (it asks the factory again with
the new prefix); give a plain async iterable and it can be watched but not resumed: rollbacks are reported,
not made (see ``Monitor(on_unresumable=...)``).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable

from interlock import Capabilities, Chunk, ConfigError, GenerationRequest
from interlock.generators.errors import BackendError

__all__ = ["FromIterator"]

Source = AsyncIterable[str | Chunk] | Callable[[GenerationRequest], AsyncIterable[str | Chunk]]


class FromIterator:
    """Wraps an async iterable (or a factory of them) of strings or chunks."""

    def __init__(self, source: Source) -> None:
        if callable(source) and not hasattr(source, "__aiter__"):
            self._factory: Callable[[GenerationRequest], AsyncIterable[str | Chunk]] | None = source
            self._source: AsyncIterable[str | Chunk] | None = None
        elif hasattr(source, "__aiter__"):
            self._factory = None
            self._source = source
        else:
            raise ConfigError(f"FromIterator needs an async iterable or a factory of them, got {source!r}")
        self._used = False

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(resumable=self._factory is not None)

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        if self._factory is not None:
            iterable = self._factory(request)
        else:
            if self._used:
                raise BackendError("a plain async iterator streams once and cannot resume; "
                                   "pass a factory (request -> async iterable) to allow rollback")
            self._used = True
            assert self._source is not None
            iterable = self._source
        produced = 0
        async for item in iterable:
            if isinstance(item, Chunk):
                chunk = item
            elif isinstance(item, str):
                chunk = Chunk(item)
            else:
                raise BackendError(f"FromIterator: the source yielded {type(item).__name__}, not str or Chunk")
            yield chunk
            produced += chunk.n_tokens
            if request.max_new_tokens is not None and produced >= request.max_new_tokens:
                return
