"""Replay recorded traces under budget policies and score the answer each policy would have ended with.

- :func:`evaluate_record` takes one record and the policies and returns a plain dict (what a distributed map,
  e.g. a Ray task, needs: no shared state, picklable in and out).
- :func:`evaluate` does a batch: per-record policies in a process pool, :class:`BudgetPool` policies in order
  (their shares depend on the runs before), then :func:`summarise` per policy.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import pickle
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from interlock.monitor.budgets.answers import AnswerScorer, stated_answer
from interlock.monitor.budgets.errors import BudgetError
from interlock.monitor.budgets.offline import ReplayStop, replay_governors
from interlock.monitor.budgets.phased import phase_fields, phase_summary, thinking_outcome
from interlock.monitor.budgets.policies import Policy
from interlock.monitor.budgets.records import TraceRecord, tokenize_records
from interlock.monitor.budgets.tokens import Tokenizer, resolve_tokenizer
from interlock.monitor.errors import ConfigError
from interlock.monitor.governor import Governor
from interlock.monitor.governors import BudgetPool
from interlock.monitor.governors.loop_guard import find_char_repeat, find_tandem_repeat

__all__ = ["BudgetReport", "ends_in_loop", "evaluate", "evaluate_record", "finish_report", "summarise"]

_SCORER: AnswerScorer | None = None


def _scorer() -> AnswerScorer:
    global _SCORER
    if _SCORER is None:
        _SCORER = AnswerScorer()
    return _SCORER


def ends_in_loop(text: str) -> bool:
    """A runaway: the trace ends in a repetition (the loop guard's word-run or character-run test)."""
    return find_tandem_repeat(text) is not None or find_char_repeat(text) is not None


def _record(record: TraceRecord | Mapping[str, Any], tokenizer: str | Tokenizer) -> TraceRecord:
    rec = record if isinstance(record, TraceRecord) else TraceRecord.from_dict(record)
    if rec.chunks is None and rec.starts is None:
        rec = tokenize_records([rec], resolve_tokenizer(tokenizer))[0]
    return rec


def _replay(rec: TraceRecord, governors: Sequence[Governor], chunk_tokens: int) -> ReplayStop:
    return replay_governors(governors, rec.question, rec.text, starts=rec.starts, chunks=rec.chunks,
                            chunk_tokens=chunk_tokens, phases=rec.phases if rec.chunks is None else ())


def _outcome(rec: TraceRecord, stop: ReplayStop, scorer: AnswerScorer) -> dict[str, Any]:
    answer = stated_answer(rec.text[:stop.chars], complete=stop.reason == "complete")
    return {**stop.to_dict(), "answer": answer.text if answer else None, "answer_kind": answer.kind if answer else None,
            "correct": scorer.correct(answer.text if answer else None, rec.reference), "na": None}


def _policy_outcome(rec: TraceRecord, policy: Policy, chunk_tokens: int, scorer: AnswerScorer,
                    extra: Sequence[Governor] = ()) -> dict[str, Any]:
    governors = [*policy.governors(), *extra]
    try:
        stop = _replay(rec, governors, chunk_tokens)
    except BudgetError:
        raise
    except ConfigError as exc:  # e.g. EntropyStop on a trace without logprobs: not applicable, said why
        return {"na": str(exc)}
    return thinking_outcome(rec, stop, governors, _outcome(rec, stop, scorer), scorer)


def evaluate_record(record: TraceRecord | Mapping[str, Any], policies: Sequence[Policy], *,
                    tokenizer: str | Tokenizer = "whitespace", chunk_tokens: int = 16,
                    scorer: AnswerScorer | None = None) -> dict[str, Any]:
    """One record (a :class:`TraceRecord` or its ``to_dict()``) under each policy: a plain dict with the full
    trace's tokens, answer and grade, whether it ends in a loop, and per policy where it stopped, why, the answer
    it would have ended with and whether that is right. Pool policies need the batch: use :func:`evaluate`."""
    rec = _record(record, tokenizer)
    scorer = scorer or _scorer()
    full = stated_answer(rec.text, complete=True)
    out: dict[str, Any] = {
        "id": rec.id, "reference": rec.reference, "recorded_correct": rec.recorded_correct, "tokens": rec.n_tokens,
        "chars": len(rec.text), "runaway": ends_in_loop(rec.text),
        "answer": full.text if full else None, "answer_kind": full.kind if full else None,
        "correct": scorer.correct(full.text if full else None, rec.reference), **phase_fields(rec), "policies": {}}
    for policy in policies:
        if policy.pool_tokens is not None:
            raise BudgetError(f"policy {policy.name!r} shares a pool across the batch: evaluate it with evaluate()")
        out["policies"][policy.name] = _policy_outcome(rec, policy, chunk_tokens, scorer)
    return out


def _worker(args: tuple[TraceRecord, Sequence[Policy], int]) -> dict[str, Any]:
    rec, policies, chunk_tokens = args
    return evaluate_record(rec, policies, chunk_tokens=chunk_tokens)


@dataclass
class BudgetReport:
    """Per-record outcomes and per-policy totals of one batch (one dataset)."""

    source: str
    tokenizer: str
    chunk_tokens: int
    records: list[dict[str, Any]]
    policies: list[dict[str, Any]] = field(default_factory=list)
    read_errors: list[str] = field(default_factory=list)

    def to_dict(self, *, with_records: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source, "tokenizer": self.tokenizer, "chunk_tokens": self.chunk_tokens,
                               "traces": len(self.records), "read_errors": self.read_errors,
                               "policies": self.policies}
        if with_records:
            out["records"] = self.records
        return out


def _picklable(obj: Any) -> bool:
    try:
        pickle.dumps(obj)
    except Exception:
        return False
    return True


def evaluate(records: Sequence[TraceRecord], policies: Sequence[Policy], *, tokenizer: str | Tokenizer = "whitespace",
             chunk_tokens: int = 16, workers: int = 1, source: str = "", read_errors: Sequence[str] = ()
             ) -> BudgetReport:
    """Every record under every policy; ``workers > 1`` replays per-record policies in that many processes."""
    if chunk_tokens < 1:
        raise BudgetError(f"chunk_tokens must be >= 1, got {chunk_tokens}")
    if workers < 1:
        raise BudgetError(f"workers must be >= 1, got {workers}")
    tok = resolve_tokenizer(tokenizer)
    recs = tokenize_records(list(records), tok)
    single = [p for p in policies if p.pool_tokens is None]
    if workers > 1 and len(recs) > 1 and single and _picklable(single):
        methods = multiprocessing.get_all_start_methods()  # no fork: the parent may hold tokenizer threads
        ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            results = list(pool.map(_worker, [(r, single, chunk_tokens) for r in recs],
                                    chunksize=max(1, len(recs) // (workers * 8))))
    else:
        results = [evaluate_record(r, single, chunk_tokens=chunk_tokens) for r in recs]
    return finish_report(recs, results, policies, tokenizer=tok.name, chunk_tokens=chunk_tokens, source=source,
                         read_errors=read_errors)


def finish_report(recs: Sequence[TraceRecord], results: list[dict[str, Any]], policies: Sequence[Policy], *,
                  tokenizer: str, chunk_tokens: int, source: str = "", read_errors: Sequence[str] = ()
                  ) -> BudgetReport:
    """The report of a batch whose per-record policies are done (``results``, in the order of ``recs``, which
    are tokenised): runs the pool policies in order over the batch, orders each record's policies as given, and
    summarises. Shared by :func:`evaluate` and the Ray engine (which maps the per-record part)."""
    scorer = _scorer()
    for policy in policies:
        if policy.pool_tokens is None:
            continue
        budget = BudgetPool(policy.pool_tokens * len(recs))
        budget.plan([r.question for r in recs])
        for rec, result in zip(recs, results, strict=True):
            share = budget.governor_for(rec.question)
            result["policies"][policy.name] = _policy_outcome(rec, policy, chunk_tokens, scorer, extra=[share])
    order = [p.name for p in policies]
    for result in results:
        result["policies"] = {name: result["policies"][name] for name in order}
    report = BudgetReport(source, tokenizer, chunk_tokens, results, read_errors=list(read_errors))
    report.policies = summarise(results, order)
    return report


def summarise(results: Sequence[Mapping[str, Any]], policies: Sequence[str]) -> list[dict[str, Any]]:
    """Per policy, over the records it applied to: tokens spent against the uncapped traces, right answers,
    right answers lost (false stops) and gained, runaways stopped early, forced and rollback stops."""
    rows = [_summary_row("uncapped", [(r, {"tokens": r["tokens"], "correct": r["correct"], "reason": "complete",
                                           "forced": False, "na": None,
                                           **{k: r[k] for k in ("thinking_tokens", "answer_tokens") if k in r}})
                                      for r in results])]
    for name in policies:
        rows.append(_summary_row(name, [(r, r["policies"][name]) for r in results]))
    return rows


def _summary_row(name: str, pairs: list[tuple[Mapping[str, Any], Mapping[str, Any]]]) -> dict[str, Any]:
    na = [o["na"] for _, o in pairs if o.get("na")]
    done = [(r, o) for r, o in pairs if not o.get("na")]
    full = sum(r["tokens"] for r, _ in done)
    spent = sum(o["tokens"] for _, o in done)
    right = sum(bool(o["correct"]) for _, o in done)
    base_right = sum(bool(r["correct"]) for r, _ in done)
    runaways = [(r, o) for r, o in done if r["runaway"]]
    n = len(done)
    return {
        "policy": name, "traces": n, "not_applicable": len(na), "why_not": na[0] if na else None,
        "tokens": spent, "uncapped_tokens": full, "mean_tokens": round(spent / n, 1) if n else None,
        "saved_pct": round(100 * (full - spent) / full, 1) if full else None,
        "right": right, "accuracy": round(right / n, 4) if n else None, "uncapped_right": base_right,
        "false_stops": sum(bool(r["correct"]) and not o["correct"] for r, o in done),
        "gained": sum(not r["correct"] and bool(o["correct"]) for r, o in done),
        "runaways": len(runaways), "runaways_stopped": sum(o["tokens"] < r["tokens"] for r, o in runaways),
        "runaway_tokens_saved": sum(r["tokens"] - o["tokens"] for r, o in runaways),
        "forced": sum(bool(o.get("forced")) for _, o in done),
        "stops": dict(Counter(o.get("reason", "complete") for _, o in done)),
        **phase_summary(pairs),
    }
