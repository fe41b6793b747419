"""The ``interlock`` command line: ``main`` parses the arguments and runs one subcommand module
(``run``, ``replay``, ``proxy``, ``verifiers``), each imported only when it runs."""

from __future__ import annotations

from interlock.monitor.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
