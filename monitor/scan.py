"""Run a verifier over a complete text as if it had streamed: same triggers, same steps, same extraction.

Steps do not depend on how the text was chunked, so a verifier whose trigger does not count tokens and that does
not read token data (``reads_chunks = False``) is fed the text a line at a time, as a replay does: the same dues
and views, without a million scheduler calls for a 5 MB step. Any other is fed word-sized pieces.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import anyio
from interlock.monitor.chunks import Chunk
from interlock.monitor.errors import ConfigError
from interlock.monitor.execute import CheckOutcome, run_check
from interlock.monitor.phases import KNOWN_TAGS, ThinkingTags
from interlock.monitor.scheduler import Scheduler
from interlock.monitor.thinking import TagSplitter
from interlock.monitor.trace import Trace
from interlock.monitor.triggers import AnyOf, AtEnd, OnPattern, StepBoundary, Trigger
from interlock.monitor.verdicts import Verdict

if TYPE_CHECKING:
    from interlock.monitor.verifier import Verifier

__all__ = ["ascan", "ascan_checks", "chunking_matters", "opens_thinking", "pseudo_tokens", "scan"]

_PIECE = re.compile(r"\s*\S+|\s+")


def pseudo_tokens(text: str) -> Iterator[str]:
    """Split text into word-sized pieces (leading whitespace attached), the way it would stream."""
    for m in _PIECE.finditer(text):
        yield m.group()


def chunking_matters(trigger: Trigger) -> bool:
    """Whether a trigger can fire differently depending on how the text was chunked (token counts can)."""
    if isinstance(trigger, AnyOf):
        return any(chunking_matters(t) for t in trigger.triggers)
    return not isinstance(trigger, StepBoundary | AtEnd | OnPattern)


def opens_thinking(prompt: str, tags: Iterable[ThinkingTags]) -> bool:
    """Whether ``prompt`` ends inside a thinking: its template wrote the opening tag (``...<think>\n``)."""
    tail = prompt.rstrip()
    return any(tail.endswith(t.open) for t in tags)


async def ascan(verifier: Verifier, text: str, *, prompt: str = "",
                tags: Iterable[ThinkingTags] | None = None) -> list[Verdict]:
    """Feed ``text`` piece by piece through the verifier's trigger and run each due check in order; text between
    thinking tags (``tags``, default the known pairs; ``()`` for none) streams as thinking."""
    return [v for outcome in await ascan_checks(verifier, text, prompt=prompt, tags=tags) for v in outcome.verdicts]


async def ascan_checks(verifier: Verifier, text: str, *, prompt: str = "",
                       tags: Iterable[ThinkingTags] | None = None) -> list[CheckOutcome]:
    """As :func:`ascan`, one outcome per check: its verdicts, and the error it ended with (a check that raised or
    timed out gives an ``Unknown`` whose reason is that error's text; a caller that must not show it, such as a
    tool guard, tells it apart here)."""
    pairs = tuple(KNOWN_TAGS if tags is None else tags)
    trace = Trace(prompt)
    scheduler = Scheduler(trace, [verifier])
    splitter = TagSplitter(pairs, thinking=opens_thinking(prompt, pairs)) if pairs else None
    outcomes: list[CheckOutcome] = []

    async def run_due(final: bool) -> None:
        for v, due in scheduler.advance(final=final):
            outcomes.append(await run_check(v, trace.view(due.end, due.step, final=due.final)))

    by_line = not verifier.reads_chunks and not chunking_matters(verifier.trigger)
    for piece in (text.splitlines(keepends=True) if by_line else pseudo_tokens(text)):
        for chunk in splitter.feed(Chunk(piece)) if splitter is not None else (Chunk(piece),):
            trace.append(chunk)
            await run_due(False)
    for chunk in splitter.flush() if splitter is not None else ():
        trace.append(chunk)
        await run_due(False)
    await run_due(True)
    return outcomes


def scan(verifier: Verifier, text: str, *, prompt: str = "",
         tags: Iterable[ThinkingTags] | None = None) -> list[Verdict]:
    """Synchronous :func:`ascan`; inside a running event loop use ``await verifier.ascan(text)``."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return anyio.run(functools.partial(ascan, verifier, text, prompt=prompt, tags=tags))
    raise ConfigError("Verifier.scan() cannot run inside an event loop; use `await verifier.ascan(text)`")
