"""Logic grids, mazes and spatial maps: the ``zebra``, ``maze`` and ``spatialmap`` verifiers on small problems.

    python3 examples/structured.py

Each problem is a prompt as its benchmark writes it (ZebraLogic, SpatialEval's text-only maze and spatial map).
For each, a trace that reasons correctly (with a supposition it gives up and a step it takes back) passes, and a
trace with one wrong step is flagged at that step, with what refutes it. The zebra trace then runs monitored: the
wrong step is rolled back, the feedback injected, and the scripted model goes on correctly.
"""

from __future__ import annotations

import anyio
from interlock import Fail, Maze, Monitor, SpatialMap, Zebra
from interlock.generators import Scripted

ZEBRA = """There are 3 houses, numbered 1 to 3 from left to right, as seen from across the street. Each house is \
occupied by a different person. Each house has a unique attribute for each of the following characteristics:
 - Each person has a unique name: `Peter`, `Eric`, `Alice`
 - The people are of nationalities: `dane`, `brit`, `swede`

## Clues:
1. The British person is in the first house.
2. Peter is directly left of the Dane.
3. Eric is not in the second house.
4. Alice is the Dane.
5. Eric is not in the third house.
"""
ZEBRA_GOOD = ("Clue 1 puts the British person in house 1.\nSuppose Peter is in house 1. Then the Dane, Alice, is in "
              "house 2 and Eric in house 3, which clue 5 rules out.\nPeter is in house 3. Wait, no: the Dane must be "
              "to his right.\nSo Peter is in house 2 and the Dane is in house 3.\n"
              "| House | Name | Nationality |\n|---|---|---|\n| 1 | Eric | brit |\n| 2 | Peter | swede |\n"
              "| 3 | Alice | dane |\n")
ZEBRA_WRONG = "Clue 1 puts the British person in house 1.\nSo Eric is in house 3.\nThen Peter is in house 1.\n"

MAZE = """Here is a Maze represented in ASCII code:
#######
#EXXXX#
#####X#
#XXS#X#
#X###X#
#XXXXX#
#######, where the symbols have the following meanings:
- # represents walls that are impassable barriers.
- S denotes the starting point of the maze.
- E marks the endpoint or the exit of the maze.
- X marks the specific route you should follow to navigate from the starting point 'S' to the endpoint 'E'.
Please answer the following question based on the provided information. How many right turns are there in the \
path from S to E? Available options:
A. 2
B. 0
C. 3
D. 6."""
MAZE_GOOD = ("S is at (3, 3) and E is at (1, 1), counting rows and columns from 0.\n"
             "We move left from (3, 3) to (3, 2), then left again to (3, 1).\n"
             "Going from LEFT to DOWN is a left turn, and so are the three turns after it.\n"
             "There are 0 right turns in total. The answer is \\boxed{B}.\n")
MAZE_WRONG = MAZE_GOOD.replace("is a left turn", "is a right turn").replace("0 right turns", "1 right turns")

MAP = """Consider a map with multiple objects:
Camelot Antiques is in the map. Andy's Autos is to the Northeast of Camelot Antiques. Oscar's Office Supplies is to \
the Southeast of Camelot Antiques. Quokka's Quilts is to the Northwest of Oscar's Office Supplies. Marshland Mart is \
to the Northeast of Quokka's Quilts.

Please answer the following multiple-choice question based on the provided information. In which direction is \
Andy's Autos relative to Oscar's Office Supplies? Available options:
A. Northeast
B. Northwest
C. Southwest
D. Southeast."""
MAP_GOOD = ("Put Camelot Antiques (CA) at (0, 0). Andy's Autos: (2, 2). Oscar's Office Supplies: (1, -2).\n"
            "Could Andy's Autos be south of Oscar's Office Supplies? No: CA is north of Oscar's.\n"
            "Andy's Autos is north of Oscar's Office Supplies. The answer is \\boxed{A}.\n")
MAP_WRONG = "Marshland Mart is to the Southwest of Quokka's Quilts.\nThe answer is \\boxed{A}.\n"


def show(title: str, verifier: object, prompt: str, text: str) -> None:
    verdicts = verifier.scan(text, prompt=prompt)  # type: ignore[attr-defined]
    fails = [v for v in verdicts if isinstance(v, Fail)]
    print(f"{title}: {'FAIL' if fails else 'pass'}")
    for v in fails:
        print(f"  FAIL [{v.span.start}:{v.span.end}] {text[v.span.start:v.span.end]!r}: {v.message}")


async def monitored() -> None:
    wrong = "Clue 1 puts the British person in house 1.\nSo Eric is in house 3.\nThen Peter is in house 1.\nHmm.\n"
    fixed = "Eric is in house 1. Peter is in house 2. Alice is in house 3.\n"
    result = await Monitor(Scripted({"": wrong, "Let me redo this step.\n": fixed}), [Zebra()]).run(ZEBRA)
    for i in result.interventions:
        print(f"[{i.action.value} at {i.position}] {i.message}")
    print(result.text)
    print(f"stop: {result.stop_reason.value}; passed: {result.passed}")


def main() -> None:
    show("zebra, reasoning that explores", Zebra(), ZEBRA, ZEBRA_GOOD)
    show("zebra, one wrong step", Zebra(), ZEBRA, ZEBRA_WRONG)
    show("maze, right", Maze(), MAZE, MAZE_GOOD)
    show("maze, a wrong turn", Maze(), MAZE, MAZE_WRONG)
    show("spatial map, right", SpatialMap(), MAP, MAP_GOOD)
    show("spatial map, a refuted direction", SpatialMap(), MAP, MAP_WRONG)
    print("\n--- monitored zebra run ---")
    anyio.run(monitored)


if __name__ == "__main__":
    main()
