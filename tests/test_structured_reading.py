"""The pieces the structured verifiers share: the incremental step-wise reader (reading a text as it grows, or after
a rollback, gives what reading it whole gives), the settled-claims trigger, and what counts as taking a claim
back."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from interlock.monitor.scan import scan
from interlock.verifiers.revisions import Stance, mask_mentions, retraction, retracts, unescape
from interlock.verifiers.stepwise import StepwiseReader, settled_range, tail_range

_TEXT = st.text(alphabet=st.sampled_from(list("ab .\n!?x")), max_size=80)


def _count_reader() -> StepwiseReader[int, tuple[int, int, str]]:
    def step(state: int, text: str, start: int, end: int) -> tuple[int, list[tuple[int, int, str]]]:
        return state + 1, [(start, end, text[start:end])]

    return StepwiseReader(0, step)


@settings(max_examples=200, deadline=None)
@given(_TEXT, _TEXT, _TEXT)
def test_reading_as_the_text_grows_or_is_cut_equals_reading_it_whole(a: str, b: str, c: str) -> None:
    reader = _count_reader()
    reader.read(a)
    reader.read(a + b)
    grown = reader.read(a + b + c)
    reader.read(a + c)  # a rollback: the text after ``a`` replaced
    after_cut = reader.read(a + c)
    whole = _count_reader()
    assert [(r.start, r.end, r.state, r.items) for r in grown] == \
           [(r.start, r.end, r.state, r.items) for r in whole.read(a + b + c)]
    assert [(r.start, r.end, r.state, r.items) for r in after_cut] == \
           [(r.start, r.end, r.state, r.items) for r in _count_reader().read(a + c)]


def test_a_grown_text_reads_only_its_new_steps() -> None:
    reader = _count_reader()
    reader.read("one.\ntwo.\n")
    before = reader.steps_read
    reader.read("one.\ntwo.\nthree.\n")
    assert reader.steps_read - before == 1


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 50), min_size=0, max_size=20, unique=True), st.integers(0, 3))
def test_every_step_is_due_exactly_once(ends: list[int], settle: int) -> None:
    ends = sorted(ends)
    seen: list[int] = []
    previous = 0
    for end in ends:
        seen.extend(settled_range(ends, previous, end, settle))
        previous = end
    seen.extend(tail_range(ends, settle))
    assert sorted(seen) == list(range(len(ends)))


@given(st.sampled_from(["Suppose Peter is in house 2.", "What if Peter is in house 2?", "Maybe Peter is in house 2.",
                        "If Peter is in house 2, then Eric is in house 3.", "Let's try Peter in house 2.",
                        "Peter is in house 2 or 3.", "Case 1: Peter is in house 2."]))
def test_suppositions_and_hedges_assert_nothing(sentence: str) -> None:
    asserts, _ = Stance()(sentence + " ", 0)
    assert asserts is False


def test_suppositions_last_until_given_up_or_the_paragraph_ends() -> None:
    stance = Stance()
    asserts, carry = stance("Suppose Peter is in house 2. ", 0)
    assert (asserts, stance("Then Eric is in house 3. ", carry)[0]) == (False, False)
    assert stance("Clue 4 rules that out. ", carry) == (False, 0)
    assert stance("\n", carry) == (False, 0)


def test_what_takes_a_claim_back() -> None:
    assert retracts("Wait, no.") and retracts("That's a contradiction.") and retracts("Actually, it is house 3.")
    assert not retracts("Wait, let me double-check. Yes, it holds.")
    assert retraction("Let me re-check that.", after="Yes, correct.") is None
    assert retraction("Let me re-check that.", after="Then Eric is in house 2.") == 0
    assert not retracts("No two houses share a colour.")
    assert not retracts("Clue 3 says Peter is in house 2.")


def test_quotes_and_escapes_keep_every_offset() -> None:
    text = "He wrote 'Peter is in house 3' and “Eric is in house 2”; Peter's house is ~~2~~ 3."
    masked = mask_mentions(text)
    assert len(masked) == len(text) and "Peter is in house 3" not in masked and "Eric" not in masked
    assert "Peter's house is" in masked and "~~2~~" not in masked
    assert unescape("a\\nb\\tc") == "a \nb  c" and len(unescape("a\\nb")) == len("a\\nb")


def test_the_settled_trigger_scopes_a_check_back_to_the_step_it_judges() -> None:
    from interlock import Verifier
    from interlock.verifiers.settled import SettledSteps

    class Spans(Verifier):
        trigger = SettledSteps(2)

        def extract(self, view: object) -> object:
            return view

        def check(self, view: object) -> object:
            from interlock import Pass

            return Pass(note=f"{view.step.span.start}-{view.step.span.end}")  # type: ignore[attr-defined]

    notes = [v.note for v in scan(Spans(), "a.\nbb.\nccc.\ndddd.\n")]  # type: ignore[attr-defined]
    assert notes == ["0-3", "0-7", "0-12", "3-18"]
