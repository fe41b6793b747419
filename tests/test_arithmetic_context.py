"""A modulus or a base named in the prompt excuses a claim only when the claim is true there (issue 24, item 3).

Through the proxy the prompt is client-supplied or retrieved text: "Work modulo 7." or "some numbers may be
written in base 6" must not turn the checks off. A claim the prompt's modulus or base makes right passes; one
that is false there too is flagged, exactly as without the sentence.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from interlock import Fail, Monitor, Outcome
from interlock.generators import Scripted
from interlock.verifiers import Arithmetic


def fails(text: str, prompt: str) -> list[tuple[str, str]]:
    return [(text[v.span.start:v.span.end], v.feedback) for v in Arithmetic().scan(text, prompt=prompt)
            if isinstance(v, Fail)]


def test_the_issue_s_claims_are_flagged() -> None:
    assert fails("So 17 * 3 = 41.\n", "Work modulo 7.") == [
        ("17 * 3 = 41", "17 * 3 is 51, which is 2 modulo 7, not 41.")]
    assert fails("So 2 + 2 = 5.\n", "Note: some numbers may be written in base 6.") == [
        ("2 + 2 = 5", "2 + 2 is 4, not 5.")]


def test_what_the_named_modulus_or_base_makes_right_still_passes() -> None:
    assert fails("So 3 * 5 = 1.\n", "Work modulo 7.") == []
    assert fails("So 4 + 5 = 13.\n", "Note: some numbers may be written in base 6.") == []


async def test_a_run_under_a_hostile_prompt_is_a_violation() -> None:
    result = await Monitor(Scripted("So 17 * 3 = 41.\n"), [Arithmetic(action="interrupt")]).run("Work modulo 7.")
    assert result.outcome is Outcome.VIOLATION
    result = await Monitor(Scripted("So 2 + 2 = 5.\n"), [Arithmetic(action="interrupt")]).run(
        "Note: some numbers may be written in base 6.")
    assert result.outcome is Outcome.VIOLATION


@settings(max_examples=200, deadline=None)
@given(a=st.integers(0, 60), b=st.integers(0, 60), stated=st.integers(0, 200), m=st.integers(2, 40),
       op=st.sampled_from("+*"), phrase=st.sampled_from(["Work modulo {m}.", "We compute mod {m} throughout.",
                                                          "All arithmetic is modulo {m}"]))
def test_under_a_named_modulus_a_claim_is_flagged_exactly_when_it_is_false_there(
        a: int, b: int, stated: int, m: int, op: str, phrase: str) -> None:
    value = a + b if op == "+" else a * b
    text = f"So {a} {op} {b} = {stated}.\n"
    flagged = bool(fails(text, phrase.format(m=m)))
    if value == stated or ((value - stated) % m == 0 and stated < m):
        assert not flagged  # right, or the reduced residue modulo the named modulus
    if (value - stated) % m != 0:
        assert flagged  # false under the named modulus: the sentence excuses nothing


def _numeral(n: int, base: int) -> str:
    digits = ""
    while True:
        n, d = divmod(n, base)
        digits = "0123456789"[d] + digits
        if n == 0:
            return digits


@settings(max_examples=200, deadline=None)
@given(x=st.integers(0, 300), y=st.integers(0, 300), z=st.integers(0, 700), base=st.integers(2, 9),
       in_base=st.booleans())
def test_under_a_named_base_a_claim_is_flagged_exactly_when_it_is_false_in_both_bases(
        x: int, y: int, z: int, base: int, in_base: bool) -> None:
    """Numerals written in the base (or in decimal, whose digits may not fit it): true in one base or the other
    passes, false in both is flagged."""
    xs, ys, zs = (_numeral(n, base) if in_base else str(n) for n in (x, y, z))
    text = f"So {xs} + {ys} = {zs}.\n"
    flagged = bool(fails(text, f"Note: some numbers may be written in base {base}."))
    digits_fit = all(int(d) < base for d in xs + ys + zs)
    true_in_base = digits_fit and int(xs, base) + int(ys, base) == int(zs, base)
    true_in_decimal = int(xs) + int(ys) == int(zs)
    assert flagged == (not true_in_base and not true_in_decimal)


def test_a_value_named_for_a_power_is_no_claim_in_a_base_problem() -> None:
    """ "the coefficient for 5^3 is 4" says what the digit of 5^3 is (a correct SkyThought trace); before, any
    claim passed once two bases were spoken of, which hid that misreading."""
    before = "We need base $5$ and base $10$ here.\n"
    assert fails(before + "So, the coefficient for 5^3 is 4.\n", "Express $555_{10}$ in base $5$.") == []
    assert fails(before + "So 5^3 is 4.\n", "Express $555_{10}$ in base $5$.") == [("5^3 is 4", "5^3 is 125, not 4.")]
