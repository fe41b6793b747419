"""The requests the proxy accepts and the error bodies it answers with, in the OpenAI API's shapes.

Parsing is strict where a silent misreading would change the answer (``n`` > 1, ``echo``, the legacy
``functions`` are refused with a 400 that names the field) and lenient where the field does not matter to a
monitored text (``user``, ``metadata``, ``logit_bias`` ... are accepted and ignored). ``tools``, ``tool_choice``
and ``parallel_tool_calls`` are checked for shape and forwarded as sent; assistant ``tool_calls`` and ``tool``
messages pass through; so do a reasoning model's switches (``reasoning_effort``, ``chat_template_kwargs``) and
``response_format``. Any body, however broken (bad UTF-8, nesting deeper than the JSON reader goes, lone
surrogates), gets a 400 naming what is wrong, never a 500.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["REASONING_FIELDS", "ChatMessage", "ChatRequest", "CompletionRequest", "ProxyError", "forwarded_fields",
           "parse_chat", "parse_completion"]


class ProxyError(Exception):
    """An error answered to the client as ``{"error": {"message", "type", "param", "code"}}`` with ``status``."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.close = close  # answer with "connection: close" (the rest of the request will not be read)

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


@dataclass(frozen=True)
class ChatMessage:
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str
    name: str | None = None
    tool_calls: tuple[dict[str, Any], ...] = ()  # an assistant's calls, as the client sent them
    tool_call_id: str | None = None  # a tool message: the call it answers
    reasoning: tuple[tuple[str, str], ...] = ()  # an assistant's thinking, as (field, text): passed through as sent

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.name:
            out["name"] = self.name
        if self.tool_calls:
            out["tool_calls"] = [dict(c) for c in self.tool_calls]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        for name, text in self.reasoning:
            out[name] = text
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
    tools: tuple[dict[str, Any], ...] = ()  # function tools, as sent
    tool_choice: Any = None  # "none" | "auto" | "required" | {"type": "function", "function": {"name": ...}}
    parallel_tool_calls: bool | None = None
    # fields forwarded upstream as sent: reasoning_effort, chat_template_kwargs (thinking switches such as
    # {"enable_thinking": false}), response_format
    forward: dict[str, Any] = field(default_factory=dict)
    kind: Literal["chat"] = "chat"

    @property
    def tool_names(self) -> tuple[str, ...]:
        return tuple(str(t["function"]["name"]) for t in self.tools)

    @property
    def callable_tools(self) -> tuple[str, ...]:
        """The tools the model may call: those declared, none with ``tool_choice: "none"``, the one named by a
        ``tool_choice`` that names one."""
        choice = self.tool_choice
        if choice == "none":
            return ()
        if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
            return tuple(n for n in self.tool_names if n == choice["function"].get("name"))
        return self.tool_names

    def tool_fields(self) -> dict[str, Any]:
        """The tool fields to forward upstream (only those the client sent), and the other forwarded fields."""
        out: dict[str, Any] = dict(self.forward)
        if self.tools:
            out["tools"] = [dict(t) for t in self.tools]
        if self.tool_choice is not None:
            out["tool_choice"] = self.tool_choice
        if self.parallel_tool_calls is not None:
            out["parallel_tool_calls"] = self.parallel_tool_calls
        return out


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
    except RecursionError:
        raise _bad("the request body is nested too deeply to read: JSON arrays and objects may nest a few hundred "
                   "levels at most") from None
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


_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


def _tools(body: dict[str, Any]) -> tuple[tuple[dict[str, Any], ...], Any, bool | None]:
    if body.get("functions") or body.get("function_call"):
        raise _bad("the legacy 'functions' and 'function_call' fields are not supported: send 'tools' and "
                   "'tool_choice'", "functions")
    tools = body.get("tools")
    if tools is None:
        tools = []
    if not isinstance(tools, list) or len(tools) > 128:
        raise _bad("tools must be a list of at most 128 function tools", "tools")
    seen: set[str] = set()
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type", "function") != "function" or not isinstance(function, dict):
            raise _bad(f"{where} must be {{'type': 'function', 'function': {{'name': ...}}}}", where)
        name = function.get("name")
        if not isinstance(name, str) or not 0 < len(name) <= 64 or not set(name) <= _NAME_CHARS:
            raise _bad(f"{where}.function.name must be 1 to 64 letters, digits, '_', '-' or '.'",
                       f"{where}.function.name")
        if name in seen:
            raise _bad(f"{where}: two tools are named {name!r}", f"{where}.function.name")
        seen.add(name)
        parameters = function.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise _bad(f"{where}.function.parameters must be a JSON schema object", f"{where}.function.parameters")
    choice = body.get("tool_choice")
    if choice is not None:
        named = isinstance(choice, dict) and isinstance(choice.get("function"), dict) and choice["function"].get("name")
        if choice not in ("none", "auto", "required") and not (isinstance(named, str) and named in seen):
            raise _bad("tool_choice must be 'none', 'auto', 'required' or {'type': 'function', 'function': "
                       "{'name': <one of the tools>}}", "tool_choice")
    parallel = body.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise _bad(f"parallel_tool_calls must be true or false, got {parallel!r}", "parallel_tool_calls")
    return tuple(tools), choice, parallel


def _message_tool_calls(m: dict[str, Any], where: str) -> tuple[dict[str, Any], ...]:
    calls = m.get("tool_calls")
    if calls is None:
        return ()
    if not isinstance(calls, list):
        raise _bad(f"{where}.tool_calls must be a list", f"{where}.tool_calls")
    for j, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if (not isinstance(call, dict) or not isinstance(call.get("id"), str) or not isinstance(function, dict)
                or not isinstance(function.get("name"), str) or not isinstance(function.get("arguments", ""), str)):
            raise _bad(f"{where}.tool_calls[{j}] must be {{'id': str, 'type': 'function', 'function': "
                       f"{{'name': str, 'arguments': str}}}}", f"{where}.tool_calls")
    return tuple(calls)


_EFFORT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz_-")


def forwarded_fields(body: dict[str, Any], where: str = "") -> dict[str, Any]:
    """The fields a request may pass to the upstream as they are: ``reasoning_effort`` (a word such as ``low``),
    ``chat_template_kwargs`` (an object: the template's switches, e.g. ``{"enable_thinking": false}``) and
    ``response_format`` (an object with a ``type``)."""
    out: dict[str, Any] = {}
    effort = body.get("reasoning_effort")
    if effort is not None:
        if not isinstance(effort, str) or not 0 < len(effort) <= 32 or not set(effort) <= _EFFORT_CHARS:
            raise _bad(f"{where}reasoning_effort must be a word such as 'low', 'medium' or 'high', got {effort!r}",
                       f"{where}reasoning_effort")
        out["reasoning_effort"] = effort
    kwargs = body.get("chat_template_kwargs")
    if kwargs is not None:
        if not isinstance(kwargs, dict):
            raise _bad(f"{where}chat_template_kwargs must be an object (e.g. {{'enable_thinking': false}})",
                       f"{where}chat_template_kwargs")
        out["chat_template_kwargs"] = kwargs
    response_format = body.get("response_format")
    if response_format is not None:
        if not isinstance(response_format, dict) or not isinstance(response_format.get("type"), str):
            raise _bad(f"{where}response_format must be an object with a 'type'", f"{where}response_format")
        out["response_format"] = response_format
    return out


REASONING_FIELDS = ("reasoning", "reasoning_content")


def _reasoning(m: dict[str, Any], where: str) -> tuple[tuple[str, str], ...]:
    """An assistant message's thinking fields (strings, or null), to pass on as the client sent them."""
    out = []
    for name in REASONING_FIELDS:
        value = m.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise _bad(f"{where}.{name} must be a string", f"{where}.{name}")
        out.append((name, value))
    return tuple(out)


def parse_chat(raw: bytes, *, max_tokens_cap: int | None = None) -> ChatRequest:
    """Parse and validate a chat completions body; raises :class:`ProxyError` (400) naming the bad field."""
    body = _load(raw)
    tools, tool_choice, parallel = _tools(body)
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
        calls = _message_tool_calls(m, where) if role == "assistant" else ()
        call_id = m.get("tool_call_id")
        if role == "tool" and not isinstance(call_id, str):
            raise _bad(f"{where}.tool_call_id is required for a tool message and must be a string",
                       f"{where}.tool_call_id")
        parsed.append(ChatMessage(role, _content(m.get("content"), where), name if isinstance(name, str) else None,
                                  tool_calls=calls, tool_call_id=call_id if role == "tool" else None,
                                  reasoning=_reasoning(m, where) if role == "assistant" else ()))
    continue_final = body.get("continue_final_message", False)
    if not isinstance(continue_final, bool):
        raise _bad(f"continue_final_message must be true or false, got {continue_final!r}", "continue_final_message")
    if continue_final and parsed[-1].role != "assistant":
        raise _bad("continue_final_message needs an assistant message last", "continue_final_message")
    return ChatRequest(messages=tuple(parsed), continue_final=continue_final, tools=tools, tool_choice=tool_choice,
                       parallel_tool_calls=parallel, forward=forwarded_fields(body), **_common(body, max_tokens_cap))


def parse_completion(raw: bytes, *, max_tokens_cap: int | None = None) -> CompletionRequest:
    """Parse and validate a completions body; raises :class:`ProxyError` (400) naming the bad field."""
    body = _load(raw)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise _bad("prompt must be a string (or a list holding one string)", "prompt")
    return CompletionRequest(prompt=prompt, **_common(body, max_tokens_cap))
