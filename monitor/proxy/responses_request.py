"""Requests to ``POST /v1/responses`` (OpenAI's Responses API), read strictly and turned into the chat request the
proxy monitors.

The input may be a string or a list of items: messages (``{"role", "content"}``, typed or not; content a string or
``input_text`` / ``output_text`` / ``refusal`` parts), ``function_call`` and ``function_call_output`` items, and
``reasoning`` items (their ``reasoning_text`` content, else their summary, is the thinking of the assistant turn that
follows). Items that need state the proxy does not have (``item_reference``), or content it cannot check (images,
files, audio, hosted tools' calls) are refused with a 400 naming the item. ``instructions`` become the first (system)
message, function tools in the Responses shape (``{"type": "function", "name", "parameters"}``) become chat tools,
``reasoning.effort`` becomes ``reasoning_effort``, and ``text.format`` becomes ``response_format``: the result,
:attr:`ResponsesRequest.chat`, is checked, budgeted and served like any chat request. The request as sent
(:attr:`ResponsesRequest.body`) is kept for an upstream that serves ``/v1/responses`` itself.

Refused, with a 400 that says why: ``background: true``, ``conversation`` and stored ``prompt`` templates (state
the proxy does not keep), tools other than functions (the proxy cannot check what a hosted tool does), and
``tool_choice`` other than ``none``/``auto``/``required``/a named function. ``previous_response_id`` is read here;
whether it can be served is the backend's call (only an upstream that keeps responses can).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from interlock.monitor.proxy.models import (
    ChatMessage,
    ChatRequest,
    ProxyError,
    _common,
    _load,
    _number,
    forwarded_fields,
)

__all__ = ["MAX_METADATA", "ResponsesRequest", "parse_responses"]

MAX_METADATA = 16  # pairs; keys up to 64 characters, values up to 512 (the API's limits)
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")
_ROLES = ("user", "assistant", "system", "developer")
_TEXT_PARTS = ("input_text", "output_text", "text")
_UNCHECKABLE_PARTS = ("input_image", "input_file", "input_audio")
_STATEFUL = {"background": "background responses need state the proxy does not keep: ask with stream or wait for "
                            "the answer",
             "conversation": "conversations are state the proxy does not keep: send the conversation's items in input",
             "prompt": "stored prompt templates live on OpenAI's side: send the prompt's text in instructions and "
                       "input"}


def _bad(message: str, param: str | None = None) -> ProxyError:
    return ProxyError(400, message, param=param)


@dataclass(frozen=True)
class ResponsesRequest:
    """One ``/v1/responses`` request: what the client sent (``body``, ``input`` as a list of items) and the chat
    request the proxy monitors for it (``chat``)."""

    body: dict[str, Any]
    input: tuple[dict[str, Any], ...]
    chat: ChatRequest
    instructions: str | None = None
    tools: tuple[dict[str, Any], ...] = ()  # as sent (Responses shape)
    tool_choice: Any = "auto"
    parallel_tool_calls: bool = True
    reasoning: dict[str, Any] | None = None
    text: dict[str, Any] = field(default_factory=lambda: {"format": {"type": "text"}})
    store: bool = True
    previous_response_id: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    max_output_tokens: int | None = None  # as the client asked (the chat request has the capped budget)

    @property
    def model(self) -> str:
        return self.chat.model

    @property
    def stream(self) -> bool:
        return self.chat.stream


def _text_of_parts(parts: Any, where: str, *, allowed: tuple[str, ...]) -> str:
    if isinstance(parts, str):
        return parts
    if not isinstance(parts, list):
        raise _bad(f"{where} must be a string or a list of text parts", where)
    out = []
    for i, part in enumerate(parts):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in _UNCHECKABLE_PARTS:
            raise _bad(f"{where}[{i}] is {kind}: the proxy monitors text only", f"{where}[{i}]")
        if kind == "refusal" and isinstance(part.get("refusal"), str):
            out.append(part["refusal"])
            continue
        if kind not in allowed or not isinstance(part.get("text"), str):
            raise _bad(f"{where}[{i}] must be a text part ({{'type': '{allowed[0]}', 'text': ...}})", f"{where}[{i}]")
        out.append(part["text"])
    return "".join(out)


def _thinking_of(item: dict[str, Any], where: str) -> str:
    """A reasoning item's thinking: its ``reasoning_text`` content, else its summary's texts."""
    content = item.get("content")
    if content:
        if not isinstance(content, list):
            raise _bad(f"{where}.content must be a list of reasoning_text parts", f"{where}.content")
        return _text_of_parts(content, f"{where}.content", allowed=("reasoning_text",))
    summary = item.get("summary", [])
    if summary is None:
        summary = []
    if not isinstance(summary, list):
        raise _bad(f"{where}.summary must be a list of summary_text parts", f"{where}.summary")
    texts = []
    for i, part in enumerate(summary):
        if not isinstance(part, dict) or not isinstance(part.get("text"), str):
            raise _bad(f"{where}.summary[{i}] must be {{'type': 'summary_text', 'text': ...}}", f"{where}.summary")
        texts.append(part["text"])
    return "\n\n".join(texts)


class _Conversation:
    """Builds the chat messages of a list of input items: an assistant turn gathers the reasoning, text and
    function calls that follow each other, as one chat message."""

    def __init__(self) -> None:
        self.messages: list[ChatMessage] = []
        self._open: dict[str, Any] | None = None  # the assistant turn being gathered

    def _assistant(self) -> dict[str, Any]:
        if self._open is None:
            self._open = {"content": [], "calls": [], "thinking": []}
        return self._open

    def _close(self) -> None:
        turn, self._open = self._open, None
        if turn is None:
            return
        thinking = "\n\n".join(turn["thinking"])
        reasoning = (("reasoning", thinking), ("reasoning_content", thinking)) if thinking else ()
        self.messages.append(ChatMessage("assistant", "".join(turn["content"]), tool_calls=tuple(turn["calls"]),
                                         reasoning=reasoning))

    def add(self, item: Any, where: str) -> None:
        if not isinstance(item, dict):
            raise _bad(f"{where} must be an object (an input item)", where)
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in _ROLES:
                raise _bad(f"{where}.role must be one of {', '.join(_ROLES)}, got {role!r}", f"{where}.role")
            text = _text_of_parts(item.get("content"), f"{where}.content", allowed=_TEXT_PARTS)
            if role == "assistant":
                self._assistant()["content"].append(text)
                return
            self._close()
            self.messages.append(ChatMessage(role, text))
        elif kind == "function_call":
            ident, name, arguments = item.get("call_id"), item.get("name"), item.get("arguments", "")
            if not isinstance(ident, str) or not ident or not isinstance(name, str) or not name \
                    or not isinstance(arguments, str):
                raise _bad(f"{where} must be {{'type': 'function_call', 'call_id': str, 'name': str, 'arguments': "
                           f"str}}", where)
            self._assistant()["calls"].append({"id": ident, "type": "function",
                                               "function": {"name": name, "arguments": arguments}})
        elif kind == "function_call_output":
            ident = item.get("call_id")
            if not isinstance(ident, str) or not ident:
                raise _bad(f"{where}.call_id is required: the call this output answers", f"{where}.call_id")
            output = _text_of_parts(item.get("output"), f"{where}.output", allowed=("input_text", "output_text"))
            self._close()
            self.messages.append(ChatMessage("tool", output, tool_call_id=ident))
        elif kind == "reasoning":
            turn = self._assistant()
            if turn["content"] or turn["calls"]:  # a new turn of the model begins with its thinking
                self._close()
                turn = self._assistant()
            thinking = _thinking_of(item, where)
            if thinking:
                turn["thinking"].append(thinking)
        elif kind == "item_reference":
            raise _bad(f"{where} is an item_reference: the proxy keeps no items; send the item itself", where)
        else:
            raise _bad(f"{where} is a {kind!r} item: the proxy forwards messages, reasoning, function calls and "
                       f"their outputs", f"{where}.type")

    def done(self) -> list[ChatMessage]:
        self._close()
        return self.messages


def _tools(body: dict[str, Any]) -> tuple[tuple[dict[str, Any], ...], list[dict[str, Any]]]:
    """The function tools as sent, and as chat tools."""
    tools = body.get("tools")
    if tools is None:
        return (), []
    if not isinstance(tools, list) or len(tools) > 128:
        raise _bad("tools must be a list of at most 128 function tools", "tools")
    seen: set[str] = set()
    chat = []
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind != "function":
            raise _bad(f"{where} is a {kind!r} tool: the proxy checks function tools only (a hosted tool runs where "
                       f"the proxy cannot check it)", f"{where}.type")
        assert isinstance(tool, dict)
        name = tool.get("name")
        if not isinstance(name, str) or not 0 < len(name) <= 64 or not set(name) <= _NAME_CHARS:
            raise _bad(f"{where}.name must be 1 to 64 letters, digits, '_', '-' or '.'", f"{where}.name")
        if name in seen:
            raise _bad(f"{where}: two tools are named {name!r}", f"{where}.name")
        seen.add(name)
        parameters = tool.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise _bad(f"{where}.parameters must be a JSON schema object", f"{where}.parameters")
        function: dict[str, Any] = {"name": name}
        for key in ("description", "parameters", "strict"):
            if tool.get(key) is not None:
                function[key] = tool[key]
        chat.append({"type": "function", "function": function})
    return tuple(tools), chat


def _tool_choice(body: dict[str, Any], names: set[str]) -> tuple[Any, Any]:
    """The tool choice as sent (default ``auto``) and as chat's."""
    choice = body.get("tool_choice")
    if choice is None:
        return "auto", None
    if choice in ("none", "auto", "required"):
        return choice, choice
    if isinstance(choice, dict) and choice.get("type") == "function" and choice.get("name") in names:
        return choice, {"type": "function", "function": {"name": choice["name"]}}
    raise _bad("tool_choice must be 'none', 'auto', 'required' or {'type': 'function', 'name': <one of the tools>}",
               "tool_choice")


def _response_format(text: Any) -> dict[str, Any] | None:
    """``text.format`` as chat's ``response_format`` (``None`` for plain text)."""
    if text is None:
        return None
    if not isinstance(text, dict):
        raise _bad("text must be an object such as {'format': {'type': 'text'}}", "text")
    fmt = text.get("format")
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema" and isinstance(fmt, dict) and isinstance(fmt.get("schema"), dict) \
            and isinstance(fmt.get("name"), str):
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if fmt.get(k) is not None}
        return {"type": "json_schema", "json_schema": schema}
    raise _bad("text.format must be {'type': 'text'}, {'type': 'json_object'} or {'type': 'json_schema', 'name', "
               "'schema'}", "text.format")


def _reasoning(body: dict[str, Any]) -> dict[str, Any] | None:
    reasoning = body.get("reasoning")
    if reasoning is None:
        return None
    if not isinstance(reasoning, dict):
        raise _bad("reasoning must be an object such as {'effort': 'low'}", "reasoning")
    summary = reasoning.get("summary")
    if summary is not None and summary not in ("auto", "concise", "detailed"):
        raise _bad(f"reasoning.summary must be 'auto', 'concise' or 'detailed', got {summary!r}", "reasoning.summary")
    return reasoning


def _metadata(body: dict[str, Any]) -> dict[str, str]:
    metadata = body.get("metadata")
    if metadata is None:
        return {}
    if not isinstance(metadata, dict) or len(metadata) > MAX_METADATA or not all(
            isinstance(k, str) and len(k) <= 64 and isinstance(v, str) and len(v) <= 512
            for k, v in metadata.items()):
        raise _bad(f"metadata must be at most {MAX_METADATA} string pairs (keys up to 64 characters, values up to "
                   f"512)", "metadata")
    return dict(metadata)


def parse_responses(raw: bytes, *, max_tokens_cap: int | None = None) -> ResponsesRequest:
    """Parse and validate a ``/v1/responses`` body; raises :class:`ProxyError` (400) naming the bad field."""
    body = _load(raw)
    for name, why in _STATEFUL.items():
        if body.get(name):
            raise _bad(f"{name} is not supported by the interlock proxy: {why}", name)
    for name in ("max_tokens", "messages", "n"):  # chat fields: a client mixing the APIs is told so
        if name in body:
            raise _bad(f"{name} is a chat completions field; the Responses API uses "
                       f"{ {'max_tokens': 'max_output_tokens', 'messages': 'input', 'n': 'one response'}[name]}",
                       name)
    common_body: dict[str, Any] = {k: body[k] for k in ("model", "stream", "temperature", "top_p") if k in body}
    if body.get("max_output_tokens") is not None:
        common_body["max_tokens"] = body["max_output_tokens"]
    try:
        common = _common(common_body, max_tokens_cap)
    except ProxyError as exc:
        if exc.param == "max_tokens":
            raise _bad(exc.message.replace("max_tokens", "max_output_tokens"), "max_output_tokens") from None
        raise
    _number(body, "temperature", 0, 2)
    raw_input = body.get("input")
    if isinstance(raw_input, str):
        items: list[Any] = [{"type": "message", "role": "user", "content": raw_input}]
    elif isinstance(raw_input, list) and raw_input:
        items = raw_input
    else:
        raise _bad("input is required: a string or a non-empty list of input items", "input")
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise _bad("instructions must be a string", "instructions")
    conversation = _Conversation()
    for i, item in enumerate(items):
        conversation.add(item, f"input[{i}]")
    messages = conversation.done()
    if instructions:
        messages.insert(0, ChatMessage("system", instructions))
    tools, chat_tools = _tools(body)
    names = {t["name"] for t in tools}
    choice, chat_choice = _tool_choice(body, names)
    parallel = body.get("parallel_tool_calls")
    if parallel is not None and not isinstance(parallel, bool):
        raise _bad(f"parallel_tool_calls must be true or false, got {parallel!r}", "parallel_tool_calls")
    reasoning = _reasoning(body)
    text = body.get("text")
    response_format = _response_format(text)
    forward_body: dict[str, Any] = {}
    if reasoning is not None and reasoning.get("effort") is not None:
        forward_body["reasoning_effort"] = reasoning["effort"]
    if "chat_template_kwargs" in body:
        forward_body["chat_template_kwargs"] = body["chat_template_kwargs"]
    if response_format is not None:
        forward_body["response_format"] = response_format
    try:
        forward = forwarded_fields(forward_body)
    except ProxyError as exc:
        if exc.param == "reasoning_effort":
            raise _bad(exc.message.replace("reasoning_effort", "reasoning.effort"), "reasoning.effort") from None
        raise
    store = body.get("store", True)
    if store is None:
        store = True
    if not isinstance(store, bool):
        raise _bad(f"store must be true or false, got {store!r}", "store")
    previous = body.get("previous_response_id")
    if previous is not None and (not isinstance(previous, str) or not 0 < len(previous) <= 256):
        raise _bad("previous_response_id must be a response id (a string)", "previous_response_id")
    include = body.get("include")
    if include is not None and (not isinstance(include, list) or not all(isinstance(i, str) for i in include)):
        raise _bad("include must be a list of strings", "include")
    chat = ChatRequest(messages=tuple(messages), tools=tuple(chat_tools), tool_choice=chat_choice,
                       parallel_tool_calls=parallel, forward=forward, **common)
    return ResponsesRequest(body=body, input=tuple(items), chat=chat, instructions=instructions, tools=tools,
                            tool_choice=choice, parallel_tool_calls=True if parallel is None else parallel,
                            reasoning=reasoning, text=text if isinstance(text, dict) else {"format": {"type": "text"}},
                            store=store, previous_response_id=previous, metadata=_metadata(body),
                            max_output_tokens=body.get("max_output_tokens"))
