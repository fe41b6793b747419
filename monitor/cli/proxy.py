"""``interlock proxy``: serve an OpenAI-compatible API whose answers are monitored before they reach the client.

    interlock proxy --verifier arithmetic                                   # the embedded default model
    interlock proxy --base-url http://localhost:8001/v1 --verifier arithmetic   # any OpenAI-compatible server
    OPENAI_BASE_URL=http://127.0.0.1:8000/v1 my-agent ...                   # point any agent at it
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import anyio
from interlock.monitor.cli.options import add_base_url, add_max_tokens, add_model, add_verifiers

__all__ = ["add_arguments", "main"]

API_KEY_ENV = "INTERLOCK_PROXY_API_KEY"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_argument_group("backend (default: the embedded SmolLM2-135M-Instruct)")
    add_base_url(src, "forward to this OpenAI-compatible server (e.g. vLLM)")
    add_model(src, "with --base-url: the upstream model to use (default: the one each client names); "
                   "else the model id the proxy serves")
    src.add_argument("--upstream-api-key", metavar="KEY",
                     help="bearer token for the upstream (default: $OPENAI_API_KEY when set)")
    src.add_argument("--local", metavar="PATH", help="serve a local transformers model (folder or .gguf file)")
    src.add_argument("--temperature", type=float, default=0.0, help="sampling temperature of a local model")
    mon = parser.add_argument_group("monitoring")
    add_verifiers(mon, "a verifier to run on every answer (see `interlock verifiers`); default: those that "
                       "apply to each request's prompt (arithmetic always, game24 on a Game of 24 puzzle)")
    mon.add_argument("--hold", choices=("step", "end"), default="step",
                     help="release each step once its checks passed (default) or the whole answer at the end")
    mon.add_argument("--show-feedback", action="store_true",
                     help="keep the monitor's injected feedback in the answer the client gets")
    mon.add_argument("--max-interventions", type=int, default=8, help="interrupt an answer after this many")
    add_max_tokens(mon, None, "the total token budget of one request, rolled-back tokens included (as in "
                              "`interlock run`); a request's own max_tokens still caps the tokens it keeps")
    mon.add_argument("--max-total-tokens", type=int, dest="max_tokens", help=argparse.SUPPRESS)  # the old name
    srv = parser.add_argument_group("server")
    srv.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    srv.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    srv.add_argument("--api-key", metavar="KEY",
                     help=f"require 'Authorization: Bearer KEY' (default: ${API_KEY_ENV} when set)")
    srv.add_argument("--max-body-bytes", type=int, default=1 << 20, help="largest request body (default 1 MiB)")
    srv.add_argument("--request-timeout", type=float, default=300.0, help="seconds one answer may take")
    srv.add_argument("--max-request-tokens", type=int, default=4096, metavar="N",
                     help="most tokens a request may ask for with its max_tokens, and the default when it asks "
                          "nothing (default 4096)")
    srv.add_argument("--max-concurrent", type=int, metavar="N",
                     help="answers generated at once (default: 1 for a local model, unlimited upstream)")
    srv.add_argument("--log-requests", action="store_true", help="print uvicorn's access log")


def _positive(name: str, value: float | None) -> None:
    from interlock.monitor.errors import ConfigError

    if value is not None and value <= 0:
        raise ConfigError(f"--{name} must be positive, got {value}")


def main(args: argparse.Namespace) -> int:
    from interlock.monitor.cli.options import chosen_verifiers, max_tokens
    from interlock.monitor.errors import ConfigError
    from interlock.monitor.governor import Governor
    from interlock.monitor.governors.budget import TokenBudget
    from interlock.monitor.proxy import GeneratorBackend, ProxyConfig, UpstreamBackend, create_app
    from interlock.monitor.proxy.backends import Backend
    from interlock.monitor.registry import applicable_verifiers, create_verifier

    for name in ("max_body_bytes", "request_timeout", "max_request_tokens", "max_concurrent"):
        _positive(name.replace("_", "-"), getattr(args, name))
    budget = max_tokens(args)
    if args.base_url and args.local:
        raise ConfigError("--base-url and --local exclude each other: forward upstream or serve a local model")
    names = chosen_verifiers(args)
    chosen = "given"
    if names is None:  # those that apply to any prompt; a request cannot choose its own yet
        names, chosen = applicable_verifiers(""), "those that apply to every prompt; -v NAME to choose"
    if names == ["none"]:
        names = []
    for name in names:
        create_verifier(name)  # fail now, with the list of known names, rather than on the first request
    backend: Backend
    max_concurrent = args.max_concurrent
    if args.base_url:
        backend = UpstreamBackend(args.base_url, model=args.model, api_key=args.upstream_api_key)
        where = f"upstream {args.base_url}"
    else:
        from interlock.generators import Transformers

        print("interlock proxy: loading the model ...", file=sys.stderr, flush=True)
        generator = (Transformers(args.local, prompt_format="raw", temperature=args.temperature) if args.local
                     else Transformers.default(prompt_format="raw", temperature=args.temperature))
        backend = GeneratorBackend(generator, model=args.model or ("local" if args.local else "smollm2-135m"))
        where = f"local model {args.local or 'SmolLM2-135M-Instruct (embedded)'}"
        max_concurrent = max_concurrent or 1
    def governors(request: object) -> list[Governor]:
        return [TokenBudget(max_total=budget)] if budget else []

    config = ProxyConfig(backend, verifiers=list(names), governors=governors,
                         api_key=args.api_key or os.environ.get(API_KEY_ENV) or None, hold=args.hold,
                         show_feedback=args.show_feedback, max_interventions=args.max_interventions,
                         max_body_bytes=args.max_body_bytes, request_timeout=args.request_timeout,
                         max_tokens=args.max_request_tokens, max_concurrent=max_concurrent)
    if names:
        checked = f"verifiers: {', '.join(names)} ({chosen})"
    else:
        checked = "WARNING: no verifier: nothing in the answers is checked"
    anyio.run(_serve, create_app(config), args, f"-> {where}; {checked}")
    return 0


def _check_port(host: str, port: int) -> None:
    """Fail clearly when the port is taken (uvicorn would exit the process from inside the event loop)."""
    import socket

    from interlock.monitor.errors import ConfigError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(infos[0][4])
    except OSError as exc:
        raise ConfigError(f"could not listen on {host}:{port}: {exc.strerror or exc}") from None


async def _serve(app: Any, args: argparse.Namespace, what: str) -> None:
    """Serve until interrupted; the banner comes once the port is bound (a taken port is an error, no banner)."""
    from interlock.monitor.errors import ConfigError
    from interlock.monitor.proxy import serving

    _check_port(args.host, args.port)
    try:
        async with serving(app, host=args.host, port=args.port, log_level="info" if args.log_requests else "warning",
                           access_log=args.log_requests) as url:
            print(f"interlock proxy: {url}/v1 {what}", file=sys.stderr, flush=True)
            await anyio.sleep_forever()
    except BaseException as exc:  # uvicorn exits (SystemExit, in the server's task group) when it cannot bind
        failed = (exc.subgroup((SystemExit, RuntimeError, OSError)) is not None
                  if isinstance(exc, BaseExceptionGroup) else isinstance(exc, SystemExit | RuntimeError | OSError))
        if failed:
            raise ConfigError(f"could not listen on {args.host}:{args.port} (is the port taken?)") from None
        raise
