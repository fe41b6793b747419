"""Recorded traces with a reference answer: read from JSONL (field names configurable) or interlock trace files.

A record is plain data (it crosses process boundaries): the question, the whole trace, the reference answer,
the recorded grade when there is one, and either the recorded chunks (trace files: real token ids and logprobs)
or, once tokenised, where each token of the text starts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from interlock.monitor.budgets.errors import BudgetError
from interlock.monitor.budgets.tokens import HFTokenizer, Tokenizer
from interlock.monitor.chunks import Chunk
from interlock.monitor.errors import TraceFileError
from interlock.monitor.phases import ANSWER, PhaseRuns, check_phase
from interlock.monitor.tracefile import read_trace

__all__ = ["RecordFields", "TraceRecord", "read_records", "tokenize_records"]


@dataclass(frozen=True)
class RecordFields:
    """Where a JSON record keeps its parts: the named field if present, else the first fallback it has. A list
    (SkyThought's ``code: [trace]``, ``score: [true]``) counts by its first element."""

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


def _pick(record: Mapping[str, Any], name: str, fallbacks: Sequence[str]) -> tuple[str, Any]:
    for key in (name, *fallbacks):
        if key in record and _first(record[key]) is not None:
            return key, _first(record[key])
    return name, None


def _from_json(record: Any, f: RecordFields, where: str, line: int) -> TraceRecord:
    if not isinstance(record, dict):
        raise TraceFileError(f"a record must be a JSON object, got {type(record).__name__}", path=where, line=line)
    _, ident = _pick(record, f.id, f.id_fallbacks)
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


def read_records(path: str | os.PathLike[str], fields: RecordFields | None = None
                 ) -> Iterator[TraceRecord | TraceFileError]:
    """The records of a JSONL file (or one interlock trace file); a record that cannot be used is yielded as a
    :class:`TraceFileError` naming its file and line, and the rest of the file is still read."""
    where = str(path)
    fields = fields or RecordFields()
    try:
        content = Path(where).read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        yield TraceFileError(f"cannot read file: {exc}", path=where)
        return
    lines = content.split("\n")
    first = next((ln for ln in lines if ln.strip()), "")
    try:
        head = json.loads(first) if first else None
    except json.JSONDecodeError:
        head = None
    if isinstance(head, dict) and head.get("type") == "header":
        try:
            yield _from_trace_file(where)
        except TraceFileError as exc:
            yield exc
        return
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            yield _from_json(json.loads(raw), fields, where, number)
        except json.JSONDecodeError as exc:
            yield TraceFileError(f"not valid JSON ({exc.msg}, column {exc.colno})", path=where, line=number)
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
