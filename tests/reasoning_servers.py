"""OpenAI-compatible servers of reasoning models on loopback, speaking each server's wire format as it is sent.

One scripted "model" (:class:`ThinkingModel`: raw text in, raw text out, with ``<think>`` … ``</think>``) behind
the dialects of vLLM (0.11 and later: ``delta.reasoning``; before: ``delta.reasoning_content``; 0.11's transition:
both), SGLang (``reasoning_content``, explicit nulls, ``usage.reasoning_tokens``), llama.cpp's server
(``reasoning_content``, fields in its insertion order, usage and timings in the last chunk) and DeepSeek's API
(``content: null`` beside the reasoning, ``usage.completion_tokens_details.reasoning_tokens``, keep-alive comments).
Like those servers with a reasoning parser (DeepSeek-R1's: the template opens ``<think>`` in the generation prompt,
the output's text up to ``</think>`` is reasoning, the tag itself is in neither field), chat answers split the
output; ``/v1/completions`` returns it raw. The chat template (ChatML whose generation prompt opens the thinking,
with ``continue_final_message`` as Hugging Face renders it) is :data:`TEMPLATE`, so a client can render the same
prompt for the completions endpoint. Every request body is recorded.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

DIALECTS = ("vllm", "vllm-0.10", "vllm-0.11", "sglang", "llama.cpp", "deepseek")

# ChatML whose generation prompt opens the thinking (as DeepSeek-R1's does); a final assistant message is rendered
# as it is, so a continuation goes on inside whatever it holds (an open thinking included).
TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' and message.get('reasoning_content') %}"
    "{{ '<|im_start|>assistant\n<think>\n' + message['reasoning_content'] + '\n</think>\n\n' + message['content'] }}"
    "{% else %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] }}{% endif %}"
    "{% if not loop.last or message['role'] != 'assistant' %}{{ '<|im_end|>\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n<think>\n' }}{% endif %}"
)


def render(messages: list[dict[str, Any]], *, add_generation_prompt: bool) -> str:
    """:data:`TEMPLATE` rendered (the server's own rendering of a chat request)."""
    import jinja2.sandbox

    env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    return str(env.from_string(TEMPLATE).render(messages=messages, add_generation_prompt=add_generation_prompt))


Model = Callable[[str], str]  # raw context text -> raw generated text


@dataclass
class ThinkingModel:
    """A scripted model: the continuation of the context after its last ``<|im_start|>assistant\\n``, chosen by
    the longest key its tail ends with (``""`` always matches); what it writes may hold ``</think>``."""

    script: dict[str, str]
    contexts: list[str] = field(default_factory=list)

    def __call__(self, context: str) -> str:
        self.contexts.append(context)
        tail = context.rsplit("<|im_start|>assistant\n", 1)[-1]
        key = max((k for k in self.script if tail.endswith(k)), key=len)
        return self.script[key]


def words(text: str) -> list[str]:
    """The output as tokens: words with the whitespace before them, and each tag a token of its own."""
    out: list[str] = []
    for part in text.replace("</think>", "\x00</think>\x00").split("\x00"):
        if part == "</think>":
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


def reasoning_split(tokens: list[str]) -> tuple[list[str], list[str]]:
    """A DeepSeek-R1 reasoning parser: tokens up to ``</think>`` are reasoning (a leading ``<think>`` dropped),
    the rest content; the tag is in neither."""
    if "</think>" not in tokens:
        return [t for t in tokens if t != "<think>"], []
    at = tokens.index("</think>")
    return [t for t in tokens[:at] if t.strip() != "<think>"], tokens[at + 1:]


class ReasoningServer:
    """The model behind one dialect's API. ``continues``: accepts ``continue_final_message`` (else 400, as
    ``transformers serve`` answers); ``whole``: answers one JSON body, streaming asked or not; ``budget_field``:
    the request field of a thinking budget it enforces (the thinking is cut at that many tokens and closed, as
    llama.cpp does, with ``budget_message`` before the tag)."""

    def __init__(self, dialect: str, model: Model, *, continues: bool = True, name: str = "reasoner",
                 budget_field: str | None = None, budget_message: str = "", whole: bool = False) -> None:
        if dialect not in DIALECTS:
            raise ValueError(dialect)
        self.dialect = dialect
        self.model = model
        self.continues = continues
        self.name = name
        self.budget_field = budget_field
        self.budget_message = budget_message
        self.whole = whole  # answer one JSON body even when asked to stream
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.finish = "stop"  # of the latest answer: "length" when max_tokens cut it

    # -- the model's output --------------------------------------------------------------------------------
    def _budget(self, body: dict[str, Any]) -> int | None:
        if self.budget_field is None:
            return None
        if self.budget_field == "custom_params":
            value = (body.get("custom_params") or {}).get("thinking_budget")
        else:
            value = body.get(self.budget_field)
        return value if isinstance(value, int) else None

    def _generate(self, context: str, body: dict[str, Any], opened: bool) -> list[str]:
        tokens = words(self.model(context))
        budget = self._budget(body)
        if budget is not None and opened:
            end = tokens.index("</think>") if "</think>" in tokens else len(tokens)
            if end > budget:  # cut the thinking, say so, close it: the model answers after the tag
                forced = words(self.budget_message) if self.budget_message else []
                tokens = tokens[:budget] + forced + ["</think>"] + tokens[end + 1:]
        limit = body.get("max_tokens")
        if isinstance(limit, int) and len(tokens) > limit:
            tokens = tokens[:limit]
            self.finish = "length"
        else:
            self.finish = "stop"
        return tokens

    def _context(self, body: dict[str, Any]) -> tuple[str, bool]:
        """The raw text the model continues, and whether the thinking is open at its end."""
        messages = body["messages"]
        if messages and messages[-1]["role"] == "assistant":
            if not body.get("continue_final_message"):
                raise _Reject("a final assistant message without continue_final_message")
            text = render(messages, add_generation_prompt=False)
        else:
            text = render(messages, add_generation_prompt=True)
        tail = text.rsplit("<|im_start|>assistant\n", 1)[-1]
        return text, tail.rfind("<think>") > tail.rfind("</think>")

    # -- the app ---------------------------------------------------------------------------------------------
    def app(self) -> Starlette:
        async def chat(request: Request) -> Response:
            body = await request.json()
            self.bodies.append(body)
            self.paths.append("/v1/chat/completions")
            if body.get("continue_final_message") and not self.continues:
                return JSONResponse({"error": {"message": "continue_final_message is not supported", "code": 400}},
                                    status_code=400)
            try:
                context, opened = self._context(body)
            except _Reject as exc:
                return JSONResponse({"error": {"message": str(exc), "code": 400}}, status_code=400)
            tokens = self._generate(context, body, opened)
            reasoning, content = reasoning_split(tokens) if opened else ([], tokens)
            if body.get("stream") and not self.whole:
                usage = bool((body.get("stream_options") or {}).get("include_usage"))
                events = self._chat_events(reasoning, content, tokens, usage, bool(body.get("logprobs")), self.finish)
                return StreamingResponse(events, media_type="text/event-stream")
            return JSONResponse(self._chat_whole(reasoning, content, tokens))

        async def completions(request: Request) -> Response:
            body = await request.json()
            self.bodies.append(body)
            self.paths.append("/v1/completions")
            prompt = body["prompt"]
            tail = prompt.rsplit("<|im_start|>assistant\n", 1)[-1]
            tokens = self._generate(prompt, body, tail.rfind("<think>") > tail.rfind("</think>"))
            return StreamingResponse(self._completion_events(tokens, bool(
                (body.get("stream_options") or {}).get("include_usage")), self.finish), media_type="text/event-stream")

        return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]),
                                 Route("/v1/completions", completions, methods=["POST"])])

    # -- dialects -----------------------------------------------------------------------------------------------
    def _usage(self, tokens: list[str], reasoning: list[str]) -> dict[str, Any]:
        completion = len(tokens)
        thinking = len(reasoning) + ("</think>" in tokens)
        base: dict[str, Any] = {"prompt_tokens": 31, "total_tokens": 31 + completion, "completion_tokens": completion}
        if self.dialect == "sglang":
            return {**base, "prompt_tokens_details": None, "reasoning_tokens": thinking}
        if self.dialect == "deepseek":
            return {"prompt_tokens": 31, "completion_tokens": completion, "total_tokens": 31 + completion,
                    "prompt_tokens_details": {"cached_tokens": 0},
                    "completion_tokens_details": {"reasoning_tokens": thinking},
                    "prompt_cache_hit_tokens": 0, "prompt_cache_miss_tokens": 31}
        if self.dialect == "llama.cpp":
            return {"completion_tokens": completion, "prompt_tokens": 31, "total_tokens": 31 + completion}
        return base  # vLLM: no reasoning count

    def _delta(self, reasoning: str | None, content: str | None) -> dict[str, Any]:
        d = self.dialect
        if d in ("vllm", "vllm-0.10", "vllm-0.11"):  # pydantic with exclude_unset: only what is set
            if reasoning is not None:
                if d == "vllm":
                    return {"reasoning": reasoning}
                if d == "vllm-0.10":
                    return {"reasoning_content": reasoning}
                return {"reasoning": reasoning, "reasoning_content": reasoning}
            return {"content": content}
        if d == "sglang":
            return {"role": None, "content": content, "reasoning_content": reasoning, "tool_calls": None}
        if d == "deepseek":
            return {"content": content, "reasoning_content": reasoning}
        return {"reasoning_content": reasoning} if reasoning is not None else {"content": content}  # llama.cpp

    def _chunk(self, delta: dict[str, Any], finish: str | None = None, logprobs: Any = None,
               usage: dict[str, Any] | None = None, choices: bool = True) -> bytes:
        created = 1_760_000_000
        d = self.dialect
        if d == "llama.cpp":
            obj: dict[str, Any] = {"choices": [{"finish_reason": finish, "index": 0, "delta": delta}] if choices
                                   else [], "created": created, "id": "chatcmpl-x1", "model": self.name,
                                   "system_fingerprint": "b6500-0123abc", "object": "chat.completion.chunk"}
            if logprobs is not None and choices:
                obj["choices"][0]["logprobs"] = logprobs
            if usage is not None:
                obj["usage"] = usage
                obj["timings"] = {"prompt_n": 31, "prompt_ms": 12.5, "predicted_n": usage["completion_tokens"],
                                  "predicted_ms": 80.0}
            return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"
        choice: dict[str, Any] = {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
        if d.startswith("vllm") and finish is not None:
            choice["stop_reason"] = None
        if d == "sglang":
            choice["matched_stop"] = None
        obj = {"id": "chatcmpl-x1", "object": "chat.completion.chunk", "created": created, "model": self.name,
               "choices": [choice] if choices else []}
        if d == "sglang" or usage is not None:
            obj["usage"] = usage
        if d == "deepseek":
            obj["system_fingerprint"] = "fp_x_prod0820"
        return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"

    @staticmethod
    def _logprobs(token: str, i: int) -> dict[str, Any]:
        return {"content": [{"token": token, "logprob": -0.01 * (i + 1), "bytes": list(token.encode()),
                             "top_logprobs": []}]}

    async def _chat_events(self, reasoning: list[str], content: list[str], tokens: list[str], usage: bool,
                           logprobs: bool, finish: str) -> Any:
        d = self.dialect
        if d == "deepseek":
            yield b": keep-alive\n\n"
            yield self._chunk({"role": "assistant", "content": None, "reasoning_content": ""})
        elif d == "llama.cpp":
            yield self._chunk({"role": "assistant", "content": None})
        elif d == "sglang":
            yield self._chunk({"role": "assistant", "content": "", "reasoning_content": None, "tool_calls": None})
        else:
            yield self._chunk({"role": "assistant", "content": ""})
        i = 0
        for token in reasoning:
            await asyncio.sleep(0)
            yield self._chunk(self._delta(token, None), logprobs=self._logprobs(token, i) if logprobs else None)
            i += 1
        if "</think>" in tokens:
            i += 1  # the tag: in neither field, no event of its own
        for token in content:
            await asyncio.sleep(0)
            yield self._chunk(self._delta(None, token), logprobs=self._logprobs(token, i) if logprobs else None)
            i += 1
        final_usage = self._usage(tokens, reasoning)
        if d in ("deepseek", "llama.cpp") and usage:  # the usage rides on the last chunks
            yield self._chunk({} if d == "llama.cpp" else self._delta(None, ""), finish=finish)
            yield self._chunk({}, usage=final_usage, choices=False)
        else:
            yield self._chunk(self._delta(None, "") if d != "sglang" else {"role": None, "content": None,
                                                                              "reasoning_content": None,
                                                                              "tool_calls": None}, finish=finish)
            if usage:
                yield self._chunk({}, usage=final_usage, choices=False)
        yield b"data: [DONE]\n\n"

    def _chat_whole(self, reasoning: list[str], content: list[str], tokens: list[str]) -> dict[str, Any]:
        r, c = "".join(reasoning), "".join(content)
        d = self.dialect
        if d == "vllm":
            message: dict[str, Any] = {"role": "assistant", "content": c, "refusal": None, "annotations": None,
                                       "audio": None, "function_call": None, "tool_calls": [], "reasoning": r}
        elif d == "vllm-0.11":
            message = {"role": "assistant", "content": c, "tool_calls": [], "reasoning": r, "reasoning_content": r}
        elif d == "vllm-0.10":
            message = {"role": "assistant", "reasoning_content": r, "content": c, "tool_calls": []}
        elif d == "llama.cpp":
            message = {"role": "assistant", "reasoning_content": r, "content": c}
        else:
            message = {"role": "assistant", "content": c, "reasoning_content": r}
        return {"id": "chatcmpl-x1", "object": "chat.completion", "created": 1_760_000_000, "model": self.name,
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": self.finish}],
                "usage": self._usage(tokens, reasoning)}

    async def _completion_events(self, tokens: list[str], usage: bool, finish: str) -> Any:
        for token in tokens:
            await asyncio.sleep(0)
            obj = {"id": "cmpl-x1", "object": "text_completion", "created": 1_760_000_000, "model": self.name,
                   "choices": [{"index": 0, "text": token, "logprobs": None, "finish_reason": None,
                                "stop_reason": None}], "usage": None}
            yield b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"
        obj = {"id": "cmpl-x1", "object": "text_completion", "created": 1_760_000_000, "model": self.name,
               "choices": [{"index": 0, "text": "", "logprobs": None, "finish_reason": finish,
                            "stop_reason": None}],
               "usage": None}
        yield b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"
        if usage:
            obj = {"id": "cmpl-x1", "object": "text_completion", "created": 1_760_000_000, "model": self.name,
                   "choices": [], "usage": {"prompt_tokens": 31, "total_tokens": 31 + len(tokens),
                                            "completion_tokens": len(tokens)}}
            yield b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"
        yield b"data: [DONE]\n\n"


class _Reject(Exception):
    pass


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
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
