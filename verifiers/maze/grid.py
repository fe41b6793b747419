"""A maze read from its prompt: the grid, start and end, the marked route, its turns, and the question asked.

Two ways of writing a maze are read:

- **SpatialEval** (Microsoft's VISION_LANGUAGE ``maze`` task, text only; what interwhen evaluates): an ASCII grid
  of ``#`` (wall), space (open), ``S`` (start), ``E`` (exit) and ``X`` (the route to follow from S to E), its
  last row glued to ", where the symbols have the following meanings: ...", then a question: "How many right
  turns are there in the path from S to E?", "How many total turns ...", or "Is the exit (E) to the top left of
  the starting point (S)?", with lettered options.
- **reasoning-gym** ``maze``: a grid in a code block with a legend ("Legend: 'h' = Wall, '+' = Passage"), start
  and goal characters ("Navigate from '8' (start) to 'w' (goal)"), and the question "What is the minimum number
  of steps to reach the goal?". It marks no route.

Coordinates are cells of the grid as printed, borders included: row 0 is the top line, column 0 the left one.
Turns follow the route from S: a right turn is a quarter turn clockwise as seen on the page (UP then RIGHT,
RIGHT then DOWN, DOWN then LEFT, LEFT then UP), a left turn the other way.
"""

from __future__ import annotations

import itertools
import re
from collections import deque
from dataclasses import dataclass

from interlock.verifiers.choices import options

__all__ = ["DELTAS", "MazeGrid", "MazeQuestion", "read_maze", "turn"]

Cell = tuple[int, int]
DELTAS = {"UP": (-1, 0), "DOWN": (1, 0), "LEFT": (0, -1), "RIGHT": (0, 1)}
_RIGHT_TURNS = {("UP", "RIGHT"), ("RIGHT", "DOWN"), ("DOWN", "LEFT"), ("LEFT", "UP")}
_SPATIALEVAL_ROW = re.compile(r"^(#[# XSE]*#)(?=,|\s*$)")
_RG_START = re.compile(r"from\s+'(?P<start>.)'\s*\(start\)\s*to\s+'(?P<goal>.)'\s*\(goal\)", re.IGNORECASE)
_RG_LEGEND = re.compile(r"Legend:\s*'(?P<wall>.)'\s*=\s*Wall,\s*'(?P<open>.)'\s*=\s*Passage", re.IGNORECASE)
_RELATIVE = re.compile(r"Is\s+the\s+exit\s*\(E\)\s+(?P<where>.+?)\s+(?:of\s+)?the\s+starting\s+point\s*\(S\)\s*\?",
                       re.IGNORECASE)


def turn(before: str, after: str) -> str:
    """The turn from heading ``before`` to heading ``after``: "right", "left", "none" (straight on) or "back"."""
    if before == after:
        return "none"
    if (before, after) in _RIGHT_TURNS:
        return "right"
    if (after, before) in _RIGHT_TURNS:
        return "left"
    return "back"


@dataclass(frozen=True)
class MazeQuestion:
    """What the prompt asks: ``kind`` is "right_turns", "left_turns", "total_turns", "relative" (``where``: the
    direction asked, e.g. "top left") or "steps" (the shortest path's length); ``options`` maps letters to text."""

    kind: str
    text: str
    where: str = ""
    options: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class MazeGrid:
    rows: tuple[str, ...]
    start: Cell
    end: Cell
    walls: str = "#"
    source: str = "spatialeval"
    route: tuple[Cell, ...] | None = None  # the marked route S..E, when it is one unbranched line
    question: MazeQuestion | None = None

    def inside(self, cell: Cell) -> bool:
        r, c = cell
        return 0 <= r < len(self.rows) and 0 <= c < len(self.rows[r])

    def open(self, cell: Cell) -> bool:
        """Whether ``cell`` is in the grid and not a wall."""
        return self.inside(cell) and self.rows[cell[0]][cell[1]] not in self.walls

    def moves(self) -> list[str]:
        """The headings of the route's moves, in order."""
        if self.route is None:
            return []
        return [_heading(a, b) for a, b in itertools.pairwise(self.route)]

    def turns(self) -> list[str]:
        moves = self.moves()
        return [turn(a, b) for a, b in itertools.pairwise(moves)]

    def count(self, kind: str) -> int | None:
        """Right, left or total turns of the marked route (None without one)."""
        if self.route is None:
            return None
        turns = self.turns()
        if kind == "right":
            return turns.count("right")
        if kind == "left":
            return turns.count("left")
        return turns.count("right") + turns.count("left")

    def shortest(self) -> int | None:
        """The number of moves of a shortest path from start to end over open cells (None: none exists)."""
        seen = {self.start: 0}
        queue = deque([self.start])
        while queue:
            cell = queue.popleft()
            if cell == self.end:
                return seen[cell]
            for dr, dc in DELTAS.values():
                nxt = (cell[0] + dr, cell[1] + dc)
                if nxt not in seen and self.open(nxt):
                    seen[nxt] = seen[cell] + 1
                    queue.append(nxt)
        return None

    def relative(self) -> tuple[int, int]:
        """The exit's offset from the start: (row difference, column difference); negative rows are up."""
        return self.end[0] - self.start[0], self.end[1] - self.start[1]


def _heading(a: Cell, b: Cell) -> str:
    delta = (b[0] - a[0], b[1] - a[1])
    return next(k for k, v in DELTAS.items() if v == delta)


def _route(rows: tuple[str, ...], start: Cell, end: Cell, marks: str) -> tuple[Cell, ...] | None:
    """The marked cells from start to end as one line, or None when they branch or break."""
    on = {(r, c) for r, row in enumerate(rows) for c, ch in enumerate(row) if ch in marks} | {start, end}
    path = [start]
    previous: Cell | None = None
    while path[-1] != end:
        here = path[-1]
        nxt = [(here[0] + dr, here[1] + dc) for dr, dc in DELTAS.values()]
        nxt = [c for c in nxt if c in on and c != previous and c not in path]
        if len(nxt) != 1:
            return None
        previous = here
        path.append(nxt[0])
        if len(path) > len(on):
            return None
    return tuple(path) if len(path) == len(on) else None


def _find(rows: tuple[str, ...], ch: str) -> Cell | None:
    hits = [(r, c) for r, row in enumerate(rows) for c, x in enumerate(row) if x == ch]
    return hits[0] if len(hits) == 1 else None


def _question(prompt: str) -> MazeQuestion | None:
    choices = tuple(options(prompt).items())
    low = prompt.lower()
    m = re.search(r"how many (right|left|total)?\s*turns[^?]*\?", low)
    if m is not None:
        kind = {"right": "right_turns", "left": "left_turns"}.get(m.group(1) or "", "total_turns")
        return MazeQuestion(kind, prompt[m.start():m.end()], options=choices)
    rel = _RELATIVE.search(prompt)
    if rel is not None:
        where = " ".join(rel.group("where").lower().replace(",", " ").split())
        return MazeQuestion("relative", rel.group(), where=where, options=choices)
    steps = re.search(r"(?:minimum|fewest|least)\s+number\s+of\s+steps[^?]*\?", prompt, re.IGNORECASE)
    if steps is not None:
        return MazeQuestion("steps", steps.group(), options=choices)
    return None


def read_maze(prompt: str) -> MazeGrid | None:
    """The maze a prompt states (the last one in it), or None when it has none."""
    rg = _RG_START.search(prompt)
    legend = _RG_LEGEND.search(prompt)
    if rg is not None and legend is not None:
        block = re.findall(r"```[^\n]*\n(.*?)```", prompt, re.DOTALL)
        if block:
            rows = tuple(line for line in block[-1].splitlines() if line.strip())
            start, goal = _find(rows, rg.group("start")), _find(rows, rg.group("goal"))
            if start is not None and goal is not None:
                return MazeGrid(rows, start, goal, walls=legend.group("wall"), source="reasoning-gym",
                            question=_question(prompt))
    blocks: list[list[str]] = []
    current: list[str] = []
    for line in prompt.splitlines():
        m = _SPATIALEVAL_ROW.match(line.strip())
        if m is not None:
            current.append(m.group(1))
            continue
        if current:
            blocks.append(current)
            current = []
    if current:
        blocks.append(current)
    for block in reversed(blocks):
        rows = tuple(block)
        if len(rows) < 3:
            continue
        start, end = _find(rows, "S"), _find(rows, "E")
        if start is None or end is None:
            continue
        return MazeGrid(rows, start, end, route=_route(rows, start, end, "X"), question=_question(prompt))
    return None
