"""The declarative problem: variables with domains and named constraints between them, built without z3.

Python builder::

    spec = ConstraintSpec()
    spec.positions({"nationality": ["Norwegian", "Dane"], "color": ["red", "blue"]}, unit="house")
    spec.equal("Norwegian", 1, name="clue 1", text="The Norwegian lives in the first house.")
    spec.next_to("Norwegian", "blue", name="clue 2")

The same problem in a JSON or YAML file is read by :func:`interlock.verifiers.constraints.load_spec`. Every constraint
has a name; an unsatisfiable set of claims is reported with the names of the constraints it contradicts.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal

from interlock.verifiers.constraints import nodes as N
from interlock.verifiers.constraints.expr import ExpressionError, parse_expression
from interlock.verifiers.constraints.nodes import COMPARE, Node, canon
from interlock.verifiers.constraints.vocabulary import RESERVED, Vocabulary
from interlock.verifiers.errors import VerifierConfigError

__all__ = ["Constraint", "ConstraintSpec", "Operand", "Variable", "VariableKind"]

VariableKind = Literal["int", "real", "bool", "enum"]
Operand = str | int | float | Fraction | bool | tuple[Any, ...]
Type = str | frozenset[str]  # "num" | "bool" | the values an enum may take


@dataclass(frozen=True)
class Variable:
    """A variable: integer or real (optionally bounded), boolean, or one value of a finite domain (enum)."""

    name: str
    kind: VariableKind
    low: Fraction | None = None
    high: Fraction | None = None
    values: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return canon(self.name)

    def domain_text(self) -> str:
        if self.kind == "enum":
            return "{" + ", ".join(self.values) + "}"
        if self.kind == "bool":
            return "{true, false}"
        lo = "" if self.low is None else N.describe(N.num(self.low))
        hi = "" if self.high is None else N.describe(N.num(self.high))
        return f"{lo}..{hi}" if self.kind == "int" else f"the reals {lo}..{hi}"


@dataclass(frozen=True)
class Constraint:
    """A named constraint; ``text`` is the human statement it came from (a puzzle's clue), if any."""

    name: str
    node: Node
    text: str = ""


@dataclass
class ConstraintSpec:
    """Variables, aliases and named constraints: plain data that pickles (z3 is only used by the solver)."""

    variables: dict[str, Variable] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    constraints: list[Constraint] = field(default_factory=list)
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)  # positions(): group -> canonical names
    _vocab: Vocabulary | None = field(default=None, init=False, repr=False, compare=False)

    # -- declarations -------------------------------------------------------------------------------
    def _declare(self, var: Variable) -> ConstraintSpec:
        key = var.key
        if not key or key in RESERVED or key.replace(".", "", 1).isdigit():
            raise VerifierConfigError(f"{var.name!r} cannot be a variable name")
        if key in self.variables:
            raise VerifierConfigError(f"variable {var.name!r} is declared twice")
        if var.low is not None and var.high is not None and var.low > var.high:
            raise VerifierConfigError(f"variable {var.name!r}: empty range {var.low}..{var.high}")
        self.variables[key] = var
        self._vocab = None
        return self

    def integer(self, name: str, low: int | None = None, high: int | None = None) -> ConstraintSpec:
        """An integer variable, within ``[low, high]`` where given."""
        return self._declare(Variable(name, "int", _frac(low), _frac(high)))

    def real(self, name: str, low: float | Fraction | None = None,
             high: float | Fraction | None = None) -> ConstraintSpec:
        """A real (rational) variable, within ``[low, high]`` where given."""
        return self._declare(Variable(name, "real", _frac(low), _frac(high)))

    def boolean(self, name: str) -> ConstraintSpec:
        return self._declare(Variable(name, "bool"))

    def enum(self, name: str, values: Sequence[str]) -> ConstraintSpec:
        """A variable taking one of ``values`` (e.g. the colour of house 2)."""
        values = tuple(str(v) for v in values)
        if not values or len({canon(v) for v in values}) != len(values):
            raise VerifierConfigError(f"variable {name!r}: values must be non-empty and distinct")
        return self._declare(Variable(name, "enum", values=values))

    def positions(self, groups: Mapping[str, Sequence[str]], *, count: int | None = None, first: int = 1,
                  unit: str = "house") -> ConstraintSpec:
        """Zebra-style problems: each value (``"Norwegian"``, ``"red"``) is an integer variable holding the
        position (house) it is at, and the values of one group are all different.

        ``"the Norwegian lives in house 1"`` then reads as ``Norwegian = 1``, ``"house 2 is red"`` as
        ``red = 2``. ``count`` defaults to the size of the largest group.
        """
        if not groups:
            raise VerifierConfigError("positions() needs at least one group of values")
        size = count if count is not None else max(len(v) for v in groups.values())
        for group, values in groups.items():
            if len(values) > size:
                raise VerifierConfigError(f"group {group!r} has {len(values)} values for {size} {unit}s")
            for value in values:
                self.integer(str(value), first, first + size - 1)
            self.groups[str(group)] = tuple(canon(str(v)) for v in values)
            self.all_different(list(values), name=f"different {group}",
                               text=f"Each {unit} has a different {group}.")
        return self

    def alias(self, alias: str, name: str) -> ConstraintSpec:
        """Let ``alias`` (e.g. ``"the Brit"``) name the variable ``name`` in claims and expressions."""
        key = canon(name)
        if key not in self.variables:
            raise VerifierConfigError(f"alias {alias!r}: no variable named {name!r}")
        self.aliases[canon(alias)] = key
        self._vocab = None
        return self

    # -- constraints --------------------------------------------------------------------------------
    def add(self, node: Node, *, name: str | None = None, text: str = "") -> ConstraintSpec:
        """Add a constraint given as a node; every builder method ends here."""
        name = name or f"constraint {len(self.constraints) + 1}"
        if any(c.name == name for c in self.constraints):
            raise VerifierConfigError(f"two constraints are named {name!r}")
        if node[0] not in ("z3", "smt2"):
            try:
                kind = self.type_of(node)
            except ExpressionError as exc:
                raise VerifierConfigError(f"constraint {name!r}: {exc}") from None
            if kind != "bool":
                raise VerifierConfigError(f"constraint {name!r} is not a condition: {N.describe(node)}")
        self.constraints.append(Constraint(name, node, text))
        return self

    def equal(self, a: Operand, b: Operand, *, name: str | None = None, text: str = "") -> ConstraintSpec:
        return self.add(N.equal(self.operand(a), self.operand(b)), name=name, text=text)

    def different(self, a: Operand, b: Operand, *, name: str | None = None, text: str = "") -> ConstraintSpec:
        return self.add(N.different(self.operand(a), self.operand(b)), name=name, text=text)

    def next_to(self, a: Operand, b: Operand, *, name: str | None = None, text: str = "") -> ConstraintSpec:
        return self.add(N.next_to(self.operand(a), self.operand(b)), name=name, text=text)

    def distance(self, a: Operand, b: Operand, d: int, *, name: str | None = None,
                 text: str = "") -> ConstraintSpec:
        """``|a - b| = d`` (e.g. one house between them: ``d = 2``)."""
        return self.add(N.distance(self.operand(a), self.operand(b), d), name=name, text=text)

    def left_of(self, a: Operand, b: Operand, *, directly: bool = False, name: str | None = None,
                text: str = "") -> ConstraintSpec:
        """``a < b``, or ``a + 1 = b`` when ``directly``."""
        return self.add(N.left_of(self.operand(a), self.operand(b), directly=directly), name=name, text=text)

    def right_of(self, a: Operand, b: Operand, *, directly: bool = False, name: str | None = None,
                 text: str = "") -> ConstraintSpec:
        return self.add(N.right_of(self.operand(a), self.operand(b), directly=directly), name=name, text=text)

    def compare(self, a: Operand, op: str, b: Operand, *, name: str | None = None, text: str = "") -> ConstraintSpec:
        op = {"=": "==", "≠": "!=", "≤": "<=", "≥": ">="}.get(op, op)
        if op not in COMPARE:
            raise VerifierConfigError(f"unknown comparison {op!r}; expected one of {', '.join(COMPARE)}")
        return self.add((op, self.operand(a), self.operand(b)), name=name, text=text)

    def sum(self, terms: Sequence[Operand], op: str, value: Operand, *, name: str | None = None,
            text: str = "") -> ConstraintSpec:
        """``terms[0] + terms[1] + ... <op> value``."""
        if not terms:
            raise VerifierConfigError("sum() needs at least one term")
        nodes = [self.operand(t) for t in terms]
        total = nodes[0]
        for n in nodes[1:]:
            total = ("+", total, n)
        return self.compare(total, op, value, name=name, text=text)

    def all_different(self, items: Sequence[Operand], *, name: str | None = None, text: str = "") -> ConstraintSpec:
        if len(items) < 2:
            raise VerifierConfigError("all_different() needs at least two items")
        return self.add(N.all_different(tuple(self.operand(i) for i in items)), name=name, text=text)

    def expr(self, expression: str, *, name: str | None = None, text: str = "") -> ConstraintSpec:
        """A constraint in the expression language: ``"x + 2*y <= 7"``, ``"abs(a - b) = 1 or a = 3"``."""
        try:
            node = parse_expression(expression, self.vocabulary)
        except ExpressionError as exc:
            raise VerifierConfigError(f"constraint {name or expression!r}: {exc}") from None
        return self.add(node, name=name, text=text or expression)

    def z3(self, fn: Callable[[Mapping[str, Any]], Any], *, name: str | None = None,
           text: str = "") -> ConstraintSpec:
        """A raw z3 constraint: ``fn(variables)`` gets the z3 variables by name and returns a z3 BoolRef.

        ``fn`` must be a module-level function when the verifier runs in a process (it pickles by reference).
        """
        if not callable(fn):
            raise VerifierConfigError("z3() needs a function of the variables returning a z3 condition")
        return self.add(("z3", fn), name=name or getattr(fn, "__name__", None), text=text)

    def smt2(self, assertions: str, *, name: str | None = None, text: str = "") -> ConstraintSpec:
        """Raw SMT-LIB2 assertions over the declared variables (``(assert (> x 2))``); names with spaces are
        written with ``_`` instead."""
        return self.add(("smt2", assertions), name=name, text=text)

    # -- reading ------------------------------------------------------------------------------------
    @property
    def vocabulary(self) -> Vocabulary:
        vocab = self._vocab
        if vocab is None:
            values = {canon(v): v for var in self.variables.values() for v in var.values}
            vocab = Vocabulary({k: v.name for k, v in self.variables.items()}, values, self.aliases)
            self._vocab = vocab
        return vocab

    def spelling(self) -> dict[str, str]:
        """Canonical name -> the user's spelling, for messages."""
        return dict(self.vocabulary.spelling)

    def operand(self, value: Operand) -> Node:
        """Turn a builder argument (a name, a number, a node) into a node."""
        if isinstance(value, tuple):
            return value
        if isinstance(value, bool):
            return ("bool", value)
        if isinstance(value, int | Fraction):
            return N.num(value)
        if isinstance(value, float):
            return N.num(Fraction(str(value)))
        if isinstance(value, str):
            node = self.vocabulary.lookup(value)
            if node is not None:
                return node
            try:
                return N.num(Fraction(value.strip()))
            except ValueError:
                pass
            raise VerifierConfigError(f"unknown name {value!r}: declare it as a variable or a value first")
        raise VerifierConfigError(f"cannot use {value!r} ({type(value).__name__}) in a constraint")

    def type_of(self, node: Node) -> Type:
        """The type of a node (``"num"``, ``"bool"`` or the set of values an enum may take); raises
        :class:`ExpressionError` for an ill-typed node (comparing a colour with a number, say)."""
        tag = node[0]
        if tag == "var":
            var = self.variables[node[1]]
            if var.kind == "enum":
                return frozenset(canon(v) for v in var.values)
            return "bool" if var.kind == "bool" else "num"
        if tag == "val":
            return frozenset({node[1]})
        if tag == "num":
            return "num"
        if tag in ("bool", "z3", "smt2"):
            return "bool"
        if tag in ("neg", "abs"):
            self._expect(node[1], "num", tag)
            return "num"
        if tag in N.ARITH:
            self._expect(node[1], "num", tag)
            self._expect(node[2], "num", tag)
            return "num"
        if tag == "not":
            self._expect(node[1], "bool", "not")
            return "bool"
        if tag in ("and", "or"):
            for item in node[1]:
                self._expect(item, "bool", tag)
            return "bool"
        if tag in COMPARE:
            self._comparable([node[1], node[2]], ordered=tag not in ("==", "!="))
            return "bool"
        if tag == "distinct":
            self._comparable(list(node[1]), ordered=False)
            return "bool"
        raise ExpressionError(f"unknown node {tag!r}")

    def _expect(self, node: Node, kind: str, where: str) -> None:
        got = self.type_of(node)
        if got != kind:
            raise ExpressionError(f"{where} needs a {kind} operand, got {N.describe(node, self.spelling())}")

    def _comparable(self, items: list[Node], *, ordered: bool) -> None:
        types = [self.type_of(i) for i in items]
        if all(t == "num" for t in types) or (not ordered and all(t == "bool" for t in types)):
            return
        if not ordered and all(isinstance(t, frozenset) for t in types):
            for a, b in itertools.combinations(types, 2):
                if not (set(a) & set(b)):
                    raise ExpressionError("values from different domains cannot be compared: "
                                          + ", ".join(N.describe(i, self.spelling()) for i in items))
            return
        raise ExpressionError("cannot compare " + " and ".join(N.describe(i, self.spelling()) for i in items))

    def names(self) -> list[str]:
        return [c.name for c in self.constraints]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_vocab"] = None
        return state


def _frac(value: float | Fraction | int | str | None) -> Fraction | None:
    if value is None:
        return None
    if isinstance(value, float):
        return Fraction(str(value))
    try:
        return Fraction(value)
    except (ValueError, TypeError):
        raise VerifierConfigError(f"{value!r} is not a number") from None
