"""Reading claims out of reasoning text: "the Norwegian lives in house 1", "house 2 is red", "x = 3".

A :class:`ClaimPattern` is a regular expression with placeholders: ``{a}`` and ``{b}`` match a name the
problem knows (a variable, an alias or a value, optionally after "the"), ``{n}`` a position (``2``, ``2nd``,
``second``) and ``{num}`` a number. Symbolic comparisons over known names (``x + y = 10``) are read by the
expression language. Users add patterns of their own::

    ClaimPattern(r"{a} owns the {b}", "equal")

Soundness first: a phrase that names anything unknown is no claim, and a sentence that only entertains a
possibility ("if", "suppose", "maybe", "or", a question) yields none, nor does a clause that negates the
match from outside ("it is wrong that X is in house 2").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from monitor import Span
from verifiers.constraints import nodes as N
from verifiers.constraints.expr import ExpressionError, Token, parse_tokens, tokenize
from verifiers.constraints.nodes import COMPARE, Node
from verifiers.constraints.spec import ConstraintSpec
from verifiers.errors import VerifierConfigError

__all__ = [
    "DEFAULT_HEDGES",
    "DEFAULT_PATTERNS",
    "Claim",
    "ClaimPattern",
    "ClaimReader",
    "Relation",
]

Relation = str | Callable[[Mapping[str, Node]], Node]

_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
             "eighth": 8, "ninth": 9, "tenth": 10}
_POSITION = r"(?:\d+(?:st|nd|rd|th)?|" + "|".join(_ORDINALS) + ")"
_HOUSE = r"(?:the\s+)?(?:house\s+(?:number\s+|no\.?\s*|#)?{n}|{n}\s+house)"

DEFAULT_HEDGES: tuple[str, ...] = (
    "if", "suppose", "supposing", "assume", "assuming", "maybe", "perhaps", "might", "could", "would",
    "whether", "unless", "try", "trying", "guess", "possibly", "either", "or", "hypothetically", "let's say",
    "what if", "?",
)
_NEGATIONS = r"\b(?:not|no|never|cannot|impossible|false|wrong|incorrect|contradiction|contradicts|neither|nor)\b|n't"
_SEPARATORS = (r"[,;:()]|\s[-–—]\s|\b(?:and|but|so|then|because|since|therefore|thus|hence|while|whereas|which"
               r"|meaning|means)\b")
# "the coffee drinker": a role noun may follow a name; an object ends its phrase ("is Bob's friend" is no claim)
_ROLE = (r"(?:\s+(?:drinker|owner|lover|user|smoker|fan|keeper|person|one|guy|man|woman|house|family|"
         r"people))?")
_PHRASE_END = r"(?=\s*(?:[.,;:!?)\n]|$)|\s+(?:and|but|so|then|because|since|who|which|while|as|too)\b)"
_CONSEQUENCE = re.compile(r"^\W*(?:then|so|that|this|which|in that case|hence|thus|therefore|it follows)\b",
                          re.IGNORECASE)


@dataclass(frozen=True)
class ClaimPattern:
    """A way claims are written: a regex template and the relation it states (a name or a function of the
    matched nodes: ``{"a": node, "b": node, "n": node}``)."""

    template: str
    relation: Relation
    name: str = ""


_REL: dict[str, Callable[[Mapping[str, Node]], Node]] = {
    "equal": lambda g: N.equal(g["a"], g.get("b") or g.get("n") or g["num"]),
    "different": lambda g: N.different(g["a"], g.get("b") or g.get("n") or g["num"]),
    "left_of": lambda g: N.left_of(g["a"], g["b"]),
    "right_of": lambda g: N.right_of(g["a"], g["b"]),
    "directly_left_of": lambda g: N.left_of(g["a"], g["b"], directly=True),
    "directly_right_of": lambda g: N.right_of(g["a"], g["b"], directly=True),
    "next_to": lambda g: N.next_to(g["a"], g["b"]),
}

DEFAULT_PATTERNS: tuple[ClaimPattern, ...] = (
    ClaimPattern(r"{a}\s+(?:(?:does\s+not|doesn't|do\s+not|don't)\s+live|(?:is\s+not|isn't))\s+in\s+" + _HOUSE,
                 "different", "not in house"),
    ClaimPattern(r"{a}\s+(?:lives|is|is\s+located|stays|resides)\s+in\s+" + _HOUSE, "equal", "in house"),
    ClaimPattern(r"{a}\s+(?:is|=)\s+" + _HOUSE, "equal", "is house"),
    ClaimPattern(_HOUSE + r"\s+(?:is\s+not|isn't|does\s+not\s+have|doesn't\s+have)\s+{a}", "different",
                 "house is not"),
    ClaimPattern(_HOUSE + r"\s+(?:is|has|holds|contains|belongs\s+to)\s+{a}", "equal", "house is"),
    ClaimPattern(r"{a}\s+(?:lives\s+|is\s+)?(?:directly|immediately|just)\s+(?:to\s+the\s+)?left\s+of\s+{b}",
                 "directly_left_of", "directly left of"),
    ClaimPattern(r"{a}\s+(?:lives\s+|is\s+)?(?:directly|immediately|just)\s+(?:to\s+the\s+)?right\s+of\s+{b}",
                 "directly_right_of", "directly right of"),
    ClaimPattern(r"{a}\s+(?:lives\s+|is\s+)?(?:somewhere\s+)?(?:to\s+the\s+)?left\s+of\s+{b}", "left_of", "left of"),
    ClaimPattern(r"{a}\s+(?:lives\s+|is\s+)?(?:somewhere\s+)?(?:to\s+the\s+)?right\s+of\s+{b}", "right_of",
                 "right of"),
    ClaimPattern(r"{a}\s+(?:lives\s+|is\s+)?(?:next\s+to|beside|adjacent\s+to)\s+{b}", "next_to", "next to"),
    ClaimPattern(r"{a}\s+and\s+{b}\s+(?:are|live)\s+next\s+to\s+each\s+other", "next_to", "next to each other"),
    ClaimPattern(r"{a}\s+(?:is\s+not|isn't)\s+{b}", "different", "is not"),
    ClaimPattern(r"{a}\s+(?:is|equals|is\s+equal\s+to)\s+{b}", "equal", "is"),
    ClaimPattern(r"{a}\s+(?:is\s+not|isn't)\s+(?:equal\s+to\s+)?{num}", "different", "is not number"),
    ClaimPattern(r"{a}\s+(?:is|equals|is\s+equal\s+to)\s+{num}", "equal", "is number"),
)


@dataclass(frozen=True)
class Claim:
    """One claim found in the trace: its text, where it is (trace coordinates) and what it states."""

    text: str
    span: Span
    node: Node
    pattern: str = ""


def _expand(template: str, term: str) -> str:
    """Replace the placeholders; a placeholder used more than once (in alternatives) gets numbered groups."""
    counts: dict[str, int] = {}

    def group(m: re.Match[str]) -> str:
        key = m.group(1)
        counts[key] = counts.get(key, 0) + 1
        name = key if counts[key] == 1 else f"{key}__{counts[key]}"
        if key == "n":
            return rf"(?P<{name}>{_POSITION})"
        if key == "num":
            return rf"(?P<{name}>\d+(?:\.\d+)?)"
        at_end = m.end() == len(template)
        return term.replace("{g}", name) + (_PHRASE_END if at_end else "")

    return re.sub(r"\{(a|b|n|num)\}", group, template)


def _position(word: str) -> Fraction:
    w = word.lower()
    if w in _ORDINALS:
        return Fraction(_ORDINALS[w])
    return Fraction(re.sub(r"(st|nd|rd|th)$", "", w))


class ClaimReader:
    """Finds claims in text with a set of patterns over one problem's vocabulary."""

    def __init__(self, spec: ConstraintSpec, patterns: Sequence[ClaimPattern] = DEFAULT_PATTERNS, *,
                 symbolic: bool = True, hedges: Sequence[str] = DEFAULT_HEDGES) -> None:
        self.spec = spec
        vocab = spec.vocabulary
        term = rf"(?:the\s+)?(?P<{{g}}>{vocab.pattern.pattern}){_ROLE}(?!['’]s\b)"
        self.patterns: list[tuple[str, re.Pattern[str], Callable[[Mapping[str, Node]], Node]]] = []
        for i, p in enumerate(patterns):
            if not isinstance(p, ClaimPattern):
                raise VerifierConfigError(f"patterns[{i}] is {p!r}, not a ClaimPattern")
            regex = _expand(p.template, term)
            try:
                compiled = re.compile(r"(?<![\w])" + regex + r"(?![\w])", re.IGNORECASE)
            except re.error as exc:
                raise VerifierConfigError(f"claim pattern {p.template!r} is not a valid regex: {exc}") from None
            if isinstance(p.relation, str):
                if p.relation not in _REL:
                    raise VerifierConfigError(f"claim pattern {p.template!r}: unknown relation {p.relation!r}; "
                                              f"expected one of {', '.join(_REL)} or a function")
                build = _REL[p.relation]
            else:
                build = p.relation
            self.patterns.append((p.name or p.template, compiled, build))
        self.symbolic = symbolic
        words = [re.escape(h) for h in hedges if h != "?"]
        self.hedge = re.compile(r"\b(?:" + "|".join(words) + r")\b" if words else r"(?!x)x", re.IGNORECASE)
        self.question = "?" in hedges
        self.negation = re.compile(_NEGATIONS, re.IGNORECASE)
        self.separator = re.compile(_SEPARATORS, re.IGNORECASE)

    def hedged(self, text: str, *, after_hedge: bool = False) -> bool:
        """Whether a sentence only entertains a possibility (or continues one: "Suppose A. Then B.")."""
        if self.hedge.search(text) or (self.question and "?" in text):
            return True
        return after_hedge and bool(_CONSEQUENCE.search(text))

    def read(self, text: str, offset: int = 0, *, after_hedge: bool = False) -> tuple[list[Claim], bool]:
        """Claims in one step ``text`` starting at trace position ``offset``; also whether the step is hedged."""
        if self.hedged(text, after_hedge=after_hedge):
            return [], True
        found: list[tuple[int, int, int, str, Node]] = []
        for rank, (name, regex, build) in enumerate(self.patterns):
            for m in regex.finditer(text):
                node = self._node(m, build)
                if node is not None:
                    found.append((m.start(), -(m.end() - m.start()), rank, name, node))
        if self.symbolic:
            for start, end, node in self._symbolic(text):
                found.append((start, -(end - start), len(self.patterns), "symbolic", node))
        found.sort()
        claims: list[Claim] = []
        taken: list[tuple[int, int]] = []
        for start, neg_len, _, name, node in found:
            end = start - neg_len
            if any(start < e and s < end for s, e in taken):
                continue
            if self._negated(text, start, end):
                continue
            taken.append((start, end))
            claims.append(Claim(text[start:end], Span(offset + start, offset + end), node, name))
        return claims, False

    def read_all(self, text: str, offset: int = 0, *, after_hedge: bool = False) -> tuple[list[Claim], bool]:
        """Claims in a text of any length, sentence by sentence; also whether its last sentence is hedged."""
        from monitor.steps import step_ends

        claims: list[Claim] = []
        start = 0
        hedged = after_hedge
        for end in [*step_ends(text, 0), len(text)]:
            if end > start and text[start:end].strip():
                found, hedged = self.read(text[start:end], offset + start, after_hedge=hedged)
                claims.extend(found)
            start = end
        return claims, hedged

    def _node(self, m: re.Match[str], build: Callable[[Mapping[str, Node]], Node]) -> Node | None:
        groups: dict[str, Node] = {}
        vocab = self.spec.vocabulary
        for group, value in m.groupdict().items():
            if value is None:
                continue
            key = group.split("__")[0]
            if key in ("n", "num"):
                groups[key] = N.num(_position(value))
            else:
                node = vocab.lookup(value)
                if node is None:
                    return None
                groups[key] = node
        try:
            node = build(groups)
            return node if self.spec.type_of(node) == "bool" else None
        except (ExpressionError, KeyError, TypeError, ValueError):
            return None

    def _symbolic(self, text: str) -> list[tuple[int, int, Node]]:
        try:
            tokens = tokenize(text, self.spec.vocabulary, strict=False)
        except ExpressionError:
            return []
        runs: list[list[Token]] = [[]]
        for tok in tokens:
            if tok.kind == "other" or (tok.kind == "kw" and tok.value in ("and", "or")) or tok.value == ",":
                runs.append([])
            else:
                runs[-1].append(tok)
        out: list[tuple[int, int, Node]] = []
        for run in runs:
            while run and run[-1].kind == "op" and run[-1].value not in (")",):
                run = run[:-1]
            if not any(t.kind == "op" and t.value in COMPARE for t in run):
                continue
            if not any(t.kind == "name" for t in run):
                continue
            try:
                node = parse_tokens(run, text)
                if self.spec.type_of(node) != "bool":
                    continue
            except ExpressionError:
                continue
            out.append((run[0].start, run[-1].end, node))
        return out

    def _negated(self, text: str, start: int, end: int) -> bool:
        lo, hi = 0, len(text)
        for sep in self.separator.finditer(text):
            if sep.end() <= start:
                lo = sep.end()
            elif sep.start() >= end:
                hi = sep.start()
                break
        return bool(self.negation.search(text[lo:start]) or self.negation.search(text[end:hi]))
