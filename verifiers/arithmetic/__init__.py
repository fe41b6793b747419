"""Arithmetic verifier: extracts the calculations a step states and checks them exactly with sympy.

``Arithmetic()`` is the verifier (registered as ``arithmetic``); ``check_text(text)`` judges one text offline.
The pieces: ``lexer`` (tokens with offsets), ``parse`` (a safe parser with limits), ``evaluate`` (exact sympy
values), ``extract`` (claims and their spans), ``numbers`` (literals and the rounding rule), ``judge``.

Rounding rule: a stated value passes when it equals the exact value, or is the exact value rounded or
truncated to the number of decimals it is written with (``1/3 = 0.33`` passes, ``1/3 = 0.35`` fails); see
:mod:`interlock.verifiers.arithmetic.numbers`.
"""

from __future__ import annotations

from interlock.verifiers.arithmetic.errors import NotChecked, TooComplex
from interlock.verifiers.arithmetic.extract import Claim, Context, context_of, extract_claims
from interlock.verifiers.arithmetic.judge import Judgement, judge
from interlock.verifiers.arithmetic.numbers import consistent, parse_literal
from interlock.verifiers.arithmetic.parse import Limits, parse_expression
from interlock.verifiers.arithmetic.verifier import Arithmetic, Finding, StepInContext, check_text, wrong_claims

__all__ = [
    "Arithmetic",
    "Claim",
    "Context",
    "Finding",
    "Judgement",
    "Limits",
    "NotChecked",
    "StepInContext",
    "TooComplex",
    "check_text",
    "consistent",
    "context_of",
    "extract_claims",
    "judge",
    "parse_expression",
    "parse_literal",
    "wrong_claims",
]
