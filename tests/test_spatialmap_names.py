"""Spatial-map place names that hold a period ("St. Mary's Church", "Dr. Lee's Office", "J. P. Morgan Bank",
"Acme Co.") are read whole, in the prompt and in the trace, where the monitor's steps cut them at ". ".

Soundness first: a misread name merges or splits places, and a map read wrong can fail a true claim (a place split
in two is counted twice). Where the prompt leaves a name's end undecidable the map is not read at all.
"""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from interlock import Fail, Span
from interlock.verifiers.spatialmap import SpatialMap, read_map

HEAD = "Consider a map with multiple objects:\n"


def ask(statements: str, question: str, options: str) -> str:
    return (f"{HEAD}{statements}\n\nPlease answer the following multiple-choice question based on the provided "
            f"information. {question} Available options:\n{options}")


MAP = ("St. Mary's Church is in the map. Dr. Lee's Office is to the Northeast of St. Mary's Church. Acme Co. is to "
       "the Southwest of Dr. Lee's Office. Acme Co. is to the Southwest of St. Mary's Church. J. P. Morgan Bank is "
       "to the North of Acme Co. U.S. Post Office is to the Southeast of Dr. Lee's Office.")
COUNT = ask(MAP, "How many objects are in the Northeast of Acme Co.?", "A. 0\nB. 1\nC. 2\nD. 3")
OBJECT = ask(MAP, "Which object is in the Northeast of St. Mary's Church?",
             "A. Acme Co.\nB. Dr. Lee's Office\nC. J. P. Morgan Bank\nD. None of the options")


def fails(text: str, prompt: str) -> list[tuple[str, str, Span]]:
    return [(text[v.span.start:v.span.end], v.message, v.span) for v in SpatialMap().scan(text, prompt=prompt)
            if isinstance(v, Fail) and v.span is not None]


def test_names_with_periods_are_read_whole_from_the_prompt() -> None:
    problem = read_map(COUNT)
    assert problem is not None
    assert problem.places == ("St. Mary's Church", "Dr. Lee's Office", "Acme Co.", "J. P. Morgan Bank",
                              "U.S. Post Office")
    assert problem.statements == (
        ("Dr. Lee's Office", "northeast", "St. Mary's Church"), ("Acme Co.", "southwest", "Dr. Lee's Office"),
        ("Acme Co.", "southwest", "St. Mary's Church"), ("J. P. Morgan Bank", "north", "Acme Co."),
        ("U.S. Post Office", "southeast", "Dr. Lee's Office"))
    assert problem.question is not None and problem.question.b == "Acme Co."
    assert read_map(OBJECT) is not None and read_map(OBJECT).question.b == "St. Mary's Church"  # type: ignore[union-attr]


@pytest.mark.parametrize(("statements", "places"), [
    # the sentence's own period is the name's ("of Acme Co."), and the names around a period decide
    ("A is to the North of Acme Co. Acme Co. is to the West of B.", ("A", "Acme Co.", "B")),
    ("Zed's is to the North of No. 5 Bakery. No. 5 Bakery is in the map.", ("Zed's", "No. 5 Bakery")),
    # a note between the statements is no part of a name
    ("Mt. Hood Cafe is to the North of B. That is all. B is to the West of Mt. Hood Cafe.", ("Mt. Hood Cafe", "B")),
    # plain names read as before
    ("Andy's Autos is to the Northeast of Camelot Antiques. Camelot Antiques is in the map.",
     ("Andy's Autos", "Camelot Antiques")),
    # a single-letter name before a title or an initial
    ("A is to the North of B. Dr. Lee's Office is to the South of A.", ("A", "B", "Dr. Lee's Office")),
    ("B is to the North of J. Smith. J. Smith is in the map.", ("B", "J. Smith")),
    # ... where the statements elsewhere say which names there are
    ("B is in the map. C. D is in the map. A is to the North of B. C. D is to the South of A.",
     ("B", "C. D", "A")),
])
def test_where_each_name_ends(statements: str, places: tuple[str, ...]) -> None:
    problem = read_map(HEAD + statements)
    assert problem is not None and problem.places == places


def test_a_map_whose_names_cannot_be_told_apart_is_not_read() -> None:
    """"B. C. D" may be "B" and "C. D" or "B. C" and "D": nothing in the map says which."""
    prompt = HEAD + "A is to the North of B. C. D is to the South of A."
    assert read_map(prompt) is None
    assert not SpatialMap.applies_to(prompt)


def test_claims_about_names_with_periods_are_read_whole_across_the_steps_that_cut_them() -> None:
    text = ("First, Dr. Lee's Office is to the Northeast of St. Mary's Church.\n"
            "So J. P. Morgan Bank is south of Acme Co. That is settled.\n"
            "And Dr. Lee's Office is to the Southwest of St. Mary's Church.\n")
    found = fails(text, COUNT)
    assert [message for _, message, _ in found] == [
        "'J. P. Morgan Bank is south of Acme Co.': the map puts J. P. Morgan Bank to the north (the other axis is "
        "open) of Acme Co. (J. P. Morgan Bank is to the North of Acme Co.).",
        "'Dr. Lee's Office is to the Southwest of St. Mary's Church': the map puts Dr. Lee's Office to the "
        "northeast of St. Mary's Church (Dr. Lee's Office is to the Northeast of St. Mary's Church).",
    ]
    # each span starts in the step that completed the claim (the monitor's steps end at "J. ", "P. ", "St. "):
    # a rollback never reaches before the step the check was about
    assert [said for said, _, _ in found] == ["Morgan Bank is south of Acme Co.", "Mary's Church"]


def test_counts_and_answers_name_places_with_periods() -> None:
    assert fails("2 objects are to the northeast of Acme Co.\n", COUNT) == []
    assert [m for _, m, _ in fails("No objects are to the northeast of Acme Co.\n", COUNT)] == [
        "'No objects are to the northeast of Acme Co.': at least 2 places are to the northeast of Acme Co. on this "
        "map."]
    assert fails("The answer is \\boxed{Dr. Lee's Office}.", OBJECT) == []
    assert [m for _, m, _ in fails("The answer is \\boxed{A}.", OBJECT)] == [
        "the final answer is Acme Co., but the map rules out Acme Co. being to the northeast of St. Mary's Church."]


def test_a_name_cut_by_a_step_is_never_read_as_the_shorter_place_after_the_cut() -> None:
    """"St. Mary's Church" and "Mary's Church" are two places: the step after "St. " must not be read as a claim
    about the second (a true claim would be failed)."""
    prompt = ask("X is in the map. St. Mary's Church is to the South of X. Mary's Church is to the North of X.",
                 "In which direction is St. Mary's Church relative to X?", "A. North\nB. South")
    assert read_map(prompt).places == ("X", "St. Mary's Church", "Mary's Church")  # type: ignore[union-attr]
    assert fails("St. Mary's Church is to the South of X.\n", prompt) == []
    text = "Note: Mary's Church is to the South of X.\n"
    assert [s for s, _, _ in fails(text, prompt)] == ["Mary's Church is to the South of X"]


def test_a_claim_begun_in_an_earlier_step_is_flagged_from_the_step_that_ends_it() -> None:
    text = "We know that Dr. Lee's Office is to the Southwest of Acme Co. Fine.\n"
    ((said, message, span),) = fails(text, COUNT)
    assert message.startswith("'Dr. Lee's Office is to the Southwest of Acme Co.': the map puts Dr. Lee's Office to "
                              "the northeast of Acme Co.")
    assert said == "Lee's Office is to the Southwest of Acme Co."
    assert span == Span(text.index("Lee's"), text.index(" Fine"))


def end(sentence: str) -> str:
    """A sentence ended as people end it: "... of Acme Co." (the name's period is the sentence's)."""
    return sentence if sentence.endswith(".") else sentence + "."


NAMES = ("St. Mary's Church", "Dr. Lee's Office", "Acme Co.", "J. P. Morgan Bank", "U.S. Post Office", "No. 5 Bakery",
         "Mt. Hood Cafe", "Camelot Antiques", "Zed's", "Mr. Bean's Diner")


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 100_000))
def test_claims_true_in_a_placement_are_never_failed_whatever_periods_the_names_hold(seed: int) -> None:
    rng = random.Random(seed)
    names = rng.sample(NAMES, rng.randint(3, 6))
    xs, ys = rng.sample(range(20), len(names)), rng.sample(range(20), len(names))
    at = dict(zip(names, zip(xs, ys, strict=True), strict=True))

    def direction(a: str, b: str) -> str:
        return ("North" if at[a][1] > at[b][1] else "South") + ("east" if at[a][0] > at[b][0] else "west")

    pairs = [(names[i], b) for i in range(1, len(names)) for b in rng.sample(names[:i], min(i, 2))]
    statements = [f"{names[0]} is in the map."] + [end(f"{a} is to the {direction(a, b)} of {b}") for a, b in pairs]
    p = ask(" ".join(statements), f"How many objects are in the Northeast of {names[0]}?", "A. 0\nB. 1")
    problem = read_map(p)
    assert problem is not None and set(problem.places) == set(names)
    claims = "".join(end(f"{a} is to the {direction(a, b)} of {b}") + "\n" for a, b in itertools.permutations(names, 2))
    assert fails(claims, p) == []
    counts = "".join(end(f"{sum(direction(o, b) == d for o in names if o != b)} objects are to the {d} of {b}")
                     + "\n" for b in names for d in ("Northeast", "Northwest", "Southeast", "Southwest"))
    assert fails(counts, p) == []
    coords = "".join(f"{n}: ({x}, {y})\n" for n, (x, y) in at.items())
    assert fails(coords, p) == []
    # and the names are read whole: a statement turned round is flagged, naming both places
    a, b = pairs[0]
    turned = f"{b} is to the {direction(a, b)} of {a}"
    assert [m.split("': ")[0] for _, m, _ in fails(end(turned) + "\n", p)] == [
        "'" + turned]
