"""The requests the proxy accepts and the error bodies it answers with, in the OpenAI API's shapes.

Parsing is strict where a silent misreading would change the answer (``n`` > 1, ``echo``, tool definitions are
refused with a 400 that names the field) and lenient where the field does not matter to a monitored text
(``user``, ``metadata``, ``logit_bias`` ... are accepted and ignored).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["ChatMessage", "ChatRequest", "CompletionRequest", "ProxyError", "parse_chat", "parse_completion"]


class ProxyError(Exception):
    """An error answered to the client as ``{"error": {"message", "type", "param", "code"}}`` with ``status``."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


@dataclass(frozen=True)
class ChatMessage:
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str
    name: str | None = None

    def to_dict(self) -> dict[str, str]:
        out = {"role": self.role, "content": self.content}
        if self.name:
            out["name"] = self.name
        return out


@dataclass(frozen=True)
class _Common:
    model: str
    stream: bool = False
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    include_usage: bool = False


@dataclass(frozen=True)
class ChatRequest(_Common):
    """A ``/v1/chat/completions`` request."""

    messages: tuple[ChatMessage, ...] = field(default=())
    continue_final: bool = False  # continue the final assistant message (vLLM's continue_final_message)
    kind: Literal["chat"] = "chat"


@dataclass(frozen=True)
class CompletionRequest(_Common):
    """A ``/v1/completions`` request."""

    prompt: str = ""
    kind: Literal["completion"] = "completion"


_ROLES = ("system", "developer", "user", "assistant", "tool")
_UNSUPPORTED_TRUE = {"echo": "echo is not supported by the interlock proxy"}


def _bad(message: str, param: str | None = None) -> ProxyError:
    return ProxyError(400, message, param=param)


def _load(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _bad(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise _bad(f"the request body must be a JSON object, got {type(body).__name__}")
    return body


def _number(body: dict[str, Any], name: str, lo: float, hi: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise _bad(f"{name} must be a number between {lo:g} and {hi:g}, got {value!r}", name)
    return float(value)


def _int(body: dict[str, Any], name: str, lo: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise _bad(f"{name} must be an integer >= {lo}, got {value!r}", name)
    return value


def _common(body: dict[str, Any], max_tokens_cap: int | None) -> dict[str, Any]:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("model is required and must be a non-empty string", "model")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _bad(f"stream must be true or false, got {stream!r}", "stream")
    n = body.get("n", 1)
    if n != 1:
        raise _bad(f"n must be 1 (the proxy monitors one answer per request), got {n!r}", "n")
    for name, message in _UNSUPPORTED_TRUE.items():
        if body.get(name):
            raise _bad(message, name)
    max_tokens = _int(body, "max_completion_tokens", 1)
    if max_tokens is None:
        max_tokens = _int(body, "max_tokens", 1)
    if max_tokens_cap is not None:
        max_tokens = max_tokens_cap if max_tokens is None else min(max_tokens, max_tokens_cap)
    stop = body.get("stop")
    if stop is None:
        stops: tuple[str, ...] = ()
    elif isinstance(stop, str):
        stops = (stop,) if stop else ()
    elif isinstance(stop, list) and len(stop) <= 4 and all(isinstance(s, str) and s for s in stop):
        stops = tuple(stop)
    else:
        raise _bad("stop must be a string or a list of at most 4 non-empty strings", "stop")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise _bad("stream_options must be an object", "stream_options")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise _bad(f"seed must be an integer, got {seed!r}", "seed")
    return {"model": model, "stream": stream, "max_tokens": max_tokens,
            "temperature": _number(body, "temperature", 0, 2), "top_p": _number(body, "top_p", 0, 1),
            "seed": seed, "stop": stops, "include_usage": bool((options or {}).get("include_usage", False))}


def _content(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, list):
        parts = []
        for i, part in enumerate(value):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise _bad(f"{where}.content[{i}] must be a text part ({{'type': 'text', 'text': ...}}); "
                           f"the proxy monitors text only", f"{where}.content")
            parts.append(part["text"])
        return "".join(parts)
    raise _bad(f"{where}.content must be a string or a list of text parts", f"{where}.content")


def parse_chat(raw: bytes, *, max_tokens_cap: int | None = None) -> ChatRequest:
    """Parse and validate a chat completions body; raises :class:`ProxyError` (400) naming the bad field."""
    body = _load(raw)
    if body.get("tools") or body.get("functions"):
        raise _bad("tool definitions are not supported by the interlock proxy yet; describe tools in the prompt "
                   "and guard them in-process with monitor.guard_tool", "tools")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("messages is required and must be a non-empty list", "messages")
    parsed = []
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise _bad(f"{where} must be an object", where)
        role = m.get("role")
        if role not in _ROLES:
            raise _bad(f"{where}.role must be one of {', '.join(_ROLES)}, got {role!r}", f"{where}.role")
        name = m.get("name")
        parsed.append(ChatMessage(role, _content(m.get("content"), where), name if isinstance(name, str) else None))
    continue_final = body.get("continue_final_message", False)
    if not isinstance(continue_final, bool):
        raise _bad(f"continue_final_message must be true or false, got {continue_final!r}", "continue_final_message")
    if continue_final and parsed[-1].role != "assistant":
        raise _bad("continue_final_message needs an assistant message last", "continue_final_message")
    return ChatRequest(messages=tuple(parsed), continue_final=continue_final, **_common(body, max_tokens_cap))


def parse_completion(raw: bytes, *, max_tokens_cap: int | None = None) -> CompletionRequest:
    """Parse and validate a completions body; raises :class:`ProxyError` (400) naming the bad field."""
    body = _load(raw)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise _bad("prompt must be a string (or a list holding one string)", "prompt")
    return CompletionRequest(prompt=prompt, **_common(body, max_tokens_cap))
