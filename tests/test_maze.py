"""The ``maze`` verifier: SpatialEval's text-only mazes and reasoning-gym's mazes read from the prompt; moves,
turns, running counts, positions and final answers checked in the coordinates the trace uses."""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from interlock import Fail, Pass, Unknown
from interlock.verifiers.maze import Maze, read_maze, relation_holds, turn

GRID = "#######\n#EXXXX#\n#####X#\n#XXS#X#\n#X###X#\n#XXXXX#\n#######"
INTRO = ("Here is a Maze represented in ASCII code:\n{grid}, where the symbols have the following meanings:\n"
         "- # represents walls that are impassable barriers.\n- S denotes the starting point of the maze.\n"
         "- E marks the endpoint or the exit of the maze.\n- X marks the specific route you should follow to navigate "
         "from the starting point 'S' to the endpoint 'E'.\n- The objective is to navigate from S to E by following "
         "the path marked by X.Please answer the following question based on the provided information. {q} "
         "Available options:\n{options}\nFirst, provide a concise answer in one sentence.")
TURNS = INTRO.format(grid=GRID, q="How many right turns are there in the path from S to E?",
                     options="A. 2\nB. 0\nC. 3\nD. 6.")
WHERE = INTRO.format(grid=GRID, q="Is the exit (E) to the top left of the starting point (S)?",
                     options="A. Yes\nB. No.")
RG = ("Navigate from '8' (start) to 'w' (goal):\n\n```\nhhhhhh\nh8+++h\nhhh+hh\nhw++hh\nhhhhhh\n```\n"
      "Legend: 'h' = Wall, '+' = Passage\n\nWhat is the minimum number of steps to reach the goal?\n"
      "Give only the number of steps as your final answer, no other text or formatting.")


def fails(text: str, prompt: str = TURNS, **kw: object) -> list[tuple[str, str]]:
    return [(text[v.span.start:v.span.end], v.message) for v in Maze(**kw).scan(text, prompt=prompt)
            if isinstance(v, Fail) and v.span is not None]


def test_the_spatialeval_maze_its_route_and_turns() -> None:
    maze = read_maze(TURNS)
    assert maze is not None and maze.source == "spatialeval"
    assert (maze.start, maze.end) == ((3, 3), (1, 1))
    assert maze.route is not None and len(maze.route) == 17 and maze.route[:4] == ((3, 3), (3, 2), (3, 1), (4, 1))
    assert maze.moves()[:3] == ["LEFT", "LEFT", "DOWN"]
    assert (maze.count("right"), maze.count("left"), maze.count("total")) == (0, 4, 4)
    assert maze.question is not None and maze.question.kind == "right_turns"
    assert dict(maze.question.options) == {"A": "2", "B": "0", "C": "3", "D": "6"}
    assert Maze.applies_to(TURNS) and not Maze.applies_to("How many turns are there?")


def test_the_reasoning_gym_maze() -> None:
    maze = read_maze(RG)
    assert maze is not None and maze.source == "reasoning-gym" and maze.walls == "h"
    assert (maze.start, maze.end, maze.shortest()) == ((1, 1), (3, 1), 6)
    assert maze.question is not None and maze.question.kind == "steps"


@pytest.mark.parametrize(("before", "after", "kind"), [
    ("UP", "RIGHT", "right"), ("RIGHT", "DOWN", "right"), ("DOWN", "LEFT", "right"), ("LEFT", "UP", "right"),
    ("UP", "LEFT", "left"), ("LEFT", "DOWN", "left"), ("DOWN", "RIGHT", "left"), ("RIGHT", "UP", "left"),
    ("UP", "UP", "none"), ("UP", "DOWN", "back"),
])
def test_turns_are_clockwise_on_the_page(before: str, after: str, kind: str) -> None:
    assert turn(before, after) == kind


STRUCTURED = """>>> LOCATE START AND EXIT (0-indexed, top-left is (0,0)):
    S position: (3,3)
    E position: (1,1)

>>> STEP 1: Move LEFT from (3,3) to (3,2)
    Current position: (3,2)
    Previous direction: —
    Current direction: LEFT
    Turn type: STRAIGHT
    Running count: Right=0, Left=0

>>> STEP 2: Move LEFT from (3,2) to (3,1)
    Current position: (3,1)
    Previous direction: LEFT
    Current direction: LEFT
    Turn type: STRAIGHT
    Running count: Right=0, Left=0

>>> STEP 3: Move DOWN from (3,1) to (4,1)
    Current position: (4,1)
    Previous direction: LEFT
    Current direction: DOWN
    Turn type: LEFT_TURN
    Running count: Right=0, Left=1

>>> FINAL ANSWER: Right turns = 0
    \\boxed{B}
"""


def test_interwhen_structured_steps_pass_when_right() -> None:
    verdicts = Maze().scan(STRUCTURED, prompt=TURNS)
    assert not [v for v in verdicts if isinstance(v, Fail)]
    assert any(getattr(v, "note", "") == "the final answer 0 is right" for v in verdicts)


@pytest.mark.parametrize(("wrong", "right", "message"), [
    ("S position: (3,3)", "S position: (3,4)",
     "'S position: (3,4)': S is not at (3, 4): it is at (3, 3) (row, column, counted from 0 at the top left)."),
    ("Move LEFT from (3,2) to (3,1)", "Move UP from (3,2) to (3,1)",
     "'>>> STEP 2: Move UP from (3,2) to (3,1)': moving UP from (3, 2) does not lead to (3, 1)."),
    ("Move DOWN from (3,1) to (4,1)", "Move UP from (3,1) to (2,1)",
     "'>>> STEP 3: Move UP from (3,1) to (2,1)': (2, 1) is a wall."),
    ("Turn type: LEFT_TURN", "Turn type: RIGHT_TURN",
     "'Turn type: RIGHT_TURN': going from LEFT to DOWN is left turn, not RIGHT_TURN."),
    ("Running count: Right=0, Left=1", "Running count: Right=1, Left=0",
     "'Running count: Right=1, Left=0': after these moves the counts are Right=0, Left=1."),
    ("Right turns = 0", "Right turns = 2", "'Right turns = 2': the route marked by X has 0 right turn(s), not 2."),
])
def test_each_kind_of_wrong_step_is_flagged_first(wrong: str, right: str, message: str) -> None:
    text = STRUCTURED.replace(wrong, right, 1)
    found = fails(text)
    assert found and found[0][1] == message


def test_a_wrong_final_answer() -> None:
    found = fails(STRUCTURED.replace("\\boxed{B}", "\\boxed{A}"))
    assert found == [("A", "the final answer is 2, but the route marked by X makes 0 right turns.")]


def test_coordinates_counted_from_one_are_accepted_and_judged_in_that_convention() -> None:
    one_based = ("S is at (4, 4) and E is at (2, 2).\nWe move left from (4, 4) to (4, 3).\n"
                 "Then we move left from (4, 3) to (4, 2).\nGoing from LEFT to DOWN is a left turn.\n"
                 "We move down from (4, 2) to (5, 2).\n")
    assert fails(one_based) == []
    wrong = one_based.replace("move down from (4, 2) to (5, 2)", "move down from (4, 2) to (5, 3)")
    assert fails(wrong) == [("move down from (4, 2) to (5, 3)",
                             "'move down from (4, 2) to (5, 3)': moving DOWN from (4, 2) does not lead to (5, 3).")]


@pytest.mark.parametrize(("text", "flagged"), [
    ("Going from DOWN to LEFT is a right turn.\n", False),
    ("Turning from SOUTH to EAST is a left turn.\n", False),
    ("Going from DOWN to LEFT is a left turn.\n", True),
    ("UP to UP is a right turn.\n", True),
    ("E is to the top left of S.\n", False),
    ("E is above S.\n", False),
    ("E is below S.\n", True),
    ("E is directly above S.\n", True),
    ("There are 4 left turns in total.\n", False),
    ("There are 3 left turns in total.\n", True),
    ("So far there are 3 left turns.\n", False),  # a partial count is not judged
    ("If we went up from S we would reach (2, 3), a wall.\n", False),
    ("(3, 3) -> (1, 1) is the overall trip.\n", False),  # not neighbours: a summary, not a move
])
def test_rules_relations_and_counts_stated_in_prose(text: str, flagged: bool) -> None:
    assert bool(fails(text, prompt=TURNS)) is flagged


def test_relative_position_answers() -> None:
    assert relation_holds("to the top left", -2, -2) is True
    assert relation_holds("directly above", -2, -2) is False
    text = ">>> COMPARE POSITIONS:\n    Row comparison: E row (1) < S row (3) → E is ABOVE S\n" \
           "    Col comparison: E col (1) < S col (3) → E is LEFT of S\n>>> ANSWER: YES\n    \\boxed{A}\n"
    assert fails(text, prompt=WHERE) == []
    wrong = text.replace("E col (1)", "E col (4)").replace("\\boxed{A}", "\\boxed{B}")
    assert [m for _, m in fails(wrong, prompt=WHERE)] == [
        "'E col (4)': E's column is 1, not 4.",
        "the final answer is 'No', but E is above and to the left of S, so the answer to 'Is the exit (E) to the top "
        "left of the starting point (S)?' is yes."]


def test_reasoning_gym_answers_and_walls() -> None:
    good = "Move right from (1, 1) to (1, 2).\nMove right from (1, 2) to (1, 3).\n\n6\n"
    assert fails(good, prompt=RG) == []
    assert fails("The start is at (1, 1).\nMove down from (1, 1) to (2, 1).\n\n6\n", prompt=RG) == [
        ("Move down from (1, 1) to (2, 1)", "'Move down from (1, 1) to (2, 1)': (2, 1) is a wall.")]
    assert fails("The shortest path.\n\n7\n", prompt=RG) == [
        ("7", "the final answer is 7, but a shortest path from start to goal has 6 steps.")]


def test_a_taken_back_step_and_a_confirmed_doubt() -> None:
    taken_back = STRUCTURED.replace("    Turn type: LEFT_TURN\n", "    Turn type: RIGHT_TURN\nWait, no.\n")
    assert [m for _, m in fails(taken_back)] == []
    confirmed = "Going from DOWN to LEFT is a left turn.\nWait, let me double-check that.\nYes, it is.\n"
    assert len(fails(confirmed)) == 1


def test_no_maze_and_attacker_text() -> None:
    verdicts = Maze().scan("go left\n", prompt="no maze here")
    assert all(isinstance(v, Pass) and not v.checked for v in verdicts)  # nothing to check: vacuous, not undecided
    assert verdicts[-1].note == "no maze in the prompt"
    huge = "(1, 1) -> " * 2000 + "\n"
    assert all(v.kind != "unknown" or "Error" not in v.reason for v in Maze().scan(huge, prompt=TURNS))


def _random_maze(rng: random.Random) -> str:
    size = 7
    grid = [["#"] * size for _ in range(size)]
    cells = [(r, c) for r in range(1, size - 1, 2) for c in range(1, size - 1, 2)]
    start = rng.choice(cells)
    stack, seen = [start], {start}
    grid[start[0]][start[1]] = " "
    while stack:
        r, c = stack[-1]
        nxt = [(r + dr, c + dc) for dr, dc in ((0, 2), (0, -2), (2, 0), (-2, 0)) if (r + dr, c + dc) in cells
               and (r + dr, c + dc) not in seen]
        if not nxt:
            stack.pop()
            continue
        nr, nc = rng.choice(nxt)
        grid[(r + nr) // 2][(c + nc) // 2] = grid[nr][nc] = " "
        seen.add((nr, nc))
        stack.append((nr, nc))
    s, e = cells[0], cells[-1]
    grid[s[0]][s[1]], grid[e[0]][e[1]] = "S", "E"
    rows = "\n".join("".join(r) for r in grid)
    return INTRO.format(grid=rows, q="How many total turns are there in the path from S to E?", options="A. 1")


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000))
def test_a_walk_along_any_maze_path_passes_and_a_wall_step_fails(seed: int) -> None:
    rng = random.Random(seed)
    prompt = _random_maze(rng)
    maze = read_maze(prompt)
    assert maze is not None
    path = _bfs(maze)
    moves = [_dir(a, b) for a, b in itertools.pairwise(path)]
    text = "".join(f"Move {m} from ({a[0]},{a[1]}) to ({b[0]},{b[1]}) (0-indexed).\n"
                   for m, a, b in zip(moves, path, path[1:], strict=False))
    assert fails(text, prompt=prompt) == []
    walls = [(r, c) for r in range(1, 6) for c in range(1, 6) if not maze.open((r, c))
             and any(abs(r - a) + abs(c - b) == 1 for a, b in path)]
    if walls:
        wall = walls[0]
        near = next(p for p in path if abs(p[0] - wall[0]) + abs(p[1] - wall[1]) == 1)
        bad = f"Move {_dir(near, wall)} from ({near[0]},{near[1]}) to ({wall[0]},{wall[1]}) (0-indexed).\n"
        assert [m for _, m in fails(bad, prompt=prompt)] == [f"'Move {_dir(near, wall)} from ({near[0]},{near[1]}) "
                                                            f"to ({wall[0]},{wall[1]})': {wall} is a wall."]


def _bfs(maze: object) -> list[tuple[int, int]]:
    from collections import deque

    start, end = maze.start, maze.end  # type: ignore[attr-defined]
    prev: dict[tuple[int, int], tuple[int, int] | None] = {start: None}
    queue = deque([start])
    while queue:
        cell = queue.popleft()
        for dr, dc in ((0, 1), (1, 0), (0, -1), (-1, 0)):
            nxt = (cell[0] + dr, cell[1] + dc)
            if nxt not in prev and maze.open(nxt):  # type: ignore[attr-defined]
                prev[nxt] = cell
                queue.append(nxt)
    out = [end]
    while (p := prev[out[-1]]) is not None:
        out.append(p)
    return out[::-1]


def _dir(a: tuple[int, int], b: tuple[int, int]) -> str:
    return {(-1, 0): "UP", (1, 0): "DOWN", (0, -1): "LEFT", (0, 1): "RIGHT"}[(b[0] - a[0], b[1] - a[1])]


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FFF), max_size=300))
def test_reading_any_text_never_raises(text: str) -> None:
    verdicts = Maze(settle_steps=1).scan(text, prompt=TURNS)
    assert not [v for v in verdicts if isinstance(v, Unknown) and "Error" in v.reason]


def test_replay_cli_reads_jsonl_mazes(tmp_path: Path) -> None:
    path = tmp_path / "maze.jsonl"
    rows = [{"id": "good", "prompt": TURNS, "text": STRUCTURED},
            {"id": "bad", "prompt": TURNS, "text": STRUCTURED.replace("\\boxed{B}", "\\boxed{A}")}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "interlock", "replay", str(path), "--prompt-field", "prompt",
                          "--text-field", "text", "-v", "maze", "--json", "--processes", "0"],
                         capture_output=True, text=True, timeout=300)
    traces = {r["id"]: r for r in map(json.loads, out.stdout.splitlines()) if r.get("type") == "trace"}
    assert traces["good"]["passed"] is True and traces["bad"]["passed"] is False
    assert [v["text"] for v in traces["bad"]["verdicts"] if v["kind"] == "fail"] == ["A"]
