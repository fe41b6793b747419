"""The ``spatialmap`` verifier: SpatialEval's spatial maps read from the prompt; the directions, counts and
coordinates a trace states are checked exactly against what the map entails, failing only on a contradiction.

::

    from interlock.verifiers.spatialmap import SpatialMap, read_map

    problem = read_map(prompt)                # places, statements, the question
    problem.orders().less("x", "B", "A")      # True: A is east of B (entailed), False: ruled out, None: open
    SpatialMap().scan(trace, prompt=prompt)   # each claim, then the final answer
"""

from __future__ import annotations

from interlock.verifiers.spatialmap.map import DIRECTIONS, MapQuestion, SpatialMapProblem, direction_name, read_map
from interlock.verifiers.spatialmap.orders import Fact, Orders
from interlock.verifiers.spatialmap.reading import MapFinding, count_range
from interlock.verifiers.spatialmap.verifier import SpatialMap

__all__ = [
    "DIRECTIONS",
    "Fact",
    "MapFinding",
    "MapQuestion",
    "Orders",
    "SpatialMap",
    "SpatialMapProblem",
    "count_range",
    "direction_name",
    "read_map",
]
