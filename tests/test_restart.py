"""The memoryless restart: a governor ends an attempt, the monitor starts afresh from the question and the
verified state; prompts, token accounting and the bound, with the scripted generator."""

from __future__ import annotations

import pytest
from interlock import Action, ConfigError, Monitor, StopReason
from interlock.generators import Scripted
from interlock.monitor.governors import LoopGuard
from interlock.monitor.scan import pseudo_tokens
from support import SumVerifier

LOOP = "Tom has 3 apples.\nHe buys 4, so 3 + 4 = 7.\nI add them again.\nI add them again.\nI add them again.\n"
GOOD = "So 7 + 2 = 9.\nThe answer is 9.\n"


def attempts(*texts: str) -> Scripted:
    """Plays ``texts[k]`` to the k-th fresh attempt (a request with an empty prefix)."""
    calls = []

    def play(prefix: str) -> str:
        if prefix == "":
            calls.append(prefix)
        return texts[min(len(calls), len(texts)) - 1] if prefix == "" else ""

    return Scripted(play)


def ntok(text: str) -> int:
    """Tokens the scripted generator streams ``text`` in (word-sized pieces, one token each)."""
    return len(list(pseudo_tokens(text)))


def guard() -> LoopGuard:
    return LoopGuard(nudge=None, then="restart", force_answer=False)


async def test_a_loop_restarts_from_the_question_and_the_steps_verified_before_it() -> None:
    gen = attempts(LOOP, GOOD)
    result = await Monitor(gen, [SumVerifier()], [guard()]).run("Q?")
    state = "Tom has 3 apples.\nHe buys 4, so 3 + 4 = 7."
    second = f"Q?\n\nEstablished so far (checked):\n{state}\n"
    assert [r.prompt for r in gen.requests] == ["Q?", second]
    assert result.stop_reason is StopReason.COMPLETE and result.text == GOOD
    assert result.prompt == "Q?"
    (restart,) = result.restarts
    assert restart.attempt == 1 and restart.source == "loop_guard" and restart.state == state
    assert restart.prompt == second
    assert restart.text.startswith(LOOP[:60]) and "I add them again." in restart.text
    assert "loop" in restart.reason
    # tokens: the abandoned attempt's are discarded; the kept ones are the last attempt's
    assert restart.tokens.kept == ntok(restart.text) == 26 and restart.tokens.discarded == 0
    assert result.tokens.kept == ntok(GOOD)
    assert result.tokens.discarded == restart.tokens.kept
    assert result.tokens.total == restart.tokens.kept + ntok(GOOD)
    assert [i.action for i in result.interventions] == []  # the last attempt's record only
    assert result.to_dict()["restarts"][0]["state"] == state


async def test_restarts_are_bounded_and_the_last_one_is_a_stop() -> None:
    gen = attempts(LOOP)  # every attempt loops
    result = await Monitor(gen, [SumVerifier()], [guard()], max_restarts=2).run("Q?")
    assert len(gen.requests) == 3 and len(result.restarts) == 2
    assert [r.attempt for r in result.restarts] == [1, 2]
    assert result.stop_reason is StopReason.GOVERNOR
    assert "no restart left (max_restarts=2)" in result.detail
    (stop,) = [i for i in result.interventions if i.source == "loop_guard"]
    assert stop.action is Action.RESTART
    per_attempt = result.restarts[0].tokens.kept
    assert result.restarts[1].tokens.kept == per_attempt
    assert result.tokens.discarded == 2 * per_attempt and result.tokens.kept == per_attempt


async def test_no_restart_allowed_means_the_restart_is_a_stop() -> None:
    gen = attempts(LOOP, GOOD)
    result = await Monitor(gen, [SumVerifier()], [guard()], max_restarts=0).run("Q?")
    assert len(gen.requests) == 1 and result.restarts == ()
    assert result.stop_reason is StopReason.GOVERNOR and result.tokens.discarded == 0


async def test_a_user_state_extractor_and_template_make_the_next_prompt() -> None:
    gen = attempts(LOOP, GOOD)
    seen = []

    def state(result):  # type: ignore[no-untyped-def]
        seen.append(result.stop_reason)
        return "x = 7"

    monitor = Monitor(gen, [], [guard()], restart_state=state, restart_template="{prompt} (known: {state})")
    result = await monitor.run("Q?")
    assert [r.prompt for r in gen.requests] == ["Q?", "Q? (known: x = 7)"]
    assert seen == [StopReason.RESTART] and result.restarts[0].state == "x = 7"


async def test_an_empty_state_restarts_from_the_question_alone() -> None:
    gen = attempts(LOOP, GOOD)
    result = await Monitor(gen, [], [guard()]).run("Q?")  # no verifier: nothing was verified
    assert [r.prompt for r in gen.requests] == ["Q?", "Q?"]
    assert result.restarts[0].state == "" and result.text == GOOD


def test_bad_restart_options_are_config_errors() -> None:
    gen = Scripted("x")
    with pytest.raises(ConfigError, match="max_restarts"):
        Monitor(gen, max_restarts=-1)
    with pytest.raises(ConfigError, match="restart_template"):
        Monitor(gen, restart_template="{prompt} {history}")
    with pytest.raises(ConfigError, match="then must be"):
        LoopGuard(then="again")


async def test_a_verifier_can_ask_for_a_restart_from_before_its_violation() -> None:
    from interlock import Fail, Step, verifier

    @verifier(name="no_eight")
    def no_eight(step: Step) -> Fail | None:
        return Fail("8 is wrong", action=Action.RESTART) if "= 8" in step.text else None

    wrong = "Tom has 3 apples.\nHe buys 4, so 3 + 4 = 8.\nThe answer is 8.\n"
    gen = attempts(wrong, GOOD)
    result = await Monitor(gen, [no_eight]).run("Q?")
    assert [r.prompt for r in gen.requests] == ["Q?", "Q?\n\nEstablished so far (checked):\nTom has 3 apples.\n"]
    (restart,) = result.restarts
    assert (restart.source, restart.state) == ("no_eight", "Tom has 3 apples.")
    assert result.text == GOOD and result.stop_reason is StopReason.COMPLETE
