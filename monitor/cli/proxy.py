"""``interlock proxy``: serve an OpenAI-compatible API whose answers are monitored before they reach the client.

    interlock proxy --verifier arithmetic                                   # the embedded default model
    interlock proxy --base-url http://localhost:8001/v1 --verifier arithmetic   # any OpenAI-compatible server
    OPENAI_BASE_URL=http://127.0.0.1:8000/v1 my-agent ...                   # point any agent at it
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from typing import TYPE_CHECKING, Any

import anyio
from interlock.monitor.cli.options import add_base_url, add_max_tokens, add_model, add_verifiers
from interlock.monitor.cli.otel import add_otel, start_otel, traced
from interlock.monitor.cli.probe import add_probe, probe_generator_options, probe_governor

if TYPE_CHECKING:
    from interlock.monitor.proxy import ProxyConfig

__all__ = ["add_arguments", "build_config", "main", "worker_app"]

API_KEY_ENV = "INTERLOCK_PROXY_API_KEY"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_argument_group("backend (default: the embedded SmolLM2-135M-Instruct)")
    add_base_url(src, "forward to this OpenAI-compatible server (e.g. vLLM)")
    add_model(src, "with --base-url: the upstream model to use (default: the one each client names); "
                   "else the model id the proxy serves")
    src.add_argument("--upstream-api-key", metavar="KEY",
                     help="bearer token for the upstream (default: $OPENAI_API_KEY when set)")
    src.add_argument("--responses-upstream", choices=("auto", "chat", "responses"), default="auto",
                     help="with --base-url: how /v1/responses reaches the upstream: over its chat completions "
                          "(chat), its own /v1/responses (responses), or chat falling back to /v1/responses for a "
                          "model whose chat completions answer 404 (auto, the default)")
    src.add_argument("--local", metavar="PATH", help="serve a local transformers model (folder or .gguf file)")
    src.add_argument("--temperature", type=float, default=0.0, help="sampling temperature of a local model")
    mon = parser.add_argument_group("monitoring")
    add_verifiers(mon, "a verifier to run on every answer (see `interlock verifiers`); default: those that "
                       "apply to every prompt, chosen once when the proxy starts (arithmetic; a verifier for some "
                       "prompts only, such as game24, must be named)")
    mon.add_argument("--hold", choices=("step", "end"), default="step",
                     help="release each step once its checks passed (default) or the whole answer at the end")
    mon.add_argument("--show-feedback", action="store_true",
                     help="keep the monitor's injected feedback in the answer the client gets")
    mon.add_argument("--max-interventions", type=int, default=8, help="interrupt an answer after this many")
    add_max_tokens(mon, None, "the total token budget of one request, rolled-back tokens included (as in "
                              "`interlock run`); a request's own max_tokens still caps the tokens it keeps")
    mon.add_argument("--max-total-tokens", type=int, dest="max_tokens", help=argparse.SUPPRESS)  # the old name
    add_probe(mon)
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
    add_otel(srv)
    _add_agent_and_scale_arguments(parser)
    _add_policy_arguments(parser)


# -- tool-call policies (interlock.monitor.policies) ---------------------------------------------------------------
def _add_policy_arguments(parser: argparse.ArgumentParser) -> None:
    policies = parser.add_argument_group("tool-call policies")
    policies.add_argument("--policy", metavar="POLICY",
                          help="check every tool call a model makes against this policy (file.py[:NAME] or "
                               "module[:NAME]), in the conversation the request carries; a refused call is rolled "
                               "back and the model reads the reason")
    policies.add_argument("--policy-state", metavar="STATE",
                          help="the state the policy reads (a JSON or YAML file; default: empty)")
    policies.add_argument("--released-calls", action="store_true",
                          help="keep the tool calls released to clients and serve POST "
                               "/v1/interlock/released-calls/claim, so `interlock mcp --proxy` can check that a "
                               "call came from reasoning this proxy checked")


def _policy_config(args: argparse.Namespace) -> dict[str, Any]:
    """The ProxyConfig fields of the policy options (loads the policy and its state: errors name the option)."""
    from interlock.monitor.errors import ConfigError

    out: dict[str, Any] = {}
    policy_spec = getattr(args, "policy", None)
    state_file = getattr(args, "policy_state", None)
    if state_file and not policy_spec:
        raise ConfigError("--policy-state is the state a policy reads: give --policy too")
    if policy_spec:
        from interlock.monitor.policies import State, load_policy
        from interlock.monitor.policies.proxy import ProxyPolicy

        state = State.load(state_file) if state_file else State({})
        out["request_tool_checks"] = ProxyPolicy(load_policy(policy_spec), state).checks
    if getattr(args, "released_calls", False):
        from interlock.monitor.proxy.ledger import CallLedger

        out["released_calls"] = CallLedger()
    return out


# -- tool calls, streaming and scale-out (the `proxy` worktree's flags; kept apart from the ones above) ------------
def _add_agent_and_scale_arguments(parser: argparse.ArgumentParser) -> None:
    tools = parser.add_argument_group("tool calls")
    tools.add_argument("--tool-verifier", action="append", default=[], metavar="[TOOL=]CHECK",
                       help="check the arguments of calls of TOOL (every tool without TOOL=) before a call reaches "
                            "the client: a registry name (a verifier scanned over the arguments), module:function "
                            "or file.py:function (a function of the arguments returning a verdict); repeat for more")
    tools.add_argument("--tool-check-timeout", type=float, default=10.0, metavar="SECONDS",
                       help="longest a tool check may take; past it the call is refused (default 10)")
    tools.add_argument("--undeclared-tools", choices=("refuse", "check"), default="refuse",
                       help="a call of a tool the request did not declare (or no tools at all): refuse it with "
                            "feedback naming the tools there are (default), or check it with the --tool-verifier "
                            "checks of its name and of every tool, like a declared one")
    tools.add_argument("--tokenizer", metavar="PATH",
                       help="with --base-url: count streamed tokens with this local tokenizer (a folder, or a Hub id "
                            "already in the local cache) until the upstream's own count (usage) corrects them")
    scale = parser.add_argument_group("streams and scale-out")
    scale.add_argument("--keepalive", type=float, default=10.0, metavar="SECONDS",
                       help="send an SSE comment this often while a stream's text is held back (default 10)")
    scale.add_argument("--header-timeout", type=float, default=10.0, metavar="SECONDS",
                       help="close a connection whose request headers have not all arrived within this (default 10)")
    scale.add_argument("--body-timeout", type=float, default=30.0, metavar="SECONDS",
                       help="answer 408 and close the connection when a request's body has not all arrived this long "
                            "after its headers (default 30)")
    scale.add_argument("--max-connections", type=int, metavar="N",
                       help="connections held open at once, per worker; past it the one waiting longest on its "
                            "client is closed (default: from the file-descriptor limit, which the proxy raises to "
                            "its hard limit: that limit less a third, at most 4,096, for the upstream and files)")
    scale.add_argument("--workers", type=int, default=1, metavar="N",
                       help="serve from N processes behind the port, each monitoring its own requests; /metrics "
                            "adds up all of them (default 1)")


WORKER_ARGS_ENV = "INTERLOCK_PROXY_WORKER_ARGS"


def _positive(name: str, value: float | None) -> None:
    from interlock.monitor.errors import ConfigError

    if value is not None and value <= 0:
        raise ConfigError(f"--{name} must be positive, got {value}")


def main(args: argparse.Namespace) -> int:
    from interlock.monitor.proxy import create_app
    from interlock.monitor.proxy.server import raise_file_limit

    if args.workers > 1:
        return _serve_workers(args)
    raise_file_limit()  # before any connection: a thousand slow clients must not exhaust the default 1,024
    config, where, checked = build_config(args)
    with traced(args, "interlock-proxy"):
        anyio.run(_serve, create_app(config), args, f"-> {where}; {checked}")
    return 0


def _chosen_names(args: argparse.Namespace) -> tuple[list[str], str]:
    """The verifiers every answer runs, and how they were chosen (given, or those that apply to any prompt)."""
    from interlock.monitor.cli.options import chosen_verifiers
    from interlock.monitor.registry import applicable_verifiers

    names = chosen_verifiers(args)
    chosen = "given"
    if names is None:  # chosen once for the process: those that apply to any prompt (a request cannot choose)
        names, chosen = applicable_verifiers(""), "those that apply to every prompt; -v NAME to choose"
    if names == ["none"]:
        names = []
    return list(names), chosen


def _validate(args: argparse.Namespace) -> list[str]:
    """The checks that need no backend: fail before serving, with a message naming the option. Returns the
    verifiers' names."""
    from interlock.monitor.cli.options import max_tokens
    from interlock.monitor.errors import ConfigError
    from interlock.monitor.proxy.tools import load_tool_checks
    from interlock.monitor.registry import create_verifier

    for name in ("max_body_bytes", "request_timeout", "max_request_tokens", "max_concurrent",
                 "tool_check_timeout", "keepalive", "header_timeout", "body_timeout", "max_connections",
                 "workers"):
        _positive(name.replace("_", "-"), getattr(args, name))
    max_tokens(args)  # a bad --max-tokens or INTERLOCK_MAX_TOKENS fails here
    if args.base_url and args.local:
        raise ConfigError("--base-url and --local exclude each other: forward upstream or serve a local model")
    names, _ = _chosen_names(args)
    for name in names:
        create_verifier(name)  # fail now, with the list of known names, rather than on the first request
    load_tool_checks(args.tool_verifier)
    _policy_config(args)  # a policy or state that does not load fails here, before serving
    if getattr(args, "responses_upstream", "auto") != "auto" and not args.base_url:
        raise ConfigError("--responses-upstream says how /v1/responses reaches an upstream: use it with --base-url")
    if getattr(args, "tokenizer", None) and not args.base_url:
        raise ConfigError("--tokenizer counts an upstream's tokens: use it with --base-url (a local model counts "
                          "its own)")
    return names


def build_config(args: argparse.Namespace) -> tuple[ProxyConfig, str, str]:
    """The proxy's configuration from the command line, a description of its backend, and of what it checks."""
    from interlock.monitor.cli.options import max_tokens
    from interlock.monitor.governor import Governor
    from interlock.monitor.governors.budget import TokenBudget
    from interlock.monitor.proxy import GeneratorBackend, ProxyConfig, UpstreamBackend
    from interlock.monitor.proxy.backends import Backend
    from interlock.monitor.proxy.tools import load_tool_checks

    _validate(args)
    names, chosen = _chosen_names(args)
    budget = max_tokens(args)
    backend: Backend
    max_concurrent = args.max_concurrent
    if args.base_url:
        counter = {"count_tokens": local_token_counter(args.tokenizer)} if getattr(args, "tokenizer", None) else {}
        backend = UpstreamBackend(args.base_url, model=args.model, api_key=args.upstream_api_key,
                                  options={**counter, **probe_generator_options(args)},
                                  responses=getattr(args, "responses_upstream", "auto"))
        where = f"upstream {backend.shown_url}"
    else:
        from interlock.generators import Transformers

        print("interlock proxy: loading the model ...", file=sys.stderr, flush=True)
        generator = (Transformers(args.local, prompt_format="raw", temperature=args.temperature) if args.local
                     else Transformers.default(prompt_format="raw", temperature=args.temperature))
        backend = GeneratorBackend(generator, model=args.model or ("local" if args.local else "smollm2-135m"))
        where = f"local model {args.local or 'SmolLM2-135M-Instruct (embedded)'}"
        max_concurrent = max_concurrent or 1

    probe_governor(args)  # a bad --probe SPEC fails here, before serving

    def governors(request: object) -> list[Governor]:
        probe = probe_governor(args)  # fresh per request: the answer probe's state is the run's
        return ([TokenBudget(max_total=budget)] if budget else []) + ([probe] if probe is not None else [])

    config = ProxyConfig(backend, verifiers=names, governors=governors,
                         api_key=args.api_key or os.environ.get(API_KEY_ENV) or None, hold=args.hold,
                         show_feedback=args.show_feedback, max_interventions=args.max_interventions,
                         max_body_bytes=args.max_body_bytes, body_timeout=getattr(args, "body_timeout", 30.0),
                         request_timeout=args.request_timeout,
                         max_tokens=args.max_request_tokens, max_concurrent=max_concurrent)
    config = dataclasses.replace(config, tool_verifiers=load_tool_checks(args.tool_verifier),
                                 tool_check_timeout=args.tool_check_timeout, keepalive=args.keepalive,
                                 undeclared_tools=getattr(args, "undeclared_tools", "refuse"),
                                 **_policy_config(args))
    checked = (f"verifiers: {', '.join(names)} ({chosen})" if names
               else "WARNING: no verifier: nothing in the answers is checked")
    return config, where, checked


def local_token_counter(path: str) -> Any:
    """A function of a text giving its number of tokens by a local tokenizer (never downloads)."""
    from interlock.monitor.errors import ConfigError

    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except Exception as exc:
        raise ConfigError(f"--tokenizer {path!r}: no local tokenizer there ({type(exc).__name__}: {exc})") from None

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False))

    return count


def _serve_workers(args: argparse.Namespace) -> int:
    """N uvicorn workers behind the port, each building its own app from the same options (passed in the
    environment); the Prometheus figures are shared through prometheus-client's multiprocess files."""
    import json
    import shutil
    import tempfile

    from interlock.monitor.proxy.server import serve_workers
    from interlock.monitor.urls import redact_url

    names = _validate(args)
    if args.tokenizer:
        local_token_counter(args.tokenizer)  # a missing tokenizer fails here, not in each worker
    own_dir = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        own_dir = tempfile.mkdtemp(prefix="interlock-proxy-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = own_dir
    options = {k: v for k, v in vars(args).items() if isinstance(v, str | int | float | bool | list | type(None))}
    os.environ[WORKER_ARGS_ENV] = json.dumps({**options, "workers": 1})
    print(f"interlock proxy: http://{args.host}:{args.port}/v1 with {args.workers} workers -> "
          f"{'upstream ' + redact_url(args.base_url) if args.base_url else 'a local model in each worker'}; "
          f"verifiers: "
          f"{', '.join(names) or 'none (nothing in the answers is checked)'}", file=sys.stderr, flush=True)
    try:
        serve_workers("interlock.monitor.cli.proxy:worker_app", args.workers, host=args.host, port=args.port,
                      header_timeout=args.header_timeout, body_timeout=args.body_timeout,
                      max_connections=args.max_connections, log_level="info" if args.log_requests else "warning",
                      access_log=args.log_requests)
    finally:
        if own_dir is not None:
            shutil.rmtree(own_dir, ignore_errors=True)
    return 0


def worker_app() -> Any:
    """The app of one worker process (uvicorn's factory): the options come from the parent's environment."""
    import json

    from interlock.monitor.proxy import create_app

    args = argparse.Namespace(**json.loads(os.environ[WORKER_ARGS_ENV]))
    config, _, _ = build_config(args)
    start_otel(args, "interlock-proxy")  # this worker's own exporter; the SDK flushes it when the worker exits
    return create_app(config)


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
                           access_log=args.log_requests, header_timeout=args.header_timeout,
                           body_timeout=args.body_timeout, max_connections=args.max_connections) as url:
            print(f"interlock proxy: {url}/v1 {what}", file=sys.stderr, flush=True)
            await anyio.sleep_forever()
    except BaseException as exc:  # uvicorn exits (SystemExit, in the server's task group) when it cannot bind
        failed = (exc.subgroup((SystemExit, RuntimeError, OSError)) is not None
                  if isinstance(exc, BaseExceptionGroup) else isinstance(exc, SystemExit | RuntimeError | OSError))
        if failed:
            raise ConfigError(f"could not listen on {args.host}:{args.port} (is the port taken?)") from None
        raise
