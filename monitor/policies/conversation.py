"""Conversations as a policy reads them: messages and tool calls in order, from JSON Lines files or from the
OpenAI chat format.

A conversation file has one JSON object per line, in order::

    {"role": "user", "content": "I want to cancel order #W1"}        a message (user, assistant, system)
    {"name": "get_order_details", "arguments": {"order_id": "#W1"}}   a tool call
    {"role": "tool", "content": "{...}"}                              optional: the result of the call before it

A call may carry its ``"result"`` or ``"error"`` itself, and an ``"id"``; ``"arguments"`` may be a JSON object or a
string holding one (as the OpenAI API sends them). An assistant message in the OpenAI shape, with ``tool_calls``,
is a message and its calls. Results may be left out: a policy models the effects of the calls it allows. Blank
lines are skipped; anything else that is not one of these is a :class:`ConversationError` naming the line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from interlock.monitor.agents.tools import ToolCall
from interlock.monitor.policies.errors import ConversationError
from interlock.monitor.policies.outcomes import Decision

__all__ = ["MAX_LINE_BYTES", "MAX_NESTING", "NO_RESULT", "CallEntry", "CallRecord", "Conversation", "Event",
           "Message", "parse_conversation", "parse_line", "read_conversation"]

Role = Literal["user", "assistant", "system"]
ROLES = ("user", "assistant", "system")
MAX_NESTING = 64  # deeper JSON is refused: checking or rendering it could exhaust the stack
MAX_LINE_BYTES = 16 << 20  # one line of a conversation file


class _NoResult:
    """The result of a call whose result was not given."""

    _instance: _NoResult | None = None

    def __new__(cls) -> _NoResult:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NO_RESULT"

    def __bool__(self) -> bool:
        return False


NO_RESULT: Any = _NoResult()


@dataclass(frozen=True)
class Message:
    """A message of the conversation: who said it and what."""

    role: Role
    content: str
    line: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class CallEntry:
    """A tool call as a conversation file gives it, with its result or error when known."""

    call: ToolCall
    result: Any = NO_RESULT
    error: str | None = None
    line: int | None = field(default=None, compare=False)


@dataclass(frozen=True)
class CallRecord:
    """An earlier call as a rule sees it: the call, the policy's decision, and what it returned.

    ``ran``: the call was allowed and did not fail (its effects are in the state)."""

    call: ToolCall
    decision: Decision
    result: Any = NO_RESULT
    error: str | None = None

    @property
    def name(self) -> str:
        return self.call.name

    @property
    def arguments(self) -> Mapping[str, Any]:
        return self.call.arguments

    @property
    def allowed(self) -> bool:
        return self.decision.allowed

    @property
    def ran(self) -> bool:
        return self.decision.allowed and self.error is None


Event = Message | CallRecord


@dataclass(frozen=True)
class Conversation:
    """A conversation read from a file: its messages and calls in order, and where it came from."""

    items: tuple[Message | CallEntry, ...]
    source: str = ""

    def __iter__(self) -> Iterator[Message | CallEntry]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def calls(self) -> tuple[CallEntry, ...]:
        return tuple(i for i in self.items if isinstance(i, CallEntry))

    @property
    def messages(self) -> tuple[Message, ...]:
        return tuple(i for i in self.items if isinstance(i, Message))


def _too_deep(data: Any, limit: int = MAX_NESTING) -> bool:
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False


def _loads(text: str, what: str) -> Any:
    try:
        data = json.loads(text)
    except RecursionError:
        raise ValueError(f"{what} is nested more than {MAX_NESTING} levels deep") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what} is not valid JSON: {exc.msg} at character {exc.pos}") from None
    if _too_deep(data):
        raise ValueError(f"{what} is nested more than {MAX_NESTING} levels deep")
    return data


def _content(value: Any, where: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # OpenAI content parts: the text of each text part
        parts = []
        for i, part in enumerate(value):
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif not (isinstance(part, dict) and isinstance(part.get("type"), str)):
                raise ValueError(f"{where}content[{i}] is neither text nor a content part")
        return "".join(parts)
    raise ValueError(f"{where}content must be a string, null or a list of content parts, "
                     f"not {type(value).__name__}")


def _arguments(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, str):
        value = _loads(value, f"{where}arguments") if value.strip() else {}
    if not isinstance(value, dict):
        raise ValueError(f"{where}arguments must be a JSON object (or a string holding one), "
                         f"not {type(value).__name__}")
    return value


def _call(obj: Mapping[str, Any], where: str, ident: str) -> ToolCall:
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f'{where}"name" must be a non-empty string')
    call_id = obj.get("id", ident)
    if not isinstance(call_id, str):
        raise ValueError(f'{where}"id" must be a string')
    return ToolCall(name, _arguments(obj.get("arguments", obj.get("parameters")), where), id=call_id)


def parse_line(obj: Any, *, index: int = 0) -> list[Message | CallEntry | tuple[Literal["result"], Any, str | None]]:
    """One JSON value of a conversation as its items; a ``("result", content, tool_call_id)`` tuple stands for a
    tool message, which the reader attaches to its call. Raises ``ValueError`` saying what is wrong."""
    if not isinstance(obj, dict):
        raise ValueError(f"each line must be a JSON object, not {type(obj).__name__}")
    if "role" in obj:
        role = obj["role"]
        if role == "tool":
            call_id = obj.get("tool_call_id")
            if call_id is not None and not isinstance(call_id, str):
                raise ValueError('"tool_call_id" must be a string')
            return [("result", obj.get("content"), call_id)]
        if role == "developer":
            role = "system"
        if role not in ROLES:
            raise ValueError(f'"role" must be one of user, assistant, system or tool, not {role!r}')
        out: list[Message | CallEntry | tuple[Literal["result"], Any, str | None]] = [
            Message(role, _content(obj.get("content"), ""))]
        calls = obj.get("tool_calls")
        if calls is not None:
            if role != "assistant" or not isinstance(calls, list):
                raise ValueError('"tool_calls" must be a list, on an assistant message')
            for j, c in enumerate(calls):
                function = c.get("function") if isinstance(c, dict) else None
                if not isinstance(function, dict):
                    raise ValueError(f'tool_calls[{j}] must be {{"id": ..., "function": {{"name": ..., '
                                     f'"arguments": ...}}}}')
                ident = c.get("id") if isinstance(c.get("id"), str) else f"call_{index}_{j}"
                out.append(CallEntry(_call({**function, "id": ident}, f"tool_calls[{j}].function.", ident)))
            if out and isinstance(out[0], Message) and not out[0].content:
                out.pop(0)  # an assistant message that only calls tools says nothing
        return out
    if "name" in obj:
        error = obj.get("error")
        if error is not None and not isinstance(error, str):
            raise ValueError('"error" must be a string')
        return [CallEntry(_call(obj, "", f"call_{index}"), obj.get("result", NO_RESULT), error)]
    raise ValueError('expected a message {"role": ..., "content": ...} or a tool call {"name": ..., '
                     '"arguments": {...}}')


def _assemble(parsed: Iterable[tuple[int | None, list[Any]]], source: str) -> Conversation:
    items: list[Message | CallEntry] = []
    for line, found in parsed:
        for item in found:
            if isinstance(item, tuple):  # a tool message: the result of its call, or of the last call without one
                _, content, call_id = item
                target = None
                for k in range(len(items) - 1, -1, -1):
                    it = items[k]
                    if isinstance(it, CallEntry) and (it.call.id == call_id if call_id is not None
                                                      else it.result is NO_RESULT and it.error is None):
                        target = k
                        break
                if target is None:
                    what = f"call {call_id!r}" if call_id is not None else "call without a result"
                    raise ConversationError(f"a tool result with no {what} before it", path=source or None,
                                            line=line)
                entry = items[target]
                assert isinstance(entry, CallEntry)
                items[target] = CallEntry(entry.call, _result(content), entry.error, entry.line)
            elif isinstance(item, Message):
                items.append(Message(item.role, item.content, line))
            else:
                items.append(CallEntry(item.call, item.result, item.error, line))
    return Conversation(tuple(items), source)


def _result(content: Any) -> Any:
    if isinstance(content, str):
        try:
            return json.loads(content)
        except (ValueError, RecursionError):
            return content
    return content


def read_conversation(path: str | Path) -> Conversation:
    """The conversation in a JSON Lines file; a :class:`ConversationError` names the line of the first problem."""
    path = Path(path)
    where = str(path)
    parsed: list[tuple[int | None, list[Any]]] = []
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise ConversationError(f"cannot read: {exc.strerror or exc}", path=where) from None
    with handle:
        number = 0
        calls = 0
        while True:
            raw = handle.readline(MAX_LINE_BYTES + 1)
            if not raw:
                break
            number += 1
            if len(raw) > MAX_LINE_BYTES:
                raise ConversationError(f"the line is longer than {MAX_LINE_BYTES} bytes", path=where,
                                        line=number)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ConversationError(f"not UTF-8 (byte {exc.start})", path=where, line=number) from None
            if not text.strip():
                continue
            try:
                found = parse_line(_loads(text, "the line"), index=calls)
            except ValueError as exc:
                raise ConversationError(str(exc), path=where, line=number) from None
            calls += sum(isinstance(f, CallEntry) for f in found)
            parsed.append((number, found))
    return _assemble(parsed, where)


def parse_conversation(objects: Iterable[Any], *, source: str = "") -> Conversation:
    """A conversation from JSON objects: the lines of a conversation file, or OpenAI chat messages (as a client
    sends them to ``/v1/chat/completions``), or a mix. A :class:`ConversationError` names the first bad one."""
    parsed: list[tuple[int | None, list[Any]]] = []
    calls = 0
    for i, obj in enumerate(objects):
        try:
            if _too_deep(obj):
                raise ValueError(f"nested more than {MAX_NESTING} levels deep")
            found = parse_line(obj, index=calls)
        except ValueError as exc:
            raise ConversationError(f"item {i}: {exc}", path=source or None) from None
        calls += sum(isinstance(f, CallEntry) for f in found)
        parsed.append((i + 1, found))
    return _assemble(parsed, source)
