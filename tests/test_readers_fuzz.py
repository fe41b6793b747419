"""Fuzz the readers: arbitrary bytes and arbitrary JSON never raise anything but the project's own errors.

``read_trace`` raises :class:`TraceFileError` (or returns a trace); the importers never raise for content at all,
they yield a trace or a located :class:`TraceFileError` per record, and at least one item per file.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from interlock import TraceFileError, read_trace
from interlock.monitor.replay.importers import FORMATS, ImportedTrace, read_traces, traces_from_line

FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SUFFIXES = ("", ".jsonl", ".json", ".txt", ".parquet", ".trace.jsonl")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["id", "text", "steps", "prompt", "labels", "question", "answer", "solution", "is_correct",
                         "type", "version", "t", "token_ids", "logprobs", "kind", "position", "x"]),
        children, max_size=5),
    max_leaves=25)

# Lines that look like parts of real inputs, so the fuzzer reaches deep into the readers.
shaped_lines = st.one_of(
    json_values.map(lambda v: json.dumps(v)),
    st.fixed_dictionaries({"type": st.sampled_from(["header", "chunk", "event", "end"])},
                          optional={"version": json_values, "text": json_values, "t": json_values,
                                    "kind": st.sampled_from(["inject", "intervention"]), "action": st.just("rollback"),
                                    "position": json_values, "token_ids": json_values,
                                    "logprobs": json_values, "prompt": json_values, "meta": json_values}
                          ).map(json.dumps),
    st.text(max_size=30),
)


def _check_file(path: Path) -> None:
    try:
        trace = read_trace(path)
        trace.final_segments()
    except TraceFileError:
        pass
    for fmt in FORMATS:
        items = list(read_traces(path, format=fmt))
        assert items, f"format {fmt}: no item at all"
        for item in items:
            assert isinstance(item, ImportedTrace | TraceFileError), item
            if isinstance(item, ImportedTrace):
                item.pieces()


@FUZZ
@given(data=st.binary(max_size=300), suffix=st.sampled_from(SUFFIXES))
def test_arbitrary_bytes(data: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"input{suffix}"
        path.write_bytes(data)
        _check_file(path)


@FUZZ
@given(lines=st.lists(shaped_lines, max_size=6), suffix=st.sampled_from(SUFFIXES), newline=st.booleans())
def test_arbitrary_json_lines(lines: list[str], suffix: str, newline: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"input{suffix}"
        path.write_text("\n".join(lines) + ("\n" if newline else ""), encoding="utf-8", errors="surrogatepass")
        _check_file(path)


@FUZZ
@given(value=json_values)
def test_arbitrary_json_documents(value: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "input.json"
        path.write_text(json.dumps(value, indent=1), encoding="utf-8", errors="surrogatepass")
        _check_file(path)


@FUZZ
@given(raw=st.binary(max_size=200) | shaped_lines.map(str.encode), fmt=st.sampled_from(["jsonl", "gsm8k"]),
       last=st.booleans())
def test_arbitrary_lines_for_the_ray_workers(raw: bytes, fmt: str, last: bool) -> None:
    for item in traces_from_line(raw, path="x.jsonl", line=3, format=fmt, last=last):
        assert isinstance(item, ImportedTrace | TraceFileError)
        assert item.line == 3
