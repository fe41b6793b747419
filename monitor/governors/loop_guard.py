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

The guard runs at every chunk, so it reads only what each chunk added: the words and characters completed since
the last chunk update run lengths per period (:class:`_TandemWatch`, :class:`_CharWatch`), complete lines are
counted once (:class:`_LineCounts`), and the answer is what the whole-text functions below
(:func:`find_tandem_repeat`, :func:`find_char_repeat`, :func:`find_repeated_line`) give for the text so far.
"""

from __future__ import annotations

import re
from collections import Counter, deque
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
    searched: int = 0  # no newline in text[upto:searched] (a long line is searched once, not at every chunk)
    dead: bool = False  # a line ended by another break ("\r", "\f"): find_repeated_line reads no further
    seen: Counter[str] = field(default_factory=Counter)
    second: dict[str, int] = field(default_factory=dict)

    def find(self, text: str, *, max_repeats: int, min_chars: int) -> Repetition | None:
        if self.dead:
            return None
        since = max(self.upto, self.searched)
        end = text.rfind("\n", since) + 1
        self.searched = len(text)
        if end <= self.upto:
            return None
        pos = self.upto
        for line in text[self.upto:end].splitlines(keepends=True):
            if not line.endswith("\n"):  # "\r" or another break inside a line: find_repeated_line stops there
                self.upto, self.dead = pos, True
                return None
            key = _norm_line(line)
            if len(key) >= min_chars:
                self.seen[key] += 1
                if self.seen[key] == 2:
                    self.second[key] = pos
                if self.seen[key] >= max_repeats:
                    self.upto = self.searched = pos + len(line)
                    return Repetition(self.second[key], line.strip(), self.seen[key], "line")
            pos += len(line)
        self.upto = end
        return None


_SPACE = re.compile(r"\s")


@dataclass
class _TandemWatch:
    """:func:`find_tandem_repeat` for a text that grows by appending, at a cost per chunk that does not depend on
    the text's length. Each word completed since the last call is read once. A period ``p`` can show copies at
    the end only if the last word equals the word ``p`` before it, so for each new word only those periods are
    updated (found through where each of the last ``max_period`` words occurred): the run of trailing words equal
    to the word ``p`` before. The copies of a period at the end follow from its run, limited to the words of the
    window as :func:`find_tandem_repeat` reads them. (``min_repeats`` >= 2, as the guard requires.)
    """

    min_repeats: int
    max_period: int
    min_chars: int
    window: int = 4000
    starts: list[int] = field(default_factory=list)  # the complete words from global index ``base`` on
    ends: list[int] = field(default_factory=list)
    words: list[str] = field(default_factory=list)
    base: int = 0
    recent: dict[str, deque[int]] = field(default_factory=dict)  # where each of the last max_period words is
    run: list[int] = field(default_factory=list)  # per period: its run, valid if it matched at ``matched_at``
    matched_at: list[int] = field(default_factory=list)
    matched: list[int] = field(default_factory=list)  # the periods at which the last word matched, ascending
    length: int = 0  # the text read so far
    scan_from: int = 0  # where the next word may start
    open_start: int = -1  # where the word still being written at the end starts (-1: none)
    front: int = 0  # global index of the first complete word that ends after the window's start
    key: tuple[int, int] = (-1, -1)  # (complete words, first word of the window) the cached answer is for
    found: Repetition | None = None

    def __post_init__(self) -> None:
        self.run = [0] * (self.max_period + 1)
        self.matched_at = [-1] * (self.max_period + 1)

    def _add(self, start: int, end: int, word: str) -> None:
        k = self.base + len(self.words)  # the new word's global index
        gone = k - self.max_period - 1  # no longer a partner of this word or any later one
        if gone >= 0:
            old = self.words[gone - self.base]
            left = self.recent[old]
            left.popleft()
            if not left:
                del self.recent[old]
        places = self.recent.get(word)
        matched: list[int] = []
        if places is not None:
            for j in reversed(places):
                p = k - j
                self.run[p] = self.run[p] + 1 if self.matched_at[p] == k - 1 else 1
                self.matched_at[p] = k
                matched.append(p)
            places.append(k)
        else:
            self.recent[word] = deque((k,))
        self.matched = matched
        self.starts.append(start)
        self.ends.append(end)
        self.words.append(word)

    def _read(self, text: str) -> None:
        """Take in the words completed since the last call (a word is complete once a space follows it)."""
        size = len(text)
        pos = self.scan_from
        if self.open_start >= 0:
            gap = _SPACE.search(text, pos)
            if gap is None:
                self.scan_from = size
                return
            self._add(self.open_start, gap.start(), text[self.open_start:gap.start()])
            self.open_start, pos = -1, gap.start()
        for word in _WORD.finditer(text, pos):
            if word.end() == size:  # still being written
                self.open_start = word.start()
                break
            self._add(word.start(), word.end(), word.group())
        self.scan_from = size

    def _trim(self) -> None:
        """Forget words no answer can reach (before the window and more than ``max_period`` words back)."""
        keep_from = min(self.front, self.base + len(self.words) - self.max_period - 1)
        drop = keep_from - self.base
        if drop > 4096:
            del self.starts[:drop], self.ends[:drop], self.words[:drop]
            self.base += drop

    def find(self, text: str) -> Repetition | None:
        if len(text) < self.length:  # not the text this was read from: start again
            self.__init__(self.min_repeats, self.max_period, self.min_chars, self.window)  # type: ignore[misc]
        self._read(text)
        self.length = len(text)
        total = self.base + len(self.words)
        offset = max(0, len(text) - self.window)
        while self.front < total and self.ends[self.front - self.base] <= offset:
            self.front += 1
        first = self.front + (1 if offset and self.front < total else 0)  # (a word the window may cut)
        key = (total, first)
        if key == self.key:
            return self.found
        # only the window's start moved: fewer words can hold no repetition that more did not
        unchanged = key[0] == self.key[0] and self.found is None
        self.key = key
        if not unchanged:
            self.found = self._answer(total, total - first)
        self._trim()
        return self.found

    def _answer(self, total: int, n: int) -> Repetition | None:
        base, last = self.base, total - 1
        longest = min(self.max_period, n // self.min_repeats)
        for period in self.matched:  # (a period the last word did not match has one copy at the end)
            if period > longest:
                break
            if self.matched_at[period] != last:
                continue
            count = 1 + min(self.run[period], n - period) // period
            if count < self.min_repeats:
                continue
            first = self.starts[total - count * period - base]
            if self.ends[last - base] - first >= self.min_chars:
                return Repetition(first, " ".join(self.words[total - period - base:total - base]), count, "ngram")
        return None


@dataclass
class _CharWatch:
    """:func:`find_char_repeat` for a text that grows by appending. A period ``p`` has a run at the end only if the
    last character equals the one ``p`` before it, so at each call only those periods are followed (found with a
    search of the 16 characters before the last): the run of trailing characters equal to the one ``p`` before,
    extended over the characters the call added (a long periodic stretch is not compared again at every chunk).
    The length of the trailing whitespace is kept alike."""

    min_chars: int
    max_period: int = 16
    window: int = 1024
    run: list[int] = field(default_factory=list)  # per period: its run, valid if it was kept at length ``kept_at``
    kept_at: list[int] = field(default_factory=list)
    matched: list[int] = field(default_factory=list)  # the periods with a run at the end, ascending
    spaces: int = 0
    length: int = 0

    def __post_init__(self) -> None:
        self.run = [0] * (self.max_period + 1)
        self.kept_at = [-1] * (self.max_period + 1)

    def _runs(self, text: str, old: int) -> None:
        size = len(text)
        last = text[-1]
        low = max(0, size - 1 - self.max_period)
        matched = []
        at = text.rfind(last, low, size - 1)
        while at >= 0:
            p = size - 1 - at
            j = size - 2
            while j >= old and j >= p and text[j] == text[j - p]:
                j -= 1
            run = size - 1 - j
            if j < old and self.kept_at[p] == old:
                run += self.run[p]
            self.run[p], self.kept_at[p] = run, size
            matched.append(p)
            at = text.rfind(last, low, at)
        self.matched = matched

    def find(self, text: str) -> Repetition | None:
        size = len(text)
        if size < self.length:  # not the text this was read from: start again
            self.__init__(self.min_chars, self.max_period, self.window)  # type: ignore[misc]
        old, self.length = self.length, size
        if size > old:
            self._runs(text, old)
            kept = len(text[old:].rstrip())
            self.spaces = size - old - kept + (self.spaces if kept == 0 else 0)
        n = min(size, self.window)
        if n <= self.max_period or self.min_chars <= self.max_period:
            # a period as long as the text, or one copy long enough: the whole-text function's own reading
            return find_char_repeat(text, max_period=self.max_period, min_chars=self.min_chars, window=self.window)
        for period in self.matched:  # (a period without a run is one copy: shorter than min_chars)
            length = min(self.run[period], n - period) + period
            if length >= self.min_chars and length > self.spaces:
                start = size - length
                return Repetition(start, text[start:start + period], length // period, "chars")
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
    tandem: _TandemWatch | None = None  # made by the guard, which knows its settings
    chars: _CharWatch | None = None


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
        if ctx.epoch != st.epoch or st.tandem is None or st.chars is None:
            # a rollback cut the text: read words, characters, states and lines again from the start
            st.epoch = ctx.epoch
            st.checked_upto = 0
            st.states.clear()
            st.state_at.clear()
            st.lines = _LineCounts()
            st.tandem = _TandemWatch(self.min_repeats, self.max_period, self.min_chars)
            st.chars = _CharWatch(self.min_char_run)
        found = (st.tandem.find(text)
                 or st.lines.find(text, max_repeats=self.max_line_repeats, min_chars=self.min_line_chars)
                 or st.chars.find(text)
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
