"""Recorded traces with a reference answer: read from JSONL (field names configurable) or interlock trace files.

A record is plain data (it crosses process boundaries): the question, the whole trace, the reference answer,
the recorded grade when there is one, and either the recorded chunks (trace files: real token ids and logprobs)
or, once tokenised, where each token of the text starts.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import IO, Any

from interlock.monitor.budgets.errors import BudgetError
from interlock.monitor.budgets.tokens import HFTokenizer, Tokenizer
from interlock.monitor.chunks import Chunk
from interlock.monitor.errors import TraceFileError
from interlock.monitor.phases import ANSWER, PhaseRuns, check_phase
from interlock.monitor.tracefile import read_trace

__all__ = ["DEFAULT_MAX_RECORD_BYTES", "RecordFields", "TraceRecord", "read_records", "tokenize_records"]

# The largest record (a JSON line, or a whole trace file) that is read: a bigger one is an error in its place, so
# one 50 MB trace cannot take the memory (or the hours) the rest of the batch needs. A long reasoning trace is
# well under 1 MB (32k tokens are about 130 kB).
DEFAULT_MAX_RECORD_BYTES = 4 * 1024 * 1024
_BLOCK = 1 << 16


@dataclass(frozen=True)
class RecordFields:
    """Where a JSON record keeps its parts: the named field if present, else the first fallback it has. A list
    (SkyThought's ``code: [trace]``, ``score: [true]``) counts by its first element, except for the id, which must
    be a string or an integer."""

    id: str = "id"
    question: str = "question"
    trace: str = "text"
    reference: str = "reference"
    correct: str = "correct"
    id_fallbacks: tuple[str, ...] = ("idx", "unique_id")
    question_fallbacks: tuple[str, ...] = ("prompt", "problem", "input")
    trace_fallbacks: tuple[str, ...] = ("trace", "code", "response", "completion", "output", "generation")
    reference_fallbacks: tuple[str, ...] = ("answer", "gt", "ground_truth", "expected")
    correct_fallbacks: tuple[str, ...] = ("is_correct", "score")


@dataclass(frozen=True)
class TraceRecord:
    """One recorded trace to replay under budget policies."""

    id: str
    question: str
    text: str
    reference: str
    recorded_correct: bool | None = None
    chunks: tuple[Chunk, ...] | None = field(default=None, repr=False)  # recorded (trace files)
    starts: tuple[int, ...] | None = field(default=None, repr=False)  # token starts (tokenised text)
    source: str = ""
    phases: PhaseRuns = ()  # where the thinking and the answer begin in ``text`` (``()``: all answer)

    @property
    def n_tokens(self) -> int | None:
        if self.chunks is not None:
            return sum(c.n_tokens for c in self.chunks)
        return len(self.starts) if self.starts is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "question": self.question, "text": self.text, "reference": self.reference,
                "recorded_correct": self.recorded_correct, "source": self.source,
                "chunks": None if self.chunks is None else [{**c.to_dict(), "injected": c.injected, "phase": c.phase}
                                                            for c in self.chunks],
                "starts": None if self.starts is None else list(self.starts),
                "phases": [[s, p] for s, p in self.phases]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TraceRecord:
        """The inverse of :meth:`to_dict` (``chunks``/``starts`` optional)."""
        try:
            chunks = data.get("chunks")
            starts = data.get("starts")
            return cls(id=str(data["id"]), question=str(data.get("question", "")), text=data["text"],
                       reference=str(data["reference"]), recorded_correct=data.get("recorded_correct"),
                       source=str(data.get("source", "")),
                       chunks=None if chunks is None else tuple(
                           Chunk(c["text"], tuple(c["token_ids"]) if c.get("token_ids") is not None else None,
                                 tuple(c["logprobs"]) if c.get("logprobs") is not None else None,
                                 tuple(c["entropy"]) if c.get("entropy") is not None else None,
                                 bool(c.get("injected", False)), tokens=c.get("tokens"),
                                 phase=check_phase(c.get("phase", ANSWER))) for c in chunks),
                       starts=None if starts is None else tuple(int(s) for s in starts),
                       phases=tuple((int(s), check_phase(p)) for s, p in data.get("phases") or ()))
        except (KeyError, TypeError) as exc:
            raise BudgetError(f"a record needs id, text and reference: {exc}") from None


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) and value else value


def _pick(record: Mapping[str, Any], name: str, fallbacks: Sequence[str], *, first: bool = True) -> tuple[str, Any]:
    for key in (name, *fallbacks):
        if key in record and record[key] is not None:
            value = _first(record[key]) if first else record[key]
            if value is not None:
                return key, value
    return name, None


def _from_json(record: Any, f: RecordFields, where: str, line: int) -> TraceRecord:
    if not isinstance(record, dict):
        raise TraceFileError(f"a record must be a JSON object, got {type(record).__name__}", path=where, line=line)
    id_key, ident = _pick(record, f.id, f.id_fallbacks, first=False)
    if ident is not None and (not isinstance(ident, str | int) or isinstance(ident, bool)):
        shown = repr(ident) if len(repr(ident)) <= 60 else repr(ident)[:57] + "..."
        raise TraceFileError(f"field {id_key!r} must be a string or an integer, got {type(ident).__name__} {shown}",
                             path=where, line=line)
    _, question = _pick(record, f.question, f.question_fallbacks)
    _, text = _pick(record, f.trace, f.trace_fallbacks)
    ref_key, reference = _pick(record, f.reference, f.reference_fallbacks)
    correct_key, correct = _pick(record, f.correct, f.correct_fallbacks)
    if not isinstance(text, str):
        raise TraceFileError(f"no trace text: field {f.trace!r} (or {', '.join(f.trace_fallbacks)}) must be a "
                             "string or a list of strings", path=where, line=line)
    if isinstance(reference, int | float) and not isinstance(reference, bool):
        reference = str(reference)
    if not isinstance(reference, str) or not reference.strip():
        raise TraceFileError(f"no reference answer: field {f.reference!r} (or {', '.join(f.reference_fallbacks)}) "
                             f"must be a non-empty string (found {ref_key!r}: {reference!r})", path=where, line=line)
    if correct is not None and not isinstance(correct, bool):
        raise TraceFileError(f"field {correct_key!r} must be a boolean", path=where, line=line)
    return TraceRecord(id=str(ident) if ident is not None else f"{os.path.basename(where)}:{line}",
                       question=question if isinstance(question, str) else "", text=text, reference=reference,
                       recorded_correct=correct, source=where)


def _from_trace_file(where: str) -> TraceRecord:
    recorded = read_trace(where)
    meta = recorded.meta
    reference = next((meta[k] for k in ("reference", "answer", "expected") if isinstance(meta.get(k), str | int)),
                     None)
    if reference is None:
        raise TraceFileError("the trace file's meta holds no reference answer (record with "
                             "Monitor(meta={'reference': ...}))", path=where)
    segments = recorded.final_segments()
    chunks = tuple(replace(s.chunk, injected=s.injected) for s in segments)
    correct = meta.get("correct")
    return TraceRecord(id=str(meta.get("id") or os.path.basename(where)), question=recorded.prompt,
                       text="".join(c.text for c in chunks), reference=str(reference),
                       recorded_correct=correct if isinstance(correct, bool) else None, chunks=chunks, source=where)


def _too_big(size: int, limit: int) -> str:
    return f"the record is {size:,} bytes, over the limit of {limit:,} (--max-record-mb): left out"


def _lines(f: IO[bytes], limit: int) -> Iterator[tuple[int, bytes | int]]:
    """(line number, the line's bytes without its newline) for each line of ``f``, streamed; a line longer than
    ``limit`` bytes is skipped unread and given as its size instead (memory stays bounded by the limit)."""
    number = 0
    while True:
        raw = f.readline(limit + 1)
        if not raw:
            return
        number += 1
        if raw.endswith(b"\n"):
            yield number, raw[:-1]
            continue
        if len(raw) <= limit:  # the last line, without a newline
            yield number, raw
            return
        size = len(raw)
        while True:  # skip the rest of the line, a block at a time
            block = f.readline(_BLOCK)
            size += len(block)
            if not block or block.endswith(b"\n"):
                break
        yield number, size - (1 if block.endswith(b"\n") else 0)


def read_records(path: str | os.PathLike[str], fields: RecordFields | None = None, *,
                 max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> Iterator[TraceRecord | TraceFileError]:
    """The records of a JSONL file (or one interlock trace file), read a line at a time; a record that cannot be
    used (broken, not UTF-8, over ``max_record_bytes``) is yielded as a :class:`TraceFileError` naming its file and
    line, and the rest of the file is still read."""
    where = str(path)
    fields = fields or RecordFields()
    if max_record_bytes < 1:
        raise BudgetError(f"max_record_bytes must be at least 1, got {max_record_bytes}")
    try:
        f = open(where, "rb")  # noqa: SIM115  (closed below, after the generator's last record)
    except OSError as exc:
        yield TraceFileError(f"cannot read file: {exc}", path=where)
        return
    with f:
        lines = _lines(f, max_record_bytes)
        head: tuple[int, bytes | int] | None = next(((n, raw) for n, raw in lines
                                                     if not isinstance(raw, bytes) or raw.strip()), None)
        if head is None:
            return
        if isinstance(head[1], bytes) and head[1].lstrip().startswith(b"{") and b'"header"' in head[1]:
            try:
                parsed = json.loads(head[1])
            except (json.JSONDecodeError, UnicodeDecodeError):
                parsed = None
            if isinstance(parsed, dict) and parsed.get("type") == "header":  # an interlock trace file: one record
                size = os.fstat(f.fileno()).st_size
                if size > max_record_bytes:
                    yield TraceFileError(_too_big(size, max_record_bytes), path=where)
                    return
                try:
                    yield _from_trace_file(where)
                except TraceFileError as exc:
                    yield exc
                return
        for number, raw in itertools.chain([head], lines):
            if not isinstance(raw, bytes):
                yield TraceFileError(_too_big(raw, max_record_bytes), path=where, line=number)
                continue
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield TraceFileError(f"not UTF-8 (byte {exc.start + 1} of the line: {exc.reason})", path=where,
                                     line=number)
                continue
            try:
                yield _from_json(json.loads(text), fields, where, number)
            except json.JSONDecodeError as exc:
                yield TraceFileError(f"not valid JSON ({exc.msg}, column {exc.colno})", path=where, line=number)
            except RecursionError:
                yield TraceFileError("JSON nested too deeply to read", path=where, line=number)
            except TraceFileError as exc:
                yield exc


def tokenize_records(records: Sequence[TraceRecord], tokenizer: Tokenizer) -> list[TraceRecord]:
    """Records with their token starts (recorded chunks keep their own tokens); a fast HF tokenizer encodes the
    whole batch in one call. A record with phases is tokenised a phase run at a time, so that every phase change
    is a token start and each token belongs to one phase."""
    todo = [i for i, r in enumerate(records) if r.chunks is None and r.starts is None]
    pieces: list[tuple[int, int]] = []  # (record, offset of the run in its text), one per text encoded
    texts: list[str] = []
    for i in todo:
        rec = records[i]
        bounds = [s for s, _ in rec.phases] or [0]
        for k, start in enumerate(bounds):
            end = bounds[k + 1] if k + 1 < len(bounds) else len(rec.text)
            pieces.append((i, start))
            texts.append(rec.text[start:end])
    if isinstance(tokenizer, HFTokenizer):
        starts = tokenizer.starts_batch(texts) if texts else []
    else:
        starts = [tokenizer.starts(t) for t in texts]
    joined: dict[int, list[int]] = {i: [] for i in todo}
    for (i, offset), found in zip(pieces, starts, strict=True):
        joined[i].extend(offset + s for s in found)
    out = list(records)
    for i in todo:
        out[i] = replace(records[i], starts=tuple(joined[i]))
    return out
