"""Reading a maze trace step by step and judging what it claims, in the coordinates it uses.

What is read: where S and E are ("S position: (3,5)", "the start is at (3, 5)", "E row (1) < S row (3)"),
moves ("Move DOWN from (3,5) to (4,5)", "(3,5) -> (4,5) -> (5,5)"), interwhen's step fields ("Current position",
"Previous direction", "Current direction", "Turn type", "Running count: Right=1, Left=0, Total=1"), turn rules
stated in passing ("going from DOWN to LEFT is a right turn"), counts of the whole route ("there are 3 right
turns in total", "FINAL ANSWER: Right turns = 2") and where E is from S ("E is to the top left of S", "the exit
is above the start").

Coordinates: the prompt defines none, so a trace may count rows and columns (or x and y) from 0 or from 1, with
or without the border. Every convention is kept as a candidate until the trace's own claims rule it out, or the
text says which ("0-indexed", "(row, col)"); a claim is wrong only when it is wrong in every candidate still
standing, so a claim is never failed for the convention it was written in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from interlock.verifiers.maze.grid import DELTAS, MazeGrid, turn
from interlock.verifiers.revisions import NONE, Stance, mask_mentions, unescape

__all__ = ["CONVENTIONS", "MazeFinding", "MazeState", "StepReader", "relation_holds"]

# (order, offset): "rc" = (row, column), "xy" = (column, row); offset added to the printed grid's 0-based index
CONVENTIONS: tuple[tuple[str, int], ...] = (("rc", 0), ("rc", 1), ("xy", 0), ("xy", 1), ("rc", -1), ("xy", -1))
_WORDS = {"UP": "UP", "NORTH": "UP", "DOWN": "DOWN", "SOUTH": "DOWN", "LEFT": "LEFT", "WEST": "LEFT",
          "RIGHT": "RIGHT", "EAST": "RIGHT", "U": "UP", "D": "DOWN", "L": "LEFT", "R": "RIGHT", "N": "UP",
          "S": "DOWN", "W": "LEFT", "E": "RIGHT"}
_DIR = r"(?P<{g}>up|down|left|right|north|south|east|west)"
_COORD = r"\(\s*(?P<{g}a>-?\d+)\s*,\s*(?P<{g}b>-?\d+)\s*\)"
_STEP = re.compile(r">>>\s*STEP\s+(?P<n>\d+)\s*:\s*Move\s+" + _DIR.format(g="dir") + r"\s+from\s+"
                   + _COORD.format(g="f") + r"\s+to\s+" + _COORD.format(g="t"), re.IGNORECASE)
_MOVE = re.compile(r"\b(?:move|moving|go|going|step|stepping|head|heading)\s+" + _DIR.format(g="dir")
                   + r"\s+from\s+" + _COORD.format(g="f") + r"\s+to\s+" + _COORD.format(g="t"), re.IGNORECASE)
_ARROW = re.compile(_COORD.format(g="f") + r"\s*(?:->|→|⇒|=>|—>)\s*(?=" + _COORD.format(g="t") + ")")
_CURRENT = re.compile(r"Current\s+position\s*:\s*" + _COORD.format(g="p"), re.IGNORECASE)
_PREV = re.compile(r"Previous\s+direction\s*:\s*(?P<d>[A-Za-z—–-]+)", re.IGNORECASE)
_CUR_DIR = re.compile(r"Current\s+direction\s*:\s*(?P<d>[A-Za-z]+)", re.IGNORECASE)
_TURN_TYPE = re.compile(r"Turn\s+type\s*:\s*(?P<t>(?:right|left)(?:[\s_-]*turn)?|straight|none|no[\s_-]*turn)",
                        re.IGNORECASE)
_RUNNING = re.compile(r"Running\s+count\s*:\s*Right\s*=\s*(?P<r>\d+)\s*,\s*Left\s*=\s*(?P<l>\d+)"
                      r"(?:\s*,\s*Total\s*=\s*(?P<t>\d+))?", re.IGNORECASE)
_WHO = r"\b(?P<who>(?-i:S|E)|the\s+start(?:ing\s+point)?|the\s+exit|the\s+end(?:point)?|the\s+goal)"
_LOCATION = re.compile(r"(?:\b(?P<lab>(?-i:[SE]))\s+position\s*[:=]\s*|" + _WHO + r"(?:\s*\([SE]\))?\s+(?:is\s+)?"
                       r"(?:located\s+)?(?:at|in)\s+(?:position\s+|cell\s+)?)" + _COORD.format(g="c"), re.IGNORECASE)
_AXIS = re.compile(r"\b(?P<lab>[SE])\s+(?P<axis>row|col(?:umn)?)\s*\(\s*(?P<v>-?\d+)\s*\)")
_RULE = re.compile(r"(?:from\s+)?(?:moving\s+|going\s+|heading\s+|facing\s+)?" + _DIR.format(g="a")
                   + r"\s*(?:to|→|->|then)\s*(?:moving\s+|going\s+|heading\s+|facing\s+)?" + _DIR.format(g="b")
                   + r"\)?\s*(?:is|=|:|gives|means|makes|→|->|—|-|\()\s*(?:a\s+|an\s+)?(?:\(?\s*)"
                   r"(?P<k>right|left|clockwise|counter-?clockwise|anti-?clockwise|no\s+turn|straight)\b",
                   re.IGNORECASE)
_COUNT = re.compile(r"(?:(?P<tot>total\s+(?:number\s+of\s+)?)?(?P<kind1>right|left)?\s*turns?\s*(?:count\s*)?"
                    r"(?:is|are|=|:)\s*(?P<n1>\d+)|(?P<n2>\d+)\s+(?P<kind2>right|left)?\s*turns?\b"
                    r"(?P<scope>\s+(?:in\s+total|total|overall|altogether|in\s+all|in\s+the\s+(?:whole\s+|entire\s+)?"
                    r"(?:path|route)|(?:along|on)\s+the\s+(?:whole\s+|entire\s+)?(?:path|route)|from\s+S\s+to\s+E))?)",
                    re.IGNORECASE)
_WHOLE = re.compile(r"\b(?:total|overall|altogether|in\s+all|final\s+answer|the\s+(?:whole|entire)\s+(?:path|route)"
                    r"|from\s+S\s+to\s+E|in\s+the\s+(?:path|route))\b", re.IGNORECASE)
_PARTIAL = re.compile(r"\b(?:so\s+far|until|up\s+to|before|after|first|next|at\s+step|this\s+step|running|"
                      r"current|now\s+at|remaining|more)\b", re.IGNORECASE)
_REL = re.compile(r"\b(?P<x>(?-i:E)|the\s+exit|the\s+end(?:point)?|the\s+goal)(?:\s*\(E\))?\s+is\s+"
                  r"(?P<how>(?:directly\s+|straight\s+)?(?:to\s+the\s+)?(?:(?:top|bottom|upper|lower)(?:[\s-]+(?:left|right))?|left|right|"
                  r"above|below|north(?:east|west)?|south(?:east|west)?|east|west|up|down)"
                  r"(?:\s+and\s+(?:to\s+the\s+)?(?:left|right|above|below))?)\s+(?:(?:of|from)\s+)?"
                  r"(?P<y>(?-i:S)|the\s+start(?:ing\s+point)?)\b", re.IGNORECASE)
_DECLARED_ZERO = re.compile(r"0-indexed|zero-indexed|0-based|top-left\s+is\s+\(0\s*,\s*0\)|"
                            r"(?:starting|counting|counted|numbered)\s+(?:at|from)\s+(?:0|zero)\b", re.IGNORECASE)
_DECLARED_ONE = re.compile(r"1-indexed|one-indexed|1-based|top-left\s+is\s+\(1\s*,\s*1\)|"
                           r"(?:starting|counting|counted|numbered)\s+(?:at|from)\s+(?:1|one)\b", re.IGNORECASE)
_DECLARED_RC = re.compile(r"\(\s*row\s*,\s*col(?:umn)?\b|\(\s*r\s*,\s*c\s*\)|\brow\s*,\s*column\b", re.IGNORECASE)
_DECLARED_XY = re.compile(r"\(\s*x\s*,\s*y\s*\)", re.IGNORECASE)


@dataclass(frozen=True)
class MazeFinding:
    """A claim the trace makes and, when it is wrong (in every coordinate convention still standing), why."""

    start: int
    end: int
    text: str
    problem: str | None  # None: the claim holds
    feedback: str = ""
    asserted: bool = True
    kind: str = ""


@dataclass(frozen=True)
class MazeState:
    """What a step leaves for the next: the open hedge, the coordinate conventions still possible, and the step
    being written (its heading, the last position, the counts so far)."""

    carry: int = NONE
    conventions: tuple[tuple[str, int], ...] = CONVENTIONS
    heading: str | None = None  # of the last move
    before: str | None = None  # heading of the move before it
    position: tuple[int, int] | None = None  # the last position, as written
    right: int = 0
    left: int = 0
    moves: int = 0


def _cell(point: tuple[int, int], conv: tuple[str, int]) -> tuple[int, int]:
    order, offset = conv
    a, b = point[0] - offset, point[1] - offset
    return (a, b) if order == "rc" else (b, a)


def _delta(heading: str, conv: tuple[str, int]) -> tuple[int, int]:
    dr, dc = DELTAS[heading]
    return (dr, dc) if conv[0] == "rc" else (dc, dr)


def _neighbours(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return abs(a[0] - b[0]) + abs(a[1] - b[1]) == 1


def _heading(word: str) -> str | None:
    return _WORDS.get(word.strip().upper())


class StepReader:
    """Reads one maze's traces step by step (for :class:`~interlock.verifiers.stepwise.StepwiseReader`)."""

    def __init__(self, maze: MazeGrid, prompt: str = "") -> None:
        self.maze = maze
        self.stance = Stance()
        self.initial = MazeState(conventions=self._declared(prompt, CONVENTIONS))

    @staticmethod
    def _declared(text: str, conventions: tuple[tuple[str, int], ...]) -> tuple[tuple[str, int], ...]:
        kept = conventions
        if _DECLARED_ZERO.search(text):
            kept = tuple(c for c in kept if c[1] == 0) or kept
        elif _DECLARED_ONE.search(text):
            kept = tuple(c for c in kept if c[1] == 1) or kept
        if _DECLARED_RC.search(text):
            kept = tuple(c for c in kept if c[0] == "rc") or kept
        elif _DECLARED_XY.search(text):
            kept = tuple(c for c in kept if c[0] == "xy") or kept
        return kept

    def step(self, state: MazeState, text: str, start: int, end: int) -> tuple[MazeState, list[MazeFinding]]:
        piece = mask_mentions(unescape(text[start:end]))
        asserts, carry = self.stance(piece, state.carry)
        state = replace(state, carry=carry, conventions=self._declared(piece, state.conventions))
        found: list[MazeFinding] = []
        for m in _STEP.finditer(piece):
            state = self._move(state, m, start, found, structured=True)
        if not _STEP.search(piece):
            for m in _MOVE.finditer(piece):
                state = self._move(state, m, start, found, structured=False)
            if not _MOVE.search(piece):
                for m in _ARROW.finditer(piece):
                    state = self._move(state, m, start, found, structured=False)
        for m in _LOCATION.finditer(piece):
            state = self._location(state, m, start, found)
        for m in _AXIS.finditer(piece):
            state = self._axis(state, m, start, found)
        state = self._fields(state, piece, start, found)
        self._rules(piece, start, found)
        self._counts(piece, start, found)
        self._relative(piece, start, found)
        if not asserts:
            found = [replace(f, asserted=False) for f in found]
        return state, found

    # -- positions --------------------------------------------------------------------------------------
    def _narrow(self, state: MazeState, holds: dict[tuple[str, int], bool]) -> tuple[MazeState, bool]:
        """Keep the conventions under which a claim holds; returns the state and whether it holds in any."""
        ok = tuple(c for c in state.conventions if holds.get(c, False))
        if not ok:
            return state, False
        return replace(state, conventions=ok), True

    def _location(self, state: MazeState, m: re.Match[str], start: int, found: list[MazeFinding]) -> MazeState:
        label = (m.group("lab") or m.group("who") or "").lower()
        is_start = label in ("s",) or "start" in label
        target = self.maze.start if is_start else self.maze.end
        point = (int(m.group("ca")), int(m.group("cb")))
        holds = {c: _cell(point, c) == target for c in state.conventions}
        state, ok = self._narrow(state, holds)
        name = "S" if is_start else "E"
        problem = None if ok else (f"{name} is not at {point}: it is at {target} (row, column, counted from 0 at "
                                   "the top left)")
        found.append(MazeFinding(start + m.start(), start + m.end(), m.group().strip(), problem,
                                 f"{name} is at {target} as (row, column) from (0, 0) at the top left.", kind="where"))
        if is_start and ok and state.position is None:
            state = replace(state, position=point)
        return state

    def _axis(self, state: MazeState, m: re.Match[str], start: int, found: list[MazeFinding]) -> MazeState:
        target = self.maze.start if m.group("lab") == "S" else self.maze.end
        value = int(m.group("v"))
        index = 0 if m.group("axis").lower() == "row" else 1
        holds = {c: value - c[1] == target[index] for c in state.conventions}
        state, ok = self._narrow(state, holds)
        what = "row" if index == 0 else "column"
        problem = None if ok else f"{m.group('lab')}'s {what} is {target[index]}, not {value}"
        found.append(MazeFinding(start + m.start(), start + m.end(), m.group(), problem, problem or "", kind="where"))
        return state

    def _move(self, state: MazeState, m: re.Match[str], start: int, found: list[MazeFinding],
              structured: bool) -> MazeState:
        maze = self.maze
        heading = _heading(m.group("dir")) if "dir" in m.re.groupindex else None
        src = (int(m.group("fa")), int(m.group("fb")))
        dst = (int(m.group("ta")), int(m.group("tb")))
        problems: dict[tuple[str, int], str] = {}
        arrow = heading is None and not structured
        if arrow and not any(_neighbours(_cell(src, c), _cell(dst, c)) for c in state.conventions):
            return state  # "(3,5) -> (1,1)": a summary from one place to another, not a move
        for conv in state.conventions:
            a, b = _cell(src, conv), _cell(dst, conv)
            step = (b[0] - a[0], b[1] - a[1])
            if structured and state.moves == 0 and a != maze.start:
                problems[conv] = f"the first move must start at S, which is at {maze.start}"
            elif not maze.open(a):
                problems[conv] = f"{src} is a wall" if maze.inside(a) else f"{src} is outside the maze"
            elif heading is not None and step != DELTAS[heading]:
                problems[conv] = f"moving {heading} from {src} does not lead to {dst}"
            elif heading is None and abs(step[0]) + abs(step[1]) != 1:
                problems[conv] = f"{src} and {dst} are not neighbouring cells"
            elif not maze.open(b):
                problems[conv] = f"{dst} is a wall" if maze.inside(b) else f"{dst} is outside the maze"
            elif structured and maze.route is not None:
                if a in maze.route and b != maze.route[min(maze.route.index(a) + 1, len(maze.route) - 1)]:
                    problems[conv] = f"the move from {src} to {dst} leaves the route marked by X"
                elif a not in maze.route:
                    problems[conv] = f"{src} is not on the route marked by X"
        ok = tuple(c for c in state.conventions if c not in problems)
        continuity = None
        if state.position is not None and src != state.position and structured:
            continuity = f"the step starts from {src}, but the previous step ended at {state.position}"
        problem = None
        if not ok:
            problem = problems[state.conventions[0]]
        elif continuity is not None:
            problem = continuity
        else:
            state = replace(state, conventions=ok)
        stop = m.end("tb") + 1 if m.end("tb") + 1 <= len(m.string) else m.end()
        stop = max(stop, m.end())
        found.append(MazeFinding(start + m.start(), start + stop, m.string[m.start():stop].strip(), problem,
                                 (problem or "") + ".", kind="move"))
        if heading is None and ok:
            a, b = _cell(src, ok[0]), _cell(dst, ok[0])
            heading = next((k for k, v in DELTAS.items() if v == (b[0] - a[0], b[1] - a[1])), None)
        if heading is not None:
            kind = turn(state.heading, heading) if state.heading is not None else "none"
            state = replace(state, before=state.heading, heading=heading, moves=state.moves + 1,
                            right=state.right + (kind == "right"), left=state.left + (kind == "left"))
        return replace(state, position=dst)

    # -- interwhen's step fields --------------------------------------------------------------------------
    def _fields(self, state: MazeState, piece: str, start: int, found: list[MazeFinding]) -> MazeState:
        m = _CURRENT.search(piece)
        if m is not None and state.position is not None:
            point = (int(m.group("pa")), int(m.group("pb")))
            problem = None if point == state.position else (f"the current position after the move is "
                                                             f"{state.position}, not {point}")
            found.append(MazeFinding(start + m.start(), start + m.end(), m.group(), problem, problem or "",
                                     kind="field"))
        m = _PREV.search(piece)
        if m is not None and state.heading is not None:
            said, want = _heading(m.group("d")), state.before
            if said != want:
                shown = want or "none (this is the first move)"
                problem = f"the previous direction is {shown}, not {m.group('d')}"
                found.append(MazeFinding(start + m.start(), start + m.end(), m.group(), problem, problem,
                                         kind="field"))
        m = _CUR_DIR.search(piece)
        if m is not None and state.heading is not None:
            said = _heading(m.group("d"))
            if said is not None and said != state.heading:
                problem = f"this step moves {state.heading}, so the current direction is not {m.group('d')}"
                found.append(MazeFinding(start + m.start(), start + m.end(), m.group(), problem, problem,
                                         kind="field"))
        m = _TURN_TYPE.search(piece)
        if m is not None and state.heading is not None:
            said = m.group("t").lower()
            said_kind = "right" if said.startswith("right") else "left" if said.startswith("left") else "none"
            want = turn(state.before, state.heading) if state.before is not None else "none"
            problem = None
            if said_kind != want:
                problem = (f"going from {state.before or 'the start'} to {state.heading} is "
                           f"{'no turn' if want == 'none' else want + ' turn' if want != 'back' else 'a reversal'}, "
                           f"not {said.upper()}")
            found.append(MazeFinding(start + m.start(), start + m.end(), m.group(), problem,
                                     (problem + ". Clockwise on the page is UP→RIGHT→DOWN→LEFT→UP: a right turn is a "
                                      "quarter turn clockwise.") if problem else "", kind="turn"))
        m = _RUNNING.search(piece)
        if m is not None and state.heading is not None:
            right, left = int(m.group("r")), int(m.group("l"))
            total = int(m.group("t")) if m.group("t") is not None else None
            wrong = []
            if right != state.right:
                wrong.append(f"Right={state.right}")
            if left != state.left:
                wrong.append(f"Left={state.left}")
            if total is not None and total != state.right + state.left:
                wrong.append(f"Total={state.right + state.left}")
            problem = f"after these moves the counts are {', '.join(wrong)}" if wrong else None
            found.append(MazeFinding(start + m.start(), start + m.end(), m.group(), problem, problem or "",
                                     kind="count"))
        return state

    # -- claims that need no position --------------------------------------------------------------------
    def _rules(self, piece: str, start: int, found: list[MazeFinding]) -> None:
        for m in _RULE.finditer(piece):
            a, b = _heading(m.group("a")), _heading(m.group("b"))
            if a is None or b is None:
                continue
            said = m.group("k").lower().replace("-", "")
            said_kind = ("right" if said in ("right", "clockwise") else "left" if said in (
                "left", "counterclockwise", "anticlockwise") else "none")
            want = turn(a, b)
            if want == "back":
                continue
            shown = "no turn" if want == "none" else f"a {want} turn"
            problem = None if said_kind == want else f"going from {a} to {b} is {shown}, not {said}"
            found.append(MazeFinding(start + m.start(), start + m.end(), m.group(), problem,
                                     (problem + " (clockwise on the page: UP→RIGHT→DOWN→LEFT→UP).") if problem else "",
                                     kind="rule"))

    def _counts(self, piece: str, start: int, found: list[MazeFinding]) -> None:
        maze = self.maze
        if maze.route is None:
            return
        for m in _COUNT.finditer(piece):
            n = int(m.group("n1") or m.group("n2"))
            kind = (m.group("kind1") or m.group("kind2") or "").lower() or "total"
            whole = bool(m.group("tot") or m.group("scope")) or bool(_WHOLE.search(piece))
            if not whole or _PARTIAL.search(piece[max(0, m.start() - 40):m.end() + 10]):
                continue
            truth = maze.count(kind)
            if truth is None:
                continue
            problem = None if n == truth else (f"the route marked by X has {truth} {kind if kind != 'total' else ''} "
                                               f"turn(s), not {n}").replace("  ", " ")
            found.append(MazeFinding(start + m.start(), start + m.end(), m.group(), problem, problem or "",
                                     kind="count"))

    def _relative(self, piece: str, start: int, found: list[MazeFinding]) -> None:
        dr, dc = self.maze.relative()
        for m in _REL.finditer(piece):
            how = " ".join(m.group("how").lower().replace("-", " ").split())
            problem = _relation_problem(how, dr, dc)
            if problem is None and not _known_relation(how):
                continue
            found.append(MazeFinding(start + m.start(), start + m.end(), m.group(), problem, problem or "",
                                     kind="relative"))


def _components(how: str) -> tuple[set[str], bool]:
    directly = "directly" in how or "straight" in how
    words = set(how.replace("to the", " ").split())
    comp: set[str] = set()
    if words & {"top", "upper", "above", "up"} or any(w.startswith("north") for w in words):
        comp.add("up")
    if words & {"bottom", "lower", "below", "down"} or any(w.startswith("south") for w in words):
        comp.add("down")
    if "left" in words or any(w.endswith("west") for w in words):
        comp.add("left")
    if "right" in words or any(w.endswith("east") for w in words):
        comp.add("right")
    return comp, directly


def _known_relation(how: str) -> bool:
    comp, _ = _components(how)
    return bool(comp) and not ({"up", "down"} <= comp or {"left", "right"} <= comp)


def _relation_problem(how: str, dr: int, dc: int) -> str | None:
    """Why "E is <how> of S" is false when E is ``dr`` rows and ``dc`` columns from S; None if it holds."""
    comp, directly = _components(how)
    if not _known_relation(how):
        return None
    truth = {"up": dr < 0, "down": dr > 0, "left": dc < 0, "right": dc > 0}
    wrong = [c for c in comp if not truth[c]]
    vertical, horizontal = comp & {"up", "down"}, comp & {"left", "right"}
    if directly and len(comp) == 1 and ((vertical and dc != 0) or (horizontal and dr != 0)):
        wrong.append("same row" if horizontal else "same column")
    if not wrong:
        return None
    where = []
    where.append("above" if dr < 0 else "below" if dr > 0 else "in the same row as")
    where.append("to the left of" if dc < 0 else "to the right of" if dc > 0 else "in the same column as")
    return f"E is {' and '.join(where)} S ({abs(dr)} row(s), {abs(dc)} column(s) away), not {how} of it"


def relation_holds(how: str, dr: int, dc: int) -> bool | None:
    """Whether E is ``how`` of S ("to the top left", "directly above") when it is ``dr`` rows and ``dc`` columns
    away; None for a phrase that names no direction."""
    if not _known_relation(how):
        return None
    return _relation_problem(how, dr, dc) is None
