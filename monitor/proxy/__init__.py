"""``interlock proxy``: an OpenAI-compatible HTTP server that monitors every answer before it reaches the client
(chat completions, completions and the Responses API).

Point any agent or SDK that speaks the OpenAI API at it (change the base URL): it forwards to an upstream server or
a local model, runs the configured verifiers and governors on each answer, applies rollbacks and interrupts, and
streams only verified text. Importing this package imports Starlette; ``import monitor`` does not.

    app = create_app(ProxyConfig(UpstreamBackend("http://localhost:8001/v1"), verifiers=["arithmetic"],
                                 tool_verifiers={"transfer": [lambda args: args["amount"] <= 100]}))
    async with serving(app) as base_url:
        client = openai.AsyncOpenAI(base_url=base_url + "/v1", api_key="none")
"""

from __future__ import annotations

from interlock.monitor.proxy.app import ProxyConfig, create_app
from interlock.monitor.proxy.backends import Backend, GeneratorBackend, Prepared, RequestGenerator, UpstreamBackend
from interlock.monitor.proxy.metrics import ProxyMetrics
from interlock.monitor.proxy.models import ChatMessage, ChatRequest, CompletionRequest, ProxyError
from interlock.monitor.proxy.release import Piece, ReleasedRun, Thought, finish_reason
from interlock.monitor.proxy.responses_request import ResponsesRequest, parse_responses
from interlock.monitor.proxy.server import free_port, serve, serve_workers, serving
from interlock.monitor.proxy.tools import ToolCallVerifier, load_tool_checks

__all__ = [
    "Backend",
    "ChatMessage",
    "ChatRequest",
    "CompletionRequest",
    "GeneratorBackend",
    "Piece",
    "Prepared",
    "ProxyConfig",
    "ProxyError",
    "ProxyMetrics",
    "ReleasedRun",
    "RequestGenerator",
    "ResponsesRequest",
    "Thought",
    "ToolCallVerifier",
    "UpstreamBackend",
    "create_app",
    "finish_reason",
    "free_port",
    "load_tool_checks",
    "parse_responses",
    "serve",
    "serve_workers",
    "serving",
]
