"""Text rules as governors, for comparison: stop once the trace has boxed an answer (``FirstBoxed``) or boxed the
same answer a second time (``RepeatedBoxed``, the crude rule the evaluator must beat).

They are ordinary governors (they run live too), kept here because they only make sense for models that box
their answers (MATH-style prompts).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from interlock.monitor.budgets.answers import BOXED, MAX_BOXED_CHARS, box_end
from interlock.monitor.budgets.errors import BudgetError
from interlock.monitor.chunks import Chunk
from interlock.monitor.governor import Governor, GovernorDecision, RunContext
from interlock.monitor.verdicts import Action

__all__ = ["BOXED_PATTERN", "RepeatedBoxed", "normalise_latex"]

# A \boxed{...} with up to two levels of nested braces; group 1 is the answer (for AnswerConvergence).
BOXED_PATTERN = r"\\boxed\s*\{((?:[^{}]|\{(?:[^{}]|\{[^{}]*\})*\})*)\}"
_LATEX_NOISE = re.compile(r"\\left|\\right|\\!|\\,|\\;|\\ |\s+|\$|\\displaystyle")


def normalise_latex(answer: str) -> str:
    """An answer as compared for "the same": spacing, ``\\left``/``\\right``, ``$`` and ``\\dfrac`` ignored."""
    a = _LATEX_NOISE.sub("", answer).replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    return a.rstrip(".").lower()


@dataclass
class _Seen:
    counts: Counter[str] = field(default_factory=Counter)
    searched: int = 0  # a box that starts before this was found: counted, or waiting in ``open``
    open: list[int] = field(default_factory=list)  # where the content of each box not closed yet starts
    done: bool = False


class RepeatedBoxed(Governor):
    """Stops when one ``\\boxed{}`` answer (compared by :func:`normalise_latex`) has been written ``times`` times;
    ``times=1`` stops at the first boxed answer."""

    name = "repeated_boxed"

    def __init__(self, times: int = 2) -> None:
        if times < 1:
            raise BudgetError(f"RepeatedBoxed: times must be >= 1, got {times}")
        self.times = times
        self._runs: dict[str, _Seen] = {}

    def start(self, ctx: RunContext) -> None:
        self._runs[ctx.run_id] = _Seen()

    def on_end(self, ctx: RunContext) -> None:
        self._runs.pop(ctx.run_id, None)

    def on_chunk(self, ctx: RunContext, chunk: Chunk) -> GovernorDecision | None:
        st = self._runs.setdefault(ctx.run_id, _Seen())
        if st.done or "}" not in chunk.text:
            return None
        # Incremental: new boxes are looked for after the last one found, and only boxes still open are looked
        # at again (each for at most MAX_BOXED_CHARS), so a long trace costs linear time, not a rescan a chunk.
        text = ctx.text
        for m in BOXED.finditer(text, st.searched):
            st.open.append(m.end())
            st.searched = m.end()
        st.searched = max(st.searched, len(text) - 64)  # a "\\boxed {" still being written is found next time
        closed: list[str] = []
        still_open: list[int] = []
        for start in st.open:
            end = box_end(text, start)
            if end is not None:
                closed.append(text[start:end - 1].strip())
            elif len(text) - start <= MAX_BOXED_CHARS:
                still_open.append(start)  # (a box open longer than that is no answer)
        st.open = still_open
        for answer in closed:
            key = normalise_latex(answer)
            st.counts[key] += 1
            if st.counts[key] >= self.times:
                st.done = True
                return GovernorDecision(Action.STOP, f"\\boxed{{{answer}}} written {st.counts[key]} "
                                        f"time{'s' if st.counts[key] > 1 else ''}")
        return None
