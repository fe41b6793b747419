"""Turn traces recorded elsewhere into replayable traces, without a model.

Formats (``read_traces(path, format=...)``):

- ``trace``: an interlock trace file (one trace; the text the run ended with, token data kept).
- ``text``: a plain text file is one trace; its id is the file name.
- ``jsonl``: JSON Lines, a JSON array or a single JSON object; each record holds a list of steps (strings, or
  objects with a text field) or one text, an id, a prompt and labels, under configurable field names
  (:class:`FieldNames`). Steps are joined with ``step_separator`` (a newline: one step per line).
- ``gsm8k``: the GSM8K formats: reference solutions (``{"question", "answer"}``) and model solutions
  (``{"question", "ground_truth", "<model>": {"solution", "is_correct"}, ...}``), each solution its own trace.
- ``auto``: by the content (a trace header, GSM8K fields) and the file name (``.txt``/``.md``: text).

A record that cannot be read becomes a :class:`TraceFileError` naming the file and line, yielded in its place,
so one bad line does not lose the rest of the file. Trace text is kept exactly as it was (spans point into it).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from interlock.monitor.chunks import Chunk
from interlock.monitor.errors import ConfigError, TraceFileError
from interlock.monitor.scan import pseudo_tokens
from interlock.monitor.tracefile import Segment, read_trace

__all__ = ["FORMATS", "FieldNames", "Format", "ImportedTrace", "detect_format", "read_traces"]

Format = Literal["auto", "trace", "text", "jsonl", "gsm8k"]
FORMATS: tuple[str, ...] = ("auto", "trace", "text", "jsonl", "gsm8k")
_TEXT_SUFFIXES = (".txt", ".md", ".text")
_GSM8K_ANSWER = re.compile(r"(?:^|\n)\s*(?:####|A:)\s*(.+?)\s*$")
_SCALAR = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class FieldNames:
    """Where a JSON record keeps its parts. ``text`` is also the field of step objects.

    A record without the ``prompt`` field takes its prompt from the first of ``prompt_fallbacks`` it has (a list
    of numbers, such as a Game of 24 puzzle's, is joined with spaces); one with neither ``steps`` nor ``text``
    takes its text from the first of ``text_fallbacks``, so the usual dataset layouts need no options.
    """

    id: str = "id"
    steps: str = "steps"
    text: str = "text"
    prompt: str = "prompt"
    labels: str = "labels"
    step_separator: str = "\n"
    prompt_fallbacks: tuple[str, ...] = ("question", "problem", "input", "query", "puzzle", "numbers")
    text_fallbacks: tuple[str, ...] = ("response", "completion", "output", "solution", "generation")


@dataclass(frozen=True)
class ImportedTrace:
    """One trace to replay: its text (as segments, or plain text streamed in word-sized pieces), where it came
    from, its id and the labels it carried (``is_correct``, the model, ...)."""

    id: str
    text: str
    prompt: str = ""
    labels: Mapping[str, Any] = field(default_factory=dict)
    path: str | None = None
    line: int | None = None
    # The recorded pieces (token data, injected feedback); ``None``: the text, split as it would stream.
    segments: tuple[Segment, ...] | None = field(default=None, repr=False)

    def pieces(self) -> tuple[Segment, ...]:
        """The segments to stream; plain text is split into word-sized pieces, one pseudo-token each."""
        if self.segments is not None:
            return self.segments
        return tuple(Segment(Chunk(p), 0.0, False) for p in pseudo_tokens(self.text))

    @property
    def tokens(self) -> int:
        """Generated tokens (recorded token ids, else word-sized pieces)."""
        if self.segments is None:
            return sum(1 for _ in pseudo_tokens(self.text))
        return sum(s.chunk.n_tokens for s in self.segments if not s.injected)


def _name(path: str) -> str:
    return os.path.basename(path)


def _read_text(path: str) -> str:
    try:
        # Bytes decoded as they are: no newline translation, so spans match the file's text exactly.
        return Path(path).read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceFileError(f"cannot read file: {exc}", path=path) from None


def _first_record(text: str) -> Any:
    for raw in text.split("\n"):
        if raw.strip():
            try:
                return json.loads(raw)
            except json.JSONDecodeError:
                return None
    return None


def _looks_gsm8k(record: Any) -> bool:
    if not isinstance(record, dict) or not isinstance(record.get("question"), str):
        return False
    if "steps" in record:
        return False  # a dataset of steps that also carries the question and its answer
    answer = record.get("answer")
    return (isinstance(answer, str) and "####" in answer) or any(_solution(v) for v in record.values())


def _solution(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("solution"), str)


def detect_format(path: str | os.PathLike[str], text: str | None = None) -> str:
    """Guess the format of ``path`` from its name and first record."""
    where = str(path)
    if where.lower().endswith(_TEXT_SUFFIXES):
        return "text"
    content = _read_text(where) if text is None else text
    stripped = content.lstrip()
    if stripped.startswith("["):
        try:
            data = json.loads(content)
        except json.JSONDecodeError:
            return "jsonl"
        return "gsm8k" if isinstance(data, list) and data and _looks_gsm8k(data[0]) else "jsonl"
    first = _first_record(content)
    if isinstance(first, dict) and first.get("type") == "header":
        return "trace"
    if _looks_gsm8k(first):
        return "gsm8k"
    if isinstance(first, dict):
        return "jsonl"
    return "text"


def read_traces(path: str | os.PathLike[str], *, format: str = "auto",
                fields: FieldNames | None = None) -> Iterator[ImportedTrace | TraceFileError]:
    """Yield the traces of one file, and a :class:`TraceFileError` in place of each record it cannot read."""
    if format not in FORMATS:
        raise ConfigError(f"unknown trace format {format!r}; expected one of: {', '.join(FORMATS)}")
    where = str(path)
    fields = fields or FieldNames()
    try:
        if format == "trace":
            yield _from_trace_file(where)
            return
        content = _read_text(where)
        if format == "auto":
            format = detect_format(where, content)
        if format == "trace":
            yield _from_trace_file(where)
        elif format == "text":
            yield ImportedTrace(id=_name(where), text=content, path=where)
        elif format == "gsm8k":
            for line, record in _records(content, where):
                if isinstance(record, TraceFileError):
                    yield record
                else:
                    yield from _gsm8k(record, where, line)
        else:
            for line, record in _records(content, where):
                if isinstance(record, TraceFileError):
                    yield record
                else:
                    yield _steps_record(record, where, line, fields)
    except TraceFileError as exc:
        yield exc


def _from_trace_file(path: str) -> ImportedTrace:
    recorded = read_trace(path)
    segments = tuple(recorded.final_segments())
    meta = recorded.meta
    ident = meta.get("id") or _name(path)
    labels = {k: v for k, v in meta.items() if k != "id" and isinstance(v, _SCALAR)}
    return ImportedTrace(id=str(ident), text="".join(s.chunk.text for s in segments), prompt=recorded.prompt,
                         labels=labels, path=path, segments=segments)


def _records(content: str, path: str) -> Iterator[tuple[int, Any]]:
    """(line, record) for JSON Lines, a JSON array or one JSON object; a bad line yields a TraceFileError."""
    stripped = content.lstrip()
    if stripped.startswith("["):
        yield from _array(content, path)
        return
    if stripped.startswith("{"):
        try:
            whole = json.loads(content)
        except json.JSONDecodeError:
            whole = None
        if isinstance(whole, dict):
            yield content[: len(content) - len(stripped)].count("\n") + 1, whole
            return
    for number, raw in enumerate(content.split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            yield number, json.loads(raw)
        except json.JSONDecodeError as exc:
            yield number, TraceFileError(f"not valid JSON ({exc.msg}, column {exc.colno})", path=path, line=number)


def _array(content: str, path: str) -> Iterator[tuple[int, Any]]:
    decoder = json.JSONDecoder()
    pos = content.index("[") + 1
    ws = re.compile(r"[\s,]*")
    while True:
        pos = ws.match(content, pos).end()  # type: ignore[union-attr]
        if pos >= len(content):
            line = content.count("\n") + 1
            yield line, TraceFileError("JSON array is not closed with ']'", path=path, line=line)
            return
        if content[pos] == "]":
            return
        line = content.count("\n", 0, pos) + 1
        try:
            record, pos = decoder.raw_decode(content, pos)
        except json.JSONDecodeError as exc:
            yield exc.lineno, TraceFileError(f"not valid JSON ({exc.msg}, column {exc.colno})", path=path,
                                             line=exc.lineno)
            return
        yield line, record


def _ident(value: Any, path: str, line: int, fallback: str) -> str:
    if value is None:
        return fallback
    if isinstance(value, str | int) and not isinstance(value, bool):
        return str(value)
    raise TraceFileError(f"id must be a string or an integer, got {type(value).__name__}", path=path, line=line)


def _prompt(record: dict[str, Any], f: FieldNames) -> tuple[str, Any]:
    """The prompt's field and value: ``f.prompt``, else the first fallback that holds a string or numbers."""
    if f.prompt in record:
        return f.prompt, record[f.prompt]
    for k in f.prompt_fallbacks:
        value = record.get(k)
        if isinstance(value, str):
            return k, value
        if isinstance(value, list) and value and all(isinstance(x, int | float) and not isinstance(x, bool)
                                                     for x in value):
            return k, " ".join(str(x) for x in value)
    return f.prompt, ""


def _steps_record(record: Any, path: str, line: int, f: FieldNames) -> ImportedTrace | TraceFileError:
    if not isinstance(record, dict):
        return TraceFileError(f"a record must be a JSON object, got {type(record).__name__}", path=path, line=line)
    try:
        ident = _ident(record.get(f.id), path, line, f"{_name(path)}:{line}")
        text_field = f.text
        if f.steps not in record and f.text not in record:
            text_field = next((k for k in f.text_fallbacks if isinstance(record.get(k), str)), f.text)
        if f.steps in record:
            steps = record[f.steps]
            if not isinstance(steps, list):
                raise TraceFileError(f"field {f.steps!r} must be a list of steps", path=path, line=line)
            parts: list[str] = []
            for i, step in enumerate(steps):
                if isinstance(step, dict):
                    step = step.get(f.text)
                if not isinstance(step, str):
                    raise TraceFileError(f"step {i} of field {f.steps!r} must be a string or an object with a "
                                         f"string field {f.text!r}", path=path, line=line)
                parts.append(step)
            text = f.step_separator.join(parts)
        elif isinstance(record.get(text_field), str):
            text = record[text_field]
        else:
            raise TraceFileError(f"record has neither {f.steps!r} (a list of steps) nor {f.text!r} (a string)",
                                 path=path, line=line)
        prompt_field, prompt = _prompt(record, f)
        if not isinstance(prompt, str):
            raise TraceFileError(f"field {prompt_field!r} must be a string", path=path, line=line)
        taken = (f.id, f.steps, text_field, prompt_field, f.labels)
        labels: dict[str, Any] = {k: v for k, v in record.items() if k not in taken and isinstance(v, _SCALAR)}
        extra = record.get(f.labels)
        if extra is not None:
            if not isinstance(extra, dict):
                raise TraceFileError(f"field {f.labels!r} must be an object", path=path, line=line)
            labels.update(extra)
    except TraceFileError as exc:
        return exc
    return ImportedTrace(id=ident, text=text, prompt=prompt, labels=labels, path=path, line=line)


def _final_answer(text: Any) -> str | None:
    if not isinstance(text, str):
        return None
    m = _GSM8K_ANSWER.search(text)
    return m.group(1) if m else None


def _gsm8k(record: Any, path: str, line: int) -> Iterator[ImportedTrace | TraceFileError]:
    if not isinstance(record, dict) or not isinstance(record.get("question"), str):
        yield TraceFileError("a GSM8K record must be an object with a string field 'question'", path=path, line=line)
        return
    question = record["question"]
    try:
        base = _ident(record.get("id"), path, line, f"{_name(path)}:{line}")
    except TraceFileError as exc:
        yield exc
        return
    found = False
    if "answer" in record:
        found = True
        answer = record["answer"]
        if not isinstance(answer, str):
            yield TraceFileError("GSM8K field 'answer' must be a string", path=path, line=line)
        else:
            yield ImportedTrace(id=base, text=answer, prompt=question, path=path, line=line,
                                labels={"source": "reference", "is_correct": True, "answer": _final_answer(answer)})
    expected = _final_answer(record.get("ground_truth"))
    for key, value in record.items():
        items = [(key, value)] if isinstance(value, dict) else (
            [(f"{key}[{i}]", v) for i, v in enumerate(value)] if isinstance(value, list) else [])
        for name, solution in items:
            if not isinstance(solution, dict) or "solution" not in solution:
                continue
            found = True
            text = solution["solution"]
            correct = solution.get("is_correct")
            if not isinstance(text, str) or not isinstance(correct, bool | None):
                yield TraceFileError(f"GSM8K solution {name!r} needs a string 'solution' and a boolean "
                                     "'is_correct'", path=path, line=line)
                continue
            labels: dict[str, Any] = {"source": name, "is_correct": correct, "answer": _final_answer(text)}
            if expected is not None:
                labels["expected"] = expected
            yield ImportedTrace(id=f"{base}/{name}", text=text, prompt=question, path=path, line=line,
                                labels=labels)
    if not found:
        yield TraceFileError("a GSM8K record needs an 'answer' or solutions ({'solution', 'is_correct'})",
                             path=path, line=line)
