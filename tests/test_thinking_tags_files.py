"""Whole recorded files split at their thinking tags, the same whichever way they are read (hypothesis).

Texts are built from known parts (answers, thinkings opened by a tag or by the prompt, closed or left open, the
tags of every known pair, text full of tag fragments such as ``<thi`` or ``<|begin_``), so the phase runs they must
give are known; the properties: the whole-text split gives them, streaming the text cut anywhere (tags split across
chunks and lines) gives them, and a text file, a JSON Lines record and a SkyThought record holding the text read
and replay with them.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from interlock import Chunk
from interlock.monitor.phases import ANSWER, KNOWN_TAGS, THINKING, PhaseRuns, ThinkingTags
from interlock.monitor.replay import ImportedTrace, TraceReport, read_traces, replay_traces
from interlock.monitor.thinking import TagSplitter, recorded_phases, runs_of, starts_in_thinking
from support import SumVerifier

HYP = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
ALL_TAGS = tuple(t for pair in KNOWN_TAGS for t in (pair.open, pair.close))


def _tagless(text: str) -> bool:
    return not any(t in text for t in ALL_TAGS)


# Text full of the pieces tags are made of, never a whole tag.
body = st.text(st.sampled_from(list("ab 7=+<>|/_\nthinkgoursfe")), max_size=24).filter(_tagless)


@dataclass(frozen=True)
class Built:
    prompt: str
    text: str
    runs: PhaseRuns


@st.composite
def recorded(draw: st.DrawFn) -> Built:
    """A text of answers and thinkings, with the phase runs it must give."""
    start = draw(st.sampled_from(["plain", "prompt", "close_first"]))
    parts: list[tuple[str, str]] = []
    prompt = draw(st.sampled_from(["", "Solve: 2 + 2\n", "Quote '<think>' back.\n"]))  # tags inside a prompt
    n = draw(st.integers(1, 4))
    for i in range(n):
        pair: ThinkingTags = draw(st.sampled_from(KNOWN_TAGS))
        first = i == 0
        opened_elsewhere = first and start in ("prompt", "close_first")
        if first and start == "prompt":
            prompt += pair.open + draw(st.sampled_from(["", "\n"]))
        if not opened_elsewhere:
            answer = draw(body)
            if not first and draw(st.booleans()):  # a stray closing tag in an answer says nothing
                answer += pair.close + draw(body)
            parts.append((answer, ANSWER))
        last = i == n - 1
        closed = not last or start == "close_first" or draw(st.booleans())
        thinking = ("" if opened_elsewhere else pair.open) + draw(body)
        if not first or start == "plain":  # an opening tag inside a thinking does not open another
            thinking += draw(st.sampled_from(["", pair.open + "x"]))
        parts.append((thinking + (pair.close if closed else ""), THINKING))
        if last and closed:
            parts.append((draw(body), ANSWER))
    text = "".join(p for p, _ in parts)
    return Built(prompt, text, runs_of(parts))


@HYP
@given(built=recorded())
def test_the_whole_text_splits_into_the_runs_it_was_built_from(built: Built) -> None:
    assert recorded_phases(built.text, prompt=built.prompt) == built.runs
    assert recorded_phases(built.text, (), prompt=built.prompt) == ()  # --thinking-tags none


@HYP
@given(built=recorded(), cuts=st.lists(st.integers(0, 200), max_size=12), by_lines=st.booleans())
def test_streaming_the_text_cut_anywhere_gives_the_same_runs(built: Built, cuts: list[int], by_lines: bool) -> None:
    text = built.text
    if by_lines:
        pieces = text.splitlines(keepends=True)
    else:
        bounds = sorted({0, len(text), *(c % (len(text) + 1) for c in cuts)})
        pieces = [text[a:b] for a, b in itertools.pairwise(bounds)]
    splitter = TagSplitter(KNOWN_TAGS, thinking=starts_in_thinking(text, prompt=built.prompt))
    chunks = [out for p in pieces for out in splitter.feed(Chunk(p))] + splitter.flush()
    assert "".join(c.text for c in chunks) == text
    assert runs_of((c.text, c.phase) for c in chunks) == built.runs


@HYP
@given(built=recorded())
def test_files_holding_the_text_read_and_replay_with_its_runs(tmp_path_factory: pytest.TempPathFactory,
                                                              built: Built) -> None:
    folder = tmp_path_factory.mktemp("files")
    files = [folder / "steps.jsonl", folder / "sky.jsonl"]
    files[0].write_text(json.dumps({"id": "r", "prompt": built.prompt, "text": built.text}, ensure_ascii=False)
                        + "\n", encoding="utf-8")
    files[1].write_text(json.dumps({"idx": 3, "question": built.prompt, "code": [built.text], "gt": "4",
                                    "score": [True]}) + "\n", encoding="utf-8")
    if not built.prompt and built.text.strip():
        files.append(folder / "trace.txt")
        files[-1].write_bytes(built.text.encode("utf-8"))  # a text file: no prompt
    items = [item for f in files for item in read_traces(f)]
    assert all(isinstance(i, ImportedTrace) for i in items), items
    assert [(i.text, i.phases) for i in items] == [(built.text, built.runs)] * len(files)  # type: ignore[union-attr]
    reports = anyio.run(lambda: replay_traces(items, [SumVerifier()], processes=0))  # type: ignore[arg-type]
    assert all(isinstance(r, TraceReport) for r in reports)
    expected = built.runs if built.runs and built.text else ()
    assert [r.phases for r in reports] == [expected] * len(files)  # type: ignore[union-attr]
    assert [sum(r.to_dict().get("thinking_tokens", 0) for r in reports)] == [  # type: ignore[union-attr]
        len(files) * items[0].phase_tokens()[0]]  # type: ignore[union-attr]


def test_an_unclosed_thinking_runs_to_the_end_and_a_close_first_starts_inside() -> None:
    assert recorded_phases("Let me see.<think>7 * 8 = 56") == ((0, ANSWER), (11, THINKING))
    assert recorded_phases("7 * 8 = 56</think>\n\n56") == ((0, THINKING), (18, ANSWER))
    assert recorded_phases("<|begin_of_thought|>\nx\n<|end_of_thought|>\n\n<|begin_of_solution|>\n56\n"
                           "<|end_of_solution|>") == ((0, THINKING), (41, ANSWER))
    assert recorded_phases("plain text with a '<think' fragment") == ()
    assert recorded_phases("x", prompt="<|im_start|>assistant\n<think>\n") == ((0, THINKING),)
    custom = (ThinkingTags("[[", "]]"),)  # --thinking-tags '[[ ]]'
    assert recorded_phases("a[[b]]c", custom) == ((0, ANSWER), (1, THINKING), (6, ANSWER))
    assert recorded_phases("a<think>b</think>c", custom) == ()
