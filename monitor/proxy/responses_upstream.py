"""Forwarding ``/v1/responses`` to an upstream that serves the Responses API itself (OpenAI, vLLM, SGLang, a
gateway), and the choice between that and translating to chat completions.

:class:`ResponsesUpstream` is :class:`~interlock.generators.OpenAICompatible` (its HTTP client, retries before the
first token, error statuses, token tallies per phase and tool-call assembly) speaking the Responses API: each
request posts the client's Responses body (its input items, instructions, tools, reasoning options, ``store``,
``metadata`` ...) to the upstream's ``/v1/responses``, streamed, and reads the upstream's events into chunks:
``response.output_text.delta`` is answer text, ``response.reasoning_text.delta`` and
``response.reasoning_summary_text.delta`` are thinking, ``function_call`` items (``response.output_item.added``
and ``response.function_call_arguments.delta``) are tool calls, ``response.completed`` / ``response.incomplete``
end it with the usage, ``response.failed`` and ``error`` are the upstream's errors. An event that is not a JSON
object with a ``type``, or an output item the proxy cannot check (a hosted tool's call), fails the stream.

A rollback continues as the Responses API allows: the input items, then an assistant message holding the corrected
answer so far, then a user message asking to continue (the Responses API has no way to continue a message in
place, nor a thinking: a rollback inside the thinking over this path raises
:class:`~interlock.generators.errors.ThinkingNotContinuable`, which names the chat path instead).

:class:`AutoUpstream` serves a request over chat completions and falls back to ``/v1/responses`` when the upstream
answers 404 or 405 to chat completions before any text (an upstream, or a model, that speaks only the Responses
API); the fallback is remembered per model.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import Any

import httpx
from interlock.generators.errors import MalformedStream, ServerError, StreamInterrupted, ThinkingNotContinuable
from interlock.generators.openai_compat.deltas import Delta, Usage, to_chunks
from interlock.generators.openai_compat.generator import (
    _JSON_BODY_LIMIT,
    OpenAICompatible,
    _PhaseReader,
    _Plan,
    _Retryable,
    _Tally,
)
from interlock.generators.openai_compat.sse import SSEDecoder
from interlock.monitor.chunks import Chunk
from interlock.monitor.generation import Capabilities, GenerationRequest
from interlock.monitor.logs import get_logger
from interlock.monitor.phases import ANSWER, THINKING
from interlock.monitor.urls import join_url, redact_text, redact_url

__all__ = ["CONTROLLED_FIELDS", "AutoUpstream", "ResponsesUpstream", "StoredResponses"]

# The fields of a client's Responses body the proxy sets itself; every other field is forwarded as sent.
CONTROLLED_FIELDS = frozenset({"model", "input", "stream", "previous_response_id", "max_output_tokens",
                               "chat_template_kwargs", "stream_options", "background"})
_ITEM_KINDS = ("message", "reasoning", "function_call")


def _excerpt(obj: Any) -> str:
    text = repr(obj)
    return text if len(text) <= 200 else text[:200] + "..."


class StoredResponses:
    """The proxy's response ids and the upstream's response each stands for (the last upstream response of the
    run), so that a client's ``previous_response_id`` can name the proxy's id; at most ``max_entries``, the
    oldest forgotten first. One per backend, per process."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self.max_entries = max_entries
        self._ids: OrderedDict[str, str] = OrderedDict()

    def remember(self, response_id: str, upstream_id: str) -> None:
        self._ids[response_id] = upstream_id
        self._ids.move_to_end(response_id)
        while len(self._ids) > self.max_entries:
            self._ids.popitem(last=False)

    def get(self, response_id: str) -> str | None:
        return self._ids.get(response_id)

    def __len__(self) -> int:
        return len(self._ids)


class ResponsesUpstream(OpenAICompatible):
    """One Responses request's generator (see the module docstring). ``fields``: the client's body without the
    fields the proxy sets (:data:`CONTROLLED_FIELDS`); ``items``: the input items; ``previous``: the upstream's
    id of the response the client continues."""

    def __init__(self, base_url: str, model: str, *, fields: Mapping[str, Any], items: list[dict[str, Any]],
                 previous: str | None = None, **options: Any) -> None:
        options.pop("endpoint", None)
        super().__init__(base_url, model, endpoint="chat", continue_final_message=False, include_usage=False,
                         **options)
        self.fields = {k: v for k, v in fields.items() if k not in CONTROLLED_FIELDS}
        self.items = [dict(i) for i in items]
        self.previous = previous
        self.url = join_url(self.api_root, "responses")
        self.shown_url = redact_url(self.url)
        self.last_response_id: str | None = None  # the upstream's id of the latest response it completed

    @property
    def capabilities(self) -> Capabilities:
        caps = super().capabilities
        return Capabilities(token_ids=False, logprobs=False, entropy=False, resumable=True, kv_rollback=False,
                            fork=caps.fork, tool_calls=True)

    def plan(self, request: GenerationRequest) -> _Plan:
        if request.phase == THINKING and (request.prefix or request.phases):
            raise ThinkingNotContinuable(
                f"a rollback or fork continues inside the thinking, and {self.shown_url} (the Responses API) cannot "
                "be asked for that: it continues no reasoning item. Serve /v1/responses over chat completions "
                "(interlock proxy --responses-upstream chat) to continue inside the thinking.")
        items = [dict(i) for i in self.items]
        if request.prefix:  # the corrected answer so far, and a request to go on from it
            answer = request.answer if request.phases else request.prefix
            items.append({"type": "message", "role": "assistant",
                          "content": [{"type": "output_text", "text": answer}]})
            items.append({"type": "message", "role": "user", "content": self.continue_instruction})
        body: dict[str, Any] = {**self.fields, "model": self.model, "input": items, "stream": True}
        if self.previous is not None:
            body["previous_response_id"] = self.previous
        limits = [n for n in (self.sampling.max_tokens, request.max_new_tokens) if n is not None]
        if limits:
            body["max_output_tokens"] = max(16, min(limits))  # the API's least; the monitor stops at its own
        if request.greedy:
            body["temperature"] = 0.0
            body.pop("top_p", None)
        elif self.sampling.temperature is not None:
            body["temperature"] = self.sampling.temperature
        return _Plan(self.url, body, "chat", False)

    async def _chunks(self, response: httpx.Response, request: GenerationRequest, delivered: int,
                      plan: _Plan) -> AsyncGenerator[Chunk, None]:
        tally = _Tally(self, request, ANSWER)
        phases = _PhaseReader(self.tags, thinking=False)
        reader = _EventReader(redact_url(plan.url))
        url = reader.url
        if response.headers.get("content-type", "").startswith("application/json"):
            raw = bytearray()
            async for data in response.aiter_bytes():
                raw += data
                if len(raw) > _JSON_BODY_LIMIT:
                    raise MalformedStream(f"the JSON answer from {url} is larger than {_JSON_BODY_LIMIT} bytes")
            deltas = reader.whole(bytes(raw))
            self.last_response_id = reader.response_id
            for delta in deltas:
                tally.see(delta)
                for chunk in phases.read(tally.mark(to_chunks(delta), delta)):
                    yield tally.counted(chunk)
            for chunk in [*(tally.counted(c) for c in phases.flush()), *tally.end()]:
                yield chunk
            return
        decoder = SSEDecoder()
        reads = response.aiter_bytes()
        while True:
            read: bytes | None
            try:
                read = await reads.__anext__()
            except StopAsyncIteration:
                read = None
            except httpx.TransportError as exc:
                what = ("no data within the timeout" if isinstance(exc, httpx.TimeoutException)
                        else redact_text(f"{type(exc).__name__}: {exc}", self.url))
                if delivered == 0:
                    raise _Retryable(what, error=exc) from None
                raise StreamInterrupted(f"the stream from {url} broke after {delivered} characters: {what}",
                                        received=delivered) from exc
            for event in decoder.feed(read) if read is not None else decoder.close():
                if event.data.strip() == "[DONE]":
                    continue
                found = reader.event(event.data)
                if found is None:
                    continue
                tally.see(found)
                for chunk in phases.read(tally.mark(to_chunks(found), found)):
                    delivered += len(chunk.text)
                    yield tally.counted(chunk)
                if reader.finished:
                    self.last_response_id = reader.response_id
                    for chunk in [*(tally.counted(c) for c in phases.flush()), *tally.end()]:
                        yield chunk
                    return
            if read is None:
                break
        what = "the upstream closed the stream before its last event (response.completed or response.incomplete)"
        if delivered == 0:
            raise _Retryable(what)
        raise StreamInterrupted(f"{what}; {delivered} characters had arrived from {url}", received=delivered)


class _EventReader:
    """The Responses API's events of one response as chat-style deltas (what the generator's tallies read)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.finished = False
        self.response_id: str | None = None
        self._calls: dict[int, int] = {}  # output index -> the call's index among the calls
        self._arguments: set[int] = set()  # output indexes whose arguments have arrived
        self._summary_parts = 0

    def event(self, data: str) -> Delta | None:
        try:
            obj = json.loads(data)
        except (ValueError, RecursionError) as exc:
            excerpt = data if len(data) <= 200 else data[:200] + "..."
            raise MalformedStream(f"an event from {self.url} is not JSON ({exc}): {excerpt!r}") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
            raise MalformedStream(f"an event from {self.url} is not a Responses event (an object with a 'type'): "
                                  f"{_excerpt(obj)}")
        kind = obj["type"]
        if kind in ("response.output_text.delta", "response.reasoning_text.delta",
                    "response.reasoning_summary_text.delta", "response.function_call_arguments.delta"):
            delta = obj.get("delta")
            if not isinstance(delta, str):
                raise MalformedStream(f"a {kind} event from {self.url} has no text delta: {_excerpt(obj)}")
            if kind == "response.output_text.delta":
                return Delta(delta)
            if kind == "response.function_call_arguments.delta":
                index = self._call_index(obj)
                self._arguments.add(index)
                return Delta("", tool_calls=({"index": index, "function": {"arguments": delta}},))
            return Delta("", reasoning=delta)
        if kind == "response.reasoning_summary_part.added":
            self._summary_parts += 1
            return Delta("", reasoning="\n\n") if self._summary_parts > 1 else None
        if kind in ("response.output_item.added", "response.output_item.done"):
            return self._item(kind, obj)
        if kind in ("response.created", "response.in_progress"):
            self._note_id(obj)
            return None
        if kind in ("response.completed", "response.incomplete"):
            self._note_id(obj)
            self.finished = True
            response = _object(obj.get("response"))
            details = response.get("incomplete_details")
            length = kind == "response.incomplete" and isinstance(details, dict) \
                and details.get("reason") == "max_output_tokens"
            return Delta("", finish_reason="length" if length else "stop", usage=_usage(response.get("usage")))
        if kind == "response.failed":
            error = _object(_object(obj.get("response")).get("error"))
            message = str(error.get("message") or "the response failed")
            raise ServerError(f"the upstream's response failed: {message}", server_message=message)
        if kind == "error":
            message = str(obj.get("message") or _excerpt(obj))
            raise ServerError(f"the upstream reported an error inside the stream: {message}", server_message=message)
        return None  # content parts, .done events, annotations: nothing the deltas did not say

    def _note_id(self, obj: dict[str, Any]) -> None:
        response = obj.get("response")
        if isinstance(response, dict) and isinstance(response.get("id"), str):
            self.response_id = response["id"]

    def _call_index(self, obj: dict[str, Any]) -> int:
        index = obj.get("output_index")
        if isinstance(index, bool) or not isinstance(index, int) or index not in self._calls:
            raise MalformedStream(f"a function call event from {self.url} names no function call item: "
                                  f"{_excerpt(obj)}")
        return self._calls[index]

    def _item(self, kind: str, obj: dict[str, Any]) -> Delta | None:
        item = obj.get("item")
        index = obj.get("output_index")
        if not isinstance(item, dict) or isinstance(index, bool) or not isinstance(index, int):
            raise MalformedStream(f"a {kind} event from {self.url} has no item or output_index: {_excerpt(obj)}")
        item_kind = item.get("type")
        if item_kind not in _ITEM_KINDS:
            raise MalformedStream(f"the upstream's output holds a {item_kind!r} item, which the proxy cannot check "
                                  f"(it forwards function tools only)")
        if item_kind != "function_call":
            return None
        name, call_id, arguments = item.get("name"), item.get("call_id"), item.get("arguments")
        if kind == "response.output_item.added":
            if not isinstance(name, str) or not name:
                raise MalformedStream(f"a function call from {self.url} has no name: {_excerpt(item)}")
            self._calls[index] = len(self._calls)
            call: dict[str, Any] = {"index": self._calls[index], "id": call_id if isinstance(call_id, str) else "",
                                    "function": {"name": name}}
            if isinstance(arguments, str) and arguments:
                self._arguments.add(self._calls[index])
                call["function"]["arguments"] = arguments
            return Delta("", tool_calls=(call,))
        # done: the arguments whole, for an upstream that sent no deltas
        position = self._call_index(obj)
        if position in self._arguments or not isinstance(arguments, str) or not arguments:
            return None
        self._arguments.add(position)
        return Delta("", tool_calls=({"index": position, "function": {"arguments": arguments}},))

    def whole(self, raw: bytes) -> list[Delta]:
        """A Response object (an upstream that answered in one body) as deltas."""
        try:
            obj = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise MalformedStream(f"the answer from {self.url} is not JSON ({exc}): {raw[:200]!r}") from None
        output = obj.get("output") if isinstance(obj, dict) else None
        if not isinstance(output, list):
            raise MalformedStream(f"the answer from {self.url} is not a Response (no output list): {raw[:200]!r}")
        assert isinstance(obj, dict)
        if obj.get("status") == "failed":
            error = _object(obj.get("error"))
            message = str(error.get("message") or "the response failed")
            raise ServerError(f"the upstream's response failed: {message}", server_message=message)
        self.response_id = obj.get("id") if isinstance(obj.get("id"), str) else None
        out: list[Delta] = []
        for index, item in enumerate(output):
            if not isinstance(item, dict) or item.get("type") not in _ITEM_KINDS:
                kind = item.get("type") if isinstance(item, dict) else type(item).__name__
                raise MalformedStream(f"the upstream's output holds a {kind!r} item, which the proxy cannot check")
            parts = item.get("content") or []
            if not isinstance(parts, list):
                raise MalformedStream(f"output[{index}].content from {self.url} is not a list")
            texts = [str(p["text"]) for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)]
            if item["type"] == "message":
                out.append(Delta("".join(texts)))
            elif item["type"] == "reasoning":
                if not texts:
                    summary = item.get("summary")
                    texts = ["\n\n".join(str(s.get("text", "")) for s in summary if isinstance(s, dict))
                             if isinstance(summary, list) else ""]
                out.append(Delta("", reasoning="".join(t for t in texts if isinstance(t, str))))
            else:
                for kind in ("response.output_item.added", "response.output_item.done"):
                    delta = self._item(kind, {"item": item, "output_index": index})
                    if delta is not None:
                        out.append(delta)
        details = obj.get("incomplete_details")
        length = obj.get("status") == "incomplete" and isinstance(details, dict) \
            and details.get("reason") == "max_output_tokens"
        out.append(Delta("", finish_reason="length" if length else "stop", usage=_usage(obj.get("usage"))))
        self.finished = True
        return out


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _count(obj: Any, key: str) -> int | None:
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _usage(usage: Any) -> Usage | None:
    if not isinstance(usage, dict):
        return None
    return Usage(_count(usage, "input_tokens"), _count(usage, "output_tokens"),
                 _count(usage.get("output_tokens_details"), "reasoning_tokens"))


class AutoUpstream:
    """A request's generator that speaks chat completions, or the Responses API when the upstream answers 404 or
    405 to chat completions before any text (the choice is then ``remember``-ed for the model). It stands for the
    generator it uses: token counts, the reasoning field and the prompt's tokens are that generator's."""

    def __init__(self, chat: OpenAICompatible, responses: Callable[[], ResponsesUpstream],
                 remember: Callable[[], None]) -> None:
        self.chat = chat
        self._make_responses = responses
        self._remember = remember
        self.generator: OpenAICompatible = chat  # the one in use

    @property
    def capabilities(self) -> Capabilities:
        caps: Capabilities = self.generator.capabilities
        return caps

    @property
    def prompt_tokens(self) -> int | None:
        count: int | None = self.generator.prompt_tokens
        return count

    @property
    def reasoning_field(self) -> str | None:
        field: str | None = self.generator.reasoning_field
        return field

    @property
    def count_tokens(self) -> Any:
        return self.generator.count_tokens

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        if self.generator is not self.chat:
            async for chunk in self.generator.stream(request):
                yield chunk
            return
        delivered = False
        try:
            async for chunk in self.chat.stream(request):
                delivered = True
                yield chunk
            return
        except ServerError as exc:
            if delivered or exc.status not in (404, 405):
                raise
            get_logger(component="proxy").info("the upstream does not serve chat completions here; using its "
                                               "/v1/responses", status=exc.status, model=self.chat.model)
        self.generator = self._make_responses()
        self._remember()
        async for chunk in self.generator.stream(request):
            yield chunk
