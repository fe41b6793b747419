"""End to end: a scripted model writes a wrong calculation; the monitor with the arithmetic verifier rolls it
back, injects the verifier's feedback, and the run ends with the corrected step."""

from __future__ import annotations

from interlock import Action, Fail, Monitor, StopReason, TokenBudget, Unknown
from interlock.generators import Scripted
from interlock.verifiers import Arithmetic

WRONG = "Janet's ducks lay 16 eggs a day.\nShe sells 16 - 3 - 4 = <<16-3-4=11>>11 eggs a day.\nShe makes 11 * 2 = $22."
FIXED = "She sells 16 - 3 - 4 = <<16-3-4=9>>9 eggs a day.\nShe makes 9 * 2 = $18.\n#### 18"


async def test_wrong_calculation_is_rolled_back_and_corrected() -> None:
    generator = Scripted({"": WRONG, "Let me redo this step.\n": FIXED}, rate=200)
    result = await Monitor(generator, verifiers=[Arithmetic()]).run("How much does Janet make a day?")

    feedback = "Wait, 16 - 3 - 4 is 9, not 11. Let me redo this step.\n"
    assert result.text == "Janet's ducks lay 16 eggs a day.\n" + feedback + FIXED
    assert result.passed
    assert len(result.interventions) == 1
    i = result.interventions[0]
    assert i.action is Action.ROLLBACK and i.source == "arithmetic"
    assert i.position == len("Janet's ducks lay 16 eggs a day.\n")
    start = WRONG.index("16 - 3 - 4")
    assert (i.span.start, i.span.end) == (start, start + len("16 - 3 - 4 = <<16-3-4=11>>11"))
    assert i.feedback == feedback
    assert i.removed_text.startswith("She sells 16 - 3 - 4 = <<16-3-4=11>>11 eggs a day.\n")
    fails = [v for v in result.verdicts if isinstance(v, Fail)]
    assert [f.claim for f in fails] == ["16-3-4=11"]


async def test_clean_trace_passes_without_intervention() -> None:
    generator = Scripted(FIXED, rate=200)
    result = await Monitor(generator, verifiers=["arithmetic"]).run("How much does Janet make a day?")
    assert result.text == FIXED
    assert result.passed and result.interventions == ()
    assert not any(isinstance(v, Fail) for v in result.verdicts)


async def test_a_value_cut_off_by_the_budget_is_not_judged_but_the_rest_of_its_step_is() -> None:
    # The budget stops the run after "1" of "1536": the unfinished value must not read as "768 + 768 = 1".
    pieces = ["Doubling: ", "768 + 768 = ", "1", "536 cookies.\n"]
    result = await Monitor(Scripted(pieces), verifiers=[Arithmetic(action="warn")],
                           governors=[TokenBudget(max_kept=3)]).run("q")
    assert result.text == "Doubling: 768 + 768 = 1"
    assert result.stop_reason is StopReason.BUDGET
    assert not any(isinstance(v, Fail) for v in result.verdicts)
    assert [v.reason for v in result.verdicts if isinstance(v, Unknown)] == [
        "768 + 768: the run stopped while its value was being written"]

    # A wrong claim earlier in the cut step is still judged, and a value the model finished is judged too.
    pieces = ["So 3 + 4 = 8 and ", "768 + 768 = ", "1", "536 cookies.\n"]
    result = await Monitor(Scripted(pieces), verifiers=[Arithmetic(action="warn")],
                           governors=[TokenBudget(max_kept=3)]).run("q")
    assert [v.claim for v in result.verdicts if isinstance(v, Fail)] == ["3+4=8"]
    result = await Monitor(Scripted(["So 768 + 768 = 1."]), verifiers=[Arithmetic(action="warn")]).run("q")
    assert [v.claim for v in result.verdicts if isinstance(v, Fail)] == ["768+768=1"]
