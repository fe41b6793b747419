"""What the Responses API costs through the proxy, beside the chat endpoint: the same streamed answer (clean
step-by-step arithmetic at ``--rate`` tokens per second, every step checked) asked for through ``/v1/chat/completions``
and through ``/v1/responses`` (translated to the same upstream's chat completions), alternating, and directly from
the upstream. Time to the first text and total time per answer, medians; prints JSON.

    python benchmarks/responses_overhead.py [--tokens 120] [--rate 200] [--requests 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import openai
from interlock.monitor.proxy import ProxyConfig, UpstreamBackend, create_app, serving

sys.path.insert(0, str(Path(__file__).resolve().parent))
import proxy_overhead  # (benchmarks/proxy_overhead.py: the same upstream, answer and check)


async def chat(client: openai.AsyncOpenAI) -> tuple[float, float, str]:
    return await proxy_overhead.one(client)


async def responses(client: openai.AsyncOpenAI) -> tuple[float, float, str]:
    started = time.perf_counter()
    first = None
    parts = []
    stream = await client.responses.create(model="bench", input="sum", stream=True)
    async for event in stream:
        if event.type == "response.output_text.delta":
            if first is None:
                first = time.perf_counter() - started
            parts.append(event.delta)
    return first or 0.0, time.perf_counter() - started, "".join(parts)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    pieces = proxy_overhead.answer(args.tokens)
    expected = "".join(pieces)
    times: dict[str, list[tuple[float, float]]] = {"direct": [], "chat": [], "responses": []}
    async with serving(proxy_overhead.upstream_app(pieces, args.rate), log_level="error") as upstream:
        app = create_app(ProxyConfig(UpstreamBackend(upstream + "/v1", model="bench", responses="chat"),
                                     verifiers=[proxy_overhead.sums]))
        async with serving(app, log_level="error") as url:
            direct = openai.AsyncOpenAI(base_url=upstream + "/v1", api_key="x", max_retries=0, timeout=120)
            proxied = openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=120)
            paths = {"direct": lambda: chat(direct), "chat": lambda: chat(proxied),
                     "responses": lambda: responses(proxied)}
            for run in paths.values():  # warm every path (imports, connections)
                await run()
            for _ in range(args.requests):  # alternate, so drift affects every path alike
                for name, run in paths.items():
                    first, total, text = await run()
                    assert text == expected, f"the {name} answer came back changed"
                    times[name].append((first, total))
            await direct.close()
            await proxied.close()
    out: dict[str, Any] = {"tokens": len(pieces), "rate_tokens_per_s": args.rate, "requests": args.requests}
    for name, measured in times.items():
        out[name] = {"first_text_median_s": round(statistics.median(t for t, _ in measured), 4),
                     "total_median_s": round(statistics.median(w for _, w in measured), 4)}
    out["total_ratio_responses_vs_chat"] = round(out["responses"]["total_median_s"] / out["chat"]["total_median_s"],
                                                 4)
    out["total_ratio_responses_vs_direct"] = round(out["responses"]["total_median_s"]
                                                   / out["direct"]["total_median_s"], 4)
    out["first_text_added_vs_chat_s"] = round(out["responses"]["first_text_median_s"]
                                              - out["chat"]["first_text_median_s"], 4)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--tokens", type=int, default=120)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--requests", type=int, default=20)
    print(json.dumps(anyio.run(main, parser.parse_args()), indent=2))
