"""LoopGuard reads each chunk's new text only, and finds exactly what a scan of the whole text finds.

The incremental readers (words and their runs per period, characters and theirs, complete lines) are checked
against the whole-text functions on every prefix of texts cut into arbitrary chunks, including windows small
enough that words fall out of them, lone carriage returns, whitespace runs and texts shorter than a period; and
the guard's decisions chunk by chunk against a guard that rescans the text at every chunk.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from interlock import LoopGuard
from interlock.monitor.budgets.offline import OfflineRun
from interlock.monitor.chunks import Chunk
from interlock.monitor.governor import Capabilities
from interlock.monitor.governors.loop_guard import (
    Repetition,
    _CharWatch,
    _LineCounts,
    _TandemWatch,
    find_char_repeat,
    find_repeated_line,
    find_tandem_repeat,
)

PIECES = ["a", "b", "ab", "16", "eggs", "*", "=", " ", "  ", "\n", "\t", "\r", "YU", "x", ".", "Wait,", "\u00a0"]


@st.composite
def grown_texts(draw: Any) -> tuple[str, list[int]]:
    """A text made of a few pieces, repeated stretches included, and the ends of the chunks it arrives in."""
    parts: list[str] = []
    for _ in range(draw(st.integers(1, 12))):
        unit = "".join(draw(st.lists(st.sampled_from(PIECES), min_size=1, max_size=6)))
        parts.append(unit * draw(st.integers(1, 8)))
    text = "".join(parts)
    cuts = sorted({*draw(st.lists(st.integers(1, max(1, len(text))), max_size=40)), len(text)})
    return text, cuts


@settings(max_examples=300, deadline=None)
@given(grown_texts(), st.integers(2, 4), st.integers(1, 6), st.integers(1, 30), st.integers(8, 80))
def test_the_word_watch_finds_what_the_whole_text_scan_finds(grown: tuple[str, list[int]], min_repeats: int,
                                                             max_period: int, min_chars: int, window: int) -> None:
    text, cuts = grown
    watch = _TandemWatch(min_repeats, max_period, min_chars, window)
    for end in cuts:
        prefix = text[:end]
        assert watch.find(prefix) == find_tandem_repeat(prefix, min_repeats=min_repeats, max_period=max_period,
                                                        min_chars=min_chars, window=window), prefix


@settings(max_examples=300, deadline=None)
@given(grown_texts(), st.integers(1, 80), st.integers(1, 8), st.integers(4, 100))
def test_the_character_watch_finds_what_the_whole_text_scan_finds(grown: tuple[str, list[int]], min_chars: int,
                                                                  max_period: int, window: int) -> None:
    text, cuts = grown
    watch = _CharWatch(min_chars, max_period, window)
    for end in cuts:
        prefix = text[:end]
        assert watch.find(prefix) == find_char_repeat(prefix, max_period=max_period, min_chars=min_chars,
                                                      window=window), prefix


@settings(max_examples=300, deadline=None)
@given(grown_texts(), st.integers(2, 4), st.integers(1, 6))
def test_the_line_counts_find_what_the_whole_text_scan_finds(grown: tuple[str, list[int]], max_repeats: int,
                                                             min_chars: int) -> None:
    text, cuts = grown
    counts = _LineCounts()
    for end in cuts:
        prefix = text[:end]
        expected = find_repeated_line(prefix, max_repeats=max_repeats, min_chars=min_chars)
        assert counts.find(prefix, max_repeats=max_repeats, min_chars=min_chars) == expected, prefix
        if expected is not None:
            break  # (the guard acts on the first one)


def _rescanning_decisions(guard: LoopGuard, text: str, cuts: list[int]) -> list[tuple[int, Repetition | None]]:
    found: list[tuple[int, Repetition | None]] = []
    for end in cuts:
        prefix = text[:end]
        found.append((end, find_tandem_repeat(prefix, min_repeats=guard.min_repeats, max_period=guard.max_period,
                                              min_chars=guard.min_chars)
                      or find_repeated_line(prefix, max_repeats=guard.max_line_repeats,
                                            min_chars=guard.min_line_chars)
                      or find_char_repeat(prefix, min_chars=guard.min_char_run)))
        if found[-1][1] is not None:
            break
    return found


def _guard_decisions(guard: LoopGuard, text: str, cuts: list[int]) -> list[tuple[int, str | None]]:
    run = OfflineRun("", Capabilities(token_ids=False, resumable=False))
    guard.start(run)
    out: list[tuple[int, str | None]] = []
    last = 0
    for end in cuts:
        chunk = Chunk(text[last:end])
        last = end
        run.append(chunk)
        decision = guard.on_chunk(run, chunk)
        out.append((end, None if decision is None else decision.reason))  # type: ignore[union-attr]
        if decision is not None:
            break
    return out


@settings(max_examples=200, deadline=None)
@given(grown_texts())
def test_the_guard_decides_at_the_chunk_a_rescan_would_and_says_the_same(grown: tuple[str, list[int]]) -> None:
    text, cuts = grown
    guard = LoopGuard(nudge=None, force_answer=False, min_chars=12, min_char_run=16)
    expected = _rescanning_decisions(guard, text, cuts)
    got = _guard_decisions(guard, text, cuts)
    assert [end for end, _ in got] == [end for end, _ in expected]
    assert [reason for _, reason in got] == [None if rep is None else f"loop: {rep.describe()}"
                                             for _, rep in expected]


def test_a_long_text_without_newlines_or_spaces_is_read_once() -> None:
    """A 200,000-character line is searched for its newline, and a 200,000-character word for its end, once each
    as it grows, not from its start at every chunk (checked by where the readers resume)."""
    counts, words = _LineCounts(), _TandemWatch(3, 40, 30)
    text = ""
    for i in range(2_000):
        text += f"{i:05d}" * 20  # 100 characters, no space, no newline
        assert counts.find(text, max_repeats=3, min_chars=12) is None
        assert words.find(text) is None
        assert counts.searched == len(text) and counts.upto == 0
        assert words.scan_from == len(text) and words.open_start == 0


def test_a_run_that_broke_does_not_come_back_when_its_period_matches_again() -> None:
    """A hundred spaces are a long run of period 1 (not a loop: whitespace); "y" breaks it; a second "y" starts a
    run of 1, not of 101 (which would be a loop of "y")."""
    chars = _CharWatch(64)
    for grown in (" " * 100, " " * 100 + "y", " " * 100 + "yy"):
        assert chars.find(grown) is None and find_char_repeat(grown) is None
    words = _TandemWatch(3, 4, 5)
    text = "go " * 3 + "stop " + "go go "
    for end in range(1, len(text) + 1):
        assert words.find(text[:end]) == find_tandem_repeat(text[:end], max_period=4, min_chars=5)
    assert words.find(text + "go ") == find_tandem_repeat(text + "go ", max_period=4, min_chars=5) is not None
