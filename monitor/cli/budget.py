"""``interlock budget FILE... --policy SPEC``: replay recorded traces under budget policies, offline, and report
per policy the tokens spent and the accuracy of the answer it would have ended with (see docs/budgets.md).

Each file is one dataset (one table, one panel of ``--plot``; a ``pool`` policy shares its budget within the
file). ``--json`` prints the tables' data as one JSON object; ``--records FILE.jsonl`` writes every trace's
outcome under every policy. ``--engine ray`` maps the records over a Ray cluster (pool policies run on the driver
after). Unreadable records (broken, or over ``--max-record-mb``) and records left out (past ``--record-seconds``,
or a reference math-verify cannot read) are named on stderr and the rest is evaluated; the exit code is 1 when
there were any.
On a terminal, a progress bar on stderr says how far each file got (stdout, and so ``--json``, holds only the
results).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from interlock.monitor.cli.options import add_thinking_tags, thinking_tags

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="JSONL files of traces with a reference answer, or interlock trace files")
    parser.add_argument("--policy", "-p", action="append", default=[], metavar="SPEC",
                        help="a policy: governors joined by '+', e.g. cap:512,1024 (a sweep), pool:2048, loop, "
                             "loop:lines=0, converge:k=2, entropy (trace files with logprobs), boxed:2, "
                             "think:1024 (a cap on the thinking alone; :lost scores a cut thinking wrong, :recorded "
                             "as the whole trace), loop+converge+cap:4096; repeat for several (default: a standard "
                             "set without entropy, see docs/budgets.md)")
    parser.add_argument("--tokenizer", default="smollm2", metavar="NAME",
                        help="smollm2 (the embedded model's, default), whitespace, or a local tokenizer folder")
    parser.add_argument("--chunk-tokens", type=int, default=16, metavar="N",
                        help="tokens per streamed chunk of a text trace (default 16; trace files keep theirs)")
    parser.add_argument("--workers", "-j", type=int, default=2, metavar="N", help="processes (default 2)")
    parser.add_argument("--engine", choices=("local", "ray"), default="local",
                        help="local: worker processes on this machine (default); ray: map the records over a Ray "
                             "cluster, pool policies run on the driver after (pip install 'interlock[ray]')")
    parser.add_argument("--address", default=None, metavar="ADDR",
                        help="with --engine ray: the cluster to join (default: start a local one)")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="only the first N traces of each file")
    parser.add_argument("--record-seconds", type=float, default=120.0, metavar="S",
                        help="seconds one record may take under all its policies; past it the record is an error "
                             "and the batch goes on (default 120)")
    parser.add_argument("--max-record-mb", type=float, default=4.0, metavar="MB",
                        help="the largest record read (a JSON line or a trace file); a bigger one is an error in "
                             "its place, never held in memory (default 4)")
    parser.add_argument("--id-field", default="id", metavar="F", help="JSON field of a record's id")
    parser.add_argument("--question-field", default="question", metavar="F", help="JSON field of the question")
    parser.add_argument("--trace-field", default="text", metavar="F",
                        help="JSON field of the trace text (a list counts by its first element)")
    parser.add_argument("--reference-field", default="reference", metavar="F",
                        help="JSON field of the reference answer (fallbacks: answer, gt, ground_truth)")
    parser.add_argument("--correct-field", default="correct", metavar="F",
                        help="JSON field of the recorded grade, if any (fallbacks: is_correct, score)")
    add_thinking_tags(parser)
    parser.add_argument("--json", action="store_true", help="print the per-policy figures as JSON")
    parser.add_argument("--records", metavar="OUT.jsonl", help="write every trace's outcome under every policy")
    parser.add_argument("--plot", metavar="OUT.png", help="write an accuracy-vs-tokens plot (matplotlib)")
    probes = parser.add_argument_group("answer probes (policies probe, deer, eat; see docs/budgets.md)")
    probes.add_argument("--probe-base-url", metavar="URL",
                        help="ask the probes of an OpenAI-compatible server (e.g. the vLLM serving the model)")
    probes.add_argument("--probe-model", metavar="NAME_OR_PATH",
                        help="with --probe-base-url the server's model name; without, a local model (a folder, a "
                             ".gguf file, or 'default' for the embedded SmolLM2)")
    probes.add_argument("--probe-cache", metavar="FILE",
                        help="the probe answers asked so far, reused and extended (default: probes.jsonl in the "
                             "interlock cache folder)")
    probes.add_argument("--probe-concurrency", type=int, default=8, metavar="N",
                        help="probe requests at once to --probe-base-url (default 8)")


def main(args: argparse.Namespace) -> int:
    from interlock.monitor.budgets import (
        DEFAULT_POLICIES,
        BudgetError,
        RecordFields,
        TraceRecord,
        evaluate,
        format_table,
        parse_policies,
        read_records,
        write_plot,
    )
    from interlock.monitor.budgets.phased import with_phases
    from interlock.monitor.budgets.report import format_notes
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    if args.limit is not None and args.limit < 1:
        raise BudgetError(f"--limit must be at least 1, got {args.limit}")
    if args.address is not None and args.engine != "ray":
        raise BudgetError("--address joins a Ray cluster: use it with --engine ray")
    if not args.record_seconds > 0:
        raise BudgetError(f"--record-seconds must be a positive number of seconds, got {args.record_seconds}")
    if not args.max_record_mb > 0:
        raise BudgetError(f"--max-record-mb must be a positive number, got {args.max_record_mb}")
    max_bytes = max(1, int(args.max_record_mb * 1024 * 1024))
    policies = parse_policies(args.policy or DEFAULT_POLICIES)
    tags = thinking_tags(args)
    fields = RecordFields(id=args.id_field, question=args.question_field, trace=args.trace_field,
                          reference=args.reference_field, correct=args.correct_field)
    cache, prober = _probes(args, policies)
    reports = []
    failed = 0
    for path in args.files:
        records: list[TraceRecord] = []
        errors: list[str] = []
        for item in read_records(path, fields, max_record_bytes=max_bytes):
            if isinstance(item, TraceRecord):
                records.append(item)
            else:
                errors.append(str(item))
        records = with_phases(records[:args.limit] if args.limit else records, tags)
        failed += len(errors)
        for message in errors:
            print(f"error: {message}", file=sys.stderr)
        if not records:
            print(f"error: {path}: no usable traces", file=sys.stderr)
            failed += 1
            continue
        if args.engine == "ray":
            if cache is not None:
                raise BudgetError("probe policies run with --engine local (their probes are asked from here)")
            from interlock.monitor.budgets.ray_engine import evaluate_on_ray

            report = evaluate_on_ray(records, policies, tokenizer=args.tokenizer, chunk_tokens=args.chunk_tokens,
                                     source=path, read_errors=errors, address=args.address,
                                     record_seconds=args.record_seconds)
        else:
            err = Console(stderr=True)
            # minutes of work: on a terminal, stderr shows how far it got (transient: gone when the table comes)
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TimeRemainingColumn(), console=err, disable=not err.is_terminal, transient=True) as bar:
                task = bar.add_task(f"{path}: loading the tokenizer", total=len(records))

                def show(stage: str, done: int, total: int, task: Any = task, path: str = path) -> None:
                    bar.update(task, description=f"{path}: {stage}", completed=done, total=total)

                report = evaluate(records, policies, tokenizer=args.tokenizer, chunk_tokens=args.chunk_tokens,
                                  workers=args.workers, source=path, read_errors=errors,
                                  record_seconds=args.record_seconds, progress=show, probe_cache=cache,
                                  prober=prober)
        reports.append(report)
        for message in report.record_errors:
            print(f"error: {path}: {message}", file=sys.stderr)
        failed += len(report.record_errors)
        if not args.json:
            print(format_table(report, notes=False) + "\n")
    if reports and not args.json:
        print(format_notes(reports) + "\n")
    if cache is not None:
        asked = f"{prober.requests} asked of {prober.model}" if prober is not None else "none asked"
        print(f"probes: {asked}; {cache.hits} answered from the cache {cache.path} ({len(cache)} held"
              + (f", {cache.skipped} unreadable lines skipped" if cache.skipped else "") + ")", file=sys.stderr)
    if args.json:
        print(json.dumps({"datasets": [r.to_dict() for r in reports]}, ensure_ascii=False))
    if args.records:
        with open(args.records, "w", encoding="utf-8") as out:
            for report in reports:
                for record in report.records:
                    out.write(json.dumps({"source": report.source, **record}, ensure_ascii=False) + "\n")
    if args.plot and reports:
        path = write_plot(reports, args.plot)
        if not args.json:
            print(f"plot: {path}")
    sys.stdout.flush()
    return 1 if failed else 0


def _probes(args: argparse.Namespace, policies: list[Any]) -> tuple[Any, Any]:
    """The probe cache and the probe model, when a policy probes (else ``(None, None)``)."""
    from interlock.monitor.budgets import BudgetError
    from interlock.monitor.budgets.probes import (
        HTTPProber,
        LocalProber,
        ProbeCache,
        default_cache_path,
        uses_probes,
    )

    if not any(uses_probes(p) for p in policies):
        if args.probe_base_url or args.probe_model or args.probe_cache:
            raise BudgetError("--probe-base-url, --probe-model and --probe-cache are for probe policies "
                              "(-p probe, deer, eat)")
        return None, None
    if args.probe_base_url and not args.probe_model:
        raise BudgetError("--probe-base-url needs --probe-model NAME (the model name the server serves)")
    prober: Any = None
    if args.probe_base_url:
        prober = HTTPProber(args.probe_base_url, args.probe_model, concurrency=args.probe_concurrency)
    elif args.probe_model:
        prober = LocalProber(args.probe_model)
    return ProbeCache(args.probe_cache or default_cache_path()), prober
