"""The ``game24`` verifier: every step of a Game of 24 trace and the final expression, checked exactly.

The text is first read into one plain notation (``×``, ``÷``, ``−``, LaTeX ``\\times``/``\\frac``, ``$``, markdown
bold), keeping every offset, so verdicts point at what the model wrote. Steps that say which numbers are left
(``10 - 4 = 6 (left: 5 6 6)``, ``... = 4. Remaining numbers: 4, 4, 10``, ``... → Numbers left: [4, 6]``,
``..., leaving 4 and 6.``) are replayed from the input numbers: the arithmetic must be right, the numbers used
must be among those still available (or among those of an earlier state, when the trace goes back to try another
branch), and the list must be what remains. Any other ``a = b = c`` chain is checked for its arithmetic only
(rounded decimals such as ``8 / 3 = 2.67`` pass; a question such as ``10 + 13 = 24?`` is not a claim). The final
answer (``Answer: <expression>``, ``\\boxed{...}``, ``<answer>...</answer>``, or at the start of a line "So the
expression is ...", judged only when it uses as many numbers as the puzzle has) must use each input number
exactly once and equal 24. With ``dead_ends=True`` a correct step whose numbers left can no longer make 24 is
flagged too (an exact solver decides, within a bound: past 6 numbers, 200,000 states or 100 ms it is ``Unknown``).

The input numbers come from the constructor (``Game24([4, 9, 10, 13])``) or, when it has none, from the
prompt: the numbers after the last ``Input:`` (the Tree-of-Thoughts format), or else the last run of two or
more numbers separated by spaces, commas or "and" (``Make 24 using 8, 5, 10, 6.``).
"""

from __future__ import annotations

import collections
import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from interlock import Action, AnyOf, AtEnd, Fail, Pass, Span, StepBoundary, TraceView, Unknown, Verdict, Verifier
from interlock.verifiers.errors import VerifierConfigError
from interlock.verifiers.game24.arith import ExpressionError, format_number, parse_expression, parse_number
from interlock.verifiers.game24.solver import MAX_NUMBERS, MAX_SECONDS, MAX_STATES, solvable_within
from interlock.verifiers.game24.text import Chain, Normalized, Part, chains, close_enough, decimals, normalize, read_at

__all__ = ["Game24", "Game24State", "numbers_from_prompt"]

_NUM = r"-?\d+(?:\.\d+)?(?:/\d+)?"
_LIST = rf"{_NUM}(?:(?:[ \t]*,[ \t]*|[ \t]+)(?:and[ \t]+)?{_NUM})*"
_LABEL = (r"(?:numbers[ \t]+(?:left|remaining)|remaining(?:[ \t]+numbers)?|left(?:[ \t]+with)?|now[ \t]+we[ \t]+have"
          r"|we(?:[ \t]+are|'re)[ \t]+left[ \t]+with|leaving(?:[ \t]+us[ \t]+with)?|leaves(?:[ \t]+us[ \t]+with)?)")
# what follows a step's result and says which numbers are left: "(left: 4 4 10)", ". Remaining numbers: 4, 4, 10",
# " → Numbers left: [4, 4, 10]", ", leaving 4 and 6." (a list of numbers only, ending its sentence or line)
LEFT = re.compile(
    r"(?:[ \t]*\((?![ \t]*(?:left|remaining|numbers))[^()\n]{1,40}\))?"  # "= 1.71 (approx) (left: 1.71 7)"
    r"[ \t]*\([ \t]*(?:left|remaining(?:[ \t]+numbers)?|numbers[ \t]+left)[ \t]*:[ \t]*(?P<left>[^)\n]*?)[ \t]*\)"
    rf"|(?:[ \t]*(?:[.,;:]|->|→|=>|—|-)?[ \t]*(?:\n[ \t>*\-]*)?)(?:(?:so|and|which)[ \t]+)?{_LABEL}"
    rf"(?:[ \t]+(?:are|is))?[ \t]*:?[ \t]*(?P<list>\([ \t]*{_LIST}[ \t]*\)|{_LIST})(?=[ \t]*(?:[.;!)]|$))",
    re.IGNORECASE | re.MULTILINE)
_LEFT_WORD = re.compile(r"(?i)left|remain|have|leav")
_FRACTION = re.compile(rf"[ \t]*{_NUM}[ \t]*$")  # a step's result: a number, "8/3" too
_SIMPLE = re.compile(rf"^(?P<a>{_NUM})[ \t]*(?P<op>[-+*/xX])[ \t]*(?P<b>{_NUM})$")
# a final answer: "Answer: ...", "Final answer: the expression is ...", and (only at the start of a line, after
# "so"/"thus"/...) "the solution is ...", "Solution: ..."; boxed and <answer> tags are read whole
_ANSWER = re.compile(
    r"(?im)(?P<strong>\b(?:final[ \t]+)?answer\b[ \t]*(?:is\b)?[ \t]*[:=]?)"
    r"|(?P<weak>^[ \t>#\-]*(?:(?:so|thus|therefore|hence|finally)[ \t]*,?[ \t]+)?"
    r"(?:(?:the|my)[ \t]+(?:final[ \t]+)?(?:expression|solution|equation)[ \t]+is|(?:final[ \t]+)?(?:solution"
    r"|expression))\b[ \t]*:?)")
_RESTATE = re.compile(r"(?i)[ \t]*(?:the[ \t]+(?:final[ \t]+)?(?:expression|solution|equation)[ \t]+is[ \t]*:?)?[ \t]*")
_BOXED = re.compile(r"\\boxed[ \t]*\{")
_TAG = re.compile(r"(?is)<answer>(?P<body>.*?)</answer>")
_COMPLETE = re.compile(r"[ \t.!;✓✔✅)]*$", re.MULTILINE)
_INPUT = re.compile(r"(?i)\binput\s*:\s*(?P<nums>\d+(?:[ \t,]+\d+)+)")
_RUN = re.compile(r"(?<![\w.])\d+(?:(?:[ \t]*,[ \t]*(?:and[ \t]+)?|[ \t]+(?:and[ \t]+)?)\d+)+(?![\w]|\.\d)")
_ASKS_FOR_24 = re.compile(r"(?i)\b(?:make|makes|making|get|obtain|reach|equals?|equal\s+to|game\s+of|gives?)\s+24\b"
                          r"|\b24\s+(?:game|puzzle)")
_SYMBOL = {"+": "+", "-": "-", "*": "*", "x": "*", "X": "*", "/": "/"}
# A thinking model's monologue (``<think> ... </think>``): an "answer" there is a candidate being tried, not the
# final answer (which follows ``</think>``).
_THINK = re.compile(r"(?i)<(?P<close>/)?think>")
# A calculation taken back at once by a thinking model: "6 * 4 = 25, no wait, 24", "= 25 — wait, no", "= 25, no,
# 24." (a value on its own after "no"/"wait", not a new calculation), like the arithmetic verifier's rule.
_CORRECTED = re.compile(r"(?i)[ \t]*[,;:.—–-]*[ \t]*(?:(?:no|nope)\b[ \t,.:;—–-]*wait\b"
                        r"|wait\b[ \t,.:;—–-]*(?:no|nope)\b"
                        r"|(?:no|nope|wait)\b[ \t,.:;—–-]*(?:it'?s[ \t]+)?-?\d+(?:\.\d+)?(?!\d|\.\d|[ \t]*[-+*/xX=(]))")
# Words before "answer" in its sentence that make it a guess being tried: "Perhaps answer = ...", "Let me try:
# answer is ...", "Maybe the answer is ...".
_HEDGE = re.compile(r"(?i)\b(?:maybe|perhaps|possibly|probably|might|could|would|try|trying|tried|if|whether|suppose"
                    r"|guess|candidate|check|checking|test|testing|what about|how about)\b")


def numbers_from_prompt(prompt: str) -> list[Fraction] | None:
    """The puzzle's numbers in a prompt: after the last ``Input:``, else the last run of numbers
    (``4 9 10 13``, ``4, 9, 10, and 13``, ``[4, 9, 10, 13]``)."""
    labelled = list(_INPUT.finditer(prompt))
    if labelled:
        text = labelled[-1].group("nums")
    else:
        runs = list(_RUN.finditer(prompt))
        if not runs:
            return None
        text = runs[-1].group()
    return [Fraction(x) for x in re.split(r"(?:[\s,]|and)+", text.strip()) if x]


@dataclass(frozen=True)
class _Answer:
    """A final answer found in the text: the expression's span (normalised), its chain, how sure the reading is."""

    start: int
    end: int
    chain: Chain | None  # None: it looks like an answer but does not read
    strong: bool  # "Answer:", boxed, <answer>: judged whole; else only a full expression is judged
    expr: Part | None = None
    problem: str = ""  # why a final answer is no solution whatever it computes: "bare", "unbalanced"

    @property
    def claimed(self) -> Part | None:
        """The number the answer says it makes (``= 24``), if it says one."""
        if self.chain is None or self.expr is None:
            return None
        singles = [p for p in self.chain.parts if p is not self.expr and p.leaves == 1]
        return singles[-1] if singles else None


_BARE = re.compile(r"[ \t]*-?\d+(?:\.\d+)?[ \t.!]*$")


def _answer(norm: str, start: int, end: int, strong: bool, whole: bool, final: bool = False) -> _Answer | None:
    """The answer at ``start``; ``final``: it is stated as the final answer ("Answer: ...", boxed, a tag), so
    a bare number or unbalanced brackets there are no solution (elsewhere they are not judged)."""
    chain = read_at(norm, start, end)
    line_end = norm.find("\n", start, end)
    line = norm[start:end if line_end < 0 else line_end]
    if final and line.count("(") != line.count(")") and re.search(r"\d[ \t]*[-+*/]", line):
        stop = start + len(line.rstrip())
        return _Answer(start, stop, None, True, problem="unbalanced")
    if chain is None:
        return _Answer(start, end, None, True) if whole and norm[start:end].strip() else None
    if whole and (norm[chain.parts[-1].end:end].strip() or chain.parts[-1].parsed is None):
        return _Answer(start, end, None, True)
    expr = next((p for p in chain.parts if p.leaves >= 2), None)
    if expr is None:
        if final and _BARE.match(line):
            return _Answer(chain.parts[0].start, chain.parts[0].end, chain, True, problem="bare")
        return None  # "The answer is 24": no expression
    complete = bool(_COMPLETE.match(norm, chain.parts[-1].end)) or whole
    return _Answer(expr.start, expr.end, chain, strong and complete, expr)


def _thinking(text: str, *, from_start: bool = False) -> list[tuple[int, int]]:
    """The spans of ``text`` that are a thinking model's monologue: from ``<think>`` to ``</think>`` (or to the end
    while it is open), and everything before a first ``</think>`` that no ``<think>`` opens (the chat template put
    that tag in the prompt); ``from_start``: the prompt ends inside an open ``<think>``."""
    out: list[tuple[int, int]] = []
    start: int | None = 0 if from_start else None
    first = True
    for m in _THINK.finditer(text):
        if m.group("close"):
            if start is None and first:
                start = 0
            if start is not None:
                out.append((start, m.start()))
            start = None
        elif start is None:
            start = m.end()
        first = False
    if start is not None:
        out.append((start, len(text)))
    return out


def _hedged(norm: str, pos: int) -> bool:
    """Whether the sentence before ``pos`` (an answer phrase) tries or supposes it: "Maybe the answer is"."""
    begin = max(norm.rfind(ch, 0, pos) for ch in ".!?\n") + 1
    return _HEDGE.search(norm, begin, pos) is not None


def _answers(norm: str, thought: Sequence[tuple[int, int]] = ()) -> list[_Answer]:
    """Final answers in the (normalised) text: an expression with at least one operation. An "answer" inside
    the ``thought`` spans (a thinking model's monologue), one that is asked about (``... = 26?``) and one its
    sentence only tries ("Perhaps the answer is ...") is a candidate, not the final answer."""
    out: list[_Answer] = []
    for m in _ANSWER.finditer(norm):
        if any(a <= m.start() < b for a, b in thought) or _hedged(norm, m.start()):
            continue
        pos = _RESTATE.match(norm, m.end())
        start = pos.end() if pos is not None else m.end()
        strong = m.group("strong") is not None
        final = strong and ":" in m.group("strong")
        nl = norm.find("\n", start)
        if strong and nl >= 0 and not norm[start:nl].strip(" \t:"):
            # "**Final Answer:**" alone on its line: the answer is the next line that has text
            nxt = nl
            while nxt < len(norm) and norm[nxt].isspace():
                nxt += 1
            start = nxt if norm.count("\n", nl, nxt) <= 3 else start
        found = _answer(norm, start, len(norm), strong, whole=False, final=final)
        if found is not None:
            out.append(found)
    for m in _BOXED.finditer(norm):
        depth, j = 1, m.end()
        while j < len(norm) and depth:
            depth += {"{": 1, "}": -1}.get(norm[j], 0)
            j += 1
        if depth == 0:
            found = _answer(norm, m.end(), j - 1, True, whole=True, final=True)
            if found is not None:
                out.append(found)
    for m in _TAG.finditer(norm):
        body_start = m.start("body") + len(m.group("body")) - len(m.group("body").lstrip())
        found = _answer(norm, body_start, m.end("body"), True, whole=True, final=True)
        if found is not None:
            out.append(found)
    out = [a for a in out if not any(s <= a.start < e for s, e in thought)
           and not (a.chain is not None and a.chain.question)]
    out.sort(key=lambda a: a.start)
    return [a for i, a in enumerate(out) if i == 0 or a.start != out[i - 1].start]


def _has_steps(trigger: object) -> bool:
    parts = trigger.triggers if isinstance(trigger, AnyOf) else (trigger,)
    return any(isinstance(t, StepBoundary) for t in parts)


def _multiset(values: Iterable[Fraction]) -> collections.Counter[Fraction]:
    return collections.Counter(values)


def _show(values: Iterable[Fraction]) -> str:
    return " ".join(format_number(v) for v in sorted(values)) or "nothing"


@dataclass(frozen=True)
class Game24State:
    """What :meth:`Game24.check` judges: the text so far, the step to judge, the puzzle's numbers."""

    text: str
    step: Span
    numbers: tuple[Fraction, ...] | None
    final: bool = False
    end_check: bool = False  # the end-of-run check: is there a final answer at all?
    end_only: bool = False  # AtEnd's check of the whole text: the steps were checked one by one already
    prompt_problem: str = ""
    thinking: bool = False  # the prompt ends inside an open <think>: the text starts in the monologue
    # The thinking's spans as the backend reported them (a server's reasoning field has no tags to find)
    thought: tuple[tuple[int, int], ...] = ()


class Game24(Verifier):
    """Checks Game of 24 traces step by step; see the module docstring.

    - ``numbers``: the puzzle (e.g. ``[4, 9, 10, 13]``); None reads them from the prompt.
    - ``target``: what the numbers must make (24).
    - ``dead_ends``: also flag a correct step after which the target is out of reach (``True`` uses the
      verifier's ``action``; an action name such as ``"warn"`` uses that).
    - ``require_answer``: at the end, a trace without a final ``Answer:`` gets ``Unknown`` (not a pass).
    - ``max_chars``: the cost bound. A step's check reads the trace so far once (linear in its length), and the
      dead-end search is bounded by :func:`~interlock.verifiers.game24.solver.solvable_within` (6 numbers,
      200,000 states, 100 ms); a trace longer than ``max_chars`` gets ``Unknown`` for its later steps.
    """

    name = "game24"
    trigger = StepBoundary() | AtEnd()
    runs_in = "loop"
    description = "Game of 24: step arithmetic, available numbers, 'left' bookkeeping, final expression (exact)"

    @classmethod
    def applies_to(cls, prompt: str) -> bool:
        """A prompt that asks for 24 from three to six numbers it gives ("Make 24 using 4, 9, 10, 13.")."""
        if not _ASKS_FOR_24.search(prompt):
            return False
        numbers = numbers_from_prompt(prompt)
        return numbers is not None and 3 <= len(numbers) <= 6

    def __init__(self, numbers: Sequence[int | Fraction | str] | None = None, *, target: int | Fraction = 24,
                 dead_ends: bool | Action | str = False, require_answer: bool = True, max_chars: int = 200_000,
                 **options: Any) -> None:
        if numbers is not None:
            try:
                self.numbers: tuple[Fraction, ...] | None = tuple(
                    parse_number(str(n)) if isinstance(n, str) else Fraction(n) for n in numbers)
            except (ExpressionError, TypeError, ValueError):
                raise VerifierConfigError(f"Game24: numbers must be numbers, got {numbers!r}") from None
            if len(self.numbers) < 2:
                raise VerifierConfigError(f"Game24: need at least two numbers, got {list(numbers)!r}")
        else:
            self.numbers = None
        self.target = Fraction(target)
        if isinstance(dead_ends, bool):
            self.dead_end_action: Action | None = None
            self.dead_ends = dead_ends
        else:
            self.dead_end_action = Action.parse(dead_ends)
            self.dead_ends = True
        self.require_answer = require_answer
        if max_chars < 1:
            raise VerifierConfigError(f"Game24: max_chars must be positive, got {max_chars!r}")
        self.max_chars = max_chars
        self._ended: tuple[int, int] | None = None
        self._normalized: Normalized | None = None  # the text last read, reused while the trace grows
        super().__init__(**options)

    # -- extraction ---------------------------------------------------------------------------------
    def extract(self, view: TraceView) -> Game24State:
        numbers = self.numbers
        problem = ""
        if numbers is None:
            found = numbers_from_prompt(view.prompt)
            if found is None or len(found) < 2:
                problem = ("no input numbers: pass Game24([4, 9, 10, 13]) or put 'Input: 4 9 10 13' in the "
                           "prompt")
            else:
                numbers = tuple(found)
        key = (view.epoch, view.end)
        end_check = view.final and view.step.end == view.end and self._ended != key
        if end_check:
            self._ended = key
        end_only = view.final and view.step.index == -1 and _has_steps(self.trigger)
        opened = _thinking(view.prompt)
        in_thought = bool(opened) and opened[-1][1] == len(view.prompt)
        thought = tuple((s.start, s.end) for s in view.spans("thinking"))
        return Game24State(view.text, view.step.span, numbers, final=view.final, end_check=end_check,
                           end_only=end_only, prompt_problem=problem, thinking=in_thought, thought=thought)

    # -- checking -----------------------------------------------------------------------------------
    @staticmethod
    def _thought(norm: Normalized, state: Game24State) -> list[tuple[int, int]]:
        """The monologue's spans in the normalised text: between thinking tags, and the thinking phase."""
        spans = _thinking(norm.text, from_start=state.thinking)
        spans += [(norm.index(a), norm.index(b)) for a, b in state.thought]
        return sorted(spans)

    def check(self, state: Game24State) -> list[Verdict]:
        if len(state.text) > self.max_chars:
            return [Unknown(reason=f"not checked: the trace is {len(state.text):,} characters long (the limit is "
                                   f"{self.max_chars:,})", span=state.step)]
        if state.end_only:
            norm_all = normalize(state.text)
            final_answers = _answers(norm_all.text, self._thought(norm_all, state))
            if state.end_check and self.require_answer and not final_answers:
                return [Unknown(reason="no final 'Answer: <expression>' in the trace", span=state.step)]
            if (state.end_check and final_answers and state.numbers is not None and final_answers[-1].strong
                    and self._partial(final_answers[-1], len(state.numbers))):
                # The last answer uses fewer numbers than the puzzle and no later one made up for it: it is the
                # final answer, and it is no solution.
                return self._check_answer(norm_all, final_answers[-1], state.numbers)
            return [Pass(note="every step was checked when it was written")]
        if state.numbers is None:
            return [Unknown(reason=state.prompt_problem, span=state.step)]
        norm = self._normalized = normalize(state.text, self._normalized)
        n = norm.text
        lo, hi = norm.index(state.step.start), norm.index(state.step.end)

        def here(end: int) -> bool:  # a reading belongs to the check of the step where it ends
            return lo < end <= hi

        verdicts: list[Verdict] = []
        found_answers = _answers(n, self._thought(norm, state))
        answers = [a for a in found_answers if not self._partial(a, len(state.numbers))]
        if state.end_check and found_answers and found_answers[-1] not in answers and found_answers[-1].strong:
            # The last answer of the trace uses fewer numbers than the puzzle: no later one made up for it, so
            # it is the final answer, and it is no solution.
            verdicts.extend(self._check_answer(norm, found_answers[-1], state.numbers))
        answer_spans = [(a.chain.parts[0].start, a.chain.parts[-1].end) if a.chain else (a.start, a.end)
                        for a in answers]
        inputs = _multiset(state.numbers)
        replay = _Replay(inputs)
        for chain in self._chains(n, lo):
            first, last = chain.parts[0], chain.parts[-1]
            if any(s < last.end and first.start < e for s, e in answer_spans):
                continue
            left = LEFT.match(n, last.end) if len(chain.parts) == 2 and _FRACTION.match(n, last.start, last.end) \
                else None
            if left is not None and first.leaves >= 2 and not chain.question:
                found = self._replay_step(norm, chain, left, replay, arithmetic=first.start >= lo)
                if here(left.end()):
                    verdicts.extend(found)
            elif here(last.end) and not chain.question and not _CORRECTED.match(n, last.end):
                verdicts.extend(self._check_chain(norm, chain))
        for answer in answers:
            if here(answer.end):
                verdicts.extend(self._check_answer(norm, answer, state.numbers))
        if state.end_check and self.require_answer and not found_answers:
            verdicts.append(Unknown(reason="no final 'Answer: <expression>' in the trace", span=state.step))
        return verdicts or [Pass()]

    @staticmethod
    def _chains(n: str, lo: int) -> Iterator[Chain]:
        """The chains of the text: every one from the step being checked on, and before it only those on lines
        that may be steps (a word of a "left" list on the line or the next), which the replay needs."""
        line_lo = n.rfind("\n", 0, lo) + 1
        regions: list[tuple[int, int]] = []
        for m in _LEFT_WORD.finditer(n, 0, n.find("\n", line_lo) % (len(n) + 1)):
            this_line = n.rfind("\n", 0, m.start())
            start = n.rfind("\n", 0, this_line) + 1 if this_line > 0 else 0  # this line and the one before
            end = min(n.find("\n", m.end()) % (len(n) + 1), line_lo)
            if start >= end:
                continue
            if regions and start <= regions[-1][1]:
                regions[-1] = (regions[-1][0], max(end, regions[-1][1]))
            else:
                regions.append((start, end))
        for start, end in regions:
            yield from chains(n, start, end)
        yield from chains(n, line_lo)

    def _replay_step(self, norm: Normalized, chain: Chain, m: re.Match[str], replay: _Replay,
                     arithmetic: bool) -> list[Verdict]:
        """Judge one step against the numbers available (moving ``replay`` on); returns the verdicts."""
        n = norm.text
        lhs, rhs = chain.parts
        lhs_text = n[lhs.start:lhs.end].strip()
        simple = _SIMPLE.match(lhs_text)
        c_text = n[rhs.start:rhs.end].strip()
        c = parse_number(c_text)
        leaf_texts: list[str]
        if simple is not None:  # "a op b", where a and b may be written fractions ("8 / 1/3")
            a, b = parse_number(simple.group("a")), parse_number(simple.group("b"))
            op = _SYMBOL[simple.group("op")]
            true: Fraction | None = {"+": a + b, "-": a - b, "*": a * b, "/": a / b if b != 0 else None}[op]
            used = [a, b]
            off = lhs.start + (len(n[lhs.start:lhs.end]) - len(n[lhs.start:lhs.end].lstrip()))
            operands = [(a, (off + simple.start("a"), off + simple.end("a"))),
                        (b, (off + simple.start("b"), off + simple.end("b")))]
            leaf_texts = [simple.group("a"), simple.group("b")]
        else:
            assert lhs.parsed is not None
            true = lhs.parsed.value
            operands = _operands(n, lhs)
            used = [v for v, _ in operands]
            leaf_texts = [re.sub(r"[ \t]+", "", n[s:e]) for _, (s, e) in operands]
        raw = m.group("left") if m.group("left") is not None else m.group("list")
        left_span = m.span("left") if m.group("left") is not None else m.span("list")
        try:
            left: list[Fraction] | None = [parse_number(x) for x in re.split(r"(?:[\s,()]|and)+", raw.strip()) if x]
        except ExpressionError:
            left = None
        need = _multiset(used)
        plus = _multiset([c])
        pool = replay.choose(need, plus, left)
        out: list[Verdict] = []
        shown = _original(norm, lhs.start, lhs.end)
        missing = [(v, span) for v, span in operands if pool[v] < need[v]]
        if missing and {v for v, _ in missing} <= _free_results(n, lhs.start):
            # "4 * 10 = 40, 40 - 13 = 27, so we're left with 27 and 9": the step goes on from a result that no
            # step with a list of what is left recorded, so which numbers were available is not known.
            found = self._replay_arithmetic(norm, chain, true, c, c_text, leaf_texts) if arithmetic else []
            if left is None:
                found.append(Unknown(reason=f"cannot read the numbers left {raw!r}",
                                     span=Span(*norm.span(*left_span))))
            replay.moved(_multiset(left) if left is not None else pool)
            return found
        if missing:
            value, span = missing[-1]
            out.append(Fail(f"{shown} uses {format_number(value)}, which is not among the numbers available "
                            f"({_show(pool.elements())})",
                            span=Span(*norm.span(*span)),
                            feedback=f"{format_number(value)} is not available; the numbers left are "
                                     f"{_show(pool.elements())}.",
                            claim=f"unavailable {format_number(value)} in {_show(pool.elements())}"))
        c_shown = _original(norm, rhs.start, rhs.end)
        if arithmetic:
            out.extend(self._replay_arithmetic(norm, chain, true, c, c_text, leaf_texts))
        after = pool - need + plus if not missing else None
        if left is None:
            out.append(Unknown(reason=f"cannot read the numbers left {raw!r}", span=Span(*norm.span(*left_span))))
        elif after is not None and _multiset(left) != after:
            out.append(Fail(f"after {shown} = {c_shown} the numbers left are {_show(after.elements())}, "
                            f"not {_show(left)}", span=Span(*norm.span(*left_span)),
                            feedback=f"the numbers left after {shown} = {c_shown} would be "
                                     f"{_show(after.elements())}, not {_show(left)}.",
                            claim=f"left {_show(after.elements())}!={_show(left)}"))
        elif not out and self.dead_ends and (reach := solvable_within(left, self.target)) is None:
            out.append(Unknown(reason=f"dead-end check not run: {_show(left)} is past the solver's bound "
                                      f"({MAX_NUMBERS} numbers, {MAX_STATES:,} states, {MAX_SECONDS * 1000:g} ms)",
                               span=Span(*norm.span(*left_span))))
        elif not out and self.dead_ends and not reach \
                and not any(decimals(x) >= 2 for x in re.split(r"[\s,()]+", raw) if x):
            # (with numbers rounded to two or more decimals the exact solver cannot judge: no verdict)
            out.append(Fail(f"dead end: {_show(left)} can no longer make {format_number(self.target)}",
                            span=Span(*norm.span(chain.parts[0].start, m.end())), action=self.dead_end_action,
                            feedback=f"with {_show(left)} left, {format_number(self.target)} can no longer be made; "
                                     "try another step.",
                            claim=f"dead end {_show(left)}"))
        replay.moved(_multiset(left) if left is not None else (after if after is not None else pool))
        return out

    @staticmethod
    def _replay_arithmetic(norm: Normalized, chain: Chain, true: Fraction | None, c: Fraction, c_text: str,
                           leaf_texts: list[str]) -> list[Verdict]:
        """The arithmetic of a step ``a op b = c``: no division by zero, and ``c`` its value (rounding allowed)."""
        n = norm.text
        lhs, rhs = chain.parts
        lhs_text = n[lhs.start:lhs.end].strip()
        shown, c_shown = _original(norm, lhs.start, lhs.end), _original(norm, rhs.start, rhs.end)
        if true is None:
            return [Fail(f"{shown} divides by zero", span=Span(*norm.span(lhs.start, lhs.end)),
                         feedback="division by zero is not allowed.", claim=f"{_compact(lhs_text)}=div0")]
        if not close_enough(true, c, c_text, leaf_texts):
            return [Fail(f"{shown} is {format_number(true)}, not {c_shown}", span=Span(*norm.span(rhs.start, rhs.end)),
                         feedback=f"{shown} is {format_number(true)}, not {c_shown}.",
                         claim=f"{_compact(lhs_text)}={c_text}")]
        return []

    def _partial(self, answer: _Answer, count: int) -> bool:
        """An "answer" that uses fewer numbers than the puzzle and says, rightly, that it makes something other
        than the target ("So the answer is 13 - 9 = 4." in a monologue): an intermediate result, not the final
        answer (its arithmetic is still checked as a calculation)."""
        claimed, expr = answer.claimed, answer.expr
        if claimed is None or expr is None or expr.parsed is None or claimed.parsed is None:
            return False
        value = expr.parsed.value
        return (len(expr.parsed.leaves) < count and value is not None and value == claimed.parsed.value
                and value != self.target)

    def _check_answer(self, norm: Normalized, answer: _Answer, numbers: Sequence[Fraction]) -> list[Verdict]:
        span = Span(*norm.span(answer.start, answer.end))
        shown = _original(norm, answer.start, answer.end)
        if answer.problem == "bare":
            return [Fail(f"the final answer {shown} is a number, not an expression that uses each of "
                         f"{_show(numbers)} once", span=span,
                         feedback=f"the answer must be an expression that uses each of {_show(numbers)} exactly "
                                  f"once and makes {format_number(self.target)}.", claim="answer is a bare number")]
        if answer.problem == "unbalanced":
            return [Fail(f"the final answer {shown} has unbalanced parentheses", span=span,
                         feedback="the answer's parentheses do not match.", claim="answer unbalanced")]
        if answer.chain is None or answer.expr is None or answer.expr.parsed is None:
            return [Unknown(reason=f"cannot read the final answer {_original(norm, answer.start, answer.end)!r}",
                            span=span)]
        parsed = answer.expr.parsed
        expr = _original(norm, answer.start, answer.end)
        used = _multiset(leaf.value for leaf in parsed.leaves)
        want = _multiset(numbers)
        if not answer.strong and len(parsed.leaves) != len(numbers):
            return []  # "the solution is 4 * 6 = 24" in passing: not sure it is the final answer
        out: list[Verdict] = []
        target = format_number(self.target)
        if used != want:
            extra, missing = used - want, want - used
            parts = []
            if missing:
                parts.append(f"does not use {_show(missing.elements())}")
            if extra:
                parts.append(f"uses {_show(extra.elements())} beyond the input")
            what = " and ".join(parts)
            out.append(Fail(f"the final answer {expr} {what}: each of {_show(numbers)} must be used exactly "
                            "once", span=span,
                            feedback=f"the answer must use each of {_show(numbers)} exactly once; it {what}.",
                            claim=f"answer uses {_show(used.elements())}"))
        claimed = answer.claimed
        if parsed.value is None:
            out.append(Fail(f"the final answer {expr} divides by zero", span=span,
                            feedback="the answer divides by zero.", claim="answer div0"))
        elif parsed.value != self.target:
            out.append(Fail(f"the final answer {expr} equals {format_number(parsed.value)}, not {target}",
                            span=span, feedback=f"{expr} is {format_number(parsed.value)}, not {target}.",
                            claim=f"answer = {format_number(parsed.value)}"))
        elif claimed is not None and claimed.parsed is not None and claimed.parsed.value != self.target:
            said = _original(norm, claimed.start, claimed.end)
            out.append(Fail(f"the final answer says = {said}, but the target is {target}",
                            span=Span(*norm.span(claimed.start, claimed.end)),
                            feedback=f"the answer must equal {target}.", claim=f"answer claims {said}"))
        else:
            out.extend(self._check_chain(norm, answer.chain))
        return out or [Pass(note=f"the final answer {expr} = {target}", span=span)]

    def _check_chain(self, norm: Normalized, chain: Chain) -> list[Verdict]:
        """Arithmetic of ``a = b = c``: each side equals the one before it (a side that goes on from the value
        before, ``4 + 8 = 12 * 2 = 24``, is a running calculation and is not judged)."""
        n = norm.text
        out: list[Verdict] = []
        for before, after in itertools.pairwise(chain.parts):
            if before.parsed is None or after.parsed is None or max(before.leaves, after.leaves) < 2:
                continue
            lhs, rhs = (before, after) if before.leaves >= 2 else (after, before)
            assert lhs.parsed is not None and rhs.parsed is not None
            lhs_text, rhs_text = n[lhs.start:lhs.end].strip(), n[rhs.start:rhs.end].strip()
            shown, said = _original(norm, lhs.start, lhs.end), _original(norm, rhs.start, rhs.end)
            true, stated = lhs.parsed.value, rhs.parsed.value
            if true is None:
                out.append(Fail(f"{shown} divides by zero", span=Span(*norm.span(lhs.start, rhs.end)),
                                feedback="division by zero is not allowed.", claim=f"{_compact(lhs_text)}=div0"))
                break
            if stated is None or true == stated:
                continue
            if after.leaves >= 2 and before.parsed.value == after.parsed.leaves[0].value:
                continue  # running calculation
            leaf_texts = [n[lhs.start + leaf.start:lhs.start + leaf.end] for leaf in lhs.parsed.leaves]
            if rhs.leaves == 1 and close_enough(true, stated, rhs_text, leaf_texts):
                continue
            if _as_written_fractions(lhs_text) in (stated,) or _as_written_fractions(rhs_text) == true:
                continue  # "8 / 1/3 = 24": 1/3 written as a fraction
            out.append(Fail(f"{shown} is {format_number(true)}, not {said}",
                            span=Span(*norm.span(rhs.start, rhs.end)),
                            feedback=f"{shown} is {format_number(true)}, not {said}.",
                            claim=f"{_compact(lhs_text)}={_compact(rhs_text)}"))
            break
        return out


class _Replay:
    """The numbers available while a trace is replayed, and every state it has been in (to go back to)."""

    def __init__(self, inputs: collections.Counter[Fraction]) -> None:
        self.pool = collections.Counter(inputs)
        self.history = [collections.Counter(inputs)]

    def choose(self, need: collections.Counter[Fraction], plus: collections.Counter[Fraction],
               left: list[Fraction] | None) -> collections.Counter[Fraction]:
        """The state this step starts from: the current one, or else an earlier one (the latest first) that
        the step fits exactly (its numbers available there and its "left" list what would remain), since a
        trace that explores goes back to try another branch. If none fits, the current one (and it is judged)."""
        if left is not None and not _fits(self.pool, need, plus, left):
            for state in reversed(self.history):
                if _fits(state, need, plus, left):
                    self.pool = collections.Counter(state)
                    break
        return self.pool

    def moved(self, state: collections.Counter[Fraction]) -> None:
        self.pool = collections.Counter(state)
        self.history.append(collections.Counter(state))


def _fits(state: collections.Counter[Fraction], need: collections.Counter[Fraction],
          plus: collections.Counter[Fraction], left: list[Fraction]) -> bool:
    return all(state[v] >= k for v, k in need.items()) and _multiset(left) == state - need + plus


# A number written in brackets, as models write negative numbers and fractions they carry: "6 + (-1)",
# "(5/3) + 9", "15 / (5/3)". It is one number of the state, not a calculation with 1, or with 5 and 3.
_BRACKETED = re.compile(r"\([ \t]*(-?[ \t]*\d+(?:\.\d+)?(?:[ \t]*/[ \t]*\d+)?)[ \t]*\)")


def _operands(n: str, part: Part) -> list[tuple[Fraction, tuple[int, int]]]:
    """The numbers a step's left side uses, with their spans: a bracketed number is one operand."""
    assert part.parsed is not None
    groups = []
    for m in _BRACKETED.finditer(n, part.start, part.end):
        try:
            groups.append((parse_number(re.sub(r"[ \t]+", "", m.group(1))), m.start(1), m.end(1)))
        except ExpressionError:
            continue
    out: list[tuple[Fraction, tuple[int, int]]] = []
    taken: set[int] = set()
    for leaf in part.parsed.leaves:
        start, end = part.start + leaf.start, part.start + leaf.end
        group = next((k for k, (_, a, b) in enumerate(groups) if a <= start and end <= b), None)
        if group is None and any(a - 1 <= start and end <= b + 1 for _, a, b in groups):
            group = next(k for k, (_, a, b) in enumerate(groups) if a - 1 <= start and end <= b + 1)
        if group is None:
            out.append((leaf.value, (start, end)))
        elif group not in taken:
            taken.add(group)
            value, a, b = groups[group]
            out.append((value, (a, b)))
    return out


def _free_results(n: str, end: int) -> set[Fraction]:
    """The results of the free-form calculations before ``end`` (those no list of what is left follows):
    intermediate values a trace may go on from without saying which numbers remain."""
    out: set[Fraction] = set()
    for chain in chains(n, 0, end):
        last = chain.parts[-1]
        if last.end <= end and last.leaves == 1 and last.parsed is not None and last.parsed.value is not None \
                and not LEFT.match(n, last.end):
            out.add(last.parsed.value)
    return out


def _original(norm: Normalized, start: int, end: int) -> str:
    """What the model wrote for the normalised span, stripped (for messages)."""
    return norm.original(start, end).strip()


def _compact(text: str) -> str:
    return "".join(text.split())


def _as_written_fractions(text: str) -> Fraction | None:
    """The value of ``text`` with every tight ``a/b`` of integers read as one number (``8 / 1/3`` is 24)."""
    if not re.search(r"\d/\d", text):
        return None
    try:
        return parse_expression(re.sub(r"(?<![\d.])(\d+/\d+)(?![\d.])", r"(\1)", text)).value
    except ExpressionError:
        return None
