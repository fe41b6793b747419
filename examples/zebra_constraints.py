"""Verify the claims of a zebra-puzzle trace with z3: a reasoning-gym puzzle turned into constraints.

reasoning-gym generates zebra puzzles offline. This example takes one, turns its clues into a
``ConstraintSpec`` (each person, colour, drink... is a variable holding its house number), checks that the
spec has exactly the puzzle's solution, then runs a monitored generation whose trace makes a wrong claim:
the ``constraints`` verifier names the clue it contradicts, the monitor rolls the step back, the trace goes
on, and the final answer is checked to follow from the clues (entailed, not merely possible).

    python3 -m pip install reasoning-gym
    python3 examples/zebra_constraints.py                 # scripted trace (no model needed)
    python3 examples/zebra_constraints.py --generate      # the embedded SmolLM2 writes the trace instead

The scripted generator stands in for a model so that the run is reproducible; ``--generate`` shows the
same verifier on a real, generated trace (the small model's claims are often wrong, which the verifier shows).
"""

from __future__ import annotations

import argparse
import random
import re
from typing import Any

import anyio
from interlock import Fail, Monitor
from interlock.generators import Scripted
from interlock.verifiers.constraints import AnswerCheck, Constraints, ConstraintSpec

SEED, PEOPLE, TRAITS = 42, 4, 3


def load_puzzle(seed: int = SEED, people: int = PEOPLE, traits: int = TRAITS) -> tuple[dict[str, Any], Any]:
    """One reasoning-gym zebra puzzle (its dataset entry) and the generator's puzzle object with the clues."""
    import reasoning_gym
    from reasoning_gym.logic.contrib.logic_puzzle.generate import generate_puzzle

    entry = reasoning_gym.create_dataset("zebra_puzzles", seed=seed, size=1, num_people=people,
                                         num_characteristics=traits)[0]
    _, puzzle = generate_puzzle(random.Random(seed + 0), people, traits)  # what the dataset does for item 0
    return entry, puzzle


def _name(literal: Any) -> str:
    return str(literal.name).replace("_", " ")


def _group(cls: type) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", " ", cls.__name__).lower()  # PhoneModel -> "phone model"


def spec_from_puzzle(puzzle: Any, question: str) -> ConstraintSpec:
    """The puzzle as constraints: one position variable per value, one named constraint per numbered clue."""
    names: dict[Any, str] = {}  # literal -> variable name
    taken: set[str] = set()
    for cls in puzzle.element_classes:  # Name first: a person keeps the bare name
        for x in puzzle.literals:
            if isinstance(x, cls):
                name = _name(x)
                if name.lower() in taken:  # a child named Alice among people named Alice: "child Alice"
                    name = f"{'child' if cls.__name__ == 'Children' else _group(cls)} {name.capitalize()}"
                names[x] = name
                taken.add(name.lower())
    groups = {_group(cls): [names[x] for x in puzzle.literals if isinstance(x, cls)]
              for cls in puzzle.element_classes}
    spec = ConstraintSpec().positions(groups, count=len(puzzle.houses), unit="house")
    for literal in puzzle.literals:
        phrase = str(literal.value).strip()
        if phrase.lower() != names[literal].lower():
            spec.alias(phrase, names[literal])  # "the person who loves red" names the variable "red"
        if type(literal).__name__ == "Children":  # "Billy's mother", "the mother of Billy"
            child = _name(literal).capitalize()
            for alias in (f"the mother of {child}", f"{child}'s mother"):
                if spec.vocabulary.lookup(alias) is None:
                    spec.alias(alias, names[literal])
    by_text = {str(clue): clue for clue in puzzle.clues}
    for number, text in re.findall(r"(?m)^(\d+)\. (.+)$", question):
        clue = by_text[text]
        kind, name = type(clue).__name__, f"clue {number}"
        if kind == "found_at":
            spec.equal(names[clue.value], clue.house, name=name, text=text)
        elif kind == "not_at":
            spec.different(names[clue.value], clue.house, name=name, text=text)
        else:
            a, b = names[clue.value1], names[clue.value2]
            if kind == "same_house":
                spec.equal(a, b, name=name, text=text)
            elif kind == "consecutive":
                spec.left_of(a, b, directly=True, name=name, text=text)
            elif kind == "beside":
                spec.next_to(a, b, name=name, text=text)
            elif kind == "left_of":
                spec.left_of(a, b, name=name, text=text)
            elif kind == "right_of":
                spec.right_of(a, b, name=name, text=text)
            elif kind in ("one_between", "two_between"):
                spec.distance(a, b, 2 if kind == "one_between" else 3, name=name, text=text)
            else:
                raise ValueError(f"clue type {kind} is not handled: {text}")
    return spec


def scripted_trace(solution: dict[str, int], names: list[str]) -> Scripted:
    """A trace that first puts someone in the wrong house, then, after the feedback, gets it right."""
    by_house = sorted((solution[n], n) for n in names)
    first_house, first = by_house[0]
    wrong_house = by_house[1][0]
    lines = [f"{n.capitalize()} lives in house {h}.\n" for h, n in by_house[1:]]
    wrong = f"{first.capitalize()} lives in house {wrong_house}.\n"
    right = f"{first.capitalize()} lives in house {first_house}.\n"
    answer = f"Final answer: {next(n for h, n in by_house if h == 1).capitalize()}\n"
    return Scripted({"": lines[0] + wrong + "".join(lines[1:]) + answer,
                     "Let me redo this step.\n": right + "".join(lines[1:]) + answer})


async def main(generate: bool) -> None:
    entry, puzzle = load_puzzle()
    question = entry["question"]
    print(question, "\n")
    spec = spec_from_puzzle(puzzle, question)
    answer = AnswerCheck(r"(?i)final answer:\s*(?P<who>[A-Za-z]+)", "{who} lives in house 1")
    verifier = Constraints(spec, answer=answer)
    solution = verifier.solve() or {}
    unique = verifier.session().count_solutions(limit=2) == 1
    print(f"z3 solution: {solution}\nunique: {unique}; dataset answer: {entry['answer']}; "
          f"house 1 by z3: {next(n for n, h in solution.items() if h == 1 and n in _names(puzzle))}\n")

    if generate:
        from interlock.generators import Transformers

        generator: Any = Transformers.default(max_new_tokens=160)
        prompt = question + "\nThink step by step, one claim per line, then write 'Final answer: <name>'."
    else:
        generator = scripted_trace({k.lower(): v for k, v in solution.items()}, _names(puzzle))
        prompt = question
    result = await Monitor(generator, [verifier]).run(prompt)
    for i in result.interventions:
        print(f"{i.action.value} at {i.position} ({'applied' if i.applied else 'not applied'}): {i.message}")
    for v in result.verdicts:
        if isinstance(v, Fail):
            print(f"FAIL {v.span}: {v.message}")
    print("\n--- final trace ---\n" + result.text)
    print(f"stop: {result.stop_reason.value}; passed: {result.passed}; tokens: {result.tokens.to_dict()}")


def _names(puzzle: Any) -> list[str]:
    return [_name(x) for x in puzzle.literals if type(x).__name__ == "Name"]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--generate", action="store_true", help="let the embedded SmolLM2 model write the trace")
    anyio.run(main, parser.parse_args().generate)
