"""The ``zebra`` verifier: a logic-grid puzzle read from the prompt into z3; every assignment the trace states is
checked against the clues, and the final grid against every clue.

The puzzle comes from the prompt (ZebraLogic, interwhen's cleaned ZebraLogic, or reasoning-gym's zebra puzzles:
see :mod:`interlock.verifiers.zebra.puzzle`) or from the constructor. Each claim the trace makes ("so the
Norwegian lives in house 1", "Peter is not in house 3", "House 2: Eric, Dane, tea", a table row, a JSON cell) is
checked against the clues alone: one that no solution of the clues allows is wrong whatever else the trace said,
and the unsat core names the clues it breaks. A claim is judged once ``settle_steps`` more steps have been
written (or at the end), so that a trace which takes it back ("wait, no") or was only supposing it ("suppose
the Brit is in house 2 ... contradiction") is not flagged (:mod:`interlock.verifiers.revisions`). At the end the
final grid (the last JSON/table/rows grid, after ``</think>`` when there is one) must satisfy every clue, and
reasoning-gym's question ("What is Name of the person who lives in House 1?") must be answered with the value
the clues force. A clue the reader cannot parse is reported as ``Unknown`` and left out, never guessed.
"""

from __future__ import annotations

import collections
import re
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from interlock import Fail, Pass, Span, Unknown, Verdict
from interlock.verifiers.constraints import nodes as N
from interlock.verifiers.constraints.solver import Conflict, Session, Undecided
from interlock.verifiers.errors import VerifierConfigError
from interlock.verifiers.revisions import unescape
from interlock.verifiers.settled import NoProblem, SettledClaims, TraceState
from interlock.verifiers.stepwise import StepRecord, StepwiseReader
from interlock.verifiers.zebra.lexicon import Entity
from interlock.verifiers.zebra.model import evaluate, spec_of
from interlock.verifiers.zebra.puzzle import ZebraPuzzle, holds, puzzle_from_json, read_puzzle
from interlock.verifiers.zebra.reading import GridCell, ReadState, TraceReader, ZebraClaim, ZebraReading

__all__ = ["Zebra"]

_THINK_END = re.compile(r"</think>", re.IGNORECASE)
_ANSWER = re.compile(r"\\boxed\{(?P<boxed>[^{}\n]{1,80})\}|<answer>(?P<tag>[^<\n]{1,80})</answer>|"
                     r"(?:final\s+)?answer\s*(?:is)?\s*[:=]?\s*\**(?P<said>[A-Za-z][\w' .-]{0,40}?)\**\s*(?:[.!\n]|$)",
                     re.IGNORECASE)
_MAX_SOLUTIONS = 64  # puzzles with at most this many solutions judge claims by evaluating them on each


class _Context:
    """Everything one puzzle needs: the puzzle, its constraint problem, the trace reader, the z3 session."""

    def __init__(self, puzzle: ZebraPuzzle) -> None:
        self.puzzle = puzzle
        self.spec, self.enc = spec_of(puzzle)
        self.reader = TraceReader(puzzle, self.enc)
        self.stepwise: StepwiseReader[ReadState, ZebraReading] = StepwiseReader(ReadState(), self.reader.step)
        self._session: Session | None = None
        self._lock = threading.Lock()
        self.outcomes: dict[Any, Conflict | Undecided | None] = {}
        self._solutions: list[dict[str, bool]] | None = None  # every solution, when there are few
        self._enumerated = False

    def session(self, timeout: float) -> Session:
        with self._lock:
            if self._session is None:
                # z3 shrinks each core itself (one call), cheaper here than shrinking by deletion
                self._session = Session(self.spec, timeout_ms=int(timeout * 1000), max_core=0)
                self._session.solver.set("core.minimize", True)
            return self._session

    def solutions(self, timeout: float) -> list[dict[str, bool]] | None:
        """Every solution of the clues read (canonical name -> house), or None when there are more than
        ``_MAX_SOLUTIONS`` or z3 could not enumerate them: then each claim goes to z3."""
        with self._lock:
            if self._enumerated:
                return self._solutions
        session = self.session(timeout)
        with session.budget(timeout):
            models = session.solutions(_MAX_SOLUTIONS)
        found = None if models is None else [{N.canon(k): bool(v) for k, v in m.items()} for m in models]
        with self._lock:
            self._solutions, self._enumerated = found, True
            return self._solutions

    def against(self, conflict: Conflict) -> str:
        """The clues a conflict names, as "clue 3 (The German is Bob); clue 9 (...)"; the structural facts (each
        value in one house, houses 1..n) are named only when no clue is involved."""
        clues = {f"clue {c.number}": c for c in self.puzzle.clues}
        named = [f"{name} ({clues[name].text.rstrip('.')})" for name in conflict.constraints if name in clues]
        if named:
            return "; ".join(named)
        if any(name.startswith("domain of") for name in conflict.constraints):
            return f"the houses (there are {self.puzzle.houses}, numbered 1 to {self.puzzle.houses})"
        return "the rule that each value is in exactly one house"

    def judge(self, node: Any, timeout: float, budget: float) -> Conflict | Undecided | None:
        with self._lock:
            if node in self.outcomes:
                return self.outcomes[node]
        solutions = self.solutions(timeout)
        if solutions is not None and any(evaluate(node, env) for env in solutions):
            outcome: Conflict | Undecided | None = None  # true in a solution: consistent with the clues
        else:
            session = self.session(timeout)
            with session.budget(budget):
                outcome = session.conflict_of([node])
        if not isinstance(outcome, Undecided):
            with self._lock:
                self.outcomes[node] = outcome
        return outcome


class Zebra(SettledClaims):
    """Checks logic-grid reasoning against the puzzle's clues; see the module docstring.

    - ``puzzle``: a :class:`ZebraPuzzle`, a prompt to read it from, or its plain-data form (``{"houses": 3,
      "features": {...}, "clues": [...]}``); None reads each run's prompt.
    - ``settle_steps``: how many steps after a claim the text has to take it back before it is judged.
    - ``require_answer``: at the end, a trace without a final grid (or answer) gets ``Unknown``.
    - ``solver_timeout``/``step_seconds``: z3's bound per call and per check (past it: ``Unknown``).
    - ``max_chars``: traces longer than this are not read (``Unknown``).
    """

    name = "zebra"
    description = ("logic-grid puzzles (ZebraLogic, reasoning-gym): each stated assignment and the final grid "
                   "against the clues (z3)")

    @classmethod
    def applies_to(cls, prompt: str) -> bool:
        """A prompt that states a logic-grid puzzle this verifier can read (houses, features, clues)."""
        try:
            puzzle = read_puzzle(prompt)
        except VerifierConfigError:
            return False
        return puzzle is not None and any(c.read for c in puzzle.clues)

    def __init__(self, puzzle: ZebraPuzzle | str | Mapping[str, Any] | None = None, *, settle_steps: int = 2,
                 require_answer: bool = False, solver_timeout: float = 5.0, step_seconds: float = 10.0,
                 max_chars: int = 400_000, **options: Any) -> None:
        if isinstance(puzzle, str):
            read = read_puzzle(puzzle)
            if read is None:
                raise VerifierConfigError("Zebra: no logic-grid puzzle in the text given")
            puzzle = read
        elif isinstance(puzzle, Mapping):
            puzzle = puzzle_from_json(puzzle)
        if puzzle is not None and not isinstance(puzzle, ZebraPuzzle):
            raise VerifierConfigError(f"Zebra: puzzle must be a ZebraPuzzle, a prompt or a mapping, got {puzzle!r}")
        self.puzzle = puzzle
        self.require_answer = require_answer
        self.solver_timeout = solver_timeout
        self.step_seconds = step_seconds
        super().__init__(settle_steps=settle_steps, max_chars=max_chars, **options)
        if puzzle is not None:
            self._fixed: _Context | None = _Context(puzzle)  # a bad puzzle fails here, not mid-run
            self._fixed.session(self.solver_timeout)
        else:
            self._fixed = None

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_fixed"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        if self.puzzle is not None:
            self._fixed = _Context(self.puzzle)

    def build(self, prompt: str) -> _Context | NoProblem | str:
        if self._fixed is not None:
            return self._fixed
        puzzle = read_puzzle(prompt)
        return _Context(puzzle) if puzzle is not None else NoProblem("no logic-grid puzzle in the prompt")

    def claims(self, ctx: _Context, record: StepRecord[ReadState, ZebraReading]) -> list[ZebraClaim]:
        return [c for item in record.items for c in item.claims]

    def judge(self, ctx: _Context, claim: ZebraClaim, state: TraceState) -> list[Verdict]:
        return self._judge(ctx, claim)

    def _judge(self, ctx: _Context, claim: ZebraClaim) -> list[Verdict]:
        outcome = ctx.judge(claim.node, self.solver_timeout, self.step_seconds)
        if outcome is None:
            return []
        if isinstance(outcome, Undecided):
            return [Unknown(reason=f"'{claim.text}': {outcome.reason}", span=claim.span)]
        against = ctx.against(outcome)
        return [Fail(f"'{claim.text}' contradicts {against}.", span=claim.span,
                     feedback=f"“{claim.text}” contradicts {against}.",
                     claim=N.describe(claim.node, ctx.spec.spelling()))]

    # -- the end: unread clues and the final answer -----------------------------------------------------
    def finish(self, ctx: _Context, state: TraceState, records: Sequence[StepRecord[ReadState, ZebraReading]]
               ) -> list[Verdict]:
        out: list[Verdict] = []
        puzzle = ctx.puzzle
        if puzzle.unread:
            listed = "; ".join(f"clue {c.number} {c.text!r} ({c.problem})" for c in puzzle.unread)
            out.append(Unknown(reason=f"clue(s) not read, so not checked: {listed}", span=state.step))
        think = list(_THINK_END.finditer(state.text))
        region = think[-1].end() if think else 0
        cells = [c for r in records for item in r.items for c in item.cells if c.span.start >= region]
        if cells:
            block = cells[-1].block
            out.extend(self._check_grid(ctx, [c for c in cells if c.block == block], state))
        elif puzzle.question is not None:
            out.extend(self._check_question(ctx, state, region))
        elif self.require_answer:
            out.append(Unknown(reason="no final grid in the trace", span=state.step))
        return out

    def _check_grid(self, ctx: _Context, cells: list[GridCell], state: TraceState) -> list[Verdict]:
        puzzle = ctx.puzzle
        span = Span(min(c.span.start for c in cells), max(c.span.end for c in cells))
        houses: dict[Entity, set[int]] = collections.defaultdict(set)
        slots: dict[tuple[int, int], set[Entity]] = collections.defaultdict(set)
        for c in cells:
            houses[c.entity].add(c.house)
            slots[(c.entity.feature, c.house)].add(c.entity)
        twice = [e for e, hs in houses.items() if len(hs) > 1]
        crowded = [(f, h) for (f, h), es in slots.items() if len(es) > 1]
        if twice or crowded:
            parts = [f"{puzzle.shown(e)} is in houses {', '.join(map(str, sorted(houses[e])))}" for e in twice]
            parts += [f"house {h} has two {puzzle.features[f].key} values "
                      f"({', '.join(sorted(e.value for e in slots[(f, h)]))})" for f, h in crowded]
            what = "; ".join(parts)
            return [Fail(f"the final grid puts a value in two places: {what}.", span=span,
                         feedback=f"in the final grid {what}; each value belongs to exactly one house.",
                         claim="answer: duplicates")]
        position = {e: next(iter(hs)) for e, hs in houses.items()}
        complete = len(position) == len(puzzle.entities())
        if not complete:
            nodes = [ctx.enc.at(e, h) for e, h in position.items()]
            session = ctx.session(self.solver_timeout)
            with session.budget(self.step_seconds):
                outcome = session.conflict_of(nodes)
            if isinstance(outcome, Conflict):
                against = ctx.against(outcome)
                return [Fail(f"the final grid contradicts {against}.", span=span,
                             feedback=f"the final grid contradicts {against}.", claim="answer: partial grid")]
            missing = len(puzzle.entities()) - len(position)
            if any(c.span.start < span.end for c in cells) and _json_answer(state.text, span):
                return [Fail(f"the final grid leaves {missing} cell(s) empty.", span=span,
                             feedback=f"the final grid is incomplete: {missing} cell(s) have no value.",
                             claim="answer: incomplete")]
            return [Pass(note=f"the final grid ({len(position)} of {len(puzzle.entities())} cells) is consistent "
                              "with the clues", span=span)]
        broken = [c for c in puzzle.clues if c.read and holds(c, position) is False]
        if broken:
            listed = "; ".join(f"clue {c.number} ({c.text.rstrip('.')})" for c in broken)
            return [Fail(f"the final grid breaks {listed}.", span=span,
                         feedback=f"the final grid breaks {listed}.",
                         claim="answer breaks " + ",".join(str(c.number) for c in broken))]
        read = sum(1 for c in puzzle.clues if c.read)
        if puzzle.unread:
            return [Unknown(reason=f"the final grid satisfies the {read} clue(s) read; "
                                   f"{len(puzzle.unread)} could not be read", span=span)]
        return [Pass(note=f"the final grid satisfies all {read} clues", span=span)]

    def _check_question(self, ctx: _Context, state: TraceState, region: int) -> list[Verdict]:
        puzzle = ctx.puzzle
        question = puzzle.question
        assert question is not None
        text = unescape(state.text)
        found = list(_ANSWER.finditer(text, region))
        said, span = None, None
        if found:
            m = found[-1]
            group = next(g for g in ("boxed", "tag", "said") if m.group(g) is not None)
            said, span = m.group(group), Span(m.start(group), m.end(group))
        else:
            lines = [(mm.start(), mm.group()) for mm in re.finditer(r"[^\n]+", text[region:])]
            if lines and len(lines[-1][1].split()) <= 3:
                start = region + lines[-1][0]
                said, span = lines[-1][1], Span(start, start + len(lines[-1][1]))
        if said is None or span is None:
            return [Unknown(reason=f"no final answer to {question.text!r}", span=state.step)]
        clean = said.strip().strip("*.`").strip()
        value = puzzle.lexicon.value_of(clean, question.feature)
        if value is None:
            resolved = puzzle.lexicon.resolve(clean, feature=question.feature)
            value = resolved.entity.value if resolved.entity is not None else None
        if value is None:
            return [Unknown(reason=f"cannot read the final answer {clean!r} as a "
                                   f"{puzzle.features[question.feature].key}", span=span)]
        entity = Entity(question.feature, value)
        node = ctx.enc.at(entity, question.house)
        outcome = ctx.judge(node, self.solver_timeout, self.step_seconds)
        if isinstance(outcome, Undecided):
            return [Unknown(reason=f"final answer {value!r}: {outcome.reason}", span=span)]
        if isinstance(outcome, Conflict):
            against = ctx.against(outcome)
            return [Fail(f"the final answer {value!r} (in house {question.house}) contradicts {against}.",
                         span=span, feedback=f"“{value} lives in house {question.house}” contradicts {against}.",
                         claim=f"answer: {value}")]
        return [Pass(note=f"the final answer {value!r} is consistent with the clues", span=span)]


def _json_answer(text: str, span: Span) -> bool:
    """Whether the grid at ``span`` is written as JSON (the answer format that asks for every cell)."""
    return '"House' in text[max(0, span.start - 200):span.end] or '"house' in text[max(0, span.start - 200):span.end]
