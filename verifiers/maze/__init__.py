"""The ``maze`` verifier: ASCII mazes (SpatialEval's text-only maze, reasoning-gym's ``maze``) read from the prompt;
the moves, turns, counts and positions a trace states are checked against the grid.

::

    from interlock.verifiers.maze import Maze, read_maze

    grid = read_maze(prompt)            # walls, S and E, the route marked by X, the question
    grid.count("right")                 # right turns along the marked route
    Maze().scan(trace, prompt=prompt)   # each claim, then the final answer
"""

from __future__ import annotations

from interlock.verifiers.maze.grid import DELTAS, MazeGrid, MazeQuestion, read_maze, turn
from interlock.verifiers.maze.reading import CONVENTIONS, MazeFinding, relation_holds
from interlock.verifiers.maze.verifier import Maze

__all__ = [
    "CONVENTIONS",
    "DELTAS",
    "Maze",
    "MazeFinding",
    "MazeGrid",
    "MazeQuestion",
    "read_maze",
    "relation_holds",
    "turn",
]
