"""Replay on Ray Data: the same records, the same results, in the same order, over a cluster.

:func:`replay_dataset` maps a ``ray.data.Dataset`` through :class:`ReplayBatch` (``map_batches`` with a callable
class, so each worker builds its verifiers once) and gives a dataset of result rows (the columns of
:mod:`interlock.monitor.replay.output`, ``record`` being the JSON line the local engine prints).
:func:`read_records` makes the dataset from files without reading them on the driver: each JSON Lines file is
cut into byte ranges at line starts (the driver only counts newlines, to number lines exactly as the local reader
does), Parquet files are read by Ray's own reader, and other files (trace files, text, JSON arrays) become one
row each that a worker reads whole. :func:`replay_files` is what ``interlock replay --engine ray`` runs.

Ray is an optional extra (``pip install 'interlock[ray]'``); ``ray.init()`` starts a local cluster when there is
none, ``address=`` joins one. Order is kept (``preserve_order``). A record's deadline (``timeout``) cancels its
checks in the worker; only the local engine's worker processes can kill a check hung in native code.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from interlock.monitor.errors import ConfigError
from interlock.monitor.phases import ThinkingTags
from interlock.monitor.replay.importers import (
    FieldNames,
    ImportedTrace,
    detect_format,
    read_traces,
    traces_from_line,
    traces_from_record,
)
from interlock.monitor.replay.openai_logs import is_stream_log
from interlock.monitor.replay.output import ResultWriter, result_row
from interlock.monitor.replay.results import ReadFailure, ReplayTotals, TraceReport, record_json
from interlock.monitor.replay.scanning import in_worker, scan_trace
from interlock.monitor.verifier import Verifier

__all__ = ["ReplayBatch", "read_records", "replay_dataset", "replay_files"]

_SPLIT_BYTES = 8 << 20  # a read task's share of a JSON Lines file
_ROW_COLUMNS = ("path", "line", "raw", "format", "last")


def _ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError:
        raise ConfigError("the Ray engine needs Ray Data: pip install 'interlock[ray]'") from None
    return ray


def _init(address: str | None) -> None:
    ray = _ray()
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # its progress lines would bury ours on stderr


class ReplayBatch:
    """The per-worker replayer for ``map_batches``: builds its verifiers once, replays each row's traces.

    A row is either a record read by :func:`read_records` (``path``, ``line``, ``raw``: the line's text, or null
    for a whole file to read here, ``format``) or a record of your own dataset (its columns are the record's
    fields, as in a JSON Lines file; a null is an absent field, and a record without an id gets one from its
    content's hash). Each trace gives one output row; a GSM8K record gives one per solution.
    """

    def __init__(self, verifiers: Sequence[str | Verifier], fields: FieldNames | None = None,
                 format: str = "jsonl", timeout: float | None = None, cwd: str | None = None,
                 tags: Sequence[ThinkingTags] | None = None) -> None:
        from interlock.monitor.replay.engine import load_verifier

        if cwd is not None and os.path.isdir(cwd):
            os.chdir(cwd)  # files named relative to the driver (read whole here) resolve as they did there

        self.verifiers = [in_worker(load_verifier(v) if isinstance(v, str) else v) for v in verifiers]
        self.fields = fields or FieldNames()
        self.format = format
        self.timeout = timeout
        self.tags = None if tags is None else tuple(tags)
        self.runner = asyncio.Runner()

    def __call__(self, batch: Any) -> dict[str, list[Any]]:
        rows = batch.to_pylist() if hasattr(batch, "to_pylist") else _rows_of(batch)
        out: dict[str, list[Any]] = {k: [] for k in ("type", "reason", "id", "path", "line", "passed", "tokens",
                                                      "failures", "record")}
        for row in rows:
            for item in self._items(row):
                result = item if isinstance(item, ReadFailure) else self.runner.run(self._scan(item))
                for key, value in result_row(record_json(result.to_dict())).items():
                    out[key].append(value)
        return out

    def _items(self, row: dict[str, Any]) -> Iterator[ImportedTrace | ReadFailure]:
        if set(row) == set(_ROW_COLUMNS):
            path, line, fmt = row["path"], row["line"], row["format"]
            items = (traces_from_line(row["raw"], path=path, line=line, format=fmt, fields=self.fields,
                                      last=bool(row["last"]), tags=self.tags)
                     if row["raw"] is not None else list(read_traces(path, format=fmt, fields=self.fields,
                                                                     tags=self.tags)))
        else:
            record = {k: v for k, v in row.items() if v is not None}
            ident = hashlib.sha1(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()[:12]
            record.setdefault(self.fields.id, ident)
            items = traces_from_record(record, path="dataset", line=0, format=self.format, fields=self.fields,
                                       tags=self.tags)
        for item in items:
            yield item if isinstance(item, ImportedTrace) else ReadFailure.from_error(item)

    async def _scan(self, item: ImportedTrace) -> TraceReport | ReadFailure:
        import anyio

        with anyio.move_on_after(self.timeout) as scope:
            return await scan_trace(item, self.verifiers)
        assert scope.cancelled_caught
        return ReadFailure(item.path, item.line, f"{item.id}: replay timed out after {self.timeout:g} s",
                           reason="timeout", id=item.id)


def _rows_of(batch: dict[str, Any]) -> list[dict[str, Any]]:
    keys = list(batch)
    n = len(batch[keys[0]]) if keys else 0
    return [{k: _plain(batch[k][i]) for k in keys} for i in range(n)]


def _plain(value: Any) -> Any:
    return value.tolist() if hasattr(value, "tolist") else value


def _splits(path: str, size: int) -> list[tuple[int, int, int]]:
    """``(start, end, first line number)`` byte ranges of about ``size`` bytes, each starting at a line start."""
    out: list[tuple[int, int, int]] = []
    start = pos = 0
    first_line = 1
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            pos += len(raw)
            if pos - start >= size:
                out.append((start, pos, first_line))
                start, first_line = pos, number + 1
    if pos > start or not out:
        out.append((start, pos, first_line))
    return out


def _read_block(path: str, start: int, end: int, first_line: int, fmt: str, last_range: bool,
                cwd: str) -> list[Any]:
    return [_read_range(path, start, end, first_line, fmt, last_range, cwd)]


def _read_range(path: str, start: int, end: int, first_line: int, fmt: str, last_range: bool, cwd: str) -> Any:
    import pyarrow as pa

    with open(os.path.join(cwd, path), "rb") as f:  # a relative path is the driver's; results keep it as given
        f.seek(start)
        data = f.read(end - start)
    lines = data.split(b"\n")
    ended_with_newline = data.endswith(b"\n")
    if ended_with_newline:
        lines.pop()
    rows: dict[str, list[Any]] = {k: [] for k in _ROW_COLUMNS}
    for i, raw in enumerate(lines):
        if not raw.strip():
            continue
        rows["path"].append(path)
        rows["line"].append(first_line + i)
        rows["raw"].append(raw)
        rows["format"].append(fmt)
        rows["last"].append(last_range and i == len(lines) - 1 and not ended_with_newline)
    return pa.table({"path": pa.array(rows["path"], pa.string()), "line": pa.array(rows["line"], pa.int64()),
                     "raw": pa.array(rows["raw"], pa.binary()), "format": pa.array(rows["format"], pa.string()),
                     "last": pa.array(rows["last"], pa.bool_())})


def read_records(paths: Sequence[str | os.PathLike[str]], *, format: str = "auto",
                 split_bytes: int | None = None) -> Any:
    """A ``ray.data.Dataset`` of the records of ``paths`` (rows for :class:`ReplayBatch`), in file order.

    ``split_bytes``: the share of a JSON Lines file one read task (one block) takes; by default a quarter of the
    file per CPU of the cluster, between 64 KiB and 8 MiB, so that small files still spread over the workers.
    """
    ray = _ray()
    _keep_order(ray.data.DataContext.get_current())
    cpus = max(1, int(ray.available_resources().get("CPU", 1))) if ray.is_initialized() else 1
    import pyarrow as pa
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    tasks: list[tuple[Callable[[], Any], int]] = []
    for p in paths:
        path = str(p)
        try:
            fmt = detect_format(path) if format == "auto" else format
        except Exception:  # an empty or unreadable file: a worker reads it whole and reports it as the local reader
            fmt = "auto"
        if (fmt in ("jsonl", "gsm8k", "skythought", "openai") and not _starts_with_bracket(path)
                and _one_object_per_line(path) and not (fmt == "openai" and _stream_log(path))):
            share = split_bytes or max(64 << 10, min(_SPLIT_BYTES, os.path.getsize(path) // (4 * cpus)))
            ranges = _splits(path, share)
            final = len(ranges) - 1
            for n, (start, end, line) in enumerate(ranges):
                tasks.append((functools.partial(_read_block, path, start, end, line, fmt, n == final, os.getcwd()),
                              end - start))
        else:
            table = pa.table({"path": pa.array([path], pa.string()), "line": pa.array([None], pa.int64()),
                              "raw": pa.array([None], pa.binary()), "format": pa.array([fmt], pa.string()),
                              "last": pa.array([False], pa.bool_())})
            tasks.append((functools.partial(list, [table]), 0))

    class _Records(Datasource):
        def __init__(self) -> None:
            super().__init__()  # type: ignore[no-untyped-call]

        def estimate_inmemory_data_size(self) -> int:
            return sum(size for _, size in tasks)

        def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                           data_context: Any = None) -> list[Any]:
            return [ReadTask(fn, BlockMetadata(num_rows=None, size_bytes=size, exec_stats=None, input_files=None))
                    for fn, size in tasks]

    # Reading is a little I/O: it takes no CPU slot, so the replaying actors can have them all.
    return ray.data.read_datasource(_Records(), override_num_blocks=max(1, len(tasks)),
                                    ray_remote_args={"num_cpus": 0})


def _keep_order(context: Any) -> None:
    """Results in input order (Ray Data may otherwise hand blocks on as they finish), and no progress bars."""
    if context is not None:
        context.execution_options.preserve_order = True
        context.enable_progress_bars = False


def _starts_with_bracket(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(4096).lstrip().startswith(b"[")


def _stream_log(path: str) -> bool:
    """A streamed log (its events put together across lines): read whole by one worker."""
    with open(path, "rb") as f:
        first = next((raw for raw in f if raw.strip()), b"")
    return is_stream_log(first)


def _one_object_per_line(path: str) -> bool:
    """False for one JSON object over several lines (the local reader reads such a file whole)."""
    with open(path, "rb") as f:
        for raw in f:
            if raw.strip():
                try:
                    json.loads(raw)
                except (ValueError, RecursionError):
                    return not raw.lstrip().startswith(b"{")
                return True
    return True


def replay_dataset(dataset: Any, verifiers: Sequence[str | Verifier], *, fields: FieldNames | None = None,
                   format: str = "jsonl", timeout: float | None = 60.0, batch_size: int = 64,
                   concurrency: int | None = None, tags: Sequence[ThinkingTags] | None = None) -> Any:
    """The result rows of replaying ``dataset`` (records, or :func:`read_records` rows) through ``verifiers``
    (registered names, ``module:attribute`` or Verifier objects that pickle), in the dataset's order."""
    ray = _ray()
    from interlock.monitor.replay.engine import load_verifier

    for spec in verifiers:  # here first: a name that does not load fails now, not in every worker
        if isinstance(spec, str):
            load_verifier(spec)
    _keep_order(ray.data.DataContext.get_current())
    _keep_order(getattr(dataset, "context", None))
    actors = concurrency or max(1, int(ray.available_resources().get("CPU", 1)))
    return dataset.map_batches(ReplayBatch, fn_constructor_args=(list(verifiers), fields, format, timeout,
                                                                  os.getcwd(), tags),
                               batch_size=batch_size, batch_format="pyarrow", concurrency=(1, actors))


def replay_files(paths: Sequence[str | os.PathLike[str]], verifiers: Sequence[str | Verifier], *,
                 fields: FieldNames | None = None, format: str = "auto", address: str | None = None,
                 timeout: float | None = 60.0, output: str | os.PathLike[str] | None = None,
                 on_line: Callable[[str], None] | None = None, split_bytes: int | None = None,
                 tags: Sequence[ThinkingTags] | None = None) -> ReplayTotals:
    """Replay files on Ray: each result's JSON line to ``on_line`` (and ``output``), in input order; the totals.

    Rows stream back to the driver in order, so the driver holds a few blocks at a time, not the results.
    """
    _init(address)
    dataset = replay_dataset(read_records(paths, format=format, split_bytes=split_bytes), verifiers, fields=fields,
                             timeout=timeout, tags=tags)
    totals = ReplayTotals()
    writer = ResultWriter(output) if output is not None else None
    try:
        for batch in dataset.iter_batches(batch_format="pyarrow", batch_size=None):
            for line in batch.column("record").to_pylist():
                totals.add_record(json.loads(line))
                if writer is not None:
                    writer.write_line(line)
                if on_line is not None:
                    on_line(line)
    finally:
        if writer is not None:
            writer.close()
    return totals
