"""OpenAI-format logs read back as traces with their phases: what a reasoning model's server sent, replayed.

Whole objects (one per line of JSON Lines, a JSON array, or one object; ``format="openai"``):

- a chat completion (``"object": "chat.completion"``), one trace per choice: the thinking from
  ``message.reasoning`` (vLLM 0.11 and later) or ``message.reasoning_content`` (older vLLM, SGLang, llama.cpp's
  server, DeepSeek's API), then the answer from ``message.content`` and the markers of ``message.tool_calls``.
  Content that came without a reasoning field (a server without a reasoning parser) is split at thinking tags;
- a completion (``"object": "text_completion"``): ``choices[].text``, split at thinking tags;
- a Responses API response (``"object": "response"``): its ``output`` items in order, a ``reasoning`` item as
  thinking (its ``content`` reasoning text, else its ``summary``: OpenAI's own models show only a summary, and an
  item with only ``encrypted_content`` shows nothing), ``message`` items' ``output_text`` and ``function_call``
  items as answer;
- one of those wrapped: a Batch API output line (``{"custom_id", "response": {"status_code", "body"}, "error"}``),
  or ``{"request": ..., "response": ...}`` (the prompt from the request's last user message, ``input`` or
  ``prompt``);
- a conversation (``{"messages": [..., {"role": "assistant", "reasoning_content": ..., "content": ...}]}``): its
  last assistant message, the prompt from the user message before it.

Streamed logs (the ``data: {...}`` lines of server-sent events as ``curl -N`` saves them, or JSON Lines of chunk
objects; the file is read a line at a time): chat completion chunks are put together per completion id and
choice and read exactly as :class:`~interlock.generators.OpenAICompatible` reads them live (its
:func:`~interlock.generators.openai_compat.deltas.parse_event`): ``delta.reasoning`` / ``delta.reasoning_content``
as thinking, ``delta.content`` as answer, logprobs kept on their tokens; Responses API events
(``response.reasoning_text.delta``, ``response.reasoning_summary_text.delta``, ``response.output_text.delta``)
are put together per response up to ``response.completed`` (whose ``output`` is read when it has one).

A thinking read from a reasoning field holds no tags (the server parsed them away), so the trace is the thinking
followed by the answer, as a live run over such a server has it. Labels: ``model``, ``finish_reason`` (chat and
completions) or ``status`` (Responses), ``reasoning_field`` (where the thinking came from), and the server's
token counts (``completion_tokens``/``output_tokens``, ``reasoning_tokens``) where it sent them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from interlock.monitor.chunks import Chunk, ToolCallRequest, tool_calls_chunk
from interlock.monitor.errors import TraceFileError
from interlock.monitor.phases import ANSWER, THINKING, Phase, ThinkingTags
from interlock.monitor.replay.traces import ImportedTrace
from interlock.monitor.thinking import TagSplitter, recorded_phases, runs_of, starts_in_thinking
from interlock.monitor.tracefile import Segment, parse_json_line

__all__ = ["is_stream_log", "looks_openai", "read_stream_log", "traces_from_object"]

_OBJECTS = ("chat.completion", "text_completion", "response")
_STREAMED = ("chat.completion.chunk",)
_SSE_FIELDS = (b"event:", b"id:", b"retry:")
_MAX_OPEN_STREAMS = 64  # streams put together at once in one log (interleaved requests); past it the oldest goes


def _is_responses_event(record: Mapping[str, Any]) -> bool:
    kind = record.get("type")
    return isinstance(kind, str) and kind.startswith("response.")


def looks_openai(record: Any) -> bool:
    """Whether a JSON record is an OpenAI-format object this module reads (see the module docstring)."""
    if not isinstance(record, dict):
        return False
    if record.get("object") in (*_OBJECTS, *_STREAMED) or _is_responses_event(record):
        return True
    if "custom_id" in record and ("response" in record or "error" in record):
        return True
    if isinstance(record.get("request"), dict) and isinstance(record.get("response"), dict):
        return True
    messages = record.get("messages")
    return (isinstance(messages, list) and bool(messages) and isinstance(messages[-1], dict)
            and messages[-1].get("role") == "assistant" and "steps" not in record and "text" not in record)


def is_stream_log(first: bytes) -> bool:
    """Whether a file whose first non-blank line is ``first`` is a streamed log: server-sent events (``data:``,
    ``event:``, a ``:`` comment such as DeepSeek's keep-alive) or JSON Lines of chunks or Responses events."""
    line = first.strip()
    if line.startswith((b"data:", b":", *_SSE_FIELDS)):
        return True
    if not line.startswith(b"{"):
        return False
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        return False
    return isinstance(record, dict) and (record.get("object") in _STREAMED or _is_responses_event(record))


# --- whole objects -------------------------------------------------------------------------------------------------


@dataclass
class _Built:
    """A trace being put together: its parts in order, each with its phase, and its labels."""

    parts: list[Chunk] = field(default_factory=list)
    labels: dict[str, Any] = field(default_factory=dict)
    split_answer: bool = False  # no reasoning field came: split the answer at thinking tags

    def add(self, text: str, phase: Phase) -> None:
        if text:
            self.parts.append(Chunk(text, phase=phase))

    def calls(self, calls: Sequence[ToolCallRequest]) -> None:
        if calls:
            after = "".join(c.text for c in self.parts)
            self.parts.append(tool_calls_chunk(list(calls), after=after))

    def trace(self, ident: str, prompt: str, where: str, line: int, tags: tuple[ThinkingTags, ...],
              warnings: tuple[str, ...] = ()) -> ImportedTrace:
        text = "".join(c.text for c in self.parts)
        if self.split_answer:
            phases = recorded_phases(text, tags, prompt=prompt)
        else:
            phases = runs_of((c.text, c.phase) for c in self.parts)
        return ImportedTrace(id=ident, text=text, prompt=prompt, labels=self.labels, path=where, line=line,
                             phases=phases, warnings=warnings)


class _Bad(Exception):
    """A field of the wrong shape (its message names it)."""


def _excerpt(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _string(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _Bad(f"{where} is {_excerpt(value)}, not a string")
    return value


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Bad(f"{where} is {_excerpt(value)}, not an object")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Bad(f"{where} is {_excerpt(value)}, not a list")
    return value


def _reasoning(message: Mapping[str, Any], where: str) -> tuple[str, str | None]:
    """The thinking of a message or delta and its field: ``reasoning`` wins over ``reasoning_content``, and both
    holding one text (vLLM 0.11's transition) count once (as the live reader has it)."""
    for name in ("reasoning", "reasoning_content"):
        value = _string(message.get(name), f"{where}.{name}")
        if value:
            return value, name
    return "", None


def _content_text(value: Any, where: str) -> str:
    """A message's content: a string, or a list of parts whose ``text`` is joined."""
    if isinstance(value, list):
        return "".join(_string(_object(p, f"{where}[{i}]").get("text"), f"{where}[{i}].text")
                       for i, p in enumerate(value))
    return _string(value, where)


def _tool_calls(value: Any, where: str) -> list[ToolCallRequest]:
    calls = []
    for i, call in enumerate(_list(value, where)):
        call = _object(call, f"{where}[{i}]")
        function = _object(call.get("function") or {}, f"{where}[{i}].function")
        arguments = function.get("arguments")
        if isinstance(arguments, dict):
            arguments = json.dumps(arguments, ensure_ascii=False)
        calls.append(ToolCallRequest(_string(call.get("id"), f"{where}[{i}].id") or f"call_{i}",
                                     _string(function.get("name"), f"{where}[{i}].function.name"),
                                     _string(arguments, f"{where}[{i}].function.arguments") or "{}", index=i))
    return calls


def _count(obj: Any, *keys: str) -> int | None:
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj if isinstance(obj, int) and not isinstance(obj, bool) and obj >= 0 else None


def _usage_labels(usage: Any) -> dict[str, Any]:
    """The server's token counts: chat and completions (``completion_tokens``, ``reasoning_tokens`` in
    ``completion_tokens_details`` or, SGLang, beside it) and Responses (``output_tokens``, its details)."""
    out: dict[str, Any] = {}
    for name in ("completion_tokens", "output_tokens"):
        if (value := _count(usage, name)) is not None:
            out[name] = value
    reasoning = next((v for keys in (("completion_tokens_details", "reasoning_tokens"),
                                     ("output_tokens_details", "reasoning_tokens"), ("reasoning_tokens",))
                      if (v := _count(usage, *keys)) is not None), None)
    if reasoning is not None:
        out["reasoning_tokens"] = reasoning
    return out


def _message_into(built: _Built, message: dict[str, Any], where: str) -> None:
    thinking, name = _reasoning(message, where)
    built.add(thinking, THINKING)
    built.add(_content_text(message.get("content"), f"{where}.content"), ANSWER)
    built.calls(_tool_calls(message.get("tool_calls"), f"{where}.tool_calls"))
    if name is not None:
        built.labels["reasoning_field"] = name
    else:
        built.split_answer = True


def _chat(obj: dict[str, Any], base: dict[str, Any]) -> list[tuple[str, _Built]]:
    """(id suffix, trace) per choice of a chat completion or a completion (``/index`` when there are several)."""
    choices = _list(obj.get("choices"), "choices")
    if not choices:
        raise _Bad("choices is empty: the response holds no completion")
    out = []
    for i, choice in enumerate(choices):
        choice = _object(choice, f"choices[{i}]")
        built = _Built(labels=dict(base))
        if obj.get("object") == "text_completion" or ("text" in choice and "message" not in choice):
            built.add(_string(choice.get("text"), f"choices[{i}].text"), ANSWER)
            built.split_answer = True
        else:
            _message_into(built, _object(choice.get("message"), f"choices[{i}].message"), f"choices[{i}].message")
        finish = choice.get("finish_reason")
        if isinstance(finish, str):
            built.labels["finish_reason"] = finish
        out.append((f"/{choice.get('index', i)}" if len(choices) > 1 else "", built))
    return out


def _responses_item_into(built: _Built, item: dict[str, Any], where: str) -> None:
    kind = item.get("type")
    if kind == "reasoning":
        content = "".join(_string(_object(p, f"{where}.content[{j}]").get("text"), f"{where}.content[{j}].text")
                          for j, p in enumerate(_list(item.get("content"), f"{where}.content")))
        summary = "\n\n".join(_string(_object(p, f"{where}.summary[{j}]").get("text"), f"{where}.summary[{j}].text")
                              for j, p in enumerate(_list(item.get("summary"), f"{where}.summary")))
        if content:
            built.add(content, THINKING)
            built.labels["reasoning_field"] = "content"
        elif summary:
            built.add(summary, THINKING)
            built.labels.setdefault("reasoning_field", "summary")
        elif item.get("encrypted_content"):
            built.labels["reasoning_encrypted"] = True
    elif kind == "message":
        for j, part in enumerate(_list(item.get("content"), f"{where}.content")):
            part = _object(part, f"{where}.content[{j}]")
            if part.get("type") in ("output_text", "refusal"):
                key = "text" if part.get("type") == "output_text" else "refusal"
                built.add(_string(part.get(key), f"{where}.content[{j}].{key}"), ANSWER)
    elif kind == "function_call":
        built.calls([ToolCallRequest(_string(item.get("call_id") or item.get("id"), f"{where}.call_id"),
                                     _string(item.get("name"), f"{where}.name"),
                                     _string(item.get("arguments"), f"{where}.arguments") or "{}")])


def _response(obj: dict[str, Any], base: dict[str, Any]) -> list[tuple[str, _Built]]:
    built = _Built(labels=dict(base))
    for i, item in enumerate(_list(obj.get("output"), "output")):
        _responses_item_into(built, _object(item, f"output[{i}]"), f"output[{i}]")
    built.split_answer = "reasoning_field" not in built.labels and not built.labels.get("reasoning_encrypted")
    status = obj.get("status")
    if isinstance(status, str):
        built.labels["status"] = status
    return [("", built)]


def _labels_of(obj: Mapping[str, Any]) -> dict[str, Any]:
    labels: dict[str, Any] = {}
    if isinstance(obj.get("model"), str):
        labels["model"] = obj["model"]
    labels.update(_usage_labels(obj.get("usage")))
    return labels


def _name(value: Any) -> str:
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) else ""


def _completion(obj: dict[str, Any]) -> list[tuple[str, _Built]]:
    """(id suffix, trace) of each completion of a response object."""
    kind = obj.get("object")
    if kind in _STREAMED or _is_responses_event(obj):
        raise _Bad("a streamed chunk (an event of a stream): read the whole file as a stream log, not record by "
                   "record")
    if kind == "response" or ("output" in obj and "choices" not in obj):
        return _response(obj, _labels_of(obj))
    if kind in ("chat.completion", "text_completion") or "choices" in obj:
        return _chat(obj, _labels_of(obj))
    raise _Bad(f"not a completion: no 'choices' or 'output' (object {_excerpt(kind)})")


def _text_of_input(value: Any, where: str) -> str:
    """The last user text of a request: chat ``messages``, a Responses ``input`` (a string or items), or a
    completions ``prompt``."""
    if isinstance(value, str):
        return value
    for i in range(len(_list(value, where)) - 1, -1, -1):
        item = value[i]
        if isinstance(item, dict) and item.get("role") == "user":
            return _content_text(item.get("content"), f"{where}[{i}].content")
    return ""


def _prompt_of(request: Mapping[str, Any]) -> str:
    for key in ("messages", "input", "prompt"):
        if key in request:
            return _text_of_input(request[key], f"request.{key}")
    return ""


def _conversation(record: dict[str, Any]) -> list[tuple[str, _Built, str]]:
    messages = _list(record.get("messages"), "messages")
    built = _Built()
    _message_into(built, _object(messages[-1], f"messages[{len(messages) - 1}]"), f"messages[{len(messages) - 1}]")
    prompt = _text_of_input(messages[:-1], "messages")
    return [(_name(record.get("id")), built, prompt)]


def _unwrap(record: dict[str, Any]) -> list[tuple[str, _Built, str]]:
    """(id, trace, prompt) of each completion a record holds."""
    if "custom_id" in record and ("response" in record or "error" in record):  # Batch API output
        custom = record.get("custom_id")
        error = record.get("error")
        if error:
            message = error.get("message", error) if isinstance(error, dict) else error
            raise _Bad(f"batch request {custom!r} failed: {_excerpt(message)}")
        response = _object(record.get("response"), "response")
        status = response.get("status_code")
        body = _object(response.get("body"), "response.body")
        if status != 200:
            message = body.get("error", {}).get("message") if isinstance(body.get("error"), dict) else None
            raise _Bad(f"batch request {custom!r} answered status {status}: {_excerpt(message or body)}")
        name = _name(custom) or _name(body.get("id"))
        return [(name + suffix if name else "", built, "") for suffix, built in _completion(body)]
    if isinstance(record.get("request"), dict) and isinstance(record.get("response"), dict):
        prompt = _prompt_of(record["request"])
        response = record["response"]
        if "body" in response and "choices" not in response and "output" not in response:
            response = _object(response["body"], "response.body")
        name = _name(record.get("id")) or _name(response.get("id"))
        return [(name + suffix if name else "", built, prompt) for suffix, built in _completion(response)]
    if "messages" in record and "choices" not in record and "output" not in record:
        return _conversation(record)
    name = _name(record.get("id"))
    return [(name + suffix if name else "", built, "") for suffix, built in _completion(record)]


def traces_from_object(record: Any, *, path: str, line: int, tags: tuple[ThinkingTags, ...]
                       ) -> list[ImportedTrace | TraceFileError]:
    """The traces of one OpenAI-format record (see the module docstring), or one error naming what was wrong."""
    if not isinstance(record, dict):
        return [TraceFileError(f"an OpenAI-format record must be a JSON object, got {type(record).__name__}",
                               path=path, line=line)]
    try:
        items = _unwrap(record)
    except _Bad as exc:
        return [TraceFileError(str(exc), path=path, line=line)]
    fallback = f"{path.rsplit('/', 1)[-1]}:{line}"
    out: list[ImportedTrace | TraceFileError] = []
    for n, (ident, built, prompt) in enumerate(items):
        name = ident or (fallback if len(items) == 1 else f"{fallback}/{n}")  # a record without an id
        out.append(built.trace(name, prompt, path, line, tags))
    return out


# --- streamed logs -------------------------------------------------------------------------------------------------


@dataclass
class _ChatChoice:
    chunks: list[Chunk] = field(default_factory=list)
    finish_reason: str | None = None
    reasoning_field: str | None = None
    calls: Any = None  # a ToolCallAssembler, once a call arrives


@dataclass
class _ChatStream:
    """One streamed chat completion (or completion) being put together, per choice."""

    ident: str
    line: int
    endpoint: Literal["chat", "completions"]
    choices: dict[int, _ChatChoice] = field(default_factory=dict)
    labels: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def finished(self) -> bool:
        return bool(self.choices) and all(c.finish_reason is not None for c in self.choices.values())


@dataclass
class _ResponsesStream:
    """One streamed Responses API response: deltas per output item until its final object."""

    ident: str
    line: int
    items: dict[int, dict[str, list[str]]] = field(default_factory=dict)
    summary_at: dict[int, int] = field(default_factory=dict)  # the summary part each item's deltas are in
    final: dict[str, Any] | None = None
    labels: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.final is not None


class _StreamLog:
    """Puts the events of a log together into traces, a stream at a time (see :func:`read_stream_log`)."""

    def __init__(self, path: str, tags: tuple[ThinkingTags, ...]) -> None:
        from interlock.generators.errors import MalformedStream, ServerError
        from interlock.generators.openai_compat import deltas

        self.deltas = deltas
        self.errors = (MalformedStream, ServerError)
        self.malformed = MalformedStream
        self.path = path
        self.tags = tags
        self.open: dict[str, _ChatStream | _ResponsesStream] = {}
        self.current_response: str | None = None

    def feed(self, obj: Any, line: int) -> Iterator[ImportedTrace | TraceFileError]:
        if not isinstance(obj, dict):
            yield TraceFileError(f"an event holds {_excerpt(obj)}, not a JSON object", path=self.path, line=line)
            return
        if _is_responses_event(obj):
            yield from self._responses_event(obj, line)
            return
        if "choices" not in obj and not obj.get("error"):
            yield TraceFileError(f"not a chunk of a chat completion or a Responses event: {_excerpt(obj)}",
                                 path=self.path, line=line)
            return
        ident = str(obj.get("id", ""))
        key = f"chat:{ident}"
        if key not in self.open:
            yield from self._finished()  # a new stream: the earlier ones that had finished are complete
            yield from self._bound()
            self.open[key] = _ChatStream(ident, line, "completions" if obj.get("object") == "text_completion"
                                         else "chat")
        stream = self.open[key]
        assert isinstance(stream, _ChatStream)
        try:
            self._chat_chunk(stream, obj)
        except self.errors as exc:
            if stream.error is None:
                stream.error = str(exc) if line == stream.line else f"line {line}: {exc}"

    def _chat_chunk(self, stream: _ChatStream, obj: dict[str, Any]) -> None:
        stream.labels.update(_labels_of(obj))
        choices = obj.get("choices")
        if obj.get("error") or not isinstance(choices, list):
            self.deltas.parse_event(obj, stream.endpoint)  # raises the error it names
            return
        for choice in choices:
            if not isinstance(choice, dict):
                raise self.malformed(f"a choice is {_excerpt(choice)}, not an object")
            index = choice.get("index", 0)
            index = index if isinstance(index, int) and not isinstance(index, bool) else 0
            delta = self.deltas.parse_event({"choices": [{**choice, "index": 0}]}, stream.endpoint)
            if delta is None:
                continue
            state = stream.choices.setdefault(index, _ChatChoice())
            if delta.reasoning_field is not None:
                state.reasoning_field = delta.reasoning_field
            state.chunks.extend(self.deltas.to_chunks(delta))
            if delta.tool_calls:
                if state.calls is None:
                    state.calls = self.deltas.ToolCallAssembler()
                state.calls.feed(delta.tool_calls)
            if delta.finish_reason is not None:
                state.finish_reason = delta.finish_reason

    def _responses_event(self, obj: dict[str, Any], line: int) -> Iterator[ImportedTrace | TraceFileError]:
        kind = obj["type"]
        response = obj.get("response") if isinstance(obj.get("response"), dict) else None
        if kind == "response.created" or (response is not None and self.current_response is None):
            yield from self._finished()
            yield from self._bound()
            ident = str(response.get("id", "")) if response is not None else ""
            self.current_response = f"responses:{ident}:{line}"
            self.open[self.current_response] = _ResponsesStream(ident, line, labels=_labels_of(response or {}))
        if self.current_response is None or self.current_response not in self.open:
            yield TraceFileError(f"a Responses event ({kind}) before its response.created event", path=self.path,
                                 line=line)
            return
        stream = self.open[self.current_response]
        assert isinstance(stream, _ResponsesStream)
        index = obj.get("output_index", 0)
        index = index if isinstance(index, int) and not isinstance(index, bool) else 0
        delta = obj.get("delta")
        if isinstance(delta, str) and kind in ("response.reasoning_text.delta", "response.output_text.delta"):
            part = "content" if kind == "response.reasoning_text.delta" else "answer"
            stream.items.setdefault(index, {}).setdefault(part, []).append(delta)
        elif isinstance(delta, str) and kind == "response.reasoning_summary_text.delta":
            summary = stream.items.setdefault(index, {}).setdefault("summary", [])
            at = obj.get("summary_index", 0)
            if summary and stream.summary_at.get(index) != at:
                summary.append("\n\n")  # a new summary part, as the whole object's parts are joined
            stream.summary_at[index] = at if isinstance(at, int) else 0
            summary.append(delta)
        if kind in ("response.completed", "response.incomplete", "response.failed") and response is not None:
            stream.final = response
            stream.labels.update(_labels_of(response))
            self.current_response = None

    def _bound(self) -> Iterator[ImportedTrace | TraceFileError]:
        while len(self.open) >= _MAX_OPEN_STREAMS:
            key = next(iter(self.open))
            yield from self._traces(self.open.pop(key), f"more than {_MAX_OPEN_STREAMS} streams were open at once; "
                                                        "this one was read up to here")

    def _finished(self) -> Iterator[ImportedTrace | TraceFileError]:
        for key in [k for k, s in self.open.items() if s.finished]:
            yield from self._traces(self.open.pop(key))

    def finish_all(self) -> Iterator[ImportedTrace | TraceFileError]:
        """Everything still open: the log says the streams ended (``[DONE]``, or the end of the file)."""
        for key in list(self.open):
            yield from self._traces(self.open.pop(key))
        self.current_response = None

    def _traces(self, stream: _ChatStream | _ResponsesStream, warning: str | None = None
                ) -> Iterator[ImportedTrace | TraceFileError]:
        cut = warning or (None if stream.finished else "the stream ended without a finish (cut short?); read up "
                          "to its end")
        if isinstance(stream, _ResponsesStream):
            yield self._responses_trace(stream, cut)
            return
        if stream.error is not None:
            named = f"stream {stream.ident!r}: " if stream.ident else ""
            yield TraceFileError(named + stream.error, path=self.path, line=stream.line)
            return
        yield from self._chat_traces(stream, cut)

    def _responses_trace(self, stream: _ResponsesStream, warning: str | None) -> ImportedTrace | TraceFileError:
        where = f"{self.path}:{stream.line}"
        warnings = (f"{where}: {warning}",) if warning else ()
        if stream.final is not None and stream.final.get("output"):
            try:
                (ident, built), = _response(stream.final, stream.labels)
            except _Bad as exc:
                return TraceFileError(f"response.completed: {exc}", path=self.path, line=stream.line)
            return built.trace(ident or stream.ident, "", self.path, stream.line, self.tags, warnings)
        built = _Built(labels=dict(stream.labels))
        for index in sorted(stream.items):
            item = stream.items[index]
            content, summary = "".join(item.get("content", [])), "".join(item.get("summary", []))
            if content or summary:
                built.add(content or summary, THINKING)
                built.labels.setdefault("reasoning_field", "content" if content else "summary")
            built.add("".join(item.get("answer", [])), ANSWER)
        built.split_answer = "reasoning_field" not in built.labels
        if stream.final is not None and isinstance(stream.final.get("status"), str):
            built.labels["status"] = stream.final["status"]
        return built.trace(stream.ident or f"{self.path.rsplit('/', 1)[-1]}:{stream.line}", "", self.path,
                           stream.line, self.tags, warnings)

    def _chat_traces(self, stream: _ChatStream, warning: str | None) -> Iterator[ImportedTrace | TraceFileError]:
        where = f"{self.path}:{stream.line}"
        warnings = (f"{where}: {warning}",) if warning else ()
        if not stream.choices:
            yield TraceFileError(f"stream {stream.ident!r} holds no text (no choice ever came)", path=self.path,
                                 line=stream.line)
            return
        for index, state in sorted(stream.choices.items()):
            labels = dict(stream.labels)
            if state.finish_reason is not None:
                labels["finish_reason"] = state.finish_reason
            chunks = state.chunks
            if state.reasoning_field is not None:
                labels["reasoning_field"] = state.reasoning_field
            else:  # content only: split at thinking tags as the live reader does, started as the whole text says
                text = "".join(c.text for c in chunks)
                splitter = TagSplitter(self.tags, thinking=starts_in_thinking(text, self.tags)) if self.tags else None
                if splitter is not None:
                    chunks = [out for c in chunks for out in splitter.feed(c)] + splitter.flush()
            if state.calls is not None:
                try:
                    calls = state.calls.calls()
                except self.malformed as exc:
                    yield TraceFileError(f"stream {stream.ident!r}: {exc}", path=self.path, line=stream.line)
                    continue
                chunks = [*chunks, tool_calls_chunk(calls, after="".join(c.text for c in chunks))]
            chunks = [c for c in chunks if c.text]
            if len(stream.choices) == 1:
                chunks += _usage_corrections(chunks, labels)
            ident = stream.ident or f"{self.path.rsplit('/', 1)[-1]}:{stream.line}"
            yield ImportedTrace(id=f"{ident}/{index}" if len(stream.choices) > 1 else ident,
                                text="".join(c.text for c in chunks), labels=labels, path=self.path,
                                line=stream.line, segments=tuple(Segment(c, 0.0, False) for c in chunks),
                                warnings=warnings)


def _usage_corrections(chunks: Sequence[Chunk], labels: Mapping[str, Any]) -> list[Chunk]:
    """Text-less chunks carrying the tokens the server counted beyond the events (as the live reader adds them):
    by its ``reasoning_tokens`` where it sent them, else shared out by each phase's text."""
    total = labels.get("completion_tokens")
    if not isinstance(total, int):
        return []
    counted: dict[Phase, int] = {THINKING: 0, ANSWER: 0}
    chars: dict[Phase, int] = {THINKING: 0, ANSWER: 0}
    for c in chunks:
        counted[c.phase] += c.n_tokens
        chars[c.phase] += len(c.text)
    reasoning = labels.get("reasoning_tokens")
    if isinstance(reasoning, int):
        more: dict[Phase, int] = {THINKING: max(0, reasoning - counted[THINKING]),
                                  ANSWER: max(0, total - reasoning - counted[ANSWER])}
    else:
        missing = max(0, total - counted[THINKING] - counted[ANSWER])
        share = round(missing * chars[THINKING] / (chars[THINKING] + chars[ANSWER])) if chunks else 0
        more = {THINKING: share, ANSWER: missing - share}
    return [Chunk("", tokens=n, phase=phase) for phase, n in more.items() if n]


def _lines(path: str) -> Iterator[tuple[int, bytes]]:
    try:
        with open(path, "rb") as f:
            for number, raw in enumerate(f, start=1):
                yield number, raw.rstrip(b"\r\n")
    except OSError as exc:
        raise TraceFileError(f"cannot read file: {exc}", path=path) from None


def read_stream_log(path: str, *, tags: tuple[ThinkingTags, ...]) -> Iterator[ImportedTrace | TraceFileError]:
    """The traces of a streamed log (server-sent events, or JSON Lines of chunks and events), a stream at a time:
    a stream ends at ``data: [DONE]``, when another begins after it finished, or at the end of the file (then it
    carries a warning when it never said it finished)."""
    log = _StreamLog(path, tags)
    for number, raw in _lines(path):
        line = raw.strip()
        if not line or line.startswith((b":", *_SSE_FIELDS)):
            continue  # a blank line ends an event; comments (keep-alives) and event names say nothing here
        payload = line[5:].strip() if line.startswith(b"data:") else line
        if payload == b"[DONE]":
            yield from log.finish_all()
            continue
        try:
            obj = parse_json_line(payload.decode("utf-8"), path=path, line=number)
        except UnicodeDecodeError as exc:
            yield TraceFileError(f"not UTF-8 (byte {exc.start + 1} of the line: {exc.reason})", path=path,
                                 line=number)
            continue
        except TraceFileError as exc:
            yield exc
            continue
        yield from log.feed(obj, number)
    yield from log.finish_all()

