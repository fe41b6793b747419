"""The ``maze`` verifier: a maze read from the prompt; the trace's moves, turns, counts and positions checked
against it, and its final answer against the truth.

The maze comes from the prompt (SpatialEval's text-only maze, which interwhen evaluates, or reasoning-gym's
``maze``; see :mod:`interlock.verifiers.maze.grid`). Each claim is judged as the text states it, in the
coordinates the text uses (:mod:`interlock.verifiers.maze.reading`), once ``settle_steps`` more steps have been
written, so that a claim the text takes back is not flagged. At the end the final answer (``\\boxed{C}``,
"Answer: B", or reasoning-gym's bare number) must be the right number of turns, the right yes/no about where E
is, or the length of a shortest path.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from interlock import Fail, Pass, Span, Unknown, Verdict
from interlock.verifiers.choices import final_choice
from interlock.verifiers.maze.grid import MazeGrid, read_maze
from interlock.verifiers.maze.reading import MazeFinding, MazeState, StepReader, relation_holds
from interlock.verifiers.settled import NoProblem, SettledClaims, TraceState
from interlock.verifiers.stepwise import StepRecord, StepwiseReader

__all__ = ["Maze"]

_NUMBER = re.compile(r"-?\d+")


class _Context:
    def __init__(self, maze: MazeGrid, prompt: str) -> None:
        self.maze = maze
        self.reader = StepReader(maze, prompt)
        self.stepwise: StepwiseReader[MazeState, MazeFinding] = StepwiseReader(self.reader.initial,
                                                                               self.reader.step)


class Maze(SettledClaims):
    """Checks maze reasoning against the maze in the prompt; see the module docstring.

    - ``settle_steps``: how many steps after a claim the text has to take it back before it is judged.
    - ``require_answer``: at the end, a trace without a final answer gets ``Unknown``.
    - ``max_chars``: traces longer than this are not read (``Unknown``).
    """

    name = "maze"
    description = "ASCII mazes (SpatialEval, reasoning-gym): moves, turns, counts, positions and the final answer"

    @classmethod
    def applies_to(cls, prompt: str) -> bool:
        """A prompt with a maze this verifier reads (a grid with a start and an end)."""
        return read_maze(prompt) is not None

    def __init__(self, *, settle_steps: int = 2, require_answer: bool = False, max_chars: int = 400_000,
                 **options: Any) -> None:
        self.require_answer = require_answer
        super().__init__(settle_steps=settle_steps, max_chars=max_chars, **options)

    def build(self, prompt: str) -> _Context | NoProblem | str:
        maze = read_maze(prompt)
        return _Context(maze, prompt) if maze is not None else NoProblem("no maze in the prompt")

    def judge(self, ctx: _Context, claim: MazeFinding, state: TraceState) -> list[Verdict]:
        if claim.problem is None:
            return []
        return [Fail(f"'{claim.text}': {claim.problem}.", span=Span(claim.start, claim.end),
                     feedback=f"“{claim.text}” is wrong: {claim.feedback or claim.problem}",
                     claim=f"{claim.kind}: {claim.text}")]

    def finish(self, ctx: _Context, state: TraceState, records: Sequence[StepRecord[MazeState, MazeFinding]]
               ) -> list[Verdict]:
        maze = ctx.maze
        question = maze.question
        if question is None:
            return []
        choices = dict(question.options)
        choice = final_choice(state.text, choices)
        if choice is None and maze.source == "reasoning-gym":
            tail = state.text[state.text.rfind("</think>") + 1:] if "</think>" in state.text else state.text
            numbers = list(_NUMBER.finditer(tail))
            if numbers:
                last = numbers[-1]
                offset = len(state.text) - len(tail)
                choice_text, span = last.group(), Span(offset + last.start(), offset + last.end())
                return self._judge_answer(maze, choice_text, span)
        if choice is None:
            if self.require_answer:
                return [Unknown(reason="no final answer in the trace", span=state.step)]
            return []
        return self._judge_answer(maze, choice.text, Span(choice.start, choice.end))

    def _judge_answer(self, maze: MazeGrid, said: str, span: Span) -> list[Verdict]:
        question = maze.question
        assert question is not None
        if question.kind == "relative":
            answer = said.strip().rstrip(".").lower()
            if answer not in ("yes", "no"):
                return [Unknown(reason=f"cannot read the final answer {said!r} as yes or no", span=span)]
            holds = relation_holds(question.where, *maze.relative())
            if holds is None:
                return [Unknown(reason=f"cannot read the direction asked ({question.where!r})", span=span)]
            truth = "yes" if holds else "no"
            if answer == truth:
                return [Pass(note=f"the final answer {said!r} is right", span=span)]
            dr, dc = maze.relative()
            return [Fail(f"the final answer is {said!r}, but E is {_where(dr, dc)} S, so the answer to "
                         f"{question.text!r} is {truth}.", span=span,
                         feedback=f"E is {_where(dr, dc)} S, so the answer is {truth}.", claim="answer: relative")]
        numbers = _NUMBER.findall(said)
        if len(numbers) != 1:
            return [Unknown(reason=f"cannot read the final answer {said!r} as one number", span=span)]
        value = int(numbers[0])
        expected: int | None
        if question.kind == "steps":
            expected = maze.shortest()
            what = "a shortest path from start to goal has"
            unit = "steps"
        else:
            kind = {"right_turns": "right", "left_turns": "left"}.get(question.kind, "total")
            expected = maze.count(kind)
            what = "the route marked by X makes"
            unit = f"{kind} turns" if kind != "total" else "turns"
        if expected is None:
            return [Unknown(reason="the maze's answer cannot be computed (no single marked route or no path)",
                            span=span)]
        if value == expected:
            return [Pass(note=f"the final answer {value} is right", span=span)]
        return [Fail(f"the final answer is {value}, but {what} {expected} {unit}.", span=span,
                     feedback=f"{what} {expected} {unit}, not {value}.", claim=f"answer: {value}")]


def _where(dr: int, dc: int) -> str:
    vertical = "above" if dr < 0 else "below" if dr > 0 else "level with"
    horizontal = "to the left of" if dc < 0 else "to the right of" if dc > 0 else "in the same column as"
    return f"{vertical} and {horizontal}"
