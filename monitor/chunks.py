"""The unit a generator streams: a piece of text with optional token ids, per-token data and tool calls."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from interlock.monitor.phases import ANSWER, Phase

__all__ = ["Chunk", "ToolCallRequest", "readable_markers", "tool_calls_chunk"]


@dataclass(frozen=True)
class ToolCallRequest:
    """A tool call as the model wrote it: ``arguments`` is the JSON text, unparsed (the model may write bad JSON,
    which is the checks' business, not the generator's). ``index`` is its place among the turn's calls."""

    id: str
    name: str
    arguments: str = "{}"
    index: int = 0

    def marker(self) -> str:
        """The call as one line of trace text: ``<tool_call>{"id":..,"name":..,"arguments":..}</tool_call>``
        and a line end. Spaces, ``<`` and ``>`` inside are JSON-escaped, so the line holds no step boundary
        (it is one step: checked, rolled back and released whole) and no second marker."""
        body = json.dumps({"id": self.id, "name": self.name, "arguments": self.arguments},
                          ensure_ascii=False, separators=(",", ":"))
        body = body.replace(" ", "\\u0020").replace("<", "\\u003c").replace(">", "\\u003e")
        return f"<tool_call>{body}</tool_call>\n"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "arguments": self.arguments, "index": self.index}


_MARKER = re.compile(r"<tool_call>([^<\n]*)</tool_call>")


def readable_markers(text: str) -> str:
    """``text`` with each tool-call marker written as a person reads it: the spaces, ``<`` and ``>`` that
    :meth:`ToolCallRequest.marker` escapes in the trace written as they are (the same JSON, decoded and written
    again; a marker that is not valid JSON is left as it is). For text shown to users, such as
    ``Intervention.removed_text``; the trace itself keeps the escaped form."""

    def unescape(m: re.Match[str]) -> str:
        try:
            body = json.loads(m.group(1))
        except ValueError:
            return m.group(0)
        return f"<tool_call>{json.dumps(body, ensure_ascii=False, separators=(',', ':'))}</tool_call>"

    return _MARKER.sub(unescape, text) if "<tool_call>" in text else text


@dataclass(frozen=True)
class Chunk:
    """A piece of generated text.

    ``token_ids`` (and ``logprobs``/``entropy``, one value per token) are set by backends that have them; a
    chunk without token ids counts as ``tokens`` tokens when the backend knows the count (an HTTP server's
    ``usage``), else as one, which is what streaming APIs without ids deliver per event.
    ``injected`` marks text a monitor wrote (feedback, a nudge) that a replay plays back: the monitor appends it
    as injected text, never checks it and does not count it as generated tokens.
    ``finish_reason`` on a stream's last chunk says why the generator stopped: ``"length"`` at its own token
    limit (the text may end mid-sentence: the monitor reports the run as cut), ``"stop"`` at an end of text;
    ``None`` when it does not say.
    ``tool_calls``: the tool calls this chunk carries; its ``text`` is then their markers
    (:meth:`ToolCallRequest.marker`), so the trace holds each call in order with the reasoning before it.
    ``phase``: ``"thinking"`` for a reasoning model's monologue (a server's ``reasoning`` field, or text between
    thinking tags), ``"answer"`` (the default) for everything else; see :mod:`interlock.monitor.phases`.
    """

    text: str
    token_ids: tuple[int, ...] | None = None
    logprobs: tuple[float, ...] | None = None
    entropy: tuple[float, ...] | None = None
    injected: bool = False
    finish_reason: Literal["stop", "length"] | None = None
    tokens: int | None = None
    tool_calls: tuple[ToolCallRequest, ...] = ()
    phase: Phase = ANSWER

    @property
    def n_tokens(self) -> int:
        if self.injected:
            return 0
        if self.token_ids is not None:
            return len(self.token_ids)
        return self.tokens if self.tokens is not None else 1

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"text": self.text}
        if self.token_ids is not None:
            out["token_ids"] = list(self.token_ids)
        if self.logprobs is not None:
            out["logprobs"] = list(self.logprobs)
        if self.entropy is not None:
            out["entropy"] = list(self.entropy)
        if self.finish_reason is not None:
            out["finish_reason"] = self.finish_reason
        if self.tokens is not None and self.token_ids is None:
            out["tokens"] = self.tokens
        if self.tool_calls:
            out["tool_calls"] = [c.to_dict() for c in self.tool_calls]
        if self.phase != ANSWER:
            out["phase"] = self.phase
        return out


def tool_calls_chunk(calls: tuple[ToolCallRequest, ...] | list[ToolCallRequest], *, after: str = "",
                     tokens: int | None = None) -> Chunk:
    """The chunk a generator yields for ``calls``: their markers, after a line end when the text so far (``after``)
    does not end with one, so that each call is a step of its own."""
    lead = "" if after in ("",) or after.endswith("\n") else "\n"
    return Chunk(lead + "".join(c.marker() for c in calls), tokens=tokens, tool_calls=tuple(calls))
