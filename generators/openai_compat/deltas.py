"""Reading one streamed JSON event of an OpenAI-compatible server into chunks of text with logprobs.

Chat events carry ``choices[0].delta.content`` and, when asked, ``choices[0].logprobs.content[]`` (``token``,
``logprob``, ``top_logprobs[]``); completions events carry ``choices[0].text`` and ``choices[0].logprobs`` with
parallel lists ``tokens``, ``token_logprobs`` and ``top_logprobs`` (a dict per token). When an event holds
several tokens whose texts add up to its text, it becomes one chunk per token, so that a chunk's logprobs
describe exactly its text. Entropy comes from the top alternatives (see :func:`entropy_from_top`).

Tool calls arrive as partial ``choices[0].delta.tool_calls[]`` items (``index``, then ``id`` and
``function.name`` once, ``function.arguments`` in pieces); :class:`ToolCallAssembler` puts them together so the
generator can yield each call whole once the stream has ended. The usage event (``stream_options.include_usage``)
gives the server's own token count, which corrects the count of events.

A reasoning model's thinking arrives beside the content, in ``choices[0].delta.reasoning`` (vLLM 0.11 and later)
or ``choices[0].delta.reasoning_content`` (older vLLM, SGLang, llama.cpp's server, DeepSeek's API); some servers
send both with the same text (read once), most send ``null`` for the one they do not use. The usage then says how
many of the completion tokens were thinking: ``usage.completion_tokens_details.reasoning_tokens`` (OpenAI,
DeepSeek, vLLM, llama.cpp) or ``usage.reasoning_tokens``. Logprobs cover the tokens of both fields in order.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from interlock import Chunk
from interlock.generators.errors import MalformedStream, ServerError
from interlock.monitor.chunks import ToolCallRequest
from interlock.monitor.phases import ANSWER, THINKING, Phase

__all__ = ["REASONING_FIELDS", "Delta", "Endpoint", "ToolCallAssembler", "Usage", "entropy_from_top", "parse_event",
           "reasoning_of", "to_chunks"]

# The fields a thinking arrives in, in the order they are read (vLLM >= 0.11 first).
REASONING_FIELDS = ("reasoning", "reasoning_content")

Endpoint = Literal["chat", "completions"]


@dataclass(frozen=True)
class Delta:
    """What one event adds to choice 0: text, per-token data when the server sent it, why it finished."""

    text: str
    tokens: tuple[str, ...] | None = None
    logprobs: tuple[float, ...] | None = None
    entropy: tuple[float, ...] | None = None
    finish_reason: str | None = None
    tool_calls: tuple[dict[str, Any], ...] = ()  # partial calls, as sent
    usage: Usage | None = None
    reasoning: str = ""  # thinking text of this event (before ``text``, which is content)
    reasoning_field: str | None = None  # the field it came in ("reasoning" or "reasoning_content")


@dataclass(frozen=True)
class Usage:
    """The server's token counts for one request (``usage``), when it sent them; ``reasoning_tokens``: how many
    of the completion tokens were thinking."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    reasoning_tokens: int | None = None


def _count(obj: Any, key: str) -> int | None:
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _usage(obj: Any) -> Usage | None:
    usage = obj.get("usage") if isinstance(obj, dict) else None
    if not isinstance(usage, dict):
        return None
    reasoning = _count(usage.get("completion_tokens_details"), "reasoning_tokens")
    if reasoning is None:
        reasoning = _count(usage, "reasoning_tokens")
    return Usage(_count(usage, "prompt_tokens"), _count(usage, "completion_tokens"), reasoning)


def reasoning_of(message: dict[str, Any], where: str) -> tuple[str, str | None]:
    """The thinking text of a delta or message and the field it came in (``""``, ``None`` when it has none).
    Both fields with one text (a server in transition) count once; with two texts, ``reasoning`` wins."""
    found: list[tuple[str, str]] = []
    for name in REASONING_FIELDS:
        value = message.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise MalformedStream(f"{where}.{name} is {_excerpt(value)}, not a string")
        if value:
            found.append((value, name))
    return found[0] if found else ("", None)


class ToolCallAssembler:
    """Collects the partial tool calls of one answer, by ``index``, into whole :class:`ToolCallRequest` s."""

    def __init__(self, *, max_argument_chars: int = 1 << 20) -> None:
        self.max_argument_chars = max_argument_chars
        self._calls: dict[int, dict[str, Any]] = {}

    def __bool__(self) -> bool:
        return bool(self._calls)

    def feed(self, partials: Iterable[Any]) -> None:
        for i, part in enumerate(partials):
            if not isinstance(part, dict):
                raise MalformedStream(f"choices[0].delta.tool_calls[{i}] is {_excerpt(part)}, not an object")
            index = part.get("index", len(self._calls) if "id" in part else max(self._calls, default=0))
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < 1024:
                raise MalformedStream(f"choices[0].delta.tool_calls[{i}].index is {_excerpt(index)}")
            call = self._calls.setdefault(index, {"id": "", "name": "", "arguments": []})
            ident = part.get("id")
            if isinstance(ident, str) and ident:
                call["id"] = ident
            function = part.get("function")
            if function is None:
                function = {}
            if not isinstance(function, dict):
                raise MalformedStream(f"choices[0].delta.tool_calls[{i}].function is {_excerpt(function)}")
            name = function.get("name")
            if isinstance(name, str) and name:
                call["name"] = call["name"] or name
            arguments = function.get("arguments")
            if isinstance(arguments, dict):  # some servers send the object itself
                arguments = json.dumps(arguments, ensure_ascii=False)
            if isinstance(arguments, str) and arguments:
                call["arguments"].append(arguments)
                if sum(map(len, call["arguments"])) > self.max_argument_chars:
                    raise MalformedStream(f"the arguments of tool call {index} are over "
                                          f"{self.max_argument_chars} characters")

    def calls(self, *, id_prefix: str = "call_") -> list[ToolCallRequest]:
        """The calls so far, in index order; a call the server sent without an id gets one."""
        out = []
        for n, (index, call) in enumerate(sorted(self._calls.items())):
            if not call["name"]:
                raise MalformedStream(f"tool call {index} has no function name")
            out.append(ToolCallRequest(call["id"] or f"{id_prefix}{n}", call["name"],
                                       "".join(call["arguments"]) or "{}", index=n))
        return out


def entropy_from_top(logprobs: Iterable[float]) -> float:
    """Entropy (nats) of a next-token distribution known by its top alternatives' logprobs.

    The mass the list leaves out counts as one more outcome, so the figure is a lower bound of the true
    entropy, exact when the list covers the distribution.
    """
    probs = [math.exp(lp) for lp in logprobs if math.isfinite(lp)]
    entropy = -sum(p * math.log(p) for p in probs if p > 0.0)
    rest = 1.0 - sum(probs)
    if rest > 1e-9:
        entropy -= rest * math.log(rest)
    return max(0.0, entropy)


def _excerpt(obj: Any) -> str:
    text = repr(obj)
    return text if len(text) <= 200 else text[:200] + "..."


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MalformedStream(f"{where} is {_excerpt(value)}, not a number")
    return float(value)


# (token texts, logprobs, entropies) of the tokens of one event
TokenData = tuple[tuple[str, ...], tuple[float, ...], tuple[float, ...] | None]


def _token_list(logprobs: Any, key: str) -> list[Any] | None:
    """``choices[0].logprobs[key]``: None when absent or empty, an error when not a list."""
    items = logprobs.get(key) if isinstance(logprobs, dict) else None
    if not items:
        return None
    if not isinstance(items, list):
        raise MalformedStream(f"choices[0].logprobs.{key} is {_excerpt(items)}, not a list")
    return items


def _chat_logprobs(logprobs: Any, want_entropy: bool) -> TokenData | None:
    content = _token_list(logprobs, "content")
    if content is None:
        return None
    tokens, values, entropies = [], [], []
    for i, item in enumerate(content):
        if not isinstance(item, dict):
            raise MalformedStream(f"choices[0].logprobs.content[{i}] is {_excerpt(item)}, not an object")
        tokens.append(str(item.get("token", "")))
        values.append(_number(item.get("logprob"), f"choices[0].logprobs.content[{i}].logprob"))
        top = item.get("top_logprobs")
        if want_entropy and isinstance(top, list) and top:
            entropies.append(entropy_from_top(
                _number(alt.get("logprob") if isinstance(alt, dict) else alt,
                        f"choices[0].logprobs.content[{i}].top_logprobs[{j}].logprob")
                for j, alt in enumerate(top)))
    return tuple(tokens), tuple(values), tuple(entropies) if want_entropy and len(entropies) == len(values) else None


def _completion_logprobs(logprobs: Any, want_entropy: bool) -> TokenData | None:
    raw = _token_list(logprobs, "token_logprobs")
    if raw is None:
        return None
    assert isinstance(logprobs, dict)
    values = tuple(_number(v, f"choices[0].logprobs.token_logprobs[{i}]") for i, v in enumerate(raw))
    names = logprobs.get("tokens")
    tokens = tuple(str(t) for t in names) if isinstance(names, list) and len(names) == len(values) else ()
    entropies: tuple[float, ...] | None = None
    top = logprobs.get("top_logprobs")
    if want_entropy and isinstance(top, list) and len(top) == len(values) and all(isinstance(t, dict)
                                                                                 and t for t in top):
        entropies = tuple(entropy_from_top(_number(v, f"choices[0].logprobs.top_logprobs[{i}]")
                                           for v in alts.values()) for i, alts in enumerate(top))
    return tokens, values, entropies


def parse_event(obj: Any, endpoint: Endpoint, *, want_entropy: bool = False) -> Delta | None:
    """The :class:`Delta` of one decoded event, ``None`` when it says nothing about choice 0 (usage only).

    Raises :class:`ServerError` for an error event and :class:`MalformedStream` for anything else that is not
    a completion chunk.
    """
    if not isinstance(obj, dict):
        raise MalformedStream(f"an event holds {_excerpt(obj)}, not a JSON object")
    if obj.get("error"):
        error = obj["error"]
        message = str(error.get("message", error)) if isinstance(error, dict) else str(error)
        raise ServerError(f"the server reported an error inside the stream: {message}", server_message=message)
    choices = obj.get("choices")
    if not isinstance(choices, list):
        raise MalformedStream(f"an event has no 'choices' list: {_excerpt(obj)}")
    choice = next((c for c in choices if isinstance(c, dict) and c.get("index", 0) == 0), None)
    usage = _usage(obj)
    if choice is None:
        if choices:
            raise MalformedStream(f"an event's choices hold no choice 0: {_excerpt(choices)}")
        return Delta("", usage=usage) if usage is not None else None
    calls: tuple[dict[str, Any], ...] = ()
    reasoning, field = "", None
    if endpoint == "chat":
        delta = choice.get("delta") or {}
        if not isinstance(delta, dict):
            raise MalformedStream(f"choices[0].delta is {_excerpt(delta)}, not an object")
        reasoning, field = reasoning_of(delta, "choices[0].delta")
        text = delta.get("content") or ""
        partials = delta.get("tool_calls")
        if partials is not None and not isinstance(partials, list):
            raise MalformedStream(f"choices[0].delta.tool_calls is {_excerpt(partials)}, not a list")
        calls = tuple(partials or ())
        data = _chat_logprobs(choice.get("logprobs"), want_entropy)
    else:
        text = choice.get("text") or ""
        data = _completion_logprobs(choice.get("logprobs"), want_entropy)
    if not isinstance(text, str):
        raise MalformedStream(f"choices[0] text is {_excerpt(text)}, not a string")
    finish = choice.get("finish_reason")
    finish_reason = str(finish) if finish else None
    if data is None:
        return Delta(text, finish_reason=finish_reason, tool_calls=calls, usage=usage, reasoning=reasoning,
                     reasoning_field=field)
    tokens, values, entropies = data
    return Delta(text, tokens=tokens or None, logprobs=values, entropy=entropies, finish_reason=finish_reason,
                 tool_calls=calls, usage=usage, reasoning=reasoning, reasoning_field=field)


def to_chunks(delta: Delta) -> list[Chunk]:
    """The chunks of one delta: its thinking (``phase="thinking"``) then its content, each one chunk per token
    when the token texts add up to the text, else one. When an event holds both, its tokens are shared out by
    their texts: those that spell the thinking, then any the server kept out of both fields (the closing tag it
    parsed away), go with the thinking; those that spell the content with the content."""
    if not delta.reasoning:
        return _chunks(delta.text, ANSWER, delta.tokens, delta.logprobs, delta.entropy)
    if not delta.text:
        return _chunks(delta.reasoning, THINKING, delta.tokens, delta.logprobs, delta.entropy)
    if delta.logprobs is None:
        return [Chunk(delta.reasoning, phase=THINKING), Chunk(delta.text, tokens=0)]
    n = len(delta.logprobs)
    split = n
    tokens = delta.tokens
    if tokens is not None and len(tokens) == n:
        tail = ""  # the content is spelled by the last tokens
        k = n
        while k > 0 and len(tail) < len(delta.text) and delta.text.endswith(tokens[k - 1] + tail):
            tail = tokens[k - 1] + tail
            k -= 1
        if tail == delta.text:
            split = k
    entropy = delta.entropy
    head = _chunks(delta.reasoning, THINKING, tokens[:split] if tokens else None, delta.logprobs[:split],
                   entropy[:split] if entropy is not None else None)
    rest = _chunks(delta.text, ANSWER, tokens[split:] if tokens else None, delta.logprobs[split:],
                   entropy[split:] if entropy is not None else None)
    if split == n:  # the tokens could not be shared out: all of them count with the thinking
        rest = [Chunk(delta.text, tokens=0)]
    return head + rest


def _chunks(text: str, phase: Phase, tokens: tuple[str, ...] | None, logprobs: tuple[float, ...] | None,
            entropy: tuple[float, ...] | None) -> list[Chunk]:
    if not text:
        return []
    if not logprobs:
        return [Chunk(text, phase=phase)] if logprobs is None else [Chunk(text, tokens=0, phase=phase)]
    if tokens is not None and len(tokens) == len(logprobs) > 1 and "".join(tokens) == text:
        return [Chunk(token, logprobs=(lp,), entropy=(entropy[i],) if entropy is not None else None, phase=phase)
                for i, (token, lp) in enumerate(zip(tokens, logprobs, strict=True)) if token]
    return [Chunk(text, logprobs=logprobs, entropy=entropy, phase=phase)]
