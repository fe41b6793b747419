"""The ``zebra`` verifier: logic-grid puzzles (ZebraLogic, reasoning-gym) read from the prompt and checked with z3.

::

    from interlock.verifiers.zebra import Zebra, read_puzzle

    puzzle = read_puzzle(prompt)              # houses, features, clues (unread ones say why)
    Zebra().scan(trace, prompt=prompt)        # each stated assignment, then the final grid, against the clues
"""

from __future__ import annotations

from interlock.verifiers.zebra.lexicon import Entity, Lexicon, Resolution
from interlock.verifiers.zebra.puzzle import Clue, Feature, Question, ZebraPuzzle, holds, puzzle_from_json, read_puzzle
from interlock.verifiers.zebra.verifier import Zebra

__all__ = [
    "Clue",
    "Entity",
    "Feature",
    "Lexicon",
    "Question",
    "Resolution",
    "Zebra",
    "ZebraPuzzle",
    "holds",
    "puzzle_from_json",
    "read_puzzle",
]
