"""End to end: a run of a real (tiny, random) transformers model, recorded, then replayed offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from interlock import Chunk, EveryNTokens, Fail, Monitor, Step, StepBoundary, TraceView, read_trace, verifier
from interlock.generators import Replay, Transformers
from interlock.monitor.replay.engine import TraceReport, replay_traces
from interlock.monitor.replay.importers import read_traces
from tiny_model import build_tiny_model


@pytest.fixture(scope="module")
def tiny() -> tuple[Any, Any]:
    return build_tiny_model()


@verifier(name="odd-length", action="warn", trigger=StepBoundary() | EveryNTokens(8))
def odd_length(step: Step) -> Fail | None:
    """Deterministic in the text alone, so live and replayed verdicts can be compared exactly."""
    if len(step.text) % 2:
        return Fail(f"odd length {len(step.text)}", span=step.to_trace(0, len(step.text)))
    return None


def _key(v: Any) -> tuple[Any, ...]:
    return (v.kind, v.verifier, v.span, getattr(v, "message", ""))


async def test_a_recorded_model_run_replays_to_the_same_verdicts_and_token_data(tiny: tuple[Any, Any],
                                                                              tmp_path: Path) -> None:
    model, tokenizer = tiny
    path = tmp_path / "tiny.trace.jsonl"
    live_chunks: list[Chunk] = []

    @verifier(name="spy", extractor=lambda view: view)
    def spy(view: TraceView) -> None:
        live_chunks.extend(c for c in view.chunks if c not in live_chunks)

    gen = Transformers(model, tokenizer, max_new_tokens=48, eos_token_ids=())
    live = await Monitor(gen, verifiers=[odd_length]).run("What is 2 + 3?", record=path)
    assert live.tokens.kept == 48
    assert {v.kind for v in live.verdicts} == {"pass", "fail"}

    recorded = read_trace(path)
    assert recorded.final_text() == live.text
    assert sum(c.n_tokens for c in recorded.chunks) == 48
    assert all(c.token_ids and c.logprobs and c.entropy for c in recorded.chunks)

    replay = Replay(path, speed=None)
    assert replay.capabilities.token_ids and replay.capabilities.logprobs and replay.capabilities.entropy
    again = await Monitor(replay, verifiers=[odd_length, spy]).run(replay.prompt)
    assert again.text == live.text and again.tokens.kept == 48
    assert [_key(v) for v in again.verdicts if v.verifier == "odd-length"] == [_key(v) for v in live.verdicts]
    assert tuple(live_chunks) == tuple(recorded.chunks)  # token ids, logprobs and entropy as recorded

    (report,) = await replay_traces(read_traces(path), [odd_length])
    assert isinstance(report, TraceReport) and report.tokens == 48
    assert [_key(v) for v in report.verdicts] == [_key(v) for v in live.verdicts]
