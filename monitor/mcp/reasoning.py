"""Asking ``interlock proxy`` whether a tool call came from reasoning it checked: the MCP front's side of the
released-calls ledger (:mod:`interlock.monitor.proxy.ledger`).

When the agent's model traffic goes through ``interlock proxy --released-calls``, every tool call the model made
reached the agent only after the reasoning before it passed the proxy's checks, and the proxy keeps it for a while.
Before it runs a call, the front claims it there by name and arguments: a claim that succeeds says the call was
released (and uses it up, so one released call runs once) and brings the conversation it was made in, which the
policy then reads (the user's messages, the earlier calls and their results). A call the proxy did not release,
or a proxy that cannot be asked, refuses the call: fail-closed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Claimed", "ReasoningCheck"]

CLAIM_PATH = "/v1/interlock/released-calls/claim"


@dataclass(frozen=True)
class Claimed:
    """A call the proxy released: the run it came from, its outcome, and the request's messages."""

    run_id: str
    outcome: str
    messages: tuple[Mapping[str, Any], ...]


class ReasoningCheck:
    """Claims tool calls at an ``interlock proxy`` (its base URL, with or without ``/v1``)."""

    def __init__(self, proxy_url: str, *, api_key: str | None = None, timeout: float = 10.0) -> None:
        base = proxy_url.rstrip("/")
        base = base.removesuffix("/v1")
        self.url = base + CLAIM_PATH
        self.api_key = api_key
        self.timeout = timeout
        self._client: Any = None

    async def __aenter__(self) -> ReasoningCheck:
        import httpx

        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        self._client = httpx.AsyncClient(headers=headers, timeout=self.timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def claim(self, name: str, arguments: Mapping[str, Any]) -> Claimed | str:
        """The released call, or why the call cannot be taken as checked (a reason for the agent)."""
        import httpx

        if self._client is None:
            raise RuntimeError("ReasoningCheck must be used as `async with` (it holds an HTTP client)")
        try:
            response = await self._client.post(self.url, json={"name": name, "arguments": dict(arguments)})
        except httpx.HTTPError as exc:
            return (f"the reasoning behind this call cannot be confirmed: interlock proxy at {self.url} could not "
                    f"be asked ({type(exc).__name__})")
        if response.status_code == 404:
            return (f"interlock proxy did not release a call of {name} with these arguments: this call did not come "
                    f"from reasoning the proxy checked (or it was already run)")
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code != 200 or not isinstance(body, dict) or body.get("claimed") is not True:
            return f"the reasoning behind this call cannot be confirmed: the proxy answered HTTP {response.status_code}"
        messages = body.get("messages")
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            return "the reasoning behind this call cannot be confirmed: the proxy's answer has no conversation"
        return Claimed(str(body.get("run_id", "")), str(body.get("outcome", "")), tuple(messages))
