"""The ``spatialmap`` verifier: SpatialEval's spatial maps read from the prompt; directions, counts and coordinates
the trace states are judged exactly against what the map entails, failing only on a contradiction."""

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
from interlock import Fail, Pass
from interlock.verifiers.spatialmap import SpatialMap, direction_name, read_map

STATEMENTS = ("Camelot Antiques is in the map. Andy's Autos is to the Northeast of Camelot Antiques. Oscar's Office "
              "Supplies is to the Southeast of Camelot Antiques. Oscar's Office Supplies is to the Southwest of Andy's "
              "Autos. Quokka's Quilts is to the Southwest of Andy's Autos. Quokka's Quilts is to the Northwest of "
              "Oscar's Office Supplies. Marshland Mart is to the Northeast of Quokka's Quilts. Marshland Mart is to "
              "the Northeast of Camelot Antiques. Parrot's Pottery is to the Northwest of Marshland Mart. Parrot's "
              "Pottery is to the Northeast of Quokka's Quilts.")


def prompt(question: str, options: str) -> str:
    return (f"Consider a map with multiple objects:\n{STATEMENTS}\n\nPlease answer the following multiple-choice "
            f"question based on the provided information. {question} Available options:\n{options}.")


DIRECTION = prompt("In which direction is Andy's Autos relative to Oscar's Office Supplies?",
                   "A. Northeast\nB. Northwest\nC. Southwest\nD. Southeast")
OBJECT = prompt("Which object is in the Southwest of Andy's Autos?",
                "A. Marshland Mart\nB. Oscar's Office Supplies\nC. Parrot's Pottery\nD. None of the Options")
COUNT = prompt("How many objects are in the Northeast of Camelot Antiques?", "A. 0\nB. 1\nC. 2\nD. 3")


def fails(text: str, p: str = DIRECTION, **kw: object) -> list[tuple[str, str]]:
    return [(text[v.span.start:v.span.end], v.message) for v in SpatialMap(**kw).scan(text, prompt=p)
            if isinstance(v, Fail) and v.span is not None]


def test_the_map_and_its_orders() -> None:
    problem = read_map(DIRECTION)
    assert problem is not None and len(problem.places) == 6 and len(problem.statements) == 9
    assert problem.question is not None and problem.question.kind == "direction"
    orders = problem.orders()
    # Oscar's is east of Quokka's (Quokka's is to the Northwest of Oscar's)
    assert orders.less("x", "Quokka's Quilts", "Oscar's Office Supplies") is True
    assert orders.less("x", "Oscar's Office Supplies", "Quokka's Quilts") is False
    assert orders.less("x", "Marshland Mart", "Oscar's Office Supplies") is None  # the map leaves it open
    chain = orders.chain("y", "Oscar's Office Supplies", "Marshland Mart")
    assert chain is not None and [f.source for f in chain] == [1, 6]
    assert orders.consistent()
    assert SpatialMap.applies_to(DIRECTION) and not SpatialMap.applies_to("Which way is north?")


@pytest.mark.parametrize(("word", "name"), [("North-East", "northeast"), ("NE", "northeast"),
                                            ("south west", "southwest"), ("northern", "north"), ("Westward", "west"),
                                            ("up", None)])
def test_direction_names(word: str, name: str | None) -> None:
    assert direction_name(word) == name


@pytest.mark.parametrize(("text", "message"), [
    ("Andy's Autos is to the Northeast of Oscar's Office Supplies.\n", None),
    ("Oscar's Office Supplies is SE of Quokka's Quilts.\n", None),
    ("Marshland Mart is to the Southwest of Oscar's Office Supplies.\n",
     "'Marshland Mart is to the Southwest of Oscar's Office Supplies': the map puts Marshland Mart to the north (the "
     "other axis is open) of Oscar's Office Supplies (Oscar's Office Supplies is to the Southeast of Camelot "
     "Antiques; Marshland Mart is to the Northeast of Camelot Antiques)."),
    ("Andy's Autos is not northeast of Oscar's Office Supplies.\n",
     "'Andy's Autos is not northeast of Oscar's Office Supplies': the map puts Andy's Autos to the northeast of "
     "Oscar's Office Supplies (Oscar's Office Supplies is to the Southwest of Andy's Autos)."),
    ("Camelot Antiques lies south-west of Marshland Mart.\n", None),
    ("Suppose Marshland Mart is to the Southwest of Oscar's Office Supplies. That contradicts the map.\n", None),
    ("Marshland Mart is to the Southwest of Oscar's Office Supplies. Wait, no.\n", None),
])
def test_direction_claims_fail_only_on_a_contradiction(text: str, message: str | None) -> None:
    assert fails(text) == ([] if message is None else [(text.split(".")[0].replace("Wait, no", "").strip(), message)])


def test_abbreviations_the_trace_defines_and_first_words() -> None:
    text = "Let Oscar's Office Supplies (OOS) be the reference. Marshland Mart is southwest of OOS.\n"
    assert [s for s, _ in fails(text)] == ["Marshland Mart is southwest of OOS"]
    assert [s for s, _ in fails("Marshland is to the Southwest of Oscar's Office Supplies.\n")] == [
        "Marshland is to the Southwest of Oscar's Office Supplies"]


def test_coordinates_are_checked_statement_by_statement() -> None:
    good = "Camelot Antiques: (0, 0)\nAndy's Autos: (4, 4)\nOscar's Office Supplies: (2, -2)\n"
    assert fails(good) == []
    bad = "Camelot Antiques: (0, 0)\nAndy's Autos: (-4, 4)\n"
    assert fails(bad) == [("Andy's Autos: (-4, 4)", "'Andy's Autos: (-4, 4)': with these coordinates, 'Andy's Autos "
                                                    "is to the Northeast of Camelot Antiques' does not hold.")]
    downward = "y grows to the south here.\nCamelot Antiques: (0, 0)\nAndy's Autos: (4, -4)\n"
    assert fails(downward) == []


def test_counts_and_final_answers() -> None:
    assert fails("2 objects are to the northeast of Camelot Antiques.\n", COUNT) == []
    assert [s for s, _ in fails("No objects are to the northeast of Camelot Antiques.\n", COUNT)] == [
        "No objects are to the northeast of Camelot Antiques"]
    assert fails("The answer is \\boxed{A}.", DIRECTION) == []
    assert fails("The answer is \\boxed{C}.", DIRECTION) == [
        ("C", "the final answer says Andy's Autos is to the southwest of Oscar's Office Supplies, but the map "
              "contradicts it (Oscar's Office Supplies is to the Southwest of Andy's Autos).")]
    assert fails("\\boxed{B}", OBJECT) == []
    assert [m for _, m in fails("\\boxed{D}", OBJECT)] == [
        "the final answer is 'None of the Options', but the map puts Oscar's Office Supplies to the southwest of "
        "Andy's Autos."]
    verdicts = SpatialMap().scan("\\boxed{C}", prompt=COUNT)
    assert [v.kind for v in verdicts if v.kind != "pass"] == ["unknown"]  # 2 is sure, 3 is possible: not decided
    assert [m for _, m in fails("\\boxed{A}", COUNT)] == [
        "the final answer is 0, but at least 2 places are to the northeast of Camelot Antiques."]


def test_no_map_is_a_vacuous_pass_not_undecided() -> None:
    verdicts = SpatialMap().scan("A is north of B.\n", prompt="Where is A?")
    assert all(isinstance(v, Pass) and not v.checked for v in verdicts)
    assert verdicts[-1].note == "no spatial map in the prompt"


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 100_000))
def test_claims_true_in_a_placement_of_the_map_are_never_failed(seed: int) -> None:
    """Soundness: every statement true of the hidden placement the map was made from is allowed by the map."""
    rng = random.Random(seed)
    names = [f"Place {chr(65 + i)}" for i in range(rng.randint(3, 6))]
    xs, ys = rng.sample(range(20), len(names)), rng.sample(range(20), len(names))
    at = dict(zip(names, zip(xs, ys, strict=True), strict=True))

    def direction(a: str, b: str) -> str:
        return ("North" if at[a][1] > at[b][1] else "South") + ("east" if at[a][0] > at[b][0] else "west")

    statements = [f"{names[0]} is in the map."] + [
        f"{names[i]} is to the {direction(names[i], b)} of {b}." for i in range(1, len(names))
        for b in rng.sample(names[:i], min(i, 2))]
    p = (f"Consider a map with multiple objects:\n{' '.join(statements)}\n\nPlease answer the following question. "
         f"In which direction is {names[0]} relative to {names[1]}? Available options:\nA. Northeast.")
    claims = "".join(f"{a} is to the {direction(a, b)} of {b}.\n" for a, b in itertools.permutations(names, 2))
    assert fails(claims, p) == []
    coords = "".join(f"{n}: ({x}, {y})\n" for n, (x, y) in at.items())
    assert fails(coords, p) == []


def test_replay_cli_reads_jsonl_maps(tmp_path: Path) -> None:
    path = tmp_path / "map.jsonl"
    rows = [{"id": "good", "prompt": DIRECTION, "text": "The answer is \\boxed{A}."},
            {"id": "bad", "prompt": DIRECTION,
             "text": "Marshland Mart is to the Southwest of Oscar's Office Supplies.\nThe answer is \\boxed{A}."}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "interlock", "replay", str(path), "--prompt-field", "prompt",
                          "--text-field", "text", "-v", "spatialmap", "--json", "--processes", "0"],
                         capture_output=True, text=True, timeout=300)
    traces = {r["id"]: r for r in map(json.loads, out.stdout.splitlines()) if r.get("type") == "trace"}
    assert traces["good"]["passed"] is True and traces["bad"]["passed"] is False
    assert [v["text"] for v in traces["bad"]["verdicts"] if v["kind"] == "fail"] == [
        "Marshland Mart is to the Southwest of Oscar's Office Supplies"]
