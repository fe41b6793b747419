"""Replay recorded traces under budget policies and score the answer each policy would have ended with.

- :func:`evaluate_record` takes one record and the policies and returns a plain dict (what a distributed map,
  e.g. a Ray task, needs: no shared state, picklable in and out).
- :func:`evaluate` does a batch: per-record policies in a process pool, :class:`BudgetPool` policies in order
  (their shares depend on the runs before), then :func:`summarise` per policy.

A record that cannot be evaluated (past its deadline, ``record_seconds``; a reference math-verify cannot read)
gives a dict with ``"error"`` naming it and why; it is left out of every figure, and the batch goes on.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import pickle
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from interlock.monitor.budgets.answers import AnswerScorer, stated_answer
from interlock.monitor.budgets.errors import BudgetError, RecordTimeout
from interlock.monitor.budgets.offline import ReplayStop, replay_governors
from interlock.monitor.budgets.phased import phase_fields, phase_summary, thinking_outcome
from interlock.monitor.budgets.policies import Policy
from interlock.monitor.budgets.probes import ProbeCache, Prober, evaluate_probe_policies, uses_probes
from interlock.monitor.budgets.records import TraceRecord, tokenize_records
from interlock.monitor.budgets.tokens import Tokenizer, resolve_tokenizer
from interlock.monitor.errors import ConfigError
from interlock.monitor.governor import Governor
from interlock.monitor.governors import BudgetPool
from interlock.monitor.governors.loop_guard import find_char_repeat, find_tandem_repeat

__all__ = ["DEFAULT_RECORD_SECONDS", "BudgetReport", "ends_in_loop", "evaluate", "evaluate_record", "finish_report",
           "summarise"]

# How long one record may take under all its policies (the command's --record-seconds): past it the record is
# an error in its place. A 4 MB trace (the largest read by default) takes about 66 s under the twelve default
# policies on a loaded core (benchmarks/budget_scaling.py); a 32k-token trace, about 2 s.
DEFAULT_RECORD_SECONDS = 120.0

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


def _replay(rec: TraceRecord, governors: Sequence[Governor], chunk_tokens: int,
            deadline: float | None = None) -> ReplayStop:
    return replay_governors(governors, rec.question, rec.text, starts=rec.starts, chunks=rec.chunks,
                            chunk_tokens=chunk_tokens, deadline=deadline,
                            phases=rec.phases if rec.chunks is None else ())


def _outcome(rec: TraceRecord, stop: ReplayStop, scorer: AnswerScorer) -> dict[str, Any]:
    answer = stated_answer(rec.text[:stop.chars], complete=stop.reason == "complete")
    return {**stop.to_dict(), "answer": answer.text if answer else None, "answer_kind": answer.kind if answer else None,
            "correct": scorer.correct(answer.text if answer else None, rec.reference), "na": None}


def _policy_outcome(rec: TraceRecord, policy: Policy, chunk_tokens: int, scorer: AnswerScorer,
                    extra: Sequence[Governor] = (), deadline: float | None = None) -> dict[str, Any]:
    governors = [*policy.governors(), *extra]
    try:
        stop = _replay(rec, governors, chunk_tokens, deadline)
    except BudgetError:
        raise
    except ConfigError as exc:  # e.g. EntropyStop on a trace without logprobs: not applicable, said why
        if not _has_token_data(rec):  # (the governor's own message speaks of live backends)
            return {"na": f"{policy.name} needs per-token logprobs or entropy; this trace has none (text traces "
                          "never do: use interlock trace files recorded from a model that reports them)"}
        return {"na": str(exc)}
    return thinking_outcome(rec, stop, governors, _outcome(rec, stop, scorer), scorer)


def _error(rec: TraceRecord, message: str) -> dict[str, Any]:
    return {"id": rec.id, "reference": rec.reference, "error": f"record {rec.id!r}: {message}", "policies": {}}


def _late(rec: TraceRecord, seconds: float) -> dict[str, Any]:
    return _error(rec, f"evaluating it took more than {seconds:g} s (the per-record deadline, --record-seconds); "
                       "left out")


def _has_token_data(rec: TraceRecord) -> bool:
    return rec.chunks is not None and any(c.logprobs is not None or c.entropy is not None for c in rec.chunks)


def evaluate_record(record: TraceRecord | Mapping[str, Any], policies: Sequence[Policy], *,
                    tokenizer: str | Tokenizer = "whitespace", chunk_tokens: int = 16,
                    scorer: AnswerScorer | None = None,
                    record_seconds: float | None = DEFAULT_RECORD_SECONDS) -> dict[str, Any]:
    """One record (a :class:`TraceRecord` or its ``to_dict()``) under each policy: a plain dict with the full
    trace's tokens, answer and grade, whether it ends in a loop, and per policy where it stopped, why, the answer
    it would have ended with and whether that is right. Pool policies need the batch: use :func:`evaluate`.

    Within ``record_seconds`` (``None``: no limit), else the dict is ``{"id", "reference", "error", "policies":
    {}}``, as it is for a reference math-verify cannot read."""
    for policy in policies:
        if policy.pool_tokens is not None:
            raise BudgetError(f"policy {policy.name!r} shares a pool across the batch: evaluate it with evaluate()")
    if record_seconds is not None and not record_seconds > 0:
        raise BudgetError(f"record_seconds must be a positive number of seconds, got {record_seconds}")
    deadline = None if record_seconds is None else time.perf_counter() + record_seconds
    rec = _record(record, tokenizer)
    scorer = scorer or _scorer()
    if not scorer.readable(rec.reference):
        return _error(rec, f"math-verify cannot read the reference {rec.reference[:60]!r} (no expression in it): "
                           "its answers cannot be scored; left out")
    full = stated_answer(rec.text, complete=True)
    out: dict[str, Any] = {
        "id": rec.id, "reference": rec.reference, "recorded_correct": rec.recorded_correct, "tokens": rec.n_tokens,
        "chars": len(rec.text), "runaway": ends_in_loop(rec.text),
        "answer": full.text if full else None, "answer_kind": full.kind if full else None,
        "correct": scorer.correct(full.text if full else None, rec.reference), **phase_fields(rec), "policies": {}}
    try:
        for policy in policies:
            out["policies"][policy.name] = _policy_outcome(rec, policy, chunk_tokens, scorer, deadline=deadline)
            if deadline is not None and time.perf_counter() > deadline:
                raise RecordTimeout("past the deadline")
    except RecordTimeout:
        assert record_seconds is not None
        return _late(rec, record_seconds)
    return out


def _worker(args: tuple[TraceRecord, Sequence[Policy], int, float | None]) -> dict[str, Any]:
    rec, policies, chunk_tokens, record_seconds = args
    return evaluate_record(rec, policies, chunk_tokens=chunk_tokens, record_seconds=record_seconds)


@dataclass
class BudgetReport:
    """Per-record outcomes and per-policy totals of one batch (one dataset)."""

    source: str
    tokenizer: str
    chunk_tokens: int
    records: list[dict[str, Any]]
    policies: list[dict[str, Any]] = field(default_factory=list)
    read_errors: list[str] = field(default_factory=list)

    @property
    def record_errors(self) -> list[str]:
        """Why each record that was read but could not be evaluated was left out (deadline, reference)."""
        return [r["error"] for r in self.records if "error" in r]

    def to_dict(self, *, with_records: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source, "tokenizer": self.tokenizer, "chunk_tokens": self.chunk_tokens,
                               "traces": len(self.records) - len(self.record_errors),
                               "read_errors": self.read_errors, "record_errors": self.record_errors,
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


# progress(stage, done, total): "tokenizing" (0 of the records, once), "replaying" (records whose per-record
# policies are done), then each pool policy by name (records it has shared its budget with)
Progress = Callable[[str, int, int], None]


def evaluate(records: Sequence[TraceRecord], policies: Sequence[Policy], *, tokenizer: str | Tokenizer = "whitespace",
             chunk_tokens: int = 16, workers: int = 1, source: str = "", read_errors: Sequence[str] = (),
             record_seconds: float | None = DEFAULT_RECORD_SECONDS, progress: Progress | None = None,
             probe_cache: ProbeCache | None = None, prober: Prober | None = None) -> BudgetReport:
    """Every record under every policy; ``workers > 1`` replays per-record policies in that many processes. Each
    record is held to ``record_seconds`` (its pool policies to as much again), past which it is an error.
    ``progress`` is told how far it got (``interlock budget`` shows it on a terminal). Probe policies (``probe``,
    ``deer``, ``eat``) answer their probes from ``probe_cache``, asking ``prober`` for the ones it lacks (see
    :mod:`interlock.monitor.budgets.probes`)."""
    if chunk_tokens < 1:
        raise BudgetError(f"chunk_tokens must be >= 1, got {chunk_tokens}")
    if workers < 1:
        raise BudgetError(f"workers must be >= 1, got {workers}")
    tell = progress or (lambda stage, done, total: None)
    tell("tokenizing", 0, len(records))
    tok = resolve_tokenizer(tokenizer)
    recs = tokenize_records(list(records), tok)
    probing = [p for p in policies if uses_probes(p)]
    if probing and probe_cache is None:
        raise BudgetError(f"policy {probing[0].name!r} probes the model: give a probe cache (and a probe model for "
                          "what it lacks)")
    single = [p for p in policies if p.pool_tokens is None and p not in probing]
    results: list[dict[str, Any]] = []
    if workers > 1 and len(recs) > 1 and single and _picklable(single):
        methods = multiprocessing.get_all_start_methods()  # no fork: the parent may hold tokenizer threads
        ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            for result in pool.map(_worker, [(r, single, chunk_tokens, record_seconds) for r in recs],
                                   chunksize=max(1, len(recs) // (workers * 8))):
                results.append(result)
                tell("replaying", len(results), len(recs))
    else:
        for r in recs:
            results.append(evaluate_record(r, single, chunk_tokens=chunk_tokens, record_seconds=record_seconds))
            tell("replaying", len(results), len(recs))
    if probing:
        assert probe_cache is not None
        evaluate_probe_policies(recs, results, probing, cache=probe_cache, prober=prober, chunk_tokens=chunk_tokens,
                                scorer=_scorer())
    return finish_report(recs, results, policies, tokenizer=tok.name, chunk_tokens=chunk_tokens, source=source,
                         read_errors=read_errors, record_seconds=record_seconds, progress=progress)


def finish_report(recs: Sequence[TraceRecord], results: list[dict[str, Any]], policies: Sequence[Policy], *,
                  tokenizer: str, chunk_tokens: int, source: str = "", read_errors: Sequence[str] = (),
                  record_seconds: float | None = DEFAULT_RECORD_SECONDS,
                  progress: Progress | None = None) -> BudgetReport:
    """The report of a batch whose per-record policies are done (``results``, in the order of ``recs``, which
    are tokenised): runs the pool policies in order over the batch (records in error left out), orders each
    record's policies as given, and summarises. Shared by :func:`evaluate` and the Ray engine (which maps the
    per-record part)."""
    scorer = _scorer()
    pairs = [(rec, result) for rec, result in zip(recs, results, strict=True) if "error" not in result]
    for policy in policies:
        if policy.pool_tokens is None or (pairs and policy.name in pairs[0][1]["policies"]):
            continue  # (a probe policy with a pool ran with its probes)
        budget = BudgetPool(policy.pool_tokens * len(pairs), learn=policy.pool_learn)
        budget.plan([r.question for r, _ in pairs])
        for done, (rec, result) in enumerate(pairs, 1):
            if "error" in result:  # (past its deadline under an earlier pool)
                continue
            share = budget.governor_for(rec.question)
            deadline = None if record_seconds is None else time.perf_counter() + record_seconds
            try:
                result["policies"][policy.name] = _policy_outcome(rec, policy, chunk_tokens, scorer, extra=[share],
                                                                  deadline=deadline)
            except RecordTimeout:
                assert record_seconds is not None
                result.clear()
                result.update(_late(rec, record_seconds))
            if progress is not None:
                progress(policy.name, done, len(pairs))
    order = [p.name for p in policies]
    for result in results:
        if "error" not in result:
            result["policies"] = {name: result["policies"][name] for name in order}
    report = BudgetReport(source, tokenizer, chunk_tokens, results, read_errors=list(read_errors))
    report.policies = summarise(results, order)
    return report


def summarise(results: Sequence[Mapping[str, Any]], policies: Sequence[str]) -> list[dict[str, Any]]:
    """Per policy, over the records it applied to: tokens spent against the uncapped traces, right answers,
    right answers lost (false stops) and gained, runaways stopped early, forced and rollback stops. Records in
    error are in no figure."""
    results = [r for r in results if "error" not in r]
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
        **({"probes": sum(o["probes"] for _, o in done), "probe_tokens": sum(o["probe_tokens"] for _, o in done)}
           if any("probes" in o for _, o in done) else {}),
        **phase_summary(pairs),
    }
