"""Arbitrary text made of the pieces model traces are made of never crashes a verifier, and every span it
reports lies inside the text (a verifier that raised would only show as an error event and an Unknown)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from interlock.verifiers import Game24
from interlock.verifiers.arithmetic import TooComplex, check_text

PIECES = [
    "1", "2", "3", "12", "0.5", ".5", "1,000", "1{,}000", "=", "==", "≈", " ", "\n", "+", "-", "−", "*", "×", "x",
    "/", "÷", "^", "**", "(", ")", "[", "]", "{", "}", "\\frac", "\\dfrac", "\\times", "\\cdot", "\\div", "\\sqrt",
    "\\left(", "\\right)", "\\text{ cm}", "$", "$$", "\\(", "\\)", "%", "\\%", "!", "<<", ">>", "is", "of", "and",
    "eggs", "per", "hour", "mod", "\\pmod{7}", "\\equiv", "base", "binary", "left:", "(left: 4 6)", "Answer:",
    "\\boxed{", "<answer>", "</answer>", "so", "wait", "wrong", "❌", "?", ".", ",", ":", "&=", "\\\\", "2x", "°",
    "²", "√", "π", "_", "|", "→", "=>", "Step 1:", "1.", "- ", "`", "所以", "个", "万", "乘以", "。", "，",
]
texts = st.lists(st.sampled_from(PIECES), min_size=1, max_size=40).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=texts)
def test_the_arithmetic_verifier_reads_any_text_and_its_spans_lie_inside_it(text: str) -> None:
    try:
        findings = check_text(text)
    except TooComplex:
        return
    for f in findings:
        assert 0 <= f.start < f.end <= len(text)
        assert f.status in {"ok", "wrong", "unknown", "unsure"}


@settings(max_examples=200, deadline=None)
@given(text=texts)
def test_the_game24_verifier_reads_any_text_and_its_spans_lie_inside_it(text: str) -> None:
    for verdict in Game24([4, 9, 10, 13]).scan(text):
        span = getattr(verdict, "span", None)
        if span is not None:
            assert 0 <= span.start <= span.end <= len(text)
