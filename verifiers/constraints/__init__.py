"""The ``constraints`` verifier: claims in a reasoning trace checked against a constraint problem with z3.

::

    from interlock.verifiers.constraints import Constraints, ConstraintSpec

    spec = ConstraintSpec().positions({"nationality": ["Norwegian", "Dane"], "colour": ["red", "blue"]})
    spec.equal("Norwegian", 1, name="clue 1", text="The Norwegian lives in the first house.")
    verifier = Constraints(spec)
    verifier.scan("The Dane lives in house 1.")   # Fail: contradicts clue 1 and "different nationality"

The problem is plain data (:class:`ConstraintSpec`, or a JSON/YAML file read by :func:`load_spec`); z3 is
imported only by the solver, inside the thread or process that checks.
"""

from __future__ import annotations

from interlock.verifiers.constraints.claims import DEFAULT_HEDGES, DEFAULT_PATTERNS, Claim, ClaimPattern, ClaimReader
from interlock.verifiers.constraints.expr import ExpressionError, parse_expression
from interlock.verifiers.constraints.loader import load_spec, spec_from_dict
from interlock.verifiers.constraints.nodes import Node
from interlock.verifiers.constraints.solver import Conflict, Entailment, Session, Undecided
from interlock.verifiers.constraints.spec import Constraint, ConstraintSpec, Variable
from interlock.verifiers.constraints.verifier import AnswerCheck, ClaimState, Constraints

__all__ = [
    "DEFAULT_HEDGES",
    "DEFAULT_PATTERNS",
    "AnswerCheck",
    "Claim",
    "ClaimPattern",
    "ClaimReader",
    "ClaimState",
    "Conflict",
    "Constraint",
    "ConstraintSpec",
    "Constraints",
    "Entailment",
    "ExpressionError",
    "Node",
    "Session",
    "Undecided",
    "Variable",
    "load_spec",
    "parse_expression",
    "spec_from_dict",
]
