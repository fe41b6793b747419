"""What a run does about a violation or a governor's decision: roll back, interrupt, stop, or force an answer.

:class:`Interventions` is the part of a :class:`~interlock.monitor.monitor.Run` that acts. It takes the
arbiter's decision (:meth:`Interventions.settle` applies at once what needs no new generation, such as warnings;
the rest wakes the driver, which calls :meth:`Interventions.apply`), cuts the trace and injects feedback on a
rollback, lets governors veto or escalate an intervention, and, when a budget is spent, injects the answer
prefix and lets the model answer within its reserve. Its state is two small records: :class:`Stop` (why the run
is ending) and :class:`ForcedAnswer` (an answer being forced).
"""

from __future__ import annotations

import collections
import dataclasses
import re
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio
from interlock.monitor.arbiter import Candidate
from interlock.monitor.chunks import readable_markers
from interlock.monitor.events import GovernorDecided, Intervened
from interlock.monitor.governor import Governor, GovernorDecision, normalise_claim
from interlock.monitor.phases import ANSWER, KNOWN_TAGS, THINKING
from interlock.monitor.result import Intervention, StopReason
from interlock.monitor.verdicts import Action, Span

if TYPE_CHECKING:
    from interlock.monitor.monitor import Run

__all__ = ["ForcedAnswer", "Interventions", "Stop", "lower_first_word"]

# Words that start a sentence with a capital only because they start it: "Wait, you made..." Closed classes
# (articles, determiners, pronouns, prepositions, conjunctions, auxiliaries) and the imperatives and adverbs that
# open feedback. Never "I", names, acronyms or anything else, which keep their capital.
_COMMON_FIRST_WORDS = frozenset({
    # articles, determiners, quantifiers
    "an", "the", "this", "that", "these", "those", "some", "any", "no", "each", "every", "all", "both", "either",
    "neither", "many", "much", "most", "more", "few", "several", "such", "another", "other", "one", "only", "just",
    # pronouns and possessives
    "it", "its", "there", "here", "you", "your", "we", "our", "they", "their", "he", "she", "his", "her", "my",
    "me", "us", "them", "someone", "something", "nothing", "everything", "anything", "none",
    # prepositions
    "in", "on", "at", "for", "from", "to", "with", "without", "after", "before", "of", "by", "as", "per", "over",
    "under", "between", "during", "within", "into", "about", "above", "below", "than",
    # conjunctions and adverbs that open a sentence
    "if", "when", "while", "since", "because", "so", "but", "and", "or", "then", "now", "first", "next", "also",
    "not", "instead", "actually", "rather", "however", "therefore", "thus", "hence", "again", "always", "never",
    "still", "yet", "otherwise", "please", "careful",
    # auxiliaries and question words
    # ("May" and "Will" are left out: a month, a person)
    "be", "do", "did", "does", "is", "are", "was", "were", "has", "have", "had", "can", "could", "should", "would",
    "must", "might", "what", "which", "who", "why", "how", "where",
    # imperatives
    "let", "check", "recheck", "compute", "calculate", "recompute", "look", "note", "remember", "recall",
    "consider", "try", "use", "make", "keep", "add", "subtract", "multiply", "divide", "count", "start", "read",
})
# After a capital "A", the words that make it a name (a variable, a person, an option: "A is wrong", "A and B
# differ") rather than the article ("A transfer may move at most 100").
_AFTER_A_NAME = frozenset({
    "is", "was", "are", "were", "has", "had", "have", "does", "did", "do", "can", "cannot", "could", "must",
    "should", "would", "will", "may", "might", "and", "or", "nor", "equals", "plus", "minus", "times", "gets",
    "gives", "wins", "loses", "says", "said", "lies", "lives", "owns", "holds", "takes", "then", "alone", "itself",
})
# A plural verb after a one-word subject that ends in "s" ("Transfers are limited to 100"): a common noun, since a
# name does not take one.
_PLURAL_VERBS = frozenset({"are", "were", "have", "do", "cannot", "never", "always", "only", "must"})


def lower_first_word(text: str) -> str:
    """``text`` with its first word in lower case when that word is a common one written with a capital because
    it starts the sentence, so that the text reads on after "Wait, ". A name, an acronym, ``I`` or any word
    spelt with other capitals (``NASA``, ``iPhone``, ``McDonald``) keeps its capital; so does a word this rule
    cannot tell from a name (``Alice is left.``)."""
    found = re.match(r"([A-Za-z]+)(?:\s+([A-Za-z]+))?", text)
    if found is None:
        return text
    word, after = found.group(1), found.group(2) or ""
    if word == "A":  # the article when a word of the sentence follows it, not a verb or a conjunction
        article = bool(after) and after.islower() and after not in _AFTER_A_NAME
        return "a" + text[1:] if article else text
    if len(word) < 2 or not word.istitle():
        return text
    common = word.lower() in _COMMON_FIRST_WORDS or (
        word.endswith("s") and not word.endswith("ss") and after in _PLURAL_VERBS)
    return text[0].lower() + text[1:] if common else text


@dataclass(frozen=True)
class Stop:
    """Why the run is ending; set once by whoever decides, read by the driver when generation returns."""

    reason: StopReason
    detail: str
    abstain: bool = False
    source: str = ""  # who decided (for a restart: recorded with the state it carried)
    position: int | None = None  # a restart: where the trouble began (the state carried ends before it)


@dataclass
class ForcedAnswer:
    """A budget was spent and the answer prefix injected: the run ends after the answer's first line."""

    reason: StopReason
    detail: str
    starts_at: int  # where the answer starts in the trace
    tokens_left: int  # tokens the answer may still use, within every hard cap

    def stop(self) -> Stop:
        return Stop(self.reason, self.detail)


class Interventions:
    """Applies the decisions of one run and keeps the record of them."""

    def __init__(self, run: Run) -> None:
        self._run = run
        self.records: list[Intervention] = []
        self.stop: Stop | None = None
        self.forced: ForcedAnswer | None = None
        self.decision_ready = False  # the arbiter holds a decision that needs the driver (a cut, a stop)
        self.restream = False  # the monitor wrote into the trace mid-stream (the thinking ended): ask afresh
        self._claims: collections.Counter[tuple[str, str]] = collections.Counter()  # rollbacks per claim
        self._probes: set[anyio.CancelScope] = set()  # governors' pending async decisions (fork probes)

    # -- the arbiter's decisions ---------------------------------------------------------------------
    def settle(self) -> None:
        """Apply what needs no new generation (warnings, reports of rollbacks a replay cannot make); wake the
        driver for the rest."""
        run = self._run
        arbiter = run.checks.arbiter
        while (candidate := arbiter.decide()) is not None:
            if candidate.action is Action.WARN:
                arbiter.remove(candidate)
                self.record(self._proposal(candidate))
                continue
            if (candidate.action is Action.ROLLBACK and not run.capabilities.resumable
                    and run.monitor.on_unresumable == "continue"):
                arbiter.remove(candidate)
                self.record(dataclasses.replace(self._proposal(candidate), applied=False,
                                                reason="the generator cannot resume from a prefix"))
                continue
            self.decision_ready = True
            run.stop_generation()
            break
        run.notify()

    def take(self) -> Candidate | None:
        """The decision to act on now, after applying what needs no generation."""
        self.decision_ready = False
        self.settle()
        self.decision_ready = False
        return self._run.checks.arbiter.decide()

    def apply(self, c: Candidate) -> bool:
        """Act on a decision; True when generation should go on."""
        run = self._run
        run.checks.arbiter.remove(c)
        proposal = self._proposal(c)
        if c.action is Action.RESTART:
            self.record(proposal)
            self.stop = self.restart_stop(c.source, c.message, c.position)
            run.checks.arbiter.clear()
            return False
        if c.action is not Action.ROLLBACK:
            self.record(proposal)
            self.stop = Stop(StopReason.INTERRUPTED, f"{c.source}: {c.message}", c.abstain)
            run.checks.arbiter.clear()
            return False
        if self.stop is not None:
            self.record(dataclasses.replace(proposal, applied=False, reason="the run is already stopping"))
            return False
        if self.forced is not None:  # out of budget: the forced answer goes on, the violation stays open
            self.record(dataclasses.replace(proposal, applied=False, reason="the answer is being forced"))
            return True
        if not run.capabilities.resumable:
            self.record(dataclasses.replace(proposal, applied=False,
                                            reason="the generator cannot resume from a prefix"))
            self.stop = Stop(StopReason.UNRESUMABLE, f"{c.source}: {c.message}")
            return False
        allowance = run.allowance()
        if allowance is not None and allowance <= 0:
            self.record(dataclasses.replace(proposal, applied=False, reason="no token budget left to regenerate"))
            self.exhausted()  # a budget that forces the answer gets it written now
            if self.stop is None and self.forced is not None:
                return True
            self.stop = Stop(StopReason.BUDGET, "token budget exhausted before a rollback could regenerate")
            return False
        for g in run.monitor.governors:
            d = g.on_intervention(run, proposal)
            if d is None:
                continue
            if d.action in (Action.INTERRUPT, Action.STOP, Action.RESTART):
                run.emit(GovernorDecided(governor=g.name, action=d.action.value, reason=d.reason,
                                         tokens_saved=d.tokens_saved if d.tokens_saved is not None else allowance))
                self.record(dataclasses.replace(proposal, action=d.action, reason=d.reason, applied=True))
                self.stop = (self.restart_stop(g.name, d.reason) if d.action is Action.RESTART
                             else Stop(d.stop_reason, f"{g.name}: {d.reason}", d.abstain))
                run.checks.arbiter.clear()
                return False
            if d.feedback is not None:
                proposal = dataclasses.replace(proposal, feedback=d.feedback, reason=d.reason)
        self._claims[normalise_claim(c.source, c.claim or c.message)] += 1
        self._rollback(proposal)
        return True

    def _rollback(self, proposal: Intervention) -> None:
        """Cut the trace at the start of the offending step and inject the feedback."""
        run = self._run
        pos = proposal.position
        before = run.trace.discarded_tokens
        removed = run.trace.cut(pos)
        run.checks.cut(pos)
        feedback = self._format_feedback(proposal)
        # removed_text is for people: a tool call in it reads with its spaces (the trace holds its marker escaped)
        self.record(dataclasses.replace(proposal, feedback=feedback, removed_text=readable_markers(removed),
                                        tokens_discarded=run.trace.discarded_tokens - before))
        if feedback:
            run.inject(feedback)
        run.notify()

    def _format_feedback(self, proposal: Intervention) -> str:
        text = proposal.feedback.strip()
        if not text:
            return ""
        if text[-1] not in ".!?)\"'":
            text += "."
        template = self._run.monitor.feedback_template
        at = template.find("{feedback}")
        if at > 0 and template[:at].rstrip().endswith(","):  # "Wait, {feedback}": the feedback goes on a sentence
            text = lower_first_word(text)
        values = collections.defaultdict(str, feedback=text, message=proposal.message, source=proposal.source)
        return template.format_map(values)

    def _proposal(self, c: Candidate) -> Intervention:
        return Intervention(action=c.action, source=c.source, position=c.position, span=c.span, epoch=c.epoch,
                            message=c.message, feedback=c.feedback,
                            repeat=self._claims[normalise_claim(c.source, c.claim or c.message)])

    def record(self, intervention: Intervention) -> None:
        self.records.append(intervention)
        self._run.emit(Intervened(intervention=intervention))

    # -- governors' decisions ------------------------------------------------------------------------
    def governor_decision(self, g: Governor, d: GovernorDecision) -> None:
        """A governor decided something about the text so far (from ``on_chunk`` or a probe)."""
        run = self._run
        if d.thinking is not None:
            self.thinking_decision(g, d)
            return
        saved = d.tokens_saved
        forcing = d.action is Action.STOP and d.inject is not None and (d.allow_tokens or 0) > 0
        if saved is None and d.action in (Action.STOP, Action.INTERRUPT, Action.RESTART):
            left = run.allowance()  # estimate: the budget left when the governor ended the run
            if left is not None:
                saved = max(0, left - (d.allow_tokens or 0 if forcing else 0))
        run.emit(GovernorDecided(governor=g.name, action=d.action.value, reason=d.reason, tokens_saved=saved))
        end = len(run.trace)
        if d.action is Action.WARN:
            return
        if d.action is Action.ROLLBACK:
            position = end if d.position is None else max(0, min(d.position, end))
            run.checks.arbiter.add(Candidate(position=position, action=Action.ROLLBACK, source=g.name,
                                             span=Span(position, end), epoch=run.trace.epoch,
                                             feedback=d.inject or "", message=d.reason, claim=d.reason))
            self.settle()
            return
        if forcing:
            if self.forced is None and not self.force_answer(g, d) and self.forced is not None:
                self.stop = self.forced.stop()
            return  # (an answer already being forced goes on)
        self.record(Intervention(action=d.action, source=g.name, position=end, span=Span(end, end),
                                 epoch=run.trace.epoch, message=d.reason, reason=d.reason))
        self.stop = (self.restart_stop(g.name, d.reason, d.position) if d.action is Action.RESTART
                     else Stop(d.stop_reason, f"{g.name}: {d.reason}", d.abstain))

    # -- the thinking's end --------------------------------------------------------------------------------
    def thinking_decision(self, g: Governor, d: GovernorDecision) -> bool:
        """Apply a governor's ``thinking="end"`` or ``"extend"`` decision; False when there was nothing to do (the
        trace is not thinking, or has no ended thinking to extend)."""
        run = self._run
        if self.stop is not None or self.forced is not None:
            return False
        if d.thinking == "end" and d.answer is not None:  # the governor's answer is the answer: the run ends
            self.end_thinking(d.inject or "")  # (a run that was not thinking just gets the answer)
            run.emit(GovernorDecided(governor=g.name, action="end_thinking", reason=d.reason,
                                     tokens_saved=d.tokens_saved))
            run.inject(d.answer, ANSWER)
            self.stop = Stop(d.stop_reason, f"{g.name}: {d.reason}")
            return True
        done = self.end_thinking(d.inject or "") if d.thinking == "end" else self.extend_thinking(g, d)
        if done:
            run.emit(GovernorDecided(governor=g.name, action=f"{d.thinking}_thinking", reason=d.reason,
                                     tokens_saved=d.tokens_saved))
        return done

    def end_thinking(self, message: str) -> bool:
        """Check the step being written as cut, append ``message`` to the thinking, end it, go on in the answer."""
        run = self._run
        if run.trace.phase != THINKING:
            return False
        run.checks.schedule(close=True, cut=True)
        if message:
            run.inject(message, THINKING)
        run.close_thinking()
        self.restream = True
        return True

    def extend_thinking(self, g: Governor, d: GovernorDecision) -> bool:
        """Cut the trace back to before the end of the last thinking (its closing tag) and append ``d.inject``."""
        run = self._run
        trace = run.trace
        starts, kinds = trace.phase_starts, [trace.phase_at(s) for s in trace.phase_starts]
        ends = [starts[i] for i in range(1, len(starts)) if kinds[i] == ANSWER and kinds[i - 1] == THINKING]
        if not ends:
            return False
        end = ends[-1]
        body = trace.text[:end]
        pos = end
        for pair in KNOWN_TAGS:  # the closing tag the model wrote goes too: the thinking must stay open
            stripped = body.rstrip()
            if stripped.endswith(pair.close):
                pos = len(stripped) - len(pair.close)
                break
        before = trace.discarded_tokens
        span = Span(pos, len(trace))
        removed = trace.cut(pos)
        run.checks.cut(pos)
        trace.set_phase(THINKING)
        text = d.inject or ""
        self.record(Intervention(action=Action.ROLLBACK, source=g.name, position=pos, span=span,
                                 epoch=trace.epoch - 1, message=d.reason, feedback=text, removed_text=removed,
                                 tokens_discarded=trace.discarded_tokens - before, reason=d.reason))
        if text:
            run.inject(text, THINKING)
        self.restream = True
        run.notify()
        return True

    def restart_stop(self, source: str, reason: str, position: int | None = None) -> Stop:
        """End this attempt for a fresh one, or, once the monitor's restarts are used up, stop it plainly."""
        if self._run.restarts_left > 0:
            streamed = ("" if self._run.restartable
                        else "; a streamed run runs one attempt (Monitor.run restarts): stopped")
            return Stop(StopReason.RESTART, f"{source}: {reason}{streamed}", source=source, position=position)
        limit = self._run.monitor.max_restarts
        return Stop(StopReason.GOVERNOR, f"{source}: {reason}; no restart left (max_restarts={limit}): stopped",
                    source=source)

    def exhausted(self, need: int = 1) -> None:
        """A governor allows fewer than ``need`` more tokens: force the answer if it asks to, else stop."""
        run = self._run
        if self.forced is not None:
            self.stop = self.forced.stop()
            return
        for g in run.monitor.governors:
            allowance = g.token_allowance(run)
            if allowance is None or allowance >= need:
                continue
            decision = g.on_exhausted(run)
            if decision is not None and decision.thinking is not None:
                if self.thinking_decision(g, decision):
                    return  # the thinking ended: the answer is generated under the allowances that hold there
                decision = None
            run.emit(GovernorDecided(governor=g.name, action=(decision.action.value if decision else "stop"),
                                     reason=decision.reason if decision else "token budget exhausted",
                                     tokens_saved=0))
            if decision is not None and decision.inject is not None and self.force_answer(g, decision):
                return
            self.stop = self.forced.stop() if self.forced else Stop(
                StopReason.BUDGET, f"{g.name}: token budget exhausted")
            return
        # Every governor allows ``need`` tokens again (a pool topped a share up): generation goes on.

    def force_answer(self, g: Governor, d: GovernorDecision) -> bool:
        """Inject ``d.inject`` (end of thinking, answer prefix) and allow ``d.allow_tokens`` more, within every
        cap; the run ends after the answer's first line. False when no token is left for the answer."""
        assert d.inject is not None
        run = self._run
        self.forced = ForcedAnswer(d.stop_reason, f"{g.name}: {d.reason}; the answer was forced",
                                   starts_at=len(run.trace), tokens_left=max(0, d.allow_tokens or 0))
        run.inject(d.inject)
        self.forced.starts_at = len(run.trace)
        return (run.allowance() or 0) > 0

    # -- probes: governors' decisions that need a wait -----------------------------------------------
    def start_probe(self, g: Governor, pending: Awaitable[GovernorDecision | None]) -> None:
        """A governor's decision that needs a wait (a fork probe) runs beside generation; it is dropped if the
        trace was cut or generation ended meanwhile."""
        run = self._run
        scope = anyio.CancelScope()
        self._probes.add(scope)
        run.task_group.start_soon(self._probe, g, pending, scope, run.trace.epoch, name=f"governor {g.name} probe")

    async def _probe(self, g: Governor, pending: Awaitable[GovernorDecision | None], scope: anyio.CancelScope,
                     epoch: int) -> None:
        run = self._run
        decision = None
        with scope:
            decision = await pending
        self._probes.discard(scope)
        if (decision is None or scope.cancel_called or self.stop is not None or self.forced is not None
                or run.trace.epoch != epoch):
            return
        self.governor_decision(g, decision)
        if self.stop is not None or self.forced is not None or self.restream:
            run.stop_generation()  # stop now, and never append the old stream's text after an injection

    def cancel_probes(self) -> None:
        for scope in self._probes:
            scope.cancel()
        self._probes.clear()
