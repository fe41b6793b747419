"""Text rules as governors, for comparison: stop once the trace has boxed an answer (``FirstBoxed``) or boxed the
same answer a second time (``RepeatedBoxed``, the crude rule the evaluator must beat).

They are ordinary governors (they run live too), kept here because they only make sense for models that box
their answers (MATH-style prompts).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from interlock.monitor.budgets.answers import boxed_answers
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
    scanned: int = 0  # boxed answers already counted
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
        found = boxed_answers(ctx.text)
        for answer in found[st.scanned:]:
            key = normalise_latex(answer.text)
            st.counts[key] += 1
            if st.counts[key] >= self.times:
                st.done = True
                return GovernorDecision(Action.STOP, f"\\boxed{{{answer.text}}} written {st.counts[key]} "
                                        f"time{'s' if st.counts[key] > 1 else ''}")
        st.scanned = len(found)
        return None
