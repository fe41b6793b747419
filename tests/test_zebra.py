"""The ``zebra`` verifier: logic-grid puzzles read from ZebraLogic, interwhen and reasoning-gym prompts into z3;
assignments the trace states checked against the clues (with the clues they break), suppositions and retractions
left alone, the final grid checked clue by clue."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from interlock import Fail, Pass, Unknown
from interlock.verifiers.zebra import Lexicon, Zebra, read_puzzle
from interlock.verifiers.zebra.lexicon import Entity, normalize, surface_forms
from interlock.verifiers.zebra.puzzle import holds, read_clue

PUZZLE = """There are 3 houses, numbered 1 to 3 from left to right, as seen from across the street. Each house is \
occupied by a different person. Each house has a unique attribute for each of the following characteristics:
 - Each person has a unique name: `Peter`, `Eric`, `Alice`
 - The people are of nationalities: `dane`, `brit`, `swede`
 - Each mother is accompanied by their child: `Bella`, `Fred`, `Alice`

## Clues:
1. The British person is in the first house.
2. Peter is directly left of the Dane.
3. The person's child is named Alice is the Swedish person.
4. Eric is not in the third house.
5. There is one house between the person's child is named Fred and Alice.
6. The person's child is named Bella is somewhere to the right of Peter.
7. The person's child is named Bella is in the third house.
"""
# the solution: house 1 Eric, brit, Fred; house 2 Peter, swede, Alice (child); house 3 Alice, dane, Bella
ZEROEVAL = ("\n# Example Puzzle \n\nThere are 3 houses, numbered 1 to 3 from left to right, as seen from across the "
            "street. Each house is occupied by a different person. Each house has a unique attribute for each of the "
            "following characteristics:\n - Each person has a unique name: `Peter`, `Eric`, `Arnold`.\n - Each "
            "person has a unique favorite drink: `tea`, `water`, `milk`\n\n## Clues for the Example Puzzle\n\n1. "
            "Peter is in the second house.\n\n# Puzzle to Solve \n\n" + PUZZLE
            + '\n# Instruction\n\n{\n    "solution": {\n        "House 1": {\n            "Name": "___",\n'
              '            "Nationality": "___",\n            "Children": "___"\n        }\n    }\n}\n')


def fails(text: str, prompt: str = ZEROEVAL, **kw: object) -> list[tuple[str, str]]:
    return [(text[v.span.start:v.span.end], v.message) for v in Zebra(**kw).scan(text, prompt=prompt)
            if isinstance(v, Fail) and v.span is not None]


# --- the puzzle ---------------------------------------------------------------------------------------------------

def test_zeroeval_prompt_skips_the_example_and_reads_every_clue() -> None:
    puzzle = read_puzzle(ZEROEVAL)
    assert puzzle is not None and puzzle.houses == 3 and puzzle.source == "zebralogic"
    assert [f.key for f in puzzle.features] == ["Name", "Nationality", "Children"]
    assert [(c.number, c.kind) for c in puzzle.clues] == [(1, "at"), (2, "directly_left"), (3, "same"),
                                                         (4, "not_at"), (5, "gap"), (6, "right_of"), (7, "at")]
    # the child named Alice and the person named Alice are told apart by the words around the name
    assert puzzle.clues[2].a == Entity(2, "Alice") and puzzle.clues[4].b == Entity(0, "Alice")
    assert puzzle.clues[0].a == Entity(1, "brit") and puzzle.clues[4].gap == 1


def test_interwhen_and_reasoning_gym_prompts_are_read() -> None:
    interwhen = ("there are 2 houses, numbered 1 to 2 from left to right, as seen from across the street. each house "
                 "is occupied by a different person.\n- 'name': 'arnold', 'eric'\n- 'pet': 'cat', 'dog'\n\n## clues:\n"
                 "1. eric is somewhere to the left of arnold.\n"
                 "2. the person who owns a dog is not in the first house.\n")
    puzzle = read_puzzle(interwhen)
    assert puzzle is not None and puzzle.source == "interwhen"
    assert [f.key for f in puzzle.features] == ["name", "pet"]
    assert [c.kind for c in puzzle.clues] == ["left_of", "not_at"]
    rg = ("This is a logic puzzle. There are 2 houses (numbered 1 on the left, 2 on the right), from the perspective "
          "of someone standing across the street from them. Each has a different person in them. They have different "
          "characteristics:\n - Each person has a unique name: bob, alice\n - Each person has a favorite drink: tea, "
          "milk\n\n1. The tea drinker is in the second house.\n2. Bob is the person who likes milk.\n\nWhat is Name of "
          "the person who lives in House 1?? Provide only the name of the person as your final answer.")
    puzzle = read_puzzle(rg)
    assert puzzle is not None and puzzle.source == "reasoning-gym"
    assert puzzle.question is not None and (puzzle.question.feature, puzzle.question.house) == (0, 1)
    assert Zebra.applies_to(rg) and Zebra.applies_to(ZEROEVAL) and not Zebra.applies_to("What is 2 + 2?")


def test_a_clue_no_template_fits_is_reported_never_guessed() -> None:
    prompt = PUZZLE.replace("7. The person's child is named Bella is in the third house.",
                            "7. The person's child is named Bella lives far from the Dane.")
    puzzle = read_puzzle(prompt)
    assert puzzle is not None and [c.number for c in puzzle.unread] == [7]
    verdicts = Zebra().scan("Eric is in house 1.\n", prompt=prompt)
    unknown = [v for v in verdicts if isinstance(v, Unknown)]
    assert len(unknown) == 1 and "clue 7" in unknown[0].reason and "lives far from" in unknown[0].reason
    assert not [v for v in verdicts if isinstance(v, Fail)]


@pytest.mark.parametrize(("phrase", "feature", "value"), [
    ("the British person", 1, "brit"), ("the Swedish person", 1, "swede"), ("the Dane", 1, "dane"),
    ("the person's child is named Alice", 2, "Alice"), ("Alice", 0, "Alice"),
    ("the person who is the mother of Fred", 2, "Fred"),
])
def test_describing_phrases_resolve_to_one_value(phrase: str, feature: int, value: str) -> None:
    puzzle = read_puzzle(PUZZLE)
    assert puzzle is not None
    assert puzzle.lexicon.resolve(phrase).entity == Entity(feature, value)


def test_forms_longest_match_months_and_shared_values() -> None:
    lexicon = Lexicon([("People have unique heights", ("short", "very short")),
                       ("Each person has a unique birthday month", ("feb", "sept")),
                       ("They all have a unique favorite flower", ("roses", "lilies")),
                       ("Each person has a favorite color", ("red", "blue")),
                       ("People have unique hair colors", ("red", "black"))])
    assert lexicon.resolve("the person who is very short").entity == Entity(0, "very short")
    assert lexicon.resolve("the person who is short").entity == Entity(0, "short")
    assert lexicon.resolve("the person whose birthday is in February").entity == Entity(1, "feb")
    assert lexicon.resolve("the person who loves the rose bouquet").entity == Entity(2, "roses")
    assert lexicon.resolve("the person who loves the boquet of lilies").entity == Entity(2, "lilies")
    assert lexicon.resolve("the person whose favorite color is red").entity == Entity(3, "red")
    assert lexicon.resolve("the person who has red hair").entity == Entity(4, "red")
    assert lexicon.resolve("the person who loves red").entity == Entity(3, "red")
    assert lexicon.resolve("the person who likes blue and black").entity is None  # two values: not one entity
    assert lexicon.resolve("the gardener").entity is None


# --- claims in the trace ------------------------------------------------------------------------------------------

def test_a_wrong_assignment_is_flagged_with_the_clues_it_breaks() -> None:
    text = "Clue 1 puts the Brit first.\nSo the British person is in house 2.\nThen Peter is in house 2.\n"
    assert fails(text) == [("the British person is in house 2",
                            "'the British person is in house 2' contradicts clue 1 (The British person is in the "
                            "first house).")]


@pytest.mark.parametrize("text", [
    "Eric lives in house 1. Peter is in the second house. Alice is in house 3.\n",
    "Peter must be in House 2, so the Dane is in house 3 and the British person is in house 1.\n",
    "Eric is not in house 3. Peter is directly left of the Dane. Bella's mother, Alice, is in house 3.\n",
    "House 1: Eric, brit, Fred\nHouse 2: Peter, swede\nHouse 3: Alice, dane, Bella\n",
    "| House | Name | Nationality | Children |\n|---|---|---|---|\n| 1 | Eric | brit | Fred |\n"
    "| 2 | Peter | ? | Alice |\n",
    "| | House 1 | House 2 | House 3 |\n|---|---|---|---|\n| Name | Eric | Peter | Alice |\n"
    "| Children | Fred | Alice | Bella |\n",
])
def test_true_assignments_in_prose_rows_and_tables_pass(text: str) -> None:
    assert fails(text) == []


def test_rows_tables_and_streamed_json_cells_are_read_and_judged() -> None:
    text = "| House | Name | Nationality |\n|---|---|---|\n| 1 | Eric | swede |\n"
    assert fails(text) == [("swede", "'House 1: Nationality = swede' contradicts clue 1 (The British person is in the "
                                     "first house)."),
                           ("Eric | swede", "the final grid contradicts clue 1 (The British person is in the first "
                                            "house).")]
    text = "| | House 1 | House 2 | House 3 |\n|---|---|---|---|\n| Name | Peter | Eric | Alice |\n"
    assert [s for s, _ in fails(text)] == ["Peter", "Eric", "Peter | Eric | Alice"]  # two cells, and the grid
    text = "House 3: Name = Eric, Children = Bella\n"
    assert [s for s, _ in fails(text)] == ["Name = Eric", "Name = Eric, Children = Bella"]
    text = '{\n  "House 1": {\n    "Name": "Eric",\n    "Nationality": "dane",\n'
    assert [s for s, _ in fails(text)] == ["dane", 'Eric",\n    "Nationality": "dane']


@pytest.mark.parametrize("text", [
    "Suppose the Dane is in house 1. Then Peter would be in house 0, which is impossible. So that fails.\n",
    "What if Peter is in house 3? Then the Dane has no house to his right.\n",
    "Peter is in house 3. Wait, no: clue 2 needs the Dane to his right, so Peter is in house 2.\n",
    "Let's try Eric in house 2. Then the Brit would be in house 1 and clue 4 is fine. Hmm, but clue 7 puts Bella in "
    "house 3 and clue 6 then... this doesn't work.\n",
    "Case 1: Alice is in house 1. Then clue 5 fails.\nCase 2: Alice is in house 3. This works.\n",
    "It is not true that the Dane is in house 1.\n",
    "Peter is in house 1 or house 2.\n",
    "I previously wrote that Eric is in house 2, which was a mistake.\n",
    "The claim 'Peter lives in house 3' is wrong.\n",
    "Thus, Alice, Eric, and Peter must be in House 3, House 1, and House 2.\n",  # a list: not "Peter in 3"
    "The Dane and Peter are in houses 3 and 2.\n",
])
def test_suppositions_questions_and_retracted_steps_are_not_flagged(text: str) -> None:
    assert fails(text) == []


def test_a_retraction_counts_only_within_the_settle_window() -> None:
    late = "Peter is in house 3.\nClue 1 is about the Brit.\nClue 4 is about Eric.\nClue 6 says more.\nWait, no.\n"
    assert [s for s, _ in fails(late)] == ["Peter is in house 3"]
    assert fails(late, settle_steps=4) == []


def test_the_final_grid_is_checked_against_every_clue() -> None:
    good = ('{"solution": {"House 1": {"Name": "Eric", "Nationality": "brit", "Children": "Fred"}, '
            '"House 2": {"Name": "Peter", "Nationality": "swede", "Children": "Alice"}, '
            '"House 3": {"Name": "Alice", "Nationality": "dane", "Children": "Bella"}}}\n')
    verdicts = Zebra().scan(good, prompt=ZEROEVAL)
    assert not [v for v in verdicts if isinstance(v, Fail)]
    assert any(getattr(v, "note", "") == "the final grid satisfies all 7 clues" for v in verdicts)
    swapped = good.replace('"Name": "Eric"', '"Name": "@"').replace('"Name": "Peter"', '"Name": "Eric"') \
        .replace('"Name": "@"', '"Name": "Peter"')
    messages = [v.message for v in Zebra(settle_steps=0).scan(swapped, prompt=ZEROEVAL) if isinstance(v, Fail)]
    assert messages[-1] == "the final grid breaks clue 2 (Peter is directly left of the Dane)."
    assert len(messages) == 3  # and each wrong cell, with the clues it breaks


def test_thinking_before_the_answer_and_an_incomplete_json_answer() -> None:
    text = ("<think>\n| House | Name |\n|---|---|\n| 1 | Eric |\n</think>\n"
            '{"House 1": {"Name": "Eric"}, "House 2": {"Name": "Peter"}}\n')
    messages = [v.message for v in Zebra().scan(text, prompt=ZEROEVAL) if isinstance(v, Fail)]
    assert messages == ["the final grid leaves 7 cell(s) empty."]


def test_reasoning_gym_answers_are_checked() -> None:
    rg = ("This is a logic puzzle. There are 2 houses (numbered 1 on the left, 2 on the right), from the perspective "
          "of someone standing across the street from them. Each has a different person in them. They have different "
          "characteristics:\n - Each person has a unique name: bob, alice\n - Each person has a favorite drink: tea, "
          "milk\n\n1. The tea drinker is in the second house.\n2. Bob is the person who likes milk.\n\nWhat is Name of "
          "the person who lives in House 1?? Provide only the name of the person as your final answer.")
    right = Zebra().scan("The tea drinker is in house 2, so Bob is in house 1.\nAnswer: bob", prompt=rg)
    assert not [v for v in right if isinstance(v, Fail)]
    wrong = [v.message for v in Zebra().scan("Answer: alice", prompt=rg) if isinstance(v, Fail)]
    assert wrong == ["the final answer 'alice' (in house 1) contradicts clue 1 (The tea drinker is in the second "
                     "house); clue 2 (Bob is the person who likes milk)."]


def test_no_puzzle_in_the_prompt_is_a_vacuous_pass_not_undecided() -> None:
    verdicts = Zebra().scan("Peter is in house 2.\nDone.\n", prompt="Solve something.")
    assert [(type(v).__name__, v.checked) for v in verdicts if isinstance(v, Pass)] == [("Pass", False)] * 3
    assert verdicts[-1].note == "no logic-grid puzzle in the prompt"


def test_a_puzzle_given_to_the_constructor_and_pickling() -> None:
    import pickle

    z = Zebra(PUZZLE, settle_steps=0)
    clone = pickle.loads(pickle.dumps(z))
    for verifier in (z, clone):
        assert [s for s, _ in fails("Alice is in house 1.\n", prompt="", settle_steps=0)] == []  # no prompt puzzle
        found = [v for v in verifier.scan("Alice is in house 1.\n") if isinstance(v, Fail)]
        assert [v.feedback for v in found] == ["“Alice is in house 1” contradicts clue 5 (There is one house between "
                                               "the person's child is named Fred and Alice); clue 7 (The person's "
                                               "child is named Bella is in the third house)."]


# --- properties of the readers ------------------------------------------------------------------------------------

_NAMES = ["Peter", "Eric", "Arnold", "Alice", "Bob", "Carol"]
_TEMPLATES = {
    "at": "{a} is in the {ord} house.", "not_at": "{a} is not in the {ord} house.", "same": "{a} is {b}.",
    "directly_left": "{a} is directly left of {b}.", "left_of": "{a} is somewhere to the left of {b}.",
    "right_of": "{a} is somewhere to the right of {b}.", "next_to": "{a} and {b} are next to each other.",
    "gap": "There is one house between {a} and {b}.",
}
_DESCRIBE = {"brit": "the British person", "swede": "the Swedish person", "dane": "the Dane",
             "tea": "the tea drinker", "milk": "the person who likes milk", "water": "the one who only drinks water",
             "very short": "the person who is very short", "short": "the person who is short",
             "tall": "the person who is tall"}


@settings(max_examples=150, deadline=None)
@given(kind=st.sampled_from(sorted(_TEMPLATES)), a=st.integers(0, 2), b=st.integers(0, 2),
       fa=st.integers(0, 3), fb=st.integers(0, 3), house=st.integers(1, 3))
def test_every_clue_template_reads_back_to_its_relation(kind: str, a: int, b: int, fa: int, fb: int,
                                                         house: int) -> None:
    features = [("Each person has a unique name", ("Peter", "Eric", "Alice")),
                ("The people are of nationalities", ("brit", "swede", "dane")),
                ("Each person has a favorite drink", ("tea", "milk", "water")),
                ("People have unique heights", ("very short", "short", "tall"))]
    lexicon = Lexicon(features)
    ea, eb = Entity(fa, features[fa][1][a]), Entity(fb, features[fb][1][b])
    if kind not in ("at", "not_at") and ea == eb:
        return
    if kind in ("same", "not_same") and fa == fb:  # two values of one feature: never a clue (read as none)
        clue = read_clue(1, _TEMPLATES[kind].format(a=_DESCRIBE.get(ea.value, ea.value),
                                                    b=_DESCRIBE.get(eb.value, eb.value), ord="first"), lexicon, 3)
        assert clue.kind == "unread"
        return
    text = _TEMPLATES[kind].format(a=_DESCRIBE.get(ea.value, ea.value), b=_DESCRIBE.get(eb.value, eb.value),
                                   ord=["first", "second", "third"][house - 1])
    clue = read_clue(1, text[0].upper() + text[1:], lexicon, 3)
    assert (clue.kind, clue.a) == (kind, ea), (text, clue.problem)
    if kind in ("at", "not_at"):
        assert clue.house == house
    else:
        assert clue.b == eb
    position = {ea: 1, eb: 3} if ea != eb else {ea: house}
    assert holds(clue, position) is not None


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=0, max_size=80))
def test_resolving_any_text_never_raises_and_normalizing_is_idempotent(text: str) -> None:
    lexicon = Lexicon([("names", ("Peter", "Alice")), ("cars", ("ford f150", "tesla model 3"))])
    found = lexicon.resolve(text)
    assert found.entity is None or found.entity.value in ("Peter", "Alice", "ford f150", "tesla model 3")
    assert normalize(normalize(text)) == normalize(text)


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FFF), max_size=300))
def test_the_verifier_reads_any_text_without_raising(text: str) -> None:
    verdicts = Zebra(settle_steps=1).scan(text, prompt=ZEROEVAL)
    assert all(v.kind in ("pass", "fail", "unknown") for v in verdicts)
    assert not [v for v in verdicts if isinstance(v, Unknown) and "Error" in v.reason]


@pytest.mark.parametrize("value", ["roses", "boxes", "lily", "jan", "brit", "f150", "iphone 13"])
def test_surface_forms_include_the_value(value: str) -> None:
    assert normalize(value) in surface_forms(value)


def test_replay_cli_reads_jsonl_puzzles(tmp_path: object) -> None:
    import subprocess
    import sys
    from pathlib import Path

    path = Path(str(tmp_path)) / "zebra.jsonl"
    rows = [{"id": "good", "prompt": ZEROEVAL, "text": "Eric is in house 1. Peter is in house 2.\n"},
            {"id": "bad", "prompt": ZEROEVAL, "text": "The Dane is in house 1.\nThen more.\n"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = subprocess.run([sys.executable, "-m", "interlock", "replay", str(path), "--prompt-field", "prompt",
                          "--text-field", "text", "-v", "zebra", "--json", "--processes", "0"],
                         capture_output=True, text=True, timeout=300)
    records = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    traces = {r["id"]: r for r in records if r.get("type") == "trace"}
    assert traces["good"]["passed"] is True and traces["bad"]["passed"] is False
    failed = [v for v in traces["bad"]["verdicts"] if v["kind"] == "fail"]
    assert [v["text"] for v in failed] == ["The Dane is in house 1"]
    assert out.returncode == 1


async def test_a_live_run_rolls_back_to_the_wrong_step_and_the_feedback_is_not_read_back() -> None:
    from interlock import Monitor, StopReason
    from interlock.generators import Scripted

    wrong = "The British person is in house 1.\nPeter is in house 3.\nThen the Dane is in house 1.\nHmm.\n"
    fixed = "Peter is in house 2.\nThe Dane is in house 3.\n"
    result = await Monitor(Scripted({"": wrong, "Let me redo this step.\n": fixed}), [Zebra()]).run(ZEROEVAL)
    (rollback,) = result.interventions
    assert rollback.position == len("The British person is in house 1.\n")
    assert result.text == ("The British person is in house 1.\nWait, “Peter is in house 3” contradicts clue 5 (There "
                           "is one house between the person's child is named Fred and Alice); clue 7 (The person's "
                           "child is named Bella is in the third house). Let me redo this step.\n" + fixed)
    assert result.stop_reason is StopReason.COMPLETE and result.passed


def test_a_step_too_long_to_read_is_unknown_and_the_rest_is_read() -> None:
    text = "House 1: " + "Peter, " * 5000 + "\nThe Dane is in house 1.\nThen more.\n"
    verdicts = Zebra().scan(text, prompt=ZEROEVAL)
    assert [v.reason for v in verdicts if isinstance(v, Unknown)] == [
        "a step of 35,010 characters is not read (the limit is 20,000)"]
    assert [text[v.span.start:v.span.end] for v in verdicts if isinstance(v, Fail)] == ["The Dane is in house 1"]
