"""The offline budget evaluator: replay recorded reasoning traces under token-budget policies (the governors of
:mod:`interlock.monitor.governors`, driven as the monitor drives them) and score the answer each would have
ended with against the reference, with ``math-verify``.

::

    from interlock.monitor.budgets import evaluate, parse_policies, read_records
    records = [r for r in read_records("traces.jsonl") if not isinstance(r, Exception)]
    report = evaluate(records, parse_policies(["cap:1024,2048", "loop", "loop+converge"]), tokenizer="smollm2")
    print(format_table(report))

On a Ray cluster: ``interlock.monitor.budgets.ray_engine.evaluate_dataset`` (optional: ``interlock[ray]``, imported
only there). See docs/budgets.md for what offline replay can and cannot measure.
"""

from __future__ import annotations

from interlock.monitor.budgets.answers import AnswerScorer, StatedAnswer, boxed_answers, stated_answer
from interlock.monitor.budgets.errors import BudgetError
from interlock.monitor.budgets.evaluate import BudgetReport, ends_in_loop, evaluate, evaluate_record, summarise
from interlock.monitor.budgets.offline import OfflineRun, ReplayStop, replay_governors
from interlock.monitor.budgets.policies import DEFAULT_POLICIES, Policy, build_governors, parse_policies
from interlock.monitor.budgets.records import RecordFields, TraceRecord, read_records, tokenize_records
from interlock.monitor.budgets.report import format_notes, format_table, write_plot
from interlock.monitor.budgets.rules import BOXED_PATTERN, RepeatedBoxed, normalise_latex
from interlock.monitor.budgets.tokens import (
    HFTokenizer,
    Tokenizer,
    WhitespaceTokenizer,
    resolve_tokenizer,
    smollm2_tokenizer,
)

__all__ = [
    "BOXED_PATTERN", "DEFAULT_POLICIES", "AnswerScorer", "BudgetError", "BudgetReport", "HFTokenizer", "OfflineRun",
    "Policy", "RecordFields", "RepeatedBoxed", "ReplayStop", "StatedAnswer", "Tokenizer", "TraceRecord",
    "WhitespaceTokenizer", "boxed_answers", "build_governors", "ends_in_loop", "evaluate", "evaluate_record",
    "format_notes", "format_table", "normalise_latex", "parse_policies", "read_records", "replay_governors",
    "resolve_tokenizer", "smollm2_tokenizer", "stated_answer", "summarise", "tokenize_records", "write_plot",
]
