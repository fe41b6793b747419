"""Where a reasoning text turns: the points at which an answer probe asks the model for its answer so far.

- ``"wait"``: a turn word at the start of a sentence or a line ("Wait", "But wait", "Hmm", "Alternatively",
  "Let me double-check", ...), where reasoning models re-check themselves (DEER probes there). The point is just
  before the word: the probe sees the reasoning up to the turn, not the turn.
- ``"paragraph"``: the start of a new paragraph (after a blank line; EAT probes at every one).
- Every N tokens (``AnswerProbe(every=N)``; Dynasor-CoT) is counted by the governor, not found in the text.

A point is only reported once the text after it shows it is one (the character after "Wait", the first
character of the new paragraph), so a stream cut anywhere finds the same points as the whole text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from interlock.monitor.errors import ConfigError

__all__ = ["BOUNDARY_KINDS", "TURN_WORDS", "ProbeBoundaries"]

TURN_WORDS = (r"(?:But |Hmm,? )?[Ww]ait", r"Hmm+", r"Alternatively", r"Hold on", r"On second thought",
              r"Let me (?:just |quickly )?(?:double[- ]check|re-?check|check|verify|make sure|confirm)",
              r"Double[- ]check(?:ing)?", r"To (?:double[- ])?(?:check|verify|confirm)", r"Actually")
_TURN = re.compile(r"(?:(?<=\n)|(?<=[.!?:] )|(?<=[.!?:]\) )|(?<=\A))[ \t]*((?:" + "|".join(TURN_WORDS) + r")(?=\W))")
_PARAGRAPH = re.compile(r"\n[ \t]*\n\s*(?=\S)")
BOUNDARY_KINDS = ("wait", "paragraph")
LOOKBACK = 64  # characters a marker may reach back over a chunk boundary (the longest turn phrase and its context)


@dataclass(frozen=True)
class ProbeBoundaries:
    """The kinds of points to probe at (any of :data:`BOUNDARY_KINDS`), or a ``pattern`` (a regex whose match
    start is a point)."""

    at: tuple[str, ...] = ("wait",)
    pattern: str | None = None

    def __post_init__(self) -> None:
        unknown = [k for k in self.at if k not in BOUNDARY_KINDS]
        if unknown:
            raise ConfigError(f"unknown probe boundary {unknown[0]!r}; expected any of {', '.join(BOUNDARY_KINDS)}")
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ConfigError(f"probe boundary pattern {self.pattern!r} is not a valid regex: {exc}") from None

    @classmethod
    def of(cls, at: str | Iterable[str], pattern: str | None = None) -> ProbeBoundaries:
        kinds = tuple(k.strip() for k in ([at] if isinstance(at, str) else at) if k.strip())
        return cls(tuple(dict.fromkeys(kinds)), pattern)

    def find(self, text: str, start: int = 0) -> list[int]:
        """The points whose marker starts at or after ``start`` (sorted, without repeats, none at 0)."""
        found: set[int] = set()
        if "wait" in self.at:
            found.update(m.start(1) for m in _TURN.finditer(text, start))
        if "paragraph" in self.at:
            found.update(m.end() for m in _PARAGRAPH.finditer(text, start))
        if self.pattern is not None:
            for m in re.compile(self.pattern).finditer(text, start):
                if m.end() < len(text):  # complete: something follows the match
                    found.add(m.start())
        return sorted(p for p in found if p > 0)
