"""What ``interlock run`` shows while a run goes on: the trace as it grows, steps marked as verdicts arrive.

The display keeps the run's text as segments in reading order: generated text (plain until a verifier passes
or fails its step), text a rollback removed (struck through), a note naming the intervention, and the
injected feedback. It is rendered with rich; rich drops colour when the output is not a terminal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from interlock.monitor.events import (
    ChunkAppended,
    Event,
    FeedbackInjected,
    GovernorDecided,
    Intervened,
    VerdictReceived,
)
from interlock.monitor.result import RunResult
from interlock.monitor.verdicts import Action, Fail, Pass

__all__ = ["TraceDisplay", "summary_line"]

STYLES = {"ok": "green", "fail": "bold red", "removed": "dim red strike", "feedback": "yellow italic",
          "note": "magenta", "text": ""}


def _printable(text: str) -> str:
    """Model text with control characters (escape sequences!) shown as U+FFFD; same length, so positions hold."""
    return "".join(c if c.isprintable() or c in "\n\t" else "\ufffd" for c in text)


@dataclass
class _Segment:
    text: str
    kind: str  # "text" | "removed" | "feedback" | "note"
    start: int | None = None  # position in the current trace (None: no longer in it, or not trace text)


class TraceDisplay:
    """Folds run events into styled segments; :meth:`render` gives a ``rich.text.Text``."""

    def __init__(self) -> None:
        self.segments: list[_Segment] = []
        self.marks: list[tuple[int, int, str]] = []  # (start, end, "ok" | "fail") in current-trace coordinates

    def feed(self, event: Event) -> None:
        if isinstance(event, ChunkAppended):
            if event.chunk.text:
                self.segments.append(_Segment(_printable(event.chunk.text), "text", event.position))
        elif isinstance(event, FeedbackInjected):
            self.segments.append(_Segment(event.text, "feedback", event.position))
        elif isinstance(event, VerdictReceived) and not event.stale and event.verdict is not None:
            verdict = event.verdict
            if verdict.span is not None and isinstance(verdict, Pass | Fail):
                self.marks.append((verdict.span.start, verdict.span.end, "ok" if isinstance(verdict, Pass)
                                   else "fail"))
        elif isinstance(event, Intervened) and event.intervention is not None:
            i = event.intervention
            if i.action is Action.ROLLBACK and i.applied:
                self._cut(i.position)
                arrow = "rolled back"
            elif i.action is Action.WARN:
                arrow = "warning"
            else:
                arrow = i.action.value if i.applied else f"{i.action.value} not applied ({i.reason})"
            message = i.message if i.message.startswith(f"{i.source}:") else f"{i.source}: {i.message}"
            self.segments.append(_Segment(f"\n  ⟲ {message} ({arrow})\n", "note"))
        elif isinstance(event, GovernorDecided) and event.action not in ("warn",):
            self.segments.append(_Segment(f"\n  ⏹ {event.governor}: {event.reason}\n", "note"))

    def _cut(self, position: int) -> None:
        kept: list[_Segment] = []
        for seg in self.segments:
            if seg.start is None or seg.start + len(seg.text) <= position:
                kept.append(seg)
                continue
            if seg.start < position:
                kept.append(_Segment(seg.text[:position - seg.start], seg.kind, seg.start))
                rest = seg.text[position - seg.start:]
            else:
                rest = seg.text
            if kept and kept[-1].kind == "removed":
                kept[-1].text += rest
            else:
                kept.append(_Segment(rest, "removed"))
        self.segments = kept
        self.marks = [m for m in self.marks if m[1] <= position]

    def _status(self, pos: int) -> str:
        status = "text"
        for start, end, kind in self.marks:
            if start <= pos < end:
                if kind == "fail":
                    return "fail"
                status = "ok"
        return status

    def pieces(self) -> list[tuple[str, str]]:
        """``(text, kind)`` in reading order, neighbours of one kind merged; kind "ok"/"fail"/"text" for trace."""
        out: list[tuple[str, str]] = []

        def add(text: str, kind: str) -> None:
            if not text:
                return
            if out and out[-1][1] == kind:
                out[-1] = (out[-1][0] + text, kind)
            else:
                out.append((text, kind))

        for seg in self.segments:
            if seg.kind != "text" or seg.start is None:
                add(seg.text, seg.kind)
                continue
            for k, ch in enumerate(seg.text):
                add(ch, self._status(seg.start + k))
        return out

    def render(self) -> Any:
        from rich.text import Text

        out = Text()
        for text, kind in self.pieces():
            out.append(text, style=STYLES[kind])
        return out


def summary_line(result: RunResult) -> str:
    """One line: outcome, tokens kept/discarded, interventions, time."""
    mark = "✓ passed" if result.passed else ("✗ abstained" if result.abstained else "✗ failed")
    n = len([i for i in result.interventions if i.applied])
    parts = [mark, f"{result.tokens.kept} tokens kept, {result.tokens.discarded} discarded",
             f"{n} intervention{'s' if n != 1 else ''}", f"{result.wall_seconds:.1f} s",
             f"ended: {result.stop_reason.value}"]
    if result.detail:
        parts[-1] += f" ({result.detail})"
    return " · ".join(parts)
