"""The token path does only what a run needs, and does it the same as before: the trace's flat storage against a
plain reference model, events built lazily, governor hooks skipped when unused, triggers shown only steps."""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from interlock import (
    Chunk,
    ConfigError,
    EveryNTokens,
    Governor,
    GovernorDecision,
    Monitor,
    RunContext,
    Span,
    StepBoundary,
    Trace,
    TraceView,
    Verifier,
    verifier,
)
from interlock.generators import Scripted
from interlock.monitor import monitor as monitor_module
from interlock.monitor.events import ChunkAppended, RunFinished, RunStarted
from interlock.monitor.governor import InterventionLimit, OscillationGuard, uses_hook
from interlock.monitor.governors import LoopGuard, TokenBudget
from interlock.monitor.scheduler import Scheduler
from interlock.monitor.triggers import BoundTrigger, Due, Progress, Trigger
from interlock.verifiers.arithmetic import Arithmetic

from tests.support import SumVerifier

# -- the trace against a reference model -------------------------------------------------------------------


@dataclass
class _RefPiece:
    start: int
    chunk: Chunk
    injected: bool


class _ReferenceTrace:
    """The trace as a list of pieces holding their chunks: obviously right, slow at scale."""

    def __init__(self) -> None:
        self.text = ""
        self.pieces: list[_RefPiece] = []
        self.kept = self.discarded = self.injected_chars = 0

    def append(self, chunk: Chunk) -> None:
        self.pieces.append(_RefPiece(len(self.text), chunk, False))
        self.text += chunk.text
        self.kept += chunk.n_tokens

    def inject(self, text: str) -> None:
        self.pieces.append(_RefPiece(len(self.text), Chunk(text, token_ids=()), True))
        self.text += text
        self.injected_chars += len(text)

    def cut(self, pos: int) -> None:
        keep = [p for p in self.pieces if p.start < pos]
        for p in self.pieces[len(keep):]:
            if p.injected:
                self.injected_chars -= len(p.chunk.text)
            else:
                self.kept -= p.chunk.n_tokens
                self.discarded += p.chunk.n_tokens
        if keep and keep[-1].start + len(keep[-1].chunk.text) > pos:
            last = keep[-1]
            cut_text = last.chunk.text[:pos - last.start]
            if last.injected:
                self.injected_chars -= len(last.chunk.text) - len(cut_text)
            last.chunk = Chunk(cut_text, token_ids=last.chunk.token_ids, logprobs=last.chunk.logprobs,
                               entropy=last.chunk.entropy, injected=last.chunk.injected)
        self.pieces = keep
        self.text = self.text[:pos]

    def chunks_in(self, span: Span) -> tuple[Chunk, ...]:
        starts = [p.start for p in self.pieces]
        lo = max(0, bisect.bisect_right(starts, span.start) - 1)
        hi = bisect.bisect_left(starts, span.end)
        return tuple(p.chunk for p in self.pieces[lo:hi] if not p.injected)

    def is_injected(self, pos: int) -> bool:
        return any(p.injected and p.start <= pos < p.start + len(p.chunk.text) for p in self.pieces)

    def injected_end_before(self, pos: int) -> int:
        starts = [p.start for p in self.pieces]
        for p in reversed(self.pieces[:bisect.bisect_right(starts, pos)]):
            if p.injected:
                return min(pos, p.start + len(p.chunk.text))
        return 0

    def tokens_after(self, pos: int) -> int:
        return sum(p.chunk.n_tokens for p in self.pieces if p.start >= pos and not p.injected)


_chunks = st.builds(
    lambda text, ids, injected: Chunk(text, token_ids=None if ids is None else tuple(ids[:max(1, len(text))]),
                                      entropy=None if ids is None else tuple(0.5 for _ in ids[:max(1, len(text))]),
                                      injected=injected),
    st.text(alphabet="ab.\n ", max_size=5), st.none() | st.lists(st.integers(0, 9), min_size=1, max_size=3),
    st.booleans())
_ops = st.lists(st.one_of(st.tuples(st.just("append"), _chunks),
                          st.tuples(st.just("inject"), st.text(alphabet="FB ", min_size=1, max_size=4)),
                          st.tuples(st.just("cut"), st.floats(0, 1))), max_size=25)


@given(_ops)
def test_the_trace_agrees_with_a_list_of_pieces(ops: list[tuple[str, object]]) -> None:
    trace, ref = Trace(), _ReferenceTrace()
    for op, arg in ops:
        if op == "append":
            assert isinstance(arg, Chunk)
            trace.append(arg)
            ref.append(arg)
        elif op == "inject":
            assert isinstance(arg, str)
            trace.inject(arg)
            ref.inject(arg)
        else:
            assert isinstance(arg, float)
            pos = int(arg * len(ref.text))
            trace.cut(pos)
            ref.cut(pos)
        assert trace.text == ref.text
        assert (trace.kept_tokens, trace.discarded_tokens, trace.injected_chars) == \
            (ref.kept, ref.discarded, ref.injected_chars)
    n = len(ref.text)
    for pos in range(n + 1):
        assert trace.is_injected(pos) == ref.is_injected(pos), pos
        assert trace.injected_end_before(pos) == ref.injected_end_before(pos), pos
        assert trace.tokens_after(pos) == ref.tokens_after(pos), pos
    ends = sorted({*range(0, n + 1, 3), n})
    for start in range(n + 1):
        for end in (e for e in ends if e >= start):
            assert trace.chunks_in(Span(start, end)) == ref.chunks_in(Span(start, end)), (start, end)


def test_text_handed_out_stays_as_it_was_while_the_trace_grows() -> None:
    trace = Trace()
    trace.append(Chunk("abc"))
    before = trace.text
    assert [trace.add(Chunk(piece)) for piece in ("d", "ef", "g")] == [3, 4, 6]
    assert before == "abc" and trace.text == "abcdefg"
    assert trace.append(Chunk("hi")) == Span(7, 9) and trace.inject("FB") == Span(9, 11)


# -- events: built when read --------------------------------------------------------------------------------


async def test_events_read_after_the_run_are_all_there_in_order() -> None:
    gen = Scripted("So 3 + 4 = 7.\nDone.")
    async with Monitor(gen, [SumVerifier()]).stream("q") as run:
        await run.wait(10)
        events = [e async for e in run]
    chunks = [e for e in events if isinstance(e, ChunkAppended)]
    assert isinstance(events[0], RunStarted) and isinstance(events[-1], RunFinished)
    assert [c.chunk.text for c in chunks] == ["So", " 3", " +", " 4", " =", " 7.", "\nDone."]
    assert [c.position for c in chunks] == [0, 2, 4, 6, 8, 10, 13]
    assert {c.epoch for c in chunks} == {0}
    times = [e.t for e in events]
    assert times == sorted(times) and times[-1] > 0
    assert [e.kind for e in events].count("verdict") == 2


async def test_run_builds_no_event_per_chunk_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[ChunkAppended] = []

    class Counting(ChunkAppended):
        def __init__(self, **fields: Any) -> None:
            super().__init__(**fields)
            built.append(self)

    monkeypatch.setattr(monitor_module, "ChunkAppended", Counting)
    text = "So 3 + 4 = 7.\nDone."
    result = await Monitor(Scripted(text), [SumVerifier()]).run("q")
    assert result.text == text and built == []
    async with Monitor(Scripted(text), [SumVerifier()]).stream("q") as run:
        seen = [e for e in [e async for e in run] if isinstance(e, ChunkAppended)]
    assert len(built) == len(seen) == 7


# -- governors: per-chunk hooks only where used -------------------------------------------------------------


class _CountChunks(Governor):
    name = "count"

    def __init__(self) -> None:
        self.seen: list[str] = []

    def on_chunk(self, ctx: RunContext, chunk: Chunk) -> GovernorDecision | None:
        self.seen.append(chunk.text)
        return None


class _CountChunksToo(_CountChunks):
    """Inherits its hook."""


def test_uses_hook_names_what_a_governor_overrides() -> None:
    assert not uses_hook(InterventionLimit(), "on_chunk") and not uses_hook(OscillationGuard(), "token_allowance")
    assert uses_hook(InterventionLimit(), "on_intervention")
    assert uses_hook(TokenBudget(max_kept=5), "token_allowance") and not uses_hook(TokenBudget(5), "on_chunk")
    assert uses_hook(LoopGuard(), "on_chunk") and uses_hook(_CountChunksToo(), "on_chunk")
    plain = Governor()
    plain.on_chunk = lambda ctx, chunk: None  # type: ignore[method-assign]
    assert uses_hook(plain, "on_chunk")
    with pytest.raises(ConfigError, match="'on_token' is not a governor hook"):
        uses_hook(plain, "on_token")


async def test_governors_that_use_on_chunk_see_every_chunk() -> None:
    inherited, seen_by_instance = _CountChunksToo(), []
    own = Governor()
    own.on_chunk = lambda ctx, chunk: seen_by_instance.append(chunk.text)  # type: ignore[method-assign,func-returns-value]
    result = await Monitor(Scripted("a b c"), governors=[inherited, own, TokenBudget(max_kept=2)]).run("q")
    assert result.text == "a b" and inherited.seen == seen_by_instance == ["a", " b"]


# -- the scheduler: triggers see the chunks they need -------------------------------------------------------


class _Counted(BoundTrigger):
    """Delegates to a step trigger but, as any trigger that does not say otherwise, wants every chunk."""

    def __init__(self, calls: list[int]) -> None:
        self.inner = StepBoundary().bind()
        self.calls = calls

    def advance(self, progress: Progress) -> list[Due]:
        self.calls.append(progress.tokens)
        return self.inner.advance(progress)


@dataclass(frozen=True)
class _CountedTrigger(Trigger):
    calls: list[int]

    def bind(self) -> BoundTrigger:
        return _Counted(self.calls)


class _On(Verifier):
    def __init__(self, trigger: Trigger, name: str) -> None:
        super().__init__(name=name, trigger=trigger)

    def check(self, state: object) -> None:
        return None


def _dues(verifier: Verifier, pieces: list[str]) -> list[tuple[int, int, int, bool]]:
    trace = Trace()
    scheduler = Scheduler(trace, [verifier])
    out = []
    for piece in pieces:
        trace.append(Chunk(piece))
        out += [(len(trace), d.end, d.step.span.start, d.final) for _, d in scheduler.advance()]
    out += [(len(trace), d.end, d.step.span.start, d.final) for _, d in scheduler.advance(final=True)]
    return out


@given(st.lists(st.text(alphabet="ab 1.!?\n\"", max_size=6), max_size=20))
def test_step_triggers_skipped_between_steps_give_the_same_checks_at_the_same_chunks(pieces: list[str]) -> None:
    calls: list[int] = []
    assert _dues(_On(StepBoundary(), "steps"), pieces) == _dues(_On(_CountedTrigger(calls), "counted"), pieces)
    assert len(calls) == len(pieces) + 1  # a trigger that did not opt out still sees every chunk and the end


def test_token_triggers_still_fire_between_steps() -> None:
    dues = _dues(_On(EveryNTokens(2), "every-2"), ["a", " b", " c", " d", " e"])
    # at 2 and 4 tokens, mid-step; at the end, the last token, read from the start of its step
    assert [(at, start) for at, _, start, _ in dues] == [(3, 0), (7, 3), (9, 0)]


def test_with_no_verifier_the_steps_are_found_when_asked() -> None:
    def starts(verifiers: list[Verifier]) -> list[int]:
        trace = Trace()
        scheduler = Scheduler(trace, verifiers)
        for piece in ["One.", " Two", " three.\n", "Four"]:
            trace.append(Chunk(piece))
            scheduler.advance()
        trace.inject("FB ")
        scheduler.injected(len(trace) - 3)
        trace.append(Chunk("Five. Six"))
        scheduler.advance()
        return [scheduler.step_start(p) for p in range(len(trace))]

    assert starts([]) == starts([_On(StepBoundary(), "steps")])
    assert sorted(set(starts([]))) == [0, 5, 16, 23, 29]  # "Four" runs into the injection; "Five. " ends one


# -- views: chunks gathered for the verifiers that read them ------------------------------------------------


async def test_a_verifier_that_reads_chunks_gets_them_and_one_that_cannot_does_not() -> None:
    seen: list[list[str]] = []

    def chunk_texts(view: TraceView) -> list[str]:
        seen.append([c.text for c in view.chunks])
        return [c.text for c in view.chunks]

    reads = verifier(lambda texts: None, name="reads", extractor=chunk_texts)
    step_only = verifier(lambda step: None, name="step-only")
    assert reads.reads_chunks and not step_only.reads_chunks and not Arithmetic.reads_chunks
    result = await Monitor(Scripted("So 3 + 4 = 7.\nDone."), [reads, step_only]).run("q")
    assert result.passed and seen == [["So", " 3", " +", " 4", " =", " 7.", "\nDone."], ["\nDone."]]
