"""``interlock mcp``: front an MCP server, checking every tool call against a policy before it is forwarded.

    interlock mcp --policy examples/policies/tau2_retail.py --state db.json -- python retail_server.py
    interlock mcp --policy POLICY.py --http --port 8765 --upstream-url http://127.0.0.1:9000/mcp
    interlock mcp --policy POLICY.py --proxy http://127.0.0.1:8000 -- python server.py   # + checked reasoning

Without ``--http`` the front speaks MCP on stdin and stdout (an agent starts it as its MCP server); with it, the
front serves streamable HTTP at ``http://HOST:PORT/mcp``. The upstream server is a command after ``--`` (started
and spoken to over stdio) or ``--upstream-url``. A refused call comes back as a tool error whose text says why.
"""

from __future__ import annotations

import argparse
import os
import sys

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    checks = parser.add_argument_group("what every call must pass")
    checks.add_argument("--policy", metavar="POLICY", help="a policy file (file.py or file.py:NAME) or module[:NAME]")
    checks.add_argument("--state", metavar="STATE", help="the state the policy reads: a JSON or YAML file")
    checks.add_argument("--proxy", metavar="URL",
                        help="an `interlock proxy --released-calls` the agent's model traffic goes through: a call "
                             "runs only if the proxy released it (its reasoning passed), and the policy reads the "
                             "conversation it was made in")
    checks.add_argument("--proxy-api-key", metavar="KEY",
                        help="the proxy's API key (default: $INTERLOCK_PROXY_API_KEY when set)")
    serve = parser.add_argument_group("serving")
    serve.add_argument("--http", action="store_true", help="serve streamable HTTP instead of stdio")
    serve.add_argument("--host", default="127.0.0.1", help="with --http: address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8765, help="with --http: port (default 8765)")
    serve.add_argument("--path", default="/mcp", help="with --http: the endpoint's path (default /mcp)")
    serve.add_argument("--single-conversation", action="store_true",
                       help="with --http: calls that name no conversation (no _meta 'interlock/conversation', no "
                            "x-interlock-conversation header, no MCP session) are one conversation; without it "
                            "they are refused")
    serve.add_argument("--call-timeout", type=float, default=300.0, metavar="SECONDS",
                       help="longest an upstream tool call may take (default 300)")
    up = parser.add_argument_group("the upstream MCP server")
    up.add_argument("--upstream-url", metavar="URL", help="a streamable-HTTP MCP server (instead of a command)")
    up.add_argument("upstream_command", nargs=argparse.REMAINDER, metavar="-- COMMAND ...",
                    help="the command that starts the upstream server (stdio)")


def build_front(args: argparse.Namespace) -> object:
    from interlock.monitor.errors import ConfigError
    from interlock.monitor.mcp import PolicyFront, ReasoningCheck, Upstream
    from interlock.monitor.policies import State, load_policy

    command = list(args.upstream_command or [])
    if command and command[0] == "--":
        command = command[1:]
    if bool(command) == bool(args.upstream_url):
        raise ConfigError("name the upstream MCP server: a command after `--`, or --upstream-url (not both)")
    if not args.call_timeout > 0:
        raise ConfigError(f"--call-timeout must be a positive number of seconds, got {args.call_timeout}")
    if not args.policy and not args.proxy:
        raise ConfigError("interlock mcp needs --policy, --proxy, or both: something to check the calls against")
    if args.state and not args.policy:
        raise ConfigError("--state is the state a policy reads: give --policy too")
    policy = load_policy(args.policy) if args.policy else None
    state = State.load(args.state) if args.state else None
    reasoning = None
    if args.proxy:
        key = args.proxy_api_key or os.environ.get("INTERLOCK_PROXY_API_KEY") or None
        reasoning = ReasoningCheck(args.proxy, api_key=key)
    upstream = Upstream(command=tuple(command)) if command else Upstream(url=args.upstream_url)
    return PolicyFront(upstream, policy=policy, state=state, reasoning=reasoning,
                       single_conversation=args.single_conversation, call_timeout=args.call_timeout)


def main(args: argparse.Namespace) -> int:
    import anyio
    from interlock.monitor.mcp import PolicyFront

    try:
        import mcp  # noqa: F401
    except ImportError:
        from interlock.monitor.errors import ConfigError

        raise ConfigError("interlock mcp needs the MCP SDK: pip install 'interlock[mcp]'") from None
    front = build_front(args)
    assert isinstance(front, PolicyFront)
    checks = ", ".join(c for c in (f"policy {front.policy.name}" if front.policy is not None else "",
                                   "released by interlock proxy" if front.reasoning is not None else "") if c)
    if not args.http:
        print(f"interlock mcp: stdio -> {front.upstream.describe()}; every call checked: {checks}", file=sys.stderr,
              flush=True)
        anyio.run(front.serve_stdio)
        return 0

    async def serve() -> None:
        from interlock.monitor.proxy.server import serving

        app = front.http_app(path=args.path, host=args.host, connect=False)
        async with front.connected(), serving(app, host=args.host, port=args.port, log_level="warning") as url:
            print(f"interlock mcp: {url}{args.path} -> {front.upstream.describe()}; every call checked: {checks}",
                  file=sys.stderr, flush=True)
            await anyio.sleep_forever()

    anyio.run(serve)
    return 0
