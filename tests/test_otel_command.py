"""``--otel`` on the command line: ``interlock run`` and ``interlock proxy`` export their spans over OTLP/HTTP to a
collector on loopback (a real receiver decoding the OTLP protobuf), configured by the standard OTEL_* variables."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import openai
import pytest
from interlock.monitor.proxy import free_port, serving
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.scripted_upstream import ScriptedUpstream, Turn

TESTS = Path(__file__).resolve().parent
INTERNAL, SERVER = 1, 2  # OTLP's span kinds


def _value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    return getattr(v, kind) if kind else None


class Collector:
    """An OTLP/HTTP trace receiver: every exported span with its resource's attributes."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []

    def app(self) -> Starlette:
        async def traces(request: Request) -> Response:
            assert request.headers["content-type"] == "application/x-protobuf"
            message = ExportTraceServiceRequest.FromString(await request.body())
            for rs in message.resource_spans:
                resource = {kv.key: _value(kv.value) for kv in rs.resource.attributes}
                for scope in rs.scope_spans:
                    for span in scope.spans:
                        self.spans.append({
                            "name": span.name, "kind": span.kind, "scope": scope.scope.name, "resource": resource,
                            "trace_id": span.trace_id.hex(), "span_id": span.span_id.hex(),
                            "parent": span.parent_span_id.hex(), "status": span.status.code,
                            "attributes": {kv.key: _value(kv.value) for kv in span.attributes}})
            return Response(ExportTraceServiceResponse().SerializeToString(), media_type="application/x-protobuf")

        return Starlette(routes=[Route("/v1/traces", traces, methods=["POST"])])

    def named(self, name: str) -> dict[str, Any]:
        (found,) = [s for s in self.spans if s["name"] == name]
        return found


@pytest.fixture
async def collector() -> AsyncIterator[tuple[Collector, str]]:
    c = Collector()
    async with serving(c.app()) as url:
        yield c, url


def _env(endpoint: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return {**env, "PYTHONPATH": str(TESTS), "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, **extra}


async def test_run_with_otel_exports_the_run_to_the_collector(collector: tuple[Collector, str]) -> None:
    received, endpoint = collector
    done = await anyio.run_process(
        [sys.executable, "-m", "interlock", "run", "What is 2 + 2?", "--generator", "scripted_cli:instant",
         "-v", "arithmetic", "--json", "--otel"],
        env=_env(endpoint, OTEL_SERVICE_NAME="reasoner", OTEL_TRACES_EXPORTER="otlp,console"), cwd=TESTS,
        check=False)
    assert done.returncode == 0, done.stderr.decode()
    result = json.loads(done.stdout)  # the console exporter writes to stderr: stdout stays the command's JSON
    assert result["outcome"] == "verified" and len(result["interventions"]) == 1
    assert '"name": "chat scripted_cli:instant"' in done.stderr.decode()
    run = received.named("chat scripted_cli:instant")
    assert (run["kind"], run["scope"], run["parent"], run["resource"]["service.name"]) == (
        INTERNAL, "interlock", "", "reasoner")
    attributes = run["attributes"]
    assert {k: attributes[k] for k in ("gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model",
                                       "interlock.outcome", "interlock.run_id", "interlock.rollbacks",
                                       "gen_ai.response.finish_reasons")} == {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "interlock",
        "gen_ai.request.model": "scripted_cli:instant", "interlock.outcome": "verified",
        "interlock.run_id": result["run_id"], "interlock.rollbacks": 1, "gen_ai.response.finish_reasons": ["stop"]}
    rollback = received.named("rollback arithmetic")
    assert (rollback["parent"], rollback["trace_id"]) == (run["span_id"], run["trace_id"])
    checks = [s for s in received.spans if s["name"] == "check arithmetic"]
    assert checks and all(s["parent"] == run["span_id"] for s in checks)


@pytest.mark.slow
async def test_proxy_with_otel_exports_each_request_in_the_clients_trace(collector: tuple[Collector, str]) -> None:
    received, endpoint = collector
    upstream = ScriptedUpstream(lambda body: Turn("So 2 + 2 = 4.\nDone."))
    port = free_port()
    async with serving(upstream.app()) as up_url:
        process = await anyio.open_process(
            [sys.executable, "-m", "interlock", "proxy", "--base-url", up_url + "/v1", "--port", str(port),
             "-v", "arithmetic", "--otel"], env=_env(endpoint), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            async with httpx.AsyncClient() as http:
                while True:
                    try:
                        if (await http.get(f"http://127.0.0.1:{port}/health", timeout=1)).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    assert process.returncode is None and time.monotonic() < deadline, "the proxy did not start"
                    await anyio.sleep(0.1)
            traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            async with openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0) as c:
                answer = await c.chat.completions.create(model="scripted-up",
                                                         messages=[{"role": "user", "content": "2 + 2?"}],
                                                         extra_headers={"traceparent": traceparent})
            assert answer.choices[0].message.content == "So 2 + 2 = 4.\nDone."
        finally:
            process.send_signal(signal.SIGINT)  # the proxy flushes its spans as it stops
            with anyio.fail_after(30):
                await process.wait()
    run = received.named("chat scripted-up")
    assert (run["kind"], run["trace_id"], run["parent"], run["resource"]["service.name"]) == (
        SERVER, "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "interlock-proxy")
    assert run["attributes"]["gen_ai.response.id"] == answer.id
    assert run["attributes"]["gen_ai.provider.name"] == "openai"
    assert [s["name"] for s in received.spans if s["parent"] == run["span_id"]] == ["check arithmetic"] * 2
