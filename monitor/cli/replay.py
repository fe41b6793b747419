"""``interlock replay FILE...``: run verifiers over recorded or imported traces and report what they catch.

Many traces per call, concurrently with a bound; CPU-heavy verifiers in a process pool. ``--json`` prints one
record per trace (id, labels, every verdict with its span, the first violation), then a totals record;
``--html`` writes a self-contained report. A file or record that cannot be read is reported with its file and
line and the batch goes on; the exit code is 1 when anything could not be read, else 0.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from interlock.monitor.cli.options import add_verifiers, chosen_verifiers

__all__ = ["add_arguments", "main"]

_FORMATS = ("auto", "trace", "text", "jsonl", "gsm8k")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="trace files, text files, JSON/JSONL files of steps, or GSM8K solution files")
    add_verifiers(parser, "a verifier by registered name (see `interlock verifiers`) or module:attribute")
    parser.add_argument("--format", choices=_FORMATS, default="auto", help="input format (default: auto)")
    parser.add_argument("--id-field", default="id", metavar="F", help="JSON field holding a record's id")
    parser.add_argument("--steps-field", default="steps", metavar="F", help="JSON field holding the list of steps")
    parser.add_argument("--text-field", default="text", metavar="F",
                        help="JSON field holding the whole text (or a step object's text)")
    parser.add_argument("--prompt-field", default="prompt", metavar="F", help="JSON field holding the prompt")
    parser.add_argument("--labels-field", default="labels", metavar="F", help="JSON field holding extra labels")
    parser.add_argument("--step-separator", default="\n", metavar="S",
                        help="text put between steps (default: a newline; \\n and \\t are understood)")
    parser.add_argument("--concurrency", "-j", type=int, default=64, metavar="N",
                        help="traces replayed at once (default: 64)")
    parser.add_argument("--processes", type=int, default=None, metavar="N",
                        help="process-pool workers (default: one per CPU when a verifier runs in a process; "
                             "0: none)")
    parser.add_argument("--json", action="store_true", help="print one JSON record per trace, then the totals")
    parser.add_argument("--html", metavar="REPORT.html", help="write a self-contained HTML report")


def main(args: argparse.Namespace) -> int:
    import anyio
    from interlock.monitor.errors import ConfigError
    from interlock.monitor.replay.engine import ReadFailure, ReplayTotals, TraceReport, load_verifier, replay_traces
    from interlock.monitor.replay.importers import FieldNames, read_traces
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    args.verifier = chosen_verifiers(args) or []
    if not args.verifier:
        raise ConfigError("give at least one --verifier NAME (`interlock verifiers` lists them)")
    if args.concurrency < 1:
        raise ConfigError(f"--concurrency must be at least 1, got {args.concurrency}")
    verifiers = [load_verifier(spec) for spec in args.verifier]
    names = [v.name for v in verifiers]
    if len(set(names)) != len(names):
        raise ConfigError(f"a verifier is given twice: {', '.join(names)}")
    fields = FieldNames(id=args.id_field, steps=args.steps_field, text=args.text_field, prompt=args.prompt_field,
                        labels=args.labels_field,
                        step_separator=args.step_separator.replace("\\n", "\n").replace("\\t", "\t"))

    started = time.perf_counter()
    items = [item for path in args.files for item in read_traces(path, format=args.format, fields=fields)]
    totals = ReplayTotals()
    err = Console(stderr=True)
    show_progress = err.is_terminal and not args.json

    def emit(result: TraceReport | ReadFailure) -> None:
        totals.add(result)
        if args.json:
            print(json.dumps(result.to_dict(), ensure_ascii=False), flush=False)
        elif isinstance(result, ReadFailure):
            print(f"error: {result.message}", file=sys.stderr)
        elif not result.passed:
            first = result.first_violation
            assert first is not None and first.span is not None
            print(f"{result.id}: {first.verifier} [{first.span.start}, {first.span.end}) {first.message}"
                  + (f" (+{len(result.failures) - 1} more)" if len(result.failures) > 1 else ""))

    with Progress(TextColumn("replay"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=err,
                  disable=not show_progress, transient=True,
                  # Lines for stdout go above the bar only when stdout is that terminal too, not into a pipe.
                  redirect_stdout=sys.stdout.isatty()) as progress:
        task = progress.add_task("replay", total=len(items))
        results = anyio.run(lambda: replay_traces(
            items, verifiers, concurrency=args.concurrency, processes=args.processes, on_result=emit,
            on_done=lambda _r: progress.advance(task)))
    totals.seconds = time.perf_counter() - started
    summary = totals.to_dict()
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        print(f"{summary['traces']} traces: {summary['passed']} passed, {summary['failed']} with violations, "
              f"{summary['read_errors']} could not be read ({summary['traces_per_s']} traces/s)")
    if args.html:
        from interlock.monitor.replay.report_html import write_html

        path = write_html(args.html, results, totals)
        if not args.json:
            print(f"report: {path}")
    sys.stdout.flush()
    return 1 if totals.read_errors else 0
