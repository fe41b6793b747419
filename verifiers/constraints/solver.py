"""The z3 side: one incremental solver per problem, claims switched on and off by assumption literals.

Every constraint and every distinct claim gets a literal ``l`` and the solver holds ``l => constraint``.
Checking a sequence of claims is a check under the assumptions "all constraints + these claims", so a
long trace adds one literal per new claim instead of rebuilding, and a rollback (a different sequence) only
changes which literals are assumed. The verdicts of the last sequence are remembered, so a check that extends
it (the next step) only decides the new claims. The unsat core maps back to the user's constraint names.

z3 is imported here only, and a :class:`Session` (its own z3 context) lives in the process that made it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from interlock.verifiers.constraints import nodes as N
from interlock.verifiers.constraints.nodes import Node
from interlock.verifiers.constraints.spec import Constraint, ConstraintSpec
from interlock.verifiers.errors import VerifierConfigError

__all__ = ["Conflict", "Entailment", "Session", "Undecided"]

_MAX_CORE_MINIMIZE = 40


@dataclass(frozen=True)
class Conflict:
    """Why a claim cannot hold: the user's constraints and the earlier claims (by index) it contradicts."""

    constraints: tuple[str, ...]
    claims: tuple[int, ...] = ()


@dataclass(frozen=True)
class Undecided:
    """z3 could not decide (timeout, non-linear arithmetic); the claim is neither passed nor failed."""

    reason: str


@dataclass(frozen=True)
class Entailment:
    """Whether a statement follows from the problem (and the given claims).

    ``entailed``: it holds in every solution. ``contradicted``: it holds in none (``conflict`` says why).
    Otherwise ``counterexample`` is a solution where it is false.
    """

    entailed: bool
    contradicted: bool = False
    conflict: Conflict | None = None
    counterexample: dict[str, Any] | None = None
    undecided: str | None = None


Outcome = Conflict | Undecided | None


class Session:
    """A z3 solver for one :class:`ConstraintSpec`; methods are thread-safe (one lock per session)."""

    def __init__(self, spec: ConstraintSpec, *, timeout_ms: int = 10_000, minimize_core: bool = True,
                 max_claims: int = 20_000, max_core: int = _MAX_CORE_MINIMIZE) -> None:
        import z3

        self._z3 = z3
        self.spec = spec
        self.minimize_core = minimize_core
        self.max_core = max_core  # cores larger than this are reported as found (minimising costs a check each)
        self.max_claims = max_claims
        self.lock = threading.RLock()
        self.timeout_ms = int(timeout_ms)
        self.deadline: float | None = None  # the end of the current step's time budget (see ``budget``)
        self.checks = 0  # solver calls made, for benchmarks and tests
        self.resets = 0  # times the claim literals were dropped because there were too many
        self._setup()
        result = self._check(self._base)
        if result == z3.unsat:
            core = self._minimize(list(self.solver.unsat_core()), None)
            names = ", ".join(repr(self._tracked[x].name) for x in core if x in self._tracked)
            raise VerifierConfigError(f"the constraints contradict each other: {names}")

    def _setup(self) -> None:
        """A fresh context and solver holding the constraints (claims come later, one literal each)."""
        z3 = self._z3
        self.ctx = z3.Context()
        self.solver = z3.Solver(ctx=self.ctx)
        self.solver.set("timeout", self.timeout_ms)
        self.vars: dict[str, Any] = {}
        self._value_ids: dict[str, int] = {}
        self._value_names: dict[int, str] = {}
        self._tracked: dict[Any, Constraint] = {}  # literal -> constraint
        self._base: list[Any] = []
        self._claim_lits: dict[Node, Any] = {}
        self._lit_claim: dict[Any, Node] = {}
        self._history: list[tuple[Node, Outcome]] = []
        self._declare()
        self._domains = self._domain_constraints()
        for c in self._domains + list(self.spec.constraints):
            try:
                expr = self.build(c.node)
            except VerifierConfigError as exc:
                raise VerifierConfigError(f"constraint {c.name!r}: {exc}") from None
            lit = z3.Bool(f"k!{len(self._base)}", self.ctx)
            self.solver.add(z3.Implies(lit, expr))
            self._tracked[lit] = c
            self._base.append(lit)

    # -- building -----------------------------------------------------------------------------------
    def _declare(self) -> None:
        z3 = self._z3
        values = sorted({N.canon(v) for var in self.spec.variables.values() for v in var.values})
        self._value_ids = {v: i for i, v in enumerate(values)}
        self._value_names = {i: v for v, i in self._value_ids.items()}
        for key, var in self.spec.variables.items():
            label = var.name
            if var.kind in ("int", "enum"):
                self.vars[key] = z3.Int(label, self.ctx)
            elif var.kind == "real":
                self.vars[key] = z3.Real(label, self.ctx)
            else:
                self.vars[key] = z3.Bool(label, self.ctx)

    def _domain_constraints(self) -> list[Constraint]:
        out: list[Constraint] = []
        for key, var in self.spec.variables.items():
            v: Node = ("var", key)
            parts: list[Node] = []
            if var.kind == "enum":
                parts = [("or", tuple(("==", v, ("val", N.canon(x))) for x in var.values))]
            else:
                if var.low is not None:
                    parts.append((">=", v, N.num(var.low)))
                if var.high is not None:
                    parts.append(("<=", v, N.num(var.high)))
            if parts:
                node = parts[0] if len(parts) == 1 else ("and", tuple(parts))
                out.append(Constraint(f"domain of {var.name}", node, f"{var.name} is in {var.domain_text()}"))
        return out

    def build(self, node: Node) -> Any:
        """Turn a node into a z3 expression in this session's context."""
        z3 = self._z3
        tag = node[0]
        try:
            if tag == "var":
                return self.vars[node[1]]
            if tag == "val":
                return z3.IntVal(self._value_ids[node[1]], self.ctx)
            if tag == "num":
                f = Fraction(node[1])
                if f.denominator == 1:
                    return z3.IntVal(f.numerator, self.ctx)
                return z3.RealVal(f"{f.numerator}/{f.denominator}", self.ctx)
            if tag == "bool":
                return z3.BoolVal(bool(node[1]), self.ctx)
            if tag == "neg":
                return -self.build(node[1])
            if tag == "abs":
                a = self.build(node[1])
                return z3.If(a >= 0, a, -a)
            if tag == "not":
                return z3.Not(self.build(node[1]))
            if tag in ("and", "or"):
                items = [self.build(x) for x in node[1]]
                return z3.And(*items) if tag == "and" else z3.Or(*items)
            if tag == "distinct":
                return z3.Distinct(*[self.build(x) for x in node[1]])
            if tag == "z3":
                named = {**self.vars, **{var.name: self.vars[k] for k, var in self.spec.variables.items()}}
                out = node[1](named)
                if not z3.is_bool(out):
                    raise VerifierConfigError(f"{N.describe(node)} returned {out!r}, not a z3 condition")
                return out
            if tag == "smt2":
                decls = {var.name.replace(" ", "_"): self.vars[k] for k, var in self.spec.variables.items()}
                vector = z3.parse_smt2_string(node[1], decls=decls, ctx=self.ctx)
                return z3.And(*list(vector)) if len(vector) != 1 else vector[0]
            a, b = self.build(node[1]), self.build(node[2])
            if tag == "+":
                return a + b
            if tag == "-":
                return a - b
            if tag == "*":
                return a * b
            if tag == "/":
                return z3.ToReal(a) / z3.ToReal(b) if a.is_int() and b.is_int() else a / b
            return {"==": lambda: a == b, "!=": lambda: a != b, "<": lambda: a < b, "<=": lambda: a <= b,
                    ">": lambda: a > b, ">=": lambda: a >= b}[tag]()
        except VerifierConfigError:
            raise
        except (z3.Z3Exception, KeyError, TypeError, AttributeError) as exc:
            raise VerifierConfigError(f"cannot build {N.describe(node)}: {exc}") from None

    def claim_literal(self, node: Node) -> Any | None:
        """The literal that switches ``node`` on (made once per distinct claim); None if it cannot be built."""
        lit = self._claim_lits.get(node)
        if lit is None and node not in self._claim_lits:
            try:
                expr = self.build(node)
            except VerifierConfigError:
                self._claim_lits[node] = None
                return None
            lit = self._z3.Bool(f"c!{len(self._claim_lits)}", self.ctx)
            self.solver.add(self._z3.Implies(lit, expr))
            self._claim_lits[node] = lit
            self._lit_claim[lit] = node
        return lit

    # -- queries ------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def budget(self, seconds: float | None) -> Iterator[None]:
        """Bound every solver call made inside to ``seconds`` in all (each call also to ``timeout_ms``): past it
        a call answers "unknown" at once, so a step's claims come out ``Undecided``, never a long wait."""
        with self.lock:
            self.deadline = None if seconds is None else time.perf_counter() + seconds
            try:
                yield
            finally:
                self.deadline = None

    def _check(self, assumptions: Sequence[Any]) -> Any:
        timeout = self.timeout_ms
        if self.deadline is not None:
            left = int((self.deadline - time.perf_counter()) * 1000)
            if left <= 0:
                self._spent = True
                return self._z3.unknown
            timeout = min(timeout, left)
        self._spent = False
        self.checks += 1
        self.solver.set("timeout", timeout)
        return self.solver.check(*assumptions)

    def _unknown_reason(self) -> str:
        if getattr(self, "_spent", False):
            return "the step's time budget is spent"
        return str(self.solver.reason_unknown())

    def _minimize(self, core: list[Any], keep: Any | None) -> list[Any]:
        """Shrink an unsat core by deletion so that it names only what the contradiction needs."""
        if not self.minimize_core or len(core) > self.max_core:
            return core
        core = list(core)
        n_domains = len(self._domains)
        # Try to drop structural facts (domains) first, then earlier claims, so that the core keeps the user's
        # named constraints where a choice exists.
        order = sorted(core, key=lambda x: (0 if x in self._base[:n_domains] else 1 if x in self._lit_claim else 2))
        for lit in order:
            if lit is keep or lit not in core:
                continue
            trial = [x for x in core if x is not lit]
            if self._check(trial) == self._z3.unsat:
                smaller = set(map(str, self.solver.unsat_core()))
                core = [x for x in trial if str(x) in smaller] or trial
        return core

    def _conflict(self, core: Sequence[Any], claims: Sequence[Node], kept: Sequence[int]) -> Conflict:
        # the user's constraints in their order, then the domains they rely on
        # (literals are matched by name: comparing z3 terms goes through z3 for each pair, which is slow on
        # problems with hundreds of constraints)
        in_core_names = {str(x) for x in core}
        named = [c for lit, c in self._tracked.items() if str(lit) in in_core_names]
        domains = set(map(id, self._domains))
        named.sort(key=lambda c: id(c) in domains)
        names = tuple(c.name for c in named)
        in_core = {node for lit, node in self._lit_claim.items() if str(lit) in in_core_names}
        return Conflict(names, tuple(i for i in kept if claims[i] in in_core))

    def consistency(self, claims: Sequence[Node]) -> list[Outcome]:
        """For each claim in order: ``None`` when it is consistent with the constraints and the earlier
        consistent claims, a :class:`Conflict` when it is not, :class:`Undecided` when z3 could not tell.

        Claims that contradict are left out of what later claims are checked against, so one error is
        reported once, at the claim that made it.
        """
        z3 = self._z3
        with self.lock:
            if len(self._claim_lits) > self.max_claims:
                # a long-lived verifier (many runs) would otherwise keep every claim it ever saw
                self._setup()
                self.resets += 1
            k = 0
            while k < min(len(claims), len(self._history)) and self._history[k][0] == claims[k]:
                k += 1
            outcomes: list[Outcome] = [h[1] for h in self._history[:k]]
            kept = [i for i in range(k) if outcomes[i] is None and self.claim_literal(claims[i]) is not None]
            kept_lits = [self.claim_literal(claims[i]) for i in kept]
            rest = list(range(k, len(claims)))
            rest_lits = {i: self.claim_literal(claims[i]) for i in rest}
            if rest and self._check(self._base + kept_lits + [x for x in rest_lits.values() if x is not None]) \
                    == z3.sat:
                outcomes.extend([None] * len(rest))
            else:
                for i in rest:
                    lit = rest_lits[i]
                    if lit is None:
                        outcomes.append(None)
                        continue
                    result = self._check([*self._base, *kept_lits, lit])
                    if result == z3.sat:
                        kept.append(i)
                        kept_lits.append(lit)
                        outcomes.append(None)
                    elif result == z3.unsat:
                        core = self._minimize(list(self.solver.unsat_core()), lit)
                        outcomes.append(self._conflict(core, claims, kept))
                    else:
                        outcomes.append(Undecided(f"z3 could not decide: {self._unknown_reason()}"))
            self._history = list(zip(claims, outcomes, strict=True))
            return outcomes

    def conflict_of(self, claims: Sequence[Node]) -> Conflict | Undecided | None:
        """Whether the claims all hold together with the constraints; if not, the core (no blame order)."""
        z3 = self._z3
        with self.lock:
            lits = [x for x in (self.claim_literal(n) for n in claims) if x is not None]
            result = self._check(self._base + lits)
            if result == z3.sat:
                return None
            if result == z3.unsat:
                core = self._minimize(list(self.solver.unsat_core()), None)
                return self._conflict(core, claims, range(len(claims)))
            return Undecided(f"z3 could not decide: {self._unknown_reason()}")

    def entails(self, node: Node, given: Sequence[Node] = ()) -> Entailment:
        """Whether ``node`` holds in every solution of the constraints (plus ``given`` claims)."""
        z3 = self._z3
        with self.lock:
            try:
                expr = self.build(node)
            except VerifierConfigError as exc:
                return Entailment(False, undecided=str(exc))
            lits = [x for x in (self.claim_literal(n) for n in given) if x is not None]
            self.solver.push()
            try:
                self.solver.add(z3.Not(expr))
                result = self._check(self._base + lits)
                model = self._decode(self.solver.model()) if result == z3.sat else None
            finally:
                self.solver.pop()
            if result == z3.unsat:
                return Entailment(True)
            if result != z3.sat:
                return Entailment(False, undecided=f"z3 could not decide: {self._unknown_reason()}")
            lit = self.claim_literal(node)
            if lit is not None and self._check([*self._base, *lits, lit]) == z3.unsat:
                core = self._minimize(list(self.solver.unsat_core()), lit)
                conflict = self._conflict(core, list(given), list(range(len(given))))
                return Entailment(False, contradicted=True, conflict=conflict, counterexample=model)
            return Entailment(False, counterexample=model)

    def solve(self, given: Sequence[Node] = ()) -> dict[str, Any] | None:
        """One solution (user's names -> values), or None when there is none."""
        with self.lock:
            lits = [x for x in (self.claim_literal(n) for n in given) if x is not None]
            if self._check(self._base + lits) != self._z3.sat:
                return None
            return self._decode(self.solver.model())

    def solutions(self, limit: int, given: Sequence[Node] = ()) -> list[dict[str, Any]] | None:
        """Every solution (user's names -> values) when there are at most ``limit``; None when there are more, or
        z3 could not decide (a problem with few solutions can then judge claims by evaluating them on each)."""
        z3 = self._z3
        with self.lock:
            lits = [x for x in (self.claim_literal(n) for n in given) if x is not None]
            found: list[dict[str, Any]] = []
            self.solver.push()
            try:
                while True:
                    result = self._check(self._base + lits)
                    if result == z3.unsat:
                        return found
                    if result != z3.sat or len(found) == limit:
                        return None
                    model = self.solver.model()
                    found.append(self._decode(model))
                    self.solver.add(z3.Or([v != model.eval(v, model_completion=True) for v in self.vars.values()]))
            finally:
                self.solver.pop()

    def count_solutions(self, limit: int = 2, given: Sequence[Node] = ()) -> int:
        """How many solutions there are, counting up to ``limit`` (``limit=2`` asks "is it unique?")."""
        z3 = self._z3
        with self.lock:
            lits = [x for x in (self.claim_literal(n) for n in given) if x is not None]
            found = 0
            self.solver.push()
            try:
                while found < limit and self._check(self._base + lits) == z3.sat:
                    found += 1
                    model = self.solver.model()
                    self.solver.add(z3.Or([v != model.eval(v, model_completion=True) for v in self.vars.values()]))
            finally:
                self.solver.pop()
            return found

    def _decode(self, model: Any) -> dict[str, Any]:
        z3 = self._z3
        out: dict[str, Any] = {}
        for key, var in self.spec.variables.items():
            value = model.eval(self.vars[key], model_completion=True)
            if var.kind == "enum":
                name = self._value_names.get(value.as_long())
                out[var.name] = next((v for v in var.values if N.canon(v) == name), name)
            elif var.kind == "int":
                out[var.name] = value.as_long()
            elif var.kind == "real":
                out[var.name] = Fraction(value.as_fraction()) if z3.is_rational_value(value) else str(value)
            else:
                out[var.name] = z3.is_true(value)
        return out

    def describe_conflict(self, conflict: Conflict) -> list[str]:
        """The constraints of a conflict as ``name (text)`` strings, for messages."""
        by_name: Mapping[str, Constraint] = {c.name: c for c in self._tracked.values()}
        out = []
        for name in conflict.constraints:
            c = by_name.get(name)
            text = c.text if c is not None and c.text else (N.describe(c.node, self.spec.spelling()) if c else "")
            out.append(f"{name} ({text.rstrip('.')})" if text and text != name else name)
        return out
