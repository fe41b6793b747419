"""Offline replay: import recorded or foreign traces, run verifiers over them, report in JSON and HTML.

``importers`` turns files into traces (streamed), ``engine`` runs the verifiers over them in a batch (worker
processes in ``workers``, results in ``results``, files written by ``output``), ``report_html`` writes the
self-contained page, and ``ray_engine`` does the same over a Ray cluster (optional: ``interlock[ray]``, imported
only when used). Live replays of a trace file through a monitor use ``generators.Replay``.
"""

from __future__ import annotations

from interlock.monitor.replay.engine import (
    DEFAULT_TIMEOUT,
    ReadFailure,
    ReplayTotals,
    TraceReport,
    load_verifier,
    record_json,
    replay_stream,
    replay_traces,
    scan_trace,
    verdict_record,
)
from interlock.monitor.replay.importers import (
    FORMATS,
    FieldNames,
    Format,
    ImportedTrace,
    detect_format,
    read_traces,
    traces_from_line,
    traces_from_record,
)
from interlock.monitor.replay.output import ResultWriter
from interlock.monitor.replay.report_html import render_html, write_html

__all__ = [
    "DEFAULT_TIMEOUT",
    "FORMATS",
    "FieldNames",
    "Format",
    "ImportedTrace",
    "ReadFailure",
    "ReplayTotals",
    "ResultWriter",
    "TraceReport",
    "detect_format",
    "load_verifier",
    "read_traces",
    "record_json",
    "render_html",
    "replay_stream",
    "replay_traces",
    "scan_trace",
    "traces_from_line",
    "traces_from_record",
    "verdict_record",
    "write_html",
]
