"""Thinking and answer as phases of one trace: chunks, the trace's phase runs (against a plain reference model),
the tag splitter (any chunking, tags split across chunks), steps that never cross a phase change, verifiers and
triggers that ask for one phase, a rollback inside the thinking, the result, events and trace files."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from interlock import (
    AtEnd,
    Chunk,
    EveryNTokens,
    Fail,
    GenerationRequest,
    Monitor,
    Span,
    Step,
    StepBoundary,
    Trace,
    TraceFileError,
    Verifier,
    read_trace,
    verifier,
)
from interlock.generators import Replay, Scripted
from interlock.monitor.events import ChunkAppended, FeedbackInjected
from interlock.monitor.phases import ANSWER, THINK_TAGS, THINKING, THOUGHT_TAGS, ThinkingTags, strip_tags
from interlock.monitor.result import RunResult
from interlock.monitor.thinking import TagSplitter, split_text

from tests.support import SumVerifier

T = THINKING
A = ANSWER


def think(text: str) -> Chunk:
    return Chunk(text, phase=THINKING)


# -- the trace's phase runs against a list of pieces -------------------------------------------------------------


@dataclass
class _Piece:
    start: int
    text: str
    phase: str
    tokens: int
    injected: bool


class _Reference:
    """Every piece with its phase: obviously right."""

    def __init__(self) -> None:
        self.pieces: list[_Piece] = []
        self.phase = A

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.pieces)

    def append(self, chunk: Chunk) -> None:
        if chunk.text:
            self.phase = chunk.phase
        self.pieces.append(_Piece(len(self.text), chunk.text, chunk.phase, chunk.n_tokens, False))

    def inject(self, text: str, phase: str | None) -> None:
        phase = phase or self.phase
        if text:
            self.phase = phase
        self.pieces.append(_Piece(len(self.text), text, phase, 0, True))

    def cut(self, pos: int) -> None:
        if pos < len(self.text):
            self.phase = self.phase_at(pos)
        kept = []
        for p in self.pieces:
            if p.start >= pos:  # removed, empty pieces at the cut included
                continue
            if p.start + len(p.text) > pos:
                p = _Piece(p.start, p.text[:pos - p.start], p.phase, p.tokens, p.injected)
            kept.append(p)
        self.pieces = kept

    def phase_at(self, pos: int) -> str:
        found = None
        for p in self.pieces:
            if p.text and p.start <= pos:
                found = p.phase
        return found or A

    def thinking_tokens(self) -> int:
        return sum(p.tokens for p in self.pieces if p.phase == T and not p.injected)

    def text_of(self, phase: str) -> str:
        return "".join(p.text for p in self.pieces if p.phase == phase)


_chunks = st.builds(lambda text, phase, tokens: Chunk(text, phase=phase, tokens=tokens),
                    st.text(alphabet="ab.\n ", max_size=4), st.sampled_from([T, A]),
                    st.none() | st.integers(0, 3))
_ops = st.lists(st.one_of(st.tuples(st.just("append"), _chunks),
                          st.tuples(st.just("inject"), st.tuples(st.text(alphabet="FB", max_size=3),
                                                                 st.sampled_from([None, T, A]))),
                          st.tuples(st.just("cut"), st.floats(0, 1))), max_size=25)


@given(_ops)
@settings(max_examples=300)
def test_the_traces_phases_agree_with_a_list_of_pieces(ops: list[tuple[str, object]]) -> None:
    trace, ref = Trace(), _Reference()
    for op, arg in ops:
        if op == "append":
            assert isinstance(arg, Chunk)
            trace.append(arg)
            ref.append(arg)
        elif op == "inject":
            text, phase = arg  # type: ignore[misc]
            trace.inject(text, phase)
            ref.inject(text, phase)
        else:
            assert isinstance(arg, float)
            pos = int(arg * len(ref.text))
            trace.cut(pos)
            ref.cut(pos)
        assert trace.text == ref.text
        assert trace.thinking_tokens == ref.thinking_tokens()
        assert (trace.text_of(T), trace.text_of(A)) == (ref.text_of(T), ref.text_of(A))
        assert [trace.phase_at(i) for i in range(len(ref.text))] == [ref.phase_at(i) for i in range(len(ref.text))]
    chunks = trace.chunks_in(Span(0, len(trace)))
    assert "".join(c.text for c in chunks if not c.injected) == "".join(
        p.text for p in ref.pieces if not p.injected)


def test_a_plain_answer_trace_has_no_phase_runs_and_cut_continues_in_the_phase_cut_at() -> None:
    trace = Trace()
    trace.append(Chunk("So the answer is 4."))
    assert trace.phase_runs() == () and trace.phase == A and trace.thinking_tokens == 0
    trace = Trace()
    trace.append(think("<think>7 * 8 = 54."))
    trace.append(think(" Hmm.</think>"))
    trace.append(Chunk("\n\nThe answer is 54."))
    assert trace.phase_runs() == ((0, T), (31, A)) and trace.thinking_tokens == 2
    trace.cut(7)  # inside the thinking: the thinking goes on
    assert trace.phase == T and trace.phase_runs() == ((0, T),) and trace.thinking_tokens == 1
    trace.append(think(" 7 * 8 = 56.</think>"))
    trace.append(Chunk("Answer: 56"))
    start = trace.phase_starts[-1]
    trace.cut(start)  # at the answer's start: the answer is redone, the thinking stays closed
    assert trace.phase == A and trace.text.endswith("</think>")
    trace.inject("Wait.", None)
    assert trace.phase_at(len(trace) - 1) == A


def test_set_phase_ends_the_thinking_without_text_and_the_next_chunk_starts_the_answer() -> None:
    trace = Trace()
    trace.append(think("thinking"))
    trace.set_phase(A)
    assert trace.phase == A and trace.phase_runs() == ((0, T), (8, A)) and trace.phase_runs(8) == ((0, T),)
    trace.append(Chunk("x"))
    assert trace.phase_runs() == ((0, T), (8, A))


# -- the tag splitter -------------------------------------------------------------------------------------------


@given(st.lists(st.sampled_from(["<think>", "</think>", "a", "b ", "<", ">", "/", "<thi", "nk>", "\n"]),
                max_size=12),
       st.lists(st.integers(1, 6), min_size=1, max_size=12), st.booleans())
@settings(max_examples=300)
def test_any_chunking_splits_the_same_and_keeps_every_token(words: list[str], sizes: list[int],
                                                            opened: bool) -> None:
    text = "".join(words)
    pieces: list[str] = []
    i = 0
    k = 0
    while i < len(text):
        n = sizes[k % len(sizes)]
        pieces.append(text[i:i + n])
        i += n
        k += 1
    splitter = TagSplitter((THINK_TAGS,), thinking=opened)
    out = [c for p in pieces for c in splitter.feed(Chunk(p))] + splitter.flush()
    assert "".join(c.text for c in out) == text
    assert sum(c.n_tokens for c in out) == len(pieces)
    merged: list[tuple[str, str]] = []
    for c in out:
        if merged and merged[-1][1] == c.phase:
            merged[-1] = (merged[-1][0] + c.text, c.phase)
        elif c.text:
            merged.append((c.text, c.phase))
    assert merged == split_text(text, (THINK_TAGS,), thinking=opened)


def test_tags_belong_to_the_thinking_and_other_pairs_split_too() -> None:
    assert split_text("<think>\n7 * 8 = 56\n</think>\n\nThe answer is 56.") == [
        ("<think>\n7 * 8 = 56\n</think>", T), ("\n\nThe answer is 56.", A)]
    assert split_text("x <|begin_of_thought|>a<|end_of_thought|> <|begin_of_solution|>b") == [
        ("x ", A), ("<|begin_of_thought|>a<|end_of_thought|>", T), (" <|begin_of_solution|>b", A)]
    assert split_text("still thinking</think>answer", thinking=True) == [("still thinking</think>", T),
                                                                          ("answer", A)]
    assert split_text("a lone </think> in an answer stays text") == [("a lone </think> in an answer stays text", A)]
    assert strip_tags("<think>\nabc\n</think>") == "\nabc\n" and strip_tags("abc") == "abc"
    assert ThinkingTags.parse("<think>") == THINK_TAGS and ThinkingTags.parse("<|end_of_thought|>") == THOUGHT_TAGS
    assert ThinkingTags.parse(("<r>", "</r>")) == ThinkingTags("<r>", "</r>")


def test_a_chunk_split_in_two_keeps_its_token_data_on_its_longer_part() -> None:
    splitter = TagSplitter(thinking=True)
    out = splitter.feed(Chunk("ok</think>The answer is", token_ids=(1, 2, 3), logprobs=(-0.1, -0.2, -0.3),
                              finish_reason="stop"))
    assert [(c.text, c.phase, c.token_ids, c.n_tokens, c.finish_reason) for c in out] == [
        ("ok</think>", T, None, 0, None), ("The answer is", A, (1, 2, 3), 3, "stop")]
    assert out[1].logprobs == (-0.1, -0.2, -0.3)
    held = TagSplitter(thinking=True)
    assert held.feed(Chunk("so 4.</th", token_ids=(5, 6))) == [Chunk("so 4.", tokens=0, phase=T)]
    assert held.feed(Chunk("ink>4", token_ids=(7,))) == [
        Chunk("</think>", token_ids=(5, 6, 7), phase=T), Chunk("4", tokens=0)]


# -- steps, verifiers and triggers ------------------------------------------------------------------------------


def steps_of(chunks: list[Chunk], trigger: object = None, phase: str = "both") -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []

    class Collect(Verifier):
        name = "collect"
        runs_in = "loop"

        def check(self, state: Step) -> None:
            seen.append((state.text, state.phase))

    import anyio

    async def go() -> None:
        gen = Scripted([*chunks])
        options = {"phase": phase, **({"trigger": trigger} if trigger is not None else {})}
        await Monitor(gen, [Collect(**options)]).run("q")

    anyio.run(go)
    return seen


THOUGHT = [think("<think>7 * 8 = 56"), think("</think>"), Chunk("\n\nThe answer is 56."), Chunk(" Done")]


def test_a_phase_change_ends_a_step_and_each_step_says_its_phase() -> None:
    assert steps_of(THOUGHT) == [("<think>7 * 8 = 56</think>", T), ("The answer is 56. ", A), ("Done", A)]
    fields = [think("7 * 8 = 56"), Chunk("The answer is 56.")]  # a server's reasoning field: no tags, no boundary
    assert steps_of(fields) == [("7 * 8 = 56", T), ("The answer is 56.", A)]


def test_a_verifier_or_a_trigger_may_ask_for_one_phase() -> None:
    assert steps_of(THOUGHT, phase="answer") == [("The answer is 56. ", A), ("Done", A)]
    assert steps_of(THOUGHT, phase="thinking") == [("<think>7 * 8 = 56</think>", T)]
    assert steps_of(THOUGHT, trigger=StepBoundary(phase="thinking")) == [("<think>7 * 8 = 56</think>", T)]
    assert steps_of(THOUGHT, trigger=AtEnd(phase="answer")) == [("\n\nThe answer is 56. Done", A)]
    assert steps_of(THOUGHT, trigger=AtEnd()) == [("<think>7 * 8 = 56</think>\n\nThe answer is 56. Done", A)]
    assert steps_of(THOUGHT, trigger=EveryNTokens(2), phase="thinking") == [("<think>7 * 8 = 56</think>", T)]
    with pytest.raises(Exception, match="phase must be 'thinking', 'answer' or 'both'"):
        SumVerifier(phase="reasoning")  # type: ignore[arg-type]


def test_scan_splits_on_thinking_tags_like_a_backend_that_reads_raw_text() -> None:
    @verifier(phase="answer")
    def no_54(step: Step) -> Fail | None:
        return Fail("54 in the answer") if "54" in step.text else None

    text = "<think>\nMaybe 54.\n</think>\nThe answer is 54.\n"
    assert [v.span for v in no_54.scan(text) if isinstance(v, Fail)] == [Span(text.index("The"), len(text))]
    assert [v for v in no_54.scan("Maybe 54.</think>\nThe answer is 56.\n", prompt="<|Assistant|><think>\n")
            if isinstance(v, Fail)] == []
    assert len([v for v in no_54.scan(text, tags=()) if isinstance(v, Fail)]) == 2  # no tags: all answer


# -- a run: rollback inside the thinking, the result, events ----------------------------------------------------


def test_a_rollback_inside_the_thinking_continues_the_thinking_with_the_feedback() -> None:
    import anyio

    script = {
        "": [think("Let me see. "), think("3 + 4 = 8."), think(" So 8."), Chunk("The answer is 8.")],
        "Let me redo this step.\n": [think("3 + 4 = 7."), Chunk("The answer is 7.")],
    }
    gen = Scripted(script)

    async def go() -> tuple[RunResult, list[object]]:
        async with Monitor(gen, [SumVerifier()]).stream("q") as run:
            events = [e async for e in run]
        return run.result, events

    result, events = anyio.run(go)
    feedback = "Wait, 3 + 4 is 7, not 8. Let me redo this step.\n"
    assert result.text == f"Let me see. {feedback}3 + 4 = 7.The answer is 7."
    assert result.reasoning == f"Let me see. {feedback}3 + 4 = 7." and result.answer == "The answer is 7."
    assert result.phases == ((0, T), (len(result.reasoning), A))
    assert (result.tokens.kept, result.tokens.thinking, result.tokens.answer) == (3, 2, 1)
    resumed = gen.requests[1]
    assert resumed.phase == T and resumed.prefix == f"Let me see. {feedback}"
    assert resumed.thinking == resumed.prefix and resumed.answer == ""
    (injected,) = [e for e in events if isinstance(e, FeedbackInjected)]
    assert injected.phase == T and injected.to_dict()["phase"] == T
    chunk_events = [e for e in events if isinstance(e, ChunkAppended)]
    assert chunk_events[0].to_dict()["phase"] == T and "phase" not in chunk_events[-1].to_dict()
    payload = result.to_dict()
    assert (payload["reasoning"], payload["answer"], payload["tokens"]["thinking"]) == (
        result.reasoning, "The answer is 7.", 2)


def test_a_failing_first_answer_step_is_redone_in_the_answer() -> None:
    import anyio

    script = {"": [think("1 + 1 = 2."), Chunk("So 2 + 2 = 5.")],
              "Let me redo this step.\n": [Chunk("So 2 + 2 = 4.")]}
    gen = Scripted(script)
    result = anyio.run(lambda: Monitor(gen, [SumVerifier()]).run("q"))
    assert result.reasoning == "1 + 1 = 2." and result.answer.endswith("So 2 + 2 = 4.")
    assert result.answer.startswith("Wait, 2 + 2 is 4, not 5.")
    assert gen.requests[1].phase == A and gen.requests[1].thinking == "1 + 1 = 2."


def test_the_tags_of_a_raw_text_backend_split_the_run_and_a_rollback_reopens_nothing() -> None:
    import anyio

    script = {"": "<think>\n3 + 4 = 8.\n</think>\n\nThe answer is 8.",
              "Let me redo this step.\n": "3 + 4 = 7.\n</think>\n\nThe answer is 7."}
    gen = Scripted(script, thinking_tags="<think>")
    result = anyio.run(lambda: Monitor(gen, [SumVerifier()]).run("q"))
    assert result.reasoning == "\nWait, 3 + 4 is 7, not 8. Let me redo this step.\n3 + 4 = 7.\n"
    assert result.answer == "\n\nThe answer is 7." and gen.requests[1].phase == T


def test_forks_continue_inside_the_thinking_or_after_ending_it() -> None:
    import anyio

    gen = Scripted({"": [think("<think>2 + 2 = 4."), think(" More")]}, thinking_tags="<think>",
                   forks={"": "4"})
    requests: list[GenerationRequest] = []

    async def go() -> None:
        async with Monitor(gen).stream("q") as run:
            await run.wait(10)
            fork = run.fork_at(len("<think>2 + 2 = 4."))
            assert fork is not None
            requests.append(fork.request(" So far:", 4))
            requests.append(fork.request(" Time's up.", 4, answer="\nThe answer is "))
            assert await fork(" So far:", 4) == "4"

    anyio.run(go)
    inside, after = requests
    assert (inside.prefix, inside.phase, inside.phases) == ("<think>2 + 2 = 4. So far:", T, ((0, T),))
    assert after.prefix == "<think>2 + 2 = 4. Time's up.</think>\nThe answer is "
    assert after.phase == A and after.phases == ((0, T), (len("<think>2 + 2 = 4. Time's up.</think>"), A))
    assert after.thinking.endswith("</think>") and after.answer == "\nThe answer is "


# -- trace files and replay -------------------------------------------------------------------------------------


def test_trace_files_record_phases_and_old_files_still_read(tmp_path: Path) -> None:
    import anyio

    script = {"": [think("3 + 4 = 8."), Chunk("The answer is 8.")],
              "Let me redo this step.\n": [think("3 + 4 = 7."), Chunk("The answer is 7.")]}
    path = tmp_path / "run.jsonl"
    result = anyio.run(lambda: Monitor(Scripted(script), [SumVerifier()]).run("q", record=path))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line.get("phase") for line in lines if line["type"] == "chunk"] == [T, None, T, None]
    (inject,) = [line for line in lines if line.get("kind") == "inject"]
    assert inject["phase"] == T
    assert lines[-1]["phases"] == [[0, T], [len(result.reasoning), A]]
    recorded = read_trace(path)
    segments = recorded.final_segments()
    assert "".join(s.chunk.text for s in segments) == result.text
    assert [s.chunk.phase for s in segments] == [T, T, A]
    replayed = anyio.run(lambda: Monitor(Replay(recorded, speed=None), [SumVerifier()]).run("q"))
    assert (replayed.reasoning, replayed.answer) == (result.reasoning, result.answer)
    old = tmp_path / "old.jsonl"  # a file written before phases: no phase fields
    old.write_text('{"type": "header", "version": 1, "prompt": "q"}\n{"type": "chunk", "text": "x", "t": 0}\n')
    assert read_trace(old).chunks[0].phase == A
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"type": "header", "version": 1, "prompt": "q"}\n'
                   '{"type": "chunk", "text": "x", "t": 0, "phase": "monologue"}\n')
    with pytest.raises(TraceFileError, match=r"bad\.jsonl:2: field 'phase' must be 'thinking' or 'answer'"):
        read_trace(bad)


def test_game24_takes_the_thinking_from_the_phases_when_the_server_sent_no_tags() -> None:
    import anyio
    from interlock.verifiers import Game24

    lines = ["Answer: 10 * 4 - 13 - 9 = 18. Not 24.\n", "10 - 4 = 6, 13 - 9 = 4, 6 * 4 = 24.\n"]
    final = Chunk("Answer: (10 - 4) * (13 - 9) = 24\n")
    result = anyio.run(lambda: Monitor(Scripted([*map(think, lines), final]), [Game24([4, 9, 10, 13])],
                                       on_unresumable="stop").run("q"))
    assert result.open_violations == () and result.answer == final.text
    # the same text with no phases: the tried answer reads as a final answer
    plain = anyio.run(lambda: Monitor(Scripted([*map(Chunk, lines), final]), [Game24([4, 9, 10, 13])],
                                      on_unresumable="stop").run("q"))
    assert [v.message for v in plain.verdicts if isinstance(v, Fail)][:1] == [
        "the final answer 10 * 4 - 13 - 9 equals 18, not 24"]
    bad = Scripted([*map(think, lines), Chunk("Answer: 4 * 6 = 24\n")])
    result = anyio.run(lambda: Monitor(bad, [Game24([4, 9, 10, 13])], on_unresumable="stop").run("q"))
    assert [v.message for v in result.verdicts if isinstance(v, Fail)][:1] == [
        "the final answer 4 * 6 does not use 9 10 13 and uses 6 beyond the input: each of 4 9 10 13 must be used "
        "exactly once"]


def test_replay_reports_the_phases_of_recorded_and_tagged_traces(tmp_path: Path) -> None:
    import anyio
    from interlock.monitor.replay import read_traces, replay_traces

    script = {"": [think("3 + 4 = 8."), Chunk("The answer is 8.")],
              "Let me redo this step.\n": [think("3 + 4 = 7."), Chunk("The answer is 7.")]}
    recorded = tmp_path / "run.jsonl"
    result = anyio.run(lambda: Monitor(Scripted(script), [SumVerifier()]).run("q", record=recorded))
    tagged = tmp_path / "tagged.txt"
    tagged.write_text("<think>\n3 + 4 = 8.\n</think>\nThe answer is 8.\n")
    reports = anyio.run(lambda: replay_traces([*read_traces(recorded), *read_traces(tagged)], [SumVerifier()]))
    from_file, from_text = reports
    assert from_file.phases == result.phases and from_file.text == result.text
    assert from_text.phases == ((0, T), (len("<think>\n3 + 4 = 8.\n</think>"), A))
    assert [v.message for v in from_text.failures] == ["3 + 4 is 7, not 8"]
    assert from_text.to_dict()["phases"] == [[0, T], [27, A]]
