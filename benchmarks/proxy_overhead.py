"""What the interlock proxy costs a client: time to first token and total time per streamed answer, direct from an
OpenAI-compatible server vs. through the proxy (which holds each step until its checks pass), one request at a
time and 50 at once. Prints JSON.

The upstream is a minimal streaming server in this process that sends a fixed answer (clean step-by-step
arithmetic, ~``--tokens`` word-sized tokens) at ``--rate`` tokens per second per stream, like a model would. The
proxy forwards to it through ``generators.OpenAICompatible`` and checks every step with a cheap sums verifier.

A tool-calling answer (the same text, then one ``record(total=...)`` call, streamed as OpenAI's tool-call deltas)
is measured too: time to the first byte of the stream (the headers and the role chunk, which the proxy sends at once
whatever it holds back; also with a reasoning check that takes 0.2 s a step) and total time until ``[DONE]``, the
call checked by a tool verifier and released whole.

    python benchmarks/proxy_overhead.py [--tokens 120] [--rate 200] [--requests 20] [--concurrent 50]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import openai
from interlock import Fail, Step, verifier
from interlock.monitor.proxy import ProxyConfig, UpstreamBackend, create_app, serving
from interlock.monitor.scan import pseudo_tokens
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

SUM = re.compile(r"(\d+) \+ (\d+) = (\d+)")


@verifier(name="sums")
def sums(step: Step) -> Fail | None:
    for m in SUM.finditer(step.text):
        a, b, c = (int(g) for g in m.groups())
        if a + b != c:
            return Fail(f"{a} + {b} is {a + b}, not {c}", span=step.to_trace(*m.span()))
    return None


def answer(tokens: int) -> list[str]:
    text, i = "", 0
    while len(list(pseudo_tokens(text))) < tokens:
        a, b = 3 + i % 17, 5 + i % 23
        text += f"Then we add {a} + {b} = {a + b} to the total.\n"
        i += 1
    return list(pseudo_tokens(text))


TOOLS = [{"type": "function", "function": {"name": "record", "parameters": {
    "type": "object", "properties": {"total": {"type": "integer"}}}}}]
CALL_ARGS = json.dumps({"total": 4242, "note": "all steps added"})


def upstream_app(pieces: list[str], rate: float) -> Starlette:
    async def chat(request: Request) -> StreamingResponse:
        body = await request.json()

        def event(delta: dict[str, Any], finish: str | None = None) -> bytes:
            chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": body["model"],
                     "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            return f"data: {json.dumps(chunk)}\n\n".encode()

        async def events() -> AsyncIterator[bytes]:
            start = time.perf_counter()
            yield event({"role": "assistant", "content": ""})
            for i, piece in enumerate(pieces):
                await anyio.sleep(max(0.0, start + (i + 1) / rate - time.perf_counter()))
                yield event({"content": piece})
            if body.get("tools"):  # the call's deltas at the same rate: id and name, then the arguments in pieces
                yield event({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                             "function": {"name": "record", "arguments": ""}}]})
                for j in range(0, len(CALL_ARGS), 8):
                    await anyio.sleep(1 / rate)
                    yield event({"tool_calls": [{"index": 0, "function": {"arguments": CALL_ARGS[j:j + 8]}}]})
            yield event({}, "tool_calls" if body.get("tools") else "stop")
            yield b"data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


async def one(client: openai.AsyncOpenAI) -> tuple[float, float, str]:
    started = time.perf_counter()
    first = None
    parts = []
    stream = await client.chat.completions.create(model="bench", messages=[{"role": "user", "content": "sum"}],
                                                  stream=True)
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            if first is None:
                first = time.perf_counter() - started
            parts.append(chunk.choices[0].delta.content)
    return first or 0.0, time.perf_counter() - started, "".join(parts)


async def sequential(client: openai.AsyncOpenAI, n: int, expected: str) -> dict[str, float]:
    ttft, total = [], []
    for _ in range(n):
        t, w, text = await one(client)
        assert text == expected, "an answer came back changed"
        ttft.append(t)
        total.append(w)
    return {"ttft_median_s": round(statistics.median(ttft), 4), "total_median_s": round(statistics.median(total), 4)}


async def concurrent(client: openai.AsyncOpenAI, n: int, expected: str) -> dict[str, float]:
    texts: list[str] = []

    async def run() -> None:
        texts.append((await one(client))[2])

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(n):
            tg.start_soon(run)
    wall = time.perf_counter() - started
    complete = sum(t == expected for t in texts)
    return {"wall_s": round(wall, 4), "complete": complete, "requests": n}


async def tool_answer(http: httpx.AsyncClient, url: str, expected: str) -> tuple[float, float]:
    """One streamed tool-calling answer: (seconds to the first SSE event, seconds to [DONE])."""
    started = time.perf_counter()
    first = None
    parts, calls = [], []
    body = {"model": "bench", "messages": [{"role": "user", "content": "sum"}], "tools": TOOLS, "stream": True}
    async with http.stream("POST", url + "/v1/chat/completions", json=body) as response:
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            if first is None:
                first = time.perf_counter() - started
            if line == "data: [DONE]":
                break
            event = json.loads(line[6:])
            delta = event["choices"][0]["delta"] if event.get("choices") else {}
            parts.append(delta.get("content") or "")
            calls.extend(delta.get("tool_calls") or [])
    total = time.perf_counter() - started
    assert "".join(parts).rstrip("\n") == expected.rstrip("\n"), "a tool-calling answer came back changed"
    assert "".join(c["function"].get("arguments") or "" for c in calls) == CALL_ARGS, "the call came back changed"
    return first or 0.0, total


async def tool_calling(upstream: str, expected: str, n: int) -> dict[str, Any]:
    """Direct vs. through the proxy (tool verifier on the call; plain and 0.2 s reasoning checks), alternating."""

    def small_total(arguments: Any) -> Fail | None:
        return Fail("too large") if arguments.get("total", 0) > 10**6 else None

    @verifier(name="sums")
    async def slow_sums(step: Step) -> Fail | None:
        await anyio.sleep(0.2)
        return sums.check(step)

    out: dict[str, Any] = {}
    configs = {"proxy": [sums], "proxy_slow_check": [slow_sums]}
    async with httpx.AsyncClient(timeout=120) as http:
        servers = {}
        async with anyio.create_task_group() as tg:
            stops = []
            for name, verifiers in configs.items():
                app = create_app(ProxyConfig(UpstreamBackend(upstream + "/v1", model="bench"), verifiers=verifiers,
                                             tool_verifiers={"record": [small_total]}))
                ready, stop = anyio.Event(), anyio.Event()
                stops.append(stop)

                async def run(app: Any = app, name: str = name, ready: anyio.Event = ready,
                              stop: anyio.Event = stop) -> None:
                    async with serving(app, log_level="error") as url:
                        servers[name] = url
                        ready.set()
                        await stop.wait()

                tg.start_soon(run)
                await ready.wait()
            paths = {"direct": upstream, **servers}
            for url in paths.values():
                await tool_answer(http, url, expected)  # warm up
            figures: dict[str, list[tuple[float, float]]] = {name: [] for name in paths}
            for _ in range(n):
                for name, url in paths.items():  # alternate, so drift affects all alike
                    figures[name].append(await tool_answer(http, url, expected))
            for stop in stops:
                stop.set()
    for name, rows in figures.items():
        out[name] = {"ttfb_median_s": round(statistics.median(r[0] for r in rows), 4),
                     "ttfb_max_s": round(max(r[0] for r in rows), 4),
                     "total_median_s": round(statistics.median(r[1] for r in rows), 4)}
    for name in configs:
        out[f"{name}_total_ratio_vs_direct"] = round(out[name]["total_median_s"] / out["direct"]["total_median_s"], 4)
    return out


async def main(args: argparse.Namespace) -> dict[str, Any]:
    pieces = answer(args.tokens)
    expected = "".join(pieces)
    results: dict[str, Any] = {"tokens": len(pieces), "rate_tokens_per_s": args.rate,
                                "steps": expected.count("\n"), "requests": args.requests}
    async with serving(upstream_app(pieces, args.rate), log_level="error") as upstream:
        proxy = create_app(ProxyConfig(UpstreamBackend(upstream + "/v1", model="bench"), verifiers=[sums]))
        async with serving(proxy, log_level="error") as url:
            direct = openai.AsyncOpenAI(base_url=upstream + "/v1", api_key="x", max_retries=0, timeout=120)
            proxied = openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=120)
            await one(direct)
            await one(proxied)  # warm both paths (imports, connections)
            seq_direct, seq_proxy = [], []
            for _ in range(2):  # alternate, so drift affects both
                seq_direct.append(await sequential(direct, args.requests // 2, expected))
                seq_proxy.append(await sequential(proxied, args.requests // 2, expected))
            results["direct"] = {k: round(statistics.mean(d[k] for d in seq_direct), 4) for k in seq_direct[0]}
            results["proxy"] = {k: round(statistics.mean(d[k] for d in seq_proxy), 4) for k in seq_proxy[0]}
            results["concurrent_direct"] = await concurrent(direct, args.concurrent, expected)
            results["concurrent_proxy"] = await concurrent(proxied, args.concurrent, expected)
            await direct.close()
            await proxied.close()
        results["tool_calling"] = await tool_calling(upstream, expected, args.requests)
    d, p = results["direct"], results["proxy"]
    step_tokens = len(pieces) / max(1, results["steps"])
    results["ttft_added_s"] = round(p["ttft_median_s"] - d["ttft_median_s"], 4)
    results["one_step_at_rate_s"] = round(step_tokens / args.rate, 4)
    results["total_ratio_proxy_vs_direct"] = round(p["total_median_s"] / d["total_median_s"], 4)
    results["concurrent_ratio_proxy_vs_direct"] = round(results["concurrent_proxy"]["wall_s"]
                                                        / results["concurrent_direct"]["wall_s"], 4)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--tokens", type=int, default=120)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--concurrent", type=int, default=50)
    print(json.dumps(anyio.run(main, parser.parse_args()), indent=2))
