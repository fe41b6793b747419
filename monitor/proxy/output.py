"""What the proxy writes: JSON that cannot fail to encode, and the OpenAI shapes its answers share.

Python strings may hold lone surrogates (``"\\ud800"``, which JSON's escape lets a client or a model produce) that
UTF-8 cannot encode; the proxy writes each as U+FFFD and counts it (``interlock.replaced.surrogates``), the
project's policy for text written out.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from interlock.monitor.chunks import ToolCallRequest
from interlock.monitor.logs import get_logger
from interlock.monitor.proxy.backends import Prepared
from interlock.monitor.proxy.models import ChatRequest, CompletionRequest, ProxyError
from interlock.monitor.proxy.release import ReleasedRun
from interlock.monitor.textout import scrub
from interlock.monitor.urls import redact_text
from starlette.responses import Response

__all__ = ["JSONOut", "call_json", "dumps", "error_response", "had_thinking", "ident_of", "note_replaced",
           "prompt_tokens_of", "scrub_json", "upstream_error", "usage_of"]

_log = get_logger(component="proxy")


def scrub_json(obj: Any) -> tuple[Any, int]:
    """``obj`` with every lone surrogate in its strings replaced by U+FFFD, and how many there were. Iterative,
    so no nesting depth can overflow the stack."""
    count = 0

    def fix(value: Any) -> Any:
        nonlocal count
        if isinstance(value, str):
            value, n = scrub(value)
            count += n
        return value

    root: list[Any] = [obj]
    stack: list[tuple[Any, Any]] = [(root, 0)]
    while stack:
        container, key = stack.pop()
        value = container[key]
        if isinstance(value, dict):
            value = {fix(k): v for k, v in value.items()}
            container[key] = value
            stack.extend((value, k) for k in value)
        elif isinstance(value, list | tuple):
            value = list(value)
            container[key] = value
            stack.extend((value, i) for i in range(len(value)))
        else:
            container[key] = fix(value)
    return root[0], count


def dumps(obj: Any) -> tuple[bytes, int]:
    """Compact UTF-8 JSON of ``obj``; lone surrogates become U+FFFD (the count says how many)."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode("utf-8"), 0
    except UnicodeEncodeError:
        fixed, n = scrub_json(obj)
        return json.dumps(fixed, ensure_ascii=False, separators=(",", ":")).encode("utf-8"), n


def note_replaced(body: dict[str, Any], n: int) -> None:
    if n and isinstance(body.get("interlock"), dict):
        body["interlock"]["replaced"] = {"surrogates": n}


class JSONOut(Response):
    """A JSON response that cannot fail to encode (see :func:`dumps`)."""

    media_type = "application/json"

    def __init__(self, content: Any, status_code: int = 200, headers: Mapping[str, str] | None = None) -> None:
        data, n = dumps(content)
        if n:
            _log.warning("lone surrogates replaced with U+FFFD in a response", count=n)
            if isinstance(content, dict) and isinstance(content.get("interlock"), dict):
                note_replaced(content, n)
                data, _ = dumps(content)
        super().__init__(data, status_code=status_code, headers=dict(headers or {}))


def error_response(exc: ProxyError, headers: dict[str, str] | None = None) -> Response:
    if exc.close:
        headers = {**(headers or {}), "connection": "close"}
    return JSONOut(exc.body(), status_code=exc.status, headers=headers)


def prompt_tokens_of(prepared: Prepared) -> int:
    """The prompt's tokens: counted locally, or as the upstream reported them; 0 when neither can say."""
    prompt = prepared.prompt_tokens
    if prompt is None:
        prompt = prepared.generator.prompt_tokens or 0
    return prompt


def had_thinking(run: ReleasedRun) -> bool:
    """Whether the run's trace had a thinking (its usage then says how many tokens were thinking)."""
    result = run._result
    return result is not None and (bool(result.phases) or result.tokens.thinking > 0)


def usage_of(run: ReleasedRun, prepared: Prepared) -> dict[str, Any]:
    """OpenAI ``usage``: the prompt's tokens (counted locally, or as the upstream reported them; 0 when neither
    can say) and the tokens of the answer the client got: not those rolled back, nor those the release withheld
    (a violation that stands, an interrupt); all generated tokens are in ``interlock.tokens``. A run with a
    thinking adds ``completion_tokens_details.reasoning_tokens``: the thinking's share of them."""
    prompt = prompt_tokens_of(prepared)
    sent = run.released_tokens
    usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": sent, "total_tokens": prompt + sent}
    if had_thinking(run):
        usage["completion_tokens_details"] = {"reasoning_tokens": run.released_thinking_tokens}
    return usage


def call_json(call: ToolCallRequest, index: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"id": call.id, "type": "function", "function": {"name": call.name,
                                                                           "arguments": call.arguments}}
    if index is not None:
        out = {"index": index, **out}
    return out


def ident_of(req: ChatRequest | CompletionRequest, run_id: str) -> str:
    return ("chatcmpl-" if isinstance(req, ChatRequest) else "cmpl-") + run_id


def upstream_error(prepared: Prepared, detail: str, redact: Callable[[str], str] | None = None) -> ProxyError:
    """The error a failed backend is answered with: the upstream's status and message, else a 502; every text
    through ``redact`` (the backend's: no credentials of its URL reach a client)."""
    shown = redact or redact_text
    exc = prepared.generator.error
    status = getattr(exc, "status", None)
    if isinstance(status, int) and 400 <= status <= 599:
        message = getattr(exc, "server_message", "") or str(exc)
        return ProxyError(status, shown(message), type="upstream_error", code="upstream_error")
    return ProxyError(502, shown(f"the backend failed: {detail or exc}"), type="upstream_error",
                      code="backend_error")


