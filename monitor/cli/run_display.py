"""What ``interlock run`` shows while a run goes on: finished lines printed once, the line being written live.

The display folds run events into segments in reading order: generated text (marked as verdicts arrive),
text a rollback removed, a note naming each intervention, and the injected feedback. A complete line is
*committed* (handed out once, for the terminal's scrollback or a pipe) when its checks have come back, or when
it is ``lag`` lines behind the newest line, and never while a violation at or before it waits for the
monitor's decision. Only the uncommitted tail is redrawn, so a redraw costs the same at 1,000 or 100,000
characters of trace. A rollback into text already printed is announced by a note, since scrollback cannot
be struck through. A reasoning model's thinking is shown dimmed, under a "thinking" note, and its answer after an
"answer" note (the notes are printed into a pipe too, where nothing is dimmed).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from interlock.monitor.events import (
    ChunkAppended,
    Event,
    FeedbackInjected,
    GovernorDecided,
    Intervened,
    RunFinished,
    VerdictReceived,
)
from interlock.monitor.phases import ANSWER, THINKING
from interlock.monitor.result import Outcome, RunResult
from interlock.monitor.verdicts import Action, Fail, Pass

__all__ = ["OUTCOME_STYLES", "STYLES", "TraceDisplay", "plain", "status_line", "summary_line"]

STYLES = {"ok": "green", "fail": "bold red", "removed": "dim red strike", "feedback": "yellow italic",
          "note": "magenta", "text": "", "thinking": "dim", "thinking_ok": "dim green"}
THINKING_NOTE = "── thinking ──\n"
ANSWER_NOTE = "── answer ──\n"
OUTCOME_STYLES = {Outcome.VERIFIED: ("✓", "bold green"), Outcome.UNCHECKED: ("○", "bold yellow"),
                  Outcome.VIOLATION: ("✗", "bold red"), Outcome.BUDGET: ("⏹", "bold yellow"),
                  Outcome.CUT: ("✂", "bold yellow"), Outcome.ERROR: ("✗", "bold red"),
                  Outcome.UNDECIDED: ("?", "bold yellow")}
Piece = tuple[str, str]  # (text, kind)


def _printable(text: str) -> str:
    """Model text with control characters (escape sequences!) shown as U+FFFD; same length, so positions hold."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c in "\n\t" else "\ufffd" for c in text)


@dataclass
class _Segment:
    text: str
    kind: str  # "text" | "thinking" | "removed" | "feedback" | "note"
    start: int | None = None  # position in the current trace (None: no longer in it, or not trace text)


class TraceDisplay:
    """Folds run events into styled pieces: :meth:`take_committed` once each, :meth:`live` for the tail."""

    def __init__(self, *, lag: int = 3, hold_lines: int = 20) -> None:
        self.lag = lag
        self.hold_lines = hold_lines  # most lines held back behind a violation awaiting the monitor's decision
        self.segments: list[_Segment] = []  # not yet committed, reading order
        self.marks: list[tuple[int, int, str]] = []  # (start, end, "ok" | "fail" | "seen") on uncommitted text
        self.committed = 0  # trace position up to which the text has been handed out
        self._open_fails: list[tuple[int, int]] = []  # violations waiting for the monitor's decision
        self._out: list[Piece] = []
        self._all: list[Piece] = []  # everything committed, for :meth:`pieces`
        self.finished = False
        self._phase = ANSWER  # the phase of the text shown last

    # -- folding events --------------------------------------------------------------------------------
    def feed(self, event: Event) -> None:
        if isinstance(event, ChunkAppended):
            if event.chunk.text:
                phase = event.chunk.phase
                self._enter(phase)
                self._append(_printable(event.chunk.text), "thinking" if phase == THINKING else "text",
                             event.position)
        elif isinstance(event, FeedbackInjected):
            if event.text:
                self._enter(event.phase)
            self._append(_printable(event.text), "feedback", event.position)
        elif isinstance(event, VerdictReceived) and not event.stale and event.verdict is not None:
            verdict = event.verdict
            if verdict.span is not None and verdict.span.end > self.committed:
                kind = "ok" if isinstance(verdict, Pass) else "fail" if isinstance(verdict, Fail) else "seen"
                self.marks.append((verdict.span.start, verdict.span.end, kind))
                if kind == "fail" and verdict.span.end > verdict.span.start:
                    self._open_fails.append((verdict.span.start, verdict.span.end))
        elif isinstance(event, Intervened) and event.intervention is not None:
            i = event.intervention
            decided = (i.span.start, max(i.span.end, i.span.start + 1))
            self._open_fails = [f for f in self._open_fails if not (f[0] < decided[1] and decided[0] < f[1])]
            if i.action is Action.ROLLBACK and i.applied:
                self._cut(i.position)
                arrow = "rolled back"
            elif i.action is Action.WARN:
                arrow = "warning"
            else:
                arrow = i.action.value if i.applied else f"{i.action.value} not applied ({i.reason})"
            message = i.message if i.message.startswith(f"{i.source}:") else f"{i.source}: {i.message}"
            self.segments.append(_Segment(f"\n  ⟲ {_printable(message)} ({arrow})\n", "note"))
        elif isinstance(event, GovernorDecided) and event.action not in ("warn",):
            self.segments.append(_Segment(f"\n  ⏹ {event.governor}: {_printable(event.reason)}\n", "note"))
        elif isinstance(event, RunFinished):
            self.finished = True
            self._open_fails.clear()
        self._commit()

    def _enter(self, phase: str) -> None:
        """Text of ``phase`` comes next: a note says where the thinking or the answer begins."""
        if phase == self._phase:
            return
        self._phase = phase
        note = THINKING_NOTE if phase == THINKING else ANSWER_NOTE
        self.segments.append(_Segment(note if self._ends_line() else "\n" + note, "note"))

    def _ends_line(self) -> bool:
        """Whether what is shown so far ends a line (or nothing is shown yet)."""
        for seg in reversed(self.segments):
            if seg.text:
                return seg.text.endswith("\n")
        for text, _ in reversed(self._all):
            if text:
                return text.endswith("\n")
        return True

    def _append(self, text: str, kind: str, position: int) -> None:
        last = self.segments[-1] if self.segments else None
        if (last is not None and last.kind == kind and last.start is not None
                and last.start + len(last.text) == position):
            last.text += text
        else:
            self.segments.append(_Segment(text, kind, position))

    def _cut(self, position: int) -> None:
        if position < self.committed:  # scrollback cannot be struck through: say what happened instead
            self._emit_pieces([(f"\n  ⟲ the last {self.committed - position} characters printed above were "
                                "rolled back\n", "note")])
            self.committed = position
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
        self._open_fails = [f for f in self._open_fails if f[1] <= position]

    # -- committing ------------------------------------------------------------------------------------
    def _checked(self, line_start: int, newline: int) -> bool:
        """A verdict covers the line (its step's checks came back): a span that reaches its last character."""
        return any(s < max(newline, line_start + 1) and e >= newline for s, e, _ in self.marks)

    def _commit(self) -> None:
        if self.finished:
            self._commit_segments(len(self.segments), None)
            return
        block = min((s for s, _ in self._open_fails), default=None)
        ends: list[tuple[int, int]] = []  # (segment index, offset after the newline) of complete lines
        positions: list[int] = []
        injected: list[bool] = []  # the line ends in injected feedback, which is never checked
        for k, seg in enumerate(self.segments):
            if seg.start is None:
                continue
            i = seg.text.find("\n")
            while i >= 0:
                ends.append((k, i + 1))
                positions.append(seg.start + i + 1)
                injected.append(seg.kind == "feedback")
                i = seg.text.find("\n", i + 1)
        if block is not None and sum(p > block for p in positions) > self.hold_lines:
            block = None  # a decision this late is rare: print on, a rollback into printed text gets a note
        take = -1
        line_start = self.committed
        for j, pos in enumerate(positions):
            if block is not None and pos > block:
                break
            if not (injected[j] or len(positions) - 1 - j >= self.lag or self._checked(line_start, pos - 1)):
                break
            take = j
            line_start = pos
        if take >= 0:
            self._commit_segments(*ends[take])

    def _commit_segments(self, index: int, offset: int | None) -> None:
        """Hand out segments before ``index`` and, with ``offset``, that much of segment ``index``."""
        done = self.segments[:index]
        rest = self.segments[index:]
        if offset is not None and rest:
            head = rest[0]
            assert head.start is not None
            done.append(_Segment(head.text[:offset], head.kind, head.start))
            rest[0] = _Segment(head.text[offset:], head.kind, head.start + offset)
            if not rest[0].text:
                rest.pop(0)
        if not done:
            return
        self._emit_pieces(self._pieces_of(done))
        for seg in done:
            if seg.start is not None:
                self.committed = max(self.committed, seg.start + len(seg.text))
        self.segments = rest
        self.marks = [m for m in self.marks if m[1] > self.committed]

    def _emit_pieces(self, pieces: list[Piece]) -> None:
        for piece in pieces:
            _merge(self._out, piece)
            self._all.append(piece)  # merged in pieces(): merging here would copy ever longer strings

    def take_committed(self) -> list[Piece]:
        """The pieces committed since the last call (each piece is handed out once)."""
        out, self._out = self._out, []
        return out

    # -- rendering -------------------------------------------------------------------------------------
    def _status_cuts(self, start: int, end: int) -> list[tuple[int, str]]:
        """``(length, status)`` runs over trace positions [start, end), from the marks that overlap them."""
        marks = [m for m in self.marks if m[0] < end and m[1] > start and m[2] != "seen"]
        if not marks:
            return [(end - start, "text")]
        cuts = sorted({start, end, *(max(start, m[0]) for m in marks), *(min(end, m[1]) for m in marks)})
        out: list[tuple[int, str]] = []
        for a, b in itertools.pairwise(cuts):
            kinds = {m[2] for m in marks if m[0] <= a and m[1] >= b}
            out.append((b - a, "fail" if "fail" in kinds else "ok" if "ok" in kinds else "text"))
        return out

    def _pieces_of(self, segments: list[_Segment]) -> list[Piece]:
        out: list[Piece] = []
        for seg in segments:
            if seg.kind not in ("text", "thinking") or seg.start is None:
                _merge(out, (seg.text, seg.kind))
                continue
            offset = 0
            for n, status in self._status_cuts(seg.start, seg.start + len(seg.text)):
                if seg.kind == "thinking" and status != "fail":
                    status = "thinking_ok" if status == "ok" else "thinking"
                _merge(out, (seg.text[offset:offset + n], status))
                offset += n
        return out

    def live(self, max_chars: int | None = None) -> list[Piece]:
        """The uncommitted tail as pieces; with ``max_chars``, only its last characters (what fits a screen)."""
        segments = self.segments
        if max_chars is not None:
            picked: list[_Segment] = []
            left = max_chars
            for seg in reversed(segments):
                if left <= 0:
                    break
                if len(seg.text) > left:
                    cut = len(seg.text) - left
                    seg = _Segment(seg.text[cut:], seg.kind, None if seg.start is None else seg.start + cut)
                picked.append(seg)
                left -= len(seg.text)
            segments = picked[::-1]
        return self._pieces_of(segments)

    def pieces(self) -> list[Piece]:
        """Everything so far in reading order: committed, then live; neighbours of one kind merged."""
        out: list[Piece] = []
        for piece in [*self._all, *self.live()]:
            _merge(out, piece)
        return out

    def render(self) -> Any:
        """The whole run so far as a ``rich.text.Text``."""
        return styled(self.pieces())


def _merge(out: list[Piece], piece: Piece) -> None:
    text, kind = piece
    if not text:
        return
    if out and out[-1][1] == kind:
        out[-1] = (out[-1][0] + text, kind)
    else:
        out.append(piece)


def styled(pieces: list[Piece]) -> Any:
    from rich.text import Text

    out = Text()
    for text, kind in pieces:
        out.append(text, style=STYLES[kind])
    return out


def plain(pieces: list[Piece]) -> str:
    """Pieces as text for a pipe or a file: removed text between ``[-`` and ``-]`` (as wdiff marks deletions)."""
    return "".join(f"[-{text}-]" if kind == "removed" else text for text, kind in pieces)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def status_line(kept: int, discarded: int, budget: int | None, interventions: int, elapsed: float,
                thinking: int = 0) -> str:
    """The progress line under the live text: tokens against the budget, interventions, time."""
    used = kept + discarded
    spent = f"{used}/{budget} tokens" if budget else f"{used} tokens"
    of_them = f", {thinking} thinking" if thinking else ""
    return (f"{spent} ({kept} kept{of_them}, {discarded} discarded) · {_plural(interventions, 'intervention')} · "
            f"{elapsed:.1f} s")


def summary_line(result: RunResult) -> str:
    """One line: the outcome, what it means, tokens kept/discarded, interventions, time, why it ended."""
    outcome = result.outcome
    mark, _ = OUTCOME_STYLES[outcome]
    checked = sum(1 for v in result.verdicts if isinstance(v, Pass) and v.checked)
    meaning = {Outcome.VERIFIED: f"{_plural(checked, 'check')} passed",
               Outcome.UNCHECKED: "nothing in it could be checked",
               Outcome.VIOLATION: (f"{_plural(len(result.open_violations), 'violation')} stand"
                                   if result.open_violations else "the monitor stopped it"),
               Outcome.BUDGET: "stopped by a budget before the end",
               Outcome.CUT: "the generator's own token limit cut it off",
               Outcome.ERROR: "the generator failed",
               Outcome.UNDECIDED: f"{_plural(len(result.undecided), 'check')} could not decide"}[outcome]
    n = len([i for i in result.interventions if i.applied])
    thinking = f" ({result.tokens.thinking} thinking)" if result.tokens.thinking else ""
    parts = [f"{mark} {outcome.value}: {meaning}", f"{_plural(result.tokens.kept, 'token')} kept{thinking}, "
             f"{result.tokens.discarded} discarded", _plural(n, "intervention"), f"{result.wall_seconds:.1f} s",
             f"ended: {result.stop_reason.value}"]
    if result.detail:
        parts[-1] += f" ({result.detail})"
    return " · ".join(parts)
