"""The ``arithmetic`` verifier: every calculation a step states, checked exactly with sympy as the step ends."""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass, field
from typing import Any

from interlock import Fail, Pass, Step, StepBoundary, TraceView, Unknown, Verdict, Verifier
from interlock.monitor.verifier import RunsIn
from interlock.verifiers.arithmetic.errors import TooComplex
from interlock.verifiers.arithmetic.extract import Claim, Context, context_of, extract_claims, might_hold_claims
from interlock.verifiers.arithmetic.judge import Judgement, judge
from interlock.verifiers.arithmetic.parse import Limits

_RUNNING_TOTAL = "a running total"
_BEFORE_KEPT = 2000

__all__ = ["Arithmetic", "Finding", "StepInContext", "check_text", "wrong_claims"]


@dataclass(frozen=True)
class Finding:
    """A judged claim with its span in the text that was checked (``check_text``'s answer)."""

    judgement: Judgement
    start: int
    end: int

    @property
    def status(self) -> str:
        return self.judgement.status

    @property
    def claim(self) -> Claim:
        return self.judgement.claim


# A step that goes on with the chain of the line before it: "= 5328", "&= 12 + 5", "\\[ = 5329 \\]".
_CONTINUES = re.compile(r"[ \t]*(?:\\\[|\$\$|\\\(|\$)?[ \t]*&?[ \t]*(?:=(?!=)|≈|\\approx(?![A-Za-z]))")
_CONTINUED_LINE = 2000  # the most of the line before that is read with a step that continues it


# A value tried in an equation ("check x = 1", "Test \\( x = -2 \\)", "try 5"): "1 = \\sqrt{9} + 4" that follows
# tests the equation at it, it does not claim a calculation.
_TESTED_VALUE = re.compile(r"(?<![A-Za-z\\])[A-Za-z]\s*=\s*\(?\s*(-?\d+(?:\.\d+)?)(?![\d.])"
                           r"|\b(?:try|trying|test|testing|check|checking|plug(?:ging)?\s+in|substitut\w*)\s+"
                           r"(?:\\\(\s*|\$)?(-?\d+(?:\.\d+)?)(?![\d.])", re.IGNORECASE)
# Words that make what follows an equation being tested, not a calculation: "Plugging into the original
# equation: 3 + (-1/2) = 7/(-2)".
_PLUGGING = re.compile(r"\b(?:plug\w*|substitut\w*|original\s+equation|into\s+the\s+equation|both\s+sides|LHS|RHS"
                       r"|(?:left|right)[- ]hand\s+side)\b", re.IGNORECASE)
_TESTED_WINDOW = 600


def _tested(claim: Claim, text: str, before: str) -> bool:
    """Whether a link between two expressions or a reversed claim tests an equation rather than states a
    calculation: the words just before it speak of plugging in, or its stated value is a value just tried."""
    if claim.rhs_expr is None and not claim.reversed:
        return False
    window = (before[-_TESTED_WINDOW:] + "\n" + text[:max(claim.start, 0)])[-_TESTED_WINDOW:]
    if _PLUGGING.search(window[-200:]):
        return True
    if claim.reversed:
        tried = {m.group(1) or m.group(2) for m in _TESTED_VALUE.finditer(window)}
        return claim.rhs_text.replace("$", "") in tried
    return False


def continued_line(text: str, before: str) -> str:
    """The line before a step that goes on with its chain (``""`` when it does not): the monitor cuts steps at
    line ends, so ``\\[ 69 \\div 3 \\]`` and ``\\[ = 12 \\]`` are two steps of one claim."""
    if not before or not _CONTINUES.match(text):
        return ""
    body = before[-_CONTINUED_LINE:]
    end = len(body.rstrip("\n"))
    if end == 0:
        return ""
    line = body[body.rfind("\n", 0, end) + 1:]
    return line if "\n" in body[:end] or len(before) <= _CONTINUED_LINE else ""


def check_text(text: str, limits: Limits | None = None, *, context: Context | None = None,
               before: str | None = None) -> list[Finding]:
    """Judge every claim in ``text`` as one step (no trace, no event loop): the fast path for offline use.
    ``context`` (see :func:`context_of`) carries what earlier steps or the prompt say of modular arithmetic or
    another base. ``before``: the text before the step; a step that starts with "=" goes on with the chain of
    the line before it, and a claim that starts there has a negative ``start`` (only claims that end in the step
    are returned)."""
    limits = limits or Limits()
    if len(text) > limits.max_step_chars:  # the size test comes first: no pass over a huge text
        return _check_windows(text, limits, context, before)
    return _check_one(text, limits, context, before, [limits.seconds])


def _check_one(text: str, limits: Limits, context: Context | None, before: str | None,
               budget: list[float], *, go_on: bool = True) -> list[Finding]:
    """One window of text; ``budget`` holds the seconds of judging left to the step (it is spent here);
    ``go_on``: a text that starts with "=" goes on with the line before it (not for a window inside a step,
    whose overlap with the window before already holds that line)."""
    prefix = continued_line(text, before) if before and go_on else ""
    if prefix:
        assert before is not None
        found = _check_one(prefix + text, limits, context, before[:len(before) - len(prefix)], budget)
        shift = len(prefix)
        return [Finding(f.judgement, f.start - shift, f.end - shift) for f in found if f.end > shift]
    if not might_hold_claims(text):
        return []
    import sympy  # noqa: F401  (loaded before the clock starts)

    claims = [c for c in extract_claims(text, limits, context) if not _tested(c, text, before or "")]
    started = time.thread_time()  # the work of judging, not the time the thread waits for a CPU or the GIL
    deadline = started + budget[0]
    try:
        return _judge_all(claims, limits, deadline)
    finally:
        budget[0] -= time.thread_time() - started


def _judge_all(claims: list[Claim], limits: Limits, deadline: float) -> list[Finding]:
    out: list[Finding] = []
    for i, claim in enumerate(claims):
        if i >= limits.max_claims:
            rest = claims[i:]
            reason = f"{len(rest)} more claims not checked (the limit is {limits.max_claims} per step)"
            claim = dataclasses.replace(claim, lhs=None)
            out.append(Finding(Judgement("unknown", claim, reason=reason), rest[0].start,
                               max(c.end for c in rest)))
            break
        try:
            j = judge(claim, limits, deadline)
        except TooComplex as exc:
            j = Judgement("unknown", claim, reason=f"{claim.lhs_text}: too complex to check ({exc})")
        if j.status == "unsure" and claim.rhs_expr is not None and j.reason.startswith(_RUNNING_TOTAL):
            continue  # "20 - 5 = 15 + 3 = 18": the link goes on from a value, it claims nothing itself
        out.append(Finding(j, claim.start, claim.end))
    return out


def _check_windows(text: str, limits: Limits, context: Context | None, before: str | None) -> list[Finding]:
    """A long step, checked in windows of ``max_step_chars`` that overlap by ``window_overlap``: a claim is
    judged in a window that holds it whole with ``_EDGE`` characters around it (so any claim up to
    ``window_overlap - 2 * _EDGE`` characters long is judged), each at most once. Past ``max_checked_chars``
    the rest of the step is one ``unknown`` finding. One time budget (``seconds``) covers the whole step."""
    budget = [limits.seconds]
    began = time.thread_time()
    size, overlap = limits.max_step_chars, min(limits.window_overlap, limits.max_step_chars // 2)
    stop = min(len(text), limits.max_checked_chars)
    out: list[Finding] = []
    seen: set[tuple[int, int]] = set()
    start = 0
    while start < stop:
        if start > 0 and time.thread_time() - began > limits.window_seconds:
            stop = start  # the step's time budget is spent: the rest is not read
            break
        end = min(start + size, len(text))
        if end < len(text):  # cut at a line end or a space, not inside a number
            cut = text.rfind("\n", end - overlap // 2, end)
            if cut <= start:
                cut = text.rfind(" ", end - overlap // 2, end)
            end = cut if cut > start else end
        window = text[start:end]
        head = before if start == 0 else text[max(0, start - _BEFORE_KEPT):start]
        for f in _check_one(window, limits, context, head, budget, go_on=start == 0):
            unread = f.status == "unknown" and f.claim.lhs is None and f.judgement.reason.endswith("per step)")
            if start > 0 and f.start < _EDGE and not unread:
                continue  # may be cut at the window's start: the window before holds it whole
            if end < len(text) and f.end > len(window) - _EDGE and not unread:
                continue  # may go on past the window's end: the next window holds it whole
            key = (start + f.start, start + f.end)
            if key not in seen:
                seen.add(key)
                out.append(Finding(f.judgement, *key))
        if end >= len(text):
            break
        start = max(end - overlap, start + 1)
    if stop < len(text):
        reason = (f"{len(text) - stop:,} characters of a step of {len(text):,} not checked (the limits are "
                  f"{limits.max_checked_chars:,} characters and {limits.window_seconds * 1000:g} ms per step)")
        rest = Claim(lhs_text=text[stop:stop + 40], rhs_text="", normalised="", start=stop, end=len(text), lhs=None,
                     rhs=None, problem=reason)
        out.append(Finding(Judgement("unknown", rest, reason=reason), stop, len(text)))
    out.sort(key=lambda f: (f.start, f.end))
    return out


_EDGE = 200


@dataclass(frozen=True)
class StepInContext:
    """What :class:`Arithmetic` checks: the step, and what the prompt and the earlier steps say of modular
    arithmetic or another base ("We work mod 7." then "3 * 5 = 1" is a congruence, not an error)."""

    step: Step
    context: Context = field(default_factory=Context)
    # the end of the text before the step: the line a step goes on with ("\\[ = 12 \\]"), values just tried
    before: str = ""


def wrong_claims(findings: list[Finding]) -> list[Finding]:
    """The wrong claims, less those inside another wrong claim (an annotation within its written claim)."""
    wrong = [f for f in findings if f.status == "wrong"]
    return [f for f in wrong if not any(g is not f and g.start <= f.start and f.end <= g.end
                                        and (g.start, g.end) != (f.start, f.end) for g in wrong)]


class Arithmetic(Verifier):
    """Checks every calculation a step states (``16 - 3 - 4 = 9``, ``20% of 150 is 30``, ``<<9*2=18>>``).

    Sound by construction: a claim it cannot read for sure is not judged, and a wrong claim is one whose
    stated value fits no reading of the expression under the rounding rule (see ``interlock.verifiers.arithmetic``).
    A wrong claim fails with a span covering exactly that claim and feedback naming the right value; a claim
    past the size, exponent or time limits is ``Unknown``.

    Cost bound per step (:class:`Limits`): at most ``max_checked_chars`` characters are read (32,000), in
    windows of ``max_step_chars`` (8,000) overlapping by ``window_overlap`` (1,000), so a wrong claim in a long
    step is still found, and no more windows are read after ``window_seconds`` (0.25 s); at most ``max_claims``
    claims (64) are judged per window, each expression at most ``max_tokens`` tokens, and all judging of a step
    shares one budget of ``seconds`` (0.1 s). What is past a bound is ``Unknown``, or a ``Fail`` with
    ``fail_closed=True``.
    """

    name = "arithmetic"
    trigger = StepBoundary()
    runs_in: RunsIn = "loop"  # a step costs well under a millisecond to a few ms: cheaper than any hand-off
    reads_chunks = False  # it reads the text, the step and the prompt
    timeout = 5.0
    description = "Checks the calculations each step states, exactly, with sympy"

    @classmethod
    def applies_to(cls, prompt: str) -> bool:
        """Calculations can turn up in any reasoning trace, and a step without one costs microseconds."""
        return True

    def __init__(self, *, limits: Limits | None = None, report_unknown: bool = True, fail_closed: bool = False,
                 **options: Any) -> None:
        super().__init__(**options)
        self.limits = limits or Limits()
        self.report_unknown = report_unknown
        self.fail_closed = fail_closed
        import sympy  # noqa: F401  (import now, not on the first step inside the event loop)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A copy made by pickling (a replay worker process) imports sympy as it is unpickled, while the worker
        # starts: inside its first check the import (seconds on a loaded machine) would count against that check's
        # timeout, and the check would come back Unknown in this engine and not in one that builds its verifiers.
        self.__dict__.update(state)
        import sympy  # noqa: F401

    def extract(self, view: TraceView) -> StepInContext | Step:
        if not might_hold_claims(view.step.text, self.limits.max_checked_chars):
            return view.step  # nothing to judge: no context needed
        around = view.text[:view.step.start]
        return StepInContext(view.step, context_of(f"{view.prompt}\n{around}" if view.prompt else around),
                             around[-_BEFORE_KEPT:])

    def check(self, state: Step | StepInContext) -> list[Verdict]:
        step, context = (state.step, state.context) if isinstance(state, StepInContext) else (state, None)
        before = state.before if isinstance(state, StepInContext) else ""
        try:
            findings = check_text(step.text, self.limits, context=context, before=before)
        except TooComplex as exc:
            return [Unknown(reason=f"not checked: {exc}", span=step.span)]
        if step.cut:  # the run was stopped inside this step: a value at its very end may be unfinished
            end = len(step.text.rstrip())
            findings = [f if f.end < end else
                        Finding(Judgement("unknown", f.claim, reason=f"{f.claim.lhs_text}: the run stopped while "
                                          f"its value was being written"), f.start, f.end)
                        for f in findings]
        fails = [Fail(f"arithmetic: {f.judgement.feedback}", span=step.to_trace(max(f.start, 0), f.end),
                      feedback=f.judgement.feedback, claim=f.claim.normalised) for f in wrong_claims(findings)]
        if self.fail_closed:  # what could not be checked fails, as the user asked
            fails += [Fail(f"arithmetic: not checked: {f.judgement.reason}", span=step.to_trace(max(f.start, 0), f.end),
                           feedback=f"this part was not checked ({f.judgement.reason}); write it in shorter steps.",
                           claim=f"unchecked {f.start}") for f in findings if f.status == "unknown"]
            findings = [f for f in findings if f.status != "unknown"]
        unknown: list[Verdict] = []
        if self.report_unknown:
            unknown = [Unknown(reason=f.judgement.reason, span=step.to_trace(max(f.start, 0), f.end))
                       for f in findings if f.status == "unknown"]
        verdicts: list[Verdict] = [*fails, *unknown]
        if not verdicts:
            checked = sum(f.status != "unknown" for f in findings)
            return [Pass(note=f"{checked} calculation{'s' if checked != 1 else ''} checked", checked=checked > 0)]
        return verdicts

