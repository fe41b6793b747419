"""A stand-in reasoning model behind an OpenAI-compatible server on loopback: it finds the answer at once, then
re-checks itself many times, and it answers probes the way the main stream would.

The "model" (:class:`RecheckingModel`) is a function of the raw context, so a fork request (a probe that closes
the thinking and starts the answer with ``\\boxed{``) gets the answer a real model would give at that point, and a
continuation after the monitor ended the thinking gets the final answer. The server renders chat messages with a
ChatML template whose generation prompt opens ``<think>`` (as DeepSeek-R1's does), splits the output at
``</think>`` like a reasoning parser, and streams the thinking in ``delta.reasoning_content`` (SGLang, llama.cpp,
DeepSeek and vLLM before 0.11 use that name) and the answer in ``delta.content``; ``/v1/completions`` continues
raw text. Tokens are paced (``delay`` seconds each), logprobs and top logprobs are sent when asked, and every
request body is recorded (``bodies``) so a test can count the model calls.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

OPEN, CLOSE = "<think>", "</think>"
ASSISTANT = "<|im_start|>assistant\n"


def render(messages: list[dict[str, Any]], *, add_generation_prompt: bool) -> str:
    """ChatML with thinking: an assistant message's reasoning field is put back between the tags; a final assistant
    message is left open (continue_final_message); the generation prompt opens the thinking."""
    out = []
    for i, m in enumerate(messages):
        body = m.get("content") or ""
        reasoning = m.get("reasoning_content") or m.get("reasoning")
        if m["role"] == "assistant" and reasoning:
            body = f"{OPEN}\n{reasoning}\n{CLOSE}\n\n{body}"
        out.append(f"<|im_start|>{m['role']}\n{body}")
        if not (i == len(messages) - 1 and m["role"] == "assistant"):
            out.append("<|im_end|>\n")
    if add_generation_prompt:
        out.append(f"{ASSISTANT}{OPEN}\n")
    return "".join(out)


def words(text: str) -> list[str]:
    """Tokens: words with the whitespace before them; each ``</think>`` a token of its own."""
    out: list[str] = []
    for part in text.replace(CLOSE, f"\x00{CLOSE}\x00").split("\x00"):
        if part == CLOSE:
            out.append(part)
            continue
        i = 0
        while i < len(part):
            j = i
            while j < len(part) and part[j] in " \n":
                j += 1
            while j < len(part) and part[j] not in " \n":
                j += 1
            out.append(part[i:j])
            i = j
    return [w for w in out if w]


@dataclass
class RecheckingModel:
    """Thinks ``opening`` (which states ``answer``), then ``rechecks`` paragraphs that check it again, each
    starting with "Wait", then closes the thinking and writes ``final``. A probe (the context ends with
    ``\\boxed{`` after the closed thinking) is answered with ``answer`` once the thinking so far states it, else
    with ``unsure`` (then with low token probabilities)."""

    answer: str = "42"
    unsure: str = "41"
    rechecks: int = 40
    opening: str = "We need 6 times 7. Six sevens: 7, 14, 21, 28, 35, 42. So 6 times 7 is 42."
    preamble: str = ""  # thinking before the answer is found (probes there are unsure)
    contexts: list[str] = field(default_factory=list)

    @property
    def final(self) -> str:
        return f"The answer is \\boxed{{{self.answer}}}."

    def recheck(self, i: int) -> str:
        return (f"Wait, let me check it once more, way {i}: {42 - i} + {i} = 42, and 42 / 6 = 7, so 6 times 7 "
                f"is still 42.")

    @property
    def thinking(self) -> str:
        parts = ([self.preamble] if self.preamble else []) + [self.opening]
        parts += [self.recheck(i) for i in range(1, self.rechecks + 1)]
        return "\n\n".join(parts)

    def settled(self, thinking: str) -> bool:
        return self.answer in thinking

    def __call__(self, context: str) -> str:
        """The raw continuation of ``context`` (the text after the last assistant turn decides)."""
        self.contexts.append(context)
        tail = context.rsplit(ASSISTANT, 1)[-1]
        body = tail[len(OPEN):].lstrip("\n") if tail.startswith(OPEN) else tail
        if CLOSE in body:
            thinking, answer = body.split(CLOSE, 1)
            if answer.rstrip().endswith("\\boxed{"):  # a probe
                return (self.answer if self.settled(thinking) else self.unsure) + "}"
            said = answer.strip()
            if not said:
                return self.final
            return self.final[len(said):] if self.final.startswith(said) else ""
        script = self.thinking
        if script.startswith(body):
            return script[len(body):] + f"\n{CLOSE}\n\n" + self.final
        return f"\n{CLOSE}\n\n" + self.final  # the thinking went elsewhere (a budget message): answer now

    def logprob(self, context: str, i: int) -> float:
        """The logprob of the ``i``-th generated token: sure in the thinking and of a settled probe's answer."""
        tail = context.rsplit(ASSISTANT, 1)[-1]
        if CLOSE in tail and tail.rstrip().endswith("\\boxed{"):
            return -0.01 if self.settled(tail.split(CLOSE, 1)[0]) else -1.2
        return -0.05


class ProbeServer:
    """The model behind an OpenAI-compatible API (chat and completions, streamed and whole)."""

    def __init__(self, model: RecheckingModel, *, delay: float = 0.002, name: str = "reasoner") -> None:
        self.model = model
        self.delay = delay
        self.name = name
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []

    def probe_requests(self) -> list[dict[str, Any]]:
        """The requests that were answer probes (their context ends with ``\\boxed{``)."""
        out = []
        for body in self.bodies:
            text = body.get("prompt") if "prompt" in body else (body["messages"][-1].get("content") or "")
            if str(text).rstrip().endswith("\\boxed{"):
                out.append(body)
        return out

    def _generate(self, context: str, body: dict[str, Any]) -> tuple[list[str], str]:
        tokens = words(self.model(context))
        limit = body.get("max_tokens")
        if isinstance(limit, int) and len(tokens) > limit:
            return tokens[:limit], "length"
        return tokens, "stop"

    @staticmethod
    def _split(tokens: list[str], opened: bool) -> tuple[list[str], list[str]]:
        if not opened:
            return [], tokens
        if CLOSE not in tokens:
            return tokens, []
        at = tokens.index(CLOSE)
        return tokens[:at], tokens[at + 1:]

    def _top(self, lp: float, n: int) -> list[dict[str, Any]]:
        import math

        rest = max(0.0, 1.0 - math.exp(lp)) * 0.9
        alts = [{"token": f"alt{j}", "logprob": math.log(rest / (n - 1)) if rest > 0 else -30.0, "bytes": None}
                for j in range(1, n)]
        return [{"token": "x", "logprob": lp, "bytes": None}, *alts]

    def _logprobs(self, body: dict[str, Any], context: str, token: str, i: int) -> dict[str, Any] | None:
        if not body.get("logprobs"):
            return None
        lp = self.model.logprob(context, i)
        entry: dict[str, Any] = {"token": token, "logprob": lp, "bytes": list(token.encode())}
        n = int(body.get("top_logprobs") or 0)
        entry["top_logprobs"] = self._top(lp, n) if n > 1 else []
        return {"content": [entry]}

    def app(self) -> Starlette:
        async def chat(request: Request) -> Response:
            body = await request.json()
            self.bodies.append(body)
            self.paths.append("/v1/chat/completions")
            messages = body["messages"]
            final = messages[-1]["role"] == "assistant"
            if final and not body.get("continue_final_message"):
                return JSONResponse({"error": {"message": "a final assistant message needs continue_final_message",
                                               "code": 400}}, status_code=400)
            context = render(messages, add_generation_prompt=not final)
            tail = context.rsplit(ASSISTANT, 1)[-1]
            opened = tail.rfind(OPEN) > tail.rfind(CLOSE)
            tokens, finish = self._generate(context, body)
            reasoning, content = self._split(tokens, opened)
            if not body.get("stream"):
                return JSONResponse(self._whole(reasoning, content, tokens, finish))
            usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(self._chat_events(body, context, reasoning, content, tokens, finish, usage),
                                     media_type="text/event-stream")

        async def completions(request: Request) -> Response:
            body = await request.json()
            self.bodies.append(body)
            self.paths.append("/v1/completions")
            context = body["prompt"]
            tokens, finish = self._generate(context, body)
            usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(self._completion_events(body, context, tokens, finish, usage),
                                     media_type="text/event-stream")

        return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]),
                                 Route("/v1/completions", completions, methods=["POST"])])

    def _event(self, choices: list[dict[str, Any]], usage: dict[str, Any] | None = None,
               kind: str = "chat.completion.chunk") -> bytes:
        obj: dict[str, Any] = {"id": "x1", "object": kind, "created": 1_760_000_000, "model": self.name,
                               "choices": choices}
        if usage is not None:
            obj["usage"] = usage
        return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"

    @staticmethod
    def _usage(tokens: list[str], reasoning: list[str]) -> dict[str, Any]:
        n = len(tokens)
        thinking = len(reasoning) + (CLOSE in tokens)
        return {"prompt_tokens": 20, "completion_tokens": n, "total_tokens": 20 + n,
                "completion_tokens_details": {"reasoning_tokens": thinking}}

    async def _chat_events(self, body: dict[str, Any], context: str, reasoning: list[str], content: list[str],
                           tokens: list[str], finish: str, usage: bool) -> AsyncIterator[bytes]:
        yield self._event([{"index": 0, "delta": {"role": "assistant", "content": None, "reasoning_content": ""},
                            "logprobs": None, "finish_reason": None}])
        i = 0
        for field_name, part in (("reasoning_content", reasoning), ("content", content)):
            if field_name == "content" and CLOSE in tokens:
                i += 1  # the tag: in neither field
            for token in part:
                await asyncio.sleep(self.delay)
                delta = {"content": None, "reasoning_content": token} if field_name == "reasoning_content" else {
                    "content": token, "reasoning_content": None}
                yield self._event([{"index": 0, "delta": delta, "logprobs": self._logprobs(body, context, token, i),
                                    "finish_reason": None}])
                i += 1
        yield self._event([{"index": 0, "delta": {"content": "", "reasoning_content": None}, "logprobs": None,
                            "finish_reason": finish}])
        if usage:
            yield self._event([], usage=self._usage(tokens, reasoning))
        yield b"data: [DONE]\n\n"

    async def _completion_events(self, body: dict[str, Any], context: str, tokens: list[str], finish: str,
                                 usage: bool) -> AsyncIterator[bytes]:
        for i, token in enumerate(tokens):
            await asyncio.sleep(self.delay)
            logprobs = None
            if body.get("logprobs"):
                lp = self.model.logprob(context, i)
                logprobs = {"tokens": [token], "token_logprobs": [lp], "text_offset": [0],
                            "top_logprobs": [{token: lp}]}
            yield self._event([{"index": 0, "text": token, "logprobs": logprobs, "finish_reason": None}],
                              kind="text_completion")
        yield self._event([{"index": 0, "text": "", "logprobs": None, "finish_reason": finish}], kind="text_completion")
        if usage:
            yield self._event([], usage={"prompt_tokens": 20, "completion_tokens": len(tokens),
                                         "total_tokens": 20 + len(tokens)}, kind="text_completion")
        yield b"data: [DONE]\n\n"

    def _whole(self, reasoning: list[str], content: list[str], tokens: list[str], finish: str) -> dict[str, Any]:
        message = {"role": "assistant", "content": "".join(content), "reasoning_content": "".join(reasoning)}
        return {"id": "x1", "object": "chat.completion", "created": 1_760_000_000, "model": self.name,
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                "usage": self._usage(tokens, reasoning)}


@contextmanager
def served_in_thread(app: Starlette) -> Iterator[str]:
    """Serve ``app`` with uvicorn on loopback in a thread of its own (for code that runs its own event loop, such
    as ``interlock run``); yields the base URL; stops the server at the end."""
    import uvicorn
    from interlock.monitor.proxy.server import free_port

    port = free_port("127.0.0.1")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the stand-in server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(10)
