"""The ``arithmetic`` verifier: every calculation a step states, checked exactly with sympy as the step ends."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from interlock import Fail, Pass, Step, StepBoundary, TraceView, Unknown, Verdict, Verifier
from interlock.monitor.verifier import RunsIn
from interlock.verifiers.arithmetic.errors import TooComplex
from interlock.verifiers.arithmetic.extract import Claim, Context, context_of, extract_claims, might_hold_claims
from interlock.verifiers.arithmetic.judge import Judgement, judge
from interlock.verifiers.arithmetic.parse import Limits

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


def check_text(text: str, limits: Limits | None = None, *, context: Context | None = None) -> list[Finding]:
    """Judge every claim in ``text`` as one step (no trace, no event loop): the fast path for offline use.
    ``context`` (see :func:`context_of`) carries what earlier steps or the prompt say of modular arithmetic or
    another base."""
    limits = limits or Limits()
    if not might_hold_claims(text):
        return []
    if len(text) > limits.max_step_chars:
        raise TooComplex(f"a step of {len(text)} characters (the limit is {limits.max_step_chars})")
    import sympy  # noqa: F401  (loaded before the clock starts)

    claims = extract_claims(text, limits, context)
    deadline = time.perf_counter() + limits.seconds
    out: list[Finding] = []
    for i, claim in enumerate(claims):
        if i >= limits.max_claims:
            rest = claims[i:]
            reason = f"{len(rest)} more claims not checked (the limit is {limits.max_claims} per step)"
            out.append(Finding(Judgement("unknown", claim, reason=reason), rest[0].start,
                               max(c.end for c in rest)))
            break
        try:
            j = judge(claim, limits, deadline)
        except TooComplex as exc:
            j = Judgement("unknown", claim, reason=f"{claim.lhs_text}: too complex to check ({exc})")
        out.append(Finding(j, claim.start, claim.end))
    return out


@dataclass(frozen=True)
class StepInContext:
    """What :class:`Arithmetic` checks: the step, and what the prompt and the earlier steps say of modular
    arithmetic or another base ("We work mod 7." then "3 * 5 = 1" is a congruence, not an error)."""

    step: Step
    context: Context = field(default_factory=Context)


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

    def __init__(self, *, limits: Limits | None = None, report_unknown: bool = True, **options: Any) -> None:
        super().__init__(**options)
        self.limits = limits or Limits()
        self.report_unknown = report_unknown
        import sympy  # noqa: F401  (import now, not on the first step inside the event loop)

    def extract(self, view: TraceView) -> StepInContext | Step:
        if not might_hold_claims(view.step.text):
            return view.step  # nothing to judge: no context needed
        around = view.text[:view.step.start]
        return StepInContext(view.step, context_of(f"{view.prompt}\n{around}" if view.prompt else around))

    def check(self, state: Step | StepInContext) -> list[Verdict]:
        step, context = (state.step, state.context) if isinstance(state, StepInContext) else (state, None)
        try:
            findings = check_text(step.text, self.limits, context=context)
        except TooComplex as exc:
            return [Unknown(reason=f"not checked: {exc}", span=step.span)]
        if step.cut:  # the run was stopped inside this step: a value at its very end may be unfinished
            end = len(step.text.rstrip())
            findings = [f if f.end < end else
                        Finding(Judgement("unknown", f.claim, reason=f"{f.claim.lhs_text}: the run stopped while "
                                          f"its value was being written"), f.start, f.end)
                        for f in findings]
        fails = [Fail(f"arithmetic: {f.judgement.feedback}", span=step.to_trace(f.start, f.end),
                      feedback=f.judgement.feedback, claim=f.claim.normalised) for f in wrong_claims(findings)]
        unknown: list[Verdict] = []
        if self.report_unknown:
            unknown = [Unknown(reason=f.judgement.reason, span=step.to_trace(f.start, f.end))
                       for f in findings if f.status == "unknown"]
        verdicts: list[Verdict] = [*fails, *unknown]
        if not verdicts:
            checked = sum(f.status != "unknown" for f in findings)
            return [Pass(note=f"{checked} calculation{'s' if checked != 1 else ''} checked")]
        return verdicts

