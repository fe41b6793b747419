"""The ``interlock`` command line. Each subcommand lives in ``interlock.monitor.cli.<name>`` and is imported only
when it runs, so ``interlock verifiers`` does not pay for torch."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from interlock import __version__
from interlock.monitor.cli.commands import SUBCOMMANDS
from interlock.monitor.errors import InterlockError
from interlock.monitor.logs import setup_cli_logging
from interlock.monitor.stdio import discard_stdout, stdout_reader_left

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="interlock",
                                     description="Asynchronous verifier-monitor for language-model reasoning.")
    parser.add_argument("--version", action="version", version=f"interlock {__version__}")
    parser.add_argument("--log-level", default=None, metavar="LEVEL",
                        help="write structlog JSON events at LEVEL (debug, info, warning) to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module_name)
        importlib.import_module(module_name).add_arguments(p)
    return parser


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


def main(argv: Sequence[str] | None = None) -> int:
    try:
        try:
            code = _main(argv)
        except SystemExit:  # --help, --version and usage errors: their text may still sit in the buffer
            sys.stdout.flush()
            raise
        sys.stdout.flush()  # here, not at interpreter exit, where a reader that left would be a traceback
        return code
    except BaseException as exc:
        if not (_only_broken_pipes(exc) and stdout_reader_left()):
            raise
        # the reader went away (`interlock replay ... --json | head`): stop quietly with status 0, as other filters
        # do; what is left in the buffer goes nowhere
        discard_stdout()
        return 0


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.log_level:
        setup_cli_logging(args.log_level)
    if not getattr(args, "_module", None):
        parser.print_help()
        return 2
    module = importlib.import_module(args._module)
    try:
        code: int = module.main(args)
    except InterlockError as exc:
        print(f"interlock {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BaseExceptionGroup as group:
        # an error raised inside a task group (a Parquet input without pyarrow) is still a usage error, not a
        # traceback; a group holding anything else is a bug and keeps its traceback
        errors, rest = group.split(InterlockError)
        if errors is None or rest is not None:
            raise
        print(f"interlock {args.command}: error: {_first_leaf(errors)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interlock {args.command}: interrupted", file=sys.stderr)
        return 130
    return code


def _only_broken_pipes(exc: BaseException) -> bool:
    """A BrokenPipeError, or a task group's failure made of BrokenPipeErrors alone (another fault beside one is
    that fault, and shows)."""
    if isinstance(exc, BaseExceptionGroup):
        return all(_only_broken_pipes(inner) for inner in exc.exceptions)
    return isinstance(exc, BrokenPipeError)


if __name__ == "__main__":
    sys.exit(main())
