"""Thinking and answer apart in the budget evaluator: the records' phases, tokens per phase, and thinking budgets.

A recorded reasoning trace holds a thinking and an answer (its thinking tags, or the phases of a trace file's
chunks). The evaluator counts the tokens of each apart, for the whole trace and where each policy stops it, and a
policy can cap the thinking alone: ``think:N`` (:class:`ThinkingCap`, the live
:class:`~interlock.monitor.governors.ThinkingBudget`) ends the thinking after N thinking tokens and lets the
model answer.

What offline replay can measure of a thinking budget, and what it cannot: a trace whose thinking ends within the
budget is untouched (its recorded answer stands, every token counted). A trace whose thinking is cut never had the
answer the model would have written after the cut: the recorded answer came after the whole thinking. So:

- the thinking tokens it spends are exact (the budget);
- its answer is *scored* as the policy says: ``think:N`` reads the last answer the kept thinking states explicitly
  (a ``\\boxed{}`` or "the answer is ..."; a bare number in the middle of a thinking is no answer), the answer a
  model forced to answer now would most plausibly give; ``think:N:lost`` scores every cut trace as wrong (a lower
  bound on accuracy); ``think:N:recorded`` scores it as the whole recorded trace (as if the cut cost nothing: an
  upper bound). The truth for a live thinking budget lies between the two bounds;
- its answer *tokens* are estimated by the recorded answer's (the answer written after the whole thinking; none
  when the recorded thinking never ended), and marked ``answer_estimated``.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from interlock.monitor.budgets.answers import AnswerScorer, StatedAnswer, stated_answer
from interlock.monitor.budgets.errors import BudgetError
from interlock.monitor.budgets.offline import ReplayStop
from interlock.monitor.budgets.records import TraceRecord
from interlock.monitor.governor import Governor
from interlock.monitor.governors.thinking_budget import ThinkingBudget
from interlock.monitor.phases import KNOWN_TAGS, THINKING, ThinkingTags
from interlock.monitor.thinking import recorded_phases, runs_of

__all__ = ["SCORINGS", "ThinkingCap", "explicit_answer", "phase_fields", "phase_notes", "phase_summary",
           "phase_tokens", "thinking_outcome", "with_phases"]

SCORINGS = ("stated", "lost", "recorded")


class ThinkingCap(ThinkingBudget):
    """:class:`ThinkingBudget` capping the thinking at ``max_tokens``, as an offline policy (``think:N``):
    ``scoring`` says how a trace whose thinking it cuts is scored (see the module docstring)."""

    def __init__(self, max_tokens: int, *, scoring: str = "stated") -> None:
        if scoring not in SCORINGS:
            raise BudgetError(f"think: scoring must be one of {', '.join(SCORINGS)}, got {scoring!r}")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise BudgetError(f"think needs a number of thinking tokens >= 1, got {max_tokens!r}")
        super().__init__(max_tokens)
        self.scoring = scoring


def with_phases(records: Iterable[TraceRecord], tags: Iterable[ThinkingTags | str] | None = None
                ) -> list[TraceRecord]:
    """The records with their phases: a trace file's from its chunks, a text's from its thinking ``tags``
    (default: the known pairs; ``()``: none), starting inside a thinking where the question ends with an opening
    tag or the first tag is a closing one."""
    pairs = KNOWN_TAGS if tags is None else tuple(ThinkingTags.parse(t) for t in tags)
    out = []
    for rec in records:
        if rec.chunks is not None:
            phases = runs_of((c.text, c.phase) for c in rec.chunks)
        else:
            phases = recorded_phases(rec.text, pairs, prompt=rec.question)
        out.append(replace(rec, phases=phases) if phases != rec.phases else rec)
    return out


def phase_tokens(rec: TraceRecord, upto: int | None = None) -> tuple[int, int]:
    """Generated tokens of the thinking and of the answer among the first ``upto`` generated tokens of a
    tokenised record (all of them when ``None``)."""
    if rec.chunks is not None:
        thinking = answer = 0
        for c in rec.chunks:
            if c.injected:
                continue
            n = c.n_tokens if upto is None else min(c.n_tokens, upto - thinking - answer)
            if n <= 0:
                break
            if c.phase == THINKING:
                thinking += n
            else:
                answer += n
        return thinking, answer
    if rec.starts is None:
        raise BudgetError(f"record {rec.id!r} is not tokenised")
    total = len(rec.starts) if upto is None else min(upto, len(rec.starts))
    if not rec.phases:
        return 0, total
    bounds = [bisect.bisect_left(rec.starts, s) for s, _ in rec.phases] + [len(rec.starts)]
    thinking = sum(max(0, min(bounds[k + 1], total) - bounds[k]) for k, (_, p) in enumerate(rec.phases)
                   if p == THINKING)
    return thinking, total - thinking


def thinking_closed(rec: TraceRecord) -> bool:
    """Whether the recorded thinking ended (an answer followed it)."""
    return bool(rec.phases) and rec.phases[-1][1] != THINKING


def phase_fields(rec: TraceRecord) -> dict[str, Any]:
    """The whole trace's tokens per phase (for a record with a thinking)."""
    if not rec.phases:
        return {}
    thinking, answer = phase_tokens(rec)
    return {"thinking_tokens": thinking, "answer_tokens": answer, "thinking_closed": thinking_closed(rec)}


def explicit_answer(text: str) -> StatedAnswer | None:
    """The last answer ``text`` states explicitly: a ``\\boxed{}`` or "the answer is ..." (never a bare number)."""
    found = stated_answer(text)
    return found if found is not None and found.kind != "result" else None


def thinking_outcome(rec: TraceRecord, stop: ReplayStop, governors: Sequence[Governor], outcome: dict[str, Any],
                     scorer: AnswerScorer) -> dict[str, Any]:
    """A policy's outcome with the tokens of each phase at its stop; where a :class:`ThinkingCap` cut the thinking,
    the answer is scored as that cap says and the answer's tokens are the recorded answer's (an estimate)."""
    if not rec.phases:
        return outcome
    thinking, answer = phase_tokens(rec, stop.tokens)
    out = {**outcome, "thinking_tokens": thinking, "answer_tokens": answer}
    cap = next((g for g in governors if isinstance(g, ThinkingCap) and g.name == stop.by), None)
    if cap is None or stop.reason != "budget":
        return out
    recorded_answer = phase_tokens(rec)[1] - answer  # what the trace answered after the kept text
    found = (explicit_answer(rec.text[:stop.chars]) if cap.scoring == "stated" else
             stated_answer(rec.text, complete=True) if cap.scoring == "recorded" else None)
    return {**out, "thinking_cut": True, "answer": found.text if found else None,
            "answer_kind": found.kind if found else None,
            "correct": scorer.correct(found.text if found else None, rec.reference),
            "tokens": stop.tokens + recorded_answer, "answer_tokens": answer + recorded_answer,
            "answer_estimated": True}


def phase_summary(pairs: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]]) -> dict[str, Any]:
    """Per-phase figures of one policy over the records it applied to (``(record, outcome)`` pairs): mean
    thinking and answer tokens, thinking tokens saved against the uncapped traces, thinkings cut, answers whose
    tokens are estimated. Empty when no record has a thinking."""
    done = [(r, o) for r, o in pairs if not o.get("na")]
    if not any("thinking_tokens" in r for r, _ in done):
        return {}
    n = len(done)
    full = sum(r.get("thinking_tokens", 0) for r, _ in done)
    spent = sum(o.get("thinking_tokens", 0) for _, o in done)
    answer = sum(o.get("answer_tokens", o.get("tokens", 0)) for _, o in done)
    return {"thinking_traces": sum(bool(r.get("thinking_tokens")) for r, _ in done),
            "mean_thinking": round(spent / n, 1) if n else None, "mean_answer": round(answer / n, 1) if n else None,
            "thinking_saved_pct": round(100 * (full - spent) / full, 1) if full else None,
            "thinking_cut": sum(bool(o.get("thinking_cut")) for _, o in done),
            "answer_estimated": sum(bool(o.get("answer_estimated")) for _, o in done)}


def phase_notes(uncapped: Mapping[str, Any]) -> str:
    """The table's footnote on the phase columns (``uncapped``: the table's first row)."""
    return (f"think tok / answer tok: mean tokens of the thinking and of the answer ({uncapped['thinking_traces']} "
            f"of {uncapped['traces']} traces have a thinking; the others count as all answer); think saved: thinking "
            "tokens not spent; † cut: thinkings a think:N cap ended; offline the answer after the cut was never "
            "written, so it is scored on the last answer the kept thinking states (:lost: wrong; :recorded: as the "
            "whole trace) and its tokens are the recorded answer's (an estimate, in mean tok and answer tok)")
