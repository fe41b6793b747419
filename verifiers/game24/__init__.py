"""The ``game24`` verifier and an exact Game of 24 solver.

::

    from interlock.verifiers.game24 import Game24, solve

    Game24([4, 9, 10, 13]).scan("13 - 9 = 4 (left: 4 4 10)\\n")   # -> [Pass()]
    solve([4, 9, 10, 13])                                          # -> '(10 - 4) * (13 - 9)' or another one
"""

from __future__ import annotations

from interlock.verifiers.game24.arith import ExpressionError, Leaf, Parsed, parse_expression
from interlock.verifiers.game24.solver import solvable, solve
from interlock.verifiers.game24.verifier import Game24, Game24State, numbers_from_prompt

__all__ = [
    "ExpressionError",
    "Game24",
    "Game24State",
    "Leaf",
    "Parsed",
    "numbers_from_prompt",
    "parse_expression",
    "solvable",
    "solve",
]
