"""The puzzle as a constraint problem for the ``constraints`` verifier's z3 session, and claims as its nodes.

The encoding is Boolean: one variable per (entity, house), "Peter in house 2". Each house holds exactly one
value of each feature and each value is in exactly one house (named "each house has one Name", "Peter is in
one house"); every read clue is a constraint named ``clue N`` with its sentence, so an unsat core reads
"clue 3 (The German is Bob); clue 14 (...)". (Positions as integers read more naturally but make z3 thirty times
slower on these puzzles: this is a satisfiability problem, and Booleans let z3 treat it as one.) Claims from the
trace become nodes of the same kind (:func:`relation_node`), checked by
:class:`~interlock.verifiers.constraints.Session`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping

from interlock.verifiers.constraints import nodes as N
from interlock.verifiers.constraints.nodes import Node
from interlock.verifiers.constraints.spec import ConstraintSpec
from interlock.verifiers.zebra.lexicon import Entity
from interlock.verifiers.zebra.puzzle import Clue, ZebraPuzzle

__all__ = ["Encoding", "evaluate", "reading_spec", "relation_node", "spec_of", "translate"]

_PAIRS: dict[str, Callable[[int, int, int], bool]] = {
    "same": lambda i, j, g: i == j,
    "not_same": lambda i, j, g: i != j,
    "left_of": lambda i, j, g: i < j,
    "right_of": lambda i, j, g: i > j,
    "directly_left": lambda i, j, g: i + 1 == j,
    "directly_right": lambda i, j, g: i == j + 1,
    "next_to": lambda i, j, g: abs(i - j) == 1,
    "gap": lambda i, j, g: abs(i - j) == g + 1,
}


class Encoding:
    """The Boolean variables of one puzzle: ``at(entity, house)`` is the node "entity is in house"."""

    def __init__(self, puzzle: ZebraPuzzle) -> None:
        self.puzzle = puzzle
        self.houses = range(1, puzzle.houses + 1)
        self._key: dict[tuple[Entity, int], str] = {}
        self.entity_of: dict[str, tuple[Entity, int]] = {}
        for entity in puzzle.entities():
            shown = puzzle.shown(entity)
            for h in self.houses:
                key = N.canon(f"{shown} in house {h}")
                self._key[(entity, h)] = key
                self.entity_of[key] = (entity, h)

    def at(self, entity: Entity, house: int) -> Node:
        return ("var", self._key[(entity, house)])

    def relation(self, kind: str, a: Entity, b: Entity | None = None, *, house: int | None = None,
                 gap: int | None = None) -> Node:
        return relation_node(self, kind, a, b, house=house, gap=gap)


def relation_node(enc: Encoding, kind: str, a: Entity, b: Entity | None = None, *, house: int | None = None,
                  gap: int | None = None) -> Node:
    """The node of a relation: ``a`` at ``house`` ("at", "not_at"), or between ``a`` and ``b``."""
    if kind in ("at", "not_at"):
        if house is None or house not in enc.houses:
            return ("bool", kind == "not_at")  # a house that does not exist: never "at", always "not at"
        node = enc.at(a, house)
        return node if kind == "at" else ("not", node)
    if b is None or kind not in _PAIRS:
        raise ValueError(f"unknown relation {kind!r}")
    ok = _PAIRS[kind]
    options = tuple(("and", (enc.at(a, i), enc.at(b, j))) for i in enc.houses for j in enc.houses
                    if ok(i, j, gap or 0))
    return ("or", options) if options else ("bool", False)


def clue_node(clue: Clue, enc: Encoding) -> Node:
    assert clue.a is not None
    return relation_node(enc, clue.kind, clue.a, clue.b, house=clue.house, gap=clue.gap)


def _exactly_one(nodes: list[Node]) -> Node:
    at_most = [("not", ("and", (x, y))) for x, y in itertools.combinations(nodes, 2)]
    return ("and", (("or", tuple(nodes)), *at_most)) if at_most else nodes[0]


def spec_of(puzzle: ZebraPuzzle) -> tuple[ConstraintSpec, Encoding]:
    """The puzzle as a :class:`ConstraintSpec` (read clues only) and its encoding."""
    enc = Encoding(puzzle)
    spec = ConstraintSpec()
    for entity in puzzle.entities():
        for h in enc.houses:
            spec.boolean(f"{puzzle.shown(entity)} in house {h}")
    for i, feature in enumerate(puzzle.features):
        entities = [Entity(i, v) for v in feature.values]
        for h in enc.houses:
            spec.add(_exactly_one([enc.at(e, h) for e in entities]), name=f"one {feature.key} in house {h}",
                     text=f"House {h} has exactly one {feature.key}.")
        for e in entities:
            spec.add(_exactly_one([enc.at(e, h) for h in enc.houses]), name=f"{puzzle.shown(e)} in one house",
                     text=f"{puzzle.shown(e)} is in exactly one house.")
    for clue in puzzle.clues:
        if clue.read:
            spec.add(clue_node(clue, enc), name=f"clue {clue.number}", text=clue.text)
    return spec, enc


def evaluate(node: Node, env: Mapping[str, bool]) -> bool:
    """Whether a Boolean node holds where each variable (canonical name) is ``env[name]``."""
    tag = node[0]
    if tag == "var":
        return bool(env[node[1]])
    if tag == "bool":
        return bool(node[1])
    if tag == "not":
        return not evaluate(node[1], env)
    if tag == "and":
        return all(evaluate(x, env) for x in node[1])
    if tag == "or":
        return any(evaluate(x, env) for x in node[1])
    raise ValueError(f"cannot evaluate {tag!r} in a Boolean claim")


def reading_spec(puzzle: ZebraPuzzle) -> tuple[ConstraintSpec, dict[str, Entity]]:
    """The puzzle's vocabulary for reading prose with :class:`ClaimReader`: each entity an integer position
    named by its value ("Peter", "alice (Children)" where features share a value); no clues. Returns the spec
    and the entity of each canonical name. (Claims read this way are turned into the Boolean encoding by
    :func:`translate`.)"""
    from interlock.verifiers.constraints.vocabulary import RESERVED

    names: dict[str, Entity] = {}
    groups: dict[str, list[str]] = {}
    for i, feature in enumerate(puzzle.features):
        members = []
        for value in feature.values:
            entity = Entity(i, value)
            name = puzzle.shown(entity)
            key = N.canon(name)
            if key in RESERVED or key.replace(".", "", 1).isdigit() or key in names:
                name = f"{value} ({feature.key} {i + 1})"
                key = N.canon(name)
            names[key] = entity
            members.append(name)
        groups[f"{feature.key} {i + 1}"] = members
    spec = ConstraintSpec()
    spec.positions(groups, count=puzzle.houses, unit="house")
    return spec, names


def translate(node: Node, names: Mapping[str, Entity], enc: Encoding) -> tuple[Node, str] | None:
    """A position claim read from prose (``Peter == 2``, ``Peter + 1 == Eric``, ``|a - b| == 2``) as a Boolean
    node and the relation it states; None for a shape no zebra relation has."""
    def entity(n: Node) -> Entity | None:
        return names.get(n[1]) if n[0] == "var" else None

    def house(n: Node) -> int | None:
        if n[0] == "num" and n[1].denominator == 1:
            return int(n[1])
        return None

    tag = node[0]
    if tag in ("==", "!=") and (a := entity(node[1])) is not None:
        if (h := house(node[2])) is not None:
            kind = "at" if tag == "==" else "not_at"
            return relation_node(enc, kind, a, house=h), kind
        if (b := entity(node[2])) is not None:
            kind = "same" if tag == "==" else "not_same"
            return relation_node(enc, kind, a, b), kind
    if tag in ("<", ">") and (a := entity(node[1])) is not None and (b := entity(node[2])) is not None:
        kind = "left_of" if tag == "<" else "right_of"
        return relation_node(enc, kind, a, b), kind
    if tag == "==":
        left, right = node[1], node[2]
        if left[0] == "+" and left[2] == N.num(1) and (a := entity(left[1])) and (b := entity(right)):
            return relation_node(enc, "directly_left", a, b), "directly_left"
        if right[0] == "+" and right[2] == N.num(1) and (a := entity(left)) and (b := entity(right[1])):
            return relation_node(enc, "directly_right", a, b), "directly_right"
        if (left[0] == "abs" and left[1][0] == "-" and (a := entity(left[1][1])) and (b := entity(left[1][2]))
                and (d := house(right)) is not None and d >= 1):
            if d == 1:
                return relation_node(enc, "next_to", a, b), "next_to"
            return relation_node(enc, "gap", a, b, gap=d - 1), "gap"
    return None
