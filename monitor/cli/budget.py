"""``interlock budget FILE... --policy SPEC``: replay recorded traces under budget policies, offline, and report
per policy the tokens spent and the accuracy of the answer it would have ended with (see docs/budgets.md).

Each file is one dataset (one table, one panel of ``--plot``; a ``pool`` policy shares its budget within the
file). ``--json`` prints the tables' data as one JSON object; ``--records FILE.jsonl`` writes every trace's
outcome under every policy. ``--engine ray`` maps the records over a Ray cluster (pool policies run on the driver
after). Unreadable records are counted and named; the exit code is 1 when there were any.
"""

from __future__ import annotations

import argparse
import json
import sys

from interlock.monitor.cli.options import add_thinking_tags, thinking_tags

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="JSONL files of traces with a reference answer, or interlock trace files")
    parser.add_argument("--policy", "-p", action="append", default=[], metavar="SPEC",
                        help="a policy: governors joined by '+', e.g. cap:512,1024 (a sweep), pool:2048, loop, "
                             "loop:lines=0, converge:k=2, entropy, boxed:2, think:1024 (a cap on the thinking "
                             "alone; :lost scores a cut thinking wrong, :recorded as the whole trace), "
                             "loop+converge+cap:4096; repeat for several (default: a standard set: docs/budgets.md)")
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

    if args.limit is not None and args.limit < 1:
        raise BudgetError(f"--limit must be at least 1, got {args.limit}")
    if args.address is not None and args.engine != "ray":
        raise BudgetError("--address joins a Ray cluster: use it with --engine ray")
    policies = parse_policies(args.policy or DEFAULT_POLICIES)
    tags = thinking_tags(args)
    fields = RecordFields(id=args.id_field, question=args.question_field, trace=args.trace_field,
                          reference=args.reference_field, correct=args.correct_field)
    reports = []
    failed = 0
    for path in args.files:
        records: list[TraceRecord] = []
        errors: list[str] = []
        for item in read_records(path, fields):
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
            from interlock.monitor.budgets.ray_engine import evaluate_on_ray

            report = evaluate_on_ray(records, policies, tokenizer=args.tokenizer, chunk_tokens=args.chunk_tokens,
                                     source=path, read_errors=errors, address=args.address)
        else:
            report = evaluate(records, policies, tokenizer=args.tokenizer, chunk_tokens=args.chunk_tokens,
                              workers=args.workers, source=path, read_errors=errors)
        reports.append(report)
        if not args.json:
            print(format_table(report) + "\n")
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
