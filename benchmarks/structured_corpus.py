"""Corpora for the structured-reasoning verifiers: puzzles, step-by-step solutions in several styles, and the same
solutions with ONE planted wrong step. Used by ``benchmarks/structured_recall.py`` and to write the small test
fixtures in ``tests/data/structured/``.

Puzzles (all generated offline, seeded):

- zebra, **ZebraLogic** format: our own generator (random solution, clues of all nine ZebraLogic templates over
  ZebraLogic's attributes and describing phrases, reduced until the solution is unique), rendered as ZeroEval
  prompts it (example puzzle, ``## Clues:``, JSON template) and as interwhen's cleaned lower-case form;
- zebra, **reasoning-gym** format: ``reasoning_gym.create_dataset("zebra_puzzles")``;
- maze, **SpatialEval** format: our own generator (a perfect maze carved on a grid, the route S..E marked with X,
  questions on right turns, total turns or where E is from S);
- maze, **reasoning-gym** format: ``reasoning_gym.create_dataset("maze")``;
- spatialmap, **SpatialEval** format: our own generator (places with hidden coordinates, diagonal statements
  along a spanning tree plus a few more, questions on a direction, an object or a count).

Each record: ``{"verifier", "format", "style", "prompt", "text", "planted": [start, end] | null, "what"}``. A
planted error is a claim the puzzle refutes (for the spatial map: one its statements contradict), written where
a solution states a fact, so the verifiers can find it; the text after it goes on as the correct solution did,
as a model's slip does.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from interlock.verifiers.maze import read_maze, turn
from interlock.verifiers.spatialmap import read_map
from interlock.verifiers.zebra import ZebraPuzzle, read_puzzle

ORDINALS = ["", "first", "second", "third", "fourth", "fifth", "sixth", "seventh"]
# (class in reasoning-gym's literals, ZebraLogic's line, JSON key)
ZEBRALOGIC_FEATURES = [
    ("Nationality", "The people are of nationalities", "Nationality"),
    ("BookGenre", "People have unique favorite book genres", "BookGenre"),
    ("Food", "Everyone has something unique for lunch", "Food"),
    ("Color", "Each person has a favorite color", "Color"),
    ("Animal", "The people keep unique animals", "Animal"),
    ("Mother", "The mothers' names in different houses are unique", "Mother"),
    ("Children", "Each mother is accompanied by their child", "Children"),
    ("PhoneModel", "People use unique phone models", "PhoneModel"),
    ("CarModel", "People own unique car models", "CarModel"),
    ("Height", "People have unique heights", "Height"),
    ("MusicGenre", "People have unique favorite music genres", "MusicGenre"),
    ("FavoriteSport", "People have unique favorite sports", "FavoriteSport"),
    ("Occupation", "Each person has an occupation", "Occupation"),
    ("Birthday", "Each person has a unique birthday month", "Birthday"),
    ("Flower", "They all have a unique favorite flower", "Flower"),
    ("Cigar", "Everyone has a unique favorite cigar", "Cigar"),
    ("Smoothie", "Everyone has a favorite smoothie", "Smoothie"),
    ("Drink", "Each person has a favorite drink", "Drink"),
    ("HairColor", "People have unique hair colors", "HairColor"),
]
ZEROEVAL_EXAMPLE = """
# Example Puzzle 

There are 3 houses, numbered 1 to 3 from left to right, as seen from across the street. Each house is \
occupied by a different person. Each house has a unique attribute for each of the following characteristics:
 - Each person has a unique name: `Peter`, `Eric`, `Arnold`.
 - Each person has a unique favorite drink: `tea`, `water`, `milk`

## Clues for the Example Puzzle

1. Peter is in the second house.
2. Arnold is directly left of the one who only drinks water.
3. The one who only drinks water is directly left of the person who likes milk.

# Puzzle to Solve 

"""  # noqa: W291 - the prompt as ZeroEval writes it


@dataclass
class Writer:
    """Builds a text and remembers the span of each fact statement (where an error may be planted)."""

    parts: list[str] = field(default_factory=list)
    pos: int = 0
    slots: list[tuple[int, int, Any]] = field(default_factory=list)  # (start, end, what the statement says)

    def put(self, text: str, slot: Any = None) -> None:
        if slot is not None:
            self.slots.append((self.pos, self.pos + len(text), slot))
        self.parts.append(text)
        self.pos += len(text)

    def text(self) -> str:
        return "".join(self.parts)


def record(verifier: str, fmt: str, style: str, prompt: str, text: str, planted: tuple[int, int] | None,
           what: str = "") -> dict[str, Any]:
    return {"verifier": verifier, "format": fmt, "style": style, "prompt": prompt, "text": text,
            "planted": list(planted) if planted else None, "what": what}


# ============================================================== zebra ==============================================
def _literal_classes() -> dict[str, Any]:
    from reasoning_gym.logic.contrib.logic_puzzle import literals

    return {name: getattr(literals, name) for name, _, _ in ZEBRALOGIC_FEATURES} | {"Name": literals.Name}


@dataclass(frozen=True)
class GenClue:
    kind: str
    a: tuple[str, str]  # (feature key, value)
    b: tuple[str, str] | None = None
    house: int | None = None


def _clue_text(clue: GenClue, desc: dict[tuple[str, str], str]) -> str:
    a = desc[clue.a]
    b = desc[clue.b] if clue.b else ""
    text = {
        "at": f"{a} is in the {ORDINALS[clue.house or 0]} house.",
        "not_at": f"{a} is not in the {ORDINALS[clue.house or 0]} house.",
        "same": f"{a} is {b}.",
        "directly_left": f"{a} is directly left of {b}.",
        "next_to": f"{a} and {b} are next to each other.",
        "left_of": f"{a} is somewhere to the left of {b}.",
        "right_of": f"{a} is somewhere to the right of {b}.",
        "gap1": f"There is one house between {a} and {b}.",
        "gap2": f"There are two houses between {a} and {b}.",
    }[clue.kind]
    return text[0].upper() + text[1:]


def _holds(clue: GenClue, pos: dict[tuple[str, str], int]) -> bool:
    pa = pos[clue.a]
    if clue.kind == "at":
        return pa == clue.house
    if clue.kind == "not_at":
        return pa != clue.house
    assert clue.b is not None
    pb = pos[clue.b]
    return {"same": pa == pb, "directly_left": pa + 1 == pb, "next_to": abs(pa - pb) == 1, "left_of": pa < pb,
            "right_of": pa > pb, "gap1": abs(pa - pb) == 2, "gap2": abs(pa - pb) == 3}[clue.kind]


def zebralogic_puzzle(rng: random.Random, houses: int, n_features: int) -> tuple[str, str, dict[str, Any]]:
    """A ZebraLogic-style puzzle with a unique solution: (ZeroEval prompt, interwhen prompt, solution)."""
    from interlock.verifiers.constraints.solver import Session
    from interlock.verifiers.zebra.model import clue_node, spec_of
    from interlock.verifiers.zebra.puzzle import Feature, read_clue

    classes = _literal_classes()
    chosen = [("Name", "Each person has a unique name", "Name")]
    pool = [f for f in ZEBRALOGIC_FEATURES if len(classes[f[0]].__members__) >= houses]
    chosen += rng.sample(pool, n_features - 1)
    values: dict[str, list[str]] = {}
    desc: dict[tuple[str, str], str] = {}
    for cls_name, _, key in chosen:
        members = list(classes[cls_name].__members__.items())
        picked = rng.sample(members, houses)
        values[key] = []
        for member, literal in picked:
            value = member.replace("_", " ")
            value = value.capitalize() if cls_name in ("Name", "Mother", "Children") else value
            values[key].append(value)
            desc[(key, value)] = str(literal.value).strip()
    pos: dict[tuple[str, str], int] = {}
    for key, vals in values.items():
        order = list(range(1, houses + 1))
        rng.shuffle(order)
        for v, h in zip(vals, order, strict=True):
            pos[(key, v)] = h
    entities = list(pos)
    candidates: set[GenClue] = set()
    for e in entities:
        candidates.add(GenClue("at", e, house=pos[e]))
        other = rng.choice([h for h in range(1, houses + 1) if h != pos[e]])
        candidates.add(GenClue("not_at", e, house=other))
    for a, b in itertools.permutations(entities, 2):
        if a[0] == b[0]:
            continue
        for kind in ("same", "directly_left", "next_to", "left_of", "right_of", "gap1", "gap2"):
            clue = GenClue(kind, a, b)
            if _holds(clue, pos) and rng.random() < (0.25 if kind == "same" else 0.04):
                candidates.add(clue)
    clues = sorted(candidates, key=lambda c: (c.kind, c.a, c.b or ("", ""), c.house or 0))
    rng.shuffle(clues)
    feats = tuple(Feature(key, line, tuple(values[key])) for _, line, key in chosen)

    # one z3 session over the structure; each candidate clue is a claim switched on while testing a subset
    lexicon = ZebraPuzzle(houses, feats, ()).lexicon
    base = ZebraPuzzle(houses, feats, ())
    spec, enc = spec_of(base)
    session = Session(spec, max_core=0)
    nodes: dict[GenClue, Any] = {}
    for clue in clues:
        read = read_clue(1, _clue_text(clue, desc), lexicon, houses)
        if not read.read:
            raise ValueError(f"the generator wrote a clue the reader cannot read: {read.problem}")
        nodes[clue] = clue_node(read, enc)

    def unique(subset: list[GenClue]) -> bool:
        found = session.solutions(1, given=[nodes[c] for c in subset])
        return found is not None and len(found) == 1

    kept = list(clues)
    if not unique(kept):
        raise ValueError("the candidate clues do not pin the solution down")
    for clue in list(clues):
        trial = [c for c in kept if c is not clue]
        if unique(trial):
            kept = trial
    rng.shuffle(kept)
    texts = [_clue_text(c, desc) for c in kept]
    lines = [f" - {line}: " + ", ".join(f"`{v}`" for v in values[key]) for _, line, key in chosen]
    cells = ",\n".join(f'            "{key}": "___"' for _, _, key in chosen)
    template = ",\n".join(f'        "House {h}": {{\n' + cells + "\n        }" for h in range(1, houses + 1))
    puzzle_text = (f"There are {houses} houses, numbered 1 to {houses} from left to right, as seen from across the "
                   "street. Each house is occupied by a different person. Each house has a unique attribute for "
                   "each of the following characteristics:\n" + "\n".join(lines) + "\n\n## Clues:\n"
                   + "".join(f"{i + 1}. {t}\n" for i, t in enumerate(texts)))
    zeroeval = (ZEROEVAL_EXAMPLE + puzzle_text + "\n\n\n# Instruction\n\nNow please solve the above puzzle. Present "
                "your reasoning and solution in the following json format:\n\n{\n    \"reasoning\": \"___\",\n    "
                "\"solution\": {\n" + template + "\n    }\n}\n\n")
    features_clean = "".join(f"- '{key.lower()}': " + ", ".join(f"'{v.lower()}'" for v in sorted(values[key])) + "\n"
                             for _, _, key in chosen)
    interwhen = (f"there are {houses} houses, numbered 1 to {houses} from left to right, as seen from across the "
                 "street. each house is occupied by a different person. each house has a unique attribute for each of "
                 "the following characteristics:\n" + features_clean + "\n## clues:\n"
                 + "".join(f"{i + 1}. {t.lower()}\n" for i, t in enumerate(texts)))
    solution = {f"{k}|{v}": h for (k, v), h in pos.items()}
    return zeroeval, interwhen, {"houses": houses, "values": values, "pos": solution}


def reasoning_gym_zebras(n: int, seed: int) -> list[str]:
    import reasoning_gym

    out = []
    sizes = [(3, 3), (4, 3), (4, 4), (5, 4)]
    for i, (people, traits) in enumerate(sizes):
        ds = reasoning_gym.create_dataset("zebra_puzzles", seed=seed + i, size=max(1, n // len(sizes)),
                                          num_people=people, num_characteristics=traits)
        out.extend(e["question"] for e in ds)
    return out[:n]


def solve_zebra(prompt: str) -> tuple[ZebraPuzzle, dict[Any, int]]:
    """The puzzle in a prompt and its (unique) solution: entity -> house."""
    from interlock.verifiers.constraints.solver import Session
    from interlock.verifiers.zebra.model import spec_of

    puzzle = read_puzzle(prompt)
    assert puzzle is not None and not puzzle.unread, "a corpus puzzle must be fully read"
    spec, enc = spec_of(puzzle)
    found = Session(spec, max_core=0).solutions(2)
    assert found is not None and len(found) == 1, "a corpus puzzle must have one solution"
    model = {k.lower(): v for k, v in found[0].items()}
    solution = {}
    for key, (entity, house) in enc.entity_of.items():
        if model.get(key):
            solution[entity] = house
    return puzzle, solution


def _phrase(puzzle: ZebraPuzzle, entity: Any, rng: random.Random) -> str:
    """How a solution names an entity: a describing phrase the clues use, or its value."""
    phrases = [p.strip() for c in puzzle.clues for p, e in c.phrases if e == entity]
    phrases = [p[0].lower() + p[1:] if p.lower().startswith("the ") else p for p in phrases]
    value = entity.value
    if puzzle.features[entity.feature].key.lower() in ("name",) or not phrases:
        return value if value[0].isupper() or puzzle.features[entity.feature].key.lower() != "name" \
            else value.capitalize()
    return rng.choice(phrases)


def _house_words(h: int, rng: random.Random) -> str:
    return rng.choice([f"house {h}", f"House {h}", f"the {ORDINALS[h]} house"])


def zebra_traces(prompt: str, fmt: str, rng: random.Random) -> Iterator[dict[str, Any]]:
    """A correct and a corrupted solution of one puzzle, in one style picked at random."""
    puzzle, solution = solve_zebra(prompt)
    style = rng.choice(["terse", "verbose", "thinking", "table"])
    order = sorted(solution, key=lambda e: (rng.random(), e))
    # clues that place an entity come first, as people solve
    direct = {c.a for c in puzzle.clues if c.kind == "at"}
    order.sort(key=lambda e: e not in direct)
    names = {e: _phrase(puzzle, e, rng) for e in order}
    # a value two features share ("alice": a name and a child) with no describing phrase in the clues cannot be
    # named unambiguously: a solution would not state it either
    shared = {e for e in order if sum(1 for f in puzzle.features if e.value.lower() in (v.lower() for v in f.values))
              > 1 and names[e].lower() == e.value.lower() and puzzle.features[e.feature].key.lower() != "name"}
    order = [e for e in order if e not in shared]
    wrong_at = rng.randrange(len(order))
    for planted in (False, True):
        w = Writer()
        text = _write_zebra(puzzle, solution, order, names, style, fmt, w, random.Random(rng.random()),
                            wrong_at if planted else None)
        target = next((s for s in w.slots if s[2] == "planted"), None)
        yield record("zebra", fmt, style, prompt, text, (target[0], target[1]) if target else None,
                     "a wrong house" if planted else "")


def _write_zebra(puzzle: ZebraPuzzle, solution: dict[Any, int], order: list[Any], names: dict[Any, str], style: str,
                 fmt: str, w: Writer, rng: random.Random, wrong_at: int | None) -> str:
    n = puzzle.houses

    def clue_for(e: Any) -> str:
        nums = [c.number for c in puzzle.clues if e in (c.a, c.b)]
        return f"clue {rng.choice(nums)}" if nums else "the remaining options"

    def fact(name: str, h: int) -> str:
        """One of the ways people state an assignment (a few of which the verifier does not read)."""
        where = _house_words(h, rng)
        return rng.choice([
            f"{name} is in {where}", f"{name} lives in {where}", f"{name} must be in {where}",
            f"{name} is therefore in {where}", f"{where[0].upper() + where[1:]} is {name}",
            f"the person in house {h} is {name}", f"{name} can only be in {where}", f"{name} occupies {where}",
            f"we place {name} in {where}", f"{name} goes in {where}",
        ])

    def place(i: int, e: Any) -> None:
        h = solution[e]
        slot: Any = "fact"
        if wrong_at == i:
            h = rng.choice([x for x in range(1, n + 1) if x != h])
            slot = "planted"
        name = names[e]
        said = fact(name, h)
        said = said[0].upper() + said[1:] if style == "terse" else said
        if style == "terse":
            w.put(said, slot)
            w.put(f" ({clue_for(e)}).\n")
        elif style in ("verbose", "table"):
            w.put(rng.choice([f"From {clue_for(e)}, we can conclude that ", f"Using {clue_for(e)}, ",
                              "Putting this together, ", "It follows that ", "Since the other houses are taken, "]))
            w.put(said, slot)
            w.put(".\n" if rng.random() < 0.5 else ". ")
        else:  # thinking
            w.put(rng.choice(["So ", "Okay, so ", "That means ", "Then ", "Right, so ", ""]))
            w.put(said, slot)
            w.put(".\n")
        if style != "thinking" and rng.random() < 0.25:
            _relation(puzzle, solution, e, names, w, rng)

    if style == "thinking":
        w.put("<think>\nOkay, let me work through the clues one by one.\n\n")
    else:
        w.put(rng.choice(["Let's solve the puzzle step by step.\n\n", "We go through the clues.\n\n"]))
    shown: dict[Any, int] = {}
    for i, e in enumerate(order):
        if style == "thinking" and rng.random() < 0.35:
            _detour(puzzle, solution, e, names, w, rng)
        place(i, e)
        shown[e] = solution[e]
        if style in ("verbose", "terse") and rng.random() < 0.2:
            other = rng.choice([h for h in range(1, n + 1) if h != solution[e]])
            w.put(f"Note that {names[e]} is not in {_house_words(other, rng)}.\n")
        if style == "table" and (i % max(2, len(order) // 3) == 0 or i == len(order) - 1):
            _table(puzzle, shown, w, rng)
    if style == "thinking":
        w.put("\nEverything is placed, and every clue holds.\n</think>\n\n")
    w.put("\n")
    if puzzle.question is not None:
        q = puzzle.question
        answer = next(e.value for e, h in solution.items() if e.feature == q.feature and h == q.house)
        w.put(rng.choice([f"Answer: {answer}", f"The answer is **{answer}**.", f"\\boxed{{{answer}}}"]))
        w.put("\n")
    elif fmt in ("zebralogic", "interwhen"):
        _json_grid(puzzle, solution, w, fmt)
    return w.text()


def _relation(puzzle: ZebraPuzzle, solution: dict[Any, int], e: Any, names: dict[Any, str], w: Writer,
              rng: random.Random) -> None:
    """A true statement relating two entities, as solutions restate and combine clues."""
    others = [x for x in solution if x.feature != e.feature and x in names]
    if not others:
        return
    x = rng.choice(others)
    a, b = solution[e], solution[x]
    if a == b:
        text = f"{names[e]} is {names[x]}"
    elif a + 1 == b:
        text = f"{names[e]} is directly left of {names[x]}"
    elif a < b:
        text = f"{names[e]} is somewhere to the left of {names[x]}"
    else:
        text = f"{names[e]} is somewhere to the right of {names[x]}"
    w.put("Note that " + text + ".\n")


def _detour(puzzle: ZebraPuzzle, solution: dict[Any, int], e: Any, names: dict[Any, str], w: Writer,
            rng: random.Random) -> None:
    """A supposition that fails, or a wrong step taken back at once: what correct thinking does on the way."""
    n = puzzle.houses
    wrong = rng.choice([h for h in range(1, n + 1) if h != solution[e]])
    name = names[e]
    refuting = [c.number for c in puzzle.clues if e in (c.a, c.b)] or [1]
    k = rng.choice(refuting)
    kind = rng.randrange(6)
    if kind == 4:
        w.put(f"{name[0].upper() + name[1:]} is in house {wrong}. Actually, no: clue {k} says otherwise.\n")
        return
    if kind == 5:
        w.put(f"Maybe {name} is in house {wrong}? Let me check clue {k}... no, that fails.\n")
        return
    if kind == 0:
        w.put(f"Suppose {name} is in house {wrong}. Then {name} would not fit clue {k}. "
              f"That's a contradiction, so {name} is not in house {wrong}.\n")
    elif kind == 1:
        w.put(f"Hmm, {name} is in house {wrong}. Wait, no, that breaks clue {k}.\n")
    elif kind == 2:
        w.put(f"What if {name} were in the {ORDINALS[wrong]} house? Clue {k} rules that out.\n")
    else:
        w.put(f"Let's try {name} in house {wrong}. Then clue {k} fails, so that doesn't work.\n")


def _table(puzzle: ZebraPuzzle, shown: dict[Any, int], w: Writer, rng: random.Random) -> None:
    keys = [f.key for f in puzzle.features]
    w.put("\n| House | " + " | ".join(keys) + " |\n|" + "---|" * (len(keys) + 1) + "\n")
    for h in range(1, puzzle.houses + 1):
        cells = []
        for i, _ in enumerate(keys):
            here = [e for e, hh in shown.items() if e.feature == i and hh == h]
            cells.append(here[0].value if here else "?")
        w.put(f"| {h} | " + " | ".join(cells) + " |\n")
    w.put("\n")


def _json_grid(puzzle: ZebraPuzzle, solution: dict[Any, int], w: Writer, fmt: str) -> None:
    w.put("```json\n{\n" if fmt == "interwhen" else '{\n    "solution": {\n')
    for h in range(1, puzzle.houses + 1):
        w.put(f'        "House {h}": {{\n')
        row = [(f.key, next(e.value for e, hh in solution.items() if e.feature == i and hh == h))
               for i, f in enumerate(puzzle.features)]
        for j, (key, value) in enumerate(row):
            w.put(f'            "{key}": "{value}"' + ("," if j < len(row) - 1 else "") + "\n")
        w.put("        }" + ("," if h < puzzle.houses else "") + "\n")
    w.put("}\n```\n" if fmt == "interwhen" else "    }\n}\n")


# ============================================================== maze ===============================================
MAZE_TEMPLATE = """Here is a Maze represented in ASCII code:
{grid}, where the symbols have the following meanings:
- # represents walls that are impassable barriers.
- " " (space) represents the navigable path within the maze, but not necessarily the correct path to the exit.
- S denotes the starting point of the maze.
- E marks the endpoint or the exit of the maze.
- X marks the specific route you should follow to navigate from the starting point 'S' to the endpoint 'E'.
- The objective is to navigate from S to E by following the path marked by X. Movement is allowed in any of the \
four cardinal directions (up, down, left, right) along the spaces, but to solve the maze, follow the path designated \
by X.Please answer the following question based on the provided information. {question} Available options:
{options}
First, provide a concise answer in one sentence. Then, elaborate on the reasoning behind your answer in a detailed, \
step-by-step explanation."""
WHERES = ["directly to the left", "directly to the right", "directly above", "directly below", "to the top left",
          "to the top right", "to the bottom left", "to the bottom right"]


def spatialeval_maze(rng: random.Random) -> str:
    """A SpatialEval-style maze prompt: a carved maze, S and E, the route between them marked with X."""
    size = rng.choice([7, 9, 11])
    grid = [["#"] * size for _ in range(size)]
    cells = [(r, c) for r in range(1, size - 1, 2) for c in range(1, size - 1, 2)]
    start = rng.choice(cells)
    stack, seen = [start], {start}
    grid[start[0]][start[1]] = " "
    while stack:
        r, c = stack[-1]
        nxt = [(r + dr, c + dc) for dr, dc in ((0, 2), (0, -2), (2, 0), (-2, 0))
               if (r + dr, c + dc) in cells and (r + dr, c + dc) not in seen]
        if not nxt:
            stack.pop()
            continue
        nr, nc = rng.choice(nxt)
        grid[(r + nr) // 2][(c + nc) // 2] = " "
        grid[nr][nc] = " "
        seen.add((nr, nc))
        stack.append((nr, nc))
    opens = [(r, c) for r in range(size) for c in range(size) if grid[r][c] == " "]
    for _ in range(100):
        s, e = rng.sample(opens, 2)
        path = _bfs_path(grid, s, e)
        if path and len(path) >= 5:
            break
    for cell in path[1:-1]:
        grid[cell[0]][cell[1]] = "X"
    grid[s[0]][s[1]] = "S"
    grid[e[0]][e[1]] = "E"
    rows = ["".join(r) for r in grid]
    kind = rng.choice(["right", "total", "relative"])
    if kind == "relative":
        where = rng.choice(WHERES)
        question = f"Is the exit (E) {where} of the starting point (S)?"
        options = "A. Yes\nB. No."
    else:
        moves = [_dir(a, b) for a, b in itertools.pairwise(path)]
        turns = [turn(a, b) for a, b in itertools.pairwise(moves)]
        truth = turns.count("right") if kind == "right" else turns.count("right") + turns.count("left")
        values = [*sorted({truth, *rng.sample(range(0, 9), 5)} - {truth})[:3], truth]
        rng.shuffle(values)
        question = f"How many {'right' if kind == 'right' else 'total'} turns are there in the path from S to E?"
        options = "\n".join(f"{'ABCD'[i]}. {v}" for i, v in enumerate(values)) + "."
    return MAZE_TEMPLATE.format(grid="\n".join(rows), question=question, options=options)


def _bfs_path(grid: list[list[str]], s: tuple[int, int], e: tuple[int, int]) -> list[tuple[int, int]] | None:
    from collections import deque

    prev: dict[tuple[int, int], tuple[int, int] | None] = {s: None}
    queue = deque([s])
    while queue:
        cell = queue.popleft()
        if cell == e:
            out = [cell]
            while (p := prev[out[-1]]) is not None:
                out.append(p)
            return out[::-1]
        for dr, dc in ((0, 1), (0, -1), (1, 0), (-1, 0)):
            nxt = (cell[0] + dr, cell[1] + dc)
            inside = 0 <= nxt[0] < len(grid) and 0 <= nxt[1] < len(grid[0])
            if nxt not in prev and inside and grid[nxt[0]][nxt[1]] != "#":
                prev[nxt] = cell
                queue.append(nxt)
    return None


def _dir(a: tuple[int, int], b: tuple[int, int]) -> str:
    return {(-1, 0): "UP", (1, 0): "DOWN", (0, -1): "LEFT", (0, 1): "RIGHT"}[(b[0] - a[0], b[1] - a[1])]


def reasoning_gym_mazes(n: int, seed: int) -> list[str]:
    import reasoning_gym

    return [e["question"] for e in reasoning_gym.create_dataset("maze", seed=seed, size=n, min_grid_size=6,
                                                                 max_grid_size=9)]


def maze_traces(prompt: str, fmt: str, rng: random.Random) -> Iterator[dict[str, Any]]:
    maze = read_maze(prompt)
    assert maze is not None and maze.question is not None
    if fmt == "reasoning-gym":
        path = _bfs_path([list(r.replace(maze.walls, "#")) for r in maze.rows], maze.start, maze.end)
        assert path is not None
        style = "rg-moves"
    else:
        assert maze.route is not None
        path = list(maze.route)
        style = "structured" if maze.question.kind != "relative" and rng.random() < 0.5 else rng.choice(
            ["prose", "thinking"])
        if maze.question.kind == "relative":
            style = rng.choice(["structured", "prose", "thinking"])
    offset = 0 if style == "structured" or rng.random() < 0.5 else 1
    for planted in (False, True):
        w = Writer()
        _write_maze(maze, path, style, offset, w, random.Random(rng.random()), planted)
        target = next((s for s in w.slots if s[2] == "planted"), None)
        yield record("maze", fmt, style, prompt, w.text(), (target[0], target[1]) if target else None,
                     "a wrong step" if planted else "")


def _write_maze(maze: Any, path: list[tuple[int, int]], style: str, offset: int, w: Writer, rng: random.Random,
                planted: bool) -> None:
    question = maze.question
    moves = [_dir(a, b) for a, b in itertools.pairwise(path)]
    turns = [turn(a, b) for a, b in itertools.pairwise(moves)]

    def at(cell: tuple[int, int]) -> str:
        return f"({cell[0] + offset},{cell[1] + offset})" if style == "structured" else \
            f"({cell[0] + offset}, {cell[1] + offset})"

    # what may be planted: one statement among these kinds, chosen up front
    kinds = ["where_s", "move", "turn", "count_final"] if question.kind != "relative" else ["where_s", "where_e",
                                                                                           "relative"]
    if maze.source == "reasoning-gym":
        kinds = ["where_s", "move", "answer"]
    plant = rng.choice(kinds) if planted else None
    plant_move = rng.randrange(len(moves)) if plant in ("move", "turn") else -1
    if plant == "turn":
        plant_move = rng.randrange(1, len(moves)) if len(moves) > 1 else -1
        if plant_move == -1:
            plant = "count_final"

    def fake_cell(cell: tuple[int, int]) -> tuple[int, int]:
        step = rng.choice([-2, 2])
        return (cell[0] + step, cell[1]) if rng.random() < 0.5 else (cell[0], cell[1] + step)

    s_cell = fake_cell(maze.start) if plant == "where_s" else maze.start
    e_cell = fake_cell(maze.end) if plant == "where_e" else maze.end
    if style == "structured":
        w.put(">>> LOCATE START AND EXIT (0-indexed, top-left is (0,0)):\n    ")
        w.put(f"S position: {at(s_cell)}", "planted" if plant == "where_s" else "fact")
        w.put("\n    ")
        w.put(f"E position: {at(e_cell)}", "planted" if plant == "where_e" else "fact")
        w.put("\n\n")
    elif style == "rg-moves":
        w.put(f"I'll use (row, col) coordinates counted from {offset} at the top left.\n")
        w.put(f"The start is at {at(s_cell)}", "planted" if plant == "where_s" else "fact")
        w.put(f" and the goal is at {at(e_cell)}.\n")
    else:
        if style == "thinking":
            w.put("<think>\n")
        w.put(rng.choice(["Let me find S and E first. ", "First, locate the start and the exit. "]))
        w.put(f"S is at {at(s_cell)}", "planted" if plant == "where_s" else "fact")
        w.put(" and ")
        w.put(f"E is at {at(e_cell)}", "planted" if plant == "where_e" else "fact")
        w.put(f" (row, column{', counting from 1' if offset else ''}).\n")
    if question.kind == "relative":
        dr, dc = maze.end[0] - maze.start[0], maze.end[1] - maze.start[1]
        vert = "above" if dr < 0 else "below" if dr > 0 else None
        horiz = "to the left of" if dc < 0 else "to the right of" if dc > 0 else None
        said_v, said_h = vert, horiz
        if plant == "relative":
            flips = {"above": "below", "below": "above", "to the left of": "to the right of",
                     "to the right of": "to the left of"}
            if said_v and (not said_h or rng.random() < 0.5):
                said_v = flips[said_v]
            elif said_h:
                said_h = flips[said_h]
        if style == "structured":
            w.put(">>> COMPARE POSITIONS:\n")
        for said, axis in ((said_v, "row"), (said_h, "col")):
            if said is None:
                continue
            w.put(f"    Comparing the {axis}s: ")
            w.put(f"E is {said.replace(' of', '')} S", "planted" if plant == "relative" and said != (
                vert if axis == "row" else horiz) else "fact")
            w.put(".\n")
        from interlock.verifiers.maze import relation_holds

        truth = relation_holds(question.where, dr, dc)
        answer = "A" if truth else "B"
        if style == "thinking":
            w.put("</think>\n")
        w.put(f">>> ANSWER: {'YES' if truth else 'NO'}\n    \\boxed{{{answer}}}\n")
        return
    right = left = 0
    pos = path[0]
    for i, heading in enumerate(moves):
        nxt = path[i + 1]
        kind = turns[i - 1] if i > 0 else "none"
        right += kind == "right"
        left += kind == "left"
        said_heading, said_to = heading, nxt
        move_slot = "fact"
        if plant == "move" and i == plant_move:
            move_slot = "planted"
            others = [h for h in ("UP", "DOWN", "LEFT", "RIGHT") if h != heading]
            said_heading = rng.choice(others)
        turn_slot = "fact"
        said_kind = kind
        if plant == "turn" and i == plant_move:
            said_kind = {"right": "left", "left": "right", "none": rng.choice(["right", "left"])}[kind]
            turn_slot = "planted"
        if style == "structured":
            w.put(f">>> STEP {i + 1}: ")
            w.put(f"Move {said_heading} from {at(pos)} to {at(said_to)}", move_slot)
            prev = moves[i - 1] if i > 0 else "—"
            w.put(f"\n    Current position: {at(nxt)}\n    Previous direction: {prev}\n    Current direction: "
                  f"{heading}\n    ")
            label = {"right": "RIGHT_TURN", "left": "LEFT_TURN", "none": "STRAIGHT"}[said_kind]
            w.put(f"Turn type: {label}", turn_slot)
            w.put(f"\n    Running count: Right={right}, Left={left}" + (", Total=" + str(right + left)
                                                                         if question.kind == "total_turns" else "")
                  + "\n\n")
        elif style == "rg-moves":
            w.put(f"Move {said_heading.lower()} from {at(pos)} to {at(said_to)}", move_slot)
            w.put(".\n")
        else:
            if (i > 0 and kind != "none") or turn_slot == "planted":
                w.put(rng.choice(["Going from ", "Turning from "]))
                w.put(f"{moves[i - 1]} to {heading} is a {said_kind} turn" if said_kind != "none"
                      else f"{moves[i - 1]} to {heading} is a right turn", turn_slot)
                w.put(".\n")
            w.put(rng.choice(["Then we ", "Next we ", "We "]))
            w.put(f"move {said_heading.lower()} from {at(pos)} to {at(said_to)}", move_slot)
            w.put(".\n")
            if style == "thinking" and rng.random() < 0.2:
                w.put("Wait, let me double-check that this cell is on the X path. Yes, it is.\n")
        pos = nxt
    if maze.source == "reasoning-gym":
        total = len(moves)
        said_total = total + rng.choice([1, 2]) if plant == "answer" else total
        w.put(f"\nThat is {total} moves, the fewest possible.\n\n")
        w.put(f"{said_total}", "planted" if plant == "answer" else "fact")
        w.put("\n")
        return
    kind = "right" if question.kind == "right_turns" else "total"
    truth = right if kind == "right" else right + left
    said = truth + rng.choice([1, 2]) if plant == "count_final" else truth
    if style == "thinking":
        w.put("</think>\n")
    w.put(">>> FINAL ANSWER: " if style == "structured" else "\n")
    w.put(f"{'Right' if kind == 'right' else 'Total'} turns = {said}" if style == "structured"
          else f"So there are {said} {'right ' if kind == 'right' else ''}turns in total", "planted"
          if plant == "count_final" else "fact")
    options = dict(question.options)
    letter = next((k for k, v in options.items() if v == str(said)), None)
    w.put("\n    \\boxed{" + (letter or str(said)) + "}\n" if style == "structured" else
          f". The answer is \\boxed{{{letter or said}}}.\n")


# ============================================================== spatial map ========================================
PLACE_NAMES = [
    "Camelot Antiques", "Andy's Autos", "Oscar's Office Supplies", "Quokka's Quilts", "Marshland Mart",
    "Parrot's Pottery", "Walrus Watches", "Lantern Lane Library", "Bluebell Bakery", "Granite Gym",
    "Hilltop Hardware", "Juniper Jewelers", "Kestrel Kitchenware", "Maple Music Store", "Nimbus Newsstand",
    "Orchid Optics", "Pelican Pharmacy", "Riverside Records", "Sundial Shoes", "Tidewater Toys", "Umber Upholstery",
    "Violet Vineyard", "Willow Workshop", "Yarrow Yarns", "Zephyr Zoo", "Copper Kettle Cafe", "Driftwood Deli",
    "Ember Electronics", "Fjord Fish Market", "Golden Gate Gallery",
]
MAP_TEMPLATE = ("Consider a map with multiple objects:\n{statements}\n\nPlease answer the following multiple-choice "
                "question based on the provided information. {question} Available options:\n{options}.")


def spatialeval_map(rng: random.Random) -> tuple[str, dict[str, tuple[int, int]]]:
    """A SpatialEval-style map prompt and the hidden coordinates it was made from."""
    n = rng.randint(5, 7)
    names = rng.sample(PLACE_NAMES, n)
    xs, ys = rng.sample(range(1, 20), n), rng.sample(range(1, 20), n)
    coords = {p: (x, y) for p, x, y in zip(names, xs, ys, strict=True)}

    def direction(a: str, b: str) -> str:
        (ax, ay), (bx, by) = coords[a], coords[b]
        return ("North" if ay > by else "South") + ("east" if ax > bx else "west")

    statements = [f"{names[0]} is in the map."]
    for i in range(1, n):
        for b in rng.sample(names[:i], min(i, rng.choice([1, 2]))):
            statements.append(f"{names[i]} is to the {direction(names[i], b)} of {b}.")
    kind = rng.choice(["direction", "object", "count"])
    if kind == "direction":
        a, b = rng.sample(names, 2)
        question = f"In which direction is {a} relative to {b}?"
        opts = ["Northeast", "Northwest", "Southwest", "Southeast"]
        rng.shuffle(opts)
    elif kind == "object":
        b = rng.choice(names)
        d = rng.choice(["Northeast", "Northwest", "Southwest", "Southeast"])
        question = f"Which object is in the {d} of {b}?"
        opts = [*rng.sample([p for p in names if p != b], 3), "None of the Options"]
    else:
        b = rng.choice(names)
        d = rng.choice(["Northeast", "Northwest", "Southwest", "Southeast"])
        question = f"How many objects are in the {d} of {b}?"
        opts = [str(v) for v in rng.sample(range(0, 5), 4)]
    prompt = MAP_TEMPLATE.format(statements=" ".join(statements), question=question,
                                 options="\n".join(f"{'ABCD'[i]}. {o}" for i, o in enumerate(opts)))
    return prompt, coords


def map_traces(prompt: str, coords: dict[str, tuple[int, int]], rng: random.Random) -> Iterator[dict[str, Any]]:
    problem = read_map(prompt)
    assert problem is not None and problem.question is not None
    orders = problem.orders()
    style = rng.choice(["coordinates", "chains", "thinking"])
    for planted in (False, True):
        w = Writer()
        _write_map(problem, orders, coords, style, w, random.Random(rng.random()), planted)
        target = next((s for s in w.slots if s[2] == "planted"), None)
        yield record("spatialmap", "spatialeval", style, prompt, w.text(), (target[0], target[1]) if target else None,
                     "a refuted direction" if planted else "")


def _entailed_pairs(problem: Any, orders: Any) -> list[tuple[str, str, str]]:
    out = []
    for a, b in itertools.permutations(problem.places, 2):
        ns, ew = orders.less("y", b, a), orders.less("x", b, a)
        if ns is not None and ew is not None:
            out.append((a, ("North" if ns else "South") + ("east" if ew else "west"), b))
    return out


_FLIP = {"Northeast": "Southwest", "Southwest": "Northeast", "Northwest": "Southeast", "Southeast": "Northwest"}
_FLIP_ONE = {"Northeast": ["Northwest", "Southeast"], "Southwest": ["Southeast", "Northwest"],
             "Northwest": ["Northeast", "Southwest"], "Southeast": ["Southwest", "Northeast"]}


def _write_map(problem: Any, orders: Any, coords: dict[str, tuple[int, int]], style: str, w: Writer,
               rng: random.Random, planted: bool) -> None:
    derived = [p for p in _entailed_pairs(problem, orders)
               if (p[0], p[1].lower(), p[2]) not in problem.statements]
    rng.shuffle(derived)
    derived = derived[:rng.randint(2, 5)] or _entailed_pairs(problem, orders)[:2]
    plant_at = rng.randrange(len(derived)) if planted else -1
    if planted and problem.question.kind == "count" and rng.random() < 0.4:
        plant_at = -1  # the planted error is the count below, when there is one
    if style == "thinking":
        w.put("<think>\nLet me work out the layout.\n")
    if style == "coordinates":
        w.put("I'll give each place coordinates, with x growing to the east and y growing to the north.\n")
        for place in problem.places:
            x, y = coords[place]
            w.put(f"- {place}: ({x}, {y})\n")
        w.put("\n")
    for i, (a, d, b) in enumerate(derived):
        said = d
        if i == plant_at:
            said = _FLIP[d] if rng.random() < 0.5 else rng.choice(_FLIP_ONE[d])
        if style == "chains":
            w.put(rng.choice(["From the statements, ", "Following the chain of statements, ", "Therefore, "]))
        elif style == "thinking" and rng.random() < 0.3:
            other = rng.choice(_FLIP_ONE[d])
            w.put(f"Could {a} be to the {other} of {b}? No, the statements rule that out.\n")
        short = {"Northeast": "NE", "Northwest": "NW", "Southeast": "SE", "Southwest": "SW"}
        phrasing = rng.randrange(5)
        if phrasing == 0:
            text = f"{a} is to the {said} of {b}"
        elif phrasing == 1:
            text = f"{a} is {said.lower()} of {b}"
        elif phrasing == 2:
            text = f"{a} lies {said[:5].lower()}-{said[5:].lower()} of {b}"
        elif phrasing == 3:
            text = f"{a} is {short[said]} of {b}"
        else:  # the same fact from the other side
            text = f"{b} is to the {_FLIP[said]} of {a}"
        w.put(text, "planted" if i == plant_at else "fact")
        w.put(".\n")
    q = problem.question
    if q.kind == "count" and rng.random() < 0.7:
        from interlock.verifiers.spatialmap import count_range

        sure, possible = count_range(problem, orders, q.b, q.direction)
        if sure == possible:
            said_count = sure
            slot = "fact"
            if planted and plant_at < 0:
                said_count, slot = possible + 1 + rng.randrange(2), "planted"
            w.put(f"{said_count} objects are to the {q.direction} of {q.b}", slot)
            w.put(".\n")
    if style == "thinking":
        w.put("</think>\n")
    options = dict(q.options)
    letter = None
    if q.kind == "direction":
        ns, ew = orders.less("y", q.b, q.a), orders.less("x", q.b, q.a)
        if ns is not None and ew is not None:
            d = ("North" if ns else "South") + ("east" if ew else "west")
            letter = next((k for k, v in options.items() if v == d), None)
    if letter is None:
        w.put("\nThe answer follows from the layout above.\n")
        return
    w.put(f"\nThe answer is \\boxed{{{letter}}}.\n")


# ============================================================== the corpus =========================================
def build(n: int, seed: int, *, verifiers: tuple[str, ...] = ("zebra", "maze", "spatialmap"),
          progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """``n`` puzzles per format, each solved correctly and with one planted error."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    if "zebra" in verifiers:
        for i in range(n):
            houses, features = rng.choice([(3, 3), (4, 3), (4, 4), (5, 4), (5, 5), (6, 4)])
            zeroeval, interwhen, _ = zebralogic_puzzle(random.Random(seed * 1000 + i), houses, features)
            out.extend(zebra_traces(zeroeval, "zebralogic", rng))
            if i % 3 == 0:
                out.extend(zebra_traces(interwhen, "interwhen", rng))
            if progress:
                progress(f"zebra {i + 1}/{n}")
        for prompt in reasoning_gym_zebras(n, seed):
            out.extend(zebra_traces(prompt, "reasoning-gym", rng))
    if "maze" in verifiers:
        for i in range(n):
            out.extend(maze_traces(spatialeval_maze(random.Random(seed * 1000 + i)), "spatialeval", rng))
        for prompt in reasoning_gym_mazes(max(2, n // 2), seed):
            out.extend(maze_traces(prompt, "reasoning-gym", rng))
    if "spatialmap" in verifiers:
        for i in range(n):
            prompt, coords = spatialeval_map(random.Random(seed * 1000 + i))
            out.extend(map_traces(prompt, coords, rng))
    return out


def main() -> int:
    import argparse
    import sys

    parser = argparse.ArgumentParser(description="write a structured-reasoning corpus as JSON Lines")
    parser.add_argument("--puzzles", type=int, default=4, help="puzzles per format")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verifier", action="append", choices=["zebra", "maze", "spatialmap"])
    args = parser.parse_args()
    for row in build(args.puzzles, args.seed, verifiers=tuple(args.verifier or ("zebra", "maze", "spatialmap"))):
        sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["build", "map_traces", "maze_traces", "spatialeval_map", "spatialeval_maze", "zebra_traces",
           "zebralogic_puzzle"]
