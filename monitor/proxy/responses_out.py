"""What ``/v1/responses`` answers: the Response object and its stream of typed events, built from what the release
let through (:class:`~interlock.monitor.proxy.release.ReleasedRun`'s pieces), so the client of the Responses API
gets the same guarantees as the chat client: nothing a check rolled back, no call before the reasoning before it
passed.

The output items follow the released pieces in order: a stretch of thinking is a ``reasoning`` item (its text as
``reasoning_text`` content, without thinking tags), a stretch of answer a ``message`` item with one ``output_text``
part, each released tool call a ``function_call`` item. The stream is the sequence OpenAI documents, every event
with its ``sequence_number``: ``response.created``, ``response.in_progress``; per item
``response.output_item.added``, then for text ``response.content_part.added``, ``response.output_text.delta`` or
``response.reasoning_text.delta`` (one per released piece), ``response.output_text.done`` /
``response.reasoning_text.done``, ``response.content_part.done``; for a call
``response.function_call_arguments.delta`` (the arguments whole: a call is released whole) and ``.done``; then
``response.output_item.done``; and at the end ``response.completed`` (or ``response.incomplete`` when a budget or
the monitor cut the answer; ``response.failed`` when the backend failed). Errors of the proxy itself after the
stream began (a timeout) are an ``error`` event.

interlock's report rides in two places: the ``interlock`` object of the final Response (the ``openai`` SDK shows
it in ``response.model_extra["interlock"]``), and the Response's ``metadata`` (the API allows strings only, up to
512 characters): ``interlock_run_id``, ``interlock_outcome``, ``interlock_passed`` (``true``/``false``),
``interlock_stop_reason``, ``interlock_interventions`` (how many) and ``interlock_withheld_calls`` (how many calls
the model made that were not released), beside the client's own metadata (whose keys starting with ``interlock_``
are left out: a client cannot pass its own findings off as the proxy's). With them a response may carry up to 6
pairs more than the 16 a request may send.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, Literal

from interlock.monitor.chunks import ToolCallRequest
from interlock.monitor.phases import strip_tags
from interlock.monitor.proxy.backends import Prepared
from interlock.monitor.proxy.output import had_thinking, prompt_tokens_of
from interlock.monitor.proxy.release import ReleasedRun, Thought, finish_reason
from interlock.monitor.proxy.responses_request import ResponsesRequest
from interlock.monitor.result import RunResult, StopReason

__all__ = ["METADATA_KEYS", "ResponseItems", "new_response_id", "report_metadata", "response_object",
           "response_status", "responses_usage"]

METADATA_KEYS = ("interlock_run_id", "interlock_outcome", "interlock_passed", "interlock_stop_reason",
                 "interlock_interventions", "interlock_withheld_calls")
Status = Literal["completed", "incomplete", "failed", "in_progress"]


def new_response_id() -> str:
    """A response id (``resp_`` and 32 hex digits), fixed when the request arrives: the first event carries it."""
    return "resp_" + uuid.uuid4().hex


def _item_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def response_status(run: ReleasedRun) -> tuple[Status, str | None]:
    """The Response's status and, when incomplete, why: ``max_output_tokens`` (a budget or the server's length
    limit) or ``content_filter`` (the monitor interrupted the answer or gave up on it)."""
    result = run.result
    if result.stop_reason in (StopReason.ERROR, StopReason.CANCELLED):
        return "failed", None
    if run.calls:
        return "completed", None
    reason = finish_reason(result)
    if reason == "length":
        return "incomplete", "max_output_tokens"
    if reason == "content_filter":
        return "incomplete", "content_filter"
    return "completed", None


def report_metadata(run: ReleasedRun) -> dict[str, str]:
    """interlock's findings as Response metadata: string values only (see the module docstring)."""
    result: RunResult = run.result
    withheld = sum(1 for _, released in run.call_outcomes() if not released)
    return {"interlock_run_id": result.run_id, "interlock_outcome": result.outcome.value,
            "interlock_passed": "true" if result.passed else "false",
            "interlock_stop_reason": result.stop_reason.value,
            "interlock_interventions": str(len(result.interventions)), "interlock_withheld_calls": str(withheld)}


def responses_usage(run: ReleasedRun, prepared: Prepared) -> dict[str, Any]:
    """The Responses API's ``usage``: the prompt's tokens and those of what the client got (thinking included,
    its share in ``output_tokens_details.reasoning_tokens``), as the chat endpoint counts them."""
    prompt = prompt_tokens_of(prepared)
    sent = run.released_tokens
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": sent,
            "output_tokens_details": {"reasoning_tokens": run.released_thinking_tokens if had_thinking(run) else 0},
            "total_tokens": prompt + sent}


def response_object(req: ResponsesRequest, response_id: str, created: int, *, status: Status,
                    output: list[dict[str, Any]], usage: dict[str, Any] | None = None,
                    metadata: dict[str, str] | None = None, error: dict[str, Any] | None = None,
                    incomplete: str | None = None, report: dict[str, Any] | None = None) -> dict[str, Any]:
    """A Response object as the API returns it (``report``: the ``interlock`` object, on the final one)."""
    reasoning = req.reasoning or {}
    body: dict[str, Any] = {
        "id": response_id, "object": "response", "created_at": created, "status": status, "error": error,
        "incomplete_details": {"reason": incomplete} if incomplete else None, "instructions": req.instructions,
        "max_output_tokens": req.max_output_tokens, "model": req.model, "output": output,
        "parallel_tool_calls": req.parallel_tool_calls, "previous_response_id": req.previous_response_id,
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "store": req.store, "temperature": req.chat.temperature, "text": req.text, "tool_choice": req.tool_choice,
        "tools": [dict(t) for t in req.tools], "top_p": req.chat.top_p, "truncation": "disabled", "usage": usage,
        "user": None, "metadata": {**{k: v for k, v in req.metadata.items() if not k.startswith("interlock_")},
                                   **(metadata or {})},
    }
    if report is not None:
        body["interlock"] = report
    return body


class ResponseItems:
    """Turns released pieces into output items, and into the stream's events (``emit`` receives each event, its
    ``sequence_number`` set). For a whole answer, feed the pieces and read :attr:`output`."""

    def __init__(self, emit: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.emit = emit
        self.sequence = 0
        self.output: list[dict[str, Any]] = []
        self._kind: Literal["reasoning", "message"] | None = None
        self._id = ""
        self._parts: list[str] = []

    def event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        if self.emit is not None:
            self.emit(event)
        return event

    @property
    def index(self) -> int:
        """The output index of the item being written (or of the next one)."""
        return len(self.output)

    def text(self, piece: str) -> None:
        """One released piece of text (a :class:`Thought` is thinking)."""
        thinking = isinstance(piece, Thought)
        text = strip_tags(str(piece)) if thinking else str(piece)
        kind: Literal["reasoning", "message"] = "reasoning" if thinking else "message"
        if kind != self._kind:
            self.close()
            self._begin(kind)
        if not text:
            return
        self._parts.append(text)
        if self.emit is None:
            return
        if kind == "reasoning":
            self.event("response.reasoning_text.delta", item_id=self._id, output_index=self.index, content_index=0,
                       delta=text)
        else:
            self.event("response.output_text.delta", item_id=self._id, output_index=self.index, content_index=0,
                       delta=text, logprobs=[])

    def _begin(self, kind: Literal["reasoning", "message"]) -> None:
        self._kind, self._parts = kind, []
        self._id = _item_id("rs" if kind == "reasoning" else "msg")
        if self.emit is None:
            return
        self.event("response.output_item.added", output_index=self.index, item=self._item("in_progress", ""))
        part = ({"type": "reasoning_text", "text": ""} if kind == "reasoning"
                else {"type": "output_text", "text": "", "annotations": [], "logprobs": []})
        self.event("response.content_part.added", item_id=self._id, output_index=self.index, content_index=0,
                   part=part)

    def _item(self, status: str, text: str) -> dict[str, Any]:
        if self._kind == "reasoning":
            content: list[dict[str, Any]] = [{"type": "reasoning_text", "text": text}] if text or status != \
                "in_progress" else []
            return {"id": self._id, "type": "reasoning", "summary": [], "content": content, "status": status}
        parts = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}] if text or status != \
            "in_progress" else []
        return {"id": self._id, "type": "message", "role": "assistant", "status": status, "content": parts}

    def close(self, status: str = "completed") -> None:
        """End the item being written (if any)."""
        if self._kind is None:
            return
        text = "".join(self._parts)
        if self.emit is not None:
            if self._kind == "reasoning":
                self.event("response.reasoning_text.done", item_id=self._id, output_index=self.index,
                           content_index=0, text=text)
                part: dict[str, Any] = {"type": "reasoning_text", "text": text}
            else:
                self.event("response.output_text.done", item_id=self._id, output_index=self.index, content_index=0,
                           text=text, logprobs=[])
                part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
            self.event("response.content_part.done", item_id=self._id, output_index=self.index, content_index=0,
                       part=part)
        item = self._item(status, text)
        if self.emit is not None:
            self.event("response.output_item.done", output_index=self.index, item=item)
        self.output.append(item)
        self._kind, self._parts = None, []

    def call(self, call: ToolCallRequest) -> None:
        """One released tool call: a ``function_call`` item, its arguments in one delta."""
        self.close()
        ident = _item_id("fc")
        item = {"id": ident, "type": "function_call", "call_id": call.id, "name": call.name,
                "arguments": call.arguments, "status": "completed"}
        if self.emit is not None:
            self.event("response.output_item.added", output_index=self.index,
                       item={**item, "arguments": "", "status": "in_progress"})
            self.event("response.function_call_arguments.delta", item_id=ident, output_index=self.index,
                       delta=call.arguments)
            self.event("response.function_call_arguments.done", item_id=ident, output_index=self.index,
                       name=call.name, arguments=call.arguments)
            self.event("response.output_item.done", output_index=self.index, item=item)
        self.output.append(item)


def created_now() -> int:
    return int(time.time())
