"""ForkExtractor through a real Monitor run with the scripted generator's forks: the fork sees the trace so
far plus the extraction prompt, runs greedily with a bounded budget, its tokens are counted apart, and the main
trace is untouched; without fork support, or with a bad answer, the verdict is Unknown with the reason."""

from __future__ import annotations

import json
from typing import Any

import pytest
from interlock import EveryNTokens, Fail, Monitor, Pass, Span, StopReason, Unknown, verifier
from interlock.generators import Scripted
from interlock.verifiers import ForkExtractor, VerifierConfigError
from interlock.verifiers.constraints import Constraints, ConstraintSpec
from interlock.verifiers.fork import first_json

P = "\nCurrent assignments as JSON:"
MAIN = "Arnold lives in house 2.\nBob is to his right.\nAlice takes the rest.\n"


def zebra() -> ConstraintSpec:
    spec = ConstraintSpec().positions({"name": ["Arnold", "Bob", "Alice"]})
    spec.left_of("Arnold", "Bob", directly=True, name="clue 2", text="Arnold is directly left of Bob.")
    return spec


async def test_fork_answers_feed_a_verifier_and_are_counted_apart() -> None:
    forks = {
        "Arnold lives in house 2.\n" + P: ' {"Arnold": 2}',
        "Bob is to his right.\n" + P: ' {"Arnold": 2, "Bob": 3}',
        "Alice takes the rest.\n" + P: ' {"Arnold": 2, "Bob": 3, "Alice": 1} and that is all',
    }
    gen = Scripted(MAIN, forks=forks)
    seen: list[Any] = []

    @verifier(name="spy", extractor=ForkExtractor(P, max_tokens=16, parse=first_json))
    def spy(state: Any) -> None:
        seen.append(state)

    result = await Monitor(gen, [spy]).run("Solve it.")
    assert result.text == MAIN  # the main trace never sees the forks
    assert seen == [{"Arnold": 2}, {"Arnold": 2, "Bob": 3}, {"Arnold": 2, "Bob": 3, "Alice": 1}]
    fork_requests = [r for r in gen.requests if r.purpose == "fork"]
    assert [r.prefix for r in fork_requests] == [
        "Arnold lives in house 2.\n" + P,
        "Arnold lives in house 2.\nBob is to his right.\n" + P,
        MAIN + P,
    ]
    assert all(r.greedy and r.max_new_tokens == 16 and r.prompt == "Solve it." for r in fork_requests)
    # word-sized pieces: 2 + 4 + 10 fork chunks; the main trace's 15 pieces are kept
    assert result.tokens.fork == 2 + 4 + 10
    assert result.tokens.kept == 15 and result.tokens.discarded == 0
    assert result.tokens.total == 15 + 16


async def test_the_fork_budget_bounds_the_answer() -> None:
    gen = Scripted("One step.\n", forks={P: " a b c d e f g h"})
    answers: list[str] = []
    extractor = ForkExtractor(P, max_tokens=3, parse=lambda text: answers.append(text) or text)

    @verifier(name="spy", extractor=extractor)
    def spy(state: Any) -> None:
        return None

    result = await Monitor(gen, [spy]).run("q")
    assert answers == [" a b c"] and result.tokens.fork == 3


async def test_constraints_judge_the_forked_state() -> None:
    forks = {
        "Arnold lives in house 2.\n" + P: ' {"Arnold": 2}',
        "Bob is to his right.\n" + P: ' {"Arnold": 2, "Bob": 1}',
        "Alice takes the rest.\n" + P: ' {"Arnold": 2, "Bob": 3, "Alice": 1}',
    }
    check = Constraints(zebra(), extractor=ForkExtractor(P, max_tokens=32, parse=json.loads), action="warn")
    result = await Monitor(Scripted(MAIN, forks=forks), [check]).run("Solve it.")
    assert result.text == MAIN
    verdicts = sorted(result.verdicts, key=lambda v: v.span.start if v.span else -1)  # checks finish in any order
    assert [type(v) for v in verdicts] == [Pass, Fail, Pass]
    fail = verdicts[1]
    assert isinstance(fail, Fail)
    assert fail.span == Span(25, 46)  # the step whose state was extracted
    assert fail.message == ("the current state (Arnold = 2, Bob = 1) contradicts clue 2 (Arnold is directly left "
                            "of Bob).")
    assert result.tokens.fork > 0 and result.stop_reason is StopReason.COMPLETE


async def test_a_generator_that_cannot_fork_gives_unknown_not_a_crash() -> None:
    check = Constraints(zebra(), extractor=ForkExtractor(P))
    result = await Monitor(Scripted(MAIN), [check]).run("q")
    assert result.text == MAIN and result.stop_reason is StopReason.COMPLETE
    assert len(result.verdicts) == 3 and all(isinstance(v, Unknown) for v in result.verdicts)
    assert result.verdicts[0].reason == ("the generator cannot fork (capabilities.fork is false), so the state "
                                         "cannot be extracted by forking the model")
    assert result.errors == () and result.tokens.fork == 0


async def test_unparsable_and_slow_forks_give_unknown_with_the_reason() -> None:
    check = Constraints(zebra(), extractor=ForkExtractor(P))
    result = await Monitor(Scripted("One step.\n", forks={P: " I am not sure."}), [check]).run("q")
    (verdict,) = result.verdicts
    assert isinstance(verdict, Unknown)
    assert verdict.reason == ("could not parse the fork's answer 'I am not sure.': ValueError: no JSON object or "
                              "array in the answer")
    slow = Constraints(zebra(), extractor=ForkExtractor(P, timeout=0.2))
    result = await Monitor(Scripted("One step.\n", forks={P: " {} " * 20}, rate=5), [slow]).run("q")
    assert [v.reason for v in result.verdicts if isinstance(v, Unknown)] == ["the fork did not answer within 0.2 s"]


def test_first_json_and_bad_configuration() -> None:
    assert first_json(' Here: {"a": [1, 2]} trailing') == {"a": [1, 2]}
    assert first_json("[1, 2] {") == [1, 2]
    with pytest.raises(ValueError):
        first_json("nothing")
    with pytest.raises(VerifierConfigError, match="max_tokens must be a positive integer"):
        ForkExtractor(P, max_tokens=0)
    with pytest.raises(VerifierConfigError, match="non-empty extraction prompt"):
        ForkExtractor("")


async def test_a_real_kv_cache_fork_leaves_the_main_trace_as_it_would_have_been() -> None:
    """The transformers backend forks a copy of its KV cache: the greedy main text is the same with and
    without fork extraction, and the forks' tokens are counted apart."""
    pytest.importorskip("transformers")
    from interlock.generators import Transformers
    from tiny_model import build_tiny_model

    model, tokenizer = build_tiny_model()
    plain = await Monitor(Transformers(model, tokenizer, max_new_tokens=40, eos_token_ids=())).run("Natalia sold")
    answers: list[str] = []

    @verifier(name="spy", trigger=EveryNTokens(8),
              extractor=ForkExtractor(P, max_tokens=5, parse=lambda text: answers.append(text) or text))
    def spy(state: Any) -> None:
        return None

    gen = Transformers(model, tokenizer, max_new_tokens=40, eos_token_ids=())
    assert gen.capabilities.fork
    forked = await Monitor(gen, [spy]).run("Natalia sold")
    assert forked.text == plain.text
    assert forked.tokens.kept == plain.tokens.kept == 40
    assert len(answers) == 5 and all(a for a in answers)
    assert forked.tokens.fork == 5 * 5


async def test_in_a_thinking_the_fork_continues_it_or_ends_it_first() -> None:
    from interlock import Chunk

    thinking = [Chunk("<think>\n2 + 2 is 4.\n", phase="thinking"), Chunk("Still sure.\n", phase="thinking")]
    answers = {"2 + 2 is 4.\n So far:": " 4 (thinking)", "2 + 2 is 4.\n</think>The answer is": " 4 (answering)"}
    gen = Scripted([*thinking, Chunk("</think>\n4", phase="thinking")], forks=answers, thinking_tags="<think>")
    seen: dict[str, Any] = {}

    def keep(name: str) -> Any:
        def parse(text: str) -> str:
            seen[name] = text
            return text
        return parse

    inside = ForkExtractor(" So far:", max_tokens=8, parse=keep("inside"))
    after = ForkExtractor("The answer is", max_tokens=8, parse=keep("after"), after_thinking=True)

    @verifier(name="inside", extractor=inside, phase="thinking")
    def look_inside(state: Any) -> None:
        return None

    @verifier(name="after", extractor=after, phase="thinking")
    def look_after(state: Any) -> None:
        return None

    await Monitor(gen, [look_inside, look_after]).run("q")
    assert seen == {"inside": " 4 (thinking)", "after": " 4 (answering)"}
    prefixes = {r.prefix for r in gen.requests if r.purpose == "fork"}
    assert "<think>\n2 + 2 is 4.\n So far:" in prefixes and "<think>\n2 + 2 is 4.\n</think>The answer is" in prefixes
    closed = next(r for r in gen.requests if r.purpose == "fork" and r.prefix.endswith("4.\n</think>The answer is"))
    assert closed.phase == "answer" and closed.thinking == "<think>\n2 + 2 is 4.\n</think>"
