"""The calls the proxy released, for a tool front (``interlock mcp --proxy``) to ask whether a tool call it is about
to run came from reasoning the proxy checked.

A tool call reaches a client of the proxy only at the end of a run that left it standing, every check of the
reasoning before it passed (see :mod:`~interlock.monitor.proxy.release`). With ``ProxyConfig(released_calls=
CallLedger())`` the proxy also keeps each released call (its name and arguments, the run's id and outcome, and the
request's messages: the conversation the call was made in) for ``ttl`` seconds, ``max_calls`` at most, and serves
``POST /v1/interlock/released-calls/claim`` (``max_bytes`` bounds the conversations it holds)::

    {"name": "cancel_pending_order", "arguments": {"order_id": "#W1", "reason": "no longer needed"}}
    -> 200 {"claimed": true, "run_id": "...", "outcome": "verified", "call_id": "call_1", "messages": [...]}
    -> 404 {"claimed": false, "reason": "no released call of cancel_pending_order with these arguments ..."}

A claim matches the oldest unclaimed call with that name and the same arguments (compared as JSON values), and
uses it up: each released call authorizes one execution. The endpoint answers only with the proxy's API key when
one is set (it returns conversations). The ledger lives in one process: with ``--workers`` above 1 a claim may
reach a worker that did not release the call.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from interlock.monitor.proxy.models import ChatRequest, ProxyError
from interlock.monitor.proxy.release import ReleasedRun

__all__ = ["CLAIM_PATH", "CallLedger", "ReleasedCall"]

CLAIM_PATH = "/v1/interlock/released-calls/claim"


def canonical(arguments: Any) -> str | None:
    """The arguments as canonical JSON (``None`` when they are not a JSON object)."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except (ValueError, RecursionError):
            return None
    if not isinstance(arguments, dict):
        return None
    try:
        return json.dumps(arguments, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        return None


@dataclass
class ReleasedCall:
    """One tool call the proxy released, with the run it came from and the conversation it was made in."""

    call_id: str
    name: str
    arguments: str  # canonical JSON
    run_id: str
    outcome: str
    messages: tuple[dict[str, Any], ...]
    at: float = field(default_factory=time.monotonic)
    claimed: bool = False
    size: int = 0  # bytes it holds, about (its conversation counted for each call of a request)

    def to_dict(self) -> dict[str, Any]:
        return {"claimed": True, "call_id": self.call_id, "name": self.name, "arguments": json.loads(self.arguments),
                "run_id": self.run_id, "outcome": self.outcome, "messages": list(self.messages)}


class CallLedger:
    """The calls the proxy released in the last ``ttl`` seconds (``max_calls`` at most), to be claimed once each."""

    def __init__(self, *, ttl: float = 900.0, max_calls: int = 10_000, max_bytes: int = 256 << 20,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not ttl > 0 or max_calls < 1 or max_bytes < 1:
            raise ValueError(f"CallLedger: ttl must be positive, max_calls and max_bytes >= 1, got {ttl!r}, "
                             f"{max_calls!r}, {max_bytes!r}")
        self.ttl = float(ttl)
        self.max_calls = int(max_calls)
        self.max_bytes = int(max_bytes)
        self._bytes = 0
        self.clock = clock
        self._calls: OrderedDict[int, ReleasedCall] = OrderedDict()
        self._watched: OrderedDict[int, tuple[ReleasedRun, ChatRequest]] = OrderedDict()
        self._next = 0

    def __len__(self) -> int:
        self._expire()
        return len(self._calls)

    def _expire(self) -> None:
        """Forget the calls older than ``ttl``, and the oldest beyond ``max_calls`` or ``max_bytes``."""
        now = self.clock()
        while self._calls:
            key, first = next(iter(self._calls.items()))
            if now - first.at <= self.ttl and len(self._calls) <= self.max_calls and self._bytes <= self.max_bytes:
                break
            del self._calls[key]
            self._bytes -= first.size

    def watch(self, run: ReleasedRun, request: ChatRequest) -> None:
        """Remember which request a run answers, until :meth:`finished` records what it released."""
        self._watched[id(run)] = (run, request)
        while len(self._watched) > self.max_calls:  # runs that never finished (a client left before they began)
            self._watched.popitem(last=False)

    def finished(self, run: ReleasedRun) -> None:
        """Record the calls a finished run released, with its request's conversation."""
        watched = self._watched.pop(id(run), None)
        if watched is None or watched[0] is not run or not run.calls:
            return
        try:
            result = run.result
        except RuntimeError:  # cancelled before it finished: it released nothing
            return
        messages = tuple(m.to_dict() for m in watched[1].messages)
        size = len(json.dumps(messages, default=str))
        for call in run.calls:
            arguments = canonical(call.arguments)
            if arguments is None:
                continue
            self._calls[self._next] = ReleasedCall(call.id, call.name, arguments, result.run_id,
                                                   result.outcome.value, messages, at=self.clock(),
                                                   size=size + len(arguments))
            self._bytes += size + len(arguments)
            self._next += 1
        self._expire()

    def claim(self, name: str, arguments: Mapping[str, Any] | str) -> ReleasedCall | None:
        """The oldest unclaimed released call of ``name`` with these arguments, now claimed; ``None`` if none."""
        self._expire()
        wanted = canonical(arguments if isinstance(arguments, str) else dict(arguments))
        if wanted is None:
            return None
        for call in self._calls.values():
            if not call.claimed and call.name == name and call.arguments == wanted:
                call.claimed = True
                return call
        return None

    def answer(self, body: bytes) -> tuple[int, dict[str, Any]]:
        """The claim endpoint's status and JSON body for a request body."""
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            raise ProxyError(400, "the claim must be a JSON object {\"name\": ..., \"arguments\": {...}}") from None
        if not isinstance(data, dict) or not isinstance(data.get("name"), str) or not isinstance(
                data.get("arguments", {}), dict | str):
            raise ProxyError(400, "the claim must be a JSON object {\"name\": ..., \"arguments\": {...}}")
        found = self.claim(data["name"], data.get("arguments", {}))
        if found is None:
            return 404, {"claimed": False, "reason": f"no released call of {data['name']} with these arguments in the "
                                                     f"last {self.ttl:g} s that is not claimed yet"}
        return 200, found.to_dict()
