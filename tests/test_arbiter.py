"""Arbitration: the first decision depends only on the verdicts, never on the order they arrive in."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from interlock import Action, Arbiter, Candidate, Span

ACTIONS = [Action.WARN, Action.ROLLBACK, Action.INTERRUPT]


@st.composite
def checks(draw: st.DrawFn) -> list[tuple[int, list[Candidate]]]:
    """Checks about steps (scope start), each with zero or more failing candidates inside its step."""
    n = draw(st.integers(1, 8))
    out = []
    for i in range(n):
        scope = draw(st.integers(0, 50))
        cands = []
        for j in range(draw(st.integers(0, 2))):
            start = scope + draw(st.integers(0, 5))
            cands.append(Candidate(position=scope, action=draw(st.sampled_from(ACTIONS)), source=f"v{i}",
                                   span=Span(start, start + draw(st.integers(1, 4))), message=f"m{i}.{j}"))
        out.append((scope, cands))
    return out


def first_decision(checks_: list[tuple[int, list[Candidate]]], order: list[int]) -> Candidate | None:
    arbiter = Arbiter()
    for i, (scope, _) in enumerate(checks_):
        arbiter.open(i, scope)
    for i in order:
        arbiter.close(i, checks_[i][1])
        decided = arbiter.decide()
        if decided is not None:
            return decided
    return None


@given(checks(), st.randoms(use_true_random=False))
def test_first_decision_is_independent_of_arrival_order(cs: list[tuple[int, list[Candidate]]], rnd) -> None:  # type: ignore[no-untyped-def]
    order = list(range(len(cs)))
    reference = first_decision(cs, order)
    rnd.shuffle(order)
    assert first_decision(cs, order) == reference
    everything = [c for _, cands in cs for c in cands]
    if everything:
        expected = min(everything, key=Candidate.sort_key)
        assert reference == expected
    else:
        assert reference is None


def test_slow_early_check_is_waited_for() -> None:
    arbiter = Arbiter()
    arbiter.open("early", 0)
    arbiter.open("late", 20)
    late = Candidate(position=20, action=Action.ROLLBACK, source="b", span=Span(22, 25))
    arbiter.close("late", [late])
    assert arbiter.decide() is None  # the check about step 0 could still find an earlier fault
    early = Candidate(position=0, action=Action.ROLLBACK, source="a", span=Span(3, 6))
    arbiter.close("early", [early])
    assert arbiter.decide() == early


def test_strongest_action_wins_at_the_same_position_and_earliest_position_beats_strength() -> None:
    arbiter = Arbiter()
    warn = Candidate(position=10, action=Action.WARN, source="a", span=Span(10, 12))
    interrupt = Candidate(position=10, action=Action.INTERRUPT, source="b", span=Span(11, 12))
    rollback = Candidate(position=4, action=Action.ROLLBACK, source="c", span=Span(5, 6))
    for c in (warn, interrupt):
        arbiter.add(c)
    assert arbiter.decide() == interrupt
    arbiter.add(rollback)
    assert arbiter.decide() == rollback


def test_cut_drops_candidates_about_removed_text() -> None:
    arbiter = Arbiter()
    keep = Candidate(position=0, action=Action.WARN, source="a", span=Span(0, 3))
    gone = Candidate(position=8, action=Action.ROLLBACK, source="b", span=Span(9, 12))
    arbiter.add(keep)
    arbiter.add(gone)
    arbiter.cut(8)
    assert arbiter.candidates == (keep,)
