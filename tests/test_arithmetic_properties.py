"""Property tests: random expressions written in every supported notation with their true value are never
flagged; the same expressions with a perturbed result are flagged, with the span of exactly that claim."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from interlock.verifiers.arithmetic import check_text

NOTATIONS = {
    "plain": {"+": " + ", "-": " - ", "*": " * ", "/": " / ", "^": "^"},
    "compact": {"+": "+", "-": "-", "*": "*", "/": "/", "^": "**"},
    "unicode": {"+": " + ", "-": " − ", "*": " × ", "/": " ÷ ", "^": "^"},
    "dot-x": {"+": " + ", "-": " - ", "*": " x ", "/": " / ", "^": "^"},
    "middot": {"+": " + ", "-": " - ", "*": " · ", "/": " / ", "^": "^"},
    "latex": {"+": " + ", "-": " - ", "*": r" \times ", "/": r" \div ", "^": "^"},
    "latex-frac": {"+": " + ", "-": " - ", "*": r" \cdot ", "/": "frac", "^": "^"},
    "money": {"+": " + ", "-": " - ", "*": " × ", "/": " / ", "^": "^"},  # $1,234.5 with separators
}


def group(text: str) -> str:
    """Thousands separators on the whole part: 12345.5 -> 12,345.5."""
    whole, dot, frac = text.partition(".")
    sign = "-" if whole.startswith("-") else ""
    return f"{sign}{int(whole.lstrip('-')):,}{dot}{frac}"


def money(text: str) -> str:
    return f"-${group(text[1:])}" if text.startswith("-") else f"${group(text)}"

leaf = st.one_of(
    st.integers(min_value=-40, max_value=2000),
    st.builds(lambda n, d: Fraction(n, 10**d), st.integers(min_value=1, max_value=999), st.integers(1, 2)),
)


def _tree(children: Any) -> Any:
    return st.one_of(
        st.tuples(st.sampled_from(["+", "-", "*", "/"]), children, children),
        st.tuples(st.just("^"), st.integers(min_value=-9, max_value=12), st.integers(min_value=0, max_value=3)),
    )


trees = st.recursive(leaf, _tree, max_leaves=6)


def value(tree: Any) -> Fraction:
    if not isinstance(tree, tuple):
        return Fraction(tree)
    op, a, b = tree
    x, y = value(a), value(b)
    if op == "+":
        return x + y
    if op == "-":
        return x - y
    if op == "*":
        return x * y
    if op == "/":
        if y == 0:
            raise ZeroDivisionError
        return x / y
    return x ** int(y)


def render_leaf(x: Fraction | int, ops: dict[str, str] | None = None) -> str:
    f = Fraction(x)
    if f.denominator == 1:
        text = str(f.numerator)
    else:
        places = next(p for p in range(1, 8) if (f * 10**p).denominator == 1)
        text = f"{Decimal(f.numerator) / Decimal(f.denominator):.{places}f}"
    if ops is NOTATIONS["money"]:
        text = money(text)
    return f"({text})" if f < 0 else text


def render(tree: Any, ops: dict[str, str], top: bool = True) -> str:
    if not isinstance(tree, tuple):
        return render_leaf(tree, ops)
    op, a, b = tree
    if op == "/" and ops["/"] == "frac":
        text = r"\frac{" + render(a, ops) + "}{" + render(b, ops) + "}"
        return text
    text = render(a, ops, False) + ops[op] + render(b, ops, False)
    return text if top else f"({text})"


def stated(v: Fraction) -> tuple[str, Decimal]:
    """The value as a careful writer states it: exact when it terminates within 4 decimals, else to 2."""
    for places in range(5):
        if (v * 10**places).denominator == 1:
            d = Decimal(v.numerator) / Decimal(v.denominator)
            return f"{d:.{places}f}", d.quantize(Decimal(1).scaleb(-places))
    d = (Decimal(v.numerator) / Decimal(v.denominator)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return f"{d:.2f}", d


def not_judged(tree: Any, notation: str) -> bool:
    """Two forms are left alone by design: a written fraction of whole numbers ("3/4") with a unit after the
    result is a share of something, and "5-10" (glued, smaller first) reads as a range."""
    op, a, b = tree
    whole = all(not isinstance(x, tuple) and Fraction(x).denominator == 1 and x >= 0 for x in (a, b))
    return notation == "compact" and whole and (op == "/" or (op == "-" and a < b))


def proper_share(tree: Any) -> bool:
    """ "1 / 2 = 1.5 apples": a proper fraction said to be 1 or more of something is a share, left alone."""
    op, a, b = tree
    return op == "/" and all(not isinstance(x, tuple) and Fraction(x).denominator == 1 for x in (a, b)) and 0 < a < b


PREFIXES = ["", "So ", "The total is ", "He pays ", "Now we get: "]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(tree=trees, notation=st.sampled_from(sorted(NOTATIONS)), prefix=st.sampled_from(PREFIXES))
def test_true_values_are_never_flagged(tree: Any, notation: str, prefix: str) -> None:
    assume(isinstance(tree, tuple))
    try:
        v = value(tree)
    except ZeroDivisionError:
        assume(False)
    assume(abs(v) < 10**12)
    expr = render(tree, NOTATIONS[notation])
    result, _ = stated(v)
    if notation == "money":
        result = money(result)
    sentence = f"{prefix}{expr} = {result} apples."
    found = check_text(sentence)
    expected = [] if not_judged(tree, notation) else ["ok"]  # "3/4 = 0.75 apples": a share, not judged
    assert [f.status for f in found] == expected, (sentence, [(f.status, f.judgement.reason) for f in found])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(tree=trees, notation=st.sampled_from(sorted(NOTATIONS)), prefix=st.sampled_from(PREFIXES),
       delta=st.integers(min_value=-50, max_value=50).filter(bool))
def test_perturbed_results_are_flagged_with_the_claim_span(tree: Any, notation: str, prefix: str,
                                                           delta: int) -> None:
    assume(isinstance(tree, tuple))
    try:
        v = value(tree)
    except ZeroDivisionError:
        assume(False)
    assume(abs(v) < 10**12)
    assume(not not_judged(tree, notation))
    assume(not proper_share(tree))
    expr = render(tree, NOTATIONS[notation])
    text, d = stated(v)
    places = len(text.split(".")[1]) if "." in text else 0
    bad = f"{d + delta:.{places}f}"
    if notation == "money":
        bad = money(bad)
    sentence = f"{prefix}{expr} = {bad} apples."
    found = check_text(sentence)
    assert [f.status for f in found] == ["wrong"], (sentence, [(f.status, f.judgement.reason) for f in found])
    f = found[0]
    assert (f.start, f.end) == (len(prefix), len(prefix) + len(f"{expr} = {bad}"))
    assert f.judgement.feedback.startswith(f"{' '.join(expr.split())} is ")
    assert f.judgement.feedback.endswith(f", not {bad}.")
