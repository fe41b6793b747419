from __future__ import annotations

import json
from pathlib import Path

import pytest
from interlock import Chunk, TraceFileError, TraceWriter, read_trace


def _write(path: Path, lines: list[object]) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def test_writer_and_reader_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    w = TraceWriter(path, prompt="2+2?", meta={"model": "m"})
    w.chunk(Chunk("2 + 2", token_ids=(5, 6), logprobs=(-0.1, -0.2), entropy=(0.5, 0.25)), t=0.5)
    w.event({"kind": "verdict", "verifier": "sums"})
    w.chunk(Chunk(" = 4."), t=0.75)
    w.end({"stop_reason": "complete"})
    w.end({"stop_reason": "ignored after close"})
    trace = read_trace(path)
    assert trace.prompt == "2+2?" and trace.meta == {"model": "m"}
    assert trace.text == "2 + 2 = 4."
    assert trace.chunks[0] == Chunk("2 + 2", token_ids=(5, 6), logprobs=(-0.1, -0.2), entropy=(0.5, 0.25))
    assert trace.times == [0.5, 0.75]
    assert trace.events == [{"type": "event", "kind": "verdict", "verifier": "sums"}]
    assert trace.end == {"type": "end", "stop_reason": "complete"}


def test_a_file_cut_off_mid_run_is_still_readable(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    w = TraceWriter(path, prompt="p")
    w.chunk(Chunk("abc"))
    # no end line, the process died here
    trace = read_trace(path)
    assert trace.text == "abc" and trace.end is None


@pytest.mark.parametrize(("lines", "message"), [
    ([], "empty trace file: no header line"),
    (['{"type": "chunk", "text": "a"}'], ":1: first line must be the header, got type 'chunk'"),
    ([{"type": "header", "version": 2, "prompt": ""}], ":1: trace file version 2 is newer than this interlock"),
    ([{"type": "header", "version": 1, "prompt": 3}], ":1: header field 'prompt' must be a string"),
    ([{"type": "header", "version": 1}, "{not json"], ":2: not valid JSON"),
    ([{"type": "header", "version": 1}, {"type": "chunk", "text": 5}], ":2: chunk field 'text' must be a string"),
    ([{"type": "header", "version": 1}, {"type": "chunk", "text": "a", "token_ids": ["x"]}],
     ":2: chunk field 'token_ids' must be a list of integers"),
    ([{"type": "header", "version": 1}, {"type": "chunk", "text": "a", "entropy": "x"}],
     ":2: field 'entropy' must be a list of numbers"),
    ([{"type": "header", "version": 1}, {"type": "weird"}], ":2: unknown line type 'weird'"),
    ([{"type": "header", "version": 1}, [1, 2]], ":2: each line must be a JSON object with a 'type' field"),
])
def test_reader_names_file_line_and_field(tmp_path: Path, lines: list[object], message: str) -> None:
    path = _write(tmp_path / "bad.jsonl", lines)
    with pytest.raises(TraceFileError) as caught:
        read_trace(path)
    assert message in str(caught.value)
    assert str(caught.value).startswith(str(path))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TraceFileError, match="cannot read trace file"):
        read_trace(tmp_path / "nope.jsonl")
