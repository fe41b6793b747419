"""One trace to replay, as the importers read it: its text, where thinking and answer begin, where it came from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from interlock.monitor.chunks import Chunk
from interlock.monitor.phases import ANSWER, KNOWN_TAGS, THINKING, PhaseRuns
from interlock.monitor.scan import pseudo_tokens
from interlock.monitor.thinking import recorded_phases, runs_of
from interlock.monitor.tracefile import Segment

__all__ = ["ImportedTrace"]


@dataclass(frozen=True)
class ImportedTrace:
    """One trace to replay: its text (as segments, or plain text streamed in word-sized pieces), where it came
    from, its id and the labels it carried (``is_correct``, the model, ...)."""

    id: str
    text: str
    prompt: str = ""
    labels: Mapping[str, Any] = field(default_factory=dict)
    path: str | None = None
    line: int | None = None
    # The recorded pieces (token data, injected feedback); ``None``: the text, split as it would stream.
    segments: tuple[Segment, ...] | None = field(default=None, repr=False)
    #: What the reader accepted with a caveat (a trace file cut mid-line, read up to its last complete line).
    warnings: tuple[str, ...] = ()
    #: Where the thinking and the answer begin (``((start, phase), ...)``, ``()``: all answer). Left ``None``, it
    #: comes from the recorded chunks' phases, or from the text's thinking tags (the known pairs, the prompt
    #: saying whether the text starts inside a thinking): see :func:`~interlock.monitor.thinking.recorded_phases`.
    phases: PhaseRuns | None = None

    def __post_init__(self) -> None:
        if self.phases is None:
            found = (runs_of((s.chunk.text, s.chunk.phase) for s in self.segments) if self.segments is not None
                     else recorded_phases(self.text, KNOWN_TAGS, prompt=self.prompt))
            object.__setattr__(self, "phases", found)

    def runs(self) -> list[tuple[str, str]]:
        """The text cut into its phase runs: ``[(text, phase), ...]`` (one answer run when there is no thinking)."""
        phases = self.phases or ((0, ANSWER),)
        return [(self.text[start:phases[i + 1][0] if i + 1 < len(phases) else len(self.text)], phase)
                for i, (start, phase) in enumerate(phases)]

    def pieces(self) -> tuple[Segment, ...]:
        """The segments to stream; plain text is split into word-sized pieces, one pseudo-token each, each with
        the phase of its run."""
        if self.segments is not None:
            return self.segments
        return tuple(Segment(Chunk(p, phase=THINKING if phase == THINKING else ANSWER), 0.0, False)
                     for text, phase in self.runs() for p in pseudo_tokens(text))

    @property
    def tokens(self) -> int:
        """Generated tokens (recorded token ids, else word-sized pieces)."""
        return sum(self.phase_tokens())

    def phase_tokens(self) -> tuple[int, int]:
        """Generated tokens of the thinking and of the answer (recorded token ids, else word-sized pieces)."""
        counts = {THINKING: 0, ANSWER: 0}
        if self.segments is None:
            for text, phase in self.runs():
                counts[phase] += sum(1 for _ in pseudo_tokens(text))
        else:
            for s in self.segments:
                if not s.injected:
                    counts[s.chunk.phase] += s.chunk.n_tokens
        return counts[THINKING], counts[ANSWER]
