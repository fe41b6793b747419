"""The answer a trace has stated so far, and whether it matches the reference (``math-verify``).

Offline, a policy's stop leaves a prefix of the recorded trace; the answer it "ended with" is the last one the
prefix states: the last complete ``\\boxed{...}`` or "the answer is ...", else the last stated number (as the
usual MATH graders fall back to). Nothing is invented: a prefix that states nothing has no answer (scored wrong).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any, Literal

from interlock.monitor.budgets.errors import BudgetError

__all__ = ["BOXED", "MAX_BOXED_CHARS", "AnswerScorer", "StatedAnswer", "box_end", "boxed_answers", "stated_answer"]

AnswerKind = Literal["boxed", "answer_is", "result"]
BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
# A box whose content runs longer than this is no answer: its closing brace is not looked for further (so a
# "\boxed{" left open in a long trace costs a bounded scan, not one to the end of the text for every box).
MAX_BOXED_CHARS = 4000
# "the answer is 9.", "Final Answer: $\frac{1}{2}$", "the final answer is \(x=3\)"; the answer must be closed
# by a sentence end or a line end, so a prefix cut in the middle of "45" does not read as "4".
_ANSWER_IS = re.compile(
    r"(?i)(?:final answer|the answer|answer)\s*(?:is|:|=)\s*:?\s*"
    r"(\$\$?[^$\n]{1,120}?\$\$?|\\\([^\n]{1,120}?\\\)|[^\s$][^\n$]{0,60}?)"
    r"(?=\s*(?:[.;](?:\s|\Z)|\n))")
# The last number (or simple fraction) stated, as the usual MATH graders fall back to; it must be complete (a
# character that cannot continue it follows), so "4" of a "45" still being written is not read.
_RESULT = re.compile(r"(?<![\w.])(-?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?|\\[dt]?frac\{[^{}]{1,20}\}\{[^{}]{1,20}\})"
                     r"(?=[^\w.,/]|[.,](?!\d))")


@dataclass(frozen=True)
class StatedAnswer:
    """An answer found in a trace: its text, how it was stated, and where its statement ends."""

    text: str
    kind: AnswerKind
    end: int

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "kind": self.kind, "end": self.end}


def box_end(text: str, start: int) -> int | None:
    """Where the box whose content starts at ``start`` (after its ``{``) ends, past its closing brace; ``None``
    when it does not close within the text or within :data:`MAX_BOXED_CHARS`."""
    depth, i = 1, start
    stop = min(len(text), start + MAX_BOXED_CHARS + 1)
    while i < stop and depth:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        depth += (c == "{") - (c == "}")
        i += 1
    return i if depth == 0 else None


def boxed_answers(text: str) -> list[StatedAnswer]:
    """Every complete ``\\boxed{...}`` (nested braces allowed, at most :data:`MAX_BOXED_CHARS` of content) in
    ``text``, in order; an unclosed one at the end of a prefix is not an answer yet."""
    found: list[StatedAnswer] = []
    for m in BOXED.finditer(text):
        end = box_end(text, m.end())
        if end is not None:
            found.append(StatedAnswer(text[m.end():end - 1].strip(), "boxed", end))
    return found


def stated_answer(text: str, *, complete: bool = False) -> StatedAnswer | None:
    """The last answer ``text`` states: the later of its last ``\\boxed{}`` and its last "the answer is", else
    its last stated result. ``complete=True`` (the whole trace) lets an answer end at the end of the text."""
    probe = text + "\n" if complete else text
    candidates = boxed_answers(probe)[-1:]
    said = None
    for said in _ANSWER_IS.finditer(probe):  # noqa: B007  (the last match is wanted)
        pass
    if said is not None and "\\boxed" not in said.group(1):
        candidates.append(StatedAnswer(said.group(1).strip().rstrip(","), "answer_is", min(said.end(1), len(text))))
    if candidates:
        return max(candidates, key=lambda a: a.end)
    result = None
    for result in _RESULT.finditer(probe):  # noqa: B007  (the last match is wanted)
        pass
    if result is not None:
        return StatedAnswer(result.group(1).replace(",", "").strip(), "result", min(result.end(1), len(text)))
    return None


def _math(answer: str) -> str:
    """An answer as math-verify reads it: inside one pair of ``$``."""
    a = answer.strip()
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if a.startswith(left) and a.endswith(right) and len(a) >= len(left) + len(right):
            a = a[len(left):len(a) - len(right)].strip()
            break
    return f"${a}$"


class AnswerScorer:
    """Compares answers with a reference through ``math-verify`` (LaTeX parsed, compared symbolically), with a
    cache: many policies end with the same answer."""

    def __init__(self) -> None:
        try:
            import math_verify
        except ImportError:
            raise BudgetError("scoring answers needs the math-verify package: pip install 'interlock[budget]'"
                              ) from None
        self._mv = math_verify
        self._gold: dict[str, Any] = {}
        self._cache: dict[tuple[str, str], bool] = {}

    def _limits(self) -> tuple[dict[str, Any], dict[str, Any]]:
        # math-verify's time limits are signal alarms, which only the main thread can set: off it (a Ray Data
        # actor runs its batches on a thread) it parses and compares without one
        main = threading.current_thread() is threading.main_thread()
        return ({} if main else {"parsing_timeout": None}), ({} if main else {"timeout_seconds": None})

    def _reference(self, reference: str) -> Any:
        gold = self._gold.get(reference)
        if gold is None:
            gold = self._gold[reference] = self._mv.parse(_math(reference), **self._limits()[0])
        return gold

    def readable(self, reference: str) -> bool:
        """Whether math-verify finds an expression in the reference (not only its text back): else no answer
        can be scored against it, and calling every answer wrong would hide that."""
        try:
            gold = self._reference(reference)
        except Exception:
            return False
        return any(not isinstance(g, str) for g in gold)

    def correct(self, answer: str | None, reference: str) -> bool:
        if answer is None or not answer.strip():
            return False
        key = (answer, reference)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        parse_limit, verify_limit = self._limits()
        gold = self._reference(reference)
        try:
            ok = bool(gold) and bool(self._mv.verify(gold, self._mv.parse(_math(answer), **parse_limit),
                                                     **verify_limit))
        except Exception:
            ok = False
        self._cache[key] = ok
        return ok
