"""A small server of OpenAI's Responses API for tests, scripted by a function of each request body.

It streams the events OpenAI sends (``event:`` and ``data:`` lines, every event with its ``sequence_number``):
``response.created``, ``response.in_progress``, a reasoning item (``reasoning_text`` content or, with
``summary=True``, summary parts), a message item (``output_text`` deltas word by word), function-call items (the
arguments in pieces), ``response.completed`` with the usage; or answers one Response object. It records every
request body. Its chat completions route answers 404, as an upstream that speaks only the Responses API does (or
serves chat with ``chat=True``, from the same script, for tests of the choice between the two).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


@dataclass
class Reply:
    """One response: a thinking, a text, then function calls ``(call_id, name, arguments)``."""

    text: str = ""
    reasoning: str = ""
    calls: list[tuple[str, str, Any]] = field(default_factory=list)
    raw_events: list[str] | None = None  # sent as they are instead (malformed upstreams)

    def arguments(self, i: int) -> str:
        args = self.calls[i][2]
        return args if isinstance(args, str) else json.dumps(args)


class ResponsesServer:
    def __init__(self, answer: Callable[[dict[str, Any]], Reply], *, summary: bool = False, chat: bool = False,
                 model: str = "resp-up") -> None:
        self.answer = answer
        self.summary = summary
        self.chat = chat
        self.model = model
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.issued: list[str] = []  # the ids of the responses it answered
        self._n = 0

    def _next_id(self) -> str:
        self._n += 1
        ident = f"resp_up{self._n}"
        self.issued.append(ident)
        return ident

    def app(self) -> Starlette:
        async def responses(request: Request) -> Response:
            body = await request.json()
            self.bodies.append(body)
            self.paths.append("/v1/responses")
            reply = self.answer(body)
            if body.get("stream"):
                return StreamingResponse(self._events(reply, body), media_type="text/event-stream")
            return JSONResponse(self._whole(reply, body))

        async def chat(request: Request) -> Response:
            body = await request.json()
            self.paths.append("/v1/chat/completions")
            if not self.chat:
                return JSONResponse({"error": {"message": "This model is only supported in v1/responses and not in "
                                                          "v1/chat/completions.", "type": "invalid_request_error",
                                               "code": None}}, status_code=404)
            self.bodies.append(body)
            reply = self.answer(body)
            return JSONResponse({"id": "c", "object": "chat.completion", "created": 0, "model": self.model,
                                 "choices": [{"index": 0, "finish_reason": "stop",
                                              "message": {"role": "assistant", "content": reply.text}}],
                                 "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}})

        return Starlette(routes=[Route("/v1/responses", responses, methods=["POST"]),
                                 Route("/v1/chat/completions", chat, methods=["POST"])])

    # -- the Response object ------------------------------------------------------------------------------
    def _response(self, ident: str, status: str, output: list[dict[str, Any]], body: dict[str, Any],
                  usage: dict[str, Any] | None) -> dict[str, Any]:
        return {"id": ident, "object": "response", "created_at": 1_760_000_000, "status": status, "error": None,
                "incomplete_details": None, "instructions": body.get("instructions"), "model": self.model,
                "output": output, "parallel_tool_calls": True, "tool_choice": "auto", "tools": body.get("tools", []),
                "usage": usage, "metadata": body.get("metadata") or {}}

    def _items(self, reply: Reply) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        if reply.reasoning:
            if self.summary:
                items.append({"id": "rs_1", "type": "reasoning", "status": "completed",
                              "summary": [{"type": "summary_text", "text": p} for p in reply.reasoning.split("\n\n")]})
            else:
                items.append({"id": "rs_1", "type": "reasoning", "summary": [], "status": "completed",
                              "content": [{"type": "reasoning_text", "text": reply.reasoning}]})
        if reply.text:
            items.append({"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
                          "content": [{"type": "output_text", "text": reply.text, "annotations": []}]})
        for i, (call_id, name, _) in enumerate(reply.calls):
            items.append({"id": f"fc_{i}", "type": "function_call", "call_id": call_id, "name": name,
                          "arguments": reply.arguments(i), "status": "completed"})
        return items

    @staticmethod
    def usage(reply: Reply) -> dict[str, Any]:
        """Its own counts: two tokens per word of text and of thinking, five per call."""
        thinking = 2 * len(reply.reasoning.split())
        output = thinking + 2 * len(reply.text.split()) + 5 * len(reply.calls)
        return {"input_tokens": 11, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": output,
                "output_tokens_details": {"reasoning_tokens": thinking}, "total_tokens": 11 + output}

    def _whole(self, reply: Reply, body: dict[str, Any]) -> dict[str, Any]:
        return self._response(self._next_id(), "completed", self._items(reply), body, self.usage(reply))

    # -- the stream --------------------------------------------------------------------------------------------
    async def _events(self, reply: Reply, body: dict[str, Any]) -> Any:
        if reply.raw_events is not None:
            for raw in reply.raw_events:
                yield raw.encode()
            return
        seq = 0

        def event(kind: str, **fields: Any) -> bytes:
            nonlocal seq
            data = json.dumps({"type": kind, "sequence_number": seq, **fields})
            seq += 1
            return f"event: {kind}\ndata: {data}\n\n".encode()

        ident = self._next_id()
        yield event("response.created", response=self._response(ident, "in_progress", [], body, None))
        yield event("response.in_progress", response=self._response(ident, "in_progress", [], body, None))
        items = self._items(reply)
        for index, item in enumerate(items):
            if item["type"] == "reasoning":
                yield event("response.output_item.added", output_index=index,
                            item={**item, "summary": [], "content": [], "status": "in_progress"})
                if self.summary:
                    for k, part in enumerate(item["summary"]):
                        yield event("response.reasoning_summary_part.added", item_id=item["id"], output_index=index,
                                    summary_index=k, part={"type": "summary_text", "text": ""})
                        yield event("response.reasoning_summary_text.delta", item_id=item["id"], output_index=index,
                                    summary_index=k, delta=part["text"])
                        yield event("response.reasoning_summary_text.done", item_id=item["id"], output_index=index,
                                    summary_index=k, text=part["text"])
                        yield event("response.reasoning_summary_part.done", item_id=item["id"], output_index=index,
                                    summary_index=k, part=part)
                else:
                    text = item["content"][0]["text"]
                    yield event("response.content_part.added", item_id=item["id"], output_index=index,
                                content_index=0, part={"type": "reasoning_text", "text": ""})
                    for word in _pieces(text):
                        yield event("response.reasoning_text.delta", item_id=item["id"], output_index=index,
                                    content_index=0, delta=word)
                    yield event("response.reasoning_text.done", item_id=item["id"], output_index=index,
                                content_index=0, text=text)
                    yield event("response.content_part.done", item_id=item["id"], output_index=index,
                                content_index=0, part={"type": "reasoning_text", "text": text})
            elif item["type"] == "message":
                text = item["content"][0]["text"]
                yield event("response.output_item.added", output_index=index,
                            item={**item, "content": [], "status": "in_progress"})
                yield event("response.content_part.added", item_id=item["id"], output_index=index, content_index=0,
                            part={"type": "output_text", "text": "", "annotations": []})
                for word in _pieces(text):
                    yield event("response.output_text.delta", item_id=item["id"], output_index=index,
                                content_index=0, delta=word, logprobs=[])
                yield event("response.output_text.done", item_id=item["id"], output_index=index, content_index=0,
                            text=text, logprobs=[])
                yield event("response.content_part.done", item_id=item["id"], output_index=index, content_index=0,
                            part={"type": "output_text", "text": text, "annotations": []})
            else:
                args = item["arguments"]
                yield event("response.output_item.added", output_index=index,
                            item={**item, "arguments": "", "status": "in_progress"})
                third = max(1, len(args) // 3)
                for start in range(0, len(args), third):
                    yield event("response.function_call_arguments.delta", item_id=item["id"], output_index=index,
                                delta=args[start:start + third])
                yield event("response.function_call_arguments.done", item_id=item["id"], output_index=index,
                            arguments=args)
            yield event("response.output_item.done", output_index=index, item=item)
        yield event("response.completed", response=self._response(ident, "completed", items, body,
                                                                   self.usage(reply)))


def _pieces(text: str) -> list[str]:
    words = text.split(" ")
    return [w if i == len(words) - 1 else w + " " for i, w in enumerate(words) if w or i == len(words) - 1]
