"""LoopGuard: notice a run that repeats itself and steer it once, then stop it, instead of paying to the cap.

Small models loop ("16 eggs * 1 = 16 eggs * 1 = ..."): the text keeps growing and says nothing new. The guard
looks for four signs of it:

- a *tandem repeat* at the end of the trace: the same run of words (up to ``max_period`` words) written
  ``min_repeats`` times in a row, covering at least ``min_chars`` characters (or, with no spaces to count words
  by, a run of at least ``min_char_run`` characters with a period of at most 16: "YUYUYU...");
- the same line (at least ``min_line_chars`` long, case and spacing ignored) written ``max_line_repeats`` times;
- the same extracted state (``state(text)``, e.g. the last equation) coming back ``max_state_repeats`` times;
- a cycle of rollbacks: the monitor rolling back to the same position ``max_rollbacks_to_same_point`` times.

The first time a repetition is found the guard rolls back to the start of the step where it began and injects
a nudge (through the monitor's feedback template); the next time it stops the run, forcing the answer if asked.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from interlock.monitor.chunks import Chunk
from interlock.monitor.errors import ConfigError
from interlock.monitor.governor import ForceAnswer, Governor, GovernorDecision, RunContext, force_answer_option
from interlock.monitor.result import Intervention
from interlock.monitor.steps import STEP_END
from interlock.monitor.verdicts import Action

__all__ = ["DEFAULT_NUDGE", "LoopGuard", "Repetition", "find_char_repeat", "find_repeated_line", "find_tandem_repeat"]

DEFAULT_NUDGE = "I am repeating myself instead of making progress. I will finish the calculation."

_WORD = re.compile(r"\S+")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Repetition:
    """Where a repetition starts in the text, the repeated unit, and how many times it was written."""

    start: int
    unit: str
    count: int
    kind: str  # "ngram", "line", "state"

    def describe(self) -> str:
        unit = self.unit if len(self.unit) <= 60 else self.unit[:57] + "..."
        if self.kind == "state":
            return f"state {unit} came back {self.count} times"
        return f"{self.kind} {unit!r} written {self.count} times"


def find_tandem_repeat(text: str, *, min_repeats: int = 3, max_period: int = 40, min_chars: int = 30,
                       window: int = 4000) -> Repetition | None:
    """The shortest run of words that the end of ``text`` repeats ``min_repeats`` times in a row.

    Only whole words count (a word still being written at the very end is ignored), so the result does not
    depend on how the text was chunked. ``start`` is the offset of the first copy.
    """
    offset = max(0, len(text) - window)
    tail = text[offset:]
    words = [(m.start() + offset, m.group()) for m in _WORD.finditer(tail)]
    if words and not text[-1:].isspace():
        words.pop()  # still being written
    if offset and words:
        words.pop(0)  # may be cut by the window
    n = len(words)
    for period in range(1, min(max_period, n // min_repeats) + 1):
        unit = [w for _, w in words[n - period:]]
        count = 1
        while (count + 1) * period <= n and all(
                words[n - (count + 1) * period + i][1] == unit[i] for i in range(period)):
            count += 1
        if count < min_repeats:
            continue
        first = words[n - count * period][0]
        last_end = words[-1][0] + len(words[-1][1])
        if last_end - first >= min_chars:
            return Repetition(first, " ".join(unit), count, "ngram")
    return None


def find_char_repeat(text: str, *, max_period: int = 16, min_chars: int = 64, window: int = 1024
                     ) -> Repetition | None:
    """A short run of characters repeated at the end of ``text`` with no word break to count by
    ("YUYUYUYU...", "=-=-=-..."): at least ``min_chars`` characters of period at most ``max_period``."""
    tail = text[-window:]
    n = len(tail)
    for period in range(1, max_period + 1):
        run = 0  # characters at the end that equal the one ``period`` before
        while run + period < n and tail[n - 1 - run] == tail[n - 1 - run - period]:
            run += 1
        length = run + period
        if length >= min_chars and not tail[n - length:].isspace():
            start = len(text) - length
            return Repetition(start, text[start:start + period], length // period, "chars")
    return None


_LIST_MARKER = re.compile(r"^\s*(?:\(?\d{1,4}[.):]|[-*•+]|#+)\s+")


def _norm_line(line: str) -> str:
    """A line as compared: spacing and case ignored, and its list marker, so "7. 7 * 4 is 28." and "8. 7 * 4 is
    28." are the same line written again."""
    return _SPACES.sub(" ", _LIST_MARKER.sub("", line).strip()).lower()


def find_repeated_line(text: str, *, max_repeats: int = 3, min_chars: int = 12) -> Repetition | None:
    """A complete line (at least ``min_chars`` long once normalised) that ``text`` holds ``max_repeats`` times;
    ``start`` is the offset of its second copy (where the repetition began)."""
    seen: Counter[str] = Counter()
    second: dict[str, int] = {}
    pos = 0
    for line in text.splitlines(keepends=True):
        if not line.endswith("\n"):
            break  # incomplete
        key = _norm_line(line)
        if len(key) >= min_chars:
            seen[key] += 1
            if seen[key] == 2:
                second[key] = pos
            if seen[key] >= max_repeats:
                return Repetition(second[key], line.strip(), seen[key], "line")
        pos += len(line)
    return None


def _step_start(text: str, pos: int) -> int:
    """Start of the step holding ``pos`` (the end of the last step boundary at or before it)."""
    start = 0
    for m in STEP_END.finditer(text, 0, pos):
        if m.end() <= pos:
            start = m.end()
    return start


@dataclass
class _LineCounts:
    """:func:`find_repeated_line` kept up to date chunk by chunk: only the lines completed since the last call are
    read, so a long trace costs linear time rather than a scan of all its lines at every chunk."""

    upto: int = 0  # every complete line before this was counted
    seen: Counter[str] = field(default_factory=Counter)
    second: dict[str, int] = field(default_factory=dict)

    def find(self, text: str, *, max_repeats: int, min_chars: int) -> Repetition | None:
        end = text.rfind("\n") + 1
        if end <= self.upto:
            return None
        pos = self.upto
        for line in text[self.upto:end].splitlines(keepends=True):
            if not line.endswith("\n"):  # "\r" or another break inside a line: as find_repeated_line reads it
                self.upto = pos
                return None
            key = _norm_line(line)
            if len(key) >= min_chars:
                self.seen[key] += 1
                if self.seen[key] == 2:
                    self.second[key] = pos
                if self.seen[key] >= max_repeats:
                    self.upto = pos + len(line)
                    return Repetition(self.second[key], line.strip(), self.seen[key], "line")
            pos += len(line)
        self.upto = end
        return None


@dataclass
class _RunState:
    nudged: bool = False
    nudge_epoch: int = -1  # the epoch the nudge's rollback will end (until then the loop is still in the text)
    stopped: bool = False
    checked_upto: int = 0
    states: Counter[Hashable] = field(default_factory=Counter)
    state_at: dict[Hashable, int] = field(default_factory=dict)  # where each state came back (its 2nd time)
    rollbacks: Counter[int] = field(default_factory=Counter)
    epoch: int = 0
    lines: _LineCounts = field(default_factory=lambda: _LineCounts())


class LoopGuard(Governor):
    """Detects runaway repetition; steers once with a rollback and a nudge, then stops.

    - ``nudge``: the feedback injected after the rollback (``None``: stop at the first repetition).
    - ``force_answer``: on stopping, inject an answer prefix and let the model answer (default), or just stop.
    - ``then="restart"``: instead of stopping, end the attempt with a ``restart``: the monitor starts afresh
      from the question and the verified state, without the history that fed the loop.
    - ``min_char_run``: a run of characters with a period of at most 16 this long (no spaces to count words by)
      is a loop too.
    - ``state``: a function of the trace text returning something hashable (or ``None``), evaluated at step
      boundaries; the same state coming back ``max_state_repeats`` times counts as a loop.
    """

    name = "loop_guard"

    def __init__(self, *, min_repeats: int = 3, max_period: int = 40, min_chars: int = 30,
                 max_line_repeats: int = 3, min_line_chars: int = 12, min_char_run: int = 64,
                 state: Callable[[str], Hashable | None] | None = None, max_state_repeats: int = 3,
                 max_rollbacks_to_same_point: int = 3, nudge: str | None = DEFAULT_NUDGE,
                 force_answer: ForceAnswer | bool = True, then: str = "stop") -> None:
        for label, value, low in (("min_repeats", min_repeats, 2), ("max_period", max_period, 1),
                                  ("min_chars", min_chars, 1), ("max_line_repeats", max_line_repeats, 2),
                                  ("min_line_chars", min_line_chars, 1), ("max_state_repeats", max_state_repeats, 2),
                                  ("min_char_run", min_char_run, 8),
                                  ("max_rollbacks_to_same_point", max_rollbacks_to_same_point, 1)):
            if value < low:
                raise ConfigError(f"LoopGuard: {label} must be >= {low}, got {value}")
        if then not in ("stop", "restart"):
            raise ConfigError(f"LoopGuard: then must be 'stop' or 'restart', got {then!r}")
        if state is not None and not callable(state):
            raise ConfigError(f"LoopGuard: state must be a function of the trace text, got {state!r}")
        self.min_repeats = min_repeats
        self.max_period = max_period
        self.min_chars = min_chars
        self.max_line_repeats = max_line_repeats
        self.min_char_run = min_char_run
        self.min_line_chars = min_line_chars
        self.state = state
        self.max_state_repeats = max_state_repeats
        self.max_rollbacks_to_same_point = max_rollbacks_to_same_point
        self.nudge = nudge
        self.force_answer = force_answer_option(force_answer)
        self.then = then
        self._runs: dict[str, _RunState] = {}

    def start(self, ctx: RunContext) -> None:
        self._runs[ctx.run_id] = _RunState()

    def on_end(self, ctx: RunContext) -> None:
        self._runs.pop(ctx.run_id, None)

    def find(self, text: str) -> Repetition | None:
        """The repetition ``text`` ends in or holds, if any (what the guard acts on)."""
        return (find_tandem_repeat(text, min_repeats=self.min_repeats, max_period=self.max_period,
                                   min_chars=self.min_chars)
                or find_repeated_line(text, max_repeats=self.max_line_repeats, min_chars=self.min_line_chars)
                or find_char_repeat(text, min_chars=self.min_char_run))

    def on_chunk(self, ctx: RunContext, chunk: Chunk) -> GovernorDecision | None:
        st = self._runs.setdefault(ctx.run_id, _RunState())
        if st.stopped or ctx.forcing_answer:
            return None
        if st.nudged and ctx.epoch == st.nudge_epoch:
            return None  # the nudge's rollback is waiting for earlier checks; the loop is not news
        text = ctx.text
        if ctx.epoch != st.epoch:  # a rollback cut the text: count states and lines again from the start
            st.epoch = ctx.epoch
            st.checked_upto = 0
            st.states.clear()
            st.state_at.clear()
            st.lines = _LineCounts()
        found = (find_tandem_repeat(text, min_repeats=self.min_repeats, max_period=self.max_period,
                                    min_chars=self.min_chars)
                 or st.lines.find(text, max_repeats=self.max_line_repeats, min_chars=self.min_line_chars)
                 or find_char_repeat(text, min_chars=self.min_char_run)
                 or self._state_repeat(st, text))
        return self._act(st, found, text, ctx.epoch) if found is not None else None

    def _state_repeat(self, st: _RunState, text: str) -> Repetition | None:
        if self.state is None:
            return None
        found = None
        for m in STEP_END.finditer(text, st.checked_upto):
            st.checked_upto = m.end()
            value = self.state(text[: m.end()])
            if value is None:
                continue
            st.states[value] += 1
            if st.states[value] == 2:
                st.state_at[value] = _step_start(text, m.end() - 1)
            if st.states[value] >= self.max_state_repeats and found is None:
                found = Repetition(st.state_at[value], repr(value), st.states[value], "state")
        return found

    def _act(self, st: _RunState, rep: Repetition, text: str, epoch: int) -> GovernorDecision:
        if self.nudge is not None and not st.nudged:
            st.nudged, st.nudge_epoch = True, epoch
            return GovernorDecision(Action.ROLLBACK, f"loop: {rep.describe()}; rolling back with a nudge",
                                    position=_step_start(text, rep.start), inject=self.nudge)
        st.stopped = True
        reason = f"loop: {rep.describe()}" + ("" if self.nudge is None else " again after the nudge")
        if self.then == "restart":
            return GovernorDecision(Action.RESTART, reason + ": restarting from the verified state",
                                    position=_step_start(text, rep.start))
        if self.force_answer is not None:
            return self.force_answer.decision(reason)
        return GovernorDecision(Action.STOP, reason)

    def on_intervention(self, ctx: RunContext, proposal: Intervention) -> GovernorDecision | None:
        if proposal.action is not Action.ROLLBACK:
            return None
        st = self._runs.setdefault(ctx.run_id, _RunState())
        st.rollbacks[proposal.position] += 1
        if st.rollbacks[proposal.position] > self.max_rollbacks_to_same_point:
            st.stopped = True
            action = Action.RESTART if self.then == "restart" else Action.STOP
            return GovernorDecision(action, f"rollback cycle: rolled back to position {proposal.position} "
                                    f"{st.rollbacks[proposal.position] - 1} times already")
        return None
