"""The verifier API without a monitor: scan, triggers, verdict normalisation, the registry and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from interlock import (
    AtEnd,
    ConfigError,
    EveryNTokens,
    Fail,
    OnPattern,
    Pass,
    RegistryError,
    Span,
    Step,
    StepBoundary,
    TraceView,
    Unknown,
    Verifier,
    applicable_verifiers,
    create_verifier,
    list_verifiers,
    register_verifier,
    verifier,
)
from support import SumVerifier, check_sums

ROOT = Path(__file__).resolve().parent.parent


def test_scan_reports_exact_spans_as_if_streamed() -> None:
    text = "Tom has 3 apples.\nSo 3 + 4 = 8.\nThen 2 + 2 = 4."
    verdicts = SumVerifier().scan(text)
    assert [type(v).__name__ for v in verdicts] == ["Pass", "Fail", "Pass"]
    fail = verdicts[1]
    assert isinstance(fail, Fail)
    assert fail.span == Span(21, 30) and text[21:30] == "3 + 4 = 8"
    assert fail.verifier == "sums" and fail.message == "3 + 4 is 7, not 8"


def test_scan_inside_an_event_loop_points_to_ascan() -> None:
    import anyio

    async def inside() -> None:
        with pytest.raises(ConfigError, match=r"await verifier\.ascan"):
            SumVerifier().scan("1 + 1 = 3")

    anyio.run(inside)


def _spans(trigger, text: str) -> list[tuple[int, int]]:  # type: ignore[no-untyped-def]
    seen: list[tuple[int, int]] = []

    @verifier(name="spy", trigger=trigger)
    def spy(step: Step) -> None:
        seen.append((step.span.start, step.span.end))

    spy.scan(text)
    return seen


def test_triggers() -> None:
    text = "one two. three four\nfive Wait six seven"
    assert _spans(StepBoundary(), text) == [(0, 9), (9, 20), (20, 39)]
    assert _spans(AtEnd(), text) == [(0, 39)]
    # pieces: "one", " two.", " three", ...; the last < 3 tokens are checked at the end, from their step's start
    assert _spans(EveryNTokens(3), text) == [(0, 14), (14, 29), (20, 39)]
    # the text no match's step covered is checked at the end: before the match, and after it from its step's start
    assert _spans(OnPattern(r"\bWait\b"), text) == [(20, 29), (0, 20), (20, 39)]
    assert _spans(StepBoundary() | AtEnd(), text) == [(0, 9), (9, 20), (0, 39), (20, 39)]


def test_trigger_configuration_errors() -> None:
    with pytest.raises(ConfigError, match="EveryNTokens needs n >= 1"):
        EveryNTokens(0)
    with pytest.raises(ConfigError, match="invalid regular expression"):
        OnPattern("(").bind()


def test_return_values_are_normalised() -> None:
    @verifier(name="bools")
    def bools(step: Step) -> bool:
        return "bad" not in step.text

    verdicts = bools.scan("good.\nbad.\n")
    assert isinstance(verdicts[0], Pass)
    assert isinstance(verdicts[1], Fail) and verdicts[1].span == Span(6, 11)
    assert verdicts[1].message == "bools rejected this step"

    @verifier(name="out-of-range")
    def out_of_range(step: Step) -> Fail:
        return Fail("x", span=Span(0, 999))

    (verdict,) = out_of_range.scan("abc")
    assert isinstance(verdict, Unknown) and "beyond the 3 characters it saw" in verdict.reason


def test_class_verifier_with_its_own_extractor() -> None:
    class LastNumber(Verifier):
        name = "last-number"
        trigger = AtEnd()

        def extract(self, view: TraceView) -> str:
            return view.text.split()[-1]

        def check(self, state: str) -> Fail | None:
            return None if state.rstrip(".") == "7" else Fail(f"the answer {state} is not 7")

    assert isinstance(LastNumber().scan("so it is 7.")[0], Pass)
    failed = LastNumber().scan("so it is 8.")[0]
    assert isinstance(failed, Fail) and failed.span == Span(0, 11)


def test_verifier_configuration_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match="runs_in must be one of"):
        SumVerifier(runs_in="gpu")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="timeout must be a positive number"):
        SumVerifier(timeout=0)
    with pytest.raises(ConfigError, match="verifier name 'a b'"):
        SumVerifier(name="a b")


def test_registry_decorator_and_lookup() -> None:
    @register_verifier("test-sums")
    class Registered(SumVerifier):
        """Checks a + b = c."""

    made = create_verifier("test-sums", action="warn")
    assert isinstance(made, Registered) and made.action.value == "warn"
    assert any(v.name == "test-sums" and v.description == "Checks a + b = c." for v in list_verifiers())
    with pytest.raises(RegistryError, match="no verifier named 'nope'"):
        create_verifier("nope")
    with pytest.raises(RegistryError, match="already registered"):
        register_verifier("test-sums")(check_sums)


def test_the_verifiers_that_apply_to_a_prompt_are_the_ones_whose_class_says_so() -> None:
    assert applicable_verifiers("What is 12*7?") == ["arithmetic"]
    assert applicable_verifiers("Make 24 using 4, 9, 10, 13.") == ["arithmetic", "game24"]
    assert applicable_verifiers("In 24 hours she walked 3, 4 and 5 miles.") == ["arithmetic"]

    @register_verifier("test-sky-color")
    class SkyColor(SumVerifier):
        @classmethod
        def applies_to(cls, prompt: str) -> bool:
            return "sky" in prompt

    assert applicable_verifiers("Why is the sky blue?") == ["arithmetic", "test-sky-color"]
    assert "test-sky-color" not in applicable_verifiers("What is 12*7?")


def test_cli_lists_third_party_verifiers_from_entry_points(tmp_path: Path) -> None:
    plugin = tmp_path / "site"
    (plugin / "acme_checks").mkdir(parents=True)
    (plugin / "acme_checks" / "__init__.py").write_text(textwrap.dedent('''
        from interlock import Verifier

        class NoLies(Verifier):
            """Flags steps that contain a lie."""
            name = "no-lies"

            def check(self, state):
                return None
    '''))
    dist = plugin / "acme_checks-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-checks\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[interlock.verifiers]\nno-lies = acme_checks:NoLies\n")
    env = {"PYTHONPATH": f"{plugin}:{ROOT}", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-m", "interlock", "verifiers", "--json"], capture_output=True,
                         text=True, env=env, check=True, cwd=tmp_path)
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    row = next(r for r in rows if r["name"] == "no-lies")
    assert row == {"name": "no-lies", "target": "acme_checks:NoLies", "origin": "acme-checks",
                   "description": "Flags steps that contain a lie."}
