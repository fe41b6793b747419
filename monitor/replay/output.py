"""Write one result per record to JSON Lines or Parquet, as it arrives (streamed, never held whole).

Both engines write through here, so their files are the same byte for byte (JSON Lines) or row for row
(Parquet). A Parquet row has flat columns to filter on (``type``, ``reason``, ``id``, ``path``, ``line``,
``passed``, ``tokens``, ``failures``) and ``record``: the whole result as the JSON line ``--json`` prints.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from interlock.monitor.errors import ConfigError

__all__ = ["PARQUET_SUFFIXES", "ResultWriter", "result_row"]

PARQUET_SUFFIXES = (".parquet", ".pq")


def result_row(line: str) -> dict[str, Any]:
    """The Parquet row of one result, from its JSON line."""
    record = json.loads(line)
    is_trace = record["type"] == "trace"
    return {"type": record["type"], "reason": record.get("reason"), "id": record.get("id"),
            "path": record.get("path"), "line": record.get("line"),
            "passed": record["passed"] if is_trace else None, "tokens": record["tokens"] if is_trace else None,
            "failures": sum(v["kind"] == "fail" for v in record["verdicts"]) if is_trace else None,
            "record": line}


def _schema() -> Any:
    import pyarrow as pa

    return pa.schema([("type", pa.string()), ("reason", pa.string()), ("id", pa.string()), ("path", pa.string()),
                      ("line", pa.int64()), ("passed", pa.bool_()), ("tokens", pa.int64()),
                      ("failures", pa.int64()), ("record", pa.string())])


class ResultWriter:
    """Appends results (their JSON lines) to ``path``: Parquet for ``.parquet``/``.pq``, else JSON Lines."""

    def __init__(self, path: str | os.PathLike[str], *, rows_per_group: int = 1024) -> None:
        self.path = Path(path)
        self.parquet = self.path.suffix.lower() in PARQUET_SUFFIXES
        self.count = 0
        self._rows: list[dict[str, Any]] = []
        self._rows_per_group = rows_per_group
        self._text: IO[str] | None = None
        self._parquet: Any = None
        try:
            if self.parquet:
                try:
                    import pyarrow.parquet as pq
                except ImportError:
                    raise ConfigError("writing Parquet needs pyarrow: pip install 'interlock[ray]'") from None
                self._parquet = pq.ParquetWriter(str(self.path), _schema())
            else:
                self._text = self.path.open("w", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write {self.path}: {exc}") from None

    def write_line(self, line: str) -> None:
        """Append one result given as its JSON line (:func:`interlock.monitor.replay.results.record_json`)."""
        self.count += 1
        if self._text is not None:
            self._text.write(line + "\n")
            return
        self._rows.append(result_row(line))
        if len(self._rows) >= self._rows_per_group:
            self._flush()

    def write(self, record: Mapping[str, Any]) -> None:
        from interlock.monitor.replay.results import record_json

        self.write_line(record_json(record))

    def _flush(self) -> None:
        if self._rows and self._parquet is not None:
            import pyarrow as pa

            self._parquet.write_table(pa.Table.from_pylist(self._rows, schema=_schema()))
            self._rows = []

    def close(self) -> None:
        if self._text is not None:
            self._text.close()
            self._text = None
        if self._parquet is not None:
            self._flush()
            self._parquet.close()
            self._parquet = None

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
