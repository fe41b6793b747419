"""What a replay reports: a :class:`TraceReport` per trace, a :class:`ReadFailure` where there is none, and the
:class:`ReplayTotals`; each with the JSON form the command line prints and the engines compare equal.

Output text follows the project's policy for lone surrogates (which JSON allows and UTF-8 cannot encode):
:func:`record_json` replaces them with U+FFFD and says so in the record (``"replaced": {"surrogates": n}``).
"""

from __future__ import annotations

import collections
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from interlock.monitor.errors import TraceFileError
from interlock.monitor.phases import ANSWER, THINKING, PhaseRuns, phase_at
from interlock.monitor.steps import step_ends
from interlock.monitor.tracefile import replace_surrogates
from interlock.monitor.verdicts import Fail, Pass, Span, Unknown, Verdict

__all__ = ["ReadFailure", "ReplayTotals", "TraceReport", "format_rate", "record_json", "verdict_record"]


def record_json(record: Mapping[str, Any]) -> str:
    """One result as a line of JSON (UTF-8 text, not ASCII-escaped), lone surrogates replaced and counted."""
    line = json.dumps(record, ensure_ascii=False)
    line, surrogates = replace_surrogates(line)
    if surrogates:
        line = line[:-1] + f', "replaced": {{"surrogates": {surrogates}}}}}'
    return line


def verdict_record(verdict: Verdict, text: str) -> dict[str, Any]:
    """A verdict as the JSON report writes it: verifier, kind, action, message, span ``[start, end)``, quote."""
    span = verdict.span
    record: dict[str, Any] = {"verifier": verdict.verifier, "kind": verdict.kind,
                              "action": verdict.action.value if isinstance(verdict, Fail) and verdict.action else None,
                              "message": verdict.message if isinstance(verdict, Fail | Unknown) else verdict.note,
                              "span": span.to_list() if span is not None else None,
                              "text": text[span.start:span.end] if span is not None else None}
    if isinstance(verdict, Fail):
        record["feedback"] = verdict.feedback_text
        record["claim"] = verdict.claim
    return record


@dataclass(frozen=True)
class TraceReport:
    """What the verifiers said about one trace, with the trace's id, labels and where it came from."""

    id: str
    text: str
    verdicts: tuple[Verdict, ...]
    labels: Mapping[str, Any] = field(default_factory=dict)
    prompt: str = ""
    path: str | None = None
    line: int | None = None
    tokens: int = 0
    injected: tuple[Span, ...] = ()  # text the recorded run's monitor wrote (feedback): shown, never checked
    errors: tuple[str, ...] = ()  # verifiers that raised or timed out (their verdict is Unknown)
    seconds: float = 0.0
    warnings: tuple[str, ...] = ()  # what the reader accepted with a caveat (a trace file cut mid-line)
    phases: PhaseRuns = ()  # where the thinking and the answer begin (``()``: all answer)
    thinking_tokens: int = 0  # of ``tokens``, those of the thinking

    @property
    def failures(self) -> tuple[Fail, ...]:
        return tuple(v for v in self.verdicts if isinstance(v, Fail))

    @property
    def first_violation(self) -> Fail | None:
        """The failure the live monitor would have acted on: earliest span, then the strongest action."""
        fails = self.failures
        if not fails:
            return None
        return min(fails, key=lambda v: ((v.span or Span(0, 0)).start, -(v.action.strength if v.action else 0)))

    @property
    def outcome(self) -> str:
        """As a run's outcome: "violation" (a verifier failed it), "undecided" (none failed, but a check could not
        decide: a timeout, an error, text past a reading bound), "verified" (checks judged some of it and
        passed) or "unchecked" (nothing in it could be checked)."""
        if self.failures:
            return "violation"
        if any(isinstance(v, Unknown) for v in self.verdicts):
            return "undecided"
        return "verified" if any(isinstance(v, Pass) and v.checked for v in self.verdicts) else "unchecked"

    @property
    def passed(self) -> bool:
        """Every check decided and none failed: an undecided check is never shown as passed."""
        return self.outcome in ("verified", "unchecked")

    def steps(self) -> list[tuple[Span, bool]]:
        """The trace's steps as the scheduler cuts them, with whether each is injected text."""
        cuts = {0, len(self.text)}
        for span in self.injected:
            cuts.update((span.start, span.end))
        cuts.update(start for start, _ in self.phases)  # a phase change ends a step
        cuts.update(step_ends(self.text, 0))
        bounds = sorted(c for c in cuts if 0 <= c <= len(self.text))
        out = []
        for start, end in itertools.pairwise(bounds):
            if end > start:
                out.append((Span(start, end), any(s.contains(Span(start, end)) for s in self.injected)))
        return out

    def to_dict(self) -> dict[str, Any]:
        first = self.first_violation
        return {"type": "trace", "id": self.id, "labels": dict(self.labels), "path": self.path, "line": self.line,
                "passed": self.passed, "outcome": self.outcome, "tokens": self.tokens, "chars": len(self.text),
                "verdicts": [self._verdict(v) for v in self.verdicts],
                "first_violation": self._verdict(first) if first is not None else None,
                "errors": list(self.errors), "warnings": list(self.warnings), **self._phase_fields()}

    def _verdict(self, verdict: Verdict) -> dict[str, Any]:
        """A verdict's record; in a trace with a thinking, with the phase its span starts in."""
        record = verdict_record(verdict, self.text)
        if self.phases and verdict.span is not None:
            record["phase"] = phase_at(self.phases, verdict.span.start)
        return record

    def _phase_fields(self) -> dict[str, Any]:
        """For a trace with a thinking: its phase runs and its tokens per phase."""
        if not self.phases:
            return {}
        return {"phases": [[s, p] for s, p in self.phases], "thinking_tokens": self.thinking_tokens,
                "answer_tokens": self.tokens - self.thinking_tokens}


@dataclass(frozen=True)
class ReadFailure:
    """A trace (or a record of a file) that gave no report; the batch went on without it.

    ``reason``: ``"read"`` (it could not be read), ``"timeout"`` (its replay ran past the per-record timeout and
    its worker was killed) or ``"crash"`` (its worker died under it, e.g. a segfault in native code).
    """

    path: str | None
    line: int | None
    message: str
    reason: str = "read"
    id: str | None = None

    @classmethod
    def from_error(cls, error: TraceFileError) -> ReadFailure:
        return cls(error.path, error.line, str(error))

    def to_dict(self) -> dict[str, Any]:
        return {"type": "error", "reason": self.reason, "id": self.id, "path": self.path, "line": self.line,
                "message": self.message}


def format_rate(value: float) -> str:
    """A throughput for people, to three significant figures at most: 245.94 -> 246, 30.74 -> 30.7,
    1619.03 -> 1,619 (the JSON totals keep two decimals)."""
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


@dataclass
class ReplayTotals:
    """Counts over a batch: traces (passed, failed, undecided), read failures, verdicts by kind and verifier,
    throughput, and for every boolean label (``is_correct``) how many traces of each value a verifier flagged."""

    traces: int = 0
    read_errors: int = 0
    replay_errors: int = 0  # timed out or crashed (their workers killed)
    passed: int = 0
    failed: int = 0  # a verifier failed them
    undecided: int = 0  # none failed, but a check could not decide
    tokens: int = 0
    seconds: float = 0.0
    verdicts: collections.Counter[str] = field(default_factory=collections.Counter)
    by_verifier: dict[str, collections.Counter[str]] = field(default_factory=dict)
    by_label: dict[str, dict[str, collections.Counter[str]]] = field(default_factory=dict)
    thinking_tokens: int = 0
    # verdict kinds by the phase their span starts in (a trace without a thinking is all answer)
    by_phase: dict[str, collections.Counter[str]] = field(default_factory=dict)

    def _phase(self, phase: str | None, kind: str) -> None:
        if phase is not None:
            self.by_phase.setdefault(phase, collections.Counter())[kind] += 1

    def add(self, item: TraceReport | ReadFailure) -> None:
        if isinstance(item, ReadFailure):
            self.add_record(item.to_dict())
            return
        self.traces += 1
        self._count(item.outcome)
        self.tokens += item.tokens
        self.thinking_tokens += item.thinking_tokens
        for v in item.verdicts:
            self.verdicts[v.kind] += 1
            self.by_verifier.setdefault(v.verifier, collections.Counter())[v.kind] += 1
            if v.span is not None:
                self._phase(phase_at(item.phases, v.span.start), v.kind)
        for key, value in item.labels.items():
            if isinstance(value, bool):
                counts = self.by_label.setdefault(key, {}).setdefault(str(value).lower(), collections.Counter())
                counts["traces"] += 1
                counts["flagged"] += item.outcome == "violation"

    def add_record(self, record: Mapping[str, Any]) -> None:
        """Count one result in its JSON form (``to_dict()``), as the Ray engine's rows carry it."""
        if record["type"] == "error":
            if record.get("reason", "read") == "read":
                self.read_errors += 1
            else:
                self.replay_errors += 1
            return
        self.traces += 1
        self._count(record["outcome"])
        self.tokens += record["tokens"]
        self.thinking_tokens += record.get("thinking_tokens", 0)
        for v in record["verdicts"]:
            self.verdicts[v["kind"]] += 1
            self.by_verifier.setdefault(v["verifier"], collections.Counter())[v["kind"]] += 1
            self._phase(v.get("phase") or (ANSWER if v.get("span") is not None else None), v["kind"])
        for key, value in record["labels"].items():
            if isinstance(value, bool):
                counts = self.by_label.setdefault(key, {}).setdefault(str(value).lower(), collections.Counter())
                counts["traces"] += 1
                counts["flagged"] += record["outcome"] == "violation"

    def _count(self, outcome: str) -> None:
        if outcome == "violation":
            self.failed += 1
        elif outcome == "undecided":
            self.undecided += 1
        else:
            self.passed += 1

    def to_dict(self) -> dict[str, Any]:
        def rate(n: int) -> float | None:
            return round(n / self.seconds, 2) if self.seconds > 0 else None

        return {"type": "totals", "traces": self.traces, "passed": self.passed, "failed": self.failed,
                "undecided": self.undecided, "read_errors": self.read_errors, "replay_errors": self.replay_errors,
                "verdicts": {k: self.verdicts.get(k, 0) for k in ("pass", "fail", "unknown")},
                "by_verifier": {name: {k: c.get(k, 0) for k in ("pass", "fail", "unknown")}
                                for name, c in sorted(self.by_verifier.items())},
                "by_label": {key: {value: dict(c) for value, c in sorted(values.items())}
                             for key, values in sorted(self.by_label.items())},
                "tokens": self.tokens, "seconds": round(self.seconds, 4),
                "traces_per_s": rate(self.traces), "tokens_per_s": rate(self.tokens),
                **({"thinking_tokens": self.thinking_tokens,
                    "by_phase": {phase: {k: c.get(k, 0) for k in ("pass", "fail", "unknown")}
                                 for phase, c in sorted(self.by_phase.items())}}
                   if self.thinking_tokens or THINKING in self.by_phase else {})}
