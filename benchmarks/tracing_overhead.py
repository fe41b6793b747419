"""What OpenTelemetry tracing costs a monitored run, and that it costs nothing while it is off. Prints JSON.

- ``in_process``: the trace of benchmarks/overhead.py (~2,000 word-sized tokens of clean step-by-step arithmetic, a
  cheap sums check on every step) unmonitored, monitored with tracing off, and monitored with tracing on (an
  OpenTelemetry SDK provider with a batch span processor and an exporter that drops what it gets: the cost of
  making and queueing the spans), alternating; as fast as possible (wall and CPU seconds per run) and at a fixed
  token rate (what a model produces).
- ``proxy``: streamed answers from benchmarks/proxy_overhead.py's upstream, direct, through the proxy with tracing
  off, and through the proxy with tracing on, one request at a time, alternating.
- ``baseline`` (with ``--baseline DIR``, a checkout of interlock without tracing, e.g. ``git archive main``):
  benchmarks/overhead.py and benchmarks/proxy_overhead.py run in subprocesses against DIR's interlock and against
  this one, alternating, so the monitor's own overhead with tracing off is compared side by side.

    python benchmarks/tracing_overhead.py [--tokens 2000] [--rate 200] [--repeats 7] [--requests 20]
                                          [--baseline DIR] [--baseline-rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import openai
from interlock import Monitor
from interlock.generators import Scripted
from interlock.monitor import telemetry
from interlock.monitor.proxy import ProxyConfig, UpstreamBackend, create_app, serving
from interlock.monitor.scan import pseudo_tokens
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import overhead  # noqa: E402  (benchmarks/overhead.py: the same trace and check)
import proxy_overhead  # noqa: E402


class Dropping(SpanExporter):
    """Counts the spans it is handed and drops them: what is measured is making and queueing them."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def sdk() -> tuple[TracerProvider, Dropping]:
    exporter = Dropping()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider, exporter


async def timed(fn: Callable[[], Awaitable[Any]]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    await fn()
    return time.perf_counter() - wall, time.process_time() - cpu


async def in_process(text: str, rate: float | None, repeats: int, provider: TracerProvider) -> dict[str, Any]:
    async def monitored(traced: bool) -> None:
        monitor = Monitor(Scripted(text, rate=rate), [overhead.sums], tracer_provider=provider if traced else None)
        result = await monitor.run("q")
        assert result.text == text and not result.interventions

    variants: dict[str, Callable[[], Awaitable[Any]]] = {
        "unmonitored": lambda: overhead.unmonitored(text, rate),
        "tracing_off": lambda: monitored(False),
        "tracing_on": lambda: monitored(True),
    }
    wall: dict[str, list[float]] = {k: [] for k in variants}
    cpu: dict[str, list[float]] = {k: [] for k in variants}
    names = list(variants)
    for i in range(repeats + 1):  # the first round warms up
        for k in range(len(names)):
            name = names[(k + i) % len(names)]  # rotate the order: drift hits every variant alike
            w, c = await timed(variants[name])
            if i:
                wall[name].append(w)
                cpu[name].append(c)
    w = {k: statistics.median(v) for k, v in wall.items()}
    c = {k: statistics.median(v) for k, v in cpu.items()}
    return {"rate_tokens_per_s": rate, "wall_s": {k: round(v, 4) for k, v in w.items()},
            "cpu_s": {k: round(v, 4) for k, v in c.items()},
            "ratio_off_vs_unmonitored": round(w["tracing_off"] / w["unmonitored"], 4),
            "ratio_on_vs_unmonitored": round(w["tracing_on"] / w["unmonitored"], 4),
            "ratio_on_vs_off": round(w["tracing_on"] / w["tracing_off"], 4),
            "cpu_ratio_on_vs_off": round(c["tracing_on"] / c["tracing_off"], 4)}


async def proxy(tokens: int, rate: float, requests: int, provider: TracerProvider) -> dict[str, Any]:
    pieces = proxy_overhead.answer(tokens)
    expected = "".join(pieces)
    figures: dict[str, list[tuple[float, float]]] = {"direct": [], "tracing_off": [], "tracing_on": []}
    async with serving(proxy_overhead.upstream_app(pieces, rate), log_level="error") as upstream:
        apps = {name: create_app(ProxyConfig(UpstreamBackend(upstream + "/v1", model="bench"),
                                             verifiers=[proxy_overhead.sums],
                                             tracer_provider=provider if name == "tracing_on" else None))
                for name in ("tracing_off", "tracing_on")}
        async with serving(apps["tracing_off"], log_level="error") as off, \
                serving(apps["tracing_on"], log_level="error") as on:
            clients = {name: openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=120)
                       for name, url in (("direct", upstream), ("tracing_off", off), ("tracing_on", on))}
            for client in clients.values():
                await proxy_overhead.one(client)  # warm up
            names = list(clients)
            for i in range(requests):
                for k in range(len(names)):
                    name = names[(k + i) % len(names)]
                    first, total, text = await proxy_overhead.one(clients[name])
                    assert text == expected, "an answer came back changed"
                    figures[name].append((first, total))
            for client in clients.values():
                await client.close()
    out: dict[str, Any] = {"tokens": len(pieces), "rate_tokens_per_s": rate, "requests": requests}
    for name, rows in figures.items():
        out[name] = {"ttft_median_s": round(statistics.median(r[0] for r in rows), 4),
                     "total_median_s": round(statistics.median(r[1] for r in rows), 4)}
    for name in ("tracing_off", "tracing_on"):
        out[f"total_ratio_{name}_vs_direct"] = round(out[name]["total_median_s"] / out["direct"]["total_median_s"], 4)
    out["total_ratio_on_vs_off"] = round(out["tracing_on"]["total_median_s"] / out["tracing_off"]["total_median_s"],
                                         4)
    return out


def _layout(checkout: Path, into: Path) -> Path:
    """The ``interlock`` namespace of a checkout as links (as .ci/typecheck lays it out), for PYTHONPATH."""
    package = into / "interlock"
    package.mkdir(parents=True)
    for f in (checkout / "monitor" / "_front").iterdir():
        (package / f.name).symlink_to(f)
    for name in ("monitor", "verifiers", "generators"):
        (package / name).symlink_to(checkout / name)
    return into


def _script(layout: Path, script: Path, args: Sequence[str]) -> dict[str, Any]:
    """Run a benchmark script with the interlock laid out in ``layout``; checks which interlock it imported."""
    code = ("import runpy, sys, interlock.monitor as m\n"
            "print('interlock from', m.__file__, file=sys.stderr)\n"
            f"sys.argv = [{str(script)!r}, *{list(args)!r}]\n"
            f"runpy.run_path({str(script)!r}, run_name='__main__')\n")
    env = {**os.environ, "PYTHONPATH": str(layout)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True,
                          timeout=1800, cwd=tempfile.gettempdir())
    loaded = done.stderr.split("interlock from ", 1)[1].split()[0]
    assert loaded.startswith(str(layout)), f"the benchmark imported {loaded}, not the interlock in {layout}"
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def baseline(checkout: Path, rounds: int) -> dict[str, Any]:
    """overhead.py and proxy_overhead.py against ``checkout`` and this checkout, alternating."""
    here = HERE.parent
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {"baseline": {"overhead": [], "proxy": []},
                                                        "this": {"overhead": [], "proxy": []}}
    with tempfile.TemporaryDirectory() as tmp:
        layouts = {"baseline": _layout(checkout.resolve(), Path(tmp) / "baseline"),
                   "this": _layout(here, Path(tmp) / "this")}
        for i in range(rounds):
            for name in (("baseline", "this") if i % 2 == 0 else ("this", "baseline")):
                runs[name]["overhead"].append(_script(layouts[name], HERE / "overhead.py",
                                                      ["--tokens", "1000", "--rate", "400", "--repeats", "3",
                                                       "--bookkeeping-runs", "11"]))
                runs[name]["proxy"].append(_script(layouts[name], HERE / "proxy_overhead.py",
                                                   ["--requests", "10", "--concurrent", "20"]))
    out: dict[str, Any] = {"checkout": str(checkout), "rounds": rounds}
    for name, got in runs.items():
        o, p = got["overhead"], got["proxy"]
        out[name] = {
            "fixed_rate_ratio": [r["fixed_rate"]["ratio"] for r in o],
            "as_fast_as_possible_ratio": [r["as_fast_as_possible"]["ratio"] for r in o],
            "bookkeeping_us_per_piece": [r["bookkeeping_no_verifier"]["bookkeeping_us_per_piece"] for r in o],
            "monitor_cost_per_token_us": [r["monitor_cost_per_token_us"] for r in o],
            "proxy_total_ratio_vs_direct": [r["total_ratio_proxy_vs_direct"] for r in p],
            "proxy_ttft_added_s": [r["ttft_added_s"] for r in p],
            "proxy_concurrent_ratio_vs_direct": [r["concurrent_ratio_proxy_vs_direct"] for r in p],
        }
        out[name]["medians"] = {k: round(statistics.median(v), 4) for k, v in out[name].items()}
    return out


async def main(args: argparse.Namespace) -> dict[str, Any]:
    text = overhead.make_trace(args.tokens)
    provider, exporter = sdk()
    report: dict[str, Any] = {"benchmark": "tracing_overhead", "tokens": len(list(pseudo_tokens(text))),
                              "steps_checked_per_run": text.count("\n")}
    report["in_process"] = {"as_fast_as_possible": await in_process(text, None, args.repeats, provider),
                            "fixed_rate": await in_process(text, args.rate, max(3, args.repeats // 2), provider)}
    report["proxy"] = await proxy(args.proxy_tokens, args.rate, args.requests, provider)
    provider.force_flush()
    report["spans_exported"] = exporter.spans
    telemetry.disable()
    provider.shutdown()
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--proxy-tokens", type=int, default=120)
    parser.add_argument("--baseline", type=Path, help="a checkout of interlock to compare with (tracing off)")
    parser.add_argument("--baseline-rounds", type=int, default=3)
    options = parser.parse_args()
    result = anyio.run(main, options)
    if options.baseline is not None:
        result["baseline"] = baseline(options.baseline, options.baseline_rounds)
    print(json.dumps(result, indent=2))
