"""Offline replay: import recorded or foreign traces, run verifiers over them, report in JSON and HTML.

``importers`` turns files into traces, ``engine`` runs the verifiers over them in a batch, ``report_html``
writes the self-contained page. Live replays of a trace file through a monitor use ``generators.Replay``.
"""

from __future__ import annotations

from interlock.monitor.replay.engine import (
    ReadFailure,
    ReplayTotals,
    TraceReport,
    load_verifier,
    replay_traces,
    scan_trace,
    verdict_record,
)
from interlock.monitor.replay.importers import FORMATS, FieldNames, Format, ImportedTrace, detect_format, read_traces
from interlock.monitor.replay.report_html import render_html, write_html

__all__ = [
    "FORMATS",
    "FieldNames",
    "Format",
    "ImportedTrace",
    "ReadFailure",
    "ReplayTotals",
    "TraceReport",
    "detect_format",
    "load_verifier",
    "read_traces",
    "render_html",
    "replay_traces",
    "scan_trace",
    "verdict_record",
    "write_html",
]
