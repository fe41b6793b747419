"""Trace files, version 1: JSON Lines with a header, chunks and events in order, and an end line.

The writer flushes every line, so a crash or a cancellation leaves a valid file up to that point; the reader
names the file, the line and the field of anything it cannot accept, and rejects a newer major version.

Hostile text is written, never raised on: a lone surrogate (``"\\ud800"``, which JSON allows and some models
produce) cannot be encoded as UTF-8, so the writer replaces it with U+FFFD and says so on that line
(``"replaced": {"surrogates": n}``) and in the end line's totals; a non-finite float is written as ``null``
(counted as ``non_finite``), because strict JSON has no NaN or Infinity. The reader is strict JSON too (no NaN or
Infinity; times finite, and at most a week after the run started, so a replay never waits for ever), survives any
nesting depth with a located error, and reads a file cut mid-line (a disk full, a killed process) up to its last
complete line, with a warning in :attr:`RecordedTrace.warnings`.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple

from interlock.monitor.chunks import Chunk
from interlock.monitor.errors import ConfigError, TraceFileError
from interlock.monitor.phases import ANSWER, Phase, check_phase
from interlock.monitor.textout import scrub

__all__ = ["MAX_TRACE_SECONDS", "TRACE_VERSION", "RecordedTrace", "Segment", "TraceWriter", "check_time",
           "parse_json_line", "read_trace", "replace_surrogates"]

TRACE_VERSION = 1
# The latest time a trace file may record (seconds after its run started): a replay at the recorded pace waits
# that long at most, never "forever" (``"t": 1e300`` is finite, and would be).
MAX_TRACE_SECONDS = 7 * 24 * 3600


def check_time(t: Any) -> str | None:
    """Why ``t`` is no time a trace file can record (``None`` when it is one): a finite number of seconds from 0
    to :data:`MAX_TRACE_SECONDS` after the run started."""
    if not isinstance(t, int | float) or isinstance(t, bool) or not math.isfinite(t):
        return f"must be a finite number, got {t!r}"
    if t < 0:
        return f"is {t:g} seconds after the run started: a time cannot be negative"
    if t > MAX_TRACE_SECONDS:
        return (f"is {t:g} seconds after the run started: more than {MAX_TRACE_SECONDS} (a week), which no recorded "
                "run takes")
    return None


def replace_surrogates(text: str) -> tuple[str, int]:
    """``text`` with every lone surrogate replaced by U+FFFD, and how many there were: the project's policy for
    writing text anywhere (see :mod:`interlock.monitor.textout`)."""
    return scrub(text)


class _NonFinite(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise _NonFinite(name)


def parse_json_line(raw: str, *, path: str | None, line: int | None) -> Any:
    """Parse one line of strict JSON, or raise :class:`TraceFileError` naming the file, the line and why.

    Strict: ``NaN``, ``Infinity`` and ``-Infinity`` (which Python's json reads by default) are rejected, so a time
    cannot be infinite. Nesting deeper than Python's recursion limit is a located error, not a ``RecursionError``.
    """
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise TraceFileError(f"not valid JSON ({exc.msg}, column {exc.colno})", path=path, line=line) from None
    except _NonFinite as exc:
        raise TraceFileError(f"not valid JSON ({exc} is not a JSON number; strict JSON has no NaN or Infinity)",
                             path=path, line=line) from None
    except RecursionError:
        raise TraceFileError("JSON nested too deeply to read (more levels than the recursion limit allows)",
                             path=path, line=line) from None


def _finite_or_null(value: Any, counts: dict[str, int]) -> Any:
    """``value`` with every non-finite float replaced by ``None`` (counted); other values as they are."""
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        counts["non_finite"] = counts.get("non_finite", 0) + 1
        return None
    if isinstance(value, Mapping):
        return {k: _finite_or_null(v, counts) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_null(v, counts) for v in value]
    return value


class TraceWriter:
    """Writes one run to a trace file as it happens."""

    def __init__(self, path: str | os.PathLike[str], *, prompt: str, meta: Mapping[str, Any] | None = None,
                 started: float | None = None) -> None:
        self.path = Path(path)
        self._file: IO[str] | None = self.path.open("w", encoding="utf-8")
        #: The ``time.perf_counter()`` its times count from (the run's start, when the run passes it).
        self.started = time.perf_counter() if started is None else started
        #: What the writer had to replace so far: ``{"surrogates": n, "non_finite": m}`` (only kinds that occurred).
        self.replaced: dict[str, int] = {}
        self._write({"type": "header", "version": TRACE_VERSION, "prompt": prompt, "meta": dict(meta or {})})

    def _write(self, record: Mapping[str, Any]) -> None:
        if self._file is None:
            return
        counts: dict[str, int] = {}
        try:
            line = json.dumps(record, ensure_ascii=False, default=str, allow_nan=False)
        except ValueError:  # a NaN or an infinity: strict JSON cannot hold it
            line = json.dumps(_finite_or_null(record, counts), ensure_ascii=False, default=str, allow_nan=False)
        line, surrogates = replace_surrogates(line)
        if surrogates:
            counts["surrogates"] = surrogates
        if counts:
            for kind, n in counts.items():
                self.replaced[kind] = self.replaced.get(kind, 0) + n
            line = line[:-1] + ', "replaced": ' + json.dumps(counts) + "}"  # every record is an object
        self._file.write(line + "\n")
        self._file.flush()

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def chunk(self, chunk: Chunk, t: float | None = None) -> None:
        self._write({"type": "chunk", **chunk.to_dict(), "t": round(self.elapsed() if t is None else t, 6)})

    def event(self, record: Mapping[str, Any]) -> None:
        self._write({"type": "event", **record})

    def end(self, record: Mapping[str, Any]) -> None:
        """Write the end line and close the file; later calls do nothing. If anything had to be replaced in the
        file (this line included), the end line says how much in all: ``"replaced_total"``."""
        line = {"type": "end", **record}
        own: dict[str, int] = {}
        _, surrogates = replace_surrogates(json.dumps(_finite_or_null(line, own), ensure_ascii=False, default=str))
        if surrogates:
            own["surrogates"] = surrogates
        total = dict(self.replaced)
        for kind, n in own.items():
            total[kind] = total.get(kind, 0) + n
        self._write({**line, "replaced_total": total} if total else line)
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

    ``chunks`` are every chunk generated, including those a rollback later discarded and those of attempts a
    restart abandoned; ``text`` joins them. ``final_text()`` is the text the run ended with (rollbacks, injected
    feedback and restarts applied), and ``final_prompt`` the prompt it was generated for.
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
    #: What the reader accepted with a caveat (a file cut mid-line, read up to its last complete line).
    warnings: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(c.text for c in self.chunks)

    @property
    def restarts(self) -> list[dict[str, Any]]:
        """The ``restart`` events: one per attempt a governor abandoned, with the prompt of the next attempt."""
        return [e for e in self.events if e.get("kind") == "restart"]

    @property
    def final_prompt(self) -> str:
        """The prompt of the last attempt (the question and the state a restart carried), else ``prompt``."""
        prompts = [e["prompt"] for e in self.restarts if isinstance(e.get("prompt"), str)]
        return prompts[-1] if prompts else self.prompt

    def final_segments(self) -> list[Segment]:
        """Replay the recorded chunks and events in file order: an applied rollback (an ``intervention`` event
        with ``applied`` and ``action == "rollback"``) cuts the text at its ``position``, an ``inject`` event
        appends the text the monitor wrote, a ``restart`` event starts the next attempt from nothing. Returns the
        pieces of the final text, in order."""
        if len(self.event_chunks) != len(self.events):
            if any(e.get("kind") in ("intervention", "inject", "restart") for e in self.events):
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
        t = float(t) if isinstance(t, int | float) and math.isfinite(t) else 0.0
        if kind == "restart":  # the attempt so far was abandoned: the next one starts from an empty trace
            pieces.clear()
            return 0
        if kind == "inject":
            text = event.get("text")
            if not isinstance(text, str):
                raise TraceFileError("inject event field 'text' must be a string", path=self.path)
            pieces.append(Segment(Chunk(text, token_ids=(), phase=_phase(event.get("phase"), self.path, None)),
                                  t, True))
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
                                                   entropy=old.entropy, phase=old.phase))
            length = pos
        return length


def _phase(value: Any, path: str | None, line: int | None) -> Phase:
    """A record's optional ``phase`` field (absent: the answer, as every file before phases reads)."""
    if value is None:
        return ANSWER
    try:
        return check_phase(value, "field 'phase'")
    except ConfigError as exc:
        raise TraceFileError(str(exc), path=path, line=line) from None


def _floats(value: Any, name: str, path: str, line: int) -> tuple[float, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(x, int | float) and not isinstance(x, bool)
                                              and not math.isnan(x) for x in value):
        raise TraceFileError(f"field {name!r} must be a list of numbers", path=path, line=line)
    return tuple(float(x) for x in value)


def _lines(path: str) -> Iterator[tuple[int, bytes, bool]]:
    """(line number, bytes without the newline, whether a newline ended it), streamed from the file.

    Split on ``\\n`` only: model text may hold U+2028 or other characters that ``str.splitlines()`` breaks on.
    """
    try:
        with open(path, "rb") as f:
            for number, raw in enumerate(f, start=1):
                ended = raw.endswith(b"\n")
                yield number, raw[:-1] if ended else raw, ended
    except OSError as exc:
        raise TraceFileError(f"cannot read trace file: {exc}", path=path) from None


def _decode(raw: bytes, path: str, number: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TraceFileError(f"not UTF-8 (byte {exc.start + 1} of the line: {exc.reason})", path=path,
                             line=number) from None


def read_trace(path: str | os.PathLike[str]) -> RecordedTrace:
    """Read a version-1 trace file, streaming it line by line.

    A last line without its newline that does not parse (the file was cut mid-line) is dropped with a warning
    naming where the file stops; anything else the reader cannot accept raises :class:`TraceFileError`.
    """
    where = str(path)
    trace: RecordedTrace | None = None
    cut: str | None = None
    for number, data, ended in _lines(where):
        try:
            raw = _decode(data, where, number)
            if not raw.strip():
                continue
            record = parse_json_line(raw, path=where, line=number)
        except TraceFileError as exc:
            if ended:
                raise
            cut = (f"{where}:{number}: the file stops mid-line ({len(data)} bytes of line {number} and no newline: "
                   f"{str(exc).removeprefix(f'{where}:{number}: ')}); read up to line {number - 1}")
            break
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
            if (problem := check_time(t)) is not None:
                raise TraceFileError(f"chunk field 't' {problem}", path=where, line=number)
            trace.chunks.append(Chunk(text, token_ids=tuple(ids) if ids is not None else None,
                                      logprobs=_floats(record.get("logprobs"), "logprobs", where, number),
                                      entropy=_floats(record.get("entropy"), "entropy", where, number),
                                      phase=_phase(record.get("phase"), where, number)))
            trace.times.append(float(t))
        elif kind == "event":
            if record.get("kind") == "inject":
                _phase(record.get("phase"), where, number)
            if "t" in record and (problem := check_time(record["t"])) is not None:
                raise TraceFileError(f"event field 't' {problem}", path=where, line=number)
            trace.events.append(record)
            trace.event_chunks.append(len(trace.chunks))
        elif kind == "end":
            trace.end = record
        elif kind == "header":
            raise TraceFileError("a second header line", path=where, line=number)
        else:
            raise TraceFileError(f"unknown line type {kind!r}", path=where, line=number)
    if trace is None:
        raise TraceFileError("empty trace file: no header line" if cut is None else cut, path=None if cut else where)
    if cut is not None:
        trace.warnings.append(cut)
    return trace
