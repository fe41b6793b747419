"""A spatial map read from its prompt: named places, the directions between them, and the question asked.

SpatialEval's spatial-map task (text only; what interwhen evaluates) writes::

    Consider a map with multiple objects:
    Camelot Antiques is in the map. Andy's Autos is to the Northeast of Camelot Antiques. ...

    Please answer the following multiple-choice question based on the provided information. In which direction is
    Marshland Mart relative to Parrot's Pottery? Available options:
    A. Northeast
    B. Northwest ...

with three questions: "In which direction is X relative to Y?", "Which object is in the Northwest of X?" and
"How many objects are in the Northeast of X?". A statement "A is to the D of B" becomes one strict inequality per
axis D names (Northeast: A east of B and A north of B). A cardinal direction (North) is read as its one
inequality only ("A is north of B": A's y is greater), which every reading of "north" implies.

Place names may hold periods ("St. Mary's Church", "Dr. Lee's Office", "J. P. Morgan Bank", "Acme Co."): a
statement is found by its connective ("is to the Northeast of", "is in the map."), and the period that ends it is
the one between two connectives that does not follow a title, an initial or a like abbreviation
(:meth:`_Statements.sentence_end`). Where that still leaves a choice, the names the other statements give
decide; where they do not, the map is not read at all: a wrong name would merge or split places, and a check of a
misread map could fail a true claim.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from interlock.verifiers.choices import options
from interlock.verifiers.spatialmap.orders import Fact, Orders

__all__ = ["DIRECTIONS", "MapQuestion", "SpatialMapProblem", "components", "name_key", "read_map"]

# direction -> ((axis, sign), ...): sign +1 means "A's coordinate is greater than B's"
DIRECTIONS: dict[str, tuple[tuple[str, int], ...]] = {
    "north": (("y", 1),), "south": (("y", -1),), "east": (("x", 1),), "west": (("x", -1),),
    "northeast": (("x", 1), ("y", 1)), "northwest": (("x", -1), ("y", 1)),
    "southeast": (("x", 1), ("y", -1)), "southwest": (("x", -1), ("y", -1)),
}
_ABBREVIATIONS = {"n": "north", "s": "south", "e": "east", "w": "west", "ne": "northeast", "nw": "northwest",
                  "se": "southeast", "sw": "southwest"}
_CONNECTIVE = re.compile(r"\s+is\s+(?:to\s+the\s+(?P<d>north[\s-]?east|north[\s-]?west|south[\s-]?east|"
                         r"south[\s-]?west|north|south|east|west)\s+of\s+|in\s+the\s+map\s*\.)", re.IGNORECASE)
# Words after which a period is part of a name rather than a sentence's end (titles, initials, "Co.", "No. 5")
_ABBREVIATIONS_IN_NAMES = frozenset((
    "st", "dr", "mr", "mrs", "ms", "mt", "ft", "pt", "prof", "rev", "gen", "capt", "col", "lt", "sgt", "gov", "sen",
    "rep", "hon", "pres", "no", "jr", "sr", "co", "inc", "ltd", "corp", "bros", "ave", "blvd", "rd", "ln", "hwy",
    "sq", "ct", "pl", "univ", "dept", "ste", "bldg", "intl"))
_INITIALS = re.compile(r"(?:[A-Za-z]\.)*[A-Za-z]")
_LAST_WORD = re.compile(r"(\S+)$")
_HEADER = re.compile(r"Consider\s+a\s+map\s+with\s+multiple\s+(?:objects|locations)\s*:", re.IGNORECASE)
_DIRECTION_Q = re.compile(r"In\s+which\s+direction\s+is\s+(?P<a>.+?)\s+relative\s+to\s+(?P<b>.+?)\s*\?",
                          re.IGNORECASE)
_OBJECT_Q = re.compile(r"Which\s+object\s+is\s+(?:located\s+)?(?:in|to)\s+the\s+(?P<d>[A-Za-z-]+)\s+of\s+(?P<b>.+?)"
                       r"\s*\?", re.IGNORECASE)
_COUNT_Q = re.compile(r"How\s+many\s+objects\s+are\s+(?:located\s+)?(?:in|to)\s+the\s+(?P<d>[A-Za-z-]+)\s+of\s+"
                      r"(?P<b>.+?)\s*\?", re.IGNORECASE)


def direction_name(word: str) -> str | None:
    """The canonical direction a word names ("North-East", "NE", "northeastern" -> "northeast")."""
    w = re.sub(r"[\s_-]", "", word.strip().lower())
    w = _ABBREVIATIONS.get(w, w)
    w = re.sub(r"(?:ern|erly|ward|wards)$", "", w)
    return w if w in DIRECTIONS else None


def name_key(name: str) -> str:
    """How places are told apart: case, spacing and a final period aside ("Acme Co." ends a sentence as "Acme Co")."""
    return " ".join(name.lower().split()).rstrip(".").strip()


def components(direction: str) -> tuple[tuple[str, int], ...]:
    return DIRECTIONS[direction]


@dataclass(frozen=True)
class MapQuestion:
    """``kind``: "direction" (of ``a`` relative to ``b``), "object" (which option is ``direction`` of ``b``) or
    "count" (how many objects are ``direction`` of ``b``); ``options`` maps letters to text."""

    kind: str
    text: str
    a: str = ""
    b: str = ""
    direction: str = ""
    options: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class SpatialMapProblem:
    """The places (as the prompt writes them), the statements ``(a, direction, b)`` and the question."""

    places: tuple[str, ...]
    statements: tuple[tuple[str, str, str], ...]
    question: MapQuestion | None = None

    def facts(self) -> list[Fact]:
        out = []
        for i, (a, direction, b) in enumerate(self.statements):
            for axis, sign in DIRECTIONS[direction]:
                low, high = (b, a) if sign > 0 else (a, b)
                out.append(Fact(axis, low, high, i))
        return out

    def orders(self) -> Orders:
        return Orders(self.facts())

    def place(self, name: str) -> str | None:
        """The place a name denotes (case, spacing and a final period aside)."""
        key = name_key(name.strip(" '\""))
        for p in self.places:
            if name_key(p) == key:
                return p
        return None

    def statement_text(self, index: int) -> str:
        a, direction, b = self.statements[index]
        return f"{a} is to the {direction.capitalize()} of {b}"


def read_map(prompt: str) -> SpatialMapProblem | None:
    """The map a prompt states (after its last "Consider a map with multiple objects:"), or None (no map, or one
    whose place names cannot be told apart)."""
    heads = list(_HEADER.finditer(prompt))
    if not heads:
        return None
    body = prompt[heads[-1].end():]
    ask = re.search(r"Please\s+answer|Question\s*:", body, re.IGNORECASE)
    described, asked = (body[:ask.start()], body[ask.start():]) if ask else (body, "")
    read = _best_reading(described)
    if read is None:
        return None
    places, statements = read
    if not statements:
        return None
    problem = SpatialMapProblem(tuple(places), tuple(statements))
    return SpatialMapProblem(problem.places, problem.statements, _question(asked, problem))


_Reading = tuple[list[str], list[tuple[str, str, str]]]


def _best_reading(described: str) -> _Reading | None:
    """The map's places and statements. A single letter before a period is an initial ("J. P. Morgan Bank") or a
    name ("of B. That is all."): both readings are made, and the one with fewer places wins (a misplaced end
    makes names that appear once); where either cannot be made, or they differ and tie, the map is not read."""
    reader, plain = _Statements(initials=True), _Statements(initials=False)
    with_initials, without = _reading(reader, described), _reading(plain, described)
    if with_initials is None or without is None:
        # one reading is undecided: the other stands if it left no text between two statements unread (in "of
        # B. C. D is ...", a skipped "C." is a sign that "C. D" was a name)
        other, read_by = (with_initials, reader) if without is None else (without, plain)
        return other if other is not None and not read_by.skipped else None
    if with_initials == without:
        return with_initials
    if len(with_initials[0]) != len(without[0]):
        return min((with_initials, without), key=lambda r: len(r[0]))
    return with_initials if _same_shape(with_initials, without) else None


def _same_shape(one: _Reading, other: _Reading) -> bool:
    """Whether two readings differ only in how names are spelt (each place named alike throughout)."""
    rename = dict(zip(one[0], other[0], strict=True))
    return [(rename[a], d, rename[b]) for a, d, b in one[1]] == other[1]


def _reading(reader: _Statements, described: str) -> _Reading | None:
    read = reader.read(described)
    if read is None:
        return None
    named, raw = read
    # one spelling per place: the first, or the one that keeps a final period ("Acme Co." over "Acme Co")
    spelling: dict[str, str] = {}
    for name in named:
        key = name_key(name)
        if key not in spelling or (name.endswith(".") and not spelling[key].endswith(".")):
            spelling[key] = name
    places = list(dict.fromkeys(spelling[name_key(n)] for n in named))
    statements = [(spelling[name_key(a)], d, spelling[name_key(b)]) for a, d, b in raw
                  if name_key(a) != name_key(b)]
    return places, statements


def _clean(name: str) -> str | None:
    return " ".join(name.split()) or None


def _periods(text: str, *, last: bool = False, inner: bool = False) -> list[int]:
    """Where a period followed by a space (or, with ``last``, the end of ``text``) may end a sentence: with a name
    before it (and, with ``inner``, one after it)."""
    first = len(text) - len(text.lstrip())
    final = len(text.rstrip())
    return [i for i in range(first + 1, final - 1 if inner else len(text)) if text[i] == "." and (
        text[i + 1].isspace() if i + 1 < len(text) else last)]


class _Statements:
    """Reads a map's statements, with single letters before a period taken as initials or not."""

    def __init__(self, *, initials: bool) -> None:
        self.initials = initials
        self.skipped = False  # whether text between two statements was left unread ("of B. That is all. C is")

    def read(self, described: str) -> tuple[list[str], list[tuple[str, str, str]]] | None:
        """The names (in order of mention) and the statements ``(a, direction, b)``, or None when a name's end
        cannot be told."""
        found = list(_CONNECTIVE.finditer(described))
        gaps = [described[found[k - 1].end() if k else 0:m.start()] for k, m in enumerate(found)]
        gaps.append(described[found[-1].end():] if found else "")
        # each statement's subject ends its gap; a relation's object starts the next one and ends at a period
        subjects: list[str | None] = [None] * len(found)
        objects: list[str | None] = [None] * len(found)
        for k in range(len(found)):
            if k == 0 or not found[k - 1].group("d"):
                subjects[k] = self.tail_name(gaps[k])
        undecided: list[int] = []
        for k, m in enumerate(found):
            if m.group("d") and not self.head(k, len(found), gaps[k + 1], None, objects, subjects):
                undecided.append(k)
        if undecided:
            known = {name_key(n) for n in subjects + objects if n}
            if not all(self.head(k, len(found), gaps[k + 1], known, objects, subjects) for k in undecided):
                return None
        named: list[str] = []
        statements: list[tuple[str, str, str]] = []
        for k, m in enumerate(found):
            a, b = subjects[k], objects[k]
            if a:
                named.append(a)
            if not m.group("d") or not a or not b:
                continue
            named.append(b)
            direction = direction_name(m.group("d"))
            if direction is not None:
                statements.append((a, direction, b))
        return named, statements

    def head(self, k: int, n: int, gap: str, known: set[str] | None, objects: list[str | None],
             subjects: list[str | None]) -> bool:
        """Read the object of relation ``k`` (and the subject after it) from ``gap``; False if undecided."""
        if k + 1 < n:
            split = self.split(gap, known)
            if split is None:
                return False
            objects[k], subjects[k + 1] = split
            return True
        objects[k] = self.head_name(gap, known)
        return objects[k] is not None or not _periods(gap.split("\n", 1)[0], last=True)

    def sentence_end(self, text: str, i: int) -> bool:
        """Whether the period at ``text[i]`` may end a sentence: it does not follow a title or another abbreviation
        names hold ("St.", "Co.", "No. 5") or, when reading initials, an initial ("J. P.", "U.S.")."""
        before = _LAST_WORD.search(text, max(0, i - 40), i)
        word = before.group(1).lstrip("\"'“‘(") if before else ""
        if word.lower() in _ABBREVIATIONS_IN_NAMES:
            return False
        return not (_INITIALS.fullmatch(word) and (self.initials or len(word) > 1))

    def choose(self, candidates: list[int], text: str) -> list[int]:
        """The periods that end sentences: those not after an abbreviation, or the only one there is."""
        ends = [i for i in candidates if self.sentence_end(text, i)]
        return ends or (candidates if len(candidates) == 1 else [])

    def tail_name(self, gap: str) -> str | None:
        """The subject a gap ends with: after its last newline, colon and sentence end."""
        line = gap.rsplit("\n", 1)[-1]
        line = line.rsplit(": ", 1)[-1]
        ends = [i for i in _periods(line, inner=True) if self.sentence_end(line, i)]
        return _clean(line[ends[-1] + 1:] if ends else line)

    def head_name(self, gap: str, known: set[str] | None) -> str | None:
        """The object a gap starts with, up to the period that ends its sentence (the statement's last): None when
        there is none, or when which one it is cannot be told (``known`` names, when given, decide)."""
        line = gap.split("\n", 1)[0]
        candidates = _periods(line, last=True)
        ends = self.choose(candidates, line)
        if ends:
            return _clean(line[:ends[0]])
        if known is None or not candidates:
            return None
        fits = [i for i in candidates if name_key(line[:i]) in known]
        return _clean(line[:fits[0]]) if len(fits) == 1 else None

    def split(self, gap: str, known: set[str] | None) -> tuple[str | None, str | None] | None:
        """A gap between two statements: the first one's object, and the second one's subject. None when where the
        first sentence ends cannot be told (``known`` names, when given, decide)."""
        if "\n" in gap:
            head, tail = gap.split("\n", 1)[0], gap.rsplit("\n", 1)[-1]
            ends = self.choose(_periods(head, last=True), head)
            return (_clean(head[:ends[0]]) if ends else None), self.tail_name(tail)
        candidates = _periods(gap, inner=True)
        ends = self.choose(candidates, gap)
        if ends:
            self.skipped = self.skipped or ends[0] != ends[-1]
            return _clean(gap[:ends[0]]), _clean(gap[ends[-1] + 1:])
        if not candidates:
            return None, _clean(gap)  # no period: the first statement has no end (not read), the second goes on
        if known is None:
            return None
        # the period that leaves names known from the other statements on its sides (both, else one)
        score = {i: (name_key(gap[:i]) in known) + (name_key(gap[i + 1:]) in known) for i in candidates}
        best = max(score.values())
        fits = [i for i in candidates if score[i] == best]
        if best == 0 or len(fits) != 1:
            return None
        return _clean(gap[:fits[0]]), _clean(gap[fits[0] + 1:])


def _question(text: str, problem: SpatialMapProblem) -> MapQuestion | None:
    choices = tuple(options(text).items())
    m = _DIRECTION_Q.search(text)
    if m is not None:
        a, b = problem.place(m.group("a")), problem.place(m.group("b"))
        if a and b:
            return MapQuestion("direction", m.group(), a=a, b=b, options=choices)
    for pattern, kind in ((_OBJECT_Q, "object"), (_COUNT_Q, "count")):
        m = pattern.search(text)
        if m is not None:
            b = problem.place(m.group("b"))
            direction = direction_name(m.group("d"))
            if b and direction:
                return MapQuestion(kind, m.group(), b=b, direction=direction, options=choices)
    return None
