from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from interlock import Chunk, ConfigError, Span, StepBoundary, Trace, Verifier
from interlock.monitor.scheduler import Scheduler
from interlock.monitor.steps import step_ends


def test_step_ends_lines_and_sentences() -> None:
    text = "So 16 - 3 = 13. He has 13.5 eggs!\nNext line e.g. this"
    ends = step_ends(text, 0)
    assert [text[:e] for e in ends] == ["So 16 - 3 = 13. ", "So 16 - 3 = 13. He has 13.5 eggs!\n",
                                        "So 16 - 3 = 13. He has 13.5 eggs!\nNext line e.g. "]


def test_decimal_point_is_not_a_boundary() -> None:
    assert step_ends("It costs $2.50 each", 0) == []


def test_a_list_number_belongs_to_its_step() -> None:
    text = "1. 4 * 2 = 8\n2. 2 * 7 = 15\n12. Then there are 2. Done\n"
    ends = step_ends(text, 0)
    steps = [text[a:b] for a, b in zip([0, *ends], ends, strict=False)]
    assert steps == ["1. 4 * 2 = 8\n", "2. 2 * 7 = 15\n", "12. Then there are 2. ", "Done\n"]


class _Nothing(Verifier):
    name = "nothing"
    trigger = StepBoundary()

    def check(self, state: object) -> None:
        return None


def _segment(pieces: list[str]) -> list[tuple[int, int, str]]:
    trace = Trace()
    sched = Scheduler(trace, [_Nothing()])
    steps = []
    for piece in pieces:
        trace.append(Chunk(piece))
        steps += [(d.step.span.start, d.step.span.end, d.step.text) for _, d in sched.advance()]
    steps += [(d.step.span.start, d.step.span.end, d.step.text) for _, d in sched.advance(final=True)]
    return steps


@given(st.text(alphabet="ab 1.!?\n\"", max_size=60), st.lists(st.integers(0, 60), max_size=8))
def test_segmentation_does_not_depend_on_chunking(text: str, cuts: list[int]) -> None:
    points = sorted({c for c in cuts if 0 < c < len(text)})
    pieces = [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]
    assert _segment(pieces) == _segment([text] if text else [])


@given(st.text(alphabet="ab 1.!?\n", max_size=60))
def test_steps_are_ordered_slices_that_cover_every_visible_character(text: str) -> None:
    steps = _segment([text])
    covered = set()
    last_end = 0
    for start, end, piece in steps:
        assert text[start:end] == piece and piece.strip()
        assert start >= last_end
        last_end = end
        covered.update(range(start, end))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())


def test_trace_cut_counts_tokens_and_epochs() -> None:
    trace = Trace("p")
    trace.append(Chunk("abc", token_ids=(1, 2)))
    trace.append(Chunk("def", token_ids=(3,)))
    trace.append(Chunk("ghi", token_ids=(4, 5, 6)))
    assert (trace.kept_tokens, trace.epoch) == (6, 0)
    removed = trace.cut(4)
    assert removed == "efghi"
    assert trace.text == "abcd"
    # The chunk straddling the cut keeps its tokens counted; the whole chunks after it are discarded.
    assert (trace.kept_tokens, trace.discarded_tokens, trace.epoch) == (3, 3, 1)
    assert trace.still_valid(0, Span(0, 4))
    assert not trace.still_valid(0, Span(3, 6))
    trace.inject("FB")
    assert trace.is_injected(4) and not trace.is_injected(3)
    assert trace.injected_end_before(10) == 6


def test_trace_cut_out_of_range_names_the_problem() -> None:
    trace = Trace()
    trace.append(Chunk("abc"))
    with pytest.raises(ConfigError, match="cannot cut the trace at 9: it has 3 characters"):
        trace.cut(9)


def test_span_validation() -> None:
    with pytest.raises(ConfigError, match=r"invalid span \[5, 2\)"):
        Span(5, 2)
