"""Reading a Responses stream as its bytes go, and holding each event and Response to the ``openai`` SDK's own
types with pydantic's validation (the SDK itself builds its objects without validating them)."""

from __future__ import annotations

import json
from typing import Any, get_args

import httpx
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import BaseModel

EVENT_TYPES: dict[str, type[BaseModel]] = {}
for _cls in get_args(get_args(ResponseStreamEvent)[0]):
    (_name,) = get_args(_cls.model_fields["type"].annotation)
    EVENT_TYPES[_name] = _cls


def typed(event: dict[str, Any]) -> BaseModel:
    """``event`` validated as the SDK's class for its type (every required field there, every type right)."""
    cls = EVENT_TYPES[event["type"]]
    parsed = cls.model_validate(event)
    response = event.get("response")
    if isinstance(response, dict):
        Response.model_validate(response)
    return parsed


def sse(data: bytes) -> list[dict[str, Any]]:
    """The events of a Responses stream's bytes; each ``event:`` line must name its data's type."""
    out = []
    for block in data.decode().split("\n\n"):
        lines = [line for line in block.split("\n") if line and not line.startswith(":")]
        if not lines:
            continue
        assert len(lines) == 2 and lines[0].startswith("event: ") and lines[1].startswith("data: "), block
        event = json.loads(lines[1][len("data: "):])
        assert lines[0] == f"event: {event['type']}"
        out.append(event)
    return out


async def stream_events(url: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """POST a streamed Responses request and return its events, each validated (and numbered 0, 1, 2 ...)."""
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(url + "/v1/responses", json={**body, "stream": True})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse(response.content)
    for event in events:
        typed(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return events


def kinds(events: list[Any]) -> list[str]:
    """The event types, runs of deltas folded into one ``...delta*``."""
    out: list[str] = []
    for e in events:
        kind = e["type"] if isinstance(e, dict) else e.type
        if kind.endswith(".delta") and out and out[-1] == kind + "*":
            continue
        out.append(kind + "*" if kind.endswith(".delta") else kind)
    return out
