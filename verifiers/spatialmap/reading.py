"""Reading a spatial-map trace step by step and judging its claims against the map's orders.

What is read: directions between places ("Andy's Autos is to the Northeast of Camelot Antiques", "A is NE of B",
"A lies south-west of B", "A is not northeast of B"), counts ("2 objects are to the Northeast of B", "there are
no objects northwest of C") and coordinates the trace gives places ("Camelot Antiques: (0, 0)", "A at (2, 1)").
Places are named as the prompt names them, or by an abbreviation the trace defines ("Camelot Antiques (CA)"), or
by a first word no other place shares. A name holding a period ("St. Mary's Church") may be cut by the monitor's
steps, which end at ". ": the step after such a cut is read together with the text before it, back to where the
cut name began, so that its claims are read whole.

A direction claim is wrong only when the map contradicts it (:class:`~interlock.verifiers.spatialmap.orders.
Orders`); one the map merely allows is not flagged. Coordinates are checked statement by statement: once both
places of a statement have coordinates, the statement must hold for them, read with y growing to the north, or,
if the trace's own coordinates grow downwards, to the south (kept as candidates, like the maze's conventions).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from interlock.verifiers.revisions import NONE, Stance, mask_mentions, unescape
from interlock.verifiers.spatialmap.map import DIRECTIONS, SpatialMapProblem, direction_name, name_key
from interlock.verifiers.spatialmap.orders import Orders, sources

__all__ = ["MapFinding", "MapState", "StepReader"]

_DIR_WORDS = (r"north[\s-]?east(?:ern)?|north[\s-]?west(?:ern)?|south[\s-]?east(?:ern)?|south[\s-]?west(?:ern)?|"
              r"north(?:ern)?|south(?:ern)?|east(?:ern)?|west(?:ern)?|NE|NW|SE|SW")
_ORIENT_UP = re.compile(r"\by\s+increases\s+(?:to\s+the\s+)?north|north\s*(?:=|:|is)?\s*\+?\s*y\b|up\s+is\s+north",
                        re.IGNORECASE)
_ORIENT_DOWN = re.compile(r"\by\s+increases\s+(?:to\s+the\s+)?south|south\s*(?:=|:|is)?\s*\+\s*y\b", re.IGNORECASE)
_COORD = r"\(\s*(?:x\s*=\s*)?(?P<x>-?\d+(?:\.\d+)?)\s*,\s*(?:y\s*=\s*)?(?P<y>-?\d+(?:\.\d+)?)\s*\)"
_RESUME_LIMIT = 2_000  # a step is read together with at most this much text before it (a name cut at its periods)
_NUMBER_WORDS = {"no": 0, "none": 0, "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
                 "seven": 7, "eight": 8, "nine": 9, "ten": 10}


@dataclass(frozen=True)
class MapFinding:
    start: int
    end: int
    text: str
    problem: str | None
    asserted: bool = True
    kind: str = ""


@dataclass(frozen=True)
class MapState:
    """The open hedge, abbreviations the trace defined, coordinates it gave, the orientations still possible."""

    carry: int = NONE
    aliases: tuple[tuple[str, str], ...] = ()  # (alias as written, place)
    coords: tuple[tuple[str, float, float], ...] = ()
    orientations: tuple[int, ...] = (1, -1)  # +1: y grows to the north; -1: to the south
    resume: int = -1  # where the next step's reading starts, when this step ended inside a name ("St. "); else -1


class StepReader:
    """Reads one map's traces step by step (for :class:`~interlock.verifiers.stepwise.StepwiseReader`)."""

    def __init__(self, problem: SpatialMapProblem) -> None:
        self.problem = problem
        self.orders: Orders = problem.orders()
        self.stance = Stance()
        self._patterns: dict[tuple[tuple[str, str], ...], tuple[re.Pattern[str], re.Pattern[str],
                                                               re.Pattern[str], re.Pattern[str]]] = {}
        first: dict[str, list[str]] = {}
        for place in problem.places:
            word = place.split()[0].strip("'’")
            if len(word) >= 4 and word[0].isupper() and not word.endswith("."):
                first.setdefault(word.lower(), []).append(place)
        self.first_words = {w: ps[0] for w, ps in first.items() if len(ps) == 1
                            and not any(name_key(p) == w for p in problem.places)}
        # a step that ends with one of these ("St. ", "J. P. ", "Acme Co. ") may have cut a name at its period
        cuts = sorted({name[:i + 1] for name in problem.places for i, c in enumerate(name) if c == "."},
                      key=lambda n: (-len(n), n))
        self._cut = re.compile(r"(?<![\w'])(?:" + "|".join(r"\s+".join(re.escape(w) for w in n.split())
                                                          for n in cuts) + r")[ \t]*\Z", re.IGNORECASE) \
            if cuts else None

    # -- names ------------------------------------------------------------------------------------------
    def _names(self, aliases: tuple[tuple[str, str], ...]) -> dict[str, str]:
        names = {}
        for p in self.problem.places:
            names[p.lower()] = p
            names.setdefault(name_key(p), p)  # "Acme Co." is also "Acme Co"
        for word, place in self.first_words.items():
            names.setdefault(word, place)
        for alias, place in aliases:
            names.setdefault(alias.lower(), place)
        return names

    def _compiled(self, aliases: tuple[tuple[str, str], ...]
                  ) -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
        found = self._patterns.get(aliases)
        if found is not None:
            return found
        names = sorted(self._names(aliases), key=lambda n: (-len(n), n))
        term = r"(?:the\s+)?(?:" + "|".join(r"\s+".join(re.escape(w) for w in n.split()) for n in names) + r")"
        name = r"(?<![\w'])(?P<{g}>" + term + r")(?![\w'])"
        rel = re.compile(name.format(g="a") + r"\s+(?:is|lies|sits|must\s+be|would\s+be|are)\s+(?P<neg>not\s+)?"
                         r"(?:located\s+|situated\s+|positioned\s+)?(?:to\s+the\s+|in\s+the\s+|on\s+the\s+)?"
                         r"(?:directly\s+|due\s+|strictly\s+)?(?P<d>" + _DIR_WORDS + r")\s+(?:of|from)\s+"
                         + name.format(g="b"), re.IGNORECASE)
        count = re.compile(r"(?P<n>\d+|no|none|zero|one|two|three|four|five|six|seven|eight|nine|ten)\s+"
                           r"(?:other\s+)?(?:objects?|places?|locations?|of\s+them)\s+(?:are|is|lie|lies)\s+"
                           r"(?:located\s+)?(?:to\s+the\s+|in\s+the\s+)?(?P<d>" + _DIR_WORDS + r")\s+(?:of|from)\s+"
                           + name.format(g="b"), re.IGNORECASE)
        coord = re.compile(name.format(g="a") + r"\s*(?:[:=]|is\s+at|at|→|->)\s*" + _COORD, re.IGNORECASE)
        alias = re.compile(name.format(g="a") + r"\s*\(\s*(?P<alias>(?-i:[A-Z][A-Za-z]{0,4}))\s*\)", re.IGNORECASE)
        self._patterns[aliases] = (rel, count, coord, alias)
        return rel, count, coord, alias

    def _place(self, text: str, aliases: tuple[tuple[str, str], ...]) -> str | None:
        names = self._names(aliases)
        key = " ".join(re.sub(r"^the\s+", "", text.strip(), flags=re.IGNORECASE).lower().split())
        whole = " ".join(text.lower().split())
        return names.get(key) or names.get(whole) or names.get(key.rstrip("."))

    # -- one step ---------------------------------------------------------------------------------------
    def step(self, state: MapState, text: str, start: int, end: int) -> tuple[MapState, list[MapFinding]]:
        piece = mask_mentions(unescape(text[start:end]))
        asserts, carry = self.stance(piece, state.carry)
        state = replace(state, carry=carry)
        if _ORIENT_UP.search(piece):
            state = replace(state, orientations=(1,))
        elif _ORIENT_DOWN.search(piece):
            state = replace(state, orientations=(-1,))
        # read from where a name cut by the step before began; keep what ends in this step (the rest was read)
        window = state.resume if 0 <= state.resume < start else start
        if window < start:
            piece = mask_mentions(unescape(text[window:end]))
        rel, count, coord, alias = self._compiled(state.aliases)
        learned = list(state.aliases)
        for m in alias.finditer(piece):
            place = self._place(m.group("a"), state.aliases)
            if place is not None and not any(a.lower() == m.group("alias").lower() for a, _ in learned) \
                    and m.group("alias").lower() not in {p.lower() for p in self.problem.places}:
                learned.append((m.group("alias"), place))
        if len(learned) != len(state.aliases):
            state = replace(state, aliases=tuple(learned))
            rel, count, coord, alias = self._compiled(state.aliases)
        found: list[MapFinding] = []
        for m in rel.finditer(piece):
            if window + m.end() > start:
                finding = self._relation(m, window, state)
                if finding is not None:
                    found.append(finding)
        for m in count.finditer(piece):
            if window + m.end() > start:
                finding = self._count(m, window, state)
                if finding is not None:
                    found.append(finding)
        for m in coord.finditer(piece):
            if window + m.end() > start:
                state = self._coordinate(m, window, state, found)
        if not asserts:
            found = [replace(f, asserted=False) for f in found]
        # a claim begun in an earlier step is this step's: its span starts here, where a rollback would cut
        found = [replace(f, start=start) if f.start < start else f for f in found]
        cut = self._cut is not None and end - window < _RESUME_LIMIT \
            and self._cut.search(text, max(window, end - 200), end) is not None
        return replace(state, resume=window if cut else -1), found

    def _relation(self, m: re.Match[str], start: int, state: MapState) -> MapFinding | None:
        a, b = self._place(m.group("a"), state.aliases), self._place(m.group("b"), state.aliases)
        direction = direction_name(m.group("d"))
        if a is None or b is None or direction is None or a == b:
            return None
        negated = bool(m.group("neg"))
        verdicts = [(axis, sign, self._axis_truth(axis, sign, a, b)) for axis, sign in DIRECTIONS[direction]]
        text = m.group().strip()
        if not negated:
            wrong = [(axis, sign) for axis, sign, truth in verdicts if truth is False]
            if not wrong:
                return MapFinding(start + m.start(), start + m.end(), text, None, kind="relation")
            chains = [self.orders.chain(axis, *(sorted_pair(a, b, sign, reverse=True))) for axis, sign in wrong]
            why = "; ".join(self.problem.statement_text(i) for i in sources(chains))
            actual = _actual(a, b, self.orders)
            return MapFinding(start + m.start(), start + m.end(), text,
                              f"the map puts {a} {actual} of {b} ({why})", kind="relation")
        if len(verdicts) == 2 and all(truth is True for _, _, truth in verdicts):
            chains = [self.orders.chain(axis, *sorted_pair(a, b, sign)) for axis, sign, _ in verdicts]
            why = "; ".join(self.problem.statement_text(i) for i in sources(chains))
            return MapFinding(start + m.start(), start + m.end(), text,
                              f"the map puts {a} to the {direction} of {b} ({why})", kind="relation")
        return MapFinding(start + m.start(), start + m.end(), text, None, kind="relation")

    def _axis_truth(self, axis: str, sign: int, a: str, b: str) -> bool | None:
        """Whether a's coordinate on ``axis`` is greater (``sign`` +1) or smaller (-1) than b's."""
        return self.orders.less(axis, b, a) if sign > 0 else self.orders.less(axis, a, b)

    def _count(self, m: re.Match[str], start: int, state: MapState) -> MapFinding | None:
        b = self._place(m.group("b"), state.aliases)
        direction = direction_name(m.group("d"))
        word = m.group("n").lower()
        n = int(word) if word.isdigit() else _NUMBER_WORDS.get(word)
        if b is None or direction is None or n is None:
            return None
        surely, possibly = count_range(self.problem, self.orders, b, direction)
        problem = None
        if n < surely:
            problem = f"at least {surely} places are to the {direction} of {b} on this map"
        elif n > possibly:
            problem = f"at most {possibly} places can be to the {direction} of {b} on this map"
        return MapFinding(start + m.start(), start + m.end(), m.group().strip(), problem, kind="count")

    def _coordinate(self, m: re.Match[str], start: int, state: MapState, found: list[MapFinding]) -> MapState:
        place = self._place(m.group("a"), state.aliases)
        if place is None:
            return state
        x, y = float(m.group("x")), float(m.group("y"))
        known = {p: (px, py) for p, px, py in state.coords if p != place}
        known_now = {**known, place: (x, y)}
        keep: list[int] = []
        broken: dict[int, str] = {}
        for orientation in state.orientations:
            bad = None
            for i, (a, direction, b) in enumerate(self.problem.statements):
                if place not in (a, b) or a not in known_now or b not in known_now:
                    continue
                (ax, ay), (bx, by) = known_now[a], known_now[b]
                for axis, sign in DIRECTIONS[direction]:
                    diff = (ax - bx) if axis == "x" else (ay - by) * orientation
                    if diff * sign <= 0:
                        bad = i
                        break
                if bad is not None:
                    break
            if bad is None:
                keep.append(orientation)
            else:
                broken[orientation] = self.problem.statement_text(bad)
        problem = None
        if not keep:
            problem = f"with these coordinates, '{broken[state.orientations[0]]}' does not hold"
        found.append(MapFinding(start + m.start(), start + m.end(), m.group().strip(), problem, kind="coordinates"))
        coords = (*tuple((p, px, py) for p, px, py in state.coords if p != place), (place, x, y))
        return replace(state, coords=coords, orientations=tuple(keep) or state.orientations)


def sorted_pair(a: str, b: str, sign: int, *, reverse: bool = False) -> tuple[str, str]:
    """The (low, high) pair on an axis for "a is on the ``sign`` side of b" (``reverse``: the opposite claim)."""
    low, high = (b, a) if sign > 0 else (a, b)
    return (high, low) if reverse else (low, high)


def _actual(a: str, b: str, orders: Orders) -> str:
    """Where the map puts ``a`` from ``b``, as far as it says ("to the southwest", "south")."""
    ns = orders.less("y", b, a)
    ew = orders.less("x", b, a)
    vertical = "north" if ns is True else "south" if ns is False else ""
    horizontal = "east" if ew is True else "west" if ew is False else ""
    if vertical and horizontal:
        return f"to the {vertical}{horizontal}"
    if vertical or horizontal:
        return f"to the {vertical or horizontal} (the other axis is open)"
    return "somewhere"


def count_range(problem: SpatialMapProblem, orders: Orders, b: str, direction: str) -> tuple[int, int]:
    """How many places are surely, and how many possibly, to the ``direction`` of ``b`` (each axis decided
    alone: a place is possible unless some axis contradicts it). For a cardinal direction, which may mean "due
    north" as well as "northwards", none is sure."""
    surely = possibly = 0
    for place in problem.places:
        if place == b:
            continue
        truths = [orders.less(axis, b, place) if sign > 0 else orders.less(axis, place, b)
                  for axis, sign in DIRECTIONS[direction]]
        if all(t is True for t in truths) and len(truths) == 2:
            surely += 1  # (a cardinal "North" may mean due north, which strict statements never entail)
        if all(t is not False for t in truths):
            possibly += 1
    return surely, possibly
