"""The ``spatialmap`` verifier: a spatial map read from the prompt; directions, counts and coordinates the trace
states are checked against what the map entails, and the final answer too, failing only on a contradiction.

The map comes from the prompt (SpatialEval's spatial-map task, which interwhen evaluates; see
:mod:`interlock.verifiers.spatialmap.map`). Reasoning is exact, over the east-west and north-south orders the
map states (:mod:`interlock.verifiers.spatialmap.orders`): a claim the map contradicts is failed with the chain
of statements that contradicts it; one it entails passes; one it leaves open is not flagged (a final answer it
leaves open is ``Unknown``). Claims are judged ``settle_steps`` steps late, so that the text can take them back.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from interlock import Fail, Pass, Span, Unknown, Verdict
from interlock.verifiers.choices import final_choice
from interlock.verifiers.settled import NoProblem, SettledClaims, TraceState
from interlock.verifiers.spatialmap.map import DIRECTIONS, SpatialMapProblem, direction_name, read_map
from interlock.verifiers.spatialmap.orders import Orders, sources
from interlock.verifiers.spatialmap.reading import MapFinding, MapState, StepReader, count_range, sorted_pair
from interlock.verifiers.stepwise import StepRecord, StepwiseReader

__all__ = ["SpatialMap"]


class _Context:
    def __init__(self, problem: SpatialMapProblem) -> None:
        self.problem = problem
        self.reader = StepReader(problem)
        self.orders: Orders = self.reader.orders
        self.stepwise: StepwiseReader[MapState, MapFinding] = StepwiseReader(MapState(), self.reader.step)


class SpatialMap(SettledClaims):
    """Checks spatial-map reasoning against the map in the prompt; see the module docstring.

    - ``settle_steps``: how many steps after a claim the text has to take it back before it is judged.
    - ``require_answer``: at the end, a trace without a final answer gets ``Unknown``.
    - ``max_chars``: traces longer than this are not read (``Unknown``).
    """

    name = "spatialmap"
    description = "spatial maps (SpatialEval): directions, counts and coordinates vs what the map entails (exact)"

    @classmethod
    def applies_to(cls, prompt: str) -> bool:
        """A prompt with a spatial map ("Consider a map with multiple objects: A is to the Northeast of B. ...")."""
        return read_map(prompt) is not None

    def __init__(self, *, settle_steps: int = 2, require_answer: bool = False, max_chars: int = 400_000,
                 **options: Any) -> None:
        self.require_answer = require_answer
        super().__init__(settle_steps=settle_steps, max_chars=max_chars, **options)

    def build(self, prompt: str) -> _Context | NoProblem | str:
        problem = read_map(prompt)
        if problem is None:
            return NoProblem("no spatial map in the prompt")
        if not problem.orders().consistent():
            return "the map in the prompt contradicts itself"
        return _Context(problem)

    def judge(self, ctx: _Context, claim: MapFinding, state: TraceState) -> list[Verdict]:
        if claim.problem is None:
            return []
        return [Fail(f"'{claim.text}': {claim.problem}.", span=Span(claim.start, claim.end),
                     feedback=f"“{claim.text}” is wrong: {claim.problem}.", claim=f"{claim.kind}: {claim.text}")]

    def finish(self, ctx: _Context, state: TraceState, records: Sequence[StepRecord[MapState, MapFinding]]
               ) -> list[Verdict]:
        question = ctx.problem.question
        if question is None:
            return []
        choice = final_choice(state.text, dict(question.options))
        if choice is None:
            if self.require_answer:
                return [Unknown(reason="no final answer in the trace", span=state.step)]
            return []
        span = Span(choice.start, choice.end)
        said = choice.text.strip().rstrip(".")
        if question.kind == "direction":
            return self._direction(ctx, question.a, question.b, said, span)
        if question.kind == "object":
            return self._object(ctx, question.b, question.direction, said, dict(question.options), span)
        return self._count(ctx, question.b, question.direction, said, span)

    def _direction(self, ctx: _Context, a: str, b: str, said: str, span: Span) -> list[Verdict]:
        direction = direction_name(said)
        if direction is None:
            return [Unknown(reason=f"cannot read the final answer {said!r} as a direction", span=span)]
        truths = [(axis, sign, ctx.orders.less(axis, b, a) if sign > 0 else ctx.orders.less(axis, a, b))
                  for axis, sign in DIRECTIONS[direction]]
        wrong = [(axis, sign) for axis, sign, t in truths if t is False]
        if wrong:
            chains = [ctx.orders.chain(axis, *sorted_pair(a, b, sign, reverse=True)) for axis, sign in wrong]
            why = "; ".join(ctx.problem.statement_text(i) for i in sources(chains))
            return [Fail(f"the final answer says {a} is to the {direction} of {b}, but the map contradicts it "
                         f"({why}).", span=span, feedback=f"the map contradicts {a} being to the {direction} of "
                                                          f"{b}: {why}.", claim=f"answer: {direction}")]
        if all(t is True for _, _, t in truths) and len(truths) == 2:
            return [Pass(note=f"the map entails that {a} is to the {direction} of {b}", span=span)]
        return [Unknown(reason=f"the map neither entails nor rules out that {a} is to the {direction} of {b}",
                        span=span)]

    def _object(self, ctx: _Context, b: str, direction: str, said: str, choices: dict[str, str],
                span: Span) -> list[Verdict]:
        def truth(place: str) -> bool | None:
            values = [ctx.orders.less(axis, b, place) if sign > 0 else ctx.orders.less(axis, place, b)
                      for axis, sign in DIRECTIONS[direction]]
            if any(v is False for v in values):
                return False
            return True if all(v is True for v in values) and len(values) == 2 else None

        place = ctx.problem.place(said)
        if place is not None:
            holds = truth(place)
            if holds is False:
                return [Fail(f"the final answer is {place}, but the map rules out {place} being to the {direction} "
                             f"of {b}.", span=span, feedback=f"{place} cannot be to the {direction} of {b}.",
                             claim=f"answer: {place}")]
            if holds is True:
                return [Pass(note=f"the map entails that {place} is to the {direction} of {b}", span=span)]
            return [Unknown(reason=f"the map allows, without entailing, {place} to the {direction} of {b}",
                            span=span)]
        named = {c: p for c in choices.values() if (p := ctx.problem.place(c)) is not None}
        sure = [p for p in named.values() if truth(p) is True]
        if re.search(r"none\s+of\s+the", said, re.IGNORECASE) and sure:
            return [Fail(f"the final answer is {said!r}, but the map puts {sure[0]} to the {direction} of {b}.",
                         span=span, feedback=f"{sure[0]} is to the {direction} of {b}.", claim="answer: none")]
        if re.search(r"cannot\s+be\s+determined", said, re.IGNORECASE) and sure:
            return [Fail(f"the final answer is {said!r}, but the map determines that {sure[0]} is to the "
                         f"{direction} of {b}.", span=span, feedback=f"{sure[0]} is to the {direction} of {b}.",
                         claim="answer: undetermined")]
        return [Unknown(reason=f"the final answer {said!r} is not checked against the map", span=span)]

    def _count(self, ctx: _Context, b: str, direction: str, said: str, span: Span) -> list[Verdict]:
        numbers = re.findall(r"\d+", said)
        if len(numbers) != 1:
            return [Unknown(reason=f"cannot read the final answer {said!r} as a count", span=span)]
        n = int(numbers[0])
        surely, possibly = count_range(ctx.problem, ctx.orders, b, direction)
        if n < surely:
            return [Fail(f"the final answer is {n}, but at least {surely} places are to the {direction} of {b}.",
                         span=span, feedback=f"at least {surely} places are to the {direction} of {b}.",
                         claim=f"answer: {n}")]
        if n > possibly:
            return [Fail(f"the final answer is {n}, but at most {possibly} places can be to the {direction} of "
                         f"{b}.", span=span, feedback=f"at most {possibly} places can be to the {direction} of {b}.",
                         claim=f"answer: {n}")]
        if surely == possibly == n:
            return [Pass(note=f"exactly {n} places are to the {direction} of {b}", span=span)]
        return [Unknown(reason=f"the map allows {surely} to {possibly} places to the {direction} of {b}",
                        span=span)]
