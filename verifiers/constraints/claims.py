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

from interlock import Span
from interlock.verifiers.constraints import nodes as N
from interlock.verifiers.constraints.expr import ExpressionError, Token, parse_tokens, tokenize
from interlock.verifiers.constraints.nodes import COMPARE, Node
from interlock.verifiers.constraints.spec import ConstraintSpec
from interlock.verifiers.errors import VerifierConfigError

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
_NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
            "ten": 10}
_EXTREMES = ("leftmost", "far-left", "far left", "rightmost", "far-right", "far right", "last", "middle", "center",
             "centre")
_POSITION = r"(?:\d+(?:st|nd|rd|th)?|" + "|".join(_ORDINALS) + ")"
_EXTREME = r"(?:" + "|".join(e.replace(" ", r"\s+") for e in _EXTREMES) + ")"
# {nw}: a number in words ("house one"; not "one house", which counts); {nx}: an end of the row ("the last house")
_HOUSE = r"(?:the\s+)?(?:house\s+(?:number\s+|no\.?\s*|#)?(?:{n}|{nw})|{n}\s+house|{nx}\s+house)"

DEFAULT_HEDGES: tuple[str, ...] = (
    "if", "suppose", "supposing", "assume", "assuming", "maybe", "perhaps", "might", "could", "would",
    "whether", "unless", "try", "trying", "guess", "possibly", "either", "or", "hypothetically", "let's say",
    "what if", "case", "scenario", "option", "alternatively", "imagine", "pretend", "test", "testing",
    "tentatively", "let's put", "let's place", "i said", "i thought", "i wrote", "i assumed", "i claimed",
    "we said", "we assumed", "mistake", "mistakenly", "wrongly", "previously", "?",
)
# Hedges that open a supposition: the sentences after one explore it ("Suppose Bob is in house 1. Alice is then
# in house 2. ...") until a sentence gives it up ("That is a contradiction.") or the paragraph ends. Other hedges
# ("Bob is in house 1 or 2", "maybe") only cover their sentence and a consequence right after it ("So ...").
_SUPPOSITIONS = frozenset({
    "suppose", "supposing", "assume", "assuming", "try", "trying", "hypothetically", "let's say", "what if", "case",
    "scenario", "option", "alternatively", "imagine", "pretend", "test", "testing", "tentatively", "let's put",
    "let's place",
})
_LEADING_IF = re.compile(r"^[\s>*#_`\-–•\d.)(]*(?:(?:so|and|but|now|then|next|first|alternatively|otherwise)\W+)?"
                         r"(?:what\s+)?if\b", re.IGNORECASE)
# A sentence that gives a supposition up: its claims are not read, and the sentences after it are read again.
_GIVE_UP = re.compile(r"\b(?:contradictions?|contradicts?|contradictory|impossible|not\s+possible|inconsistent|"
                      r"(?:does\s*n[o']t|do\s*n[o']t|won't|will\s+not|wouldn't|would\s+not|cannot|can't)\s+work|"
                      r"fails?|failed|invalid|not\s+valid|conflicts?|violates?|dead\s+end|rul(?:e|es|ed|ing)\s+out|"
                      r"rul(?:e|es|ed|ing)\s+(?:that|this|it|them)\s+out)\b|[✗❌×]",
                      re.IGNORECASE)
# A conclusion drawn from every case ("In either case, Bob is in house 3."): it states a fact, and it ends the case
# analysis before it, so its hedge-like words ("case", "either") do not hedge it.
_ALL_CASES = re.compile(r"\b(?:in\s+(?:any|either|both|all|every|each)\s+cases?|either\s+way|in\s+any\s+event|"
                        r"whichever\s+(?:case|way)|regardless)\b", re.IGNORECASE)
NONE, LOCAL, SUPPOSITION = 0, 1, 2  # what a text leaves open for the sentence after it
_NEGATIONS = r"\b(?:not|no|never|cannot|impossible|false|wrong|incorrect|contradiction|contradicts|neither|nor)\b|n't"
_SEPARATORS = (r"[,;:()]|\s[-–—]\s|\b(?:and|but|so|then|because|since|therefore|thus|hence|while|whereas|which"
               r"|meaning|means)\b")
# "the coffee drinker": a role noun may follow a name; an object ends its phrase ("is Bob's friend" is no claim)
_ROLE = (r"(?:\s+(?:drinker|owner|lover|user|smoker|fan|keeper|person|one|guy|man|woman|house|family|"
         r"people))?")
_PHRASE_END = r"(?=\s*(?:[.,;:!?()\n]|$)|\s+(?:and|but|so|then|because|since|who|which|while|as|too)\b)"
# "Bob drinks tea", "the person in house 2 owns the dog": a verb that ties a person to an attribute
_VERB = r"(?:drink|have|own|keep|love|like|eat|smoke|use|prefer|enjoy|play)"
_VERBS = r"(?:drinks|has|owns|keeps|loves|likes|eats|smokes|uses|prefers|enjoys|plays)"
_NOT_AS = r"(?!\s+(?:as|for)\b)" + _PHRASE_END  # "has Bob as a neighbour" is no claim that they are one
_CONSEQUENCE = re.compile(r"^\W*(?:then|so|that|this|which|in that case|hence|thus|therefore|it follows)\b",
                          re.IGNORECASE)


# A row of a solution grid: "House 2: Alice, tea, cat", "- House 1: Carol (German, coffee)", "| 3 | Bob | dog |"
_ROW = re.compile(r"^[ \t]*(?:[-*•+>][ \t]+|\d+[.)][ \t]+)?(?:\*\*)?(?:(?:so|thus|therefore|hence|now)\b,?[ \t]*)?"
                  r"(?:the[ \t]+)?house[ \t]*(?:#|no\.?[ \t]*|number[ \t]+)?(?P<n>" + _POSITION + "|"
                  + "|".join(_NUMBERS) + r")(?:\*\*)?[ \t]*(?::|=|-|–|—|→|->)[ \t]*(?P<cells>[^\n]*)",
                  re.IGNORECASE)
_TABLE_ROW = re.compile(r"^[ \t]*\|[ \t]*(?:\*\*)?(?:house[ \t]*)?(?P<n>\d+)(?:\*\*)?[ \t]*\|(?P<cells>[^\n]*)",
                        re.IGNORECASE)
_CELL = re.compile(r"^[\s*_`]*(?:(?:the|a|an)\s+)?(?P<t>.*?)[\s*_`]*\.?[\s*_`]*$", re.IGNORECASE | re.DOTALL)
_BLANK_CELL = re.compile(r"^[\s*_`]*(?:[-–—?…]|\.\.\.)?[\s*_`]*$")


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
    "one_between": lambda g: N.distance(g["a"], g["b"], 2),
    "two_between": lambda g: N.distance(g["a"], g["b"], 3),
}
# "exactly one house between", not "at least one" or "more than one"
_EXACT = r"(?<!least )(?<!most )(?<!than )(?<!some )"

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
    ClaimPattern(_EXACT + r"\b(?:one|1)\s+house\s+between\s+{a}\s+and\s+{b}", "one_between", "one house between"),
    ClaimPattern(_EXACT + r"\b(?:two|2)\s+houses\s+between\s+{a}\s+and\s+{b}", "two_between", "two houses between"),
    ClaimPattern(r"{a}\s+and\s+{b}\s+(?:have|has)\s+(?:exactly\s+)?(?:one|1)\s+house\s+between\s+them",
                 "one_between", "one house between them"),
    ClaimPattern(r"(?:the\s+)?(?:person|one|resident|occupant)\s+(?:in|of|living\s+in|who\s+lives\s+in)\s+" + _HOUSE
                 + r"\s+(?:does\s+not|doesn't)\s+" + _VERB + r"\s+(?:the\s+|a\s+|an\s+)?{a}", "different",
                 "person in house does not"),
    ClaimPattern(r"(?:the\s+)?(?:person|one|resident|occupant)\s+(?:in|of|living\s+in|who\s+lives\s+in)\s+" + _HOUSE
                 + r"\s+(?:" + _VERBS + r"|is)\s+(?:the\s+|a\s+|an\s+)?{a}", "equal", "person in house"),
    ClaimPattern(r"{a}\s+(?:does\s+not|doesn't)\s+" + _VERB + r"\s+(?:the\s+|a\s+|an\s+)?{b}" + _NOT_AS,
                 "different", "does not have"),
    ClaimPattern(r"{a}\s+" + _VERBS + r"\s+(?:the\s+|a\s+|an\s+)?{b}" + _NOT_AS, "equal", "has"),
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
        if key == "nw":
            return rf"(?P<{name}>{'|'.join(_NUMBERS)})"
        if key == "nx":
            return rf"(?P<{name}>{_EXTREME})"
        if key == "num":
            return rf"(?P<{name}>\d+(?:\.\d+)?)"
        at_end = m.end() == len(template)
        return term.replace("{g}", name) + (_PHRASE_END if at_end else "")

    return re.sub(r"\{(a|b|n|nw|nx|num)\}", group, template)


def _position(word: str) -> Fraction:
    w = word.lower()
    if w in _ORDINALS:
        return Fraction(_ORDINALS[w])
    if w in _NUMBERS:
        return Fraction(_NUMBERS[w])
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
        sup = [re.escape(h) for h in hedges if h in _SUPPOSITIONS]
        self.suppose = re.compile(r"\b(?:" + "|".join(sup) + r")\b" if sup else r"(?!x)x", re.IGNORECASE)
        self.leading_if = "if" in hedges
        self.negation = re.compile(_NEGATIONS, re.IGNORECASE)
        self.separator = re.compile(_SEPARATORS, re.IGNORECASE)

    @staticmethod
    def gives_up(text: str) -> bool:
        """Whether a sentence gives a supposition up ("That is a contradiction."): after one, its claims are not
        read and the sentences after it state facts again."""
        return _GIVE_UP.search(text) is not None

    def hedged(self, text: str, *, after_hedge: int = NONE) -> bool:
        """Whether a sentence only entertains a possibility (or continues one: "Suppose A. Then B.")."""
        return self.opens(text, after_hedge=after_hedge) != NONE

    def opens(self, text: str, *, after_hedge: int = NONE) -> int:
        """What a sentence leaves open: ``NONE`` (it may state facts), ``LOCAL`` (a hedged sentence: a
        consequence right after it, "So ...", is hedged too) or ``SUPPOSITION`` (a supposition is being explored:
        the sentences after it are hedged until one gives it up or the paragraph ends).

        ``after_hedge`` is what the sentence before left open (``True`` reads as ``LOCAL``)."""
        level = int(after_hedge)
        if level and _GIVE_UP.search(text):
            return NONE  # "That leads to a contradiction, so ...": the supposition is over, and so is this sentence
        if _ALL_CASES.search(text):
            text, level = _ALL_CASES.sub(" ", text), NONE  # "In either case, ...": concluded from every case
        if level >= SUPPOSITION:
            return SUPPOSITION
        if self.hedge.search(text) or (self.question and "?" in text) or (level and _CONSEQUENCE.search(text)):
            if self.suppose.search(text) or (self.leading_if and _LEADING_IF.search(text)):
                return SUPPOSITION
            return LOCAL
        return NONE

    def read(self, text: str, offset: int = 0, *, after_hedge: int = NONE) -> tuple[list[Claim], int]:
        """Claims in one step ``text`` starting at trace position ``offset``; also what the step leaves open
        (``NONE``, ``LOCAL`` or ``SUPPOSITION``, see :meth:`opens`; false when the step states facts)."""
        if not text.strip():  # an empty line ends a paragraph, and the supposition explored in it
            return [], NONE if "\n" in text else int(after_hedge)
        if int(after_hedge) and _GIVE_UP.search(text):
            return [], NONE
        level = self.opens(text, after_hedge=after_hedge)
        if level != NONE:
            return [], level
        found: list[tuple[int, int, int, str, Node]] = []
        for rank, (name, regex, build) in enumerate(self.patterns):
            for m in regex.finditer(text):
                node = self._node(m, build)
                if node is not None:
                    found.append((m.start(), -(m.end() - m.start()), rank, name, node))
        if self.symbolic:
            for start, end, node in self._symbolic(text):
                found.append((start, -(end - start), len(self.patterns), "symbolic", node))
        for start, end, node in self._row(text):
            found.append((start, -(end - start), len(self.patterns) + 1, "row", node))
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
        return claims, NONE

    def read_all(self, text: str, offset: int = 0, *, after_hedge: int = NONE) -> tuple[list[Claim], int]:
        """Claims in a text of any length, sentence by sentence; also what its last sentence leaves open."""
        from interlock.monitor.steps import step_ends

        claims: list[Claim] = []
        start = 0
        hedged = int(after_hedge)
        for end in [*step_ends(text, 0), len(text)]:
            if end > start:
                found, hedged = self.read(text[start:end], offset + start, after_hedge=hedged)
                claims.extend(found)
            start = end
        return claims, hedged

    def _node(self, m: re.Match[str], build: Callable[[Mapping[str, Node]], Node]) -> Node | None:
        groups: dict[str, Node] = {}
        vocab = self.spec.vocabulary
        extreme = None
        for group, value in m.groupdict().items():
            if value is None:
                continue
            key = group.split("__")[0]
            if key == "nx":
                extreme = " ".join(value.lower().replace("-", " ").split())
            elif key in ("n", "nw", "num"):
                groups["num" if key == "num" else "n"] = N.num(_position(value))
            else:
                node = vocab.lookup(value)
                if node is None:
                    return None
                groups[key] = node
        if extreme is not None:  # "the leftmost house": the end of the range of the positions of {a}
            end = self._extreme(groups.get("a"), extreme)
            if end is None:
                return None
            groups["n"] = N.num(end)
        try:
            node = build(groups)
            if self.spec.type_of(node) != "bool":
                return None
        except (ExpressionError, KeyError, TypeError, ValueError):
            return None
        a, b = groups.get("a"), groups.get("b")
        if (node[0] == "==" and {node[1], node[2]} == {a, b} and a is not None and b is not None
                and a[0] == b[0] == "var" and a != b and self._group_of(a[1]) == self._group_of(b[1])):
            return None  # "Alice likes Bob": two names of one group are never the same house; a misreading
        return node

    def _row(self, text: str) -> list[tuple[int, int, Node]]:
        """A row of a solution grid puts each of its cells in the row's house; read only when every cell is a
        known name (or left blank) and no two cells are of one group (two names in a row: one is misread)."""
        m = _ROW.match(text) or _TABLE_ROW.match(text)
        if m is None:
            return []
        position = N.num(_position(m.group("n")))
        seen: set[str] = set()
        out: list[tuple[int, int, Node]] = []
        vocab = self.spec.vocabulary
        for piece in re.finditer(r"[^,;|()]+", m.group("cells")):
            if _BLANK_CELL.match(piece.group()):
                continue
            cell = _CELL.match(piece.group())
            node = vocab.lookup(cell.group("t")) if cell else None
            if cell is None or node is None or node[0] != "var":
                return []
            group = self._group_of(node[1])
            if group in seen:
                return []
            seen.add(group)
            start = m.start("cells") + piece.start() + cell.start("t")
            claim = N.equal(node, position)
            try:
                if self.spec.type_of(claim) != "bool":
                    return []
            except ExpressionError:
                return []
            out.append((start, start + len(cell.group("t")), claim))
        return out

    def _group_of(self, key: str) -> str:
        for group, members in self.spec.groups.items():
            if key in members:
                return "group " + group
        return "variable " + key

    def _extreme(self, node: Node | None, word: str) -> Fraction | None:
        if node is None or node[0] != "var":
            return None
        var = self.spec.variables[node[1]]
        if var.kind != "int" or var.low is None or var.high is None:
            return None
        if word in ("leftmost", "far left"):
            return var.low
        if word in ("rightmost", "far right", "last"):
            return var.high
        middle = (var.low + var.high) / 2  # "the middle house" of an odd row only
        return middle if middle.denominator == 1 else None

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
