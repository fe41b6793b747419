"""Trace files, version 1: JSON Lines with a header, chunks and events in order, and an end line.

The writer flushes every line, so a crash or a cancellation leaves a valid file up to that point; the reader
names the file, the line and the field of anything it cannot accept, and rejects a newer major version.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple

from interlock.monitor.chunks import Chunk
from interlock.monitor.errors import TraceFileError

__all__ = ["TRACE_VERSION", "RecordedTrace", "Segment", "TraceWriter", "read_trace"]

TRACE_VERSION = 1


class TraceWriter:
    """Writes one run to a trace file as it happens."""

    def __init__(self, path: str | os.PathLike[str], *, prompt: str, meta: Mapping[str, Any] | None = None) -> None:
        self.path = Path(path)
        self._file: IO[str] | None = self.path.open("w", encoding="utf-8")
        self._t0 = time.perf_counter()
        self._write({"type": "header", "version": TRACE_VERSION, "prompt": prompt, "meta": dict(meta or {})})

    def _write(self, record: Mapping[str, Any]) -> None:
        if self._file is None:
            return
        self._file.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        self._file.flush()

    def elapsed(self) -> float:
        return time.perf_counter() - self._t0

    def chunk(self, chunk: Chunk, t: float | None = None) -> None:
        self._write({"type": "chunk", **chunk.to_dict(), "t": round(self.elapsed() if t is None else t, 6)})

    def event(self, record: Mapping[str, Any]) -> None:
        self._write({"type": "event", **record})

    def end(self, record: Mapping[str, Any]) -> None:
        """Write the end line and close the file; later calls do nothing."""
        self._write({"type": "end", **record})
        self.close()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class Segment(NamedTuple):
    """A piece of the text a run ended with: generated (``injected=False``) or written by the monitor."""

    chunk: Chunk
    t: float
    injected: bool


@dataclass
class RecordedTrace:
    """A trace file read back: enough to replay it without a model.

    ``chunks`` are every chunk generated, including those a rollback later discarded; ``text`` joins them.
    ``final_text()`` is the text the run ended with (rollbacks and injected feedback applied).
    """

    prompt: str
    chunks: list[Chunk]
    times: list[float]
    meta: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    end: dict[str, Any] | None = None
    path: str | None = None
    # For each event, how many chunks preceded it in the file: the order rollbacks and injections happened in.
    event_chunks: list[int] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(c.text for c in self.chunks)

    def final_segments(self) -> list[Segment]:
        """Replay the recorded chunks and events in file order: an applied rollback (an ``intervention`` event
        with ``applied`` and ``action == "rollback"``) cuts the text at its ``position``, an ``inject`` event
        appends the text the monitor wrote. Returns the pieces of the final text, in order."""
        if len(self.event_chunks) != len(self.events):
            if any(e.get("kind") in ("intervention", "inject") for e in self.events):
                raise TraceFileError("the events carry no chunk positions (read the file with read_trace) so "
                                     "their order cannot be reconstructed", path=self.path)
            order = [len(self.chunks)] * len(self.events)
        else:
            order = self.event_chunks
        pieces: list[Segment] = []
        length = 0
        ei = 0
        for i in range(len(self.chunks) + 1):
            while ei < len(self.events) and order[ei] <= i:
                length = self._apply_event(self.events[ei], pieces, length)
                ei += 1
            if i < len(self.chunks):
                chunk = self.chunks[i]
                pieces.append(Segment(chunk, self.times[i] if i < len(self.times) else 0.0, False))
                length += len(chunk.text)
        return pieces

    def final_text(self) -> str:
        """The text the recorded run ended with (see :meth:`final_segments`)."""
        return "".join(s.chunk.text for s in self.final_segments())

    def _apply_event(self, event: dict[str, Any], pieces: list[Segment], length: int) -> int:
        kind = event.get("kind")
        t = event.get("t", 0.0)
        t = float(t) if isinstance(t, int | float) else 0.0
        if kind == "inject":
            text = event.get("text")
            if not isinstance(text, str):
                raise TraceFileError("inject event field 'text' must be a string", path=self.path)
            pieces.append(Segment(Chunk(text, token_ids=()), t, True))
            return length + len(text)
        if kind != "intervention" or event.get("action") != "rollback" or not event.get("applied", True):
            return length
        pos = event.get("position")
        if not isinstance(pos, int) or not 0 <= pos <= length:
            raise TraceFileError(f"rollback event position {pos!r} is outside the {length} characters recorded "
                                 "before it", path=self.path)
        while pieces and length - len(pieces[-1].chunk.text) >= pos:
            length -= len(pieces.pop().chunk.text)
        if pieces and length > pos:
            last = pieces[-1]
            old = last.chunk
            keep = len(old.text) - (length - pos)
            pieces[-1] = last._replace(chunk=Chunk(old.text[:keep], token_ids=old.token_ids, logprobs=old.logprobs,
                                                   entropy=old.entropy))
            length = pos
        return length


def _floats(value: Any, name: str, path: str, line: int) -> tuple[float, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(x, int | float) for x in value):
        raise TraceFileError(f"field {name!r} must be a list of numbers", path=path, line=line)
    return tuple(float(x) for x in value)


def read_trace(path: str | os.PathLike[str]) -> RecordedTrace:
    """Read a version-1 trace file."""
    where = str(path)
    try:
        # Split on "\n" only: model text may hold U+2028 or other characters that str.splitlines() breaks on.
        lines = Path(path).read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceFileError(f"cannot read trace file: {exc}", path=where) from None
    trace: RecordedTrace | None = None
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise TraceFileError(f"not valid JSON ({exc.msg})", path=where, line=number) from None
        if not isinstance(record, dict) or "type" not in record:
            raise TraceFileError("each line must be a JSON object with a 'type' field", path=where, line=number)
        kind = record["type"]
        if trace is None:
            if kind != "header":
                raise TraceFileError(f"first line must be the header, got type {kind!r}", path=where, line=number)
            version = record.get("version")
            if not isinstance(version, int):
                raise TraceFileError("header field 'version' must be an integer", path=where, line=number)
            if version > TRACE_VERSION:
                raise TraceFileError(f"trace file version {version} is newer than this interlock reads "
                                     f"(up to {TRACE_VERSION}); upgrade interlock", path=where, line=number)
            prompt = record.get("prompt", "")
            if not isinstance(prompt, str):
                raise TraceFileError("header field 'prompt' must be a string", path=where, line=number)
            meta = record.get("meta") or {}
            if not isinstance(meta, dict):
                raise TraceFileError("header field 'meta' must be an object", path=where, line=number)
            trace = RecordedTrace(prompt=prompt, chunks=[], times=[], meta=meta, path=where)
            continue
        if kind == "chunk":
            text = record.get("text")
            if not isinstance(text, str):
                raise TraceFileError("chunk field 'text' must be a string", path=where, line=number)
            ids = record.get("token_ids")
            if ids is not None and (not isinstance(ids, list) or not all(isinstance(i, int) for i in ids)):
                raise TraceFileError("chunk field 'token_ids' must be a list of integers", path=where, line=number)
            t = record.get("t", trace.times[-1] if trace.times else 0.0)
            if not isinstance(t, int | float):
                raise TraceFileError("chunk field 't' must be a number", path=where, line=number)
            trace.chunks.append(Chunk(text, token_ids=tuple(ids) if ids is not None else None,
                                      logprobs=_floats(record.get("logprobs"), "logprobs", where, number),
                                      entropy=_floats(record.get("entropy"), "entropy", where, number)))
            trace.times.append(float(t))
        elif kind == "event":
            trace.events.append(record)
            trace.event_chunks.append(len(trace.chunks))
        elif kind == "end":
            trace.end = record
        elif kind == "header":
            raise TraceFileError("a second header line", path=where, line=number)
        else:
            raise TraceFileError(f"unknown line type {kind!r}", path=where, line=number)
    if trace is None:
        raise TraceFileError("empty trace file: no header line", path=where)
    return trace
