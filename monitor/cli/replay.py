"""``interlock replay FILE...``: run verifiers over recorded or imported traces and report what they catch.

Many traces per call, concurrently with a bound; CPU-heavy verifiers in a process pool. ``--json`` prints one
record per trace (id, labels, every verdict with its span, the first violation), then a totals record;
``--html`` writes a self-contained report; ``--output FILE`` writes one result per record to JSON Lines or
Parquet. Input streams (memory bounded by ``--concurrency``, not the input's size); ``--engine ray`` maps the
records over a Ray cluster instead (``--address`` joins an existing one). A file or record that cannot be read,
or a record that runs past ``--timeout``, is reported in its place and the batch goes on. Exit code: 0 when
every trace passed, 1 when one had a violation or an undecided check (an ``Unknown``: never shown as passed) or
anything could not be read or replayed, 2 on a usage error.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from typing import Any

from interlock.monitor.cli.options import add_thinking_tags, add_verifiers, chosen_verifiers, thinking_tags

__all__ = ["add_arguments", "main"]

_FORMATS = ("auto", "trace", "text", "jsonl", "gsm8k", "skythought", "openai", "parquet")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="trace files, text files, JSON/JSONL files of steps, GSM8K or SkyThought files, OpenAI-"
                             "format logs (completions, Responses, streamed events)")
    add_verifiers(parser, "a verifier by registered name (see `interlock verifiers`) or module:attribute")
    parser.add_argument("--phase", action="append", default=None, metavar="PHASE",
                        help="the text of a reasoning model to check: thinking, answer or both (default: each "
                             "verifier's own, both for the built-ins); NAME=PHASE for one verifier; repeatable")
    add_thinking_tags(parser)
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
                        help="worker processes, each record held to --timeout and its worker killed past it "
                             "(default: one per CPU; 0: check everything in this process, where a check hung in "
                             "native code cannot be stopped)")
    parser.add_argument("--json", action="store_true", help="print one JSON record per trace, then the totals")
    parser.add_argument("--html", metavar="REPORT.html", help="write a self-contained HTML report")
    parser.add_argument("--output", "-o", metavar="FILE",
                        help="write one result per record to FILE: Parquet for .parquet, else JSON Lines "
                             "(the totals still go to stdout)")
    parser.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                        help="seconds one record may take (default: 60); past it the record is an error and, in "
                             "worker processes, its worker is killed")
    parser.add_argument("--engine", choices=("local", "ray"), default="local",
                        help="local: this machine, streamed (default); ray: map the records over a Ray cluster "
                             "(pip install 'interlock[ray]')")
    parser.add_argument("--address", metavar="ADDR", default=None,
                        help="with --engine ray: the cluster to join (default: start a local one)")


def main(args: argparse.Namespace) -> int:
    import anyio
    from interlock.monitor.errors import ConfigError
    from interlock.monitor.replay.engine import (
        DEFAULT_TIMEOUT,
        ReadFailure,
        ReplayTotals,
        TraceReport,
        load_verifier,
        record_json,
        replay_stream,
    )
    from interlock.monitor.replay.importers import FieldNames, read_traces
    from interlock.monitor.replay.output import ResultWriter
    from interlock.monitor.replay.results import format_rate
    from interlock.monitor.stdio import own_stdout
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
    _set_phases(verifiers, args.phase or [])
    tags = thinking_tags(args)
    fields = FieldNames(id=args.id_field, steps=args.steps_field, text=args.text_field, prompt=args.prompt_field,
                        labels=args.labels_field,
                        step_separator=args.step_separator.replace("\\n", "\n").replace("\\t", "\t"))

    timeout = DEFAULT_TIMEOUT if args.timeout is None else args.timeout
    if not timeout > 0:
        raise ConfigError(f"--timeout must be a positive number of seconds, got {args.timeout}")
    if args.address is not None and args.engine != "ray":
        raise ConfigError("--address joins a Ray cluster: use it with --engine ray")
    if args.engine == "ray" and args.html:
        raise ConfigError("--html holds every trace in one page: use it with --engine local")

    # Worker processes by default: only there can a record hung in native code (sympy, z3) be killed.
    processes = args.processes if args.processes is not None else min(os.cpu_count() or 1, args.concurrency)
    started = time.perf_counter()
    totals = ReplayTotals()
    err = Console(stderr=True)
    show_progress = err.is_terminal and not args.json
    writer = ResultWriter(args.output) if args.output else None
    kept: list[TraceReport | ReadFailure] = []
    # stdout is this command's alone: a verifier's output (Python's, C's, a forked process's) goes to stderr
    with own_stdout() as out:
        shown = [out]  # where a line for a person goes: above the progress bar when stdout is its terminal

        def emit_line(record: dict[str, Any], line: str, warnings: list[str]) -> None:
            """One result: counted, written to --output, printed (as JSON, or a line for a violation or an error)."""
            totals.add_record(record)
            for warning in warnings:
                print(f"warning: {warning}", file=sys.stderr)
            if writer is not None:
                writer.write_line(line)
                return
            if args.json:
                print(line, file=out)
            elif record["type"] == "error":
                print(f"error: {record['message']}", file=sys.stderr)
            elif record["outcome"] == "undecided":
                first = next(v for v in record["verdicts"] if v["kind"] == "unknown")
                where = f" [{first['span'][0]}, {first['span'][1]})" if first["span"] is not None else ""
                print(f"{record['id']}: undecided: {first['verifier']}{where} {first['message']}", file=shown[0])
            elif not record["passed"]:
                first = record["first_violation"]
                n = sum(v["kind"] == "fail" for v in record["verdicts"])
                print(f"{record['id']}: {first['verifier']} [{first['span'][0]}, {first['span'][1]}) "
                      f"{first['message']}" + (f" (+{n - 1} more)" if n > 1 else ""), file=shown[0])

        def emit(result: TraceReport | ReadFailure) -> None:
            if args.html:
                kept.append(result)
            record = result.to_dict()
            emit_line(record, record_json(record), list(getattr(result, "warnings", ())))

        try:
            if args.engine == "ray":
                from interlock.monitor.replay.ray_engine import replay_files

                replay_files(args.files, verifiers if args.phase else args.verifier, fields=fields,
                             format=args.format, address=args.address, timeout=timeout,
                             on_line=lambda line: emit_line(*_parsed(line)), tags=tags)
            else:
                items = itertools.chain.from_iterable(read_traces(path, format=args.format, fields=fields, tags=tags)
                                                      for path in args.files)
                above_bar = show_progress and out.isatty()
                with Progress(TextColumn("replay"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                              console=err, disable=not show_progress, transient=True,
                              # Lines for stdout go above the bar only when stdout is that terminal too, not a pipe.
                              redirect_stdout=above_bar) as progress:
                    if above_bar:
                        shown[0] = sys.stdout  # the bar's proxy: it prints above the bar
                    task = progress.add_task("replay", total=None)
                    anyio.run(lambda: replay_stream(
                        items, verifiers, concurrency=args.concurrency, processes=processes, timeout=timeout,
                        on_result=emit, on_done=lambda _r: progress.advance(task)))
                shown[0] = out
            totals.seconds = time.perf_counter() - started
            summary = totals.to_dict()
            if args.json:
                print(record_json(summary), file=out)
            else:
                print(f"{summary['traces']} traces: {summary['passed']} passed, {summary['failed']} with violations, "
                      f"{summary['undecided']} undecided, {summary['read_errors']} could not be read, "
                      f"{summary['replay_errors']} timed out or crashed "
                      f"({format_rate(summary['traces_per_s'] or 0.0)} traces/s)", file=out)
            if writer is not None and not args.json:
                print(f"results: {args.output} ({writer.count} records)", file=out)
            if args.html:
                from interlock.monitor.replay.report_html import write_html

                path = write_html(args.html, kept, totals)
                if not args.json:
                    print(f"report: {path}", file=out)
        finally:
            if writer is not None:
                writer.close()
    sys.stdout.flush()
    return 1 if totals.read_errors or totals.replay_errors or totals.failed or totals.undecided else 0


def _set_phases(verifiers: list[Any], options: list[str]) -> None:
    """``--phase PHASE`` (every verifier) and ``--phase NAME=PHASE`` (one), in that order of precedence."""
    from interlock.monitor.errors import ConfigError
    from interlock.monitor.phases import check_phase_filter

    by_name = {v.name: v for v in verifiers}
    every = [o for o in options if "=" not in o]
    if len(every) > 1:
        raise ConfigError(f"--phase is given {len(every)} times for every verifier: {', '.join(every)}")
    for v in verifiers:
        if every:
            v.phase = check_phase_filter(every[0].strip(), "--phase")
    for option in options:
        if "=" not in option:
            continue
        name, _, phase = option.partition("=")
        if name.strip() not in by_name:
            raise ConfigError(f"--phase {option!r}: no verifier {name.strip()!r} is replayed (given: "
                              f"{', '.join(by_name)})")
        by_name[name.strip()].phase = check_phase_filter(phase.strip(), f"--phase {option!r}")


def _parsed(line: str) -> tuple[dict[str, Any], str, list[str]]:
    import json

    record = json.loads(line)
    return record, line, list(record.get("warnings") or ())
