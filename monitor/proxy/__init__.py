"""``interlock proxy``: an OpenAI-compatible HTTP server that monitors every answer before it reaches the client.

Point any agent or SDK that speaks the OpenAI API at it (change the base URL): it forwards to an upstream server or
a local model, runs the configured verifiers and governors on each answer, applies rollbacks and interrupts, and
streams only verified text. Importing this package imports Starlette; ``import monitor`` does not.

    app = create_app(ProxyConfig(GeneratorBackend(generator), verifiers=["arithmetic"]))
    async with serving(app) as base_url:
        client = openai.AsyncOpenAI(base_url=base_url + "/v1", api_key="none")
"""

from __future__ import annotations

from interlock.monitor.proxy.app import ProxyConfig, create_app
from interlock.monitor.proxy.backends import Backend, GeneratorBackend, Prepared, RequestGenerator, UpstreamBackend
from interlock.monitor.proxy.models import ChatMessage, ChatRequest, CompletionRequest, ProxyError
from interlock.monitor.proxy.release import ReleasedRun, finish_reason
from interlock.monitor.proxy.server import free_port, serve, serving

__all__ = [
    "Backend",
    "ChatMessage",
    "ChatRequest",
    "CompletionRequest",
    "GeneratorBackend",
    "Prepared",
    "ProxyConfig",
    "ProxyError",
    "ReleasedRun",
    "RequestGenerator",
    "UpstreamBackend",
    "create_app",
    "finish_reason",
    "free_port",
    "serve",
    "serving",
]
