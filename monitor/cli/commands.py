"""Subcommands of ``interlock``: name -> (module, one-line help). Each module defines
``add_arguments(parser)`` (cheap: no heavy imports) and ``main(args) -> int``."""

from __future__ import annotations

__all__ = ["SUBCOMMANDS"]

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "verifiers": ("interlock.monitor.cli.verifiers", "list the built-in and third-party verifiers"),
    "replay": ("interlock.monitor.cli.replay", "run verifiers over recorded or imported traces; JSON and HTML reports"),
    "proxy": ("interlock.monitor.cli.proxy", "serve an OpenAI-compatible API that monitors every answer (any agent)"),
    "budget": ("interlock.monitor.cli.budget", "replay recorded traces under budget policies: tokens vs. accuracy"),
    "run": ("interlock.monitor.cli.run", "run a monitored generation on a local model (default: the embedded one)"),
    "policy": ("interlock.monitor.cli.policy", "check tool calls in conversations against a policy; draft a policy"),
    "mcp": ("interlock.monitor.cli.mcp", "front an MCP server: check every tool call against a policy first"),
}
