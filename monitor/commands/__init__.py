"""Subcommands of ``interlock``: name -> (module, one-line help). Each module defines
``add_arguments(parser)`` (cheap: no heavy imports) and ``main(args) -> int``."""

from __future__ import annotations

__all__ = ["SUBCOMMANDS"]

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "verifiers": ("monitor.commands.verifiers", "list the built-in and third-party verifiers"),
    "replay": ("monitor.commands.replay", "run verifiers over recorded or imported traces; JSON and HTML reports"),
    "proxy": ("monitor.commands.proxy", "serve an OpenAI-compatible API that monitors every answer (any agent)"),
    "run": ("monitor.commands.run", "run a monitored generation on a local model (default: the embedded one)"),
}
