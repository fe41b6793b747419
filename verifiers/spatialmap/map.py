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
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from interlock.verifiers.choices import options
from interlock.verifiers.spatialmap.orders import Fact, Orders

__all__ = ["DIRECTIONS", "MapQuestion", "SpatialMapProblem", "components", "read_map"]

# direction -> ((axis, sign), ...): sign +1 means "A's coordinate is greater than B's"
DIRECTIONS: dict[str, tuple[tuple[str, int], ...]] = {
    "north": (("y", 1),), "south": (("y", -1),), "east": (("x", 1),), "west": (("x", -1),),
    "northeast": (("x", 1), ("y", 1)), "northwest": (("x", -1), ("y", 1)),
    "southeast": (("x", 1), ("y", -1)), "southwest": (("x", -1), ("y", -1)),
}
_ABBREVIATIONS = {"n": "north", "s": "south", "e": "east", "w": "west", "ne": "northeast", "nw": "northwest",
                  "se": "southeast", "sw": "southwest"}
_STATEMENT = re.compile(r"(?P<a>[^.\n]+?)\s+is\s+to\s+the\s+(?P<d>north|south|east|west|north[\s-]?east|"
                        r"north[\s-]?west|south[\s-]?east|south[\s-]?west)\s+of\s+(?P<b>[^.\n]+?)\s*\.",
                        re.IGNORECASE)
_IN_MAP = re.compile(r"(?P<a>[^.\n:]+?)\s+is\s+in\s+the\s+map\s*\.", re.IGNORECASE)
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
        """The place a name denotes (case and spacing aside)."""
        key = " ".join(name.lower().split()).strip(" .'\"")
        for p in self.places:
            if " ".join(p.lower().split()) == key:
                return p
        return None

    def statement_text(self, index: int) -> str:
        a, direction, b = self.statements[index]
        return f"{a} is to the {direction.capitalize()} of {b}"


def read_map(prompt: str) -> SpatialMapProblem | None:
    """The map a prompt states (after its last "Consider a map with multiple objects:"), or None."""
    heads = list(_HEADER.finditer(prompt))
    if not heads:
        return None
    body = prompt[heads[-1].end():]
    ask = re.search(r"Please\s+answer|Question\s*:", body, re.IGNORECASE)
    described, asked = (body[:ask.start()], body[ask.start():]) if ask else (body, "")
    places: list[str] = []
    statements: list[tuple[str, str, str]] = []

    def add(name: str) -> str:
        clean = " ".join(name.split()).strip()
        for p in places:
            if p.lower() == clean.lower():
                return p
        places.append(clean)
        return clean

    for m in _IN_MAP.finditer(described):
        add(m.group("a"))
    for m in _STATEMENT.finditer(described):
        direction = direction_name(m.group("d"))
        if direction is None:
            continue
        a, b = add(m.group("a")), add(m.group("b"))
        if a != b:
            statements.append((a, direction, b))
    if not statements:
        return None
    problem = SpatialMapProblem(tuple(places), tuple(statements))
    return SpatialMapProblem(problem.places, problem.statements, _question(asked, problem))


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
