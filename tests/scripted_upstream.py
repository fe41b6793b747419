"""A small OpenAI-compatible chat server for tests, scripted by a function of each request body.

It streams the way vLLM and OpenAI do (a role event, content events word by word, tool-call deltas split into
pieces, a finish event, a usage event when ``stream_options.include_usage`` asks, ``[DONE]``) or answers one JSON
body, and records every request it got. Its token counts are its own (:attr:`Turn.completion_tokens`), different
from the number of events, so tests can tell tokens from events.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


@dataclass
class Turn:
    """One answer: text, then tool calls ``(id, name, arguments)``; ``delay`` seconds between events."""

    text: str = ""
    calls: list[tuple[str, str, Any]] = field(default_factory=list)
    delay: float = 0.0
    prompt_tokens: int = 17

    @property
    def completion_tokens(self) -> int:
        """The server's own count: two per word, plus five per call (not the number of events)."""
        return 2 * len(self.text.split()) + 5 * len(self.calls)

    def arguments(self, i: int) -> str:
        args = self.calls[i][2]
        return args if isinstance(args, str) else json.dumps(args)


class ScriptedUpstream:
    def __init__(self, answer: Callable[[dict[str, Any]], Turn], model: str = "scripted-up", *,
                 usage: bool = True) -> None:
        self.answer = answer
        self.model = model
        self.usage = usage  # False: an older server that never sends usage
        self.bodies: list[dict[str, Any]] = []
        self.urls: list[str] = []  # the URL of every request, query included
        self.authorizations: list[str] = []  # the Authorization header of every request ("" when none)

    def app(self) -> Starlette:
        def record(request: Request) -> None:
            self.urls.append(str(request.url))
            self.authorizations.append(request.headers.get("authorization", ""))

        async def chat(request: Request) -> Response:
            record(request)
            body = await request.json()
            self.bodies.append(body)
            turn = self.answer(body)
            if body.get("stream"):
                usage = self.usage and bool((body.get("stream_options") or {}).get("include_usage"))
                return StreamingResponse(self._events(turn, usage), media_type="text/event-stream")
            message: dict[str, Any] = {"role": "assistant", "content": turn.text or None}
            if turn.calls:
                message["tool_calls"] = [{"id": c[0], "type": "function",
                                          "function": {"name": c[1], "arguments": turn.arguments(i)}}
                                         for i, c in enumerate(turn.calls)]
            return JSONResponse({"id": "up", "object": "chat.completion", "created": 0, "model": self.model,
                                 "choices": [{"index": 0, "message": message,
                                              "finish_reason": "tool_calls" if turn.calls else "stop"}],
                                 "usage": self._usage(turn)})

        async def models(request: Request) -> Response:
            record(request)
            return JSONResponse({"object": "list", "data": [{"id": self.model, "object": "model"}]})

        return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]),
                                 Route("/v1/models", models, methods=["GET"])])

    @staticmethod
    def _usage(turn: Turn) -> dict[str, int]:
        return {"prompt_tokens": turn.prompt_tokens, "completion_tokens": turn.completion_tokens,
                "total_tokens": turn.prompt_tokens + turn.completion_tokens}

    def _event(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        obj = {"id": "up", "object": "chat.completion.chunk", "created": 0, "model": self.model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return f"data: {json.dumps(obj)}\n\n".encode()

    async def _events(self, turn: Turn, usage: bool) -> Any:
        yield self._event({"role": "assistant", "content": ""})
        words = turn.text.split(" ")
        for i, word in enumerate(words):
            if turn.delay:
                await anyio.sleep(turn.delay)
            piece = word if i == len(words) - 1 else word + " "
            if piece:
                yield self._event({"content": piece})
        for i, (ident, name, _) in enumerate(turn.calls):
            args = turn.arguments(i)
            yield self._event({"tool_calls": [{"index": i, "id": ident, "type": "function",
                                               "function": {"name": name, "arguments": ""}}]})
            third = max(1, len(args) // 3)
            for start in range(0, len(args), third):
                yield self._event({"tool_calls": [{"index": i, "function": {"arguments": args[start:start + third]}}]})
        yield self._event({}, finish="tool_calls" if turn.calls else "stop")
        if usage:
            obj = {"id": "up", "object": "chat.completion.chunk", "created": 0, "model": self.model, "choices": [],
                   "usage": self._usage(turn)}
            yield f"data: {json.dumps(obj)}\n\n".encode()
        yield b"data: [DONE]\n\n"
