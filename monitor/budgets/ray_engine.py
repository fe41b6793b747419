"""The budget evaluator on Ray Data: the same per-record dicts, in the same order, and the same table, over a
cluster.

:func:`evaluate_dataset` maps :func:`~interlock.monitor.budgets.evaluate.evaluate_record` over a
``ray.data.Dataset`` of records (``TraceRecord.to_dict()`` rows) with :class:`BudgetBatch`, a callable class for
``map_batches``, so each worker builds its tokenizer once. It reuses the replay engine's cluster start and its
ordering (``preserve_order``). :func:`evaluate_on_ray` is what ``interlock budget --engine ray`` runs.

Pool policies share one budget across the batch, so they cannot be mapped record by record:
:func:`evaluate_dataset` refuses them (a :class:`BudgetError` naming the policy); :func:`evaluate_on_ray`, whose
records are on the driver already, runs them there after collecting the mapped results, as :func:`evaluate` does.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from typing import Any

from interlock.monitor.budgets.errors import BudgetError
from interlock.monitor.budgets.evaluate import DEFAULT_RECORD_SECONDS, BudgetReport, evaluate_record, finish_report
from interlock.monitor.budgets.policies import Policy
from interlock.monitor.budgets.records import TraceRecord, tokenize_records
from interlock.monitor.budgets.tokens import Tokenizer, resolve_tokenizer
from interlock.monitor.replay.ray_engine import _init, _keep_order, _ray, _rows_of

__all__ = ["BudgetBatch", "evaluate_dataset", "evaluate_on_ray"]


class BudgetBatch:
    """The per-worker evaluator for ``map_batches``: resolves the tokenizer once (the embedded model's takes about
    a second to load), then evaluates each row. A row is a record's ``TraceRecord.to_dict()``; the output has the
    record's ``id`` and its result dict, pickled (``result``), so it comes back exactly as the local engine's."""

    def __init__(self, policies: Sequence[Policy], tokenizer: str | Tokenizer, chunk_tokens: int,
                 record_seconds: float | None = DEFAULT_RECORD_SECONDS) -> None:
        self.policies = list(policies)
        self.tokenizer = resolve_tokenizer(tokenizer)
        self.chunk_tokens = chunk_tokens
        self.record_seconds = record_seconds

    def __call__(self, batch: Any) -> dict[str, list[Any]]:
        rows = batch.to_pylist() if hasattr(batch, "to_pylist") else _rows_of(batch)
        recs = tokenize_records([TraceRecord.from_dict(row) for row in rows], self.tokenizer)
        results = [evaluate_record(rec, self.policies, chunk_tokens=self.chunk_tokens,
                                   record_seconds=self.record_seconds) for rec in recs]
        return {"id": [r["id"] for r in results], "result": [pickle.dumps(r) for r in results]}


def _refuse_pools(policies: Sequence[Policy]) -> None:
    for policy in policies:
        if policy.pool_tokens is not None:
            raise BudgetError(f"policy {policy.name!r} shares one budget across the batch and cannot be mapped "
                              "record by record: evaluate it with evaluate() or evaluate_on_ray()")


def evaluate_dataset(dataset: Any, policies: Sequence[Policy], *, tokenizer: str | Tokenizer = "whitespace",
                     chunk_tokens: int = 16, batch_size: int = 32, concurrency: int | None = None,
                     record_seconds: float | None = DEFAULT_RECORD_SECONDS) -> list[dict[str, Any]]:
    """Each record of ``dataset`` (rows of ``TraceRecord.to_dict()``) under each policy: the dicts
    :func:`evaluate_record` gives, in the dataset's order (``summarise(results, names)`` makes the table rows).

    Needs a running Ray (``ray.init()``). Pool policies are refused (see the module's docstring)."""
    if chunk_tokens < 1:
        raise BudgetError(f"chunk_tokens must be >= 1, got {chunk_tokens}")
    _refuse_pools(policies)
    ray = _ray()
    resolve_tokenizer(tokenizer)  # here first: a tokenizer that does not load fails now, not in every worker
    _keep_order(ray.data.DataContext.get_current())
    _keep_order(getattr(dataset, "context", None))
    actors = concurrency or max(1, int(ray.available_resources().get("CPU", 1)))
    mapped = dataset.map_batches(BudgetBatch, fn_constructor_args=(list(policies), tokenizer, chunk_tokens,
                                                                   record_seconds),
                                 batch_size=batch_size, batch_format="pyarrow", concurrency=(1, actors))
    results: list[dict[str, Any]] = []
    for batch in mapped.iter_batches(batch_format="pyarrow", batch_size=None):
        results.extend(pickle.loads(blob) for blob in batch.column("result").to_pylist())
    return results


def evaluate_on_ray(records: Sequence[TraceRecord], policies: Sequence[Policy], *,
                    tokenizer: str | Tokenizer = "whitespace", chunk_tokens: int = 16, source: str = "",
                    read_errors: Sequence[str] = (), address: str | None = None,
                    record_seconds: float | None = DEFAULT_RECORD_SECONDS) -> BudgetReport:
    """:func:`evaluate` on Ray (joining ``address``, else starting a local cluster when none runs): per-record
    policies mapped over the cluster, pool policies run here afterwards in order; the same report."""
    if chunk_tokens < 1:
        raise BudgetError(f"chunk_tokens must be >= 1, got {chunk_tokens}")
    _init(address)
    ray = _ray()
    tok = resolve_tokenizer(tokenizer)
    single = [p for p in policies if p.pool_tokens is None]
    recs = list(records)
    if single and recs:
        dataset = ray.data.from_items([r.to_dict() for r in recs])
        results = evaluate_dataset(dataset, single, tokenizer=tokenizer, chunk_tokens=chunk_tokens,
                                   record_seconds=record_seconds)
    else:
        results = [evaluate_record(r, [], tokenizer=tok, chunk_tokens=chunk_tokens, record_seconds=record_seconds)
                   for r in recs]
    if len(single) < len(policies):  # the pools need the batch's token starts here
        recs = tokenize_records(recs, tok)
    return finish_report(recs, results, policies, tokenizer=tok.name, chunk_tokens=chunk_tokens, source=source,
                         read_errors=read_errors, record_seconds=record_seconds)
