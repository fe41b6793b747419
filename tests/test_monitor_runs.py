"""The monitor through its public API: clean runs, rollback, interrupt, arbitration order, oscillation."""

from __future__ import annotations

import anyio
import pytest
from interlock import (
    Action,
    ChunkAppended,
    Fail,
    FeedbackInjected,
    Intervened,
    Monitor,
    Pass,
    RunFinished,
    Span,
    Step,
    StopReason,
    TokenBudget,
    VerdictReceived,
    verifier,
)
from interlock.generators import FromIterator, Scripted
from support import SumVerifier, check_sums

FB = "Wait, {feedback} Let me redo this step.\n"
CLEAN = "Tom has 3 apples.\nHe buys 4 more, so 3 + 4 = 7.\nThe answer is 7."
WRONG = "Tom has 3 apples.\nHe buys 4 more, so 3 + 4 = 8.\nThe answer is 8."
FIXED = "He buys 4 more, so 3 + 4 = 7.\nThe answer is 7."


async def test_clean_run_returns_the_script_and_checks_every_step() -> None:
    seen: list[str] = []

    @verifier(name="spy")
    def spy(step: Step) -> None:
        seen.append(step.text)

    result = await Monitor(Scripted(CLEAN), [spy, SumVerifier()]).run("q")
    assert result.text == CLEAN
    assert seen == ["Tom has 3 apples.\n", "He buys 4 more, so 3 + 4 = 7.\n", "The answer is 7."]
    assert result.interventions == ()
    assert result.stop_reason is StopReason.COMPLETE and result.passed
    assert [v.span for v in result.verdicts if v.verifier == "sums"] == [Span(0, 18), Span(18, 48), Span(48, 64)]
    assert all(isinstance(v, Pass) for v in result.verdicts)
    assert result.tokens.discarded == 0 and result.epochs == 1


async def test_rollback_replaces_the_wrong_step_with_the_corrected_one() -> None:
    gen = Scripted({"": WRONG, "Let me redo this step.\n": FIXED})
    result = await Monitor(gen, [SumVerifier()], feedback_template=FB).run("q")
    feedback = "Wait, 3 + 4 is 7, not 8. Let me redo this step.\n"
    assert result.text == "Tom has 3 apples.\n" + feedback + FIXED
    assert "3 + 4 = 8" not in result.text
    (rollback,) = result.interventions
    assert rollback.action is Action.ROLLBACK and rollback.applied
    assert rollback.span == Span(37, 46) and WRONG[37:46] == "3 + 4 = 8"
    assert rollback.position == 18  # the start of the offending step
    assert rollback.feedback == feedback
    assert rollback.removed_text.startswith("He buys 4 more, so 3 + 4 = 8.\n")
    assert gen.requests[1].prefix == "Tom has 3 apples.\n" + feedback
    assert result.passed and result.epochs == 2 and result.tokens.discarded > 0


async def test_events_come_in_order() -> None:
    gen = Scripted({"": WRONG, "Let me redo this step.\n": FIXED})
    kinds: list[str] = []
    async with Monitor(gen, [SumVerifier()]).stream("q") as run:
        async for event in run:
            kinds.append(event.kind)
    assert kinds[0] == "run_started" and kinds[-1] == "end"
    fail_at = next(i for i, k in enumerate(kinds) if k == "verdict")
    rollback_at = kinds.index("intervention")
    assert fail_at < rollback_at < kinds.index("inject") < len(kinds) - 1
    assert kinds[kinds.index("inject") + 1] == "chunk"


async def test_interrupt_stops_within_a_few_chunks_of_the_step_end() -> None:
    text = WRONG + "\n" + " ".join(["more"] * 200)
    gen = Scripted(text)
    interrupted = SumVerifier(action="interrupt", runs_in="loop")  # on the loop: the stop latency, not the dispatch
    chunks_after_step = 0
    step_end = len("Tom has 3 apples.\nHe buys 4 more, so 3 + 4 = 8.\n")
    async with Monitor(gen, [interrupted]).stream("q") as run:
        async for event in run:
            if isinstance(event, ChunkAppended) and event.position >= step_end:
                chunks_after_step += 1
    result = run.result
    assert result.stop_reason is StopReason.INTERRUPTED
    assert result.detail == "sums: 3 + 4 is 7, not 8"
    assert chunks_after_step <= 3
    assert not result.passed and result.interventions[0].action is Action.INTERRUPT


async def test_slow_check_on_an_early_step_wins_over_a_fast_one_on_a_later_step() -> None:
    @verifier(name="slow-early")
    async def slow_early(step: Step) -> Fail | None:
        if step.text.startswith("A"):
            await anyio.sleep(0.3)
            return Fail("A is wrong", span=step.span)
        return None

    @verifier(name="fast-late")
    def fast_late(step: Step) -> Fail | None:
        return Fail("C is wrong", span=step.span) if step.text.startswith("C") else None

    gen = Scripted({"": ["A step.\n", "B step.\n", "C step.\n", "D step."], "redo this step.\n": "fine."}, rate=100)
    result = await Monitor(gen, [slow_early, fast_late]).run("q")
    (first, *_rest) = result.interventions
    assert first.source == "slow-early" and first.position == 0
    assert result.text == "Wait, A is wrong. Let me redo this step.\nfine."


async def test_same_error_after_every_rollback_ends_by_the_oscillation_guard() -> None:
    gen = Scripted({"": WRONG})  # every resume replays the same wrong step
    result = await Monitor(gen, [SumVerifier()], governors=[TokenBudget(max_total=10_000)],
                           oscillation_limit=2).run("q")
    assert result.stop_reason is StopReason.OSCILLATION
    assert result.abstained
    applied = [i for i in result.interventions if i.applied and i.action is Action.ROLLBACK]
    assert [i.repeat for i in applied] == [0, 1, 2]
    assert applied[1].feedback == ("Wait, you made this same mistake before. 3 + 4 is 7, not 8. Do not repeat it. "
                                   "Let me redo this step.\n")  # the feedback ends its sentence before the next
    assert result.interventions[-1].action is Action.INTERRUPT
    assert result.tokens.total < 10_000


async def test_intervention_limit_bounds_the_number_of_rollbacks() -> None:
    def different_error_each_time(prefix: str) -> str:
        n = prefix.count("Wait,")
        return f"So 1 + {n} = {n + 5}.\n"

    result = await Monitor(Scripted(different_error_each_time), [SumVerifier()], max_interventions=3).run("q")
    assert result.stop_reason is StopReason.INTERVENTION_LIMIT
    assert sum(1 for i in result.interventions if i.applied and i.action is Action.ROLLBACK) == 3


async def test_token_budget_is_never_exceeded() -> None:
    gen = Scripted(" ".join(f"w{i}" for i in range(100)))
    result = await Monitor(gen, governors=[TokenBudget(max_kept=25)]).run("q")
    assert result.stop_reason is StopReason.BUDGET
    assert result.tokens.kept == 25
    assert gen.requests[0].max_new_tokens == 25


async def test_the_last_step_is_cut_only_when_a_stop_ended_it() -> None:
    async def steps_seen(pieces: list[str], governors: list[TokenBudget]) -> list[tuple[str, bool]]:
        seen: list[tuple[str, bool]] = []

        @verifier(name="spy")
        def spy(step: Step) -> None:
            seen.append((step.text, step.cut))

        await Monitor(Scripted(pieces), [spy], governors=governors).run("q")
        return seen

    stopped = await steps_seen(["One step.\n", "Then 768 + ", "768 = 1", "536."], [TokenBudget(max_kept=3)])
    assert stopped == [("One step.\n", False), ("Then 768 + 768 = 1", True)]
    finished = await steps_seen(["One step.\n", "Then 768 + ", "768 = 1"], [])
    assert finished == [("One step.\n", False), ("Then 768 + 768 = 1", False)]


async def test_total_budget_counts_discarded_tokens() -> None:
    gen = Scripted({"": WRONG})
    result = await Monitor(gen, [SumVerifier()], governors=[TokenBudget(max_total=30)], oscillation_limit=10).run("q")
    assert result.stop_reason is StopReason.BUDGET
    assert result.tokens.kept + result.tokens.discarded <= 30


async def test_warn_records_and_goes_on() -> None:
    result = await Monitor(Scripted(WRONG), [SumVerifier(action="warn")]).run("q")
    assert result.text == WRONG
    assert [i.action for i in result.interventions] == [Action.WARN]
    assert result.stop_reason is StopReason.COMPLETE and not result.passed
    assert [v.message for v in result.open_violations] == ["3 + 4 is 7, not 8"]


async def test_unresumable_generator_reports_what_would_have_been_done() -> None:
    async def source():  # type: ignore[no-untyped-def]
        for piece in ["Tom has 3 apples.\n", "So 3 + 4 = 8.\n", "And 1 + 1 = 3.\n"]:
            yield piece

    result = await Monitor(FromIterator(source()), [check_sums_verifier()]).run("q")
    assert result.text == "Tom has 3 apples.\nSo 3 + 4 = 8.\nAnd 1 + 1 = 3.\n"
    assert [(i.applied, i.span) for i in result.interventions] == [(False, Span(21, 30)), (False, Span(36, 45))]
    stopped = await Monitor(FromIterator(source()), [check_sums_verifier()], on_unresumable="stop").run("q")
    assert stopped.stop_reason is StopReason.UNRESUMABLE
    assert stopped.text.startswith("Tom has 3 apples.\nSo 3 + 4 = 8.\n")


def check_sums_verifier():  # type: ignore[no-untyped-def]
    return verifier(check_sums, name="sums")


async def test_factory_iterator_can_roll_back() -> None:
    async def factory(request):  # type: ignore[no-untyped-def]
        yield FIXED if request.prefix else WRONG

    result = await Monitor(FromIterator(factory), [check_sums_verifier()]).run("q")
    assert result.text.endswith(FIXED) and result.passed


async def test_record_writes_a_readable_trace_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from interlock import read_trace

    path = tmp_path / "run.jsonl"
    gen = Scripted({"": WRONG, "Let me redo this step.\n": FIXED})
    result = await Monitor(gen, [SumVerifier()]).run("q", record=path)
    recorded = read_trace(path)
    assert recorded.prompt == "q"
    assert recorded.end is not None and recorded.end["stop_reason"] == "complete"
    assert recorded.end["text"] == result.text
    kinds = [e["kind"] for e in recorded.events]
    assert kinds[0] == "run_started" and "intervention" in kinds and "inject" in kinds


async def test_monitor_rejects_bad_configuration() -> None:
    from interlock import ConfigError

    with pytest.raises(ConfigError, match="share the name 'sums'"):
        Monitor(Scripted("x"), [SumVerifier(), SumVerifier()])
    with pytest.raises(ConfigError, match="is not a Verifier"):
        Monitor(Scripted("x"), [object()])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="has no stream"):
        Monitor(object())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown action 'explode'"):
        SumVerifier(action="explode")


async def test_feedback_injection_is_never_checked() -> None:
    gen = Scripted({"": WRONG, "Let me redo this step.\n": FIXED})
    checked: list[str] = []

    @verifier(name="spy")
    def spy(step: Step) -> None:
        checked.append(step.text)

    await Monitor(gen, [SumVerifier(), spy]).run("q")
    assert not any("Wait," in text for text in checked)


async def test_stream_events_carry_verdicts_and_the_result() -> None:
    async with Monitor(Scripted(CLEAN), [SumVerifier()]).stream("q") as run:
        events = [e async for e in run]
    verdicts = [e for e in events if isinstance(e, VerdictReceived)]
    assert len(verdicts) == 3 and all(not e.stale for e in verdicts)
    assert isinstance(events[-1], RunFinished) and events[-1].result is run.result
    assert not any(isinstance(e, (Intervened, FeedbackInjected)) for e in events)
