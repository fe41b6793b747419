"""The ``game24`` verifier: every step of a Game of 24 trace and the final expression, checked exactly.

Steps in the usual format ``10 - 4 = 6 (left: 5 6 6)`` are replayed from the input numbers: the arithmetic
must be right, both operands must be among the numbers still available, and the "left" list must be what
remains. Any other ``expression = number`` is checked for its arithmetic only. The final answer
(``Answer: <expression>`` or ``\\boxed{<expression>}``) must use each input number exactly once and equal 24.
With ``dead_ends=True`` a correct step whose numbers left can no longer make 24 is flagged too (an exact
solver decides).

The input numbers come from the constructor (``Game24([4, 9, 10, 13])``) or, when it has none, from the
prompt: the numbers after the last ``Input:`` (the Tree-of-Thoughts format), or else the last run of two or
more numbers separated by spaces or commas.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from monitor import Action, AnyOf, AtEnd, Fail, Pass, Span, StepBoundary, TraceView, Unknown, Verdict, Verifier
from verifiers.errors import VerifierConfigError
from verifiers.game24.arith import NUMBER, ExpressionError, format_number, parse_expression, parse_number
from verifiers.game24.solver import solvable

__all__ = ["Game24", "Game24State", "numbers_from_prompt"]

_OP = r"[-+*/×÷−xX]"
STEP = re.compile(rf"(?P<a>{NUMBER})\s*(?P<op>{_OP})\s*(?P<b>{NUMBER})\s*=\s*(?P<c>{NUMBER})"
                  rf"\s*\(\s*left\s*:\s*(?P<left>[^)\n]*?)\s*\)", re.IGNORECASE)
_EXPR_CHARS = r"[\d\s.+\-−*×÷/()xX]"
EQUATION = re.compile(rf"(?P<lhs>[\d(]{_EXPR_CHARS}*?)\s*=\s*(?P<rhs>{NUMBER})(?![\d]|[/.]\d)")
ANSWER = re.compile(rf"(?im)\b(?:final\s+)?answer\s*(?:is\s*)?[:=]?\s*(?P<expr>[\d(]{_EXPR_CHARS}*?)"
                    rf"(?:\s*=\s*(?P<value>{NUMBER}))?\s*(?:[.;]\s*)?$")
BOXED = re.compile(rf"\\boxed\{{\s*(?P<expr>[^{{}}=\n]*?)\s*(?:=\s*(?P<value>{NUMBER})\s*)?\}}")
_INPUT = re.compile(r"(?i)\binput\s*:\s*(?P<nums>\d+(?:[ \t,]+\d+)+)")
_RUN = re.compile(r"(?<![\w.])\d+(?:(?:[ \t]*,[ \t]*|[ \t]+)\d+)+(?![\w.])")
_SYMBOL = {"+": "+", "-": "-", "−": "-", "*": "*", "×": "*", "x": "*", "X": "*", "/": "/", "÷": "/"}


def numbers_from_prompt(prompt: str) -> list[Fraction] | None:
    """The puzzle's numbers in a prompt: after the last ``Input:``, else the last run of numbers."""
    labelled = list(_INPUT.finditer(prompt))
    if labelled:
        text = labelled[-1].group("nums")
    else:
        runs = list(_RUN.finditer(prompt))
        if not runs:
            return None
        text = runs[-1].group()
    return [Fraction(x) for x in re.split(r"[\s,]+", text.strip()) if x]


def _answers(text: str) -> list[re.Match[str]]:
    """Final answers in the text: an expression with at least one operation ("The answer is 24" is none)."""
    out = []
    for m in sorted([*ANSWER.finditer(text), *BOXED.finditer(text)], key=lambda m: m.start()):
        try:
            if len(parse_expression(m.group("expr")).leaves) >= 2:
                out.append(m)
        except ExpressionError:
            out.append(m)  # looks like an answer but is unreadable: the check says so
    return out


def _has_steps(trigger: object) -> bool:
    parts = trigger.triggers if isinstance(trigger, AnyOf) else (trigger,)
    return any(isinstance(t, StepBoundary) for t in parts)


def _multiset(values: Iterable[Fraction]) -> collections.Counter[Fraction]:
    return collections.Counter(values)


def _show(values: Iterable[Fraction]) -> str:
    return " ".join(format_number(v) for v in sorted(values)) or "nothing"


@dataclass(frozen=True)
class Game24State:
    """What :meth:`Game24.check` judges: the text so far, the step to judge, the puzzle's numbers."""

    text: str
    step: Span
    numbers: tuple[Fraction, ...] | None
    final: bool = False
    end_check: bool = False  # the end-of-run check: is there a final answer at all?
    end_only: bool = False  # AtEnd's check of the whole text: the steps were checked one by one already
    prompt_problem: str = ""


class Game24(Verifier):
    """Checks Game of 24 traces step by step; see the module docstring.

    - ``numbers``: the puzzle (e.g. ``[4, 9, 10, 13]``); None reads them from the prompt.
    - ``target``: what the numbers must make (24).
    - ``dead_ends``: also flag a correct step after which the target is out of reach (``True`` uses the
      verifier's ``action``; an action name such as ``"warn"`` uses that).
    - ``require_answer``: at the end, a trace without a final ``Answer:`` gets ``Unknown`` (not a pass).
    """

    name = "game24"
    trigger = StepBoundary() | AtEnd()
    runs_in = "loop"
    description = "Game of 24: step arithmetic, available numbers, 'left' bookkeeping, final expression (exact)"

    def __init__(self, numbers: Sequence[int | Fraction | str] | None = None, *, target: int | Fraction = 24,
                 dead_ends: bool | Action | str = False, require_answer: bool = True, **options: Any) -> None:
        if numbers is not None:
            try:
                self.numbers: tuple[Fraction, ...] | None = tuple(
                    parse_number(str(n)) if isinstance(n, str) else Fraction(n) for n in numbers)
            except (ExpressionError, TypeError, ValueError):
                raise VerifierConfigError(f"Game24: numbers must be numbers, got {numbers!r}") from None
            if len(self.numbers) < 2:
                raise VerifierConfigError(f"Game24: need at least two numbers, got {list(numbers)!r}")
        else:
            self.numbers = None
        self.target = Fraction(target)
        if isinstance(dead_ends, bool):
            self.dead_end_action: Action | None = None
            self.dead_ends = dead_ends
        else:
            self.dead_end_action = Action.parse(dead_ends)
            self.dead_ends = True
        self.require_answer = require_answer
        self._ended: tuple[int, int] | None = None
        super().__init__(**options)

    # -- extraction ---------------------------------------------------------------------------------
    def extract(self, view: TraceView) -> Game24State:
        numbers = self.numbers
        problem = ""
        if numbers is None:
            found = numbers_from_prompt(view.prompt)
            if found is None or len(found) < 2:
                problem = ("no input numbers: pass Game24([4, 9, 10, 13]) or put 'Input: 4 9 10 13' in the "
                           "prompt")
            else:
                numbers = tuple(found)
        key = (view.epoch, view.end)
        end_check = view.final and view.step.end == view.end and self._ended != key
        if end_check:
            self._ended = key
        end_only = view.final and view.step.index == -1 and _has_steps(self.trigger)
        return Game24State(view.text, view.step.span, numbers, final=view.final, end_check=end_check,
                           end_only=end_only, prompt_problem=problem)

    # -- checking -----------------------------------------------------------------------------------
    def check(self, state: Game24State) -> list[Verdict]:
        verdicts: list[Verdict] = []
        if state.end_only:
            if state.end_check and self.require_answer and not _answers(state.text):
                return [Unknown(reason="no final 'Answer: <expression>' in the trace", span=state.step)]
            return [Pass(note="every step was checked when it was written")]
        if state.numbers is None:
            return [Unknown(reason=state.prompt_problem, span=state.step)]
        inputs = _multiset(state.numbers)
        pool = collections.Counter(inputs)
        text = state.text
        taken: list[tuple[int, int]] = []
        for m in STEP.finditer(text):
            taken.append(m.span())
            here = state.step.start <= m.start() and m.end() <= state.step.end
            pool, found = self._replay_step(m, pool, inputs)
            if here:
                verdicts.extend(found)
        answers = _answers(text)
        for m in answers:
            if state.step.start <= m.start("expr") and m.end("expr") <= state.step.end:
                verdicts.extend(self._check_answer(m, state.numbers))
                taken.append(m.span())
        for m in EQUATION.finditer(text, state.step.start, state.step.end):
            if any(s < m.end() and m.start() < e for s, e in taken):
                continue
            verdicts.extend(self._check_equation(m))
        if state.end_check and self.require_answer and not answers:
            verdicts.append(Unknown(reason="no final 'Answer: <expression>' in the trace", span=state.step))
        return verdicts or [Pass()]

    def _replay_step(self, m: re.Match[str], pool: collections.Counter[Fraction],
                     inputs: collections.Counter[Fraction]) -> tuple[collections.Counter[Fraction], list[Verdict]]:
        """Judge one step against the numbers available; returns the numbers after it and the verdicts."""
        a, b, c = (parse_number(m.group(k)) for k in "abc")
        op = _SYMBOL[m.group("op")]
        try:
            left = [parse_number(x) for x in re.split(r"[\s,]+", m.group("left").strip()) if x]
        except ExpressionError:
            left = None
        need = _multiset([a, b])
        plus = _multiset([c])
        if left is not None and all(inputs[v] >= k for v, k in need.items()) \
                and _multiset(left) == inputs - need + plus \
                and (any(pool[v] < k for v, k in need.items()) or _multiset(left) != pool - need + plus):
            pool = collections.Counter(inputs)  # the trace starts over from the input numbers
        out: list[Verdict] = []
        shown = f"{m.group('a')} {m.group('op')} {m.group('b')}"
        missing = [(k, v) for k, v in (("a", a), ("b", b)) if pool[v] < need[v]]
        if missing:
            key, value = missing[-1]
            out.append(Fail(f"{shown} uses {format_number(value)}, which is not among the numbers available "
                            f"({_show(pool.elements())})",
                            span=Span(*m.span(key)),
                            feedback=f"{format_number(value)} is not available; the numbers left are "
                                     f"{_show(pool.elements())}.",
                            claim=f"unavailable {format_number(value)} in {_show(pool.elements())}"))
        true = {"+": a + b, "-": a - b, "*": a * b, "/": a / b if b != 0 else None}[op]
        if true is None:
            out.append(Fail(f"{shown} divides by zero", span=Span(*m.span("b")), feedback="division by zero is "
                            "not allowed.", claim=f"{shown}=div0"))
        elif true != c:
            out.append(Fail(f"{shown} is {format_number(true)}, not {m.group('c')}", span=Span(*m.span("c")),
                            feedback=f"{shown} is {format_number(true)}, not {m.group('c')}.",
                            claim=f"{a}{op}{b}={m.group('c')}"))
        after = pool - need + plus if not missing else None
        if left is None:
            out.append(Unknown(reason=f"cannot read the numbers left {m.group('left')!r}", span=Span(*m.span("left"))))
        elif after is not None and _multiset(left) != after:
            out.append(Fail(f"after {shown} = {m.group('c')} the numbers left are {_show(after.elements())}, "
                            f"not {_show(left)}", span=Span(*m.span("left")),
                            feedback=f"the numbers left after {shown} = {m.group('c')} would be "
                                     f"{_show(after.elements())}, not {_show(left)}.",
                            claim=f"left {_show(after.elements())}!={_show(left)}"))
        elif not out and self.dead_ends and not solvable(left, self.target):
            out.append(Fail(f"dead end: {_show(left)} can no longer make {format_number(self.target)}",
                            span=Span(m.start(), m.end()), action=self.dead_end_action,
                            feedback=f"with {_show(left)} left, {format_number(self.target)} can no longer be made; "
                                     "try another step.",
                            claim=f"dead end {_show(left)}"))
        state = _multiset(left) if left is not None else (after if after is not None else pool)
        return state, out

    def _check_answer(self, m: re.Match[str], numbers: Sequence[Fraction]) -> list[Verdict]:
        span = Span(m.start("expr"), m.end("expr"))
        expr = m.group("expr")
        try:
            parsed = parse_expression(expr)
        except ExpressionError as exc:
            return [Unknown(reason=f"cannot read the final answer: {exc}", span=span)]
        used = _multiset(leaf.value for leaf in parsed.leaves)
        want = _multiset(numbers)
        out: list[Verdict] = []
        target = format_number(self.target)
        if used != want:
            extra, missing = used - want, want - used
            parts = []
            if missing:
                parts.append(f"does not use {_show(missing.elements())}")
            if extra:
                parts.append(f"uses {_show(extra.elements())} beyond the input")
            what = " and ".join(parts)
            out.append(Fail(f"the final answer {expr.strip()} {what}: each of {_show(numbers)} must be used exactly "
                            "once", span=span,
                            feedback=f"the answer must use each of {_show(numbers)} exactly once; it {what}.",
                            claim=f"answer uses {_show(used.elements())}"))
        if parsed.value is None:
            out.append(Fail(f"the final answer {expr.strip()} divides by zero", span=span,
                            feedback="the answer divides by zero.", claim="answer div0"))
        elif parsed.value != self.target:
            out.append(Fail(f"the final answer {expr.strip()} equals {format_number(parsed.value)}, not {target}",
                            span=span, feedback=f"{expr.strip()} is {format_number(parsed.value)}, not {target}.",
                            claim=f"answer = {format_number(parsed.value)}"))
        elif m.group("value") is not None and parse_number(m.group("value")) != self.target:
            out.append(Fail(f"the final answer says = {m.group('value')}, but the target is {target}",
                            span=Span(*m.span("value")), feedback=f"the answer must equal {target}.",
                            claim=f"answer claims {m.group('value')}"))
        return out or [Pass(note=f"the final answer {expr.strip()} = {target}", span=span)]

    def _check_equation(self, m: re.Match[str]) -> list[Verdict]:
        lhs = m.group("lhs")
        try:
            parsed = parse_expression(lhs)
        except ExpressionError:
            return []  # not arithmetic we understand: no verdict
        if len(parsed.leaves) < 2:
            return []
        stated = parse_number(m.group("rhs"))
        if parsed.value is None:
            return [Fail(f"{lhs.strip()} divides by zero", span=Span(m.start("lhs"), m.end("rhs")),
                         feedback="division by zero is not allowed.", claim=f"{lhs.strip()}=div0")]
        if parsed.value != stated:
            return [Fail(f"{lhs.strip()} is {format_number(parsed.value)}, not {m.group('rhs')}",
                         span=Span(*m.span("rhs")),
                         feedback=f"{lhs.strip()} is {format_number(parsed.value)}, not {m.group('rhs')}.",
                         claim=f"{''.join(lhs.split())}={m.group('rhs')}")]
        return []
