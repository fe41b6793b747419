"""The names a problem knows (variables, their aliases, domain values) and a regex that finds them in text.

Claims and expressions are read only through this vocabulary, so a phrase naming something the problem does
not know is never turned into a claim (a verifier must not flag what it did not understand).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from interlock.verifiers.constraints.nodes import Node, canon
from interlock.verifiers.errors import VerifierConfigError

__all__ = ["RESERVED", "Vocabulary", "term_regex"]

RESERVED = frozenset({"and", "or", "not", "abs", "true", "false", "the"})


def term_regex(terms: Iterable[str]) -> str:
    """Alternation matching any of ``terms`` (canonical) as whole words, any spacing, longest first."""
    alts = sorted(set(terms), key=lambda t: (-len(t), t))
    parts = [r"\s+".join(re.escape(w) for w in t.split()) for t in alts]
    if not parts:
        return r"(?!x)x"
    return r"(?<![\w])(?:" + "|".join(parts) + r")(?![\w])"


class Vocabulary:
    """Canonical term -> node, plus the user's spelling of each name for messages."""

    def __init__(self, variables: Mapping[str, str], values: Mapping[str, str],
                 aliases: Mapping[str, str]) -> None:
        # variables/values: canonical -> user spelling; aliases: canonical alias -> canonical variable
        self.terms: dict[str, Node] = {}
        self.spelling: dict[str, str] = {}
        for key, spelled in variables.items():
            self.terms[key] = ("var", key)
            self.spelling[key] = spelled
        for key, spelled in values.items():
            if key in self.terms:
                raise VerifierConfigError(f"{spelled!r} is both a variable and a value; rename one of them")
            self.terms[key] = ("val", key)
            self.spelling[key] = spelled
        for alias, target in aliases.items():
            if alias in self.terms and self.terms[alias] != ("var", target):
                raise VerifierConfigError(f"alias {alias!r} is already the name of something else")
            self.terms[alias] = ("var", target)
        self.pattern = re.compile(term_regex(self.terms), re.IGNORECASE)

    def lookup(self, text: str) -> Node | None:
        return self.terms.get(canon(text))
