"""Verifiers and helpers shared by the tests (importable by worker processes, hence a module of its own)."""

from __future__ import annotations

import re
from collections.abc import Sequence

import pytest
from interlock import Chunk, Fail, Step, Verifier

SUM = re.compile(r"(\d+) \+ (\d+) = (\d+)")


def check_sums(step: Step) -> Fail | None:
    """Fails on the first wrong "a + b = c" in the step, with the claim's exact span."""
    for m in SUM.finditer(step.text):
        a, b, c = (int(g) for g in m.groups())
        if a + b != c:
            return Fail(f"{a} + {b} is {a + b}, not {c}", span=step.to_trace(*m.span()), claim=m.group())
    return None


class SumVerifier(Verifier):
    """Class form of :func:`check_sums` (picklable, so it can run in a process pool)."""

    name = "sums"

    def check(self, state: Step) -> Fail | None:
        return check_sums(state)


def wrong(text: str) -> list[tuple[str, str]]:
    """(claim text, feedback) of every wrong claim the arithmetic verifier finds in one step."""
    from interlock.verifiers.arithmetic import check_text

    return [(text[f.start:f.end], f.judgement.feedback) for f in check_text(text) if f.status == "wrong"]


def statuses(text: str) -> list[tuple[str, str]]:
    """(status, claim text) of every claim the arithmetic verifier judges in one step."""
    from interlock.verifiers.arithmetic import check_text

    return [(f.status, text[f.start:f.end]) for f in check_text(text)]


def assert_same_chunks(actual: Sequence[Chunk], expected: Sequence[Chunk], *, rel: float = 1e-5) -> None:
    """Texts, token ids and flags exactly; logprobs and entropies (floats computed along different cache paths,
    whose last bits depend on the kernels) within a relative tolerance."""
    assert [(c.text, c.token_ids, c.injected) for c in actual] == [(c.text, c.token_ids, c.injected)
                                                                     for c in expected]
    for a, e in zip(actual, expected, strict=True):
        for field in ("logprobs", "entropy"):
            got, want = getattr(a, field), getattr(e, field)
            assert (got is None) == (want is None), field
            if got is not None:
                assert got == pytest.approx(want, rel=rel, abs=rel), field
