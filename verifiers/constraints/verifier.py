"""The ``constraints`` verifier: claims in the trace must stay consistent with a constraint problem (z3).

At each step it reads the claims the step makes, checks "constraints + every consistent claim so far + the new
claims" with an incremental z3 solver, and fails a claim that makes the problem unsatisfiable, naming the
claim (with its span) and the user's constraints it contradicts (the unsat core). With ``answer=`` it also
asks, on the final text, whether the final answer is *entailed*: true in every solution, not just possible.
"""

from __future__ import annotations

import bisect
import collections
import dataclasses
import inspect
import os
import re
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

from interlock import AnyOf, AtEnd, Fail, Pass, Span, StepBoundary, TraceView, Trigger, Unknown, Verdict, Verifier
from interlock.verifiers.constraints import nodes as N
from interlock.verifiers.constraints.claims import DEFAULT_HEDGES, DEFAULT_PATTERNS, Claim, ClaimPattern, ClaimReader
from interlock.verifiers.constraints.expr import ExpressionError, parse_expression
from interlock.verifiers.constraints.loader import load_spec, spec_from_dict
from interlock.verifiers.constraints.nodes import Node
from interlock.verifiers.constraints.solver import Conflict, Entailment, Session, Undecided
from interlock.verifiers.constraints.spec import ConstraintSpec
from interlock.verifiers.errors import VerifierConfigError

__all__ = ["AnswerCheck", "ClaimState", "Constraints"]

_SESSIONS: collections.OrderedDict[str, Session] = collections.OrderedDict()  # per process, by verifier token
_SESSIONS_LOCK = threading.Lock()
_MAX_SESSIONS = 16


@dataclass(frozen=True)
class AnswerCheck:
    """How to find the final answer and what it claims.

    ``pattern`` is a regex searched in the final text (the last match counts); ``claim`` is formatted with its
    named groups and read like a claim in the trace, e.g.
    ``AnswerCheck(r"(?i)final answer:\\s*(?P<who>\\w+)", "{who} lives in house 1")``.
    """

    pattern: str
    claim: str


@dataclass(frozen=True)
class ClaimState:
    """What :meth:`Constraints.check` judges: plain data, so that it can be sent to a worker process."""

    step: Span
    claims: tuple[Claim, ...]
    final: bool = False
    snapshot: bool = False  # the claims describe the whole current state (from an extractor), not a history
    answer: Claim | None = None
    answer_problem: str | None = None  # why the final answer could not be read, if it could not
    check_answer: bool = False  # judge the final answer in this check
    answer_only: bool = False  # the end-of-run check of a verifier that also checks every step


@dataclass
class _Entry:
    span: Span
    claims: tuple[Claim, ...]
    hedged: int  # what the step leaves open for the next one (ClaimReader.opens)


@dataclass
class _Branch:
    text: str
    entries: list[_Entry]


_MAX_BRANCHES = 8


def _common_prefix(a: str, b: str) -> int:
    if b.startswith(a):
        return len(a)
    if a.startswith(b):
        return len(b)
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _has_at_end(trigger: Trigger) -> bool:
    parts = trigger.triggers if isinstance(trigger, AnyOf) else (trigger,)
    return any(isinstance(t, AtEnd) for t in parts)


def _has_steps(trigger: Trigger) -> bool:
    parts = trigger.triggers if isinstance(trigger, AnyOf) else (trigger,)
    return any(isinstance(t, StepBoundary) for t in parts)


def _as_spec(spec: ConstraintSpec | Mapping[str, Any] | str | os.PathLike[str]) -> ConstraintSpec:
    if isinstance(spec, ConstraintSpec):
        return spec
    if isinstance(spec, Mapping):
        return spec_from_dict(spec)
    if isinstance(spec, str | os.PathLike):
        return load_spec(spec)
    raise VerifierConfigError(f"Constraints needs a ConstraintSpec, a mapping or a file path, got {spec!r}")


class Constraints(Verifier):
    """Checks that the claims of a trace are consistent with a constraint problem; see the module docstring.

    - ``spec``: a :class:`ConstraintSpec`, its plain-data form, or a ``.json``/``.yaml`` file.
    - ``patterns``/``extra_patterns``: how claims are written (``extra_patterns`` go before the defaults);
      ``symbolic`` also reads comparisons such as ``x + y = 10``; ``hedges`` are the words that make a
      sentence a mere possibility (no claims are read from it).
    - ``extractor``: read the state another way, e.g. ``ForkExtractor(...)``: a function of the view
      (may be async) returning a mapping ``{name: value}``, a list of statements or a statement; this
      snapshot replaces the claims read from the text.
    - ``scope``: ``"trace"`` checks each claim against the constraints and all earlier consistent claims,
      ``"step"`` against the constraints and the claims of its own step only (for traces that revise).
    - ``answer``: an :class:`AnswerCheck`; at the end (``AtEnd()`` is added to the trigger) the final answer
      must be entailed by the constraints: true in every solution.
    - ``step_seconds``: the cost bound of one step's check: every z3 call of the step together (consistency,
      unsat-core minimisation, the answer) gets at most this long, each call also at most ``solver_timeout``;
      what is left undecided when it is spent is ``Unknown``.
    """

    name = "constraints"
    runs_in = "thread"
    timeout = 30.0
    description = "claims in the trace stay consistent with a constraint problem (z3, unsat core feedback)"

    def __init__(self, spec: ConstraintSpec | Mapping[str, Any] | str | os.PathLike[str], *,
                 patterns: Sequence[ClaimPattern] | None = None, extra_patterns: Sequence[ClaimPattern] = (),
                 symbolic: bool = True, hedges: Sequence[str] = DEFAULT_HEDGES,
                 extractor: Callable[[TraceView], Any] | None = None, scope: Literal["trace", "step"] = "trace",
                 answer: AnswerCheck | None = None, minimize_core: bool = True, solver_timeout: float = 10.0,
                 step_seconds: float = 20.0, **options: Any) -> None:
        self.spec = _as_spec(spec)
        if scope not in ("trace", "step"):
            raise VerifierConfigError(f"scope must be 'trace' or 'step', got {scope!r}")
        if extractor is not None and not callable(extractor):
            raise VerifierConfigError(f"extractor {extractor!r} is not callable")
        self.scope = scope
        self.extractor = extractor
        self.minimize_core = minimize_core
        self.solver_timeout = solver_timeout
        if not step_seconds > 0:
            raise VerifierConfigError(f"step_seconds must be positive, got {step_seconds!r}")
        self.step_seconds = step_seconds
        self.reader = ClaimReader(self.spec, [*extra_patterns, *(DEFAULT_PATTERNS if patterns is None else patterns)],
                                  symbolic=symbolic, hedges=hedges)
        self.answer = answer
        self._answer_re: re.Pattern[str] | None = None
        if answer is not None:
            try:
                self._answer_re = re.compile(answer.pattern)
            except re.error as exc:
                raise VerifierConfigError(f"answer pattern {answer.pattern!r} is not a valid regex: {exc}") from None
        self._token = uuid.uuid4().hex
        self._session: Session | None = None
        self._branches: list[_Branch] = []
        self._answered: tuple[int, int] | None = None
        super().__init__(**options)
        if answer is not None and not _has_at_end(self.trigger):
            self.trigger = self.trigger | AtEnd()
        self.session()  # build the problem now: a bad or contradictory spec fails here, not mid-run

    # -- the solver ---------------------------------------------------------------------------------
    def session(self) -> Session:
        """This verifier's z3 session in the current process (made on first use, kept for the run)."""
        if self._session is None:
            with _SESSIONS_LOCK:
                session = _SESSIONS.get(self._token)
                if session is None:
                    session = Session(self.spec, timeout_ms=int(self.solver_timeout * 1000),
                                      minimize_core=self.minimize_core)
                    _SESSIONS[self._token] = session
                    while len(_SESSIONS) > _MAX_SESSIONS:
                        _SESSIONS.popitem(last=False)
                self._session = session
        return self._session

    def __getstate__(self) -> dict[str, Any]:
        # A worker process needs the plain-data problem only; z3 objects, the reader and the extraction cache
        # stay here (the worker builds its own session, once, keyed by the token).
        state = dict(self.__dict__)
        for key in ("_session", "reader", "extractor", "_answer_re"):
            state[key] = None
        state["_branches"] = []
        return state

    # -- extraction ---------------------------------------------------------------------------------
    async def extract(self, view: TraceView) -> ClaimState | Verdict:
        """Read the claims (in the event loop: cheap and incremental); the solver work happens in ``check``."""
        if self.extractor is not None:
            value = self.extractor(view)
            if inspect.isawaitable(value):
                value = await value
            if isinstance(value, Pass | Fail | Unknown):
                return value
            claims = self.claims_from(value, view.step.span)
            return ClaimState(view.step.span, tuple(claims), final=view.final, snapshot=True)
        key = (view.epoch, view.end)
        check_answer = (view.final and self.answer is not None and view.step.end == view.end
                        and self._answered != key)
        answer, problem = None, None
        if check_answer:
            self._answered = key
            answer, problem = self._read_answer(view)
        if view.final and view.step.index == -1 and _has_steps(self.trigger):
            # AtEnd's check (its step is the whole text): the steps were checked one by one already
            return ClaimState(view.step.span, (), final=True, answer=answer, answer_problem=problem,
                              check_answer=check_answer, answer_only=True)
        return ClaimState(view.step.span, self._claims_for(view), final=view.final, answer=answer,
                          answer_problem=problem, check_answer=check_answer)

    def _claims_for(self, view: TraceView) -> tuple[Claim, ...]:
        """Claims of every checked step up to the view, from a cache keyed on the text prefix.

        The cache holds a few branches (texts with the claims of their checked steps). A view continues the
        branch it shares the longest prefix with; one that diverges from it (a rollback cut the trace, or
        another run) starts a new branch with the steps before the divergence, so a late view of the removed
        text still finds its own branch and a cut drops exactly the removed claims.
        """
        text = view.text
        branch, shared = None, -1
        for b in self._branches:
            n = _common_prefix(b.text, text)
            if n > shared:
                branch, shared = b, n
        if branch is None or (shared < len(branch.text) and shared < len(text)):
            kept = [e for e in branch.entries if e.span.end <= shared] if branch is not None else []
            branch = _Branch(text, kept)
            self._branches.append(branch)
            del self._branches[:-_MAX_BRANCHES]
        elif shared == len(branch.text):
            branch.text = text
        self._branches.remove(branch)
        self._branches.append(branch)  # most recently used last
        step = view.step
        before = [e for e in branch.entries if e.span.end <= step.start]
        current = next((e for e in branch.entries if e.span == step.span), None)
        if current is None:
            last = before[-1] if before else None
            carry = last.hedged if last is not None and last.span.end == step.start else 0
            found, hedged = self.reader.read_all(step.text, step.start, after_hedge=carry)
            current = _Entry(step.span, tuple(found), hedged)
            starts = [e.span.start for e in branch.entries]
            branch.entries.insert(bisect.bisect_left(starts, step.start), current)
        return tuple(c for e in [*before, current] for c in e.claims)

    def claims_from(self, value: Any, span: Span) -> list[Claim]:
        """Claims from an extractor's answer: ``{name: value}``, a list of those or of statements, or a
        statement. Names the problem does not know are skipped."""
        out: list[Claim] = []
        if isinstance(value, Mapping):
            for key, item in value.items():
                node = self._assignment(str(key), item)
                if node is not None:
                    out.append(Claim(f"{key} = {item}", span, node, "extractor"))
        elif isinstance(value, str):
            found, _ = self.reader.read_all(value)
            out.extend(dataclasses.replace(c, span=span) for c in found)
        elif isinstance(value, list | tuple):
            for item in value:
                out.extend(self.claims_from(item, span))
        return out

    def _assignment(self, key: str, item: Any) -> Node | None:
        vocab = self.spec.vocabulary
        left = vocab.lookup(key)
        if left is None:
            return None
        right: Node | None
        if isinstance(item, bool):
            right = ("bool", item)
        elif isinstance(item, int | Fraction):
            right = N.num(item)
        elif isinstance(item, float):
            right = N.num(Fraction(str(item)))
        elif isinstance(item, str):
            right = vocab.lookup(item)
            if right is None:
                try:
                    right = N.num(Fraction(item.strip()))
                except ValueError:
                    return None
        else:
            return None
        node = N.equal(left, right)
        try:
            return node if self.spec.type_of(node) == "bool" else None
        except ExpressionError:
            return None

    def _read_answer(self, view: TraceView) -> tuple[Claim | None, str | None]:
        assert self.answer is not None and self._answer_re is not None
        matches = list(self._answer_re.finditer(view.text))
        if not matches:
            return None, f"no final answer matching {self.answer.pattern!r} in the trace"
        m = matches[-1]
        groups = {k: " ".join(v.split()) for k, v in m.groupdict().items() if v is not None}
        try:
            statement = self.answer.claim.format(**groups)
        except (KeyError, IndexError) as exc:
            return None, f"answer claim template {self.answer.claim!r} needs group {exc}"
        span = Span(m.start(), m.end())
        found, _ = self.reader.read_all(statement)
        if found:
            node = found[0].node if len(found) == 1 else ("and", tuple(c.node for c in found))
            return Claim(statement, span, node, "answer"), None
        try:
            node = parse_expression(statement, self.spec.vocabulary)
            if self.spec.type_of(node) == "bool":
                return Claim(statement, span, node, "answer"), None
        except (ExpressionError, VerifierConfigError):
            pass
        return None, f"could not read the final answer {m.group().strip()!r} as a claim ({statement!r})"

    # -- checking -----------------------------------------------------------------------------------
    def check(self, state: ClaimState | Verdict) -> list[Verdict] | Verdict:
        if isinstance(state, Pass | Fail | Unknown):
            return state
        session = self.session()
        with session.budget(self.step_seconds):
            return self._check_within_budget(session, state)

    def _check_within_budget(self, session: Session, state: ClaimState) -> list[Verdict] | Verdict:
        verdicts: list[Verdict] = []
        if state.answer_only:
            if state.check_answer:
                return self._check_answer(session, state)
            return Pass(note="the steps were checked one by one and the final answer with the last step")
        if state.snapshot:
            verdicts.extend(self._check_snapshot(session, state))
        else:
            claims = [c for c in state.claims if self.scope == "trace" or state.step.contains(c.span)]
            outcomes = session.consistency([c.node for c in claims])
            for claim, outcome in zip(claims, outcomes, strict=True):
                if not state.step.contains(claim.span):
                    continue
                if isinstance(outcome, Conflict):
                    verdicts.append(self._fail(session, claim, outcome, claims))
                elif isinstance(outcome, Undecided):
                    verdicts.append(Unknown(reason=f"{claim.text!r}: {outcome.reason}", span=claim.span))
        if state.check_answer:
            verdicts.append(self._check_answer(session, state))
        if not verdicts:
            n = sum(1 for c in state.claims if state.step.contains(c.span))
            return Pass(note=f"{n} claim(s) in this step consistent with the constraints")
        return verdicts

    def _fail(self, session: Session, claim: Claim, conflict: Conflict, claims: Sequence[Claim]) -> Fail:
        against = session.describe_conflict(conflict)
        earlier = [claims[i].text for i in conflict.claims]
        what = "; ".join(against) if against else "the constraints"
        message = f"{claim.text!r} contradicts {what}"
        said = claim.text
        if said.startswith(("The ", "A ", "An ")):
            said = said[:1].lower() + said[1:]
        feedback = f"the claim that {said} contradicts {what}"
        if earlier:
            joined = ", ".join(repr(e) for e in earlier)
            message += f", given the earlier claim(s) {joined}"
            feedback += f", given that {'; '.join(earlier)}"
        return Fail(message + ".", span=claim.span, feedback=feedback + ".",
                    claim=N.describe(claim.node, self.spec.spelling()))

    def _check_snapshot(self, session: Session, state: ClaimState) -> list[Verdict]:
        outcome = session.conflict_of([c.node for c in state.claims])
        if outcome is None:
            return []
        if isinstance(outcome, Undecided):
            return [Unknown(reason=outcome.reason, span=state.step)]
        involved = [state.claims[i].text for i in outcome.claims]
        against = "; ".join(session.describe_conflict(outcome)) or "the constraints"
        stated = ", ".join(involved) or "the current assignment"
        return [Fail(f"the current state ({stated}) contradicts {against}.", span=state.step,
                     feedback=f"{stated} contradicts {against}.", claim="state: " + " & ".join(sorted(involved)))]

    def _check_answer(self, session: Session, state: ClaimState) -> Verdict:
        if state.answer is None:
            return Unknown(reason=state.answer_problem or "no final answer found", span=state.step)
        answer = state.answer
        result: Entailment = session.entails(answer.node)
        if result.entailed:
            return Pass(note=f"the final answer {answer.text!r} follows from the constraints", span=answer.span)
        if result.undecided is not None:
            return Unknown(reason=f"final answer {answer.text!r}: {result.undecided}", span=answer.span)
        if result.contradicted and result.conflict is not None:
            against = "; ".join(session.describe_conflict(result.conflict)) or "the constraints"
            return Fail(f"the final answer ({answer.text}) contradicts {against}.", span=answer.span,
                        feedback=f"the answer {answer.text} contradicts {against}.",
                        claim="answer: " + N.describe(answer.node, self.spec.spelling()))
        shown = self._relevant(answer.node, result.counterexample or {})
        return Fail(f"the final answer ({answer.text}) does not follow from the constraints: they also allow "
                    f"{shown}.", span=answer.span,
                    feedback=f"the constraints do not force {answer.text}; they also allow {shown}.",
                    claim="answer: " + N.describe(answer.node, self.spec.spelling()))

    def _relevant(self, node: Node, model: Mapping[str, Any]) -> str:
        names: list[str] = []

        def walk(n: Any) -> None:
            if isinstance(n, tuple) and n and n[0] == "var":
                spelled = self.spec.variables[n[1]].name
                if spelled not in names:
                    names.append(spelled)
            elif isinstance(n, tuple):
                for x in n[1:]:
                    walk(x)

        walk(node)
        return ", ".join(f"{k} = {model[k]}" for k in names if k in model) or "other solutions"

    # -- direct queries -----------------------------------------------------------------------------
    def entails(self, statement: str) -> Entailment:
        """Whether ``statement`` ("Alice lives in house 1", "x + y = 10") follows from the constraints."""
        found, _ = self.reader.read_all(statement)
        if found:
            node = found[0].node if len(found) == 1 else ("and", tuple(c.node for c in found))
        else:
            node = parse_expression(statement, self.spec.vocabulary)
        return self.session().entails(node)

    def solve(self) -> dict[str, Any] | None:
        """One solution of the constraints (the user's names -> values), or None if there is none."""
        return self.session().solve()
