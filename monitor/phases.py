"""Thinking and answer: the two phases of one trace, and the tags that mark them in raw text.

A reasoning model writes a *thinking* (its monologue) and then an *answer*. Servers with a reasoning parser send
the thinking in a field of its own (``delta.reasoning``, ``delta.reasoning_content``) and the answer as content;
raw completions, local models and many trace files keep the thinking in the text between tags (``<think>`` …
``</think>``, SkyThought's ``<|begin_of_thought|>`` … ``<|end_of_thought|>``). Every chunk carries its phase
(:attr:`Chunk.phase`), the trace keeps where each phase begins, and generators that see tags in raw text split
it with a :class:`~interlock.monitor.thinking.TagSplitter` (tags split across chunks included). The tags, when
the text has them, belong to the thinking: the opening tag is its first piece, the closing tag its last.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from interlock.monitor.errors import ConfigError

__all__ = ["ANSWER", "BOTH", "KNOWN_TAGS", "PHASES", "THINKING", "THINK_TAGS", "THOUGHT_TAGS", "Phase",
           "PhaseFilter", "PhaseRuns", "ThinkingTags", "check_phase", "check_phase_filter", "phase_at",
           "strip_tags", "wants"]

Phase = Literal["thinking", "answer"]
PhaseFilter = Literal["thinking", "answer", "both"]
THINKING: Final = "thinking"
ANSWER: Final = "answer"
BOTH: Final = "both"
PHASES: Final = (THINKING, ANSWER)

# Where each phase run begins: ((start, phase), ...), sorted by start, the first at 0. An empty run at the end
# says which phase the next text continues in (a thinking that was ended and whose answer has not begun).
PhaseRuns = tuple[tuple[int, Phase], ...]


def check_phase(value: object, what: str = "phase") -> Phase:
    """``value`` as a :data:`Phase`, or a :class:`ConfigError` naming what was wrong."""
    if value == THINKING:
        return THINKING
    if value == ANSWER:
        return ANSWER
    raise ConfigError(f"{what} must be 'thinking' or 'answer', got {value!r}")


def check_phase_filter(value: object, what: str = "phase") -> PhaseFilter:
    """``value`` as a :data:`PhaseFilter` ('thinking', 'answer' or 'both')."""
    if value == BOTH:
        return BOTH
    try:
        return check_phase(value, what)
    except ConfigError:
        raise ConfigError(f"{what} must be 'thinking', 'answer' or 'both', got {value!r}") from None


def wants(phase_filter: PhaseFilter, phase: str) -> bool:
    return phase_filter in (BOTH, phase)


def phase_at(runs: Sequence[tuple[int, str]], pos: int) -> Phase:
    """The phase of the text at ``pos`` given the phase runs (the run that begins last at or before it)."""
    if not runs:
        return ANSWER
    i = bisect.bisect_right([s for s, _ in runs], pos) - 1
    return check_phase(runs[max(i, 0)][1])


@dataclass(frozen=True)
class ThinkingTags:
    """The pair of tags around a thinking in raw text."""

    open: str = "<think>"
    close: str = "</think>"

    def __post_init__(self) -> None:
        if not (isinstance(self.open, str) and isinstance(self.close, str) and self.open and self.close):
            raise ConfigError(f"thinking tags must be two non-empty strings, got {self.open!r} and {self.close!r}")
        if self.open == self.close:
            raise ConfigError(f"the opening and closing thinking tags must differ, both are {self.open!r}")

    @classmethod
    def parse(cls, value: ThinkingTags | str | Sequence[str]) -> ThinkingTags:
        """A pair from ``"<think>"`` (the closing tag is the opening one with a slash), ``("<a>", "</a>")`` or a
        :class:`ThinkingTags`."""
        if isinstance(value, ThinkingTags):
            return value
        if isinstance(value, str):
            for known in KNOWN_TAGS:
                if value in (known.open, known.close):
                    return known
            if value.startswith("<") and not value.startswith("</") and len(value) > 2:
                return cls(value, "</" + value[1:])
            raise ConfigError(f"cannot tell the closing tag of {value!r}; give both, e.g. ('<think>', '</think>')")
        pair = list(value)
        if len(pair) != 2 or not all(isinstance(t, str) for t in pair):
            raise ConfigError(f"thinking tags must be an (open, close) pair of strings, got {value!r}")
        return cls(pair[0], pair[1])


THINK_TAGS: Final = ThinkingTags("<think>", "</think>")  # DeepSeek-R1, QwQ, Qwen3, most open reasoning models
THOUGHT_TAGS: Final = ThinkingTags("<|begin_of_thought|>", "<|end_of_thought|>")  # SkyThought, Bespoke-Stratos
KNOWN_TAGS: Final = (THINK_TAGS, THOUGHT_TAGS, ThinkingTags("<thinking>", "</thinking>"),
                     ThinkingTags("<reasoning>", "</reasoning>"))


def strip_tags(text: str, tags: Iterable[ThinkingTags] = KNOWN_TAGS) -> str:
    """A thinking's text without its opening tag (first, after whitespace) and closing tag (last, before
    whitespace): what a server with a reasoning parser sends as ``reasoning``."""
    pairs = tuple(tags)
    head = len(text) - len(text.lstrip())
    for pair in pairs:
        if text.startswith(pair.open, head):
            text = text[:head] + text[head + len(pair.open):]
            break
    body = text.rstrip()
    for pair in pairs:
        if body.endswith(pair.close):
            text = body[:-len(pair.close)] + text[len(body):]
            break
    return text
