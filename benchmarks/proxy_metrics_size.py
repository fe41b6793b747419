"""How big client-chosen tool names can make the proxy's ``/metrics`` page: ``--names`` requests, half declaring a
tool of their own name, half making the upstream call one they never declared, and one call of a tool whose name is
``--long`` characters. Prints JSON: the page's size in bytes and its number of ``interlock_proxy_tool_calls_total``
series (issue 24 item 10: before the label bound, 300 names and a 100,000-character one made 301 series and a
255 KB page).

    python benchmarks/proxy_metrics_size.py [--names 300] [--long 100000]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from interlock.monitor.proxy import ProxyConfig, UpstreamBackend, create_app, serving

from tests.scripted_upstream import ScriptedUpstream, Turn


def call_what_is_asked(body: dict[str, Any]) -> Turn:
    """A model that calls the tool the request declares, or the one the user message names."""
    name = body["tools"][0]["function"]["name"] if body.get("tools") else body["messages"][0]["content"]
    return Turn("", [("call_1", name, {"amount": 1})])


async def measure(names: int, long: int) -> dict[str, int]:
    upstream = ScriptedUpstream(call_what_is_asked)
    tools = [f"tool_{i}" for i in range(names)] + ["x" * long]
    async with serving(upstream.app()) as up_url:
        config = ProxyConfig(UpstreamBackend(up_url + "/v1"), tool_verifiers={"transfer": [lambda a: None]},
                             max_interventions=0)
        async with serving(create_app(config)) as url, httpx.AsyncClient(timeout=60) as http:
            for i, name in enumerate(tools):
                body: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": name}]}
                if i % 2 == 0 and len(name) <= 64:
                    body["tools"] = [{"type": "function", "function": {"name": name}}]
                await http.post(url + "/v1/chat/completions", json=body)
            page = (await http.get(url + "/metrics")).text
    series = sum(1 for line in page.splitlines() if line.startswith("interlock_proxy_tool_calls_total"))
    return {"requests": len(tools), "page_bytes": len(page.encode()), "tool_series": series}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--names", type=int, default=300)
    parser.add_argument("--long", type=int, default=100_000)
    args = parser.parse_args()
    print(json.dumps(anyio.run(measure, args.names, args.long)))


if __name__ == "__main__":
    main()
