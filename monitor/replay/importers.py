"""Turn traces recorded elsewhere into replayable traces, without a model.

Formats (``read_traces(path, format=...)``):

- ``trace``: an interlock trace file (one trace; the text the run ended with, token data kept).
- ``text``: a plain text file is one trace; its id is the file name.
- ``jsonl``: JSON Lines, a JSON array or a single JSON object; each record holds a list of steps (strings, or
  objects with a text field) or one text, an id, a prompt and labels, under configurable field names
  (:class:`FieldNames`). Steps are joined with ``step_separator`` (a newline: one step per line).
- ``gsm8k``: the GSM8K formats: reference solutions (``{"question", "answer"}``) and model solutions
  (``{"question", "ground_truth", "<model>": {"solution", "is_correct"}, ...}``), each solution its own trace.
- ``parquet``: a Parquet file (needs ``pyarrow``) of records as ``jsonl`` or ``gsm8k`` has them, one per row
  (the ``line`` of a row is its 1-based row number); a null column value counts as an absent field.
- ``auto``: by the file name (``.txt``/``.md``: text, ``.parquet``) and the first record (a trace header, GSM8K
  fields, any other JSON object). Content that starts like JSON (``{``, ``[``), or a ``.jsonl``/``.json`` name, is
  read as JSON and never guessed to be text when it does not parse: its bad lines are errors.

Reading streams: JSON Lines and Parquet are read a record at a time, so memory does not grow with the file (a
JSON array, a single pretty-printed object and a text file are read whole). A record that cannot be read becomes
a :class:`TraceFileError` naming the file and line, yielded in its place, so one bad line does not lose the rest
of the file; so do JSON nested too deeply, strict-JSON violations (``NaN``, ``Infinity``), bytes that are not
UTF-8, and a file with no traces at all (an empty file is an error, never a pass). Trace text is kept exactly as
it was (spans point into it).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from interlock.monitor.errors import ConfigError, TraceFileError
from interlock.monitor.phases import KNOWN_TAGS, ThinkingTags
from interlock.monitor.replay import openai_logs
from interlock.monitor.replay.traces import ImportedTrace
from interlock.monitor.thinking import recorded_phases
from interlock.monitor.tracefile import parse_json_line, read_trace

__all__ = ["FORMATS", "FieldNames", "Format", "ImportedTrace", "detect_format", "read_traces", "traces_from_line",
           "traces_from_record"]

Format = Literal["auto", "trace", "text", "jsonl", "gsm8k", "skythought", "openai", "parquet"]
FORMATS: tuple[str, ...] = ("auto", "trace", "text", "jsonl", "gsm8k", "skythought", "openai", "parquet")
_TEXT_SUFFIXES = (".txt", ".md", ".text")
_JSON_SUFFIXES = (".jsonl", ".json", ".ndjson")
_PARQUET_SUFFIXES = (".parquet", ".pq")
_HEAD_BYTES = 1 << 20  # how much of a file detection looks at beyond its first line
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


def _name(path: str) -> str:
    return os.path.basename(path)


def _read_text(path: str) -> str:
    try:
        # Bytes decoded as they are: no newline translation, so spans match the file's text exactly.
        return Path(path).read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceFileError(f"cannot read file: {exc}", path=path) from None


def _head(path: str) -> tuple[bytes, bool]:
    """The file's first non-blank line (at most ``_HEAD_BYTES``) and whether the file holds anything but
    whitespace; reads no more than it needs."""
    try:
        with open(path, "rb") as f:
            for raw in f:
                if raw.strip():
                    return raw[:_HEAD_BYTES], True
    except OSError as exc:
        raise TraceFileError(f"cannot read file: {exc}", path=path) from None
    return b"", False


def _parse_head(raw: bytes) -> Any:
    """The first line as JSON, or ``None`` when it is not JSON (for detection only: errors come later)."""
    try:
        return parse_json_line(raw.decode("utf-8"), path=None, line=None)
    except (UnicodeDecodeError, TraceFileError):
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


def _looks_skythought(record: Any) -> bool:
    """SkyThought's evaluation outputs: the model's traces in ``code`` (a list), the reference in ``gt``."""
    if not isinstance(record, dict) or "steps" in record:
        return False
    code = record.get("code")
    return (isinstance(code, list) and bool(code) and all(isinstance(c, str) for c in code)
            and ("gt" in record or "score" in record))


def _record_kind(record: Any) -> str:
    """The format of a JSON record: ``gsm8k``, ``skythought``, ``openai`` or ``jsonl``."""
    if _looks_gsm8k(record):
        return "gsm8k"
    if _looks_skythought(record):
        return "skythought"
    if openai_logs.looks_openai(record):
        return "openai"
    return "jsonl"


def _whole_object(path: str) -> dict[str, Any] | None:
    """The file as one JSON object when its first ``_HEAD_BYTES`` hold all of it (for detection only)."""
    try:
        with open(path, "rb") as f:
            head = f.read(_HEAD_BYTES)
        value = json.loads(head)
    except (OSError, ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def detect_format(path: str | os.PathLike[str], text: str | None = None) -> str:
    """The format of ``path``, from its name and its first record (``text``: the content, if already read).

    Never guesses past broken input: content that starts like JSON, or a JSON file name, is JSON even when its
    first line does not parse (that line is then reported as an error), and an empty file raises
    :class:`TraceFileError`.
    """
    where = str(path)
    lower = where.lower()
    if lower.endswith(_TEXT_SUFFIXES):
        return "text"
    if lower.endswith(_PARQUET_SUFFIXES):
        return "parquet"
    if text is None:
        first, nonblank = _head(where)
    else:
        lines = (line for line in text.split("\n") if line.strip())
        line = next(lines, "")
        first, nonblank = line.encode("utf-8", "surrogatepass"), bool(line)
    if not nonblank:
        raise TraceFileError("empty file: it holds no traces", path=where)
    if openai_logs.is_stream_log(first):
        return "openai"  # server-sent events as saved from a stream (``data: {...}``)
    stripped = first.lstrip()
    if stripped.startswith(b"["):
        data = _parse_head(first)
        if isinstance(data, list):
            return _record_kind(data[0]) if data else "jsonl"
        # an array over several lines: look at its first element
        try:
            element, _ = json.JSONDecoder().raw_decode(stripped[1:].decode("utf-8").lstrip())
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            return "jsonl"
        return _record_kind(element)
    record = _parse_head(first)
    if isinstance(record, dict) and record.get("type") == "header":
        return "trace"
    if isinstance(record, dict):
        return _record_kind(record)
    if stripped.startswith(b"{") and text is None:
        whole = _whole_object(where)  # one object over several lines (a pretty-printed response)
        if whole is not None:
            return _record_kind(whole)
    if stripped.startswith(b"{") or lower.endswith(_JSON_SUFFIXES):
        return "jsonl"
    return "text"


def read_traces(path: str | os.PathLike[str], *, format: str = "auto", fields: FieldNames | None = None,
                tags: Iterable[ThinkingTags | str] | None = None) -> Iterator[ImportedTrace | TraceFileError]:
    """Yield the traces of one file, and a :class:`TraceFileError` in place of each record it cannot read.

    Streams: JSON Lines and Parquet are read a record at a time. Never raises for bad content (only for a bad
    ``format``); a file that yields no trace at all yields an error saying so. Text is split into thinking and
    answer at ``tags`` (default: the known pairs, ``<think>``, ``<|begin_of_thought|>`` ...; ``()``: never);
    recorded chunks and OpenAI-format reasoning fields say their phase themselves.
    """
    if format not in FORMATS:
        raise ConfigError(f"unknown trace format {format!r}; expected one of: {', '.join(FORMATS)}")
    where = str(path)
    fields = fields or FieldNames()
    pairs = _pairs(tags)
    count = 0
    try:
        for item in _read(where, format, fields, pairs):
            count += 1
            yield item
    except TraceFileError as exc:
        count += 1
        yield exc
    if count == 0:
        yield TraceFileError("the file holds no traces (no records)", path=where)


def _pairs(tags: Iterable[ThinkingTags | str] | None) -> tuple[ThinkingTags, ...]:
    return KNOWN_TAGS if tags is None else tuple(ThinkingTags.parse(t) for t in tags)


def _read(where: str, format: str, fields: FieldNames, tags: tuple[ThinkingTags, ...]
          ) -> Iterator[ImportedTrace | TraceFileError]:
    if format == "auto":
        format = detect_format(where)
    if format == "trace":
        yield _from_trace_file(where)
    elif format == "text":
        content = _read_text(where)
        if not content.strip():
            raise TraceFileError("empty file: it holds no traces", path=where)
        yield ImportedTrace(id=_name(where), text=content, path=where, phases=recorded_phases(content, tags))
    elif format == "parquet":
        kind: str | None = None  # the first row decides, as the first line of a JSON Lines file does
        for line, record in _parquet_rows(where):
            kind = kind or _record_kind(record)
            yield from traces_from_record(record, path=where, line=line, format=kind, fields=fields, tags=tags)
    elif format == "openai" and openai_logs.is_stream_log(_head(where)[0]):
        yield from openai_logs.read_stream_log(where, tags=tags)
    else:
        for line, record in _records(where):
            if isinstance(record, TraceFileError):
                yield record
            else:
                yield from traces_from_record(record, path=where, line=line, format=format, fields=fields,
                                              tags=tags)


def traces_from_record(record: Any, *, path: str, line: int, format: str = "jsonl",
                       fields: FieldNames | None = None, tags: Iterable[ThinkingTags | str] | None = None
                       ) -> list[ImportedTrace | TraceFileError]:
    """The traces of one parsed record (``format``: ``jsonl``, ``gsm8k``, ``skythought`` or ``openai``; a GSM8K
    record holds one trace per solution, an OpenAI completion one per choice), with an error in place of each that
    cannot be read."""
    pairs = _pairs(tags)
    if format == "gsm8k":
        return list(_gsm8k(record, path, line, pairs))
    if format == "skythought":
        return list(_skythought(record, path, line, pairs))
    if format == "openai":
        return openai_logs.traces_from_object(record, path=path, line=line, tags=pairs)
    return [_steps_record(record, path, line, fields or FieldNames(), pairs)]


def traces_from_line(raw: bytes | str, *, path: str, line: int, format: str = "jsonl",
                     fields: FieldNames | None = None, last: bool = False,
                     tags: Iterable[ThinkingTags | str] | None = None) -> list[ImportedTrace | TraceFileError]:
    """The traces of one line of a JSON Lines file (``[]`` for a blank line); ``last``: the file ended on it
    without a newline, so a parse error is reported as the file being cut there."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        return [TraceFileError(f"not UTF-8 (byte {exc.start + 1} of the line: {exc.reason})", path=path,
                               line=line)]
    if not text.strip():
        return []
    try:
        record = parse_json_line(text, path=path, line=line)
    except TraceFileError as exc:
        if last:
            exc = TraceFileError(f"{str(exc).removeprefix(f'{path}:{line}: ')}; the file stops here without a "
                                 "newline: was it cut short?", path=path, line=line)
        return [exc]
    return traces_from_record(record, path=path, line=line, format=format, fields=fields, tags=tags)


def _from_trace_file(path: str) -> ImportedTrace:
    recorded = read_trace(path)
    segments = tuple(recorded.final_segments())
    meta = recorded.meta
    ident = meta.get("id") or _name(path)
    labels = {k: v for k, v in meta.items() if k != "id" and _label_value(v)}
    return ImportedTrace(id=str(ident), text="".join(s.chunk.text for s in segments), prompt=recorded.final_prompt,
                         labels=labels, path=path, segments=segments, warnings=tuple(recorded.warnings))


def _label_value(value: Any) -> bool:
    return isinstance(value, _SCALAR) and not (isinstance(value, float) and not math.isfinite(value))


class _Lines:
    """The lines of a file, streamed as bytes, split on ``\\n`` only (model text may hold U+2028)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __iter__(self) -> Iterator[tuple[int, bytes, bool]]:
        try:
            with open(self.path, "rb") as f:
                for number, raw in enumerate(f, start=1):
                    ended = raw.endswith(b"\n")
                    yield number, raw[:-1] if ended else raw, ended
        except OSError as exc:
            raise TraceFileError(f"cannot read file: {exc}", path=self.path) from None


def _records(path: str) -> Iterator[tuple[int, Any]]:
    """(line, record) for JSON Lines (streamed), a JSON array or one JSON object (read whole); a bad line yields
    a TraceFileError in its place."""
    first, _ = _head(path)
    stripped = first.lstrip()
    if stripped.startswith(b"["):
        yield from _array(_read_text(path), path)
        return
    if stripped.startswith(b"{") and _parse_head(first) is None:
        # Not one object per line: perhaps one object over several lines (read whole, as JSON needs).
        content = _read_text(path)
        try:
            whole = parse_json_line(content, path=path, line=None)
        except TraceFileError:
            whole = None
        if isinstance(whole, dict):
            yield content[: len(content) - len(content.lstrip())].count("\n") + 1, whole
            return
    for number, raw, ended in _Lines(path):
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
            record = parse_json_line(text, path=path, line=number)
        except UnicodeDecodeError as exc:
            yield number, TraceFileError(f"not UTF-8 (byte {exc.start + 1} of the line: {exc.reason})", path=path,
                                         line=number)
            continue
        except TraceFileError as exc:
            if not ended:
                exc = TraceFileError(f"{str(exc).removeprefix(f'{path}:{number}: ')}; the file stops here without "
                                     "a newline: was it cut short?", path=path, line=number)
            yield number, exc
            continue
        yield number, record


def _array(content: str, path: str) -> Iterator[tuple[int, Any]]:
    decoder = json.JSONDecoder(parse_constant=_no_constants)
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
        except ValueError as exc:  # NaN or Infinity
            yield line, TraceFileError(f"not valid JSON ({exc})", path=path, line=line)
            return
        except RecursionError:
            yield line, TraceFileError("JSON nested too deeply to read (more levels than the recursion limit "
                                       "allows)", path=path, line=line)
            return
        yield line, record


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number; strict JSON has no NaN or Infinity")


def _parquet_rows(path: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(1-based row number, record) for each row of a Parquet file, a batch of rows in memory at a time."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError("reading Parquet needs pyarrow: pip install 'interlock[ray]' (or pyarrow)") from None
    try:
        reader = pq.ParquetFile(path)
        batches: Iterable[Any] = reader.iter_batches(batch_size=256)
        number = 0
        for batch in batches:
            for row in batch.to_pylist():
                number += 1
                yield number, _without_nulls(row)
    except (OSError, ValueError) as exc:  # pyarrow's errors derive from these
        raise TraceFileError(f"cannot read Parquet: {exc}", path=path) from None


def _without_nulls(value: Any) -> Any:
    """A Parquet row as a JSON record: a null field is an absent field (columns exist in every row)."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


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


def _steps_record(record: Any, path: str, line: int, f: FieldNames, tags: tuple[ThinkingTags, ...]
                  ) -> ImportedTrace | TraceFileError:
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
        for key, value in labels.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise TraceFileError(f"label {key!r} is {value!r}: numbers must be finite", path=path, line=line)
    except TraceFileError as exc:
        return exc
    return ImportedTrace(id=ident, text=text, prompt=prompt, labels=labels, path=path, line=line,
                         phases=recorded_phases(text, tags, prompt=prompt))


def _final_answer(text: Any) -> str | None:
    if not isinstance(text, str):
        return None
    m = _GSM8K_ANSWER.search(text)
    return m.group(1) if m else None


def _gsm8k(record: Any, path: str, line: int, tags: tuple[ThinkingTags, ...]
           ) -> Iterator[ImportedTrace | TraceFileError]:
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
                                labels={"source": "reference", "is_correct": True, "answer": _final_answer(answer)},
                                phases=recorded_phases(answer, tags, prompt=question))
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
                                labels=labels, phases=recorded_phases(text, tags, prompt=question))
    if not found:
        yield TraceFileError("a GSM8K record needs an 'answer' or solutions ({'solution', 'is_correct'})",
                             path=path, line=line)


def _skythought(record: Any, path: str, line: int, tags: tuple[ThinkingTags, ...]
                ) -> Iterator[ImportedTrace | TraceFileError]:
    """SkyThought's evaluation records: ``question``, the reference ``gt``, and per sample of the model its trace
    (``code[i]``), its extracted answer (``pred[i]``) and its grade (``score[i]``): one trace per sample."""
    if not _looks_skythought(record):
        yield TraceFileError("a SkyThought record must be an object with 'code' (a list of the model's traces) and "
                             "'gt' or 'score'", path=path, line=line)
        return
    try:
        base = _ident(record.get("idx", record.get("id")), path, line, f"{_name(path)}:{line}")
    except TraceFileError as exc:
        yield exc
        return
    question = next((record[k] for k in ("question", "problem", "prompt") if isinstance(record.get(k), str)), "")
    codes: list[str] = record["code"]
    shared = {name: record[key] for key, name in (("gt", "expected"), ("level", "level"))
              if record.get(key) is not None and _label_value(record[key])}
    for i, text in enumerate(codes):
        labels: dict[str, Any] = {"source": "skythought"}
        pred, score = (_nth(record.get(key), i) for key in ("pred", "score"))
        if score is not None and not isinstance(score, bool):
            yield TraceFileError(f"SkyThought field 'score[{i}]' must be a boolean, got {score!r}", path=path,
                                 line=line)
            continue
        if pred is not None and _label_value(pred):
            labels["answer"] = pred
        if score is not None:
            labels["is_correct"] = score
        yield ImportedTrace(id=base if len(codes) == 1 else f"{base}/{i}", text=text, prompt=question,
                            labels={**labels, **shared}, path=path, line=line,
                            phases=recorded_phases(text, tags, prompt=question))


def _nth(values: Any, i: int) -> Any:
    """The ``i``-th of a SkyThought per-sample list (``None`` when there is none)."""
    return values[i] if isinstance(values, list) and i < len(values) else None
