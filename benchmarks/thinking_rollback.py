"""What a rollback inside the thinking costs over HTTP, by path: a chat prefill (the thinking in a final assistant
message, continued) or ``/v1/completions`` with the chat template rendered here.

For thinkings of several lengths, against a loopback server that speaks vLLM's format (the scripted server of the
tests, a DeepSeek-R1-style template), it measures per continuation request: the bytes sent, the client's CPU to
build the request (template rendering included), and the wall time of the whole request (its answer streamed),
alternating the two paths. Prints JSON.

    python benchmarks/thinking_rollback.py [--lengths 1000,10000,100000] [--repeats 15]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from interlock import THINKING, GenerationRequest
from interlock.generators import OpenAICompatible
from interlock.monitor.proxy import serving

from tests.reasoning_servers import TEMPLATE, ReasoningServer, ThinkingModel


async def measure(lengths: list[int], repeats: int) -> dict[str, object]:
    server = ReasoningServer("vllm", ThinkingModel({"": "7 * 8 = 56.\n</think>\n\nThe answer is 58."}))
    out: dict[str, object] = {}
    async with serving(server.app()) as url:
        generators = {"prefill": OpenAICompatible(url, "reasoner", thinking_continuation="prefill"),
                      "completions": OpenAICompatible(url, "reasoner", chat_template=TEMPLATE)}
        for length in lengths:
            line = "Let me check the product again, carefully.\n"
            thinking = (line * (length // len(line) + 1))[:length]
            request = GenerationRequest("What is 7 * 8 + 2?", prefix=thinking, phases=((0, THINKING),))
            rows: dict[str, dict[str, list[float]]] = {name: {"build_us": [], "wall_ms": [], "bytes": []}
                                                        for name in generators}
            for i in range(repeats):
                for name in (list(generators) if i % 2 == 0 else list(generators)[::-1]):
                    gen = generators[name]
                    t = time.process_time()
                    plan = gen.plan(request)
                    rows[name]["build_us"].append((time.process_time() - t) * 1e6)
                    rows[name]["bytes"].append(len(json.dumps(plan.body, ensure_ascii=False).encode()))
                    t = time.perf_counter()
                    text = "".join([c.text async for c in gen.stream(request)])
                    rows[name]["wall_ms"].append((time.perf_counter() - t) * 1e3)
                    assert "The answer is 58." in text
            out[str(length)] = {name: {k: round(statistics.median(v), 1) for k, v in r.items()}
                                for name, r in rows.items()}
        for gen in generators.values():
            await gen.aclose()
    return {"thinking_chars": out, "paths": ["/v1/chat/completions (prefill)", "/v1/completions (rendered)"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lengths", default="1000,10000,100000")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    lengths = [int(x) for x in args.lengths.split(",")]
    print(json.dumps(anyio.run(measure, lengths, args.repeats), indent=2))


if __name__ == "__main__":
    main()
