"""The outcome of a run, the same everywhere: RunResult, the proxy's header and body; how a generator says it
stopped at its own limit; the feedback sentence; the display's commit rule."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import hypothesis.strategies as st
from hypothesis import given
from interlock import (
    Chunk,
    ChunkAppended,
    Fail,
    FeedbackInjected,
    GenerationRequest,
    Intervened,
    Monitor,
    Outcome,
    Pass,
    Span,
    Step,
    TokenBudget,
    VerdictReceived,
    verifier,
)
from interlock.generators import Scripted
from interlock.monitor.cli.run_display import TraceDisplay
from interlock.monitor.interventions import lower_first_word
from interlock.monitor.proxy import GeneratorBackend, ProxyConfig, create_app, serving
from interlock.monitor.result import Intervention, StopReason
from interlock.monitor.verdicts import Action
from tiny_model import tiny_model_dir  # noqa: F401  (fixture)


@verifier(name="sums")
def sums(step: Step) -> Fail | None:
    if "2 + 2 = 5" in step.text:
        start = step.text.index("2 + 2 = 5")
        return Fail("2 + 2 is 4, not 5", span=step.to_trace(start, start + 9), feedback="You wrote 5; 2 + 2 is 4")
    return None


async def _outcome(script: Scripted, **options: object) -> tuple[Outcome, StopReason]:
    result = await Monitor(script, verifiers=["arithmetic"], **options).run("q")  # type: ignore[arg-type]
    return result.outcome, result.stop_reason


async def test_each_outcome_from_a_monitored_run() -> None:
    assert await _outcome(Scripted("So 2 + 3 = 5.\n")) == (Outcome.VERIFIED, StopReason.COMPLETE)
    assert await _outcome(Scripted("Roses are red.\n")) == (Outcome.UNCHECKED, StopReason.COMPLETE)
    assert await _outcome(Scripted("So 2 + 3 = 5 and on and on.\n"), governors=[TokenBudget(max_total=4)]) == (
        Outcome.BUDGET, StopReason.BUDGET)
    assert await _outcome(Scripted("So 2 + 3 = 5 and on and on.\n", max_new_tokens=4)) == (
        Outcome.CUT, StopReason.LENGTH)
    # the same wrong step after every rollback: the monitor gives up, the violation stands
    assert (await _outcome(Scripted("So 2 + 3 = 6.\n")))[0] is Outcome.VIOLATION
    assert [o.exit_code for o in Outcome] == [0, 0, 1, 3, 3, 2, 4]


async def test_scripted_marks_its_last_chunk_with_why_it_stopped() -> None:
    async def last(gen: Scripted, limit: int | None = None) -> Chunk:
        chunks = [c async for c in gen.stream(GenerationRequest("q", max_new_tokens=limit))]
        assert all(c.finish_reason is None for c in chunks[:-1])
        return chunks[-1]

    assert (await last(Scripted(["a", "b", "c"]))).finish_reason == "stop"
    assert (await last(Scripted(["a", "b", "c"], max_new_tokens=2))).finish_reason == "length"
    assert (await last(Scripted(["a", "b", "c"]), limit=2)).finish_reason == "length"
    assert (await last(Scripted(["a", "b"]), limit=2)).finish_reason == "stop"  # the script ended there anyway
    assert Chunk("x", finish_reason="length").to_dict() == {"text": "x", "finish_reason": "length"}


async def test_the_proxy_says_the_outcome_in_its_header_and_body() -> None:
    async def ask(script: Scripted) -> httpx.Response:
        app = create_app(ProxyConfig(GeneratorBackend(script, model="scripted"), verifiers=["arithmetic"]))
        async with serving(app) as url, httpx.AsyncClient(timeout=30) as client:
            return await client.post(f"{url}/v1/completions", json={"model": "scripted", "prompt": "q"})

    verified = await ask(Scripted("So 2 + 3 = 5.\n"))
    assert verified.headers["x-interlock-outcome"] == "verified"
    assert verified.json()["interlock"]["outcome"] == "verified"
    poem = await ask(Scripted("Roses are red.\n"))
    assert poem.headers["x-interlock-outcome"] == "unchecked" and poem.headers["x-interlock-passed"] == "true"
    cut = await ask(Scripted("So 2 + 3 = 5 and on.\n", max_new_tokens=3))
    assert cut.headers["x-interlock-outcome"] == "cut"
    assert cut.json()["choices"][0]["finish_reason"] == "length"


async def test_feedback_after_wait_reads_as_one_sentence() -> None:
    script = Scripted({"": "We add. 2 + 2 = 5.\n", "Let me redo this step.\n": "2 + 2 = 4.\n"})
    result = await Monitor(script, verifiers=[sums]).run("q")
    assert result.interventions[0].feedback == "Wait, you wrote 5; 2 + 2 is 4. Let me redo this step.\n"
    assert [lower_first_word(t) for t in ("The sum is 7.", "I erred.", "Alice is left.", "NASA said so.",
                                          "A is wrong.", "12 is right.")] == [
        "the sum is 7.", "I erred.", "Alice is left.", "NASA said so.", "A is wrong.", "12 is right."]


async def test_feedback_after_wait_lowercases_a_capitalised_article() -> None:
    @verifier(name="limit")
    def limit(step: Step) -> Fail | None:
        if "move 500" in step.text:
            return Fail("500 is over the limit", feedback="A transfer may move at most 100.")
        return None

    script = Scripted({"": "I will move 500 to Bob.\n", "Let me redo this step.\n": "I will move 100 to Bob.\n"})
    result = await Monitor(script, verifiers=[limit]).run("q")
    assert result.interventions[0].feedback == "Wait, a transfer may move at most 100. Let me redo this step.\n"


def test_the_first_word_rule_keeps_names_and_acronyms() -> None:
    cases = {
        "A transfer may move at most 100.": "a transfer may move at most 100.",
        "A is wrong.": "A is wrong.", "A and B differ.": "A and B differ.", "A 5% fee applies.": "A 5% fee applies.",
        "An apple costs 2.": "an apple costs 2.", "For each item, 3 * 2 = 6.": "for each item, 3 * 2 = 6.",
        "Transfers are limited to 100.": "transfers are limited to 100.", "Texas has 3 cities.": "Texas has 3 cities.",
        "Charles is here.": "Charles is here.", "May has 31 days.": "May has 31 days.", "Will is 12.": "Will is 12.",
        "OK, fine.": "OK, fine.", "McDonald sold 5.": "McDonald sold 5.", "SQL is fine.": "SQL is fine.",
        "I erred.": "I erred.", "A": "A", "": "", "However, 2 + 2 is 4.": "however, 2 + 2 is 4.",
    }
    assert {t: lower_first_word(t) for t in cases} == cases


@given(st.text(max_size=40))
def test_the_first_word_rule_only_ever_lowers_one_capital_of_a_common_word(text: str) -> None:
    out = lower_first_word(text)
    assert len(out) == len(text) and out[1:] == text[1:]
    if out != text:
        first = re.match(r"[A-Za-z]+", text)
        assert first is not None and text[0].isupper() and out[0] == text[0].lower()
        assert first.group() == "A" or first.group().istitle()  # never an acronym or a word spelt with capitals


def _chunks(display: TraceDisplay, text: str, at: int) -> int:
    display.feed(ChunkAppended(chunk=Chunk(text), position=at))
    return at + len(text)


def test_display_commits_checked_lines_once_and_holds_a_line_with_an_open_violation() -> None:
    display = TraceDisplay(lag=3)
    end = _chunks(display, "one 1.\ntwo 2.\n", 0)
    assert display.take_committed() == []  # written, not checked, not yet three lines behind
    display.feed(VerdictReceived(verdict=Pass(span=Span(0, 6), verifier="v"), seconds=0.0))
    assert display.take_committed() == [("one 1.", "ok"), ("\n", "text")]
    display.feed(VerdictReceived(verdict=Fail("bad", span=Span(7, 13), verifier="v"), seconds=0.0))
    for _ in range(5):
        end = _chunks(display, "more.\n", end)
    assert display.take_committed() == []  # the failed line waits for the monitor's decision, and all after it
    display.feed(Intervened(intervention=Intervention(
        action=Action.ROLLBACK, source="v", position=7, span=Span(7, 13), epoch=0, message="bad")))
    assert display.take_committed() == []  # the struck-through text stays live until the feedback's line is done
    assert display.live()[-2:] == [("two 2.\n" + "more.\n" * 5, "removed"), ("\n  ⟲ v: bad (rolled back)\n", "note")]
    display.feed(FeedbackInjected(text="Wait, fix it.\n", position=7))
    assert display.take_committed() == [("two 2.\n" + "more.\n" * 5, "removed"),
                                         ("\n  ⟲ v: bad (rolled back)\n", "note"), ("Wait, fix it.\n", "feedback")]
    assert display.take_committed() == []  # handed out once
    assert display.live() == []


def test_display_rollback_into_printed_text_is_announced() -> None:
    display = TraceDisplay(lag=1)
    end = 0
    for _ in range(4):
        end = _chunks(display, "line.\n", end)
    assert "".join(t for t, _ in display.take_committed()) == "line.\n" * 3
    display.feed(Intervened(intervention=Intervention(
        action=Action.ROLLBACK, source="late", position=6, span=Span(6, 11), epoch=0, message="late")))
    display.feed(FeedbackInjected(text="Wait.\n", position=6))
    assert display.take_committed() == [
        ("\n  ⟲ the last 12 characters printed above were rolled back\n", "note"), ("line.\n", "removed"),
        ("\n  ⟲ late: late (rolled back)\n", "note"), ("Wait.\n", "feedback")]


async def test_transformers_says_when_its_own_limit_cut_the_text(tiny_model_dir: Path) -> None:  # noqa: F811
    from interlock.generators import Transformers

    generator = Transformers(tiny_model_dir, max_new_tokens=5)
    chunks = [c async for c in generator.stream(GenerationRequest("hi"))]
    assert sum(len(c.token_ids or ()) for c in chunks) == 5
    assert [c.finish_reason for c in chunks] == [None] * (len(chunks) - 1) + ["length"]
    result = await Monitor(generator, verifiers=[]).run("hi")  # no budget of the monitor's: the generator's cut
    assert (result.stop_reason, result.outcome) == (StopReason.LENGTH, Outcome.CUT)
    assert result.tokens.kept == 5
    budgeted = await Monitor(generator, verifiers=[], governors=[TokenBudget(max_total=3)]).run("hi")
    assert (budgeted.stop_reason, budgeted.outcome) == (StopReason.BUDGET, Outcome.BUDGET)


async def test_a_rollback_after_the_generators_cut_still_happens() -> None:
    script = Scripted({"": ["So ", "2 + 2 = 5.", "\n", "Then more."], "redo this step.\n": ["2 + 2 = 4.\n"]},
                      max_new_tokens=3)
    result = await Monitor(script, verifiers=["arithmetic"]).run("q")
    assert [i.applied for i in result.interventions] == [True]
    assert result.text == "Wait, 2 + 2 is 4, not 5. Let me redo this step.\n2 + 2 = 4.\n"
    assert (result.stop_reason, result.outcome) == (StopReason.COMPLETE, Outcome.VERIFIED)
