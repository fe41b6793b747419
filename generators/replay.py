"""Replay a recorded trace as if a model were generating it: at its recorded pace, faster, or at once.

A replay cannot regenerate, so it says ``resumable=False``: the monitor reports a rollback it would have made
(``Intervention.applied=False``) and goes on, or stops with ``Monitor(on_unresumable="stop")``::

    result = await Monitor(Replay("run.trace.jsonl", speed=None), verifiers=["arithmetic"]).run(prompt)

What is played is the text the recorded run ended with: chunks a rollback discarded are left out and the
feedback the monitor injected is played as injected chunks (``Chunk.injected``: appended, never checked, not
counted as tokens), so verdict spans are positions in that final text. Token ids, logprobs and entropy recorded
with the chunks are passed on.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import AsyncIterator, Sequence

import anyio
import anyio.lowlevel
from interlock import Capabilities, Chunk, ConfigError, GenerationRequest, RecordedTrace, read_trace
from interlock.generators.errors import BackendError
from interlock.monitor.replay.importers import ImportedTrace
from interlock.monitor.tracefile import MAX_TRACE_SECONDS, Segment, check_time

__all__ = ["Replay", "ReplayMismatchError"]


class ReplayMismatchError(BackendError):
    """A replay was asked to continue a prefix that the recorded text does not start with."""


class Replay:
    """Plays a recorded trace: a :class:`interlock.RecordedTrace`, the path of a trace file, or an
    :class:`interlock.monitor.replay.ImportedTrace` (plain text, JSON steps, GSM8K, streamed in word-sized pieces).

    - ``speed``: ``1.0`` plays at the recorded pace (the wait for the first chunk included), ``2.0`` twice as
      fast, ``None`` (or ``math.inf``) as fast as possible. Chunks are due on an absolute schedule from the
      recorded times, so pauses do not accumulate drift.
    - A request whose ``prefix`` is a start of the recorded text continues after it (the monitor asks for
      ``prefix=""`` first); any other prefix raises :class:`ReplayMismatchError`.
    """

    def __init__(self, source: RecordedTrace | ImportedTrace | str | os.PathLike[str], *,
                 speed: float | None = 1.0) -> None:
        if speed is not None and not (isinstance(speed, int | float) and speed > 0):
            raise ConfigError(f"Replay: speed must be a positive number or None (as fast as possible), got {speed!r}")
        self.speed = None if speed is None or math.isinf(speed) else float(speed)
        self.segments: Sequence[Segment]
        if isinstance(source, ImportedTrace):
            self.segments = source.pieces()
            self._prompt = source.prompt
        else:
            recorded = source if isinstance(source, RecordedTrace) else read_trace(source)
            self.segments = recorded.final_segments()
            self._prompt = recorded.final_prompt  # a restarted run's text belongs to its last attempt's prompt
        bad = next((s.t for s in self.segments if check_time(s.t) is not None), None)
        if bad is not None:  # a paced replay would wait for it (for ever, for an infinite or a huge time)
            raise ConfigError(f"Replay: a recorded chunk time is {bad:g} s; times must be finite and at most "
                              f"{MAX_TRACE_SECONDS} s (a week) after the start")
        self.text = "".join(s.chunk.text for s in self.segments)
        generated = [s.chunk for s in self.segments if not s.injected]
        self._caps = Capabilities(
            token_ids=bool(generated) and all(c.token_ids is not None for c in generated),
            logprobs=bool(generated) and all(c.logprobs is not None for c in generated),
            entropy=bool(generated) and all(c.entropy is not None for c in generated),
            resumable=False, kv_rollback=False, fork=False)

    @property
    def prompt(self) -> str:
        """The prompt the trace was recorded with (its last attempt's, after restarts; pass it to ``Monitor.run``)."""
        return self._prompt

    @property
    def capabilities(self) -> Capabilities:
        return self._caps

    def _start_index(self, prefix: str) -> tuple[int, str]:
        """The first segment to play after ``prefix`` and what is left of it, if the prefix ends inside it."""
        if not self.text.startswith(prefix):
            raise ReplayMismatchError(f"the recorded text does not start with the requested prefix "
                                      f"(ending in {prefix[-60:]!r}); a replay cannot generate new text")
        pos = 0
        for i, seg in enumerate(self.segments):
            end = pos + len(seg.chunk.text)
            if end > len(prefix):
                return i, seg.chunk.text[len(prefix) - pos:]
            pos = end
        return len(self.segments), ""

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        if request.purpose == "fork":
            raise BackendError("a replay cannot answer fork requests")
        first, rest = self._start_index(request.prefix)
        limit = request.max_new_tokens
        produced = 0
        # From the start, the recorded wait for the first chunk is played too; resumed, the pace starts here.
        t0 = self.segments[first].t if request.prefix and first < len(self.segments) else 0.0
        started = time.perf_counter()
        for i in range(first, len(self.segments)):
            seg = self.segments[i]
            chunk = seg.chunk
            if i == first and rest != chunk.text:
                # the prefix ended inside this chunk: its token data no longer lines up
                chunk = Chunk(rest, injected=seg.injected, phase=chunk.phase)
            elif seg.injected:
                # the monitor's feedback: played back, never checked
                chunk = Chunk(chunk.text, injected=True, phase=chunk.phase)
            if limit is not None and produced >= limit:
                return
            if self.speed is not None:
                delay = started + (seg.t - t0) / self.speed - time.perf_counter()
                if delay > 0:
                    await anyio.sleep(delay)
                else:
                    await anyio.lowlevel.checkpoint()
            else:
                await anyio.lowlevel.checkpoint()
            yield chunk
            produced += chunk.n_tokens
