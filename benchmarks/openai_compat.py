"""Client overhead of ``generators.OpenAICompatible`` against the same stream read with raw httpx, side by side.

A local server (its own thread and event loop) streams ``--chunks`` chat-completion events (one word each, a
line every 20 words), one write per event, as fast as it can. Three readers take the same stream, in alternating
order, ``--repeats`` times:

- ``raw_lines``: httpx ``aiter_lines`` and ``json.loads`` of each ``data:`` line (the least a client can do);
- ``openai_compat``: ``OpenAICompatible.stream`` (SSE parser, event checks, chunks);
- ``openai_compat_monitored``: the same inside ``Monitor.run`` with no verifier (what the monitor adds).

It also times the first token of a fresh request (``--ttft-requests`` of them, pooled connection, alternating)
with both clients, on the local server or on a real one (``--base-url URL --model NAME``, e.g. ``transformers
serve`` with a local model). Prints JSON: median seconds, microseconds per chunk, ratios to ``raw_lines``.

    python benchmarks/openai_compat.py [--chunks 20000] [--repeats 5] [--ttft-requests 200]
                                       [--base-url http://127.0.0.1:8000/v1 --model NAME]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx
from interlock import GenerationRequest, Monitor
from interlock.generators import OpenAICompatible


def event(text: str | None = None, finish: str | None = None) -> bytes:
    delta = {"content": text} if text is not None else {}
    obj = {"id": "b", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta,
                                                                      "finish_reason": finish}]}
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


class Server:
    """Streams ``n`` one-word events per request, one write each, with HTTP/1.1 keep-alive (chunked)."""

    def __init__(self, n: int) -> None:
        # one-word chunks, a line (a step) every 20 words, as reasoning text has
        words = [f" w{i}" + (".\n" if i % 20 == 19 else "") for i in range(n)]
        self.events = [event(w) for w in words] + [event(finish="stop"), b"data: [DONE]\n\n"]
        self.ready = threading.Event()
        self.port = 0
        self.loop: asyncio.AbstractEventLoop | None = None

    def run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self.ready.set()
        async with server:
            await server.serve_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                body = json.loads(await reader.readexactly(length))
                count = body.get("max_tokens") or len(self.events)
                events = [*self.events[:count], *self.events[-2:]] if count < len(self.events) else self.events
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n")
                for piece in events:
                    writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    await writer.drain()
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


async def raw_lines(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> int:
    n = 0
    async with client.stream("POST", url, json=body, headers={"Accept": "text/event-stream"}) as response:
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            data = line[6:]
            if data == "[DONE]":
                break
            if json.loads(data)["choices"][0]["delta"].get("content"):
                n += 1
    return n


async def through_client(gen: OpenAICompatible, max_tokens: int | None = None) -> int:
    n = 0
    async for _ in gen.stream(GenerationRequest("p", max_new_tokens=max_tokens)):
        n += 1
    return n


async def first_raw(client: httpx.AsyncClient, url: str, body: dict[str, Any]) -> float:
    """Seconds from sending the request to the first content, raw httpx; the rest is not read."""
    start = time.perf_counter()
    async with client.stream("POST", url, json=body, headers={"Accept": "text/event-stream"}) as response:
        async for line in response.aiter_lines():
            if (line.startswith("data: ") and line[6:] != "[DONE]"
                    and json.loads(line[6:])["choices"][0]["delta"].get("content")):
                return time.perf_counter() - start
    raise AssertionError("the server sent no content")


async def first_client(gen: OpenAICompatible, prompt: str) -> float:
    """Seconds from ``stream()`` to its first chunk; the stream is closed after it."""
    start = time.perf_counter()
    stream = gen.stream(GenerationRequest(prompt))
    try:
        async for _ in stream:
            return time.perf_counter() - start
    finally:
        await stream.aclose()
    raise AssertionError("the server sent no content")


async def through_monitor(gen: OpenAICompatible) -> int:
    result = await Monitor(gen).run("p")
    return result.tokens.kept


async def main(chunks: int, repeats: int, ttft_requests: int, base_url: str | None, model: str) -> dict[str, Any]:
    server = Server(chunks)
    threading.Thread(target=server.run, daemon=True).start()
    server.ready.wait(10)
    base = f"http://127.0.0.1:{server.port}/v1"
    url = base + "/chat/completions"
    body = {"model": "m", "messages": [{"role": "user", "content": "p"}], "stream": True}
    times: dict[str, list[float]] = {"raw_lines": [], "openai_compat": [], "openai_compat_monitored": []}
    async with httpx.AsyncClient(timeout=60) as client, OpenAICompatible(base, "m", max_tokens=None) as gen:
        runners: dict[str, Callable[[], Awaitable[int]]] = {
            "raw_lines": lambda: raw_lines(client, url, body),
            "openai_compat": lambda: through_client(gen),
            "openai_compat_monitored": lambda: through_monitor(gen),
        }
        for name, run in runners.items():  # warm-up: connections, imports
            assert await run() == chunks, name
        for r in range(repeats):
            order = list(runners) if r % 2 == 0 else list(reversed(runners))
            for name in order:
                start = time.perf_counter()
                got = await runners[name]()
                times[name].append(time.perf_counter() - start)
                assert got == chunks, (name, got)

    # time to first token: against --base-url when given (a real server), else the local one
    prompt = "Natalia sold 48/2 = 24 clips in May. How many clips did she sell?"
    ttft_base, ttft_model = (base_url, model) if base_url else (base, "m")
    ttft_gen = OpenAICompatible(ttft_base, ttft_model, temperature=0.0, max_tokens=16)
    ttft_body = {**ttft_gen.body(GenerationRequest(prompt))}
    ttft: dict[str, list[float]] = {"raw_lines": [], "openai_compat": []}
    async with httpx.AsyncClient(timeout=60) as client, ttft_gen:
        await first_raw(client, ttft_gen.url, ttft_body)
        await first_client(ttft_gen, prompt)
        for i in range(ttft_requests):
            for name in (["raw_lines", "openai_compat"] if i % 2 == 0 else ["openai_compat", "raw_lines"]):
                if name == "raw_lines":
                    ttft[name].append(await first_raw(client, ttft_gen.url, ttft_body))
                else:
                    ttft[name].append(await first_client(ttft_gen, prompt))

    medians = {k: statistics.median(v) for k, v in times.items()}
    ttft_medians = {k: statistics.median(v) for k, v in ttft.items()}
    return {
        "chunks": chunks,
        "repeats": repeats,
        "median_seconds": {k: round(v, 4) for k, v in medians.items()},
        "us_per_chunk": {k: round(v / chunks * 1e6, 2) for k, v in medians.items()},
        "ratio_to_raw_lines": {k: round(v / medians["raw_lines"], 3) for k, v in medians.items()},
        "ttft_server": ttft_base if base_url else "local fake server",
        "ttft_median_ms": {k: round(v * 1e3, 3) for k, v in ttft_medians.items()},
        "ttft_ratio": round(ttft_medians["openai_compat"] / ttft_medians["raw_lines"], 3),
        "ttft_requests": ttft_requests,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--ttft-requests", type=int, default=200)
    parser.add_argument("--base-url", help="time the first token on this server instead (e.g. transformers serve)")
    parser.add_argument("--model", default="m", help="the model name for --base-url")
    args = parser.parse_args()
    print(json.dumps(anyio.run(main, args.chunks, args.repeats, args.ttft_requests, args.base_url, args.model),
                     indent=2))
