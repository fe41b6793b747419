"""Trace a monitored run with OpenTelemetry and print its spans as a tree (needs ``pip install 'interlock[otel]'``).

A scripted model writes a wrong sum (the monitor rolls it back), then calls a guarded tool twice: once with an amount
over the limit (refused), once within it. Every check, the rollback and both tool calls are spans under the run's
``chat`` span; this script keeps them in memory and prints them. With ``--otlp`` they also go to an OTLP collector
(``OTEL_EXPORTER_OTLP_ENDPOINT``, default http://localhost:4318), e.g. Jaeger (see docs/proxy.md).

    python examples/tracing.py
    python examples/tracing.py --otlp
"""

from __future__ import annotations

import argparse
from typing import Any

import anyio
import interlock.telemetry
from interlock import Fail, Monitor, Step, guard_tool, verifier
from interlock.generators import Scripted
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

SHOWN = ("interlock.outcome", "interlock.interventions", "interlock.tokens.kept", "interlock.tokens.discarded",
         "interlock.check.verdict", "interlock.check.message", "interlock.intervention.position",
         "interlock.tool.allowed", "interlock.tool.refusal.reasons")


@verifier(name="sums")
def sums(step: Step) -> Fail | None:
    if "3 + 4 = 8" in step.text:
        start = step.text.index("3 + 4 = 8")
        return Fail("3 + 4 is 7, not 8", span=step.to_trace(start, start + 9))
    return None


def at_most_100(arguments: dict[str, Any]) -> Fail | None:
    return Fail(f"{arguments['amount']} is over the limit of 100") if arguments["amount"] > 100 else None


def pay(amount: int) -> str:
    """Pay Bob."""
    return f"paid {amount}"


def tree(spans: list[ReadableSpan]) -> list[str]:
    """The spans as indented lines, children in the order they started."""
    by_parent: dict[int | None, list[ReadableSpan]] = {}
    ids = {s.context.span_id for s in spans if s.context is not None}
    for s in spans:
        parent = s.parent.span_id if s.parent is not None and s.parent.span_id in ids else None
        by_parent.setdefault(parent, []).append(s)
    lines: list[str] = []

    def walk(parent: int | None, depth: int) -> None:
        for s in sorted(by_parent.get(parent, []), key=lambda s: s.start_time or 0):
            shown = [f"{k.rsplit('.', 1)[-1]}={list(v) if isinstance(v, tuple) else v}"
                     for k, v in (s.attributes or {}).items() if k in SHOWN]
            lines.append("  " * depth + f"{s.name} [{s.kind.name}] " + " ".join(shown))
            walk(s.context.span_id if s.context is not None else None, depth + 1)

    walk(None, 0)
    return lines


async def main(otlp: bool) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    if otlp:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    interlock.telemetry.enable(tracer_provider=provider)
    model = Scripted({"": "Tom has 3 apples.\nHe buys 4 more, so 3 + 4 = 8.\n",
                      "Let me redo this step.\n": "He buys 4 more, so 3 + 4 = 7.\nI will pay 7.\n"})
    async with Monitor(model, [sums], meta={"model": "scripted-demo"}).stream("How many apples?") as run:
        async for _ in run:
            pass
        guarded = guard_tool(pay, run=run, verifiers=[at_most_100])
        await guarded.call({"amount": 700}, call_id="call_1")  # refused: over the limit
        await guarded.call({"amount": 7}, call_id="call_2")
    print(run.result.text)
    print("\n".join(tree(list(exporter.get_finished_spans()))))
    provider.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--otlp", action="store_true", help="also export to the OTLP collector of the OTEL_* variables")
    anyio.run(main, parser.parse_args().otlp)
